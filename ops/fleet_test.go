package ops_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"shfleet/grid"
	"shfleet/internal/redistest"
	"shfleet/jobs"
	"shfleet/ops"
	"shfleet/quota"
	"shfleet/sentinel/sentineltest"
	"shfleet/tasks"
	"shfleet/worker"
)

// fleet is a redis-server, the simulator, n workers sharing one ops.Metrics
// through their hooks (as if they were one process's counters), and the ops
// handler of the first worker served by httptest.
type fleet struct {
	redis   *redistest.Server
	sim     *sentineltest.Server
	metrics *ops.Metrics
	workers []*worker.Worker
	ctl     tasks.Controller
	store   *jobs.Store
	srv     *httptest.Server
}

var testPolicies = []quota.Policy{{Kind: quota.Requests, Capacity: 600, Period: time.Minute}, {Kind: quota.PU, Capacity: 600, Period: time.Minute}}

func newFleet(t *testing.T, n, concurrency int, simCfg sentineltest.Config) *fleet {
	t.Helper()
	f := &fleet{redis: redistest.Start(t), metrics: ops.NewMetrics()}
	for _, p := range testPolicies {
		simCfg.Policies = append(simCfg.Policies, sentineltest.Policy{Kind: string(p.Kind), Capacity: p.Capacity, Period: p.Period})
	}
	f.sim = sentineltest.NewServer(simCfg)
	t.Cleanup(f.sim.Close)
	for range n {
		w, err := worker.New(worker.Config{Redis: f.client(t), Sentinel: f.sim.ClientConfig(), Policies: testPolicies,
			Concurrency: concurrency, ShutdownTimeout: 5 * time.Second, Hooks: f.metrics.Hooks()})
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
		f.workers = append(f.workers, w)
	}
	rdb := f.client(t)
	f.store = &jobs.Store{Redis: rdb}
	f.ctl = tasks.Controller{Jobs: f.store, Queue: asynq.NewClientFromRedisClient(rdb), Inspector: asynq.NewInspectorFromRedisClient(rdb)}
	h, err := ops.NewHandler(ops.Config{Redis: f.client(t), Worker: f.workers[0], Metrics: f.metrics,
		Account: f.sim.ClientConfig().ClientID})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	f.srv = httptest.NewServer(h)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fleet) client(t *testing.T) *redis.Client {
	c := f.redis.Client()
	t.Cleanup(func() { c.Close() })
	return c
}

// submit submits the sample AOI (examples/aoi.geojson on the 10 km UTM grid at
// 60 m) over June 2025, auto-started.
func (f *fleet) submit(t *testing.T) jobs.Job {
	t.Helper()
	aois, err := grid.ParseFile("../examples/aoi.geojson", grid.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	g, err := grid.ParseGrid("utm-10km")
	if err != nil {
		t.Fatal(err)
	}
	tiles, err := grid.Split(aois, g, grid.SplitOptions{Resolution: 60})
	if err != nil {
		t.Fatal(err)
	}
	script, err := os.ReadFile("../examples/evalscript-truecolor.js")
	if err != nil {
		t.Fatal(err)
	}
	cloud := 70.0
	spec := jobs.Spec{Name: "ops test <sample AOI>", Grid: "utm-10km", Resolution: 60, Collection: "sentinel-2-l2a",
		Evalscript: string(script), From: time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC),
		MaxCloudCover: &cloud, OutputURL: "file://" + t.TempDir(), AutoStart: true}
	job, err := f.ctl.Submit(context.Background(), spec, tiles)
	if err != nil {
		t.Fatal(err)
	}
	return job
}

// waitFor polls the job until ok accepts it.
func (f *fleet) waitFor(t *testing.T, id string, timeout time.Duration, what string, ok func(jobs.Job) bool) jobs.Job {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		job, err := f.store.Get(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if ok(job) {
			return job
		}
		if job.Status.Final() || time.Now().After(deadline) {
			t.Fatalf("job %s is %s %+v; waited %s for it to be %s", id, job.Status, job.Progress, timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (f *fleet) waitDone(t *testing.T, id string) jobs.Job {
	t.Helper()
	job := f.waitFor(t, id, time.Minute, "final", func(j jobs.Job) bool { return j.Status.Final() })
	if job.Status != jobs.StatusDone {
		t.Fatalf("job status %s, want DONE: %+v", job.Status, job.Progress)
	}
	return job
}

// get fetches path from the ops server and returns status and body.
func get(t *testing.T, base, path string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(base + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, body
}

// getJSON fetches path and decodes its JSON body into v, returning the status.
func getJSON(t *testing.T, base, path string, v any) int {
	t.Helper()
	code, body := get(t, base, path)
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("GET %s: %d %v: %s", path, code, err, body)
	}
	return code
}
