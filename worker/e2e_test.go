package worker_test

import (
	"bytes"
	"context"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"shfleet/grid"
	"shfleet/internal/fleettest"
	"shfleet/jobs"
	"shfleet/sentinel"
	"shfleet/sentinel/sentineltest"
	"shfleet/tasks"
)

func newFleet(t *testing.T, n int, sim sentineltest.Config) *fleettest.Fleet {
	return fleettest.Start(t, fleettest.Options{Workers: n, Sim: sim})
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
	spec, tiles := fleettest.SampleSpec(t, "file://"+outDir)
	wantCatalog := expectedCatalogRequests(t, spec, tiles)

	job, err := f.Ctl.Submit(context.Background(), spec, tiles)
	if err != nil {
		t.Fatal(err)
	}
	job = f.WaitFinal(t, job.ID, 2*time.Minute)
	if job.Status != jobs.StatusDone {
		t.Fatalf("job status %s, want DONE: %+v", job.Status, job.Progress)
	}
	items, err := jobs.CollectItems(f.Store.AllItems(context.Background(), job.ID, jobs.ItemDone))
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
	recs := f.Records(t, job.ID)
	for _, it := range items {
		req := tasks.BuildProcessRequest(job.Spec, byTile[it.Tile], it)
		outs := recs[it.ID].Outputs
		if len(outs) != 1 {
			t.Fatalf("item %s has %d outputs", it.ID, len(outs))
		}
		got, err := os.ReadFile(filepath.Join(outDir, outs[0].Key))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, sentineltest.ProcessBody(req, "default")) {
			t.Fatalf("item %s: stored bytes differ from what the simulator served", it.ID)
		}
	}
	if files := fleettest.OutputFiles(t, outDir); len(files) != len(items) {
		t.Fatalf("%d output files, want %d (one per item)", len(files), len(items))
	}
	if _, err := os.Stat(filepath.Join(outDir, tasks.ManifestKey(job.ID))); err != nil {
		t.Fatalf("manifest: %v", err)
	}

	st := f.Sim.Stats()
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
