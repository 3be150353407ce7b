package worker_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"shfleet/grid"
	"shfleet/internal/redistest"
	"shfleet/internal/s3test"
	"shfleet/jobs"
	"shfleet/sentinel/sentineltest"
	"shfleet/tasks"
	"shfleet/worker"
)

// checkOutputs asserts every DONE item's output is stored under root and equals
// the simulator's bytes for its request.
func checkOutputs(t *testing.T, f *fleet, job jobs.Job, tiles []grid.Tile, root string) []jobs.Item {
	t.Helper()
	items, err := f.store.Items(context.Background(), job.ID, jobs.ItemDone)
	if err != nil {
		t.Fatal(err)
	}
	byTile := map[string]grid.Tile{}
	for _, tl := range tiles {
		byTile[tl.Name] = tl
	}
	for _, it := range items {
		got, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(it.Outputs[0].Key)))
		if err != nil {
			t.Fatal(err)
		}
		want := sentineltest.ProcessBody(tasks.BuildProcessRequest(job.Spec, byTile[it.Tile], it), "default")
		if !bytes.Equal(got, want) {
			t.Fatalf("item %s: stored %d bytes, simulator served %d: not identical", it.ID, len(got), len(want))
		}
	}
	return items
}

func TestFaultsNeverStoreTruncatedOutputs(t *testing.T) {
	f := newFleet(t, 3, sentineltest.Config{Faults: sentineltest.Faults{Error5xxRate: 0.05, TruncateRate: 0.05,
		Latency: 5 * time.Millisecond, LatencyJitter: 20 * time.Millisecond, Seed: 7}})
	out := t.TempDir()
	spec, tiles := sampleSpec(t, out)
	job, err := f.ctl.Submit(context.Background(), spec, tiles)
	if err != nil {
		t.Fatal(err)
	}
	job = f.waitFinal(t, job.ID, 3*time.Minute)
	if job.Status != jobs.StatusDone {
		t.Fatalf("status %s %+v, want DONE despite faults", job.Status, job.Progress)
	}
	items := checkOutputs(t, f, job, tiles, out)
	st := f.sim.Stats()
	if st.Faults5xx+st.Truncated == 0 {
		t.Fatal("no fault was injected; the test proves nothing")
	}
	if files := outputFiles(t, out); len(files) != len(items) {
		t.Fatalf("%d files for %d items: a partial or temporary file was left", len(files), len(items))
	}
	for _, p := range outputFiles(t, out) {
		if strings.Contains(filepath.Base(p), ".tmp") {
			t.Fatalf("temporary file left: %s", p)
		}
	}
	t.Logf("%d items, %d 503s and %d truncated bodies survived", len(items), st.Faults5xx, st.Truncated)
}

func TestMonthlyQuotaPausesAndResumes(t *testing.T) {
	f := newFleet(t, 2, sentineltest.Config{MonthlyPU: 1.5})
	out := t.TempDir()
	spec, tiles := sampleSpec(t, out)
	ctx := context.Background()
	job, err := f.ctl.Submit(ctx, spec, tiles)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		job, err = f.store.Get(ctx, job.ID)
		if err != nil {
			t.Fatal(err)
		}
		if job.StoppedReason == jobs.ReasonOutOfPU {
			break
		}
		if time.Now().After(deadline) || job.Status.Final() {
			t.Fatalf("job never stopped for OUT_OF_PU: %s %+v", job.Status, job.Progress)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if want := tasks.NextMonth(time.Now()); !job.ResumeAt.Equal(want) {
		t.Fatalf("ResumeAt %s, want the 1st of next month %s", job.ResumeAt, want)
	}
	// No retry storm: once stopped, the simulator sees no more process requests.
	time.Sleep(300 * time.Millisecond)
	before := f.sim.Stats()
	time.Sleep(2 * time.Second)
	after := f.sim.Stats()
	if after.ProcessRequests != before.ProcessRequests {
		t.Fatalf("process requests went on after the 403: %d -> %d", before.ProcessRequests, after.ProcessRequests)
	}
	if after.QuotaExceeded > 2*4 { // at most the requests in flight when the month ran out
		t.Fatalf("%d 403 answers: the fleet kept asking", after.QuotaExceeded)
	}
	paused, err := f.ctl.Inspector.GetQueueInfo(tasks.ProcessQueue(job.Spec))
	if err != nil || !paused.Paused {
		t.Fatalf("queue not paused: %+v %v", paused, err)
	}

	// The budget is raised: resume and finish.
	f.sim.SetMonthlyPU(1000)
	if err := f.workers[0].Limiter.ResumeMonth(ctx); err != nil {
		t.Fatal(err)
	}
	if err := f.ctl.Resume(ctx, job.ID); err != nil {
		t.Fatal(err)
	}
	job = f.waitFinal(t, job.ID, 2*time.Minute)
	if job.Status != jobs.StatusDone || job.StoppedReason != "" {
		t.Fatalf("after resume: %s (%s) %+v, want DONE", job.Status, job.StoppedReason, job.Progress)
	}
	checkOutputs(t, f, job, tiles, out)
}

func TestRerunSkipsExistingOutputs(t *testing.T) {
	f := newFleet(t, 2, sentineltest.Config{})
	out := t.TempDir()
	spec, tiles := sampleSpec(t, out)
	spec.PathTemplate = "<tileName>/<date>/<outputId>.<format>" // no job id: a re-run maps to the same files
	ctx := context.Background()
	first, err := f.ctl.Submit(ctx, spec, tiles)
	if err != nil {
		t.Fatal(err)
	}
	first = f.waitFinal(t, first.ID, 2*time.Minute)
	served := f.sim.Stats().ProcessRequests
	if first.Status != jobs.StatusDone || served != first.Progress.Total {
		t.Fatalf("first run: %s, %d requests for %d items", first.Status, served, first.Progress.Total)
	}
	second, err := f.ctl.Submit(ctx, spec, tiles)
	if err != nil {
		t.Fatal(err)
	}
	second = f.waitFinal(t, second.ID, 2*time.Minute)
	if second.Status != jobs.StatusDone || second.Progress.Done != first.Progress.Done {
		t.Fatalf("second run: %s %+v", second.Status, second.Progress)
	}
	if got := f.sim.Stats().ProcessRequests; got != served {
		t.Fatalf("re-run sent %d process requests, want 0 (outputs exist)", got-served)
	}
	checkOutputs(t, f, second, tiles, out)
}

func TestS3Output(t *testing.T) {
	gw := s3test.Start(t)
	gw.CreateBucket(t, "results")
	f := newFleet(t, 2, sentineltest.Config{})
	spec, tiles := sampleSpec(t, "unused")
	spec.OutputURL = gw.URL("results")
	job, err := f.ctl.Submit(context.Background(), spec, tiles)
	if err != nil {
		t.Fatal(err)
	}
	job = f.waitFinal(t, job.ID, 2*time.Minute)
	if job.Status != jobs.StatusDone {
		t.Fatalf("status %s %+v", job.Status, job.Progress)
	}
	// versitygw's posix backend keeps each object as a file under root/bucket.
	checkOutputs(t, f, job, tiles, filepath.Join(gw.Root, "results"))
	if _, err := os.Stat(filepath.Join(gw.Root, "results", tasks.ManifestKey(job.ID))); err != nil {
		t.Fatalf("manifest not in the bucket: %v", err)
	}
}

func TestStricterServerPolicyIsLearned(t *testing.T) {
	// The workers believe 600 requests/min; the account really has 40.
	f := newFleet(t, 2, sentineltest.Config{Policies: []sentineltest.Policy{{Kind: "requests", Capacity: 40, Period: time.Minute}}})
	out := t.TempDir()
	spec, tiles := sampleSpec(t, out)
	job, err := f.ctl.Submit(context.Background(), spec, tiles)
	if err != nil {
		t.Fatal(err)
	}
	job = f.waitFinal(t, job.ID, 3*time.Minute)
	if job.Status != jobs.StatusDone {
		t.Fatalf("status %s %+v", job.Status, job.Progress)
	}
	st := f.sim.Stats()
	if st.RateLimited == 0 {
		t.Fatal("no 429 at all: the scenario did not exercise learning")
	}
	// After the first 429s the fleet adopts 40/min: the 429s stay a handful (the
	// requests in flight when the policy was learned), not one per item.
	if st.RateLimited > 2*4 {
		t.Fatalf("%d 429s for %d items: the fleet did not learn the stricter policy", st.RateLimited, job.Progress.Total)
	}
	if job.Progress.RateLimited != st.RateLimited {
		t.Fatalf("job counted %d 429s, simulator answered %d", job.Progress.RateLimited, st.RateLimited)
	}
	policies, err := f.workers[1].Limiter.Policies(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	learned := false
	for _, p := range policies {
		learned = learned || (p.Capacity == 40 && p.Period == time.Minute)
	}
	if !learned {
		t.Fatalf("policies %v do not include the server's requests:40:PT1M", policies)
	}
	checkOutputs(t, f, job, tiles, out)
	t.Logf("%d 429s for %d items", st.RateLimited, job.Progress.Total)
}

func TestGracefulShutdownHandsBackInFlightItems(t *testing.T) {
	f := newFleet(t, 1, sentineltest.Config{Faults: sentineltest.Faults{Latency: 400 * time.Millisecond}})
	out := t.TempDir()
	spec, tiles := sampleSpec(t, out)
	ctx := context.Background()
	job, err := f.ctl.Submit(ctx, spec, tiles)
	if err != nil {
		t.Fatal(err)
	}
	for {
		j, err := f.store.Get(ctx, job.ID)
		if err != nil {
			t.Fatal(err)
		}
		if j.Progress.Processing > 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	f.workers[0].Shutdown() // what SIGTERM does
	j, err := f.store.Get(ctx, job.ID)
	if err != nil {
		t.Fatal(err)
	}
	if j.Progress.Processing != 0 {
		t.Fatalf("%d items left PROCESSING after a graceful shutdown: %+v", j.Progress.Processing, j.Progress)
	}
	f.addWorker(t)
	job = f.waitFinal(t, job.ID, 2*time.Minute)
	if job.Status != jobs.StatusDone {
		t.Fatalf("status %s %+v", job.Status, job.Progress)
	}
	checkOutputs(t, f, job, tiles, out)
}

func TestTwoJobsAtOnceBothProgress(t *testing.T) {
	f := newFleet(t, 2, sentineltest.Config{})
	ctx := context.Background()
	outA, outB := t.TempDir(), t.TempDir()
	specA, tiles := sampleSpec(t, outA)
	specB, _ := sampleSpec(t, outB)
	specB.From, specB.To = specB.From.AddDate(0, 1, 0), specB.To.AddDate(0, 1, 0) // another month
	a, err := f.ctl.Submit(ctx, specA, tiles)
	if err != nil {
		t.Fatal(err)
	}
	b, err := f.ctl.Submit(ctx, specB, tiles)
	if err != nil {
		t.Fatal(err)
	}
	a, b = f.waitFinal(t, a.ID, 2*time.Minute), f.waitFinal(t, b.ID, 2*time.Minute)
	for _, j := range []jobs.Job{a, b} {
		if j.Status != jobs.StatusDone || j.Progress.Done != j.Progress.Total || j.Progress.Total == 0 {
			t.Fatalf("job %s: %s %+v", j.ID, j.Status, j.Progress)
		}
	}
	checkOutputs(t, f, a, tiles, outA)
	checkOutputs(t, f, b, tiles, outB)
	if st := f.sim.Stats(); st.ProcessRequests != a.Progress.Total+b.Progress.Total || st.RateLimited != 0 {
		t.Fatalf("simulator: %d process requests for %d items, %d 429s", st.ProcessRequests, a.Progress.Total+b.Progress.Total, st.RateLimited)
	}
}

func TestWorkerRefusesEvictingRedis(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{Args: []string{"--maxmemory-policy", "allkeys-lru"}})
	c := rs.Client()
	defer c.Close()
	err := worker.CheckRedis(context.Background(), c)
	if err == nil || !strings.Contains(err.Error(), "noeviction") {
		t.Fatalf("CheckRedis = %v, want a refusal naming noeviction", err)
	}
	rs.Stop()
	if err := worker.CheckRedis(context.Background(), c); err == nil || !strings.Contains(err.Error(), "REDIS_URL") {
		t.Fatalf("CheckRedis on a stopped server = %v, want an unreachable error naming REDIS_URL", err)
	}
}
