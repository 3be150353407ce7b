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
	j, err := s.Create(ctx, testSpec(), testTiles(1))
	if err != nil {
		b.Fatal(err)
	}
	if _, err := s.RecordAnalysis(ctx, j.ID, []string{"T000"}, tileItems("T000", b.N, 100), 1); err != nil {
		b.Fatal(err)
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
