package main

import (
	"bytes"
	"context"
	"io"
	"math"
	"strings"
	"testing"
	"time"

	"shfleet/quota"
	"shfleet/redisserver"
	"shfleet/sentinel/sentineltest"
)

// TestRunRowTiny runs one tiny row of each fleet mode for 2 s against a real
// redis-server and the simulator, and checks the row is computed from the
// simulator's record.
func TestRunRowTiny(t *testing.T) {
	srv, err := redisserver.Start(redisserver.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	for _, mode := range []Mode{ModeShfleet, ModeNoSync} {
		t.Run(string(mode), func(t *testing.T) { testRunRowTiny(t, srv, mode) })
	}
}

func testRunRowTiny(t *testing.T, srv *redisserver.Server, mode Mode) {
	sc := Scenario{Name: "tiny", Policies: mustPolicies("requests:10:PT1S"), Workload: smallWorkload}
	o := Options{Duration: 2 * time.Second, Latency: -1, Jitter: -1}.withDefaults()
	res, err := runRow(context.Background(), o, srv, sc, RowSpec{mode, 4})
	if err != nil {
		t.Fatal(err)
	}
	// shfleet: all 4 clients start on the account's contract (one waits for the
	// fetch of another, none on the fallback) and read the remaining units;
	// shfleet-nosync never calls the rate-limit endpoints.
	if mode == ModeShfleet && (res.Sources[quota.SourceAccount] != 4 || len(res.Sources) != 1 || res.AuxRequests < 2) {
		t.Errorf("sources %v, %d rate-limit API calls; want account x4 and a contract fetch plus resyncs", res.Sources, res.AuxRequests)
	}
	if mode == ModeNoSync && (len(res.Sources) != 0 || res.AuxRequests != 0) {
		t.Errorf("sources %v, %d rate-limit API calls; want none without an AccountAPI", res.Sources, res.AuxRequests)
	}
	// Zero 429s is the limiter's claim, and the simulator counts them itself: a
	// single one means the fleet sent past the account's policy.
	if res.Errors != 0 || res.RateLimited != 0 {
		t.Errorf("got %d 429s (at %v) for %d OK and %d errors (first: %s); want none", res.RateLimited, res.RateLimitedAt, res.OK, res.Errors, res.FirstError)
	}
	// Whether the burst was spent within 2 s depends on the machine's load
	// (Drained is timing), so it is reported, not asserted.
	if res.OK == 0 || !(res.Achieved > 0) || res.Measured <= 0 {
		t.Errorf("row not computed: OK %d, achieved %v, drained %v, measured %s", res.OK, res.Achieved, res.Drained, res.Measured)
	}
	if res.TokenRequests != 1 || res.ExpectedTokens != 1 {
		t.Errorf("token requests %d (expected %d); want 1: the 4 clients share one token", res.TokenRequests, res.ExpectedTokens)
	}
	if res.Binding.String() != "requests:10:PT1S" {
		t.Errorf("binding %s, want requests:10:PT1S", res.Binding)
	}
	// The burst holds 9.9 requests (10 x 0.99): an 11th admitted request must
	// have waited for its slot, so with more than 10 OK p99 = 0 would mean
	// nothing paced them. No slot is booked more than MaxAhead ahead, so no
	// admitted call waited longer.
	if mode == ModeShfleet && ((res.OK > 10 && res.WaitP99 <= 0) || res.WaitP99 > quota.DefaultMaxAhead) {
		t.Errorf("wait p99 %s after %d OK; want > 0 past the burst and <= %s", res.WaitP99, res.OK, quota.DefaultMaxAhead)
	}
	var buf bytes.Buffer
	if err := WriteTable(&buf, []Result{res}); err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", buf.String())
	if !strings.Contains(buf.String(), "| tiny | "+string(mode)+" | retry-after | – | requests:10:PT1S | 4 |") {
		t.Errorf("table lacks the row:\n%s", buf.String())
	}
}

// TestMeasure checks the window and the utilization on a synthetic record.
func TestMeasure(t *testing.T) {
	p := mustPolicies("requests:60:PT1M") // 1 per second
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	rec := func(at time.Duration) sentineltest.RecordedRequest {
		return sentineltest.RecordedRequest{Time: t0.Add(at), Status: 200}
	}
	burst := func(every time.Duration, until time.Duration) []sentineltest.RecordedRequest {
		var rs []sentineltest.RecordedRequest
		for i := range 60 { // the whole initial bucket in the first 60 ms
			rs = append(rs, rec(time.Duration(i)*time.Millisecond))
		}
		for at := time.Second; at <= until; at += every {
			rs = append(rs, rec(at), sentineltest.RecordedRequest{Time: t0.Add(at), Status: 429})
		}
		return rs
	}
	for _, tc := range []struct {
		name  string
		recs  []sentineltest.RecordedRequest
		share float64
		want  float64
		drain bool
	}{
		{"full rate", burst(time.Second, 100*time.Second), 0, 1, true},
		{"half rate", burst(2*time.Second, 100*time.Second), 0, 0.5, true},
		// The other client takes half of the refill: one request every 2 s
		// (45 in the 90 s window) is all of the 0.5/s it leaves.
		{"all the other client leaves", burst(2*time.Second, 100*time.Second), 0.5, 1, true},
		{"burst never spent", []sentineltest.RecordedRequest{rec(time.Second), rec(50 * time.Second)}, 0, 1.0 / 90, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := measure(tc.recs, p, tc.share, t0, t0.Add(10*time.Second), t0.Add(100*time.Second))
			if res.Drained != tc.drain || res.Measured != 90*time.Second {
				t.Errorf("drained %v, measured %s; want %v, 1m30s", res.Drained, res.Measured, tc.drain)
			}
			if math.Abs(res.Achieved-tc.want) > 0.02 || res.Binding != p[0] {
				t.Errorf("achieved %.3f of %s; want %.3f", res.Achieved, res.Binding, tc.want)
			}
		})
	}
}

func TestParseFlags(t *testing.T) {
	o, err := parseFlags([]string{"-quick", "-w", "8, 64", "-scenarios", "requests"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.Duration != QuickDuration || len(o.Ws) != 2 || o.Ws[1] != 64 {
		t.Errorf("got %+v", o)
	}
	sc, err := selectScenarios(o)
	if err != nil {
		t.Fatal(err)
	}
	// requests has three modes: each gets W = 8 and 64.
	if len(sc) != 1 || len(sc[0].Rows) != 6 || sc[0].Rows[5] != (RowSpec{ModeNone, 64}) {
		t.Errorf("rows %+v", sc[0].Rows)
	}
	if o, err := parseFlags([]string{"-quick", "-duration", "5s"}, io.Discard); err != nil || o.Duration != 5*time.Second {
		t.Errorf("-duration after -quick: %s, %v", o.Duration, err)
	}
	for _, bad := range [][]string{{"-w", "0"}, {"-duration", "10ms"}, {"extra"}} {
		if _, err := parseFlags(bad, io.Discard); err == nil {
			t.Errorf("parseFlags(%q) accepted", bad)
		}
	}
	sc, err = selectScenarios(Options{Modes: []Mode{ModeLocal}})
	if err != nil || len(sc) != 1 || len(sc[0].Rows) != 2 || sc[0].Rows[0] != (RowSpec{ModeLocal, 8}) {
		t.Errorf("-modes local: %+v, %v", sc, err)
	}
	if _, err := selectScenarios(Options{Modes: []Mode{"fast"}}); err == nil {
		t.Error("unknown mode accepted")
	}
	if _, err := selectScenarios(Options{Scenarios: []string{"nope"}}); err == nil || !strings.Contains(err.Error(), "requests") {
		t.Errorf("unknown scenario: %v", err)
	}
	if err := run(context.Background(), []string{"other"}, io.Discard, io.Discard); err == nil {
		t.Error("run accepted an unknown benchmark")
	}
	if got := len(Scenarios()); got != 6 || Scenarios()[0].Policies[0] != (quota.Policy{Kind: quota.Requests, Capacity: 1200, Period: time.Minute}) {
		t.Errorf("scenarios changed: %d, %+v", got, Scenarios()[0].Policies)
	}
	// -modes shfleet-nosync keeps the legacy row (W=64) and external's two rows.
	sc, err = selectScenarios(Options{Modes: []Mode{ModeNoSync}})
	if err != nil || len(sc) != 2 || sc[0].Name != "legacy" || sc[0].Headers != sentineltest.HeadersLegacy ||
		len(sc[1].Rows) != 2 || sc[1].Rows[1] != (RowSpec{ModeNoSync, 64}) || sc[1].ExternalLoad != 0.25 {
		t.Errorf("-modes shfleet-nosync: %+v, %v", sc, err)
	}
}
