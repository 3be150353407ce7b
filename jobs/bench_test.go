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
