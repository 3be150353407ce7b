package jobs

import (
	"context"
	"fmt"
	"testing"

	"shfleet/internal/redistest"
)

// BenchmarkItemLifecycle measures BeginItem + CompleteItem per item (two script
// calls) on a job with b.N items.
func BenchmarkItemLifecycle(b *testing.B) {
	ctx := context.Background()
	c := srv.Client()
	defer c.Close()
	s := &Store{Redis: c, Prefix: redistest.Prefix(b)}
	// 100 items per tile (one per day), as many tiles as b.N needs.
	nt := (b.N + 99) / 100
	j, err := s.Create(ctx, testSpec(), testTiles(nt))
	if err != nil {
		b.Fatal(err)
	}
	for i, tl := range testTiles(nt) {
		n := min(100, b.N-100*i)
		if _, err := s.RecordAnalysis(ctx, j.ID, []string{tl.Name}, tileItems(tl.Name, n, 100), 1); err != nil {
			b.Fatal(err)
		}
	}
	items, err := startItems(ctx, s, j.ID)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for _, it := range items {
		if _, err := s.BeginItem(ctx, j.ID, it.ID); err != nil {
			b.Fatal(err)
		}
		if _, err := s.CompleteItem(ctx, j.ID, it.ID, Result{PU: 1}); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if got, _ := s.Get(ctx, j.ID); got.Status != StatusDone {
		b.Fatal(fmt.Sprint("job not DONE: ", got.Status))
	}
}

// BenchmarkTileStatuses100k counts the items of a job of 1,000 tiles x 100
// dates (100,000 PENDING items) per tile on all dates, as the job page's map
// does each time it draws.
func BenchmarkTileStatuses100k(b *testing.B) {
	ctx := context.Background()
	c := srv.Client()
	defer c.Close()
	s := &Store{Redis: c, Prefix: redistest.Prefix(b)}
	j, err := s.Create(ctx, testSpec(), testTiles(1000))
	if err != nil {
		b.Fatal(err)
	}
	for _, tl := range testTiles(1000) {
		if _, err := s.RecordAnalysis(ctx, j.ID, []string{tl.Name}, tileItems(tl.Name, 100, 100), 1); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		ts, err := s.TileStatuses(ctx, j.ID, "")
		if err != nil || len(ts.Tiles) != 1000 || ts.Tiles["T000"].Pending != 100 || len(ts.Dates) != 100 {
			b.Fatalf("%d tiles, T000 %+v, %d dates, %v", len(ts.Tiles), ts.Tiles["T000"], len(ts.Dates), err)
		}
	}
}
