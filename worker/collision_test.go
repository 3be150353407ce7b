package worker_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"shfleet/internal/fleettest"
	"shfleet/jobs"
	"shfleet/sentinel/sentineltest"
)

// TestPathTemplateCollisionFailsItems forces a template without <date> past the
// submit check (through the controller, as a hand-made job record would): every
// tile's items map to one key. The first item of a tile stores it; each other
// item of that tile fails loudly, naming the key and both items, instead of
// being skipped or overwriting; the key keeps the first item's bytes.
func TestPathTemplateCollisionFailsItems(t *testing.T) {
	outDir := t.TempDir()
	f := newFleet(t, 2, sentineltest.Config{})
	ctx := context.Background()
	spec, tiles := fleettest.SampleSpec(t, "file://"+outDir)
	spec.PathTemplate = "<requestId>/<tileName>.<format>"
	job, err := f.Ctl.Submit(ctx, spec, tiles)
	if err != nil {
		t.Fatal(err)
	}
	job = f.WaitFinal(t, job.ID, 2*time.Minute)
	if job.Status != jobs.StatusPartial {
		t.Fatalf("job status %s; want PARTIAL (one item per tile stored, the others FAILED): %+v", job.Status, job.Progress)
	}
	done, err := jobs.CollectItems(f.Store.AllItems(ctx, job.ID, jobs.ItemDone))
	if err != nil {
		t.Fatal(err)
	}
	failed, err := jobs.CollectItems(f.Store.AllItems(ctx, job.ID, jobs.ItemFailed))
	if err != nil {
		t.Fatal(err)
	}
	// The sample job has 8 tiles: one DONE item each, every other item FAILED.
	if len(done) != 8 || len(failed) != job.Progress.Total-8 || len(failed) == 0 {
		t.Fatalf("%d DONE, %d FAILED of %d; want 8 DONE (one per tile) and the rest FAILED", len(done), len(failed), job.Progress.Total)
	}
	winner := map[string]string{} // tile -> the item that stored its key
	for _, it := range done {
		if winner[it.Tile] != "" {
			t.Errorf("tile %s has two DONE items (%s, %s)", it.Tile, winner[it.Tile], it.ID)
		}
		winner[it.Tile] = it.ID
	}
	for _, it := range failed {
		key := job.ID + "/" + it.Tile + ".tif"
		for _, want := range []string{`output key "` + key + `"`, "item " + winner[it.Tile] + " of job " + job.ID, "item " + it.ID + " of job " + job.ID, "--path-template"} {
			if !strings.Contains(it.LastError, want) {
				t.Errorf("item %s error %q does not name %q", it.ID, it.LastError, want)
			}
		}
	}
	items := f.CheckOutputs(t, job, tiles, outDir) // each key holds its DONE item's bytes
	files := fleettest.OutputFiles(t, outDir)
	if len(files) != 8 || len(items) != 8 {
		t.Errorf("%d output files, %d DONE items; want 8 each: %v", len(files), len(items), files)
	}

	// A restart re-runs the FAILED items: they collide again, the stored files stay.
	n, err := f.Ctl.Restart(ctx, job.ID)
	if err != nil || n != len(failed) {
		t.Fatalf("Restart = %d, %v; want %d items re-queued", n, err, len(failed))
	}
	job = f.WaitFinal(t, job.ID, 2*time.Minute)
	if job.Status != jobs.StatusPartial || job.Progress.Done != 8 {
		t.Errorf("after restart: %s with %d DONE; want PARTIAL with 8", job.Status, job.Progress.Done)
	}
	f.CheckOutputs(t, job, tiles, outDir)
}

// TestSameRequestSkips: a second job sending the same requests into the same
// root and keys (a template without <requestId>) recognises the first job's
// outputs as its own answers and skips them without a single process request.
func TestSameRequestSkips(t *testing.T) {
	outDir := t.TempDir()
	f := newFleet(t, 1, sentineltest.Config{})
	ctx := context.Background()
	spec, tiles := fleettest.SampleSpec(t, "file://"+outDir)
	spec.PathTemplate = "<tileName>/<date>/<outputId>.<format>"
	first, err := f.Ctl.Submit(ctx, spec, tiles)
	if err != nil {
		t.Fatal(err)
	}
	first = f.WaitFinal(t, first.ID, 2*time.Minute)
	if first.Status != jobs.StatusDone {
		t.Fatalf("first job %s; want DONE", first.Status)
	}
	before := f.Sim.Stats().ProcessRequests
	second, err := f.Ctl.Submit(ctx, spec, tiles)
	if err != nil {
		t.Fatal(err)
	}
	second = f.WaitFinal(t, second.ID, 2*time.Minute)
	if second.Status != jobs.StatusDone || second.Progress.Done != first.Progress.Done {
		t.Fatalf("second job %s with %d DONE; want DONE with %d", second.Status, second.Progress.Done, first.Progress.Done)
	}
	if got := f.Sim.Stats().ProcessRequests - before; got != 0 {
		t.Errorf("second job sent %d process requests; want 0 (every output is the same request's)", got)
	}
	keys := func(id string) []string {
		var out []string
		for _, r := range f.Records(t, id) {
			out = append(out, r.Outputs[0].Key+" "+r.Outputs[0].SHA256)
		}
		slices.Sort(out)
		return out
	}
	a, b := keys(first.ID), keys(second.ID)
	if len(a) == 0 || !slices.Equal(a, b) {
		t.Errorf("the second job records other keys or checksums than the first")
	}
}
