package tasks

import (
	"context"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"shfleet/grid"
	"shfleet/internal/redistest"
	"shfleet/jobs"
	"shfleet/quota"
)

func TestWindow(t *testing.T) {
	req300 := quota.Policy{Kind: quota.Requests, Capacity: 300, Period: time.Minute}
	pu300 := quota.Policy{Kind: quota.PU, Capacity: 300, Period: time.Minute}
	month := quota.Policy{Kind: quota.PU, Capacity: 30000, Period: quota.Month}
	cases := []struct {
		name     string
		policies []quota.Policy
		perItem  int64 // milli-PU
		min, max int
		want     int
	}{
		// 300/min = 5 items/s, x 45 s = 225.
		{"requests bind", []quota.Policy{req300}, 1000, 8, 5000, 225},
		// PU: 300 PU/min = 5 PU/s at 2 PU per item = 2.5 items/s, x 45 s = 112.5 -> 113.
		{"PU binds", []quota.Policy{req300, pu300}, 2000, 8, 5000, 113},
		// The monthly budget is no rate: requests alone, 225.
		{"monthly budget ignored", []quota.Policy{req300, month}, 100000, 8, 5000, 225},
		// Without an estimate the PU policy cannot say anything: 225.
		{"no estimate", []quota.Policy{req300, pu300}, 0, 8, 5000, 225},
		// 6/min = 0.1/s x 45 = 4.5 -> 5, below the fleet's 16 slots: 16.
		{"floor is the fleet's concurrency", []quota.Policy{{Kind: quota.Requests, Capacity: 6, Period: time.Minute}}, 1000, 16, 5000, 16},
		// 3000/s x 45 s = 135,000: the cap, 5000.
		{"cap", []quota.Policy{{Kind: quota.Requests, Capacity: 3000, Period: time.Second}}, 1000, 16, 5000, 5000},
		{"no policy: the cap", nil, 1000, 16, 5000, 5000},
		// The cap wins over the floor.
		{"cap below floor", []quota.Policy{req300}, 1000, 64, 20, 20},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := Window(c.policies, c.perItem, DefaultFeedHorizon, c.min, c.max); got != c.want {
				t.Errorf("Window = %d, want %d", got, c.want)
			}
		})
	}
}

// feederJob creates and starts a job of one tile with n items.
func feederJob(t *testing.T, store *jobs.Store, tile string, n int) jobs.Job {
	return feederJobOn(t, store, tile, n, jobs.EngineProcess)
}

// feederJobOn is feederJob on an engine.
func feederJobOn(t *testing.T, store *jobs.Store, tile string, n int, engine string) jobs.Job {
	return startedJob(t, store, tile, n, jobs.Spec{OutputURL: "file:///tmp/out", Engine: engine})
}

// startedJob creates and starts a job of one tile with n items, one a day from
// 2025-06-01, from spec (collection, evalscript and range filled in).
func startedJob(t *testing.T, store *jobs.Store, tile string, n int, spec jobs.Spec) jobs.Job {
	t.Helper()
	ctx := context.Background()
	from := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	spec.Collection, spec.Evalscript, spec.From, spec.To = "sentinel-2-l2a", "//VERSION=3", from, from.AddDate(0, 0, n)
	job, err := store.Create(ctx, spec, []grid.Tile{tileAt(tile, 14.0, 46.2)})
	if err != nil {
		t.Fatal(err)
	}
	items := make([]jobs.Item, n)
	for i := range items {
		d := from.AddDate(0, 0, i)
		items[i] = jobs.Item{ID: jobs.ItemID(tile, d), Tile: tile, From: d, To: d.AddDate(0, 0, 1), EstimatedMilliPU: 100}
	}
	if _, err := store.RecordAnalysis(ctx, job.ID, []string{tile}, items, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Start(ctx, job.ID); err != nil {
		t.Fatal(err)
	}
	job, _ = store.Get(ctx, job.ID)
	return job
}

// TestFeederLeaderWindowAndTakeover: of two feeders only the lease holder
// feeds; it fills the window and no more, tops it up as items finish, and when
// it dies (stops renewing, keeps its lease) the other takes over once the lease
// expires and re-queues the items the dead leader had taken but not queued.
// No worker runs: the queue keeps what the feeders put in.
func TestFeederLeaderWindowAndTakeover(t *testing.T) {
	rs := redistest.Start(t)
	rdb := rs.Client()
	t.Cleanup(func() { rdb.Close() })
	ctx := context.Background()
	store := &jobs.Store{Redis: rdb, Prefix: redistest.Prefix(t)}
	insp := asynq.NewInspectorFromRedisClient(rdb)
	queue := asynq.NewClientFromRedisClient(rdb)
	t.Cleanup(func() { queue.Close() })
	mk := func(holder string) *Feeder {
		f, err := NewFeeder(FeederConfig{Jobs: store, Queue: queue, Inspector: insp, Holder: holder,
			Interval: 100 * time.Millisecond, LeaseTTL: time.Second, MinWindow: 10, MaxWindow: 10})
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	a, b := mk("a"), mk("b")
	job := feederJob(t, store, "t0", 30)
	qname := QueueName(store.Prefix, ProcessQueue(job.Spec))
	pending := func() int {
		t.Helper()
		qi, err := insp.GetQueueInfo(qname)
		if err != nil {
			t.Fatal(err)
		}
		return qi.Pending
	}

	if n, err := a.Tick(ctx); err != nil || n != 10 {
		t.Fatalf("leader's first tick enqueued %d, %v; want the window, 10", n, err)
	}
	if n, err := b.Tick(ctx); err != nil || n != 0 || b.Leader() {
		t.Fatalf("second feeder enqueued %d (leader %v), %v; want nothing", n, b.Leader(), err)
	}
	if n, _ := a.Tick(ctx); n != 0 {
		t.Errorf("full window topped up by %d", n)
	}
	if got := pending(); got != 10 {
		t.Fatalf("queue holds %d, want 10", got)
	}

	// A worker would finish 4 items and drop their tasks: do it by hand.
	sched, _ := jobs.CollectItems(store.AllItems(ctx, job.ID, jobs.ItemScheduled))
	for _, it := range sched[:4] {
		store.BeginItem(ctx, job.ID, it.ID)
		store.CompleteItem(ctx, job.ID, it.ID, jobs.Result{PU: 0.1})
		if err := insp.DeleteTask(qname, ProcessTaskID(job.ID, it.ID, 0)); err != nil {
			t.Fatal(err)
		}
	}
	if n, _ := a.Tick(ctx); n != 4 {
		t.Errorf("top-up after 4 items finished: %d, want 4", n)
	}
	// 4 DONE, 10 in flight: the leader "dies" after taking 3 more items (a
	// lower window would not let it; here the test takes them as it would)
	// and before queueing them. It never renews nor releases its lease.
	lost, err := store.Feed(ctx, job.ID, 3)
	if err != nil || len(lost) != 3 {
		t.Fatalf("feed 3: %d, %v", len(lost), err)
	}
	if n, _ := b.Tick(ctx); n != 0 || b.Leader() {
		t.Fatalf("the lease is still the dead leader's, yet b enqueued %d (leader %v)", n, b.Leader())
	}
	time.Sleep(1100 * time.Millisecond) // the 1 s lease expires
	if _, err := b.Tick(ctx); err != nil || !b.Leader() {
		t.Fatalf("b did not take over: leader %v, %v", b.Leader(), err)
	}
	for _, it := range lost {
		if _, err := insp.GetTaskInfo(qname, ProcessTaskID(job.ID, it.ID, 0)); err != nil {
			t.Errorf("item %s taken by the dead leader has no task after the takeover: %v", it.ID, err)
		}
	}
	// 10 queued before + the 3 re-queued; SCHEDULED 13 of 30, DONE 4.
	if got, p := pending(), mustJob(t, store, job.ID).Progress; got != 13 || p.Scheduled != 13 || p.Done != 4 || p.Pending != 13 {
		t.Errorf("after takeover: queue %d, progress %+v", got, p)
	}

	// A second job shares the window: 10 / 2 jobs = 5 each. The first holds 13
	// already (over its share) and gets none. A batch job, PROCESSING too, is
	// its poll task's business: no share, no task, dropped from the index.
	job2 := feederJob(t, store, "t1", 20)
	batch := feederJobOn(t, store, "t2", 20, jobs.EngineBatch)
	if n, _ := b.Tick(ctx); n != 5 {
		t.Errorf("second job got %d, want its share, 5", n)
	}
	if p := mustJob(t, store, batch.ID).Progress; p.Scheduled != 0 || p.Pending != 20 {
		t.Errorf("batch job fed: %+v", p)
	}
	if p := mustJob(t, store, job2.ID).Progress; p.Scheduled != 5 {
		t.Errorf("second job %+v, want 5 SCHEDULED", p)
	}

	// Paused: nothing more for job2 even once its tasks are gone.
	if err := store.Pause(ctx, job2.ID, jobs.ReasonOutOfPU, time.Time{}); err != nil {
		t.Fatal(err)
	}
	c := Controller{Jobs: store, Queue: queue, Inspector: insp}
	if err := c.Cancel(ctx, job.ID); err != nil {
		t.Fatal(err)
	}
	if n, _ := b.Tick(ctx); n != 0 {
		t.Errorf("paused and canceled jobs got %d tasks", n)
	}
	// Cancel deleted the first job's 13 queued tasks; job2's 5 stay.
	if got := pending(); got != 5 {
		t.Errorf("queue holds %d after the cancel, want job2's 5", got)
	}
	if active, _ := store.ActiveJobs(ctx); len(active) != 1 || active[0] != job2.ID {
		t.Errorf("active %v, want only %s", active, job2.ID)
	}
}

func mustJob(t *testing.T, s *jobs.Store, id string) jobs.Job {
	t.Helper()
	j, err := s.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return j
}
