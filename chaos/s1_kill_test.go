//go:build chaos

package chaos

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"shfleet/internal/redistest"
	"shfleet/jobs"
)

// TestKillWorkers kills random worker processes with SIGKILL every few seconds
// during a job of 500+ items, restarting each after a moment. asynq recovers the
// killed workers' tasks when their leases expire; the handler returns their
// PROCESSING items to PENDING (at most jobs.MaxReturns times) and the job ends
// DONE with every output stored exactly once.
func TestKillWorkers(t *testing.T) {
	rs := redistest.Start(t)
	// Latency keeps items in flight so kills hit downloads, and the job long
	// enough for several kills.
	f := newFleet(t, rs.URL(), "-latency", "700ms", "-jitter", "800ms")
	const n = 4
	for i := 0; i < n; i++ {
		f.startWorker()
	}
	out := t.TempDir()
	spec, tiles := jobSpec(t, bigArea, june, aug, out)
	start := time.Now()
	job, err := f.ctl.Submit(context.Background(), spec, tiles)
	if err != nil {
		t.Fatal(err)
	}
	job = f.waitJob(job.ID, 2*time.Minute, "processing", func(j jobs.Job) bool { return j.Status == jobs.StatusProcessing })
	t.Logf("job %s: %d tiles, %d items, %.1f PU estimated", job.ID, len(tiles), job.Progress.Total, float64(job.Progress.EstimatedMilliPU)/1000)
	if job.Progress.Total < 500 {
		t.Fatalf("%d items; the scenario needs >= 500", job.Progress.Total)
	}

	// Kill one random worker every 2.5-4.5 s until 80% of the items are
	// finished, at most 10 kills; restart it 1-2 s later.
	rng := rand.New(rand.NewPCG(1, 2))
	slots := append([]*proc(nil), f.workers...)
	kills := 0
	for kills < 10 {
		time.Sleep(time.Duration(2500+rng.IntN(2000)) * time.Millisecond)
		j := f.job(job.ID)
		if j.Status.Final() || j.Progress.Done+j.Progress.Failed >= j.Progress.Total*8/10 {
			break
		}
		i := rng.IntN(n)
		slots[i].kill()
		kills++
		t.Logf("kill -9 %s (%d/%d items finished)", slots[i].name, j.Progress.Done+j.Progress.Failed, j.Progress.Total)
		time.Sleep(time.Duration(1000+rng.IntN(1000)) * time.Millisecond)
		slots[i] = f.startWorker()
	}
	t.Logf("%d workers killed; waiting for lease recovery and the rest of the job", kills)
	job = f.waitFinal(job.ID, 6*time.Minute)
	v := f.verify("kill-9", job, tiles, out, start)
	if kills == 0 {
		t.Fatal("no worker was killed: the job finished too fast to test anything")
	}
	if v.Failed > 0 {
		// An item whose worker was killed three times fails by design
		// (jobs.MaxReturns); report it, it is not hidden.
		t.Errorf("%d items FAILED (killed more than %d times?): %v", v.Failed, jobs.MaxReturns, v.FailedErrors)
	}
	f.assertClean(v)
	t.Logf("%d kills, %d items returned after a kill, %d re-downloads", kills, v.Returns, v.Duplicates)
}
