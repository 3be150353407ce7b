package worker_test

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"shfleet/grid"
	"shfleet/internal/fleettest"
	"shfleet/internal/s3test"
	"shfleet/jobs"
	"shfleet/output"
	"shfleet/sentinel"
	"shfleet/sentinel/sentineltest"
	"shfleet/tasks"
)

// batchFleetWith is batchFleet with the options changed by edit.
func batchFleetWith(t *testing.T, edit func(*fleettest.Options)) (*fleettest.Fleet, s3test.Gateway) {
	t.Helper()
	gw := s3test.Start(t)
	gw.CreateBucket(t, "batch")
	opts := fleettest.Options{Workers: 2, BatchPoll: 30 * time.Millisecond, Sim: sentineltest.Config{
		Batch: true, BatchStep: 5 * time.Millisecond,
		BatchS3: sentineltest.BatchS3{Endpoint: gw.Endpoint, Region: s3test.Region, AccessKey: s3test.AccessKey, SecretKey: s3test.SecretKey}}}
	if edit != nil {
		edit(&opts)
	}
	return fleettest.Start(t, opts), gw
}

// onlyBatch is the fleet's single batch request.
func onlyBatch(t *testing.T, f *fleettest.Fleet) sentineltest.BatchInfo {
	t.Helper()
	bs := f.Sim.Batches()
	if len(bs) != 1 {
		t.Fatalf("the simulator has %d batch requests, want 1: %+v", len(bs), bs)
	}
	return bs[0]
}

// waitSim polls the simulator until ok holds (at most a minute).
func waitSim(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !ok(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waited a minute for %s", what)
		}
	}
}

// bucketFiles counts the files under the batch bucket's request directory.
func bucketFiles(t *testing.T, gw s3test.Gateway, request string) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(filepath.Join(gw.Root, "batch", request), func(_ string, d os.DirEntry, err error) error {
		if errors.Is(err, os.ErrNotExist) {
			return filepath.SkipDir
		}
		if err == nil && d.Type().IsRegular() {
			n++
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestBatchEngineCancelWhileProcessing: one of the sample's 8 tiles is slow;
// once the 7 others are in the bucket the job is canceled. The request gets
// one stop and ends STOPPED (USER_ACTION), the job CANCELED with its 7 done
// items, and the slow tile, released after the stop, is never delivered: 7
// tiles written, 7 files in the bucket.
func TestBatchEngineCancelWhileProcessing(t *testing.T) {
	f, gw := batchFleetWith(t, nil)
	ctx := context.Background()
	spec, tiles := sample20(t, gw.URL("batch"))
	spec.Engine, spec.AOIGeometry = jobs.EngineBatch, aoiGeometry(t)
	slow := tiles[0].Name
	f.Sim.SetBatchHold(slow, true)
	job, err := f.Ctl.Submit(ctx, spec, tiles)
	if err != nil {
		t.Fatal(err)
	}
	f.WaitFor(t, job.ID, 2*time.Minute, "7 tiles done", func(j jobs.Job) bool { return j.Progress.Done == 7 })
	if err := f.Ctl.Cancel(ctx, job.ID); err != nil {
		t.Fatal(err)
	}
	waitSim(t, "the request STOPPED", func() bool { return onlyBatch(t, f).Status == sentinel.BatchStopped })
	f.Sim.SetBatchHold(slow, false)
	// Give a wrongly running request 40 simulator steps to deliver the tile.
	time.Sleep(40 * 5 * time.Millisecond)
	b := onlyBatch(t, f)
	st := f.Sim.Stats()
	job, err = f.Store.Get(ctx, job.ID)
	if err != nil {
		t.Fatal(err)
	}
	if b.StoppedReason != sentinel.BatchStoppedUserAction || st.BatchStops != 1 {
		t.Errorf("request %s (%s) after %d stops; want STOPPED by USER_ACTION after 1", b.Status, b.StoppedReason, st.BatchStops)
	}
	if st.BatchTilesDelivered != 7 || bucketFiles(t, gw, b.ID) != 7 {
		t.Errorf("%d tiles delivered, %d files in the bucket; want 7 and 7 (none after the stop)", st.BatchTilesDelivered, bucketFiles(t, gw, b.ID))
	}
	for _, tl := range f.Sim.BatchTiles(b.ID) {
		if tl.Name == slow && tl.Status == sentineltest.TileDone {
			t.Errorf("the slow tile %s is DONE after the stop", slow)
		}
	}
	if job.Status != jobs.StatusCanceled || job.Progress.Done != 7 {
		t.Errorf("job %s %+v; want CANCELED with 7 done", job.Status, job.Progress)
	}
}

// TestBatchEngineCancelWhileAnalysing: a job canceled while the service
// analyses its request sends one stop; the analysis completes first (the
// request stays ANALYSING until then), then the request is STOPPED without a
// tile processed: 0 delivered, all 8 tiles PENDING, the job CANCELED.
func TestBatchEngineCancelWhileAnalysing(t *testing.T) {
	f, gw := batchFleetWith(t, nil)
	ctx := context.Background()
	spec, tiles := sample20(t, gw.URL("batch"))
	spec.Engine, spec.AOIGeometry = jobs.EngineBatch, aoiGeometry(t)
	f.Sim.HoldBatchAnalysis(true)
	job, err := f.Ctl.Submit(ctx, spec, tiles)
	if err != nil {
		t.Fatal(err)
	}
	waitSim(t, "the request ANALYSING", func() bool {
		bs := f.Sim.Batches()
		return len(bs) == 1 && bs[0].Status == sentinel.BatchAnalysing
	})
	if err := f.Ctl.Cancel(ctx, job.ID); err != nil {
		t.Fatal(err)
	}
	waitSim(t, "the stop", func() bool { return f.Sim.Stats().BatchStops == 1 })
	// Three more polls while the analysis runs: none may send a second stop.
	calls := f.Sim.Stats().BatchRequests
	waitSim(t, "three more polls", func() bool { return f.Sim.Stats().BatchRequests >= calls+3 })
	if b := onlyBatch(t, f); b.Status != sentinel.BatchAnalysing {
		t.Fatalf("request %s right after the stop; want still ANALYSING (the analysis completes first)", b.Status)
	}
	f.Sim.HoldBatchAnalysis(false)
	waitSim(t, "the request STOPPED", func() bool { return onlyBatch(t, f).Status == sentinel.BatchStopped })
	time.Sleep(40 * 5 * time.Millisecond) // 40 steps for a wrong start to show
	b := onlyBatch(t, f)
	st := f.Sim.Stats()
	if b.Status != sentinel.BatchStopped || b.StoppedReason != sentinel.BatchStoppedUserAction || st.BatchStops != 1 || st.BatchTilesDelivered != 0 {
		t.Errorf("request %s (%s), %d stops, %d tiles delivered; want STOPPED by USER_ACTION, 1 stop, 0 tiles", b.Status, b.StoppedReason, st.BatchStops, st.BatchTilesDelivered)
	}
	simTiles := f.Sim.BatchTiles(b.ID)
	pending := 0
	for _, tl := range simTiles {
		if tl.Status == sentineltest.TilePending {
			pending++
		}
	}
	if len(simTiles) != 8 || pending != 8 {
		t.Errorf("%d tiles, %d PENDING; want the sample's 8, all PENDING", len(simTiles), pending)
	}
	if job, _ = f.Store.Get(ctx, job.ID); job.Status != jobs.StatusCanceled {
		t.Errorf("job %s; want CANCELED", job.Status)
	}
}

// TestBatchEngineCreateIsIdempotent: the first save of the request's id fails
// (a worker dying right after the create); the retried round finds the
// request by its description and the job ends DONE with exactly one request
// created in the simulator.
func TestBatchEngineCreateIsIdempotent(t *testing.T) {
	var calls atomic.Int32
	f, gw := batchFleetWith(t, func(o *fleettest.Options) {
		o.Hooks.BatchCreated = func(job, request string) error {
			if calls.Add(1) == 1 {
				return errors.New("injected: the worker died before saving the request id")
			}
			return nil
		}
	})
	ctx := context.Background()
	spec, tiles := sample20(t, gw.URL("batch"))
	spec.Engine, spec.AOIGeometry = jobs.EngineBatch, aoiGeometry(t)
	job, err := f.Ctl.Submit(ctx, spec, tiles)
	if err != nil {
		t.Fatal(err)
	}
	job = f.WaitFinal(t, job.ID, 2*time.Minute)
	b := onlyBatch(t, f)
	if job.Status != jobs.StatusDone || job.Progress.Done != 8 {
		t.Fatalf("job %s %+v (%s); want DONE with 8 done", job.Status, job.Progress, job.Error)
	}
	if n := f.Sim.Stats().BatchCreated; n != 1 || calls.Load() != 1 || b.Description != "shfleet job "+job.ID {
		t.Fatalf("%d requests created, %d creates seen by the hook, description %q; want 1, 1, %q", n, calls.Load(), b.Description, "shfleet job "+job.ID)
	}
	checkBatchManifest(t, gw, job, b.ID, tiles)
}

// checkBatchManifest waits for the job's manifest.json at the bucket's root
// and checks it lists one entry per tile at <request>/<tile>/default.tif,
// whose PU add up to what the job spent.
func checkBatchManifest(t *testing.T, gw s3test.Gateway, job jobs.Job, request string, tiles []grid.Tile) {
	t.Helper()
	p := filepath.Join(gw.Root, "batch", tasks.ManifestKey(job.ID))
	var data []byte
	waitSim(t, "the manifest", func() bool {
		var err error
		data, err = os.ReadFile(p)
		return err == nil
	})
	// manifest.json indexes the parts (one output per line) with totals.
	var m struct {
		Parts   []string               `json:"parts"`
		Outputs int64                  `json:"outputs"`
		Entries []output.ManifestEntry `json:"-"`
	}
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("manifest %s: %v", p, err)
	}
	for _, part := range m.Parts {
		b, err := os.ReadFile(filepath.Join(gw.Root, "batch", filepath.FromSlash(part)))
		if err != nil {
			t.Fatalf("manifest part: %v", err)
		}
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			var e output.ManifestEntry
			if err := json.Unmarshal([]byte(line), &e); err != nil {
				t.Fatalf("manifest part %s: %q: %v", part, line, err)
			}
			m.Entries = append(m.Entries, e)
		}
	}
	slices.SortFunc(m.Entries, func(a, b output.ManifestEntry) int { return strings.Compare(a.Tile, b.Tile) })
	if int(m.Outputs) != len(m.Entries) {
		t.Errorf("manifest counts %d outputs, its parts hold %d", m.Outputs, len(m.Entries))
	}
	if len(m.Entries) != len(tiles) {
		t.Fatalf("manifest has %d entries, want one per tile (%d)", len(m.Entries), len(tiles))
	}
	var pu float64
	for i, e := range m.Entries {
		// Entries are sorted by tile, as the tiles are.
		if want := request + "/" + tiles[i].Name + "/default.tif"; e.Tile != tiles[i].Name || e.Key != want || e.Size <= 0 {
			t.Errorf("manifest entry %d: %+v, want tile %s at %s with a size", i, e, tiles[i].Name, want)
		}
		pu += e.PU
	}
	if spent := float64(job.Progress.SpentMilliPU) / 1000; math.Abs(pu-spent) > 0.0005 {
		t.Errorf("manifest PU add up to %.4f, the job spent %.3f", pu, spent)
	}
}

// TestBatchEngineOutOfPUPausesThenResumes: a month budget of 1 PU lets the
// service charge 3 of the sample's tiles (0.953674/3 = 0.317891 PU each: 3 are
// 0.953674, a 4th would be 1.2716) and stop the request for OUT_OF_PU; the job
// stays PROCESSING paused OUT_OF_PU until the 1st of next month with 3 tiles
// done. With the budget raised, `enqueue resume` starts the request again and
// the job ends DONE with 8 tiles from the one request.
func TestBatchEngineOutOfPUPausesThenResumes(t *testing.T) {
	f, gw := batchFleetWith(t, func(o *fleettest.Options) { o.Sim.MonthlyPU = 1 })
	ctx := context.Background()
	spec, tiles := sample20(t, gw.URL("batch"))
	spec.Engine, spec.AOIGeometry = jobs.EngineBatch, aoiGeometry(t)
	job, err := f.Ctl.Submit(ctx, spec, tiles)
	if err != nil {
		t.Fatal(err)
	}
	job = f.WaitFor(t, job.ID, 2*time.Minute, "paused OUT_OF_PU with 3 done", func(j jobs.Job) bool {
		return j.StoppedReason == jobs.ReasonOutOfPU && j.Progress.Done == 3
	})
	b := onlyBatch(t, f)
	now := time.Now().UTC()
	reset := time.Date(now.Year(), now.Month()+1, 1, 0, 0, 0, 0, time.UTC)
	if job.Status != jobs.StatusProcessing || !job.ResumeAt.Equal(reset) || b.Status != sentinel.BatchStopped || b.StoppedReason != sentinel.BatchStoppedOutOfPU {
		t.Fatalf("job %s resume at %s, request %s (%s); want PROCESSING until %s, STOPPED for OUT_OF_PU", job.Status, job.ResumeAt, b.Status, b.StoppedReason, reset)
	}
	f.Sim.SetMonthlyPU(0)
	if err := f.Ctl.Resume(ctx, job.ID); err != nil {
		t.Fatal(err)
	}
	job = f.WaitFinal(t, job.ID, 2*time.Minute)
	if job.Status != jobs.StatusDone || job.Progress.Done != 8 || len(f.Sim.Batches()) != 1 {
		t.Fatalf("after resume: job %s %+v, %d requests; want DONE with 8 done from 1 request", job.Status, job.Progress, len(f.Sim.Batches()))
	}
}

// TestBatchEngineStartAfterEstimate: a batch job submitted without starting
// (enqueue estimate, submit --no-start) has its request analysed only: the job
// ANALYSIS_DONE with the sample's 8 items and no tile processed; `enqueue
// start` starts that same request and the job ends DONE. The job asked for
// COGs, and the request carries cogOutput.
func TestBatchEngineStartAfterEstimate(t *testing.T) {
	f, gw := batchFleetWith(t, nil)
	ctx := context.Background()
	spec, tiles := sample20(t, gw.URL("batch"))
	spec.Engine, spec.AOIGeometry, spec.AutoStart, spec.COG = jobs.EngineBatch, aoiGeometry(t), false, true
	job, err := f.Ctl.Submit(ctx, spec, tiles)
	if err != nil {
		t.Fatal(err)
	}
	job = f.WaitFor(t, job.ID, 2*time.Minute, "ANALYSIS_DONE", func(j jobs.Job) bool { return j.Status == jobs.StatusAnalysisDone })
	b := onlyBatch(t, f)
	// 8 tiles of 500 x 500 px, 3 bands UINT8 SIMPLE: 0.953674/3 = 0.317891 PU
	// each, 318 milli-PU rounded up, 2544 for 8.
	if job.Progress.Total != 8 || job.Progress.EstimatedMilliPU != 2544 || b.Status != sentinel.BatchAnalysisDone || f.Sim.Stats().BatchTilesDelivered != 0 || !b.COG {
		t.Fatalf("job %+v, request %s (COG %v), %d tiles delivered; want 8 items estimated at 2544 milli-PU, ANALYSIS_DONE with cogOutput, 0 tiles",
			job.Progress, b.Status, b.COG, f.Sim.Stats().BatchTilesDelivered)
	}
	if job, err = f.Ctl.Start(ctx, job.ID); err != nil || job.Status != jobs.StatusProcessing {
		t.Fatalf("start: %s, %v; want PROCESSING", job.Status, err)
	}
	job = f.WaitFinal(t, job.ID, 2*time.Minute)
	if job.Status != jobs.StatusDone || job.Progress.Done != 8 || onlyBatch(t, f).ID != b.ID || f.Sim.Stats().BatchTilesDelivered != 8 {
		t.Fatalf("after start: job %s %+v, %d tiles delivered; want DONE with 8 done from request %s", job.Status, job.Progress, f.Sim.Stats().BatchTilesDelivered, b.ID)
	}
}
