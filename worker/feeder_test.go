package worker_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"shfleet/internal/fleettest"
	"shfleet/jobs"
	"shfleet/quota"
	"shfleet/tasks"
)

// fastPolicies never bind in these tests: the feeder's cap sizes the window.
var fastPolicies = []quota.Policy{
	{Kind: quota.Requests, Capacity: 600000, Period: time.Minute},
	{Kind: quota.PU, Capacity: 6000000, Period: time.Minute},
}

// syntheticJob creates a job on the sample's tiles with perTile items each
// (one per day from June 1st, as the analysis would make them) and starts it,
// without a catalog search: the feeder, not the analysis, is under test.
func syntheticJob(t *testing.T, f *fleettest.Fleet, perTile int) jobs.Job {
	t.Helper()
	ctx := context.Background()
	spec, tiles := fleettest.SampleSpec(t, "file://"+t.TempDir())
	spec.AutoStart = false
	spec.To = spec.From.AddDate(0, 0, perTile)
	job, err := f.Store.Create(ctx, spec, tiles)
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, len(tiles))
	var items []jobs.Item
	for i, tl := range tiles {
		names[i] = tl.Name
		for d := range perTile {
			from := spec.From.AddDate(0, 0, d)
			items = append(items, jobs.Item{ID: jobs.ItemID(tl.Name, from), Tile: tl.Name, From: from, To: from.AddDate(0, 0, 1), EstimatedMilliPU: 50})
		}
	}
	if _, err := f.Store.RecordAnalysis(ctx, job.ID, names, items, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Ctl.Start(ctx, job.ID); err != nil {
		t.Fatal(err)
	}
	job, err = f.Store.Get(ctx, job.ID)
	if err != nil {
		t.Fatal(err)
	}
	return job
}

// TestFeederQueueNeverHoldsMoreThanTheWindow: a job of 2000 items with a
// window cap of 20 runs through two workers of 4; sampled every 10 ms, asynq's
// queue never holds more than the window plus the tasks still finishing (a
// task whose item is DONE stays active until its handler returns: at most one
// per worker slot, 8), instead of the whole job; every item is DONE, and each
// was processed once (one ItemFinished per item, one request per item).
func TestFeederQueueNeverHoldsMoreThanTheWindow(t *testing.T) {
	var finished atomic.Int64
	f := fleettest.Start(t, fleettest.Options{Workers: 2, Concurrency: 4, Policies: fastPolicies,
		Feed:  tasks.FeederConfig{MaxWindow: 20, Interval: 50 * time.Millisecond, LeaseTTL: time.Second},
		Hooks: tasks.Hooks{ItemFinished: func(string, jobs.ItemStatus, float64) { finished.Add(1) }}})
	insp := asynq.NewInspectorFromRedisClient(f.Client(t))
	job := syntheticJob(t, f, 250) // the sample's 8 tiles x 250 days = 2000 items
	if job.Progress.Total != 2000 || job.Status != jobs.StatusProcessing {
		t.Fatalf("setup: %s with %d items, want PROCESSING with 2000", job.Status, job.Progress.Total)
	}
	queue := tasks.QueueName("", tasks.ProcessQueue(job.Spec))

	var mu sync.Mutex
	peak, samples := 0, 0
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			qi, err := insp.GetQueueInfo(queue)
			if err != nil {
				continue // not created before the first enqueue
			}
			mu.Lock()
			peak = max(peak, qi.Pending+qi.Active+qi.Scheduled+qi.Retry)
			samples++
			mu.Unlock()
		}
	}()
	job = f.WaitFinal(t, job.ID, 5*time.Minute)
	close(stop)
	<-done
	if job.Status != jobs.StatusDone || job.Progress.Done != 2000 {
		t.Fatalf("job %s %+v, want DONE with 2000 items", job.Status, job.Progress)
	}
	mu.Lock()
	defer mu.Unlock()
	t.Logf("queue peak %d tasks over %d samples", peak, samples)
	if samples < 10 {
		t.Fatalf("only %d samples of the queue: nothing was measured", samples)
	}
	// Window 20 + 2 workers x 4 slots of finishing tasks = 28.
	if peak > 28 {
		t.Errorf("the queue held %d tasks at its peak; the window is 20 (+8 finishing)", peak)
	}
	if n := finished.Load(); n != 2000 {
		t.Errorf("%d items finished, want 2000: each exactly once", n)
	}
	if st := f.Sim.Stats(); st.ProcessRequests != 2000 {
		t.Errorf("simulator served %d process requests, want 2000", st.ProcessRequests)
	}
}

// TestFeederLeaderStoppedMidJob: of two workers, the one whose feeder leads is
// stopped mid-job; the other's feeder takes over and the job ends DONE with
// every item processed exactly once.
func TestFeederLeaderStoppedMidJob(t *testing.T) {
	var finished atomic.Int64
	f := fleettest.Start(t, fleettest.Options{Workers: 2, Concurrency: 4, Policies: fastPolicies,
		Feed:  tasks.FeederConfig{MaxWindow: 16, Interval: 50 * time.Millisecond, LeaseTTL: time.Second},
		Hooks: tasks.Hooks{ItemFinished: func(string, jobs.ItemStatus, float64) { finished.Add(1) }}})
	job := syntheticJob(t, f, 250) // 8 tiles x 250 days = 2000 items
	f.WaitFor(t, job.ID, time.Minute, "a tenth done", func(j jobs.Job) bool { return j.Progress.Done >= 200 })
	var leader, other int = -1, -1
	for deadline := time.Now().Add(10 * time.Second); leader < 0; time.Sleep(50 * time.Millisecond) {
		for i, w := range f.Workers {
			if w.Feeder.Leader() {
				leader, other = i, 1-i
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("no feeder leads while the job runs")
		}
	}
	f.Workers[leader].Shutdown()
	at := f.WaitFor(t, job.ID, time.Minute, "the job", func(j jobs.Job) bool { return true })
	if at.Status.Final() {
		t.Fatalf("the job ended before its feeder's leader stopped (%+v): nothing was tested", at.Progress)
	}
	job = f.WaitFinal(t, job.ID, 3*time.Minute)
	if !f.Workers[other].Feeder.Leader() {
		t.Error("the remaining worker's feeder does not lead")
	}
	t.Logf("leader stopped at %d/%d done", at.Progress.Done, at.Progress.Total)
	if job.Status != jobs.StatusDone || job.Progress.Done != 2000 || job.Progress.Failed != 0 {
		t.Fatalf("job %s %+v, want DONE with 2000 items", job.Status, job.Progress)
	}
	if n := finished.Load(); n != 2000 {
		t.Errorf("%d items finished, want 2000: each exactly once", n)
	}
	if st := f.Sim.Stats(); st.ProcessRequests != 2000 {
		t.Errorf("simulator served %d process requests, want 2000", st.ProcessRequests)
	}
}
