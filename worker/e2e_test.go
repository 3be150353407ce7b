package worker_test

import (
	"bytes"
	"context"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"shfleet/grid"
	"shfleet/internal/redistest"
	"shfleet/jobs"
	"shfleet/quota"
	"shfleet/sentinel"
	"shfleet/sentinel/sentineltest"
	"shfleet/tasks"
	"shfleet/worker"
)

// fleet is a redis-server, the simulator and n worker processes' worth of
// workers, each with its own Redis client, limiter and token source.
type fleet struct {
	redis   *redistest.Server
	sim     *sentineltest.Server
	workers []*worker.Worker
	ctl     tasks.Controller
	store   *jobs.Store
}

var testPolicies = []quota.Policy{{Kind: quota.Requests, Capacity: 600, Period: time.Minute}, {Kind: quota.PU, Capacity: 600, Period: time.Minute}}

func newFleet(t *testing.T, n int, simCfg sentineltest.Config) *fleet {
	t.Helper()
	f := &fleet{redis: redistest.Start(t)}
	if simCfg.Policies == nil {
		for _, p := range testPolicies {
			simCfg.Policies = append(simCfg.Policies, sentineltest.Policy{Kind: string(p.Kind), Capacity: p.Capacity, Period: p.Period})
		}
	}
	f.sim = sentineltest.NewServer(simCfg)
	t.Cleanup(f.sim.Close)
	for i := 0; i < n; i++ {
		f.addWorker(t)
	}
	rdb := f.client(t)
	f.store = &jobs.Store{Redis: rdb}
	f.ctl = tasks.Controller{Jobs: f.store, Queue: asynq.NewClientFromRedisClient(rdb), Inspector: asynq.NewInspectorFromRedisClient(rdb)}
	return f
}

func (f *fleet) client(t *testing.T) *redis.Client {
	c := f.redis.Client()
	t.Cleanup(func() { c.Close() })
	return c
}

func (f *fleet) addWorker(t *testing.T) *worker.Worker {
	t.Helper()
	w, err := worker.New(worker.Config{Redis: f.client(t), Sentinel: f.sim.ClientConfig(), Policies: testPolicies,
		Concurrency: 4, ShutdownTimeout: 5 * time.Second})
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
	return w
}

// waitFinal polls the job until it is final (or paused when stopAtPause).
func (f *fleet) waitFinal(t *testing.T, id string, timeout time.Duration) jobs.Job {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		job, err := f.store.Get(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if job.Status.Final() {
			return job
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s still %s after %s: %+v", id, job.Status, timeout, job.Progress)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func sampleSpec(t *testing.T, outDir string) (jobs.Spec, []grid.Tile) {
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
	return jobs.Spec{Grid: "utm-10km", Resolution: 60, Collection: "sentinel-2-l2a", Evalscript: string(script),
		From: time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC),
		MaxCloudCover: &cloud, OutputURL: "file://" + outDir, AutoStart: true}, tiles
}

// outputFiles lists the output files under dir (fileblob's .attrs sidecars and
// the manifest aside).
func outputFiles(t *testing.T, dir string) []string {
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && !strings.HasSuffix(p, ".attrs") && !strings.HasSuffix(p, "manifest.json") {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// expectedCatalogRequests asks a twin simulator (same deterministic world) how
// many pages each catalog group's search has.
func expectedCatalogRequests(t *testing.T, spec jobs.Spec, tiles []grid.Tile) int {
	twin := sentineltest.NewServer(sentineltest.Config{})
	defer twin.Close()
	c := sentinel.NewClient(twin.ClientConfig(), nil)
	n := 0
	for _, g := range tasks.GroupTiles(tiles, 0, 0) {
		req := tasks.SearchRequest(spec, g)
		for {
			page, err := c.Catalog.SearchPage(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			n++
			if page.Context.Next == nil || len(page.Features) == 0 {
				break
			}
			req.Next = page.Context.Next
		}
	}
	return n
}

func TestEndToEndMultiPolygonSeveralDates(t *testing.T) {
	f := newFleet(t, 3, sentineltest.Config{TokenRequestsPerMinute: 5})
	outDir := t.TempDir()
	spec, tiles := sampleSpec(t, outDir)
	wantCatalog := expectedCatalogRequests(t, spec, tiles)

	job, err := f.ctl.Submit(context.Background(), spec, tiles)
	if err != nil {
		t.Fatal(err)
	}
	job = f.waitFinal(t, job.ID, 2*time.Minute)
	if job.Status != jobs.StatusDone {
		t.Fatalf("job status %s, want DONE: %+v", job.Status, job.Progress)
	}
	items, err := f.store.Items(context.Background(), job.ID, jobs.ItemDone)
	if err != nil {
		t.Fatal(err)
	}
	dates := map[string]bool{}
	for _, it := range items {
		dates[it.Date] = true
	}
	if len(items) != job.Progress.Total || len(items) < len(tiles) || len(dates) < 3 {
		t.Fatalf("%d items over %d dates for %d tiles (total %d); want every tile over several dates", len(items), len(dates), len(tiles), job.Progress.Total)
	}

	// Every expected file exists exactly once, byte-identical to what the
	// simulator served for that item's request.
	byTile := map[string]grid.Tile{}
	for _, tl := range tiles {
		byTile[tl.Name] = tl
	}
	for _, it := range items {
		req := tasks.BuildProcessRequest(job.Spec, byTile[it.Tile], it)
		if len(it.Outputs) != 1 {
			t.Fatalf("item %s has %d outputs", it.ID, len(it.Outputs))
		}
		got, err := os.ReadFile(filepath.Join(outDir, it.Outputs[0].Key))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, sentineltest.ProcessBody(req, "default")) {
			t.Fatalf("item %s: stored bytes differ from what the simulator served", it.ID)
		}
	}
	if files := outputFiles(t, outDir); len(files) != len(items) {
		t.Fatalf("%d output files, want %d (one per item)", len(files), len(items))
	}
	if _, err := os.Stat(filepath.Join(outDir, tasks.ManifestKey(job.ID))); err != nil {
		t.Fatalf("manifest: %v", err)
	}

	st := f.sim.Stats()
	if st.RateLimited != 0 {
		t.Fatalf("simulator answered %d 429s, want 0", st.RateLimited)
	}
	if st.TokensIssued != 1 {
		t.Fatalf("tokens issued %d, want 1 for the whole fleet", st.TokensIssued)
	}
	if st.ProcessRequests != len(items) {
		t.Fatalf("process requests %d, want %d (one per item)", st.ProcessRequests, len(items))
	}
	for k, n := range st.Served {
		if n != 1 {
			t.Fatalf("request %s served %d times, want once", k, n)
		}
	}
	if spent := float64(job.Progress.SpentMilliPU) / 1000; math.Abs(spent-st.PUSpent) > 0.001*float64(len(items)) {
		t.Fatalf("PU recorded %.3f, simulator charged %.3f", spent, st.PUSpent)
	}
	if st.CatalogRequests != wantCatalog || job.Progress.CatalogRequests != wantCatalog {
		t.Fatalf("catalog requests: simulator %d, job %d, predicted %d", st.CatalogRequests, job.Progress.CatalogRequests, wantCatalog)
	}
	t.Logf("%d tiles, %d items, %d dates, %.2f PU, %d catalog requests", len(tiles), len(items), len(dates), st.PUSpent, st.CatalogRequests)
}
