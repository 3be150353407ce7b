//go:build chaos

package chaos

import (
	"context"
	"testing"
	"time"

	"shfleet/internal/redistest"
	"shfleet/jobs"
	"shfleet/tasks"
)

// TestCancel cancels a job mid-way: after the requests in flight, no process
// request reaches the simulator, the job is CANCELED and its tasks are gone
// from the queue.
func TestCancel(t *testing.T) {
	rs := redistest.Start(t)
	f := newFleet(t, rs.URL(), "-latency", "500ms", "-jitter", "500ms")
	const workers, concurrency = 3, 4
	for i := 0; i < workers; i++ {
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
	job = f.waitJob(job.ID, 2*time.Minute, "a fifth of the items done", func(j jobs.Job) bool {
		return j.Status.Final() || j.Progress.Total > 0 && j.Progress.Done >= j.Progress.Total/5
	})
	if job.Status.Final() {
		t.Fatalf("job finished before the cancel: %s", job.Status)
	}
	if !f.enqueue("cancel", job.ID) {
		if err := f.ctl.Cancel(ctx, job.ID); err != nil {
			t.Fatal(err)
		}
	}
	// Counted from the moment the cancel has returned: requests sent while the
	// CLI was still starting are not "after the cancel". From here each of the
	// workers' slots can send at most the one request it had already admitted.
	atCancel := f.sim.Stats()
	t.Logf("canceled at %d/%d items done, %d processing", job.Progress.Done, job.Progress.Total, job.Progress.Processing)
	time.Sleep(3 * time.Second) // the requests in flight land
	settled := f.sim.Stats()
	time.Sleep(4 * time.Second)
	later := f.sim.Stats()
	if n := settled.ProcessRequests - atCancel.ProcessRequests; n > workers*concurrency {
		t.Errorf("%d process requests after the cancel, more than the %d that can be in flight", n, workers*concurrency)
	}
	if later.ProcessRequests != settled.ProcessRequests {
		t.Errorf("process requests went on after the cancel: %d -> %d", settled.ProcessRequests, later.ProcessRequests)
	}
	job = f.job(job.ID)
	if job.Status != jobs.StatusCanceled {
		t.Errorf("status %s, want CANCELED", job.Status)
	}
	qi, err := f.insp.GetQueueInfo(tasks.ProcessQueue(job.Spec))
	if err != nil {
		t.Fatal(err)
	}
	if left := qi.Pending + qi.Scheduled + qi.Retry + qi.Active; left != 0 {
		t.Errorf("%d tasks of the canceled job still in the queue: %+v", left, qi)
	}
	v := f.verify("cancel", job, tiles, out, start)
	if v.Temp != 0 {
		t.Errorf("%d temporary files left by canceled downloads: %v", v.Temp, v.TempFiles)
	}
	t.Logf("%d process requests after the cancel (in flight); %d outputs written for items the cancel caught unrecorded", settled.ProcessRequests-atCancel.ProcessRequests, v.Extra)
}

// TestSigtermWorker stops one of three workers with SIGTERM mid-job (shutdown
// timeout 1 s, responses slower than that): its in-flight items finish or go
// back to the queue — none is left PROCESSING for lease recovery to find — and
// the other workers complete the job.
func TestSigtermWorker(t *testing.T) {
	rs := redistest.Start(t)
	f := newFleet(t, rs.URL(), "-latency", "1500ms", "-jitter", "1500ms")
	victim := f.startWorker("--shutdown-timeout", "1s", "--concurrency", "8")
	f.startWorker()
	f.startWorker()
	out := t.TempDir()
	spec, tiles := jobSpec(t, smallArea, june, july, out)
	ctx := context.Background()
	start := time.Now()
	job, err := f.ctl.Submit(ctx, spec, tiles)
	if err != nil {
		t.Fatal(err)
	}
	job = f.waitJob(job.ID, 2*time.Minute, "items in flight", func(j jobs.Job) bool {
		return j.Status.Final() || j.Progress.Done >= 10 && j.Progress.Processing > 0
	})
	if job.Status.Final() {
		t.Fatalf("job finished before the SIGTERM: %s", job.Status)
	}
	var active []string
	if servers, err := f.insp.Servers(); err == nil {
		for _, s := range servers {
			if s.PID == victim.cmd.Process.Pid {
				for _, w := range s.ActiveWorkers {
					active = append(active, w.TaskID)
				}
			}
		}
	}
	processing := map[string]jobs.Item{} // by task id
	items, err := jobs.CollectItems(f.store.AllItems(ctx, job.ID, jobs.ItemProcessing))
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range items {
		processing[tasks.ProcessTaskID(job.ID, it.ID, job.Restarts)] = it
	}
	t.Logf("SIGTERM %s at %d/%d done; it reported %d active tasks at its last heartbeat", victim.name, job.Progress.Done, job.Progress.Total, len(active))
	victim.terminate(t, 30*time.Second)
	if victim.err != nil {
		t.Errorf("%s exited with %v after SIGTERM, want a clean exit (log %s)", victim.name, victim.err, f.dir)
	}
	// Right after the exit: each of its items that was PROCESSING is DONE, back
	// in the queue, or PROCESSING again under a new attempt by another worker.
	handedBack := 0
	for _, id := range active {
		before, ok := processing[id]
		if !ok {
			continue // finished between the heartbeat and the snapshot
		}
		now, err := f.store.Item(ctx, job.ID, before.ID)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case now.Status == jobs.ItemProcessing && now.Attempts == before.Attempts:
			t.Errorf("item %s still PROCESSING (attempt %d) after its worker exited", now.ID, now.Attempts)
		case now.Status != jobs.ItemDone:
			handedBack++
		}
	}
	t.Logf("%d of its items handed back to the queue", handedBack)
	// An item the stopped worker left PROCESSING is found so by the task's
	// next run (re-queued by asynq or recovered after its lease) and returned
	// as stuck: no kill happens here, so any return is such an item.
	job = f.waitFinal(job.ID, 4*time.Minute)
	v := f.verify("sigterm", job, tiles, out, start)
	f.assertClean(v)
	if v.Returns != 0 {
		t.Errorf("%d items were found still PROCESSING after the SIGTERMed worker exited (returned as stuck): it did not release them; see %s", v.Returns, f.dir)
	}
	if lost := f.grepLogs("could not release the item"); lost != "" {
		t.Logf("releases that failed during the shutdown:\n%s", lost)
	}
	if v.Duplicates != 0 {
		t.Logf("%d requests served twice: items whose download the shutdown cut off", v.Duplicates)
	}
}
