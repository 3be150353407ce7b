package ops_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"shfleet/grid"
	"shfleet/internal/redistest"
	"shfleet/jobs"
	"shfleet/ops"
)

func rec(name string, w, s, e, n float64, analysed, failed bool) jobs.TileRecord {
	return jobs.TileRecord{Tile: grid.Tile{Name: name, EPSG: 4326, WGS84: [4]float64{w, s, e, n}}, Analysed: analysed, Failed: failed}
}

// TestJobMapThreeTiles draws a hand-made job of three 1-degree tiles at the
// equator: A (0..1°E, 0..1°N) done, B (1..2°E, 0..1°N) pending, C (0..1°E,
// 0..1°S) failed, under a square AOI outline from 0.5 to 1.5 on both axes.
//
// Worked by hand: the extent is 0..2°E x 1°S..1°N, its middle latitude 0, so
// longitudes are not shrunk (cos 0 = 1); 2° x 2° fits the 720 x 440 plot at
// min(720/2, 440/2) = 220 units per degree, 440 wide, centred: x0 = 20 +
// (720-440)/2 = 160, y0 = 20. So A is at (160, 20), B at (160+220, 20), C at
// (160, 20+220), each 220 x 220; the outline runs x 160+0.5*220 = 270 to 490,
// y 20+0.5*220 = 130 to 350. The scale bar: 111.32/220 = 0.506 km per unit, a
// quarter of the plot (180 units) is 91 km, so the bar is 50 km.
func TestJobMapThreeTiles(t *testing.T) {
	t.Parallel()
	in := ops.MapInput{
		Tiles: []jobs.TileRecord{
			rec("A", 0, 0, 1, 1, true, false),
			rec("B", 1, 0, 2, 1, true, false),
			rec("C", 0, -1, 1, 0, true, false),
		},
		Status: map[string]jobs.StatusCounts{
			"A": {Done: 2},
			"B": {Pending: 1, Scheduled: 1},
			"C": {Done: 1, Failed: 1},
		},
		Outline: jobs.Outline{{{0.5, -0.5}, {1.5, -0.5}, {1.5, 0.5}, {0.5, 0.5}, {0.5, -0.5}}},
	}
	m := ops.JobMap(in)
	svg := string(m.SVG)
	for _, want := range []string{
		`<rect x="160.0" y="20.0" width="220.0" height="220.0" fill="#27ae60" stroke="#fff" stroke-width="0.5" data-state="done"><title>A: done (2 done, 0 running, 0 pending, 0 failed)</title></rect>`,
		`<rect x="380.0" y="20.0" width="220.0" height="220.0" fill="#b3b9c0" stroke="#fff" stroke-width="0.5" data-state="pending"><title>B: pending (0 done, 0 running, 2 pending, 0 failed)</title></rect>`,
		`<rect x="160.0" y="240.0" width="220.0" height="220.0" fill="#e74c3c" stroke="#fff" stroke-width="0.5" data-state="failed"><title>C: failed (1 done, 0 running, 0 pending, 1 failed)</title></rect>`,
		`d="M270.0 350.0L490.0 350.0L490.0 130.0L270.0 130.0L270.0 350.0Z"`,
		`data-state="done">done 1</text>`, `data-state="pending">pending 1</text>`, `data-state="failed">failed 1</text>`,
		`data-state="running">running 0</text>`,
		`>50 km</text>`,
		// The SVG ends 62 below the drawing: 20 + 440 + 62 = 522 high.
		`viewBox="0 0 760 522"`,
	} {
		if !strings.Contains(svg, want) {
			t.Errorf("map lacks %s\n%s", want, svg)
		}
	}
	if n := strings.Count(svg, `stroke="#fff"`); n != 3 {
		t.Errorf("%d tile rects, want 3", n)
	}
	if m.Cells != 0 || m.Tiles[ops.MapDone] != 1 || m.Tiles[ops.MapPending] != 1 || m.Tiles[ops.MapFailed] != 1 {
		t.Errorf("result %+v", m)
	}
}

// TestJobMapStates checks the summary rules on single tiles.
func TestJobMapStates(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		rec      jobs.TileRecord
		counts   *jobs.StatusCounts
		want     ops.MapState
		wantFill string
	}{
		{"not analysed", rec("t", 0, 0, 1, 1, false, false), nil, ops.MapPending, "#b3b9c0"},
		{"catalog failed", rec("t", 0, 0, 1, 1, false, true), nil, ops.MapFailed, "#e74c3c"},
		{"no acquisition", rec("t", 0, 0, 1, 1, true, false), nil, ops.MapNoData, "#eef0f2"},
		{"processing", rec("t", 0, 0, 1, 1, true, false), &jobs.StatusCounts{Processing: 1, Pending: 3}, ops.MapRunning, "#f39c12"},
		{"some done, some pending", rec("t", 0, 0, 1, 1, true, false), &jobs.StatusCounts{Done: 1, Pending: 3}, ops.MapRunning, "#f39c12"},
		{"all done", rec("t", 0, 0, 1, 1, true, false), &jobs.StatusCounts{Done: 4}, ops.MapDone, "#27ae60"},
		{"one failed", rec("t", 0, 0, 1, 1, true, false), &jobs.StatusCounts{Done: 3, Processing: 1, Failed: 1}, ops.MapFailed, "#e74c3c"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := ops.MapInput{Tiles: []jobs.TileRecord{tc.rec}, Status: map[string]jobs.StatusCounts{}}
			if tc.counts != nil {
				in.Status["t"] = *tc.counts
			}
			svg := string(ops.JobMap(in).SVG)
			want := fmt.Sprintf(`fill="%s" stroke="#fff" stroke-width="0.5" data-state="%s"`, tc.wantFill, tc.want)
			if !strings.Contains(svg, want) {
				t.Errorf("tile drawn without %s:\n%s", want, svg)
			}
		})
	}
}

// TestJobMapAntimeridian: two tiles either side of 180° (179..180°E and
// 180..179°W, 0..1°N) are drawn side by side, not 358° apart. Worked by hand:
// the frame starts at 179°, the extent is 179..181 x 0..1°N, longitudes shrink
// by cos 0.5° = 0.999962, so 2° wide is 1.999924 units of latitude-degrees;
// min(720/1.999924, 440/1) = 360.0137 per degree: each tile is 360.0 x 360.0,
// the first at x 20, the second at 20 + 360.0 = 380.0, both at y 20 (the top).
func TestJobMapAntimeridian(t *testing.T) {
	t.Parallel()
	in := ops.MapInput{
		Tiles:  []jobs.TileRecord{rec("east", 179, 0, 180, 1, true, false), rec("west", -180, 0, -179, 1, true, false)},
		Status: map[string]jobs.StatusCounts{"east": {Done: 1}, "west": {Pending: 1}},
		// The AOI came cut at 180° into its two sides (grid.Parse does that).
		Outline: jobs.Outline{
			{{179.5, 0.25}, {180, 0.25}, {180, 0.75}, {179.5, 0.75}, {179.5, 0.25}},
			{{-180, 0.25}, {-179.5, 0.25}, {-179.5, 0.75}, {-180, 0.75}, {-180, 0.25}},
		},
	}
	svg := string(ops.JobMap(in).SVG)
	for _, want := range []string{
		`<rect x="20.0" y="20.0" width="360.0" height="360.0" fill="#27ae60"`,
		`<rect x="380.0" y="20.0" width="360.0" height="360.0" fill="#b3b9c0"`,
		// The western part of the outline is drawn east of 180°: x 380 (180°)
		// to 20 + 1.5*360 = 560 (179.5°W), y 20 + (1-0.75)*360 = 110 (0.75°N)
		// to 20 + (1-0.25)*360 = 290 (0.25°N).
		`d="M380.0 290.0L560.0 290.0L560.0 110.0L380.0 110.0L380.0 290.0Z"`,
		// The SVG ends 62 below the drawing, whose 360.0137 round up to 361:
		// 20 + 361 + 62 = 443 high.
		`viewBox="0 0 760 443"`,
	} {
		if !strings.Contains(svg, want) {
			t.Errorf("map lacks %s\n%s", want, svg)
		}
	}
	// A UTM tile whose corners wrapped (west -179.95°, east 179.9°) is one
	// box 179.9..180.05°E, not a band round the globe: 0.15° wide (cos 0.05° =
	// 1.0000), 0.1° high, it fits at min(720/0.15, 440/0.1) = 4400 per degree:
	// 660 x 440 at x 20 + (720-660)/2 = 50, y 20.
	wrapped := string(ops.JobMap(ops.MapInput{Tiles: []jobs.TileRecord{rec("w", -179.95, 0, 179.9, 0.1, true, false)}}).SVG)
	if want := `<rect x="50.0" y="20.0" width="660.0" height="440.0"`; !strings.Contains(wrapped, want) {
		t.Errorf("wrapped tile lacks %s:\n%s", want, wrapped)
	}
}

// TestJobMapRaster: more than MapMaxTiles tiles are drawn as raster cells and
// the page stays small. 150 x 140 = 21,000 tiles of 0.01° in a block, all done.
func TestJobMapRaster(t *testing.T) {
	t.Parallel()
	var in ops.MapInput
	in.Status = map[string]jobs.StatusCounts{}
	for i := range 150 {
		for j := range 140 {
			name := fmt.Sprintf("t%d_%d", i, j)
			w, s := float64(i)*0.01, float64(j)*0.01
			in.Tiles = append(in.Tiles, rec(name, w, s, w+0.01, s+0.01, true, false))
			in.Status[name] = jobs.StatusCounts{Done: 1}
		}
	}
	m := ops.JobMap(in)
	svg := string(m.SVG)
	// One path of done cells ("M... h... v... h-... z" per cell), no rect.
	paths := regexp.MustCompile(`<path class="tiles" fill="#27ae60" stroke="#fff" stroke-width="0.3" data-state="done" d="([^"]*)"/>`).FindAllStringSubmatch(svg, -1)
	if len(paths) != 1 || strings.Contains(svg, `<path class="tiles" fill="#b3b9c0"`) {
		t.Fatalf("want one path of done cells and none of another state: %d", len(paths))
	}
	cells := strings.Count(paths[0][1], "z")
	// The block is 1.5° x 1.4° at 0.7°N (cos 0.7° = 0.999925): 1.49989
	// degree-units wide, 1.4 high; it fits at min(720/1.49989, 440/1.4) =
	// 314.29 per degree: 471.39 x 440 units. A cell is 471.39/150 = 3.1426
	// units, so the raster is 150 x ceil(440/3.1426 = 140.01) = 141 cells; a
	// tile (3.1426 x 3.1429 units) is a bit larger than a cell, so no two tiles'
	// centres share one: 21,000 cells drawn.
	if m.Cells != 21000 || cells != 21000 || m.Cols != 150 || m.Rows != 141 {
		t.Fatalf("raster: %d cells drawn, result %d cells of %dx%d; want 21000 of 150x141", cells, m.Cells, m.Cols, m.Rows)
	}
	if m.Tiles[ops.MapDone] != 21000 {
		t.Errorf("tiles miscounted: %v", m.Tiles)
	}
	if len(svg) > 800_000 {
		t.Errorf("raster SVG is %d bytes, want < 800 kB", len(svg))
	}
	if strings.Contains(svg, "<title>") {
		t.Errorf("more than MapTitledTiles cells carry titles")
	}
}

// TestJobMapPage serves the map of a stored 3-tile job (no outline stored)
// through the page: the map fragment alone, the date selector, and what a bad
// date or an unknown job shows.
func TestJobMapPage(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	rdb := rs.Client()
	defer rdb.Close()
	prefix := redistest.Prefix(t)
	ctx := context.Background()
	st := &jobs.Store{Redis: rdb, Prefix: prefix}
	day := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	spec := jobs.Spec{Name: "map <page>", Collection: "sentinel-2-l2a", Evalscript: "//VERSION=3", From: day, To: day.AddDate(0, 0, 2),
		OutputURL: "file:///tmp/x"}
	tiles := []grid.Tile{
		{Name: "A", EPSG: 4326, WGS84: [4]float64{0, 0, 1, 1}, Width: 10, Height: 10},
		{Name: "B", EPSG: 4326, WGS84: [4]float64{1, 0, 2, 1}, Width: 10, Height: 10},
		{Name: "C", EPSG: 4326, WGS84: [4]float64{0, -1, 1, 0}, Width: 10, Height: 10},
	}
	job, err := st.Create(ctx, spec, tiles)
	if err != nil {
		t.Fatal(err)
	}
	// A and B have an item on 2025-06-01 and 2025-06-02; C is not analysed.
	var items []jobs.Item
	for _, tile := range []string{"A", "B"} {
		for _, d := range []time.Time{day, day.AddDate(0, 0, 1)} {
			items = append(items, jobs.Item{ID: jobs.ItemID(tile, d), Tile: tile, Date: d.Format(time.DateOnly), From: d, To: d.AddDate(0, 0, 1)})
		}
	}
	if _, err := st.RecordAnalysis(ctx, job.ID, []string{"A", "B"}, items, 1); err != nil {
		t.Fatal(err)
	}
	h, err := ops.NewHandler(ops.Config{Redis: rdb, Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	srv := httptest.NewServer(h)
	defer srv.Close()

	_, page := get(t, srv.URL, "/jobs") // the newest (only) job, all dates
	for _, want := range []string{
		`<section class="jobmap" id="jobmap" data-job="` + job.ID + `" data-date="" data-refresh="5">`,
		`(map &lt;page&gt;)`,
		`<option value="2025-06-01">2025-06-01</option><option value="2025-06-02">2025-06-02</option>`,
		// Worked as in TestJobMapThreeTiles: the same three boxes.
		`<rect x="160.0" y="20.0" width="220.0" height="220.0" fill="#b3b9c0" stroke="#fff" stroke-width="0.5" data-state="pending"><title>A: pending (0 done, 0 running, 2 pending, 0 failed)</title>`,
		`<rect x="160.0" y="240.0" width="220.0" height="220.0" fill="#b3b9c0" stroke="#fff" stroke-width="0.5" data-state="pending"><title>C: pending (0 done, 0 running, 0 pending, 0 failed)</title>`,
		"stored without its AOI outline",
	} {
		if !strings.Contains(string(page), want) {
			t.Errorf("/jobs lacks %s", want)
		}
	}
	_, frag := get(t, srv.URL, "/jobs?fragment=map&job="+job.ID+"&date=2025-06-02")
	if strings.Contains(string(frag), "<html") || strings.Contains(string(frag), "<option") || !strings.Contains(string(frag), `<svg class="map"`) ||
		!strings.Contains(string(frag), `data-state="pending"><title>B: pending (0 done, 0 running, 1 pending, 0 failed)`) {
		t.Errorf("map fragment of 2025-06-02: %.300s", frag)
	}
	_, sel := get(t, srv.URL, "/jobs?job="+job.ID+"&date=2025-06-02")
	if !strings.Contains(string(sel), `<option value="2025-06-02" selected>2025-06-02</option>`) {
		t.Errorf("the date selector does not show 2025-06-02 selected")
	}
	for q, want := range map[string]string{
		"job=" + job.ID + "&date=June": `date &#34;June&#34;: give a day as YYYY-MM-DD, or none for all dates`,
		"job=NOPE":                     "job NOPE: not found; list jobs with `enqueue list`",
		"job=a/b":                      `job &#34;a/b&#34;: not a valid job id`,
	} {
		_, body := get(t, srv.URL, "/jobs?fragment=map&"+q)
		if !strings.Contains(string(body), `<div class="errors">`) || !strings.Contains(string(body), want) {
			t.Errorf("?%s: %s; want an error with %s", q, body, want)
		}
	}
}

// BenchmarkJobMap100kTiles draws a 100,000-tile job (316 x 317 tiles of
// 0.01°, a third done, a few running, the rest pending) and reports the SVG's
// size.
func BenchmarkJobMap100kTiles(b *testing.B) {
	var in ops.MapInput
	in.Status = map[string]jobs.StatusCounts{}
	for i := range 316 {
		for j := range 317 {
			name := fmt.Sprintf("t%d_%d", i, j)
			w, s := 10+float64(i)*0.01, 45+float64(j)*0.01
			in.Tiles = append(in.Tiles, rec(name, w, s, w+0.01, s+0.01, true, false))
			switch {
			case i < 105:
				in.Status[name] = jobs.StatusCounts{Done: 3}
			case i < 107:
				in.Status[name] = jobs.StatusCounts{Done: 1, Processing: 1, Pending: 1}
			default:
				in.Status[name] = jobs.StatusCounts{Pending: 3}
			}
		}
	}
	var size int
	for b.Loop() {
		size = len(ops.JobMap(in).SVG)
	}
	b.ReportMetric(float64(size), "svg-bytes")
}
