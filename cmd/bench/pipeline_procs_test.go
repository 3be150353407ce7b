//go:build benchprocs

package main

// The pipeline rows build cmd/worker and cmd/shsim and run them as processes
// (and the analysis row re-executes this test binary as its child): they are
// smoke runs of the benchmarks, not tests of a claim, so they stay out of
// `make test` and run with `make bench-smoke` (go test -tags benchprocs).

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"shfleet/jobs"
	"shfleet/quota"
)

// TestMain runs the analysis child when the analysis benchmark execs this test
// binary as it (see childEnv), and the tests otherwise.
func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" && len(os.Args) > 1 && os.Args[1] == analysisChildCommand {
		if err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

var (
	buildOnce sync.Once
	binDir    string
	bins      binaries
	buildErr  error
)

// testBinaries builds cmd/worker and cmd/shsim once per test run.
func testBinaries(t *testing.T) binaries {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "shfleet-bench-test-bin-")
		if buildErr == nil {
			bins, buildErr = buildBinaries(context.Background(), binDir)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return bins
}

// tinyAOI is one or two utm-10km tiles near Ljubljana.
var tinyAOI = [4]float64{14.45, 46.02, 14.5, 46.05}

// TestFleetRowTiny runs a fleet row with 2 worker processes on a tiny job under a
// 2-requests-per-second policy and checks the row is computed from the
// simulator's counters.
func TestFleetRowTiny(t *testing.T) {
	b := testBinaries(t)
	o := FleetOptions{Workers: 2, Concurrency: 2, Latency: -1, Jitter: -1, AOI: tinyAOI,
		From: DefaultFleetFrom, To: DefaultFleetFrom.AddDate(0, 0, 10), Timeout: time.Minute}.withDefaults()
	sc := FleetScenario{Name: "tiny", Policies: []string{"requests:2:PT1S", "pu:1000:PT1M"}, Resolution: 200, Evalscript: evalRGB8}
	res, err := runFleetRow(context.Background(), o, b, sc, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", res)
	if res.Status != jobs.StatusDone || res.Items == 0 || res.ProcessOK != res.Items || res.CatalogRequests == 0 {
		t.Errorf("job %s: %d items, %d process requests OK, %d catalog requests; want DONE, one request per item", res.Status, res.Items, res.ProcessOK, res.CatalogRequests)
	}
	if res.TokenRequests != 1 {
		t.Errorf("%d token requests; the two worker processes must share one", res.TokenRequests)
	}
	// No --policy: both workers read the simulator's contract (one fetch for the
	// two, at least one more call for the remaining units).
	if res.Sources["account"] != 2 || res.Source != "account: requests:2:PT1S, pu:1000:PT1M" || res.AuxRequests < 1 {
		t.Errorf("policy sources %v at start, %q at end, %d rate-limit API calls; want account x2 and the simulator's two policies",
			res.Sources, res.Source, res.AuxRequests)
	}
	if res.Binding != (quota.Policy{Kind: quota.Requests, Capacity: 2, Period: time.Second}) || !(res.Overall > 0) || res.Elapsed <= 0 || res.Ideal <= 0 {
		t.Errorf("row not computed: binding %s, overall %v, elapsed %s, ideal %s", res.Binding, res.Overall, res.Elapsed, res.Ideal)
	}
	if res.Items+res.CatalogRequests > 3 && (res.AfterWindow <= 0 || !(res.AfterBurst > 0)) {
		t.Errorf("after-burst rate not computed: %v over %s", res.AfterBurst, res.AfterWindow)
	}
	var buf bytes.Buffer
	if err := WriteFleetTable(&buf, []FleetResult{res}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "| tiny | retry-after | account's contract | requests:2:PT1S | 2 x 2 |") {
		t.Errorf("table lacks the row:\n%s", buf.String())
	}
}

// TestAnalysisTiny splits and submits a small AOI in the child process (this test
// binary, through TestMain) and runs its analysis.
func TestAnalysisTiny(t *testing.T) {
	o := AnalysisOptions{BBox: [4]float64{14.3, 45.9, 14.8, 46.2}, Days: 10, Workers: 1, Concurrency: 4, Latency: -1, Jitter: -1,
		Timeout: time.Minute}.withDefaults()
	res, err := runAnalysis(context.Background(), o, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", res)
	if res.Tiles < 4 || res.Groups < 1 || res.Groups > res.Tiles || res.Items < res.Tiles {
		t.Errorf("%d tiles, %d groups, %d items; want several tiles, at least one item each", res.Tiles, res.Groups, res.Items)
	}
	if res.CatalogRequests < res.Groups || res.CatalogRequests != res.JobCatalogRequests {
		t.Errorf("catalog requests: simulator %d, job %d, groups %d", res.CatalogRequests, res.JobCatalogRequests, res.Groups)
	}
	if res.ChildVmHWM <= 0 || res.RedisSubmit <= 0 || res.RedisAnalysis <= 0 || res.CatalogCache <= 0 || res.Analysis <= 0 {
		t.Errorf("not measured: child VmHWM %d kB, Redis %d + %d bytes (cache %d), analysis %s",
			res.ChildVmHWM, res.RedisSubmit, res.RedisAnalysis, res.CatalogCache, res.Analysis)
	}
	var buf bytes.Buffer
	if err := WriteAnalysisTable(&buf, []AnalysisResult{res}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), fmt.Sprintf("| 14.3,45.9 → 14.8,46.2 | utm-10km | %d | %d |", res.Tiles, res.Groups)) {
		t.Errorf("table lacks the row:\n%s", buf.String())
	}
}

// TestMemoryRowTiny streams full-size answers of 50x50 px tiles through one
// worker process and checks the bytes and the RSS figures.
func TestMemoryRowTiny(t *testing.T) {
	b := testBinaries(t)
	o := MemoryOptions{AOI: tinyAOI, From: DefaultMemoryFrom, To: DefaultMemoryFrom.AddDate(0, 0, 10), Timeout: time.Minute}.withDefaults()
	res, err := runMemoryRow(context.Background(), o, b, MemoryRow{Concurrency: 2, Resolution: 200}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", res)
	if res.TilePx != 50 || res.ItemBytes != 50*50*16 {
		t.Errorf("tile %d px, %d bytes per answer; want 50 px, %d", res.TilePx, res.ItemBytes, 50*50*16)
	}
	if res.Done == 0 || res.Done != res.Items || res.BytesWritten != int64(res.Done)*res.ItemBytes {
		t.Errorf("%d of %d items, %d bytes written; want all, %d bytes each", res.Done, res.Items, res.BytesWritten, res.ItemBytes)
	}
	// VmHWM may lag a sampled VmRSS slightly (the kernel syncs its per-thread RSS
	// counters lazily), so it is only checked to be there.
	if res.IdleRSS <= 0 || res.PeakRSS < res.IdleRSS || res.VmHWM <= 0 || res.Samples == 0 {
		t.Errorf("RSS: idle %d, peak %d, VmHWM %d kB, %d samples", res.IdleRSS, res.PeakRSS, res.VmHWM, res.Samples)
	}
	var buf bytes.Buffer
	if err := WriteMemoryTable(&buf, []MemoryResult{res}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "| 2 | 50x50 px, 4 x FLOAT32 |") {
		t.Errorf("table lacks the row:\n%s", buf.String())
	}
}
