// Package fleettest runs a whole shfleet fleet inside a test: a throwaway
// redis-server, the Sentinel Hub simulator and any number of workers, each with its
// own Redis client, limiter and token source as separate processes would have, plus
// the job controller the CLI uses. It also holds the sample job (examples/) and the
// checks every end-to-end test makes of its outputs.
package fleettest

import (
	"bytes"
	"context"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"shfleet/grid"
	"shfleet/internal/redistest"
	"shfleet/jobs"
	"shfleet/output"
	"shfleet/quota"
	"shfleet/sentinel"
	"shfleet/sentinel/sentineltest"
	"shfleet/tasks"
	"shfleet/worker"
)

// DefaultPolicies are the account policies of a fleet whose Options name none:
// generous enough that tests are not quota-bound, present so the limiter works.
var DefaultPolicies = []quota.Policy{
	{Kind: quota.Requests, Capacity: 600, Period: time.Minute},
	{Kind: quota.PU, Capacity: 600, Period: time.Minute},
}

// Options shape a fleet. The zero value is one worker of concurrency 4 under
// DefaultPolicies, with the simulator enforcing the same policies.
type Options struct {
	// Workers is the number of workers started now (0 is allowed: AddWorker later).
	Workers int
	// Concurrency of each worker; default 4.
	Concurrency int
	// Policies are the account's; default DefaultPolicies. The simulator
	// enforces and publishes them (when Sim.Policies is nil), and the workers read
	// them from its contract as they would from Sentinel Hub's.
	Policies []quota.Policy
	// WorkerPolicies override the workers' policies (--policy / SH_POLICIES);
	// default none: the workers use the account's contract.
	WorkerPolicies []quota.Policy
	// Sim configures the simulator; nil Sim.Policies means the workers' Policies.
	Sim sentineltest.Config
	// Hooks are passed to every worker (metrics).
	Hooks tasks.Hooks
	// Front, when set, puts a handler of the test's in front of the simulator:
	// the workers talk to an HTTP server serving Front(sim) (which may answer some
	// requests itself and pass the rest to sim) instead of to the simulator.
	// Default nil: the workers talk to the simulator directly.
	Front func(sim *sentineltest.Server) http.Handler
	// BatchPoll is the workers' pause between polls of a batch job; default
	// the worker's.
	BatchPoll time.Duration
	// Feed tunes every worker's feeder (window cap, lease); default the
	// worker's.
	Feed tasks.FeederConfig
}

// Fleet is a running fleet.
type Fleet struct {
	Redis   *redistest.Server
	Sim     *sentineltest.Server
	Workers []*worker.Worker
	Ctl     tasks.Controller
	Store   *jobs.Store
	opts    Options
	front   *httptest.Server // Options.Front's server, nil without one
}

// Start starts a redis-server, the simulator and opts.Workers workers; all stop
// when the test ends.
func Start(t testing.TB, opts Options) *Fleet {
	t.Helper()
	if opts.Concurrency == 0 {
		opts.Concurrency = 4
	}
	if opts.Policies == nil {
		opts.Policies = DefaultPolicies
	}
	if opts.Sim.Policies == nil {
		for _, p := range opts.Policies {
			opts.Sim.Policies = append(opts.Sim.Policies, sentineltest.Policy{Kind: string(p.Kind), Capacity: p.Capacity, Period: p.Period})
		}
	}
	f := &Fleet{Redis: redistest.Start(t), opts: opts}
	f.Sim = sentineltest.NewServer(opts.Sim)
	t.Cleanup(f.Sim.Close)
	if opts.Front != nil {
		f.front = httptest.NewServer(opts.Front(f.Sim))
		t.Cleanup(f.front.Close)
	}
	for range opts.Workers {
		f.AddWorker(t)
	}
	rdb := f.Client(t)
	f.Store = &jobs.Store{Redis: rdb}
	f.Ctl = tasks.Controller{Jobs: f.Store, Queue: asynq.NewClientFromRedisClient(rdb), Inspector: asynq.NewInspectorFromRedisClient(rdb)}
	return f
}

// Client is a new Redis client of the fleet's server, closed when the test ends.
func (f *Fleet) Client(t testing.TB) *redis.Client {
	c := f.Redis.Client()
	t.Cleanup(func() { c.Close() })
	return c
}

// AddWorker starts one more worker with its own Redis client.
func (f *Fleet) AddWorker(t testing.TB) *worker.Worker {
	t.Helper()
	w, err := worker.New(worker.Config{Redis: f.Client(t), Sentinel: f.ClientConfig(), Policies: f.opts.WorkerPolicies,
		Concurrency: f.opts.Concurrency, ShutdownTimeout: 5 * time.Second, Hooks: f.opts.Hooks, BatchPoll: f.opts.BatchPoll,
		Feed: f.opts.Feed})
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
	f.Workers = append(f.Workers, w)
	return w
}

// ClientConfig is the sentinel.Config the fleet's workers use: the simulator's
// own, or, with Options.Front, the same credentials and paths on the front
// server's URL.
func (f *Fleet) ClientConfig() sentinel.Config {
	cfg := f.Sim.ClientConfig()
	if f.front == nil {
		return cfg
	}
	cfg.BaseURL, cfg.TokenURL = f.front.URL, f.front.URL+sentineltest.TokenPath
	cfg.Deployments = map[string]string{sentinel.DeploymentUSWest: f.front.URL + sentineltest.USWestPrefix}
	return cfg
}

// WaitFor polls the job every 50 ms until ok accepts it; it fails the test when
// the job becomes final without ok, or at the timeout.
func (f *Fleet) WaitFor(t testing.TB, id string, timeout time.Duration, what string, ok func(jobs.Job) bool) jobs.Job {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		job, err := f.Store.Get(context.Background(), id)
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

// WaitFinal waits until the job is DONE, PARTIAL, FAILED or CANCELED. A job that
// ended by its items reads final only once its end files (manifest, STAC
// catalog, VRTs) are written, so a test may look at or remove its output
// directory at once.
func (f *Fleet) WaitFinal(t testing.TB, id string, timeout time.Duration) jobs.Job {
	t.Helper()
	return f.WaitFor(t, id, timeout, "final", func(j jobs.Job) bool { return j.Status.Final() })
}

// Examples is the repository's examples/ directory.
func Examples() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "examples")
}

// SampleSpec is the sample job: examples/aoi.geojson (two fields near Ljubljana,
// 8 tiles of the 10 km UTM grid) at 60 m over June 2025 with the true-colour
// evalscript, auto-started, writing to outputURL.
func SampleSpec(t testing.TB, outputURL string) (jobs.Spec, []grid.Tile) {
	t.Helper()
	aois, err := grid.ParseFile(filepath.Join(Examples(), "aoi.geojson"), grid.Limits{})
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
	script, err := os.ReadFile(filepath.Join(Examples(), "evalscript-truecolor.js"))
	if err != nil {
		t.Fatal(err)
	}
	cloud := 70.0
	return jobs.Spec{Grid: "utm-10km", Resolution: 60, Collection: "sentinel-2-l2a", Evalscript: string(script),
		From: time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC),
		MaxCloudCover: &cloud, OutputURL: outputURL, AutoStart: true}, tiles
}

// OutputFiles lists the output files under dir: everything but the job's end
// files (manifest, STAC catalog, VRT mosaics).
func OutputFiles(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && !IsEndFile(p) {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Records returns the records of a job's DONE items by item id, read with
// tasks.JobOutputs (the manifest parts in the job's output store, then what is
// still in Redis); a record's Outputs are its manifest entries' keys, sizes and
// checksums.
func (f *Fleet) Records(t testing.TB, id string) map[string]jobs.Record {
	t.Helper()
	return Records(t, f.Store, id)
}

// Records is Fleet.Records for any store.
func Records(t testing.TB, store *jobs.Store, id string) map[string]jobs.Record {
	t.Helper()
	ctx := context.Background()
	job, err := store.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	out, err := output.Open(ctx, job.Spec.OutputURL)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	recs := map[string]jobs.Record{}
	for e, err := range tasks.JobOutputs(ctx, store, out, id) {
		if err != nil {
			t.Fatal(err)
		}
		item := e.Tile + "_" + e.Date
		r := recs[item]
		r.Item, r.Tile, r.Date = item, e.Tile, e.Date
		for _, o := range r.Outputs {
			if o.Key == e.Key {
				t.Fatalf("item %s: output %s recorded twice", item, e.Key)
			}
		}
		r.Outputs = append(r.Outputs, jobs.OutputRecord{Key: e.Key, Size: e.Size, SHA256: e.SHA256})
		recs[item] = r
	}
	return recs
}

// IsEndFile reports whether the file at p is one a job writes besides its
// outputs: the manifest and its parts, a STAC file (under <job>/stac/) or a VRT
// mosaic.
func IsEndFile(p string) bool {
	p = filepath.ToSlash(p)
	return strings.HasSuffix(p, "/manifest.json") || strings.Contains(p, "/manifest/part-") || strings.Contains(p, "/stac/") || strings.HasSuffix(p, ".vrt")
}

// CheckOutputs asserts that every DONE item of the job has its single output
// stored under root, byte-identical to what the simulator served for the item's
// request, and returns the DONE items.
func (f *Fleet) CheckOutputs(t testing.TB, job jobs.Job, tiles []grid.Tile, root string) []jobs.Item {
	t.Helper()
	items, err := jobs.CollectItems(f.Store.AllItems(context.Background(), job.ID, jobs.ItemDone))
	if err != nil {
		t.Fatal(err)
	}
	recs := f.Records(t, job.ID)
	byTile := map[string]grid.Tile{}
	for _, tl := range tiles {
		byTile[tl.Name] = tl
	}
	for _, it := range items {
		outs := recs[it.ID].Outputs
		if len(outs) != 1 {
			t.Fatalf("item %s has %d outputs, want 1", it.ID, len(outs))
		}
		got, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(outs[0].Key)))
		if err != nil {
			t.Fatal(err)
		}
		want := sentineltest.ProcessBody(tasks.BuildProcessRequest(job.Spec, byTile[it.Tile], it), "default")
		if !bytes.Equal(got, want) {
			t.Fatalf("item %s: stored %d bytes, the simulator served %d: not identical", it.ID, len(got), len(want))
		}
	}
	return items
}
