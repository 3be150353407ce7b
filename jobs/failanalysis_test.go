package jobs

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"unicode/utf8"
)

const reason400 = "catalog group 1: HTTP 400: Collection sentinel-2-l2a does not support filter eo:cloud_cover"

// finishAll begins and completes every PENDING item (after Start) and returns the
// final statuses reported, and ends the job as the worker does ([Store.Finish]).
func finishAll(t *testing.T, s *Store, id string, items []Item) []Status {
	t.Helper()
	ctx := context.Background()
	var finals []Status
	for _, it := range items {
		if ok, err := s.BeginItem(ctx, id, it.ID); !ok || err != nil {
			t.Fatalf("begin %s: %v, %v", it.ID, ok, err)
		}
		out, err := s.CompleteItem(ctx, id, it.ID, Result{PU: 1})
		if err != nil {
			t.Fatal(err)
		}
		if out.Finished != "" {
			finals = append(finals, out.Finished)
		}
	}
	mustFinish(t, s, id)
	return finals
}

// TestFailAnalysisFlipsOnce races 20 groups of one tile each: the even ones are
// recorded (2 items each), the odd ones fail, and every goroutine repeats its
// call. Exactly one call, of either kind, flips the job to ANALYSIS_DONE.
func TestFailAnalysisFlipsOnce(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	const n = 20
	j, err := s.Create(ctx, testSpec(), testTiles(n))
	if err != nil {
		t.Fatal(err)
	}
	var flips atomic.Int32
	var wg sync.WaitGroup
	for i, tl := range testTiles(n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 2 {
				var flipped bool
				var err error
				if i%2 == 0 {
					flipped, err = s.RecordAnalysis(ctx, j.ID, []string{tl.Name}, tileItems(tl.Name, 2, 5), 1)
				} else {
					flipped, err = s.FailAnalysis(ctx, j.ID, i, []string{tl.Name}, fmt.Sprintf("group %d: HTTP 400", i))
				}
				if err != nil {
					t.Error(err)
				}
				if flipped {
					flips.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if flips.Load() != 1 {
		t.Errorf("ANALYSIS_DONE flipped %d times, want once", flips.Load())
	}
	j = mustGet(t, s, j.ID)
	// 10 recorded tiles x 2 items; 10 failed tiles; one request per recorded group.
	p := j.Progress
	if j.Status != StatusAnalysisDone || p.TilesAnalysed != 10 || p.TilesFailed != 10 || p.Total != 20 || p.Pending != 20 || p.CatalogRequests != 10 {
		t.Errorf("job %s %+v", j.Status, p)
	}
	if !strings.HasPrefix(j.Error, "group ") || !strings.HasSuffix(j.Error, ": HTTP 400") {
		t.Errorf("job error %q, want one of the groups' reasons", j.Error)
	}
	groups, err := s.FailedGroups(ctx, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(groups) != 10 || groups[0].Group != 1 || groups[9].Group != 19 || !slices.Equal(groups[3].Tiles, []string{"T007"}) || groups[3].Reason != "group 7: HTTP 400" || groups[3].FailedAt.IsZero() {
		t.Errorf("failed groups %+v", groups)
	}
}

// TestFailAnalysisWithoutItemsFails: the only group with tiles found nothing and
// the other failed, so nothing can ever be processed: FAILED at once.
func TestFailAnalysisWithoutItemsFails(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	j, err := s.Create(ctx, testSpec(), testTiles(3))
	if err != nil {
		t.Fatal(err)
	}
	if flipped, err := s.RecordAnalysis(ctx, j.ID, []string{"T000", "T001"}, nil, 1); err != nil || flipped {
		t.Fatalf("record empty group: %v, %v", flipped, err)
	}
	flipped, err := s.FailAnalysis(ctx, j.ID, 1, []string{"T002"}, reason400)
	if err != nil || flipped {
		t.Fatalf("fail last group: flipped %v, %v; want false (FAILED, nothing to start)", flipped, err)
	}
	got := mustGet(t, s, j.ID)
	if got.Status != StatusFailed || got.FinishedAt.IsZero() || got.AnalysedAt.IsZero() || got.Error != reason400 || got.Progress.TilesFailed != 1 || got.Progress.TilesAnalysed != 2 {
		t.Fatalf("job %s error %q finished %v %+v", got.Status, got.Error, got.FinishedAt, got.Progress)
	}
	// A repeat (a duplicate delivery) changes nothing and is no error.
	if flipped, err := s.FailAnalysis(ctx, j.ID, 1, []string{"T002"}, "other reason"); err != nil || flipped {
		t.Errorf("repeat: %v, %v", flipped, err)
	}
	if again := mustGet(t, s, j.ID); again.Error != reason400 || again.Progress.TilesFailed != 1 || !again.UpdatedAt.Equal(got.UpdatedAt) {
		t.Errorf("repeat changed the job: error %q %+v", again.Error, again.Progress)
	}
	tiles, err := s.Tiles(ctx, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	if tiles[2].Name != "T002" || !tiles[2].Failed || tiles[2].Analysed || tiles[2].Error != reason400 || tiles[0].Failed || !tiles[0].Analysed {
		t.Errorf("tiles %+v", tiles)
	}

	// Restart searches group 1 again; the job is ANALYSING with auto-start on
	// (the spec was submitted without).
	re, err := s.Restart(ctx, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	if re.Items != 0 || len(re.Groups) != 1 || re.Groups[0].Group != 1 || !slices.Equal(re.Groups[0].Tiles, []string{"T002"}) || re.Groups[0].Reason != reason400 {
		t.Fatalf("restart returned %+v", re)
	}
	got = mustGet(t, s, j.ID)
	if got.Status != StatusAnalysing || got.Error != "" || !got.FinishedAt.IsZero() || got.Progress.TilesFailed != 0 || got.Progress.TilesAnalysed != 2 || got.Restarts != 1 || !got.Spec.AutoStart {
		t.Fatalf("after restart: %s error %q auto %v %+v", got.Status, got.Error, got.Spec.AutoStart, got.Progress)
	}
	if groups, _ := s.FailedGroups(ctx, j.ID); len(groups) != 0 {
		t.Errorf("failed groups after restart: %+v", groups)
	}
	if tiles, _ := s.Tiles(ctx, j.ID); tiles[2].Failed || tiles[2].Analysed {
		t.Errorf("tile after restart %+v, want neither failed nor analysed", tiles[2])
	}
	flipped, err = s.RecordAnalysis(ctx, j.ID, []string{"T002"}, tileItems("T002", 2, 10), 1)
	if err != nil || !flipped {
		t.Fatalf("re-run group: %v, %v", flipped, err)
	}
	// The restart turned auto-start on: the re-run's flip started the job.
	items := autoStarted(t, s, j.ID)
	if len(items) != 2 {
		t.Fatalf("auto-started with %d items PENDING, want 2", len(items))
	}
	if finals := finishAll(t, s, j.ID, items); !slices.Equal(finals, []Status{StatusDone}) {
		t.Errorf("finals %v, want [DONE]", finals)
	}

	// Deleting a job with failed groups leaves no key behind.
	s2 := newStore(t)
	s2.Prefix += "-del"
	j2, _ := s2.Create(ctx, testSpec(), testTiles(1))
	if _, err := s2.FailAnalysis(ctx, j2.ID, 0, []string{"T000"}, reason400); err != nil {
		t.Fatal(err)
	}
	if err := s2.Delete(ctx, j2.ID); err != nil {
		t.Fatal(err)
	}
	if keys := keysUnder(t, s2); len(keys) != 0 {
		t.Errorf("delete left %v", keys)
	}
}

// TestFailAnalysisEndsPartial: a job whose every item is DONE but one group
// failed ends PARTIAL; restart re-runs the group and only its new items.
func TestFailAnalysisEndsPartial(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	j, err := s.Create(ctx, testSpec(), testTiles(3))
	if err != nil {
		t.Fatal(err)
	}
	s.RecordAnalysis(ctx, j.ID, []string{"T000"}, tileItems("T000", 2, 10), 1)
	// The failing group also names T000 (analysed already): only T001 and T002 fail.
	flipped, err := s.FailAnalysis(ctx, j.ID, 1, []string{"T000", "T001", "T002"}, reason400)
	if err != nil || !flipped {
		t.Fatalf("fail last group: %v, %v; want the flip (2 items to process)", flipped, err)
	}
	groups, _ := s.FailedGroups(ctx, j.ID)
	if len(groups) != 1 || !slices.Equal(groups[0].Tiles, []string{"T001", "T002"}) {
		t.Fatalf("failed groups %+v", groups)
	}
	items, err := startItems(ctx, s, j.ID)
	if err != nil || len(items) != 2 {
		t.Fatalf("start: %d items, %v", len(items), err)
	}
	if finals := finishAll(t, s, j.ID, items); !slices.Equal(finals, []Status{StatusPartial}) {
		t.Fatalf("finals %v, want [PARTIAL]: every item DONE but two tiles failed", finals)
	}
	got := mustGet(t, s, j.ID)
	if got.Status != StatusPartial || got.Progress.Done != 2 || got.Progress.Failed != 0 || got.Progress.TilesFailed != 2 {
		t.Fatalf("job %s %+v", got.Status, got.Progress)
	}
	re, err := s.Restart(ctx, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	if re.Items != 0 || len(re.Groups) != 1 || re.Groups[0].Group != 1 {
		t.Fatalf("restart returned %+v", re)
	}
	got = mustGet(t, s, j.ID)
	if got.Status != StatusAnalysing || got.Progress.TilesAnalysed != 1 || got.Progress.TilesFailed != 0 || got.Progress.Done != 2 {
		t.Fatalf("after restart %s %+v", got.Status, got.Progress)
	}
	flipped, err = s.RecordAnalysis(ctx, j.ID, re.Groups[0].Tiles, append(tileItems("T001", 1, 10), tileItems("T002", 3, 10)...), 1)
	if err != nil || !flipped {
		t.Fatalf("re-run: %v, %v", flipped, err)
	}
	items = autoStarted(t, s, j.ID)
	if len(items) != 4 {
		t.Fatalf("auto-started after restart with %d items PENDING; want the 4 new ones", len(items))
	}
	if finals := finishAll(t, s, j.ID, items); !slices.Equal(finals, []Status{StatusDone}) {
		t.Errorf("finals %v, want [DONE]", finals)
	}
	// 2 + 1 + 3 items, all DONE.
	if got := mustGet(t, s, j.ID); got.Status != StatusDone || got.Progress.Total != 6 || got.Progress.Done != 6 {
		t.Errorf("job %s %+v", got.Status, got.Progress)
	}
}

// TestRestartFailedItemsAndGroups: every item failed and a group failed: FAILED;
// restart returns both, and the re-run analysis starts every PENDING item.
func TestRestartFailedItemsAndGroups(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	j, err := s.Create(ctx, testSpec(), testTiles(2))
	if err != nil {
		t.Fatal(err)
	}
	s.RecordAnalysis(ctx, j.ID, []string{"T000"}, tileItems("T000", 2, 10), 1)
	if flipped, err := s.FailAnalysis(ctx, j.ID, 1, []string{"T001"}, reason400); err != nil || !flipped {
		t.Fatalf("fail: %v, %v", flipped, err)
	}
	items, _ := startItems(ctx, s, j.ID)
	var finals []Status
	for _, it := range items {
		s.BeginItem(ctx, j.ID, it.ID)
		out, err := s.FailItem(ctx, j.ID, it.ID, "HTTP 400: bad evalscript", true)
		if err != nil {
			t.Fatal(err)
		}
		if out.Finished != "" {
			finals = append(finals, out.Finished)
		}
	}
	if !slices.Equal(finals, []Status{StatusFailed}) {
		t.Fatalf("finals %v, want [FAILED]", finals)
	}
	mustFinish(t, s, j.ID)
	re, err := s.Restart(ctx, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	if re.Items != 2 || len(re.Groups) != 1 {
		t.Fatalf("restart returned %+v", re)
	}
	got := mustGet(t, s, j.ID)
	if got.Status != StatusAnalysing || got.Progress.Pending != 2 || got.Progress.Failed != 0 || got.Progress.TilesFailed != 0 {
		t.Fatalf("after restart %s %+v", got.Status, got.Progress)
	}
	if flipped, err := s.RecordAnalysis(ctx, j.ID, []string{"T001"}, tileItems("T001", 1, 10), 1); err != nil || !flipped {
		t.Fatalf("re-run: %v, %v", flipped, err)
	}
	// The 2 restarted items and the 1 new one.
	items = autoStarted(t, s, j.ID)
	if len(items) != 3 {
		t.Fatalf("auto-started with %d items PENDING, want 3", len(items))
	}
	if finals := finishAll(t, s, j.ID, items); !slices.Equal(finals, []Status{StatusDone}) {
		t.Errorf("finals %v, want [DONE]", finals)
	}
}

func TestFailAnalysisRefusals(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	j, _ := s.Create(ctx, testSpec(), testTiles(2))
	if _, err := s.FailAnalysis(ctx, j.ID, 0, []string{"nope"}, reason400); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("unknown tile: %v", err)
	}
	if _, err := s.FailAnalysis(ctx, j.ID, 0, []string{"T000"}, "  "); err == nil {
		t.Error("empty reason accepted")
	}
	if _, err := s.FailAnalysis(ctx, j.ID, 0, nil, reason400); err == nil {
		t.Error("no tiles accepted")
	}
	if _, err := s.FailAnalysis(ctx, "missing", 0, []string{"T000"}, reason400); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing job: %v", err)
	}
	if got := mustGet(t, s, j.ID); got.Status != StatusCreated || got.Progress.TilesFailed != 0 {
		t.Errorf("refusals changed the job: %s %+v", got.Status, got.Progress)
	}
	if _, err := s.Cancel(ctx, j.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.FailAnalysis(ctx, j.ID, 0, []string{"T000"}, reason400); !errors.Is(err, ErrCanceled) {
		t.Errorf("canceled job: %v, want ErrCanceled", err)
	}
}

func TestTruncateError(t *testing.T) {
	if got := TruncateError("short"); got != "short" {
		t.Errorf("short message changed: %q", got)
	}
	// 2000 two-byte runes: the cut at 1024-3 = 1021 falls inside a rune, so it
	// moves back to 1020; with "..." that is 1023 bytes.
	got := TruncateError(strings.Repeat("é", 2000))
	if len(got) != 1023 || !utf8.ValidString(got) || !strings.HasSuffix(got, "é...") {
		t.Errorf("truncated to %d bytes (valid %v), ends %q", len(got), utf8.ValidString(got), got[len(got)-6:])
	}
	if got := TruncateError("bad \xff byte"); !utf8.ValidString(got) {
		t.Errorf("invalid UTF-8 kept: %q", got)
	}
}
