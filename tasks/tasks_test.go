package tasks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"shfleet/grid"
	"shfleet/jobs"
	"shfleet/quota"
	"shfleet/sentinel"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want Action
	}{
		{"429", fmt.Errorf("process: %w", &sentinel.RateLimitError{RetryAfter: time.Second}), ActionWait},
		{"quota booked ahead", &WaitError{After: 3 * time.Second}, ActionWait},
		{"too far", &quota.TooFarError{Ahead: time.Minute}, ActionWait},
		{"403 without evidence", &sentinel.ForbiddenError{Body: "quota"}, ActionFail},
		{"403 permission", &PermissionError{Err: &sentinel.ForbiddenError{Code: "COMMON_INSUFFICIENT_PERMISSIONS"}}, ActionFail},
		{"403 month spent", &MonthSpentError{Err: &sentinel.ForbiddenError{Body: "quota"}, Evidence: "0 PU left"}, ActionPauseMonth},
		{"own monthly budget", &quota.MonthlyQuotaError{Month: "2026-11"}, ActionPauseMonth},
		{"400", &sentinel.APIError{Status: 400, Message: "bad evalscript"}, ActionFail},
		{"404", &sentinel.APIError{Status: 404}, ActionFail},
		{"503", &sentinel.APIError{Status: 503}, ActionRetry},
		{"408", &sentinel.APIError{Status: 408}, ActionRetry},
		{"truncated body", fmt.Errorf("store: %w", io.ErrUnexpectedEOF), ActionRetry},
		{"401 after refresh", &sentinel.AuthError{Status: 401}, ActionRetry},
		{"token endpoint 429", &sentinel.TokenError{Status: 429}, ActionRetry},
		{"validation", &sentinel.FieldError{Field: "output.width"}, ActionFail},
		{"skip retry", fmt.Errorf("x: %w", asynq.SkipRetry), ActionFail},
		{"never admissible", fmt.Errorf("x: %w", quota.ErrCostExceedsCapacity), ActionFail},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Classify(tt.err); got != tt.want {
				t.Fatalf("Classify = %s, want %s", got, tt.want)
			}
			if IsFailure(tt.err) == (tt.want == ActionWait) {
				t.Fatalf("IsFailure = %v for action %s", IsFailure(tt.err), tt.want)
			}
		})
	}
	if IsFailure(context.Canceled) {
		t.Fatal("a cancelled run (shutdown) must not count as a failure")
	}
}

func TestRetryDelay(t *testing.T) {
	if d := RetryDelay(5, &WaitError{After: 7 * time.Second}, nil); d != 7*time.Second {
		t.Fatalf("wait delay %s, want the quota's 7s", d)
	}
	if d := RetryDelay(0, &sentinel.RateLimitError{RetryAfter: 1500 * time.Millisecond}, nil); d != 1500*time.Millisecond {
		t.Fatalf("429 delay %s, want Retry-After", d)
	}
	for n := 0; n < 20; n++ {
		d := RetryDelay(n, errors.New("boom"), nil)
		ceil := min(RetryBase<<n, RetryMax)
		if n > 10 {
			ceil = RetryMax
		}
		if d < ceil/2 || d > ceil {
			t.Fatalf("backoff(%d) = %s, want within [%s, %s]", n, d, ceil/2, ceil)
		}
	}
}

func tileAt(name string, lon, lat float64) grid.Tile {
	return grid.Tile{Name: name, EPSG: 4326, BBox: [4]float64{lon, lat, lon + 0.1, lat + 0.1},
		WGS84: [4]float64{lon, lat, lon + 0.1, lat + 0.1}, Width: 100, Height: 100}
}

func TestGroupTiles(t *testing.T) {
	var tiles []grid.Tile
	for i := 0; i < 10; i++ {
		tiles = append(tiles, tileAt(fmt.Sprintf("a%02d", i), 14.0+float64(i)*0.05, 46.2))
	}
	tiles = append(tiles, tileAt("far", 20.5, 40.5))
	groups := GroupTiles(tiles, 4, 1)
	if len(groups) != 4 { // 10 neighbours in chunks of 4, 4, 2, and the far one
		t.Fatalf("%d groups, want 4", len(groups))
	}
	seen := map[string]bool{}
	for _, g := range groups {
		for _, tl := range g {
			if seen[tl.Name] {
				t.Fatalf("tile %s in two groups", tl.Name)
			}
			seen[tl.Name] = true
		}
	}
	if len(seen) != len(tiles) {
		t.Fatalf("%d tiles grouped, want %d", len(seen), len(tiles))
	}
	again := GroupTiles(tiles, 4, 1)
	for i := range groups {
		if groups[i][0].Name != again[i][0].Name {
			t.Fatal("grouping is not deterministic")
		}
	}
}

func TestItemsForModes(t *testing.T) {
	day := func(d int) time.Time { return time.Date(2025, 6, d, 10, 30, 0, 0, time.UTC) }
	tile := tileAt("t1", 14.0, 46.0)
	other := tileAt("t2", 15.0, 46.0)
	scenes := []Scene{
		{ID: "s1", BBox: [4]float64{13.9, 45.9, 14.2, 46.2}, Datetime: day(3)},
		{ID: "s2", BBox: [4]float64{13.9, 45.9, 14.2, 46.2}, Datetime: day(3).Add(time.Minute)}, // same day
		{ID: "s3", BBox: [4]float64{13.9, 45.9, 14.2, 46.2}, Datetime: day(20)},
		{ID: "s4", BBox: [4]float64{30, 30, 31, 31}, Datetime: day(5)}, // elsewhere
	}
	spec := jobs.Spec{From: time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC),
		Evalscript: "//VERSION=3\nfunction setup(){return {input:[\"B02\",\"B03\",\"B04\"], output:{bands:3}}}"}
	items, err := ItemsFor(spec, []grid.Tile{tile, other}, scenes)
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 2 || items[0].Date != "2025-06-03" || items[1].Date != "2025-06-20" {
		t.Fatalf("acquisition mode: %+v, want one item per tile and day (3rd, 20th)", items)
	}
	if items[0].To.Sub(items[0].From) != 24*time.Hour || items[0].EstimatedMilliPU != sentinel.MilliPU(sentinel.EstimatePU(sentinel.PUParams{Width: 100, Height: 100, InputBands: 3})) {
		t.Fatalf("item range/estimate: %+v", items[0])
	}

	spec.Mode, spec.Interval = jobs.ModeInterval, "P7D"
	items, err = ItemsFor(spec, []grid.Tile{tile}, scenes)
	if err != nil {
		t.Fatal(err)
	}
	// Weeks from Jun 1: [1,8) has the 3rd, [15,22) the 20th; the others are skipped.
	if len(items) != 2 || items[0].Date != "2025-06-01" || items[1].Date != "2025-06-15" {
		t.Fatalf("interval mode: %+v, want the two weeks with acquisitions", items)
	}
	spec.Interval = "bogus"
	if _, err := ItemsFor(spec, []grid.Tile{tile}, scenes); err == nil {
		t.Fatal("bad interval accepted")
	}
}

func TestBuildProcessRequestIsValid(t *testing.T) {
	tile := grid.Tile{Name: "33N-0450000-5090000-10km", EPSG: 32633, BBox: [4]float64{450000, 5090000, 460000, 5100000}, Width: 1000, Height: 1000}
	item := jobs.Item{From: time.Date(2025, 6, 3, 0, 0, 0, 0, time.UTC), To: time.Date(2025, 6, 4, 0, 0, 0, 0, time.UTC)}
	req := BuildProcessRequest(jobs.Spec{Evalscript: "//VERSION=3"}, tile, item)
	if err := sentinel.ValidateProcessRequest(req); err != nil {
		t.Fatal(err)
	}
	if req.Input.Bounds.Properties.CRS != sentinel.CRSEPSGPrefix+"32633" || req.Input.Data[0].Type != DefaultCollection {
		t.Fatalf("request: %+v", req.Input)
	}
}
