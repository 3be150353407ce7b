//go:build chaos

package chaos

import (
	"context"
	"testing"
	"time"

	"shfleet/internal/redistest"
	"shfleet/jobs"
	"shfleet/quota"
	"shfleet/tasks"
)

// TestMonthlyBudget lets the simulator's monthly PU budget run out mid-job: the
// fleet stops admitting, the job shows OUT_OF_PU with the reset date, the queue
// is paused and the simulator sees no further process requests. After the
// budget is raised (the simulator restarted with a bigger one), ResumeMonth and
// Resume finish the job.
func TestMonthlyBudget(t *testing.T) {
	rs := redistest.Start(t)
	// ~0.1 PU per item: 5 PU is about a third of the job.
	f := newFleet(t, rs.URL(), "-pu-month", "5", "-latency", "100ms", "-jitter", "100ms")
	for i := 0; i < 3; i++ {
		f.startWorker()
	}
	out := t.TempDir()
	spec, tiles := jobSpec(t, smallArea, june, aug, out)
	ctx := context.Background()
	start := time.Now()
	job, err := f.ctl.Submit(ctx, spec, tiles)
	if err != nil {
		t.Fatal(err)
	}
	job = f.waitJob(job.ID, 3*time.Minute, "OUT_OF_PU", func(j jobs.Job) bool {
		return j.Status.Final() || j.StoppedReason == jobs.ReasonOutOfPU
	})
	if job.StoppedReason != jobs.ReasonOutOfPU {
		t.Fatalf("job ended %s without running out of PU: %+v", job.Status, job.Progress)
	}
	t.Logf("OUT_OF_PU at %d/%d items done (%.1f PU estimated for the job), resume at %s",
		job.Progress.Done, job.Progress.Total, float64(job.Progress.EstimatedMilliPU)/1000, job.ResumeAt.Format(time.RFC3339))
	if want := quota.MonthReset(time.Now()); !job.ResumeAt.Equal(want) {
		t.Errorf("ResumeAt %s, want the quota reset %s", job.ResumeAt, want)
	}
	if job.Progress.Done >= job.Progress.Total {
		t.Fatalf("every item done before the budget ran out; the scenario proves nothing")
	}
	// Requests in flight when the month ran out may still land; then nothing.
	time.Sleep(time.Second)
	before := f.sim.Stats()
	time.Sleep(4 * time.Second)
	after := f.sim.Stats()
	if after.ProcessRequests != before.ProcessRequests {
		t.Errorf("the simulator got %d process requests in the 4 s after OUT_OF_PU: admissions did not stop", after.ProcessRequests-before.ProcessRequests)
	}
	if after.QuotaExceeded > 3*4 {
		t.Errorf("%d 403 answers: more than the requests in flight, the fleet kept asking", after.QuotaExceeded)
	}
	qi, err := f.insp.GetQueueInfo(tasks.ProcessQueue(job.Spec))
	if err != nil || !qi.Paused {
		t.Errorf("process queue not paused after OUT_OF_PU: %+v %v", qi, err)
	}
	stopped := f.job(job.ID)
	t.Logf("while stopped: %d 403s, job %s %+v", after.QuotaExceeded, stopped.Status, stopped.Progress)

	// The budget is raised: shsim has no runtime setter, so it restarts on the
	// same address with a bigger budget (the workers' tokens are then unknown to
	// it: they must fetch new ones after a 401).
	f.sim.Restart("-pu-month", "100000", "-latency", "100ms", "-jitter", "100ms")
	// `enqueue resume` clears the account's month flag and resumes the job.
	if !f.enqueue("resume", job.ID) {
		if err := f.limiter().ResumeMonth(ctx); err != nil {
			t.Fatal(err)
		}
		if err := f.ctl.Resume(ctx, job.ID); err != nil {
			t.Fatal(err)
		}
	}
	job = f.waitFinal(job.ID, 4*time.Minute)
	v := f.verify("monthly-budget", job, tiles, out, start)
	f.assertClean(v)
	if job.StoppedReason != "" {
		t.Errorf("job DONE but still marked %s", job.StoppedReason)
	}
	if v.Duplicates != 0 {
		t.Errorf("%d process requests served twice: %v", v.Duplicates, v.DuplicateKeys)
	}
}
