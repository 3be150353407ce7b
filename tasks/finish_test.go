package tasks

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"shfleet/internal/redistest"
	"shfleet/jobs"
)

// TestFeederFinishesAJobItsLastWorkerCouldNot: a job's items are all final but
// the worker that finished the last one died before writing the manifest (its
// items are completed here by hand, without FinishJob). The job stays
// PROCESSING; the feeder queues one finish task for it (and no second one while
// it is queued); running that task writes the manifest and only then makes the
// job DONE.
func TestFeederFinishesAJobItsLastWorkerCouldNot(t *testing.T) {
	rs := redistest.Start(t)
	rdb := rs.Client()
	t.Cleanup(func() { rdb.Close() })
	ctx := context.Background()
	dir := t.TempDir()
	store := &jobs.Store{Redis: rdb, Prefix: redistest.Prefix(t)}
	insp := asynq.NewInspectorFromRedisClient(rdb)
	queue := asynq.NewClientFromRedisClient(rdb)
	t.Cleanup(func() { queue.Close() })

	job := startedJob(t, store, "f0", 3, jobs.Spec{OutputURL: "file://" + dir})
	items, err := jobs.CollectItems(store.AllItems(ctx, job.ID, jobs.ItemPending))
	if err != nil || len(items) != 3 {
		t.Fatalf("%d PENDING items, %v; want 3", len(items), err)
	}
	for _, it := range items {
		store.BeginItem(ctx, job.ID, it.ID)
		// JSON outputs: the STAC items list them; no GeoTIFF to mosaic (the
		// test writes no output file).
		key := job.ID + "/f0/" + it.From.Format(time.DateOnly) + "/default.json"
		if _, err := store.CompleteItem(ctx, job.ID, it.ID, jobs.Result{PU: 0.1, Outputs: []jobs.OutputRecord{{Key: key, Size: 10}}}); err != nil {
			t.Fatal(err)
		}
	}
	manifest := filepath.Join(dir, ManifestKey(job.ID))
	if j := mustJob(t, store, job.ID); j.Status != jobs.StatusProcessing || j.Ending != jobs.StatusDone {
		t.Fatalf("job %s ending %q, want PROCESSING ending DONE", j.Status, j.Ending)
	}

	f, err := NewFeeder(FeederConfig{Jobs: store, Queue: queue, Inspector: insp, Holder: "a",
		Interval: 100 * time.Millisecond, LeaseTTL: time.Second, MinWindow: 1, MaxWindow: 10, FinishGrace: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := f.Tick(ctx); err != nil {
			t.Fatal(err)
		}
	}
	qname := QueueName(store.Prefix, ProcessQueue(job.Spec))
	info, err := insp.GetTaskInfo(qname, FinishTaskID(job.ID))
	if err != nil {
		t.Fatalf("no finish task queued for the ending job: %v", err)
	}
	if qi, _ := insp.GetQueueInfo(qname); qi.Pending != 1 {
		t.Errorf("queue holds %d tasks after two ticks, want the one finish task", qi.Pending)
	}
	if _, err := os.Stat(manifest); !os.IsNotExist(err) {
		t.Fatalf("manifest exists before the finish task ran (%v)", err)
	}

	hd := Handlers{Redis: rdb, Jobs: store}.withDefaults()
	h := &hd
	if err := h.HandleFinish(ctx, asynq.NewTask(info.Type, info.Payload)); err != nil {
		t.Fatal(err)
	}
	j := mustJob(t, store, job.ID)
	if j.Status != jobs.StatusDone || j.Ending != "" {
		t.Fatalf("after the finish task: %s ending %q, want DONE", j.Status, j.Ending)
	}
	b, err := os.ReadFile(manifest)
	if err != nil {
		t.Fatalf("job DONE without its manifest: %v", err)
	}
	var idx struct {
		Outputs int64 `json:"outputs"`
	}
	if err := json.Unmarshal(b, &idx); err != nil || idx.Outputs != 3 {
		t.Errorf("manifest lists %d outputs (%v), want 3: %s", idx.Outputs, err, b)
	}
	if _, err := os.Stat(filepath.Join(dir, STACDir(job.ID), "catalog.json")); err != nil {
		t.Errorf("job DONE without its STAC catalog: %v", err)
	}
	// Running it again (a re-delivered task) changes nothing.
	if err := h.HandleFinish(ctx, asynq.NewTask(info.Type, info.Payload)); err != nil {
		t.Fatal(err)
	}
	if j := mustJob(t, store, job.ID); j.Status != jobs.StatusDone {
		t.Errorf("second finish: %s", j.Status)
	}
}
