package jobs

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/paulmach/orb"

	"shfleet/grid"
)

func TestTileStatuses(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	// 2 tiles x 3 days (2024-05-01..03): T000's first day DONE, its second
	// PROCESSING, its third FAILED; T001's first SCHEDULED, the rest PENDING.
	j, _ := processingJob(t, s, 2, 3)
	id := j.ID
	const d1, d2, d3 = "2024-05-01", "2024-05-02", "2024-05-03"
	if err := s.Schedule(ctx, id, "T000_"+d1, "T000_"+d2, "T000_"+d3, "T001_"+d1); err != nil {
		t.Fatal(err)
	}
	for _, it := range []string{"T000_" + d1, "T000_" + d2, "T000_" + d3} {
		if ok, err := s.BeginItem(ctx, id, it); !ok || err != nil {
			t.Fatalf("begin %s: %v %v", it, ok, err)
		}
	}
	if _, err := s.CompleteItem(ctx, id, "T000_"+d1, Result{PU: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.FailItem(ctx, id, "T000_"+d3, "bad request", true); err != nil {
		t.Fatal(err)
	}

	all, err := s.TileStatuses(ctx, id, "")
	if err != nil {
		t.Fatal(err)
	}
	want := TileStatuses{Dates: []string{d1, d2, d3}, Tiles: map[string]StatusCounts{
		"T000": {Done: 1, Processing: 1, Failed: 1},
		"T001": {Scheduled: 1, Pending: 2},
	}}
	if !reflect.DeepEqual(all, want) {
		t.Errorf("all dates: %+v, want %+v", all, want)
	}
	day2, err := s.TileStatuses(ctx, id, d2)
	if err != nil {
		t.Fatal(err)
	}
	want.Tiles = map[string]StatusCounts{"T000": {Processing: 1}, "T001": {Pending: 1}}
	if !reflect.DeepEqual(day2, want) {
		t.Errorf("%s: %+v, want %+v", d2, day2, want)
	}
	// A date without items: the dates are listed, no tile has counts.
	none, err := s.TileStatuses(ctx, id, "2024-06-01")
	if err != nil || len(none.Tiles) != 0 || len(none.Dates) != 3 {
		t.Errorf("a date without items: %+v, %v", none, err)
	}

	if _, err := s.TileStatuses(ctx, id, "May 2"); err == nil || !strings.Contains(err.Error(), "YYYY-MM-DD") {
		t.Errorf("bad date: %v, want an error naming the format", err)
	}
	if _, err := s.TileStatuses(ctx, "nope", ""); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown job: %v, want ErrNotFound", err)
	}
}

func TestOutlineOf(t *testing.T) {
	t.Parallel()
	sq := func(x0, y0, d float64) orb.Polygon {
		return orb.Polygon{{{x0, y0}, {x0 + d, y0}, {x0 + d, y0 + d}, {x0, y0 + d}, {x0, y0}}}
	}
	// Two AOIs, one a multipolygon whose second part has a hole (dropped):
	// the positions are rounded to 1e-5 degrees.
	withHole := sq(10, 10, 1)
	withHole = append(withHole, orb.Ring{{10.2, 10.2}, {10.4, 10.2}, {10.4, 10.4}, {10.2, 10.2}})
	aois := []grid.AOI{
		{Name: "a", Geometry: orb.MultiPolygon{sq(1.000004, 2.000006, 0.5)}},
		{Name: "b", Geometry: orb.MultiPolygon{sq(-3, -4, 1), withHole}},
	}
	got := OutlineOf(aois)
	want := Outline{
		{{1, 2.00001}, {1.5, 2.00001}, {1.5, 2.50001}, {1, 2.50001}, {1, 2.00001}},
		{{-3, -4}, {-2, -4}, {-2, -3}, {-3, -3}, {-3, -4}},
		{{10, 10}, {11, 10}, {11, 11}, {10, 11}, {10, 10}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("outline %v, want %v", got, want)
	}
	if b, ok := got.BBox(); !ok || b != [4]float64{-3, -4, 11, 11} {
		t.Errorf("bbox %v %v", b, ok)
	}
	if OutlineOf(nil) != nil {
		t.Error("no AOI: want a nil outline")
	}

	// A ring of 10,001 positions (10,000 distinct) over MaxOutlinePoints 2000:
	// stride ceil(10001/2000) = 6, so positions 0, 6, ..., 9996 (1667 of them)
	// plus the closing one.
	big := make(orb.Ring, 10001)
	for i := range 10000 {
		big[i] = orb.Point{float64(i) * 1e-3, float64(i%2) * 1e-3}
	}
	big[10000] = big[0]
	thinned := OutlineOf([]grid.AOI{{Name: "big", Geometry: orb.MultiPolygon{{big}}}})
	if len(thinned) != 1 || len(thinned[0]) != 1668 || thinned[0][0] != thinned[0][1667] {
		t.Errorf("thinned ring: %d rings, %d positions; want 1 ring of 1668 positions, closed", len(thinned), len(thinned[0]))
	}
	// More rings than MaxOutlineRings: the largest are kept.
	var many orb.MultiPolygon
	for i := range MaxOutlineRings + 5 {
		many = append(many, sq(float64(i), 0, 0.1))
	}
	many = append(many, sq(50, 50, 5))
	kept := OutlineOf([]grid.AOI{{Name: "many", Geometry: many}})
	if len(kept) != MaxOutlineRings || kept[0][0] != [2]float64{50, 50} {
		t.Errorf("many rings: kept %d, first starts at %v; want %d, the 5-degree square first", len(kept), kept[0][0], MaxOutlineRings)
	}
}
