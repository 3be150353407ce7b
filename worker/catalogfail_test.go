package worker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"shfleet/internal/fleettest"
	"shfleet/internal/redistest"
	"shfleet/jobs"
	"shfleet/sentinel/sentineltest"
	"shfleet/tasks"
	"shfleet/worker"
)

// The server's message for a refused catalog search, as Sentinel Hub words a
// bad collection.
const catalogRefusal = "Collection sentinel-2-l2a is not available for this account"

// catalogGate sits in front of the simulator: while status is not 0, catalog
// searches that refuse() accepts are answered with that status and a Sentinel
// Hub JSON error body; everything else goes to the simulator.
type catalogGate struct {
	sim     *sentineltest.Server
	status  atomic.Int32
	refuse  func(bbox []float64) bool // nil: every search
	refused atomic.Int32
}

func (g *catalogGate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	status := int(g.status.Load())
	if status != 0 && strings.Contains(r.URL.Path, "/catalog/") {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		var req struct {
			BBox []float64 `json:"bbox"`
		}
		_ = json.Unmarshal(body, &req)
		if g.refuse == nil || g.refuse(req.BBox) {
			g.refused.Add(1)
			b, _ := json.Marshal(map[string]any{"error": map[string]any{
				"status": status, "reason": http.StatusText(status), "message": catalogRefusal, "code": "COMMON_BAD_PAYLOAD"}})
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			_, _ = w.Write(b)
			return
		}
	}
	g.sim.ServeHTTP(w, r)
}

type gatedFleet struct {
	gate  *catalogGate
	store *jobs.Store
	ctl   tasks.Controller
	insp  *asynq.Inspector
	queue *asynq.Client
}

// startGatedFleet runs two workers against the simulator behind a catalogGate,
// and a controller that puts 2 tiles in each catalog group (the sample job's 8
// tiles share one 1° cell, so this makes 4 groups).
func startGatedFleet(t *testing.T) *gatedFleet {
	t.Helper()
	rs := redistest.Start(t)
	var simPolicies []sentineltest.Policy
	for _, p := range fleettest.DefaultPolicies {
		simPolicies = append(simPolicies, sentineltest.Policy{Kind: string(p.Kind), Capacity: p.Capacity, Period: p.Period})
	}
	g := &catalogGate{sim: sentineltest.NewHandler(sentineltest.Config{Policies: simPolicies})}
	hs := httptest.NewServer(g)
	t.Cleanup(hs.Close)
	cfg := g.sim.ClientConfig()
	cfg.BaseURL, cfg.TokenURL = hs.URL, hs.URL+sentineltest.TokenPath
	for range 2 {
		c := rs.Client()
		t.Cleanup(func() { c.Close() })
		w, err := worker.New(worker.Config{Redis: c, Sentinel: cfg, Policies: fleettest.DefaultPolicies, Concurrency: 4, ShutdownTimeout: 5 * time.Second})
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
	rdb := rs.Client()
	t.Cleanup(func() { rdb.Close() })
	f := &gatedFleet{gate: g, store: &jobs.Store{Redis: rdb}, insp: asynq.NewInspectorFromRedisClient(rdb), queue: asynq.NewClientFromRedisClient(rdb)}
	f.ctl = tasks.Controller{Jobs: f.store, Queue: f.queue, Inspector: f.insp, GroupSize: 2}
	return f
}

// waitFinal polls until the job is final (counts, not time, are asserted).
func (f *gatedFleet) waitFinal(t *testing.T, id string) jobs.Job {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		j, err := f.store.Get(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if j.Status.Final() {
			return j
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s still %s %+v", id, j.Status, j.Progress)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitArchived waits until the catalog queue holds n archived tasks (asynq
// archives a task just after its handler returned) and returns the queue.
func (f *gatedFleet) waitArchived(t *testing.T, n int) *asynq.QueueInfo {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		qi, err := f.insp.GetQueueInfo(tasks.QueueCatalog)
		if err != nil {
			t.Fatal(err)
		}
		if qi.Archived >= n || time.Now().After(deadline) {
			return qi
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestCatalog400FailsJobAndRestartRecovers: every catalog search of a job is
// refused with a 400, so the job ends FAILED with the server's message instead
// of staying ANALYSING forever; after the cause is fixed, a restart re-runs the
// groups under fresh task ids and the job ends DONE.
func TestCatalog400FailsJobAndRestartRecovers(t *testing.T) {
	out := t.TempDir() // before the fleet: removed after its workers stop (cleanups run last first)
	f := startGatedFleet(t)
	ctx := context.Background()
	f.gate.status.Store(http.StatusBadRequest)
	spec, tiles := fleettest.SampleSpec(t, "file://"+out)
	job, err := f.ctl.Submit(ctx, spec, tiles)
	if err != nil {
		t.Fatal(err)
	}
	job = f.waitFinal(t, job.ID)
	// 8 tiles in groups of 2: 4 groups, all failed; no item was ever found.
	if job.Status != jobs.StatusFailed || job.Progress.TilesFailed != 8 || job.Progress.TilesAnalysed != 0 || job.Progress.Total != 0 || job.FinishedAt.IsZero() {
		t.Fatalf("job %s %+v, want FAILED with 8 failed tiles", job.Status, job.Progress)
	}
	if !strings.Contains(job.Error, "HTTP 400") || !strings.Contains(job.Error, catalogRefusal) {
		t.Fatalf("job error %q, want the server's 400 message", job.Error)
	}
	groups, err := f.store.FailedGroups(ctx, job.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(groups) != 4 || groups[0].Group != 0 || groups[3].Group != 3 || len(groups[2].Tiles) != 2 {
		t.Fatalf("failed groups %+v, want groups 0-3 of 2 tiles", groups)
	}
	// A 400 is not retried: one refused search per group, every task archived,
	// none waiting to be retried.
	qi := f.waitArchived(t, 4)
	if qi.Archived != 4 || qi.Retry != 0 || qi.Pending != 0 || qi.Scheduled != 0 || qi.Active != 0 {
		t.Fatalf("catalog queue: %d archived, %d retry, %d pending, %d scheduled, %d active; want 4 archived only",
			qi.Archived, qi.Retry, qi.Pending, qi.Scheduled, qi.Active)
	}
	if n := f.gate.refused.Load(); n != 4 {
		t.Fatalf("%d catalog searches refused, want 4 (one per group, no retry)", n)
	}

	f.gate.status.Store(0)
	n, err := f.ctl.Restart(ctx, job.ID)
	if err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("restart re-queued %d items, want 0 (the job had none)", n)
	}
	job = f.waitFinal(t, job.ID)
	if job.Status != jobs.StatusDone || job.Error != "" || job.Progress.TilesFailed != 0 || job.Progress.TilesAnalysed != 8 || job.Restarts != 1 {
		t.Fatalf("after restart: %s error %q %+v", job.Status, job.Error, job.Progress)
	}
	if job.Progress.Total == 0 || job.Progress.Done != job.Progress.Total {
		t.Fatalf("after restart: %d of %d items done", job.Progress.Done, job.Progress.Total)
	}
	if qi, _ := f.insp.GetQueueInfo(tasks.QueueCatalog); qi.Archived != 4 || qi.Retry != 0 {
		t.Fatalf("catalog queue after restart: %d archived, %d retry; want the 4 old ones, no retry", qi.Archived, qi.Retry)
	}

	// The same job that never failed finds the same items.
	ref, err := f.ctl.Submit(ctx, spec, tiles)
	if err != nil {
		t.Fatal(err)
	}
	ref = f.waitFinal(t, ref.ID)
	if ref.Status != jobs.StatusDone || ref.Progress.Total != job.Progress.Total {
		t.Fatalf("reference job %s with %d items; the restarted job has %d", ref.Status, ref.Progress.Total, job.Progress.Total)
	}
	t.Logf("%d items after the restart", job.Progress.Total)
}

// TestCatalog503OnLastAttemptEndsPartial: a catalog group whose search fails
// with a 503 on its last attempt is recorded as failed; the other groups are
// processed and the job ends PARTIAL with the 503 as its error.
func TestCatalog503OnLastAttemptEndsPartial(t *testing.T) {
	out := t.TempDir() // before the fleet, as above
	f := startGatedFleet(t)
	ctx := context.Background()
	// Group 0 holds the two westernmost tiles (33N-0440000-*, west edge 14.22°E);
	// every other group starts east of 14.35°E.
	f.gate.refuse = func(bbox []float64) bool { return len(bbox) == 4 && bbox[0] < 14.3 }
	f.gate.status.Store(http.StatusServiceUnavailable)
	spec, tiles := fleettest.SampleSpec(t, "file://"+out)
	groups := tasks.GroupTiles(tiles, 2, 0)
	spec.CatalogGroups = len(groups)
	job, err := f.store.Create(ctx, spec, tiles)
	if err != nil {
		t.Fatal(err)
	}
	// The tasks Submit would enqueue, but with no retry left: the first failure
	// is the last attempt.
	for i, g := range groups {
		p := tasks.CatalogPayload{Job: job.ID, Group: i}
		for _, tl := range g {
			p.Tiles = append(p.Tiles, tl.Name)
		}
		b, _ := json.Marshal(p)
		task := asynq.NewTask(tasks.TypeCatalog, b, asynq.Queue(tasks.QueueCatalog), asynq.TaskID(tasks.CatalogTaskID(job.ID, i, 0)), asynq.MaxRetry(0))
		if _, err := f.queue.EnqueueContext(ctx, task); err != nil {
			t.Fatal(err)
		}
	}
	job = f.waitFinal(t, job.ID)
	if job.Status != jobs.StatusPartial || job.Progress.TilesFailed != 2 || job.Progress.TilesAnalysed != 6 || job.Progress.Total == 0 || job.Progress.Done != job.Progress.Total {
		t.Fatalf("job %s %+v, want PARTIAL: 2 tiles failed, every item done", job.Status, job.Progress)
	}
	if !strings.Contains(job.Error, "catalog group 0") || !strings.Contains(job.Error, "HTTP 503") {
		t.Fatalf("job error %q, want group 0's 503", job.Error)
	}
	if qi := f.waitArchived(t, 1); qi.Archived != 1 || qi.Retry != 0 {
		t.Fatalf("catalog queue: %d archived, %d retry; want group 0's task archived", qi.Archived, qi.Retry)
	}
	if n := f.gate.refused.Load(); n != 1 {
		t.Fatalf("%d searches refused, want 1 (no retry was left)", n)
	}
}
