package ops_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"shfleet/grid"
	"shfleet/internal/fleettest"
	"shfleet/jobs"
	"shfleet/ops"
	"shfleet/sentinel/sentineltest"
)

// fleet is a fleettest.Fleet whose workers share one ops.Metrics through their
// hooks (as if they were one process's counters), and the ops handler of the
// first worker served by httptest.
type fleet struct {
	*fleettest.Fleet
	metrics *ops.Metrics
	srv     *httptest.Server
}

func newFleet(t *testing.T, n, concurrency int, simCfg sentineltest.Config) *fleet {
	t.Helper()
	m := ops.NewMetrics()
	f := &fleet{Fleet: fleettest.Start(t, fleettest.Options{Workers: n, Concurrency: concurrency, Sim: simCfg, Hooks: m.Hooks()}), metrics: m}
	w := f.Workers[0]
	h, err := ops.NewHandler(ops.Config{Redis: f.Client(t), Metrics: f.metrics,
		Sources: ops.Sources{Limiter: w.Limiter, Tokens: w.Tokens, Jobs: w.Jobs, Inspector: w.Inspector},
		Account: f.Sim.ClientConfig().ClientID})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	f.srv = httptest.NewServer(h)
	t.Cleanup(f.srv.Close)
	startFlush(t, m, f.Client(t))
	return f
}

// startFlush runs m's fleet-counter flush (every 100 ms) until the test ends.
func startFlush(t *testing.T, m *ops.Metrics, rdb redis.Cmdable) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.Series().RunFleetFlush(ctx, rdb, "", 100*time.Millisecond, nil)
	}()
	t.Cleanup(func() { cancel(); <-done })
}

// flush adds what the fleet's shared metrics counted to Redis now.
func (f *fleet) flush(t *testing.T) {
	t.Helper()
	if err := f.metrics.Series().Flush(context.Background(), f.Client(t), ""); err != nil {
		t.Fatal(err)
	}
}

// submit submits the sample job (fleettest.SampleSpec), auto-started.
func (f *fleet) submit(t *testing.T) jobs.Job {
	t.Helper()
	spec, tiles := fleettest.SampleSpec(t, "file://"+t.TempDir())
	spec.Name = "ops test <sample AOI>"
	aois, err := grid.ParseFile(filepath.Join(fleettest.Examples(), "aoi.geojson"), grid.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	spec.AOIOutline = jobs.OutlineOf(aois) // as enqueue submit stores it
	job, err := f.Ctl.Submit(context.Background(), spec, tiles)
	if err != nil {
		t.Fatal(err)
	}
	return job
}

func (f *fleet) waitDone(t *testing.T, id string) jobs.Job {
	t.Helper()
	job := f.WaitFinal(t, id, time.Minute)
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
