package worker_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"shfleet/internal/fleettest"
	"shfleet/jobs"
	"shfleet/sentinel/sentineltest"
	"shfleet/tasks"
	"shfleet/worker"
)

// The demo's embedded Redis (worker --embedded-redis) is miniredis: the limiter,
// token and job scripts and asynq must all run on it.
func TestEndToEndOnEmbeddedRedis(t *testing.T) {
	mr := miniredis.RunT(t)
	// Before the workers: cleanups run last-first, so the directory goes after
	// the workers stopped (the job's end files are written after its status
	// turns final).
	outDir := t.TempDir()
	sim := sentineltest.NewServer(sentineltest.Config{Policies: []sentineltest.Policy{{Kind: "requests", Capacity: 600, Period: time.Minute}}})
	defer sim.Close()
	newClient := func() *redis.Client {
		c := redis.NewClient(&redis.Options{Addr: mr.Addr()})
		t.Cleanup(func() { c.Close() })
		return c
	}
	for i := 0; i < 2; i++ {
		w, err := worker.New(worker.Config{Redis: newClient(), Sentinel: sim.ClientConfig(), Policies: fleettest.DefaultPolicies, Concurrency: 4})
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Check(context.Background(), true); err != nil {
			t.Fatal(err)
		}
		if err := w.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(w.Shutdown)
	}
	rdb := newClient()
	store := &jobs.Store{Redis: rdb}
	ctl := tasks.Controller{Jobs: store, Queue: asynq.NewClientFromRedisClient(rdb), Inspector: asynq.NewInspectorFromRedisClient(rdb)}
	out := outDir
	spec, tiles := fleettest.SampleSpec(t, "file://"+out)
	job, err := ctl.Submit(context.Background(), spec, tiles)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(2 * time.Minute); !job.Status.Final() && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if job, err = store.Get(context.Background(), job.ID); err != nil {
			t.Fatal(err)
		}
	}
	if job.Status != jobs.StatusDone || job.Progress.Done != job.Progress.Total || job.Progress.Total == 0 {
		t.Fatalf("job %s %+v, want DONE with every item done", job.Status, job.Progress)
	}
	// The worker that ended the job moved its records into the manifest (parts
	// and index) before the status became DONE: the stream commands work on the
	// embedded Redis too.
	idx := filepath.Join(out, tasks.ManifestKey(job.ID))
	if _, err := os.Stat(idx); err != nil {
		t.Fatalf("job DONE without its manifest: %v", err)
	}
	if n, err := store.RecordsBacklog(context.Background(), job.ID); err != nil || n != 0 {
		t.Errorf("%d records left in Redis (%v), want 0", n, err)
	}
	if j, _ := store.Get(context.Background(), job.ID); j.Drained.Outputs != int64(job.Progress.Total) || j.Drained.Parts != 1 {
		t.Errorf("drained %+v, want %d outputs in 1 part", j.Drained, job.Progress.Total)
	}
	if _, err := os.Stat(idx); err != nil {
		t.Errorf("manifest: %v", err)
	}
	if st := sim.Stats(); st.RateLimited != 0 || st.TokensIssued != 1 || st.ProcessRequests != job.Progress.Total {
		t.Fatalf("simulator saw %d 429s, %d tokens, %d process requests for %d items", st.RateLimited, st.TokensIssued, st.ProcessRequests, job.Progress.Total)
	}
}
