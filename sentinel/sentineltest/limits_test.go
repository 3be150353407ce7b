package sentineltest

import (
	"encoding/json"
	"math"
	"net/http"
	"sync"
	"testing"
	"time"

	"shfleet/sentinel"
)

func TestBurstAdmitsCapacityThen429(t *testing.T) {
	t.Parallel()
	const c = 20
	s, _, tok := start(t, Config{Policies: []Policy{{Kind: KindRequests, Capacity: c, Period: time.Minute}}, HeaderMode: HeadersLegacy})
	ok, limited := 0, 0
	var last reply
	for range c + 5 {
		r := post(t, s, CatalogSearchPath, tok, search())
		switch r.status {
		case http.StatusOK:
			ok++
		case http.StatusTooManyRequests:
			limited++
			last = r
		default:
			t.Fatalf("HTTP %d: %s", r.status, r.body)
		}
	}
	if ok != c || limited != 5 {
		t.Fatalf("passed %d, limited %d; want %d and 5", ok, limited, c)
	}
	// The clock is frozen: the bucket is empty and refills 1 unit per 60s/20 = 3s.
	wantHeader(t, last, "Retry-After", "3000")
	wantHeader(t, last, "X-RateLimit-Remaining", "0.0")
	wantHeader(t, last, "X-ProcessingUnits-Retry-After", "0")
	var vp struct {
		SamplingPeriod string
		Capacity       float64
	}
	if err := json.Unmarshal([]byte(last.header.Get("X-RateLimit-ViolatedPolicy")), &vp); err != nil {
		t.Fatalf("X-RateLimit-ViolatedPolicy %q: %v", last.header.Get("X-RateLimit-ViolatedPolicy"), err)
	}
	if vp.SamplingPeriod != "PT1M" || vp.Capacity != c {
		t.Errorf("violated policy = %+v, want PT1M capacity %d", vp, c)
	}
	// A catalog 429 is in the catalog's error shape (CatalogException).
	wantBody(t, last, `{"code":429,"description":"You have exceeded your rate limit"}`)
	st := s.Stats()
	if st.RateLimited != 5 || st.RateLimitedByPolicy["requests:PT1M"] != 5 || st.RequestsByStatus[200] != c || st.CatalogRequests != c+5 {
		t.Errorf("stats = %+v", st)
	}
	if st.MaxWindowLoad["requests:PT1M"] != c {
		t.Errorf("MaxWindowLoad = %v, want %d", st.MaxWindowLoad, c)
	}
}

// drain sends requests until the first 429 and returns how many passed.
func drain(t *testing.T, s *Server, tok string, limit int) int {
	t.Helper()
	for n := 0; n < limit; n++ {
		r := post(t, s, CatalogSearchPath, tok, search())
		if r.status == http.StatusTooManyRequests {
			return n
		}
		wantStatus(t, r, http.StatusOK)
	}
	t.Fatalf("no 429 after %d requests", limit)
	return 0
}

func TestContinuousRefillAndNoAccumulation(t *testing.T) {
	t.Parallel()
	s, clk, tok := start(t, Config{Policies: []Policy{{Kind: KindRequests, Capacity: 10, Period: time.Minute}}})
	if n := drain(t, s, tok, 50); n != 10 {
		t.Fatalf("full bucket admitted %d, want 10", n)
	}
	clk.Advance(30 * time.Second)
	if n := drain(t, s, tok, 50); n != 5 {
		t.Fatalf("after half a period admitted %d, want 5", n)
	}
	clk.Advance(3 * time.Second) // 0.5 unit: not enough
	r := post(t, s, CatalogSearchPath, tok, search())
	wantStatus(t, r, http.StatusTooManyRequests)
	wantHeader(t, r, "Retry-After", "3000")
	clk.Advance(10 * time.Minute)
	if n := drain(t, s, tok, 50); n != 10 {
		t.Fatalf("after 10 idle periods admitted %d, want 10 (no accumulation)", n)
	}
	// 10 at t0, 5 at t0+30s: the largest load within one minute is 15.
	if got := s.Stats().MaxWindowLoad["requests:PT1M"]; got != 15 {
		t.Errorf("MaxWindowLoad = %v, want 15", got)
	}
}

func TestPolicyRefusalChargesNothing(t *testing.T) {
	t.Parallel()
	t.Run("pu refuses, requests not charged", func(t *testing.T) {
		t.Parallel()
		s, _, tok := start(t, Config{Policies: []Policy{
			{Kind: KindRequests, Capacity: 100, Period: time.Minute},
			{Kind: KindPU, Capacity: 1.5, Period: time.Minute},
		}, HeaderMode: HeadersLegacy})
		r := post(t, s, ProcessPath, tok, processReq())
		wantStatus(t, r, http.StatusOK)
		wantHeader(t, r, "X-ProcessingUnits-Spent", "1")
		wantHeader(t, r, "X-RateLimit-Remaining", "99.0")
		wantHeader(t, r, "X-ProcessingUnits-Remaining", "0.5")
		for range 3 {
			r = post(t, s, ProcessPath, tok, processReq())
			wantStatus(t, r, http.StatusTooManyRequests)
			wantHeader(t, r, "Retry-After", "0")
			wantHeader(t, r, "X-RateLimit-Remaining", "99.0")
			wantHeader(t, r, "X-ProcessingUnits-Remaining", "0.5")
			// 0.5 PU missing at 1.5 PU/min: 20 s.
			wantHeader(t, r, "X-ProcessingUnits-Retry-After", "20000")
			wantHeader(t, r, "X-RateLimit-ViolatedPolicy", `{"samplingPeriod":"PT1M","capacity":1.5}`)
		}
		st := s.Stats()
		if st.PUSpent != 1 || st.RateLimitedByPolicy["pu:PT1M"] != 3 || st.MaxWindowLoad["requests:PT1M"] != 1 {
			t.Errorf("stats = %+v", st)
		}
	})
	t.Run("requests refuse, pu not charged", func(t *testing.T) {
		t.Parallel()
		s, _, tok := start(t, Config{Policies: []Policy{
			{Kind: KindRequests, Capacity: 1, Period: time.Minute},
			{Kind: KindPU, Capacity: 10, Period: time.Minute},
		}, HeaderMode: HeadersLegacy})
		wantStatus(t, post(t, s, ProcessPath, tok, processReq()), http.StatusOK)
		r := post(t, s, ProcessPath, tok, processReq())
		wantStatus(t, r, http.StatusTooManyRequests)
		wantHeader(t, r, "Retry-After", "60000")
		wantHeader(t, r, "X-ProcessingUnits-Remaining", "9")
		wantHeader(t, r, "X-ProcessingUnits-Retry-After", "0")
		wantHeader(t, r, "X-RateLimit-ViolatedPolicy", `{"samplingPeriod":"PT1M","capacity":1}`)
		if st := s.Stats(); st.PUSpent != 1 || st.MaxWindowLoad["pu:PT1M"] != 1 {
			t.Errorf("stats = %+v", st)
		}
	})
}

func TestPUBucketFloat32FourBands(t *testing.T) {
	t.Parallel()
	s, _, tok := start(t, Config{Policies: []Policy{{Kind: KindPU, Capacity: 100, Period: time.Minute}}, HeaderMode: HeadersLegacy})
	req := processReq()
	req.Output = sentinel.ProcessOutput{Width: 2500, Height: 2500}
	req.Evalscript = `//VERSION=3
function setup() { return { input: [{ bands: ["B02", "B03", "B04", "B08", "dataMask"] }],
  output: { bands: 4, sampleType: "FLOAT32" } }; }
function evaluatePixel(s) { return [s.B02, s.B03, s.B04, s.B08]; }`
	// By hand: 2500*2500/262144 = 23.841858 area x 4/3 bands (dataMask free) x 2
	// (FLOAT32) = 63.578288 PU.
	const want = 63.578288
	r := post(t, s, ProcessPath, tok, req)
	wantStatus(t, r, http.StatusOK)
	wantHeader(t, r, "X-ProcessingUnits-Spent", "63.578288")
	r = post(t, s, ProcessPath, tok, req)
	wantStatus(t, r, http.StatusTooManyRequests)
	// 100 - 63.578288 = 36.421712 left; 27.156576 missing at 100 PU/min: 16293.9 ms,
	// rounded up.
	wantHeader(t, r, "X-ProcessingUnits-Retry-After", "16294")
	wantHeader(t, r, "Retry-After", "0") // legacy: the requests' wait; there is no requests policy
	if st := s.Stats(); math.Abs(st.PUSpent-want) > 1e-6 || st.RateLimited != 1 {
		t.Errorf("PUSpent = %v, RateLimited = %d; want %v and 1 (429s are not charged)", st.PUSpent, st.RateLimited, want)
	}
}

func TestMonthlyBudget403(t *testing.T) {
	t.Parallel()
	s, clk, tok := start(t, Config{MonthlyPU: 2, TokenTTL: 60 * 24 * time.Hour})
	wantStatus(t, post(t, s, ProcessPath, tok, processReq()), http.StatusOK)
	wantStatus(t, post(t, s, ProcessPath, tok, processReq()), http.StatusOK)
	r := post(t, s, ProcessPath, tok, processReq())
	wantStatus(t, r, http.StatusForbidden)
	wantContains(t, r, "monthly processing units quota exceeded")
	// Catalog requests cost no PU: still served.
	wantStatus(t, post(t, s, CatalogSearchPath, tok, search()), http.StatusOK)
	if st := s.Stats(); st.QuotaExceeded != 1 || st.PUSpent != 2 || st.MonthlyPUSpent != 2 {
		t.Errorf("stats = %+v", st)
	}
	s.SetMonthlyPU(3)
	wantStatus(t, post(t, s, ProcessPath, tok, processReq()), http.StatusOK)
	wantStatus(t, post(t, s, ProcessPath, tok, processReq()), http.StatusForbidden)
	clk.Advance(25 * 24 * time.Hour) // into April: the budget resets
	wantStatus(t, post(t, s, ProcessPath, tok, processReq()), http.StatusOK)
	if st := s.Stats(); st.MonthlyPUSpent != 1 || st.PUSpent != 4 {
		t.Errorf("after the month changed: stats = %+v", st)
	}
}

func TestHeaderModes(t *testing.T) {
	t.Parallel()
	pols := []Policy{
		{Kind: KindRequests, Capacity: 2, Period: time.Minute},
		{Kind: KindPU, Capacity: 1, Period: time.Second},
	}
	t.Run("default is Retry-After only", func(t *testing.T) {
		t.Parallel()
		s, _, tok := start(t, Config{Policies: pols})
		r := post(t, s, ProcessPath, tok, processReq())
		wantStatus(t, r, http.StatusOK)
		wantHeader(t, r, "X-ProcessingUnits-Spent", "1")
		wantHeader(t, r, "X-RateLimit-Remaining", "")
		wantHeader(t, r, "X-ProcessingUnits-Remaining", "")
		r = post(t, s, ProcessPath, tok, processReq()) // PU refuses: 1 PU per 1 s
		wantStatus(t, r, http.StatusTooManyRequests)
		wantHeader(t, r, "Retry-After", "1000")
		for _, h := range []string{"X-RateLimit-Remaining", "X-ProcessingUnits-Remaining", "X-ProcessingUnits-Retry-After", "X-RateLimit-ViolatedPolicy"} {
			wantHeader(t, r, h, "")
		}
		// Requests refuse: 2 per minute, both spent: 30 s until the next one. The
		// PU bucket is full again by then, the larger wait is the requests'.
		s2, _, tok2 := start(t, Config{Policies: []Policy{{Kind: KindRequests, Capacity: 1, Period: 30 * time.Second}, {Kind: KindPU, Capacity: 1, Period: time.Second}}})
		wantStatus(t, post(t, s2, ProcessPath, tok2, processReq()), http.StatusOK)
		r = post(t, s2, ProcessPath, tok2, processReq())
		wantStatus(t, r, http.StatusTooManyRequests)
		wantHeader(t, r, "Retry-After", "30000") // max(30 s requests, 1 s PU)
		if st := s2.Stats(); st.RateLimitedByPolicy["requests:PT30S"] != 1 {
			t.Errorf("RateLimitedByPolicy = %v, want requests:PT30S once", st.RateLimitedByPolicy)
		}
	})
	t.Run("Legacy", func(t *testing.T) {
		t.Parallel()
		s, _, tok := start(t, Config{Policies: pols, HeaderMode: HeadersLegacy})
		r := post(t, s, ProcessPath, tok, processReq())
		wantStatus(t, r, http.StatusOK)
		wantHeader(t, r, "X-ProcessingUnits-Spent", "1")
		wantHeader(t, r, "X-RateLimit-Remaining", "1.0")
		wantHeader(t, r, "X-ProcessingUnits-Remaining", "0")
		r = post(t, s, ProcessPath, tok, processReq())
		wantStatus(t, r, http.StatusTooManyRequests)
		wantHeader(t, r, "Retry-After", "0") // the requests policy has room
		wantHeader(t, r, "X-ProcessingUnits-Retry-After", "1000")
		wantHeader(t, r, "X-RateLimit-Remaining", "1.0")
		wantHeader(t, r, "X-ProcessingUnits-Remaining", "0")
		wantHeader(t, r, "X-RateLimit-ViolatedPolicy", `{"samplingPeriod":"PT1S","capacity":1}`)
	})
	t.Run("None", func(t *testing.T) {
		t.Parallel()
		s, _, tok := start(t, Config{Policies: pols, HeaderMode: HeadersNone})
		r := post(t, s, ProcessPath, tok, processReq())
		wantStatus(t, r, http.StatusOK)
		wantHeader(t, r, "X-ProcessingUnits-Spent", "")
		r = post(t, s, ProcessPath, tok, processReq())
		wantStatus(t, r, http.StatusTooManyRequests)
		for _, h := range []string{"Retry-After", "X-RateLimit-Remaining", "X-ProcessingUnits-Remaining", "X-ProcessingUnits-Retry-After", "X-RateLimit-ViolatedPolicy"} {
			wantHeader(t, r, h, "")
		}
		// The simulator's own bookkeeping does not depend on headers.
		if st := s.Stats(); st.RateLimited != 1 || st.RateLimitedByPolicy["pu:PT1S"] != 1 {
			t.Errorf("stats = %+v, want one 429 by pu:PT1S", st)
		}
	})
}

func TestConcurrentClientsNeverExceedCapacity(t *testing.T) {
	t.Parallel()
	s, _, tok := start(t, Config{Policies: []Policy{
		{Kind: KindRequests, Capacity: 30, Period: time.Minute},
		{Kind: KindPU, Capacity: 1000, Period: time.Hour},
	}})
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := 0
	for range 8 {
		wg.Go(func() {
			for range 6 {
				r := post(t, s, ProcessPath, tok, processReq())
				if r.status == http.StatusOK {
					mu.Lock()
					ok++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	st := s.Stats()
	if ok != 30 || st.RateLimited != 18 || st.MaxWindowLoad["requests:PT1M"] != 30 || st.PUSpent != 30 {
		t.Errorf("ok = %d, stats = %+v; want 30 passed, 18 limited", ok, st)
	}
	if len(st.Served) != 1 || st.Served[RequestKey(processReq())] != 30 {
		t.Errorf("Served = %v, want one request served 30 times", st.Served)
	}
	if n := len(s.Requests()); n != 48 {
		t.Errorf("recorded %d requests, want 48", n)
	}
}

func TestSetPoliciesKeepsLevels(t *testing.T) {
	t.Parallel()
	s, _, tok := start(t, Config{Policies: []Policy{{Kind: KindRequests, Capacity: 5, Period: time.Minute}}})
	if n := drain(t, s, tok, 20); n != 5 {
		t.Fatalf("admitted %d, want 5", n)
	}
	s.SetPolicies([]Policy{{Kind: KindRequests, Capacity: 5, Period: time.Minute}, {Kind: KindRequests, Capacity: 3, Period: time.Second}})
	wantStatus(t, post(t, s, CatalogSearchPath, tok, search()), http.StatusTooManyRequests)
	s.SetPolicies(nil)
	wantStatus(t, post(t, s, CatalogSearchPath, tok, search()), http.StatusOK)
	if got := s.Stats().MaxWindowLoad["requests:PT1M"]; got != 5 {
		t.Errorf("MaxWindowLoad of a removed policy = %v, want 5", got)
	}
}

func TestISOPeriod(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{
		time.Second: "PT1S", time.Minute: "PT1M", time.Hour: "PT1H", 24 * time.Hour: "PT24H",
		31 * 24 * time.Hour: "PT744H", 90 * time.Second: "PT90S", 30 * 24 * time.Hour: "PT2592000S",
	} {
		if got := ISOPeriod(d); got != want {
			t.Errorf("ISOPeriod(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestParsePolicy(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]Policy{
		"requests:300:PT1M": {KindRequests, 300, time.Minute},
		"pu:30000:PT744H":   {KindPU, 30000, 31 * 24 * time.Hour},
		"pu:1.5:P31D":       {KindPU, 1.5, 31 * 24 * time.Hour}, // the older spelling
		"requests:9:PT24H":  {KindRequests, 9, 24 * time.Hour},
		"requests:9:PT1D":   {KindRequests, 9, 24 * time.Hour},
		"pu:10:90s":         {KindPU, 10, 90 * time.Second},
	} {
		if got, err := ParsePolicy(in); err != nil || got != want {
			t.Errorf("ParsePolicy(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "requests:300", "bytes:1:PT1M", "pu:x:PT1M", "pu:0:PT1M", "pu:1:fortnight"} {
		if _, err := ParsePolicy(in); err == nil {
			t.Errorf("ParsePolicy(%q) succeeded", in)
		}
	}
}
