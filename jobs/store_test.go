package jobs

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"shfleet/grid"
	"shfleet/internal/redistest"
)

var srv *redistest.Server

func TestMain(m *testing.M) {
	var err error
	srv, err = redistest.StartServer(redistest.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	srv.Stop()
	os.Exit(code)
}

func newStore(t *testing.T) *Store {
	t.Helper()
	c := srv.Client()
	t.Cleanup(func() { c.Close() })
	return &Store{Redis: c, Prefix: redistest.Prefix(t)}
}

var day0 = time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)

func testSpec() Spec {
	cc := 30.0
	return Spec{
		Name: "test", AOISource: "aoi.geojson", Grid: "utm-20km", Resolution: 20,
		From: day0, To: day0.AddDate(0, 1, 0), Collection: "sentinel-2-l2a",
		Evalscript: "//VERSION=3\nfunction setup(){}", MaxCloudCover: &cc,
		OutputURL: "file:///tmp/out",
	}
}

func testTiles(n int) []grid.Tile {
	out := make([]grid.Tile, n)
	for i := range out {
		out[i] = grid.Tile{Name: fmt.Sprintf("T%03d", i), AOI: "a", EPSG: 32633,
			BBox: [4]float64{0, 0, 20040, 20040}, Width: 1002, Height: 1002}
	}
	return out
}

// tileItems makes n items of a tile, one per day from day0, each estimated at mpu.
func tileItems(tile string, n int, mpu int64) []Item {
	out := make([]Item, n)
	for i := range out {
		d := day0.AddDate(0, 0, i)
		out[i] = Item{ID: ItemID(tile, d), Tile: tile, Date: d.Format(time.DateOnly),
			From: d, To: d.AddDate(0, 0, 1), EstimatedMilliPU: mpu}
	}
	return out
}

// processingJob creates a job with tiles x perTile items, analyses it and starts it.
func processingJob(t *testing.T, s *Store, tiles, perTile int) (Job, []Item) {
	t.Helper()
	ctx := context.Background()
	j, err := s.Create(ctx, testSpec(), testTiles(tiles))
	if err != nil {
		t.Fatal(err)
	}
	analyse(t, s, j.ID, tiles, perTile)
	items, err := startItems(ctx, s, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != tiles*perTile {
		t.Fatalf("Start returned %d items, want %d", len(items), tiles*perTile)
	}
	return j, items
}

// startItems starts an analysed job and returns its PENDING items, sorted by id.
func startItems(ctx context.Context, s *Store, id string) ([]Item, error) {
	if _, err := s.Start(ctx, id); err != nil {
		return nil, err
	}
	return CollectItems(s.AllItems(ctx, id, ItemPending))
}

// ids are the ids of items.
func ids(items []Item) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.ID
	}
	return out
}

// allItems lists every item of a job.
func allItems(t *testing.T, s *Store, id string, st ItemStatus) []Item {
	t.Helper()
	items, err := CollectItems(s.AllItems(context.Background(), id, st))
	if err != nil {
		t.Fatal(err)
	}
	return items
}

// autoStarted checks that a job became PROCESSING by itself (and entered the
// active index) and returns its PENDING items.
func autoStarted(t *testing.T, s *Store, id string) []Item {
	t.Helper()
	ctx := context.Background()
	if got := mustGet(t, s, id); got.Status != StatusProcessing || got.StartedAt.IsZero() {
		t.Fatalf("status %s started %v, want PROCESSING by itself", got.Status, got.StartedAt)
	}
	if active, _ := s.ActiveJobs(ctx); !slices.Contains(active, id) {
		t.Fatalf("active jobs %v lack %s", active, id)
	}
	items, err := CollectItems(s.AllItems(ctx, id, ItemPending))
	if err != nil {
		t.Fatal(err)
	}
	return items
}

func analyse(t *testing.T, s *Store, id string, tiles, perTile int) {
	t.Helper()
	for i, tl := range testTiles(tiles) {
		flipped, err := s.RecordAnalysis(context.Background(), id, []string{tl.Name}, tileItems(tl.Name, perTile, 100), 1)
		if err != nil {
			t.Fatal(err)
		}
		if flipped != (i == tiles-1) {
			t.Fatalf("tile %d of %d: flipped = %v", i+1, tiles, flipped)
		}
	}
}

func mustGet(t *testing.T, s *Store, id string) Job {
	t.Helper()
	j, err := s.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func keysUnder(t *testing.T, s *Store) []string {
	t.Helper()
	keys, err := s.Redis.Keys(context.Background(), s.prefix()+":*").Result()
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

func TestCreateGetListTiles(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	s.Now = func() time.Time { return day0 }
	j, err := s.Create(ctx, testSpec(), testTiles(3))
	if err != nil {
		t.Fatal(err)
	}
	if len(j.ID) != 26 || !ValidID(j.ID) {
		t.Errorf("generated id %q", j.ID)
	}
	if j.Status != StatusCreated || j.Progress.Tiles != 3 || !j.CreatedAt.Equal(day0) {
		t.Errorf("job = %+v", j)
	}
	if j.Spec.Mode != ModeAcquisition || j.Spec.Queue != DefaultQueue || *j.Spec.MaxCloudCover != 30 || j.Spec.ID != j.ID {
		t.Errorf("spec defaults/round trip: %+v", j.Spec)
	}
	tiles, err := s.Tiles(ctx, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(tiles) != 3 || tiles[0].Name != "T000" || tiles[2].Width != 1002 || tiles[1].Analysed {
		t.Errorf("tiles = %+v", tiles)
	}
	spec := testSpec()
	spec.ID = "my-job"
	j2, err := s.Create(ctx, spec, testTiles(1))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(ctx, spec, testTiles(5)); err == nil || !strings.Contains(err.Error(), "exists already") {
		t.Errorf("duplicate id: err = %v", err)
	}
	if got := mustGet(t, s, "my-job"); got.Progress.Tiles != 1 {
		t.Errorf("duplicate create changed the first job: %+v", got.Progress)
	}
	list, err := s.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].ID != j.ID || list[1].ID != j2.ID {
		t.Errorf("list = %v", list)
	}
}

func TestCreateAllOrNothing(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	bad := testSpec()
	bad.Evalscript = ""
	dup := testTiles(2)
	dup[1].Name = dup[0].Name
	withPassword := testSpec()
	withPassword.OutputURL = "s3://user:secret@bucket/x"
	cases := []struct {
		name  string
		spec  Spec
		tiles []grid.Tile
	}{
		{"invalid spec", bad, testTiles(2)},
		{"no tiles", testSpec(), nil},
		{"repeated tile", testSpec(), dup},
		{"password in URL", withPassword, testTiles(1)},
	}
	for _, c := range cases {
		_, err := s.Create(ctx, c.spec, c.tiles)
		if err == nil {
			t.Errorf("%s: Create succeeded", c.name)
		}
		if strings.Contains(fmt.Sprint(err), "secret") {
			t.Errorf("%s: error leaks the secret: %v", c.name, err)
		}
	}
	if keys := keysUnder(t, s); len(keys) != 0 {
		t.Errorf("failed creates left keys: %v", keys)
	}
	// A canceled context fails before anything is written.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Create(cctx, testSpec(), testTiles(2)); err == nil {
		t.Error("Create with canceled ctx succeeded")
	}
	if keys := keysUnder(t, s); len(keys) != 0 {
		t.Errorf("canceled create left keys: %v", keys)
	}
	// An index entry whose job is not (yet) written is not listed.
	s.Redis.ZAdd(ctx, s.indexKey(), redis.Z{Score: 1, Member: "ghost"})
	list, err := s.List(ctx)
	if err != nil || len(list) != 0 {
		t.Errorf("List = %v, %v; want nothing", list, err)
	}
}

func TestLifecycleDone(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	j, err := s.Create(ctx, testSpec(), testTiles(3))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.BeginAnalysis(ctx, j.ID); err != nil {
		t.Fatal(err)
	}
	if got := mustGet(t, s, j.ID); got.Status != StatusAnalysing {
		t.Fatalf("status %s, want ANALYSING", got.Status)
	}
	analyse(t, s, j.ID, 3, 2)
	j = mustGet(t, s, j.ID)
	want := Estimate{Tiles: 3, Items: 6, CatalogRequests: 3, ProcessRequests: 6, EstimatedMilliPU: 600}
	if j.Status != StatusAnalysisDone || j.Estimate() != want || j.Progress.Pending != 6 || j.AnalysedAt.IsZero() {
		t.Fatalf("after analysis: %s %+v %+v", j.Status, j.Estimate(), j.Progress)
	}
	tiles, _ := s.Tiles(ctx, j.ID)
	for _, tl := range tiles {
		if !tl.Analysed {
			t.Errorf("tile %s not analysed", tl.Name)
		}
	}
	items, err := startItems(ctx, s, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 6 || items[0].Status != ItemPending || items[0].EstimatedMilliPU != 100 {
		t.Fatalf("Start items = %+v", items)
	}
	if _, err := s.Start(ctx, j.ID); !errors.Is(err, ErrInvalidTransition) {
		t.Errorf("second Start: %v", err)
	}
	if err := s.Schedule(ctx, j.ID, ids(items)...); err != nil {
		t.Fatal(err)
	}
	scheduled := allItems(t, s, j.ID, ItemScheduled)
	if len(scheduled) != 6 || scheduled[0].ID != items[0].ID {
		t.Fatalf("scheduled = %+v", scheduled)
	}
	finished := 0
	for i, it := range items {
		ok, err := s.BeginItem(ctx, j.ID, it.ID)
		if err != nil || !ok {
			t.Fatalf("BeginItem = %v, %v", ok, err)
		}
		out, err := s.CompleteItem(ctx, j.ID, it.ID, Result{PU: 0.25, Outputs: []OutputRecord{{Key: j.ID + "/" + it.Tile + "/default.tif", Size: 42, SHA256: "ab"}}})
		if err != nil {
			t.Fatal(err)
		}
		if out.Item != ItemDone {
			t.Errorf("item status %s", out.Item)
		}
		if out.Finished != "" {
			finished++
			if i != len(items)-1 || out.Finished != StatusDone {
				t.Errorf("finished %s at item %d", out.Finished, i)
			}
		}
	}
	if finished != 1 {
		t.Errorf("finished reported %d times", finished)
	}
	mustFinish(t, s, j.ID)
	j = mustGet(t, s, j.ID)
	if j.Status != StatusDone || j.Progress.Done != 6 || j.Progress.Remaining() != 0 || j.Progress.SpentMilliPU != 1500 || j.FinishedAt.IsZero() || j.StartedAt.IsZero() {
		t.Errorf("final job: %s %+v", j.Status, j.Progress)
	}
	it, err := s.Item(ctx, j.ID, items[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if it.Attempts != 1 || it.Status != ItemDone {
		t.Errorf("item = %+v", it)
	}
	recs, next, err := s.Records(ctx, j.ID, "", 10)
	if err != nil || next != "" || len(recs) != 6 {
		t.Fatalf("records: %d, next %q, %v; want 6, none", len(recs), next, err)
	}
	if r := recs[0]; r.Item != items[0].ID || r.Tile != "T000" || r.Date != "2024-05-01" || r.SpentMilliPU != 250 || len(r.Outputs) != 1 || r.Outputs[0].Key != j.ID+"/T000/default.tif" || r.Outputs[0].Size != 42 {
		t.Errorf("record = %+v", r)
	}
	// Completing again (a duplicate task) changes nothing.
	out, err := s.CompleteItem(ctx, j.ID, items[0].ID, Result{PU: 1})
	if err != nil || out.Finished != "" || out.Item != ItemDone {
		t.Errorf("duplicate complete: %+v %v", out, err)
	}
	if ok, err := s.BeginItem(ctx, j.ID, items[0].ID); ok || err != nil {
		t.Errorf("BeginItem on DONE item = %v, %v", ok, err)
	}
	if got := mustGet(t, s, j.ID); got.Progress.SpentMilliPU != 1500 {
		t.Errorf("spent after duplicate = %d", got.Progress.SpentMilliPU)
	}
	if n, _ := s.RecordsBacklog(ctx, j.ID); n != 6 {
		t.Errorf("%d records after a duplicate completion, want 6", n)
	}
}

func TestOutcomes(t *testing.T) {
	cases := []struct {
		name   string
		failed int // of 4 items, the first `failed` fail permanently
		want   Status
	}{
		{"done", 0, StatusDone},
		{"partial", 1, StatusPartial},
		{"failed", 4, StatusFailed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			s := newStore(t)
			j, items := processingJob(t, s, 2, 2)
			var finals []Status
			for i, it := range items {
				if ok, err := s.BeginItem(ctx, j.ID, it.ID); !ok || err != nil {
					t.Fatal(ok, err)
				}
				var out Outcome
				var err error
				if i < c.failed {
					out, err = s.FailItem(ctx, j.ID, it.ID, "HTTP 400: bad evalscript", true)
				} else {
					out, err = s.CompleteItem(ctx, j.ID, it.ID, Result{PU: 1})
				}
				if err != nil {
					t.Fatal(err)
				}
				if out.Finished != "" {
					finals = append(finals, out.Finished)
				}
			}
			if len(finals) != 1 || finals[0] != c.want {
				t.Errorf("finals = %v, want [%s]", finals, c.want)
			}
			mustFinish(t, s, j.ID)
			j = mustGet(t, s, j.ID)
			if j.Status != c.want || j.Progress.Failed != c.failed || j.Progress.Done != 4-c.failed {
				t.Errorf("job %s %+v", j.Status, j.Progress)
			}
			// A failed item's reason is the job's error: a FAILED job says why.
			wantErr := ""
			if c.failed > 0 {
				wantErr = "item " + items[c.failed-1].ID + ": HTTP 400: bad evalscript"
			}
			if j.Error != wantErr {
				t.Errorf("job error %q, want %q", j.Error, wantErr)
			}
		})
	}
}

func TestStuckItemReturnsTwiceThenFails(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	j, items := processingJob(t, s, 1, 1)
	id := items[0].ID
	for round := 1; round <= 3; round++ {
		if ok, err := s.BeginItem(ctx, j.ID, id); !ok || err != nil {
			t.Fatal(ok, err)
		}
		out, err := s.FailItem(ctx, j.ID, id, fmt.Sprintf("lease expired %d", round), false)
		if err != nil {
			t.Fatal(err)
		}
		it, _ := s.Item(ctx, j.ID, id)
		if round < 3 {
			if out.Item != ItemPending || out.Finished != "" || it.Returns != round || it.Attempts != round {
				t.Errorf("round %d: %+v item %+v", round, out, it)
			}
			if got := mustGet(t, s, j.ID); got.Status != StatusProcessing || got.Progress.Pending != 1 {
				t.Errorf("round %d: job %s %+v", round, got.Status, got.Progress)
			}
		} else {
			if out.Item != ItemFailed || out.Finished != StatusFailed || it.LastError != "lease expired 3" {
				t.Errorf("third stuck: %+v item %+v", out, it)
			}
		}
	}
	// Failing a FAILED item again changes nothing.
	out, err := s.FailItem(ctx, j.ID, id, "again", false)
	if err != nil || out.Item != ItemFailed || out.Finished != "" {
		t.Errorf("fail again: %+v %v", out, err)
	}
}

func TestRecordAnalysisIdempotent(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	j, err := s.Create(ctx, testSpec(), testTiles(3))
	if err != nil {
		t.Fatal(err)
	}
	group := []string{"T000", "T001"}
	items := append(tileItems("T000", 3, 10), tileItems("T001", 2, 10)...)
	for range 2 {
		flipped, err := s.RecordAnalysis(ctx, j.ID, group, items, 4)
		if err != nil || flipped {
			t.Fatalf("record = %v, %v", flipped, err)
		}
		got := mustGet(t, s, j.ID)
		p := got.Progress
		if got.Status != StatusAnalysing || p.Total != 5 || p.Pending != 5 || p.EstimatedMilliPU != 50 || p.CatalogRequests != 4 || p.TilesAnalysed != 2 {
			t.Errorf("progress %s %+v", got.Status, p)
		}
	}
	// A group overlapping a recorded tile only adds the new tile.
	flipped, err := s.RecordAnalysis(ctx, j.ID, []string{"T001", "T002"}, append(tileItems("T001", 5, 10), tileItems("T002", 1, 10)...), 2)
	if err != nil || !flipped {
		t.Fatalf("last group: %v, %v", flipped, err)
	}
	p := mustGet(t, s, j.ID).Progress
	if p.Total != 6 || p.CatalogRequests != 6 || p.EstimatedMilliPU != 60 {
		t.Errorf("after overlap: %+v", p)
	}
	// Re-running after ANALYSIS_DONE is a no-op, not an error.
	if flipped, err := s.RecordAnalysis(ctx, j.ID, group, items, 4); err != nil || flipped {
		t.Errorf("re-run after done: %v, %v", flipped, err)
	}
	if _, err := s.RecordAnalysis(ctx, j.ID, []string{"nope"}, nil, 1); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("unknown tile: %v", err)
	}
	if _, err := s.RecordAnalysis(ctx, j.ID, []string{"T000"}, tileItems("T002", 1, 1), 1); err == nil {
		t.Error("item of a tile outside the group accepted")
	}
	all := allItems(t, s, j.ID, "")
	if len(all) != 6 {
		t.Errorf("items hash has %d items, want 6", len(all))
	}
}

func TestAnalysisDoneFlipsOnce(t *testing.T) {
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
			// Every goroutine records its own tile and re-records its neighbour's.
			for _, name := range []string{tl.Name, fmt.Sprintf("T%03d", (i+1)%n)} {
				flipped, err := s.RecordAnalysis(ctx, j.ID, []string{name}, tileItems(name, 2, 5), 1)
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
		t.Errorf("ANALYSIS_DONE flipped %d times", flips.Load())
	}
	j = mustGet(t, s, j.ID)
	if j.Status != StatusAnalysisDone || j.Progress.Total != 2*n || j.Progress.CatalogRequests != n || j.Progress.TilesAnalysed != n {
		t.Errorf("job %s %+v", j.Status, j.Progress)
	}
}

func TestCompletionDetectedOnce(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	j, items := processingJob(t, s, 5, 10)
	var finishers atomic.Int32
	var wg sync.WaitGroup
	for i, it := range items {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := s.BeginItem(ctx, j.ID, it.ID)
			if err != nil || !ok {
				t.Error(ok, err)
				return
			}
			var out Outcome
			if i%10 == 0 {
				out, err = s.FailItem(ctx, j.ID, it.ID, "bad", true)
			} else {
				out, err = s.CompleteItem(ctx, j.ID, it.ID, Result{PU: 0.001})
			}
			if err != nil {
				t.Error(err)
			}
			if out.Finished != "" {
				finishers.Add(1)
				if out.Finished != StatusPartial {
					t.Errorf("finished %s, want PARTIAL", out.Finished)
				}
			}
		}()
	}
	wg.Wait()
	if finishers.Load() != 1 {
		t.Errorf("%d callers were told they finished the job", finishers.Load())
	}
	mustFinish(t, s, j.ID)
	if got := mustGet(t, s, j.ID); got.Status != StatusPartial || got.Progress.Done != 45 || got.Progress.Failed != 5 || got.Progress.SpentMilliPU != 45 {
		t.Errorf("job %s %+v", got.Status, got.Progress)
	}
}

func TestRestartRequeuesOnlyFailed(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	j, items := processingJob(t, s, 2, 3)
	failed := map[string]bool{items[1].ID: true, items[4].ID: true}
	for _, it := range items {
		s.Schedule(ctx, j.ID, it.ID)
		s.BeginItem(ctx, j.ID, it.ID)
		var err error
		if failed[it.ID] {
			_, err = s.FailItem(ctx, j.ID, it.ID, "boom", true)
		} else {
			_, err = s.CompleteItem(ctx, j.ID, it.ID, Result{PU: 1})
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	mustFinish(t, s, j.ID)
	if got := mustGet(t, s, j.ID); got.Status != StatusPartial {
		t.Fatalf("status %s", got.Status)
	}
	restarted, err := s.Restart(ctx, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(restarted.Groups) != 0 {
		t.Fatalf("restart of a job without failed catalog groups returned groups %+v", restarted.Groups)
	}
	if restarted.Items != 2 {
		t.Fatalf("restart moved %d items, want the 2 FAILED ones", restarted.Items)
	}
	re := autoStarted(t, s, j.ID)
	if len(re) != 2 || !failed[re[0].ID] || !failed[re[1].ID] {
		t.Fatalf("PENDING after restart %+v", re)
	}
	for _, it := range re {
		if it.Status != ItemPending || it.Attempts != 0 || it.LastError != "" || it.Returns != 0 {
			t.Errorf("restarted item %+v", it)
		}
	}
	got := mustGet(t, s, j.ID)
	if got.Status != StatusProcessing || got.Progress.Pending != 2 || got.Progress.Failed != 0 || got.Progress.Done != 4 || got.Restarts != 1 || !got.FinishedAt.IsZero() {
		t.Errorf("after restart: %s %+v", got.Status, got.Progress)
	}
	var last Outcome
	for _, it := range re {
		s.BeginItem(ctx, j.ID, it.ID)
		if last, err = s.CompleteItem(ctx, j.ID, it.ID, Result{PU: 1}); err != nil {
			t.Fatal(err)
		}
	}
	if last.Finished != StatusDone {
		t.Errorf("restarted job finished %q, want DONE", last.Finished)
	}
	if _, err := s.Restart(ctx, j.ID); !errors.Is(err, ErrInvalidTransition) {
		t.Errorf("restart of DONE job: %v", err)
	}
}

func TestCancelFromEveryState(t *testing.T) {
	ctx := context.Background()
	// setup drives a new job to a state and returns it.
	states := []struct {
		want   Status
		setup  func(t *testing.T, s *Store) string
		remain int // items Cancel must return: SCHEDULED or PROCESSING ones (PENDING items have no task)
		ok     bool
	}{
		{StatusCreated, func(t *testing.T, s *Store) string {
			j, _ := s.Create(ctx, testSpec(), testTiles(2))
			return j.ID
		}, 0, true},
		{StatusAnalysing, func(t *testing.T, s *Store) string {
			j, _ := s.Create(ctx, testSpec(), testTiles(2))
			s.RecordAnalysis(ctx, j.ID, []string{"T000"}, tileItems("T000", 2, 1), 1)
			return j.ID
		}, 0, true},
		{StatusAnalysisDone, func(t *testing.T, s *Store) string {
			j, _ := s.Create(ctx, testSpec(), testTiles(2))
			analyse(t, s, j.ID, 2, 2)
			return j.ID
		}, 0, true},
		{StatusProcessing, func(t *testing.T, s *Store) string {
			j, items := processingJob(t, s, 2, 2)
			s.BeginItem(ctx, j.ID, items[0].ID)
			s.CompleteItem(ctx, j.ID, items[0].ID, Result{})
			s.BeginItem(ctx, j.ID, items[1].ID)
			return j.ID
		}, 1, true}, // items[1] PROCESSING; items[2], items[3] PENDING
		{StatusDone, func(t *testing.T, s *Store) string {
			j, items := processingJob(t, s, 1, 1)
			s.BeginItem(ctx, j.ID, items[0].ID)
			s.CompleteItem(ctx, j.ID, items[0].ID, Result{})
			return j.ID
		}, 0, false},
		{StatusFailed, func(t *testing.T, s *Store) string {
			j, items := processingJob(t, s, 1, 1)
			s.FailItem(ctx, j.ID, items[0].ID, "x", true)
			return j.ID
		}, 0, false},
	}
	for _, c := range states {
		t.Run(string(c.want), func(t *testing.T) {
			s := newStore(t)
			id := c.setup(t, s)
			mustFinish(t, s, id) // a no-op unless the setup finished the last item
			if got := mustGet(t, s, id); got.Status != c.want {
				t.Fatalf("setup reached %s, want %s", got.Status, c.want)
			}
			remaining, err := s.Cancel(ctx, id)
			if !c.ok {
				if !errors.Is(err, ErrInvalidTransition) || !strings.Contains(err.Error(), string(c.want)) {
					t.Errorf("cancel from %s: %v", c.want, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(remaining) != c.remain {
				t.Errorf("cancel returned %d items, want %d", len(remaining), c.remain)
			}
			got := mustGet(t, s, id)
			if got.Status != StatusCanceled || got.FinishedAt.IsZero() {
				t.Errorf("after cancel: %s", got.Status)
			}
			if active, _ := s.ActiveJobs(ctx); len(active) != 0 {
				t.Errorf("active after cancel: %v", active)
			}
			if fed, err := s.Feed(ctx, id, 10); len(fed) != 0 || err != nil {
				t.Errorf("feed after cancel = %d items, %v; want none", len(fed), err)
			}
			for _, it := range remaining {
				if ok, err := s.BeginItem(ctx, id, it.ID); ok || err != nil {
					t.Errorf("BeginItem after cancel = %v, %v", ok, err)
				}
			}
			if _, err := s.Cancel(ctx, id); err != nil {
				t.Errorf("second cancel: %v", err)
			}
			if err := s.Schedule(ctx, id, "x"); !errors.Is(err, ErrCanceled) {
				t.Errorf("schedule after cancel: %v", err)
			}
			if _, err := s.RecordAnalysis(ctx, id, []string{"T001"}, nil, 1); c.want != StatusAnalysisDone && c.want != StatusProcessing && !errors.Is(err, ErrCanceled) {
				t.Errorf("record analysis after cancel: %v", err)
			}
		})
	}
}

func TestCancelLetsRunningItemComplete(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	j, items := processingJob(t, s, 1, 2)
	s.BeginItem(ctx, j.ID, items[0].ID)
	if _, err := s.Cancel(ctx, j.ID); err != nil {
		t.Fatal(err)
	}
	out, err := s.CompleteItem(ctx, j.ID, items[0].ID, Result{PU: 2})
	if err != nil || out.Item != ItemDone || out.Finished != "" {
		t.Errorf("complete after cancel: %+v %v", out, err)
	}
	got := mustGet(t, s, j.ID)
	if got.Status != StatusCanceled || got.Progress.SpentMilliPU != 2000 || got.Progress.Done != 1 {
		t.Errorf("job %s %+v", got.Status, got.Progress)
	}
}

// TestCountersConsistent runs a random concurrent workload and checks that the
// counters in the job hash match the items hash and the status sets.
func TestCountersConsistent(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	j, items := processingJob(t, s, 6, 10)
	var finishers atomic.Int32
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 7))
			for range 150 {
				it := items[r.IntN(len(items))]
				var out Outcome
				var err error
				switch r.IntN(5) {
				case 0:
					err = s.Schedule(ctx, j.ID, it.ID)
				case 1:
					_, err = s.BeginItem(ctx, j.ID, it.ID)
				case 2:
					out, err = s.CompleteItem(ctx, j.ID, it.ID, Result{PU: 0.01})
				case 3:
					out, err = s.FailItem(ctx, j.ID, it.ID, "stuck", false)
				case 4:
					out, err = s.FailItem(ctx, j.ID, it.ID, "bad", r.IntN(4) == 0)
				}
				if err != nil && !errors.Is(err, ErrInvalidTransition) {
					t.Error(err)
				}
				if out.Finished != "" {
					finishers.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	// Finish what is left so the job ends.
	left := allItems(t, s, j.ID, "")
	for _, it := range left {
		if it.Status != ItemDone && it.Status != ItemFailed {
			out, err := s.CompleteItem(ctx, j.ID, it.ID, Result{PU: 0.01})
			if err != nil {
				t.Fatal(err)
			}
			if out.Finished != "" {
				finishers.Add(1)
			}
		}
	}
	if finishers.Load() != 1 {
		t.Errorf("job finished %d times", finishers.Load())
	}
	mustFinish(t, s, j.ID)
	got := mustGet(t, s, j.ID)
	all := allItems(t, s, j.ID, "")
	count := map[ItemStatus]int{}
	for _, it := range all {
		count[it.Status]++
	}
	// Every DONE item has exactly one record, and the records add up to the
	// job's spent PU.
	var spent int64
	recs := map[string]int{}
	for r, err := range s.AllRecords(ctx, j.ID) {
		if err != nil {
			t.Fatal(err)
		}
		recs[r.Item]++
		spent += r.SpentMilliPU
	}
	p := got.Progress
	have := map[ItemStatus]int{ItemPending: p.Pending, ItemScheduled: p.Scheduled, ItemProcessing: p.Processing, ItemDone: p.Done, ItemFailed: p.Failed}
	for _, st := range ItemStatuses {
		listed := len(allItems(t, s, j.ID, st))
		if have[st] != count[st] || listed != count[st] {
			t.Errorf("%s: counter %d, items %d, listed by status %d", st, have[st], count[st], listed)
		}
	}
	for _, it := range all {
		if (it.Status == ItemDone) != (recs[it.ID] == 1) || recs[it.ID] > 1 {
			t.Errorf("item %s %s has %d records", it.ID, it.Status, recs[it.ID])
		}
	}
	if p.Total != len(all) || p.SpentMilliPU != spent || got.Status.Final() != true || len(recs) != p.Done {
		t.Errorf("total %d/%d spent %d/%d records %d/%d status %s", p.Total, len(all), p.SpentMilliPU, spent, len(recs), p.Done, got.Status)
	}
}

func TestTwoJobsIndependent(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	a, aItems := processingJob(t, s, 1, 2)
	b, bItems := processingJob(t, s, 1, 2)
	if a.ID == b.ID || aItems[0].ID != bItems[0].ID {
		t.Fatalf("ids: jobs %s %s, items %s %s", a.ID, b.ID, aItems[0].ID, bItems[0].ID)
	}
	for _, it := range aItems {
		s.BeginItem(ctx, a.ID, it.ID)
		s.CompleteItem(ctx, a.ID, it.ID, Result{PU: 1})
	}
	if _, err := s.Cancel(ctx, b.ID); err != nil {
		t.Fatal(err)
	}
	mustFinish(t, s, a.ID)
	ga, gb := mustGet(t, s, a.ID), mustGet(t, s, b.ID)
	if ga.Status != StatusDone || gb.Status != StatusCanceled || gb.Progress.Done != 0 || gb.Progress.Pending != 2 || gb.Progress.SpentMilliPU != 0 {
		t.Errorf("a %s %+v, b %s %+v", ga.Status, ga.Progress, gb.Status, gb.Progress)
	}
}

func TestPauseResume(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	j, _ := processingJob(t, s, 1, 1)
	reset := time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)
	if err := s.Pause(ctx, j.ID, ReasonOutOfPU, reset); err != nil {
		t.Fatal(err)
	}
	got := mustGet(t, s, j.ID)
	if got.Status != StatusProcessing || !got.Paused() || got.StoppedReason != ReasonOutOfPU || !got.ResumeAt.Equal(reset) {
		t.Errorf("paused job: %+v", got)
	}
	if err := s.Resume(ctx, j.ID); err != nil {
		t.Fatal(err)
	}
	if got := mustGet(t, s, j.ID); got.Paused() || !got.ResumeAt.IsZero() {
		t.Errorf("resumed job: %+v", got)
	}
	s.Cancel(ctx, j.ID)
	if err := s.Pause(ctx, j.ID, ReasonOutOfPU, reset); !errors.Is(err, ErrInvalidTransition) {
		t.Errorf("pause canceled job: %v", err)
	}
}

func TestNotFoundAndDelete(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	_, err := s.Get(ctx, "01JNOPE")
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "job 01JNOPE: not found") || !strings.Contains(err.Error(), "enqueue list") {
		t.Errorf("Get unknown: %v", err)
	}
	if _, err := s.BeginItem(ctx, "01JNOPE", "x"); !errors.Is(err, ErrNotFound) {
		t.Errorf("BeginItem unknown job: %v", err)
	}
	if _, err := s.Get(ctx, "bad{id}"); err == nil {
		t.Error("invalid id accepted")
	}
	j, _ := processingJob(t, s, 1, 1)
	if _, err := s.CompleteItem(ctx, j.ID, "nope", Result{}); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "item nope") {
		t.Errorf("unknown item: %v", err)
	}
	if _, err := s.Item(ctx, j.ID, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Item unknown: %v", err)
	}
	err = s.Delete(ctx, j.ID)
	if !errors.Is(err, ErrInvalidTransition) || !strings.Contains(err.Error(), "enqueue cancel") {
		t.Errorf("delete PROCESSING job: %v", err)
	}
	s.Cancel(ctx, j.ID)
	if err := s.Delete(ctx, j.ID); err != nil {
		t.Fatal(err)
	}
	if keys := keysUnder(t, s); len(keys) != 0 {
		t.Errorf("delete left keys %v", keys)
	}
	if err := s.Delete(ctx, j.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("delete twice: %v", err)
	}
}

func TestStartWithoutItemsIsDone(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	j, _ := s.Create(ctx, testSpec(), testTiles(1))
	if flipped, err := s.RecordAnalysis(ctx, j.ID, []string{"T000"}, nil, 1); !flipped || err != nil {
		t.Fatal(flipped, err)
	}
	st, err := s.Start(ctx, j.ID)
	if err != nil || st != StatusDone {
		t.Fatal(st, err)
	}
	if active, _ := s.ActiveJobs(ctx); len(active) != 0 {
		t.Errorf("a job DONE at start is active: %v", active)
	}
	if got := mustGet(t, s, j.ID); got.Status != StatusDone {
		t.Errorf("status %s, want DONE", got.Status)
	}
}

func TestReleaseItem(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	j, items := processingJob(t, s, 1, 2)
	id := items[0].ID
	s.BeginItem(ctx, j.ID, id)
	st, err := s.ReleaseItem(ctx, j.ID, id)
	if err != nil || st != ItemScheduled {
		t.Fatalf("release = %s, %v", st, err)
	}
	it, _ := s.Item(ctx, j.ID, id)
	p := mustGet(t, s, j.ID).Progress
	if it.Returns != 0 || it.Status != ItemScheduled || p.Scheduled != 1 || p.Processing != 0 || p.Pending != 1 {
		t.Errorf("item %+v progress %+v", it, p)
	}
	// A PENDING item is left alone.
	if st, err := s.ReleaseItem(ctx, j.ID, items[1].ID); err != nil || st != ItemPending {
		t.Errorf("release PENDING = %s, %v", st, err)
	}
}

// TestFeed: Feed takes PENDING items a window at a time, returned and
// handed-back items first, and none from a paused or canceled job.
func TestFeed(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	j, err := s.Create(ctx, testSpec(), testTiles(1))
	if err != nil {
		t.Fatal(err)
	}
	analyse(t, s, j.ID, 1, 5) // T000, 5 items: 2024-05-01 .. 2024-05-05
	if fed, err := s.Feed(ctx, j.ID, 3); err != nil || len(fed) != 0 {
		t.Fatalf("feed of an ANALYSIS_DONE job = %d items, %v; want none", len(fed), err)
	}
	if st, err := s.Start(ctx, j.ID); err != nil || st != StatusProcessing {
		t.Fatalf("start = %s, %v", st, err)
	}
	if active, _ := s.ActiveJobs(ctx); !slices.Equal(active, []string{j.ID}) {
		t.Fatalf("active %v, want [%s]", active, j.ID)
	}
	fed, err := s.Feed(ctx, j.ID, 3)
	if err != nil || len(fed) != 3 {
		t.Fatalf("feed 3 = %d items, %v", len(fed), err)
	}
	for _, it := range fed {
		if it.Status != ItemScheduled {
			t.Errorf("fed item %s is %s, want SCHEDULED", it.ID, it.Status)
		}
	}
	// 5 items, 3 fed: 2 PENDING, 3 SCHEDULED.
	if p := mustGet(t, s, j.ID).Progress; p.Pending != 2 || p.Scheduled != 3 {
		t.Fatalf("after feeding 3: %+v", p)
	}
	// One fed item is returned (stuck), one handed back (enqueue failed): the
	// next Feed takes those two before the 2 never fed.
	s.BeginItem(ctx, j.ID, fed[0].ID)
	if out, err := s.FailItem(ctx, j.ID, fed[0].ID, "worker died", false); err != nil || out.Item != ItemPending {
		t.Fatalf("return = %+v, %v", out, err)
	}
	if n, err := s.Unfeed(ctx, j.ID, fed[1].ID, "no-such-item"); err != nil || n != 1 {
		t.Fatalf("unfeed = %d, %v; want 1 (the unknown id is skipped)", n, err)
	}
	if it, _ := s.Item(ctx, j.ID, fed[1].ID); it.Status != ItemPending || it.Returns != 0 {
		t.Errorf("handed-back item %+v, want PENDING without a return", it)
	}
	// 4 PENDING now: fed[0] (returned), fed[1] (handed back) and the 2 never fed.
	again, err := s.Feed(ctx, j.ID, 2)
	if err != nil || len(again) != 2 {
		t.Fatalf("feed 2 = %d, %v", len(again), err)
	}
	got := []string{again[0].ID, again[1].ID}
	slices.Sort(got)
	want := []string{fed[0].ID, fed[1].ID}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("second feed took %v, want the returned and handed-back %v first", got, want)
	}
	// A paused job gets nothing; resumed, the last 2 come.
	if err := s.Pause(ctx, j.ID, ReasonOutOfPU, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if fed, _ := s.Feed(ctx, j.ID, 10); len(fed) != 0 {
		t.Errorf("paused job fed %d items", len(fed))
	}
	s.Resume(ctx, j.ID)
	if rest, _ := s.Feed(ctx, j.ID, 10); len(rest) != 2 {
		t.Errorf("resumed job fed %d items, want the last 2", len(rest))
	}
	if p := mustGet(t, s, j.ID).Progress; p.Pending != 0 || p.Scheduled != 5 {
		t.Errorf("all fed: %+v", p)
	}
	if fed, _ := s.Feed(ctx, j.ID, 10); len(fed) != 0 {
		t.Errorf("nothing PENDING, yet fed %d", len(fed))
	}
}

// TestRestartPaged: a restart of more FAILED items than one page moves them in
// pages, all of them, and the job is PROCESSING after the last page.
func TestRestartPaged(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	// 3 tiles x 900 items = 2700 items: 3 pages of RestartPage (1000): 1000, 1000, 700.
	j, items := processingJob(t, s, 3, 900)
	for _, it := range items {
		s.BeginItem(ctx, j.ID, it.ID)
		s.FailItem(ctx, j.ID, it.ID, "HTTP 400", true)
	}
	mustFinish(t, s, j.ID)
	if got := mustGet(t, s, j.ID); got.Status != StatusFailed || got.Progress.Failed != 2700 {
		t.Fatalf("before restart: %s %+v", got.Status, got.Progress)
	}
	re, err := s.Restart(ctx, j.ID)
	if err != nil || re.Items != 2700 || len(re.Groups) != 0 {
		t.Fatalf("restart = %+v, %v", re, err)
	}
	got := mustGet(t, s, j.ID)
	if got.Status != StatusProcessing || got.Progress.Pending != 2700 || got.Progress.Failed != 0 || got.Restarts != 1 {
		t.Fatalf("after restart: %s %+v restarts %d", got.Status, got.Progress, got.Restarts)
	}
}

// mustFinish ends a job whose last item is final, as the worker does once the
// manifest is written ([Store.Finish]); a no-op for any other job.
func mustFinish(t *testing.T, s *Store, id string) {
	t.Helper()
	if _, err := s.Finish(context.Background(), id); err != nil {
		t.Fatalf("finish %s: %v", id, err)
	}
}

// TestFinishAfterLastItem: the call that finishes the last item records the
// end (Ending) but leaves the job PROCESSING, so nobody reads DONE before the
// manifest exists; Finish then makes it final once, and leaves the active index.
// A job canceled while ending stays CANCELED.
func TestFinishAfterLastItem(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	j, items := processingJob(t, s, 1, 2)
	var finals []Status
	for _, it := range items {
		s.BeginItem(ctx, j.ID, it.ID)
		out, err := s.CompleteItem(ctx, j.ID, it.ID, Result{PU: 1})
		if err != nil {
			t.Fatal(err)
		}
		finals = append(finals, out.Finished)
	}
	if !slices.Equal(finals, []Status{"", StatusDone}) {
		t.Fatalf("finished reported %q, want only the second call to say DONE", finals)
	}
	got := mustGet(t, s, j.ID)
	if got.Status != StatusProcessing || got.Ending != StatusDone || got.EndingAt.IsZero() || !got.FinishedAt.IsZero() {
		t.Fatalf("after the last item: status %s, ending %q at %v, finished at %v; want PROCESSING, ending DONE, not finished",
			got.Status, got.Ending, got.EndingAt, got.FinishedAt)
	}
	for i := range 2 {
		st, err := s.Finish(ctx, j.ID)
		if err != nil || st != StatusDone {
			t.Fatalf("Finish #%d: %s, %v; want DONE", i+1, st, err)
		}
	}
	got = mustGet(t, s, j.ID)
	if got.Status != StatusDone || got.Ending != "" || got.FinishedAt.IsZero() {
		t.Errorf("after Finish: status %s, ending %q, finished at %v", got.Status, got.Ending, got.FinishedAt)
	}
	if active, _ := s.ActiveJobs(ctx); slices.Contains(active, j.ID) {
		t.Errorf("a finished job is still in the active index %v", active)
	}

	k, kItems := processingJob(t, s, 1, 1)
	s.BeginItem(ctx, k.ID, kItems[0].ID)
	if out, _ := s.CompleteItem(ctx, k.ID, kItems[0].ID, Result{PU: 1}); out.Finished != StatusDone {
		t.Fatalf("last item: finished %q, want DONE", out.Finished)
	}
	if _, err := s.Cancel(ctx, k.ID); err != nil {
		t.Fatal(err)
	}
	if st, err := s.Finish(ctx, k.ID); err != nil || st != StatusCanceled {
		t.Fatalf("Finish of a job canceled while ending: %s, %v; want CANCELED", st, err)
	}
	if got := mustGet(t, s, k.ID); got.Status != StatusCanceled || got.Ending != "" {
		t.Errorf("canceled while ending: status %s, ending %q", got.Status, got.Ending)
	}
}
