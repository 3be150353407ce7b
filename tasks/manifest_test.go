package tasks

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"shfleet/grid"
	"shfleet/internal/redistest"
	"shfleet/jobs"
	"shfleet/output"
)

// TestRecordsDrainedIntoManifestParts: a job of 7 items with parts of 3
// records: completions move whole parts out of Redis as they fill (the backlog
// stays under 3 after each), the end writes the last, partial one and the index;
// every output is in exactly one part, in completion order.
func TestRecordsDrainedIntoManifestParts(t *testing.T) {
	rs := redistest.Start(t)
	rdb := rs.Client()
	t.Cleanup(func() { rdb.Close() })
	ctx := context.Background()
	dir := t.TempDir()
	store := &jobs.Store{Redis: rdb, Prefix: redistest.Prefix(t)}
	hd := Handlers{Redis: rdb, Jobs: store, PartSize: 3}.withDefaults()
	h := &hd
	from := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	spec := jobs.Spec{Collection: "sentinel-2-l2a", Evalscript: "//VERSION=3", OutputURL: "file://" + dir,
		From: from, To: from.AddDate(0, 1, 0)}
	job, err := store.Create(ctx, spec, []grid.Tile{tileAt("a0", 14.0, 46.2)})
	if err != nil {
		t.Fatal(err)
	}
	var items []jobs.Item
	for d := range 7 {
		day := from.AddDate(0, 0, d)
		items = append(items, jobs.Item{ID: jobs.ItemID("a0", day), Tile: "a0", From: day, To: day.AddDate(0, 0, 1), EstimatedMilliPU: 10})
	}
	if _, err := store.RecordAnalysis(ctx, job.ID, []string{"a0"}, items, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Start(ctx, job.ID); err != nil {
		t.Fatal(err)
	}
	var backlogs []string
	for i, it := range items {
		store.BeginItem(ctx, job.ID, it.ID)
		key := fmt.Sprintf("%s/a0/%s/default.tif", job.ID, it.ID[3:])
		out, err := store.CompleteItem(ctx, job.ID, it.ID, jobs.Result{PU: float64(i + 1), Outputs: []jobs.OutputRecord{{Key: key, Size: int64(100 + i)}}})
		if err != nil {
			t.Fatal(err)
		}
		if err := h.drainSoon(ctx, job.ID, out); err != nil {
			t.Fatal(err)
		}
		n, _ := store.RecordsBacklog(ctx, job.ID)
		backlogs = append(backlogs, fmt.Sprint(n))
		if out.Finished != "" {
			if err := h.WriteManifest(ctx, job.ID); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Backlog after each completion: 1, 2, 3 -> drained to 0, 1, 2, 3 -> 0,
	// then the 7th ends the job: 1 (the end drains it below).
	if got := strings.Join(backlogs, ","); got != "1,2,0,1,2,0,1" {
		t.Errorf("backlogs %s, want 1,2,0,1,2,0,1", got)
	}
	if n, _ := store.RecordsBacklog(ctx, job.ID); n != 0 {
		t.Errorf("%d records left in Redis after the manifest, want 0", n)
	}
	j, _ := store.Get(ctx, job.ID)
	// Sizes 100..106 sum to 721; PU 1..7 sum to 28 = 28,000 milli-PU.
	if j.Drained != (jobs.Drained{Parts: 3, Outputs: 7, Bytes: 721, MilliPU: 28000}) {
		t.Errorf("drained %+v, want 3 parts, 7 outputs, 721 bytes, 28000 mPU", j.Drained)
	}
	out, err := output.Open(ctx, "file://"+dir)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	idx, err := output.ReadManifestIndex(ctx, out, ManifestKey(job.ID))
	if err != nil || len(idx.Parts) != 3 || idx.Parts[2] != job.ID+"/manifest/part-00002.jsonl" || idx.Outputs != 7 || idx.Bytes != 721 || idx.PU != 28 {
		t.Errorf("index %+v, %v", idx, err)
	}
	var dates []string
	for e, err := range output.ManifestEntries(ctx, out, ManifestKey(job.ID)) {
		if err != nil {
			t.Fatal(err)
		}
		dates = append(dates, e.Date)
	}
	if got := strings.Join(dates, ","); got != "2025-06-01,2025-06-02,2025-06-03,2025-06-04,2025-06-05,2025-06-06,2025-06-07" {
		t.Errorf("manifest dates %s", got)
	}
	last, err := os.ReadFile(filepath.Join(dir, job.ID, "manifest", "part-00002.jsonl"))
	want := `{"tile":"a0","date":"2025-06-07","outputId":"default","key":"` + job.ID + `/a0/2025-06-07/default.tif","size":106,"sha256":"","pu":7}` + "\n"
	if err != nil || string(last) != want {
		t.Errorf("last part %q, %v\nwant %q", last, err, want)
	}
}
