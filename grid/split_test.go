package grid

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/paulmach/orb"
	"github.com/paulmach/orb/planar"
	"github.com/wroge/wgs84"

	"shfleet/sentinel"
)

func box(name string, minLon, minLat, maxLon, maxLat float64) AOI {
	b := orb.Bound{Min: orb.Point{minLon, minLat}, Max: orb.Point{maxLon, maxLat}}
	return AOI{Name: name, Geometry: orb.MultiPolygon{{b.ToRing()}}, Source: "test"}
}

func mustGrid(t testing.TB, name string) Grid {
	t.Helper()
	g, err := ParseGrid(name)
	if err != nil {
		t.Fatalf("ParseGrid(%q): %v", name, err)
	}
	return g
}

func names(tiles []Tile) []string {
	out := make([]string, len(tiles))
	for i, t := range tiles {
		out[i] = t.Name
	}
	return out
}

func TestParseGrid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		name    string
		kind    Kind
		size    float64
		batchID int
	}{
		{"utm-10km", "utm-10km", UTM, 10000, 1},
		{"UTM-20KM", "utm-20km", UTM, 20040, 0},
		{"utm-100km", "utm-100km", UTM, 100080, 2},
		{"wgs84-1deg", "wgs84-1deg", WGS84, 1, 3},
		{"wgs84-0.5deg", "wgs84-0.5deg", WGS84, 0.5, -1},
		{"wgs84-0.250deg", "wgs84-0.25deg", WGS84, 0.25, -1},
		{"wgs84-0.1deg", "wgs84-0.1deg", WGS84, 0.1, -1},
	}
	for _, tc := range tests {
		g, err := ParseGrid(tc.in)
		if err != nil {
			t.Errorf("ParseGrid(%q): %v", tc.in, err)
			continue
		}
		id, ok := g.BatchGridID()
		if g.Name != tc.name || g.Kind != tc.kind || g.Size != tc.size || ok != (tc.batchID >= 0) || (ok && id != tc.batchID) {
			t.Errorf("ParseGrid(%q) = %+v (batch id %d %v), want %s kind %d size %g batch %d", tc.in, g, id, ok, tc.name, tc.kind, tc.size, tc.batchID)
		}
	}
	if _, ok := (Grid{}).BatchGridID(); ok {
		t.Error("the zero Grid claims a Batch grid id")
	}
	for in, want := range map[string]string{
		"utm-5km":      "valid grids: utm-10km, utm-20km, utm-100km, laea-100km, laea-20km, wgs84-1deg, wgs84-<x>deg",
		"":             "valid grids",
		"wgs84-0.7deg": "does not divide 180",
		"wgs84-0deg":   "not a positive number",
		"wgs84-xdeg":   "not a positive number",
		"wgs84-200deg": "out of range",
	} {
		_, err := ParseGrid(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseGrid(%q) err = %v, want it to contain %q", in, err, want)
		}
	}
}

func TestSplitUTMSnapping(t *testing.T) {
	t.Parallel()
	g := mustGrid(t, "utm-10km")
	tiles, err := Split([]AOI{box("p", 14.499, 45.999, 14.501, 46.001)}, g, SplitOptions{Resolution: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(tiles) != 1 {
		t.Fatalf("got tiles %v, want 1", names(tiles))
	}
	tl := tiles[0]
	// 14.5°E is 0.5° west of zone 33's central meridian: easting ≈ 461 km.
	if tl.Name != "33N-0460000-5090000-10km" || tl.EPSG != 32633 || tl.AOI != "p" {
		t.Errorf("tile = %+v, want 33N-0460000-5090000-10km in EPSG 32633", tl)
	}
	for i, v := range tl.BBox {
		if math.Mod(v, 10000) != 0 {
			t.Errorf("BBox[%d] = %v is not a multiple of 10000", i, v)
		}
	}
	if tl.BBox[2]-tl.BBox[0] != 10000 || tl.BBox[3]-tl.BBox[1] != 10000 || tl.Width != 1000 || tl.Height != 1000 {
		t.Errorf("bbox %v size %dx%d, want 10 km and 1000 px", tl.BBox, tl.Width, tl.Height)
	}
	// The point, projected by wgs84's full transformation, is inside the tile,
	// and the tile's WGS84 box contains the point.
	e, n, _ := wgs84.Transform(wgs84.LonLat(), wgs84.UTM(33, true))(14.5, 46, 0)
	if e < tl.BBox[0] || e > tl.BBox[2] || n < tl.BBox[1] || n > tl.BBox[3] {
		t.Errorf("projected point %.1f,%.1f outside tile bbox %v", e, n, tl.BBox)
	}
	if w := tl.WGS84; !(w[0] < 14.5 && 14.5 < w[2] && w[1] < 46 && 46 < w[3]) || w[2]-w[0] > 0.2 || w[3]-w[1] > 0.1 {
		t.Errorf("WGS84 box %v does not tightly contain 14.5,46", w)
	}
}

func TestSplitTwoZones(t *testing.T) {
	t.Parallel()
	tiles, err := Split([]AOI{box("border", 11.8, 46.0, 12.2, 46.1)}, mustGrid(t, "utm-10km"), SplitOptions{Resolution: 10})
	if err != nil {
		t.Fatal(err)
	}
	byEPSG := map[int]int{}
	for _, tl := range tiles {
		byEPSG[tl.EPSG]++
		switch tl.EPSG {
		case 32632:
			if !strings.HasPrefix(tl.Name, "32N-") || tl.WGS84[0] > 12 {
				t.Errorf("zone 32 tile %s has WGS84 %v", tl.Name, tl.WGS84)
			}
		case 32633:
			if !strings.HasPrefix(tl.Name, "33N-") || tl.WGS84[2] < 12 {
				t.Errorf("zone 33 tile %s has WGS84 %v", tl.Name, tl.WGS84)
			}
		default:
			t.Errorf("tile %s has EPSG %d", tl.Name, tl.EPSG)
		}
	}
	if byEPSG[32632] == 0 || byEPSG[32633] == 0 {
		t.Errorf("tiles per EPSG = %v, want both 32632 and 32633", byEPSG)
	}
	// An AOI that only reaches the zone border does not spill into the next zone.
	tiles, err = Split([]AOI{box("west", 11.8, 46.0, 12.0, 46.1)}, mustGrid(t, "utm-10km"), SplitOptions{Resolution: 10})
	if err != nil {
		t.Fatal(err)
	}
	for _, tl := range tiles {
		if tl.EPSG != 32632 {
			t.Errorf("AOI ending at 12°E got tile %s in EPSG %d", tl.Name, tl.EPSG)
		}
	}
}

func TestSplitEquator(t *testing.T) {
	t.Parallel()
	tiles, err := Split([]AOI{box("eq", 14.9, -0.05, 15.1, 0.05)}, mustGrid(t, "utm-10km"), SplitOptions{Resolution: 10})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, tl := range tiles {
		seen[tl.EPSG] = true
		if tl.EPSG == 32733 && (!strings.HasPrefix(tl.Name, "33S-") || tl.BBox[3] != 10_000_000) {
			t.Errorf("southern tile %s bbox %v, want 33S and top at 10,000,000", tl.Name, tl.BBox)
		}
		if tl.EPSG == 32633 && tl.BBox[1] != 0 {
			t.Errorf("northern tile %s bbox %v, want bottom at 0", tl.Name, tl.BBox)
		}
	}
	if !seen[32633] || !seen[32733] || len(seen) != 2 {
		t.Errorf("EPSG codes %v, want 32633 and 32733", seen)
	}
}

func TestSplitIntersectionFilter(t *testing.T) {
	t.Parallel()
	g := mustGrid(t, "utm-10km")
	diag := AOI{Name: "diag", Source: "test", Geometry: orb.MultiPolygon{{{
		{14.0, 45.0}, {14.01, 45.0}, {15.0, 45.99}, {15.0, 46.0}, {14.99, 46.0}, {14.0, 45.01}, {14.0, 45.0},
	}}}}
	lshape := AOI{Name: "L", Source: "test", Geometry: orb.MultiPolygon{{{
		{14.0, 45.0}, {15.0, 45.0}, {15.0, 45.05}, {14.05, 45.05}, {14.05, 46.0}, {14.0, 46.0}, {14.0, 45.0},
	}}}}
	for _, a := range []AOI{diag, lshape} {
		b := a.Geometry.Bound()
		full, err := Split([]AOI{box("bbox", b.Min[0], b.Min[1], b.Max[0], b.Max[1])}, g, SplitOptions{Resolution: 10})
		if err != nil {
			t.Fatal(err)
		}
		thin, err := Split([]AOI{a}, g, SplitOptions{Resolution: 10})
		if err != nil {
			t.Fatal(err)
		}
		if len(thin) == 0 || len(thin)*3 > len(full) {
			t.Errorf("%s: %d tiles vs %d for its bbox; want far fewer", a.Name, len(thin), len(full))
		}
		fullNames := names(full)
		for _, tl := range thin {
			if !slices.Contains(fullNames, tl.Name) {
				t.Errorf("%s: tile %s not among its bbox's tiles", a.Name, tl.Name)
			}
		}
	}
}

func TestSplitHole(t *testing.T) {
	t.Parallel()
	g := mustGrid(t, "wgs84-0.5deg")
	outer := orb.Bound{Min: orb.Point{10, 40}, Max: orb.Point{15, 45}}.ToRing()
	hole := orb.Bound{Min: orb.Point{11.2, 41.2}, Max: orb.Point{13.8, 43.8}}.ToRing()
	slices.Reverse(hole)
	tiles, err := Split([]AOI{{Name: "donut", Geometry: orb.MultiPolygon{{outer, hole}}}}, g, SplitOptions{Resolution: 0.0005})
	if err != nil {
		t.Fatal(err)
	}
	// 10 x 10 cells minus the 4 x 4 entirely inside the hole (11.5..13.5).
	if len(tiles) != 100-16 {
		t.Errorf("got %d tiles, want 84", len(tiles))
	}
	for _, tl := range tiles {
		if tl.BBox[0] >= 11.5 && tl.BBox[2] <= 13.5 && tl.BBox[1] >= 41.5 && tl.BBox[3] <= 43.5 {
			t.Errorf("tile %s lies inside the hole", tl.Name)
		}
	}
}

func TestSplitWGS84(t *testing.T) {
	t.Parallel()
	tests := []struct {
		grid string
		res  float64
		aoi  AOI
		want []string
		px   int
	}{
		{"wgs84-1deg", 0.0004, box("a", 13.2, 45.3, 14.7, 46.2), []string{"wgs84-1deg-E013N45", "wgs84-1deg-E013N46", "wgs84-1deg-E014N45", "wgs84-1deg-E014N46"}, 2500},
		{"wgs84-1deg", 0.001, box("aligned", 13, 45, 14, 46), []string{"wgs84-1deg-E013N45"}, 1000},
		{"wgs84-1deg", 0.001, box("west", -1.5, -0.5, -0.5, 0.5), []string{"wgs84-1deg-W001N00", "wgs84-1deg-W001S01", "wgs84-1deg-W002N00", "wgs84-1deg-W002S01"}, 1000},
		{"wgs84-0.5deg", 0.0002, box("half", 13.2, 45.3, 13.7, 45.6), []string{"wgs84-0.5deg-E013.0N45.0", "wgs84-0.5deg-E013.0N45.5", "wgs84-0.5deg-E013.5N45.0", "wgs84-0.5deg-E013.5N45.5"}, 2500},
		{"wgs84-0.25deg", 0.0001, box("q", -0.1, 10.1, 0.1, 10.2), []string{"wgs84-0.25deg-E000.00N10.00", "wgs84-0.25deg-W000.25N10.00"}, 2500},
	}
	for _, tc := range tests {
		tiles, err := Split([]AOI{tc.aoi}, mustGrid(t, tc.grid), SplitOptions{Resolution: tc.res})
		if err != nil {
			t.Errorf("%s %s: %v", tc.grid, tc.aoi.Name, err)
			continue
		}
		if got := names(tiles); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s %s: tiles %v, want %v", tc.grid, tc.aoi.Name, got, tc.want)
		}
		for _, tl := range tiles {
			if tl.EPSG != 4326 || tl.BBox != tl.WGS84 || tl.Width != tc.px || tl.Height != tc.px {
				t.Errorf("%s: %+v, want EPSG 4326, bbox = wgs84, %d px", tl.Name, tl, tc.px)
			}
		}
	}
	tiles, _ := Split([]AOI{box("half", 13.2, 45.3, 13.7, 45.6)}, mustGrid(t, "wgs84-0.5deg"), SplitOptions{Resolution: 0.0002})
	if len(tiles) > 0 && tiles[0].BBox != [4]float64{13, 45, 13.5, 45.5} {
		t.Errorf("first 0.5° tile bbox = %v, want [13 45 13.5 45.5]", tiles[0].BBox)
	}
}

func TestSplitPixelLimit(t *testing.T) {
	t.Parallel()
	aoi := box("p", 14.45, 46.0, 14.55, 46.05)
	_, err := Split([]AOI{aoi}, mustGrid(t, "utm-100km"), SplitOptions{Resolution: 10})
	var pe *PixelLimitError
	if !errors.As(err, &pe) {
		t.Fatalf("err = %v, want *PixelLimitError", err)
	}
	want := "utm-100km at 10 m is 10008 px wide; the Process API allows 2500: use --resolution >= 40.032 or a smaller grid such as utm-20km, or --subdivide"
	if err.Error() != want {
		t.Errorf("err = %q\nwant  %q", err, want)
	}
	_, err = Split([]AOI{aoi}, mustGrid(t, "wgs84-1deg"), SplitOptions{Resolution: 0.0001})
	if err == nil || !strings.Contains(err.Error(), "wgs84-1deg at 0.0001 deg is 10000 px wide") || !strings.Contains(err.Error(), "wgs84-0.25deg") {
		t.Errorf("wgs84 err = %v", err)
	}
	// Buffer counts towards the limit.
	_, err = Split([]AOI{aoi}, mustGrid(t, "utm-10km"), SplitOptions{Resolution: 4, Buffer: 10})
	if !errors.As(err, &pe) || pe.Pixels != 2505 {
		t.Errorf("buffered err = %v, want 2505 px refusal", err)
	}
	// A metre resolution on a degree grid is caught.
	if _, err := Split([]AOI{aoi}, mustGrid(t, "wgs84-1deg"), SplitOptions{Resolution: 10}); err == nil || !strings.Contains(err.Error(), "0 px") {
		t.Errorf("resolution 10 on wgs84: err = %v", err)
	}
}

func TestSplitSubdivide(t *testing.T) {
	t.Parallel()
	// A whole 1° cell at 0.0001° (10000 px) splits into 4 x 4 tiles of 2500 px.
	tiles, err := Split([]AOI{box("c", 13, 45, 14, 46)}, mustGrid(t, "wgs84-1deg"), SplitOptions{Resolution: 0.0001, Subdivide: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(tiles) != 16 {
		t.Fatalf("got %d tiles %v, want 16", len(tiles), names(tiles))
	}
	byName := map[string]Tile{}
	for _, tl := range tiles {
		byName[tl.Name] = tl
		if tl.Width != 2500 || tl.Height != 2500 {
			t.Errorf("%s is %dx%d px, want 2500", tl.Name, tl.Width, tl.Height)
		}
	}
	for r := range 4 {
		for c := range 4 {
			n := fmt.Sprintf("wgs84-1deg-E013N45_r%dc%d", r, c)
			tl, ok := byName[n]
			if !ok {
				t.Errorf("missing %s", n)
				continue
			}
			want := [4]float64{13 + 0.25*float64(c), 45.75 - 0.25*float64(r), 13.25 + 0.25*float64(c), 46 - 0.25*float64(r)}
			if tl.BBox != want {
				t.Errorf("%s bbox %v, want %v (row 0 north)", n, tl.BBox, want)
			}
		}
	}
	// utm-100km at 10 m: 10008 px splits 6 x 6 into 1668 px; a small AOI keeps
	// only the sub-tiles it touches, inside its parent cell.
	aoi := box("p", 14.45, 46.0, 14.55, 46.05)
	tiles, err = Split([]AOI{aoi}, mustGrid(t, "utm-100km"), SplitOptions{Resolution: 10, Subdivide: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(tiles) == 0 || len(tiles) > 4 {
		t.Fatalf("got %d sub-tiles %v, want 1..4", len(tiles), names(tiles))
	}
	for _, tl := range tiles {
		if tl.Width != 1668 || !strings.Contains(tl.Name, "-100km_r") || tl.BBox[2]-tl.BBox[0] != 16680 {
			t.Errorf("sub-tile %+v, want 1668 px, 16680 m and an _r<row>c<col> name", tl)
		}
		var zone, e, n int
		var row, col int
		if _, err := fmt.Sscanf(tl.Name, "%dN-%d-%d-100km_r%dc%d", &zone, &e, &n, &row, &col); err != nil {
			t.Errorf("name %s: %v", tl.Name, err)
			continue
		}
		if e%100080 != 0 || n%100080 != 0 || tl.BBox[0] < float64(e) || tl.BBox[2] > float64(e+100080) || tl.BBox[1] < float64(n) || tl.BBox[3] > float64(n+100080) {
			t.Errorf("sub-tile %s bbox %v outside its parent cell", tl.Name, tl.BBox)
		}
	}
}

func TestSplitBuffer(t *testing.T) {
	t.Parallel()
	aoi := box("p", 14.499, 45.999, 14.501, 46.001)
	tiles, err := Split([]AOI{aoi}, mustGrid(t, "utm-10km"), SplitOptions{Resolution: 10, Buffer: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(tiles) != 1 {
		t.Fatalf("got %v", names(tiles))
	}
	tl := tiles[0]
	if tl.BBox != [4]float64{459900, 5089900, 470100, 5100100} || tl.Width != 1020 || tl.Name != "33N-0460000-5090000-10km" {
		t.Errorf("buffered tile %+v, want bbox enlarged by 100 m and 1020 px", tl)
	}
}

func TestSplitDedupeAndDeterminism(t *testing.T) {
	t.Parallel()
	g := mustGrid(t, "utm-10km")
	aois := []AOI{box("b", 14.45, 46.0, 14.55, 46.05), box("a", 14.50, 46.0, 14.65, 46.05), box("c", 14.451, 46.001, 14.452, 46.002)}
	t1, err := Split(aois, g, SplitOptions{Resolution: 10})
	if err != nil {
		t.Fatal(err)
	}
	t2, err := Split(aois, g, SplitOptions{Resolution: 10})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(t1, t2) {
		t.Error("two runs differ")
	}
	if !slices.IsSortedFunc(t1, func(a, b Tile) int { return strings.Compare(a.Name, b.Name) }) {
		t.Errorf("tiles not sorted: %v", names(t1))
	}
	seen := map[string]bool{}
	shared := 0
	for _, tl := range t1 {
		if seen[tl.Name] {
			t.Errorf("duplicate tile %s", tl.Name)
		}
		seen[tl.Name] = true
		if len(tl.AOIs) == 0 || tl.AOI != tl.AOIs[0] {
			t.Errorf("%s: AOI %q AOIs %v", tl.Name, tl.AOI, tl.AOIs)
		}
		if len(tl.AOIs) > 1 {
			shared++
			order := map[string]int{"b": 0, "a": 1, "c": 2}
			if !slices.IsSortedFunc(tl.AOIs, func(x, y string) int { return order[x] - order[y] }) {
				t.Errorf("shared tile %s: AOIs %v not in input order b, a, c", tl.Name, tl.AOIs)
			}
		}
	}
	if shared == 0 {
		t.Errorf("no tile shared by overlapping AOIs: %v", names(t1))
	}
	// Input order does not change the tile set.
	t3, err := Split([]AOI{aois[2], aois[1], aois[0]}, g, SplitOptions{Resolution: 10})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(names(t1), names(t3)) {
		t.Errorf("tile names depend on AOI order: %v vs %v", names(t1), names(t3))
	}
}

func TestSplitErrors(t *testing.T) {
	t.Parallel()
	aoi := box("p", 14.45, 46.0, 14.55, 46.05)
	g := mustGrid(t, "utm-10km")
	tests := []struct {
		name string
		aois []AOI
		g    Grid
		opt  SplitOptions
		want string
	}{
		{"no resolution", []AOI{aoi}, g, SplitOptions{}, "resolution 0 is not valid"},
		{"negative buffer", []AOI{aoi}, g, SplitOptions{Resolution: 10, Buffer: -1}, "buffer -1"},
		{"zero grid", []AOI{aoi}, Grid{}, SplitOptions{Resolution: 10}, "ParseGrid"},
		{"polar", []AOI{box("arctic", 10, 83, 11, 85)}, g, SplitOptions{Resolution: 10}, "use a wgs84 grid"},
		{"max tiles", []AOI{box("big", 10, 45, 12, 47)}, g, SplitOptions{Resolution: 10, MaxTiles: 50}, "more than 50 tiles"},
		{"max tiles tall thin", []AOI{box("thin", 10, -60, 10.0001, 60)}, mustGrid(t, "wgs84-0.0001deg"), SplitOptions{Resolution: 0.00001, MaxTiles: 1000}, "more than 1000 tiles"},
		{"empty AOI", []AOI{{Name: "e", Source: "x"}}, g, SplitOptions{Resolution: 10}, "no geometry"},
	}
	for _, tc := range tests {
		_, err := Split(tc.aois, tc.g, tc.opt)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to contain %q", tc.name, err, tc.want)
		}
	}
	_, err := Split([]AOI{box("big", 10, 45, 12, 47)}, g, SplitOptions{Resolution: 10, MaxTiles: 50})
	if !errors.Is(err, ErrTooManyTiles) {
		t.Errorf("err = %v, want ErrTooManyTiles", err)
	}
}

// cellHitsPolygon is the plain per-cell test rasterize must agree with: an
// edge of p passes through the open cell, or the cell centre is inside p.
func cellHitsPolygon(p orb.Polygon, x0, y0, x1, y1 float64) bool {
	for _, ring := range p {
		for i := 0; i+1 < len(ring); i++ {
			if segmentEntersBox(ring[i], ring[i+1], x0, y0, x1, y1) {
				return true
			}
		}
	}
	c := orb.Point{(x0 + x1) / 2, (y0 + y1) / 2}
	in := false
	for _, ring := range p {
		if planar.RingContains(ring, c) {
			in = !in
		}
	}
	return in
}

// segmentEntersBox clips segment a-b to the open box (Liang–Barsky).
func segmentEntersBox(a, b orb.Point, x0, y0, x1, y1 float64) bool {
	t0, t1 := 0.0, 1.0
	dx, dy := b[0]-a[0], b[1]-a[1]
	for _, c := range [][2]float64{{-dx, a[0] - x0}, {dx, x1 - a[0]}, {-dy, a[1] - y0}, {dy, y1 - a[1]}} {
		p, q := c[0], c[1]
		if p == 0 {
			if q <= 0 {
				return false
			}
			continue
		}
		r := q / p
		if p < 0 {
			t0 = math.Max(t0, r)
		} else {
			t1 = math.Min(t1, r)
		}
	}
	return t0 < t1
}

func TestRasterizeMatchesBruteForce(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	for iter := range 200 {
		// A random star-shaped polygon (simple), sometimes with a hole.
		cx, cy := rng.Float64()*20-10, rng.Float64()*20-10
		k := 3 + rng.IntN(20)
		outer := make(orb.Ring, 0, k+1)
		for i := range k {
			ang := 2 * math.Pi * float64(i) / float64(k)
			rad := 0.5 + rng.Float64()*6
			outer = append(outer, orb.Point{cx + rad*math.Cos(ang), cy + rad*math.Sin(ang)})
		}
		outer = append(outer, outer[0])
		p := orb.Polygon{outer}
		if iter%3 == 0 {
			hole := orb.Bound{Min: orb.Point{cx - 0.2, cy - 0.2}, Max: orb.Point{cx + 0.2, cy + 0.2}}.ToRing()
			p = append(p, hole)
		}
		size := 0.3 + rng.Float64()*2
		got := map[[2]int64]int{}
		rasterize(p, size, func(c, r int64) bool { got[[2]int64{c, r}]++; return true })
		b := p.Bound()
		want := map[[2]int64]bool{}
		for r := int64(math.Floor(b.Min[1]/size)) - 1; r <= int64(math.Floor(b.Max[1]/size))+1; r++ {
			for c := int64(math.Floor(b.Min[0]/size)) - 1; c <= int64(math.Floor(b.Max[0]/size))+1; c++ {
				if cellHitsPolygon(p, float64(c)*size, float64(r)*size, float64(c+1)*size, float64(r+1)*size) {
					want[[2]int64{c, r}] = true
				}
			}
		}
		for k, n := range got {
			if n != 1 {
				t.Fatalf("iter %d: cell %v reported %d times", iter, k, n)
			}
			if !want[k] {
				t.Fatalf("iter %d: rasterize reported cell %v that does not intersect", iter, k)
			}
		}
		for k := range want {
			if got[k] == 0 {
				t.Fatalf("iter %d: rasterize missed cell %v", iter, k)
			}
		}
	}
}

func TestExamples(t *testing.T) {
	t.Parallel()
	aois, err := ParseFile("../examples/aoi.geojson", Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if len(aois) != 1 || len(aois[0].Geometry) != 2 || aois[0].Name != "ljubljana-fields" {
		t.Fatalf("aoi.geojson: %+v", aois)
	}
	tiles, err := Split(aois, mustGrid(t, "utm-10km"), SplitOptions{Resolution: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(tiles) < 8 || len(tiles) > 12 {
		t.Errorf("aoi.geojson on utm-10km: %d tiles %v, want 8..12", len(tiles), names(tiles))
	}
	for _, tl := range tiles {
		if tl.EPSG != 32633 {
			t.Errorf("tile %s EPSG %d, want 32633", tl.Name, tl.EPSG)
		}
	}
	boxes, err := ParseFile("../examples/bboxes.csv", Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if len(boxes) != 2 || boxes[0].Name != "ljubljana-centre" {
		t.Errorf("bboxes.csv: %+v", boxes)
	}
	src, err := os.ReadFile("../examples/evalscript-truecolor.js")
	if err != nil {
		t.Fatal(err)
	}
	info := sentinel.InspectEvalscript(string(src))
	if info.Bands != 3 || info.Float32 {
		t.Errorf("evalscript: %+v, want 3 bands, UINT8", info)
	}
}

func BenchmarkSplitCountry(b *testing.B) {
	// A wobbly country (2000 vertices) centred on 15°E 46°N across several UTM
	// zones: ~1000 x 1000 km gives ~10^4 tiles on utm-10km, ~2000 x 1500 km
	// (lon 10°, lat 6.75° radius) ~4 x 10^4.
	for _, sz := range []struct {
		name       string
		rLon, rLat float64
	}{{"1000km", 6.5, 4.5}, {"2000km", 13, 6.75}} {
		ring := make(orb.Ring, 0, 2001)
		for i := range 2000 {
			ang := 2 * math.Pi * float64(i) / 2000
			rad := 1 + 0.05*math.Sin(17*ang)
			ring = append(ring, orb.Point{15 + sz.rLon*rad*math.Cos(ang), 46 + sz.rLat*rad*math.Sin(ang)})
		}
		ring = append(ring, ring[0])
		aois := []AOI{{Name: "country", Geometry: orb.MultiPolygon{{ring}}, Source: "bench"}}
		g := mustGrid(b, "utm-10km")
		b.Run(sz.name, func(b *testing.B) {
			var n int
			for b.Loop() {
				tiles, err := Split(aois, g, SplitOptions{Resolution: 10})
				if err != nil {
					b.Fatal(err)
				}
				n = len(tiles)
			}
			b.ReportMetric(float64(n), "tiles/op")
		})
	}
}

func TestUTMTileWGS84BoundsExact(t *testing.T) {
	t.Parallel()
	// Tiles near and across the central meridian, north and south: the WGS84 box
	// from corners (plus the central meridian) equals a dense sampling of the edges.
	aois := []AOI{box("n", 14.6, 60.0, 15.4, 60.2), box("s", 14.6, -45.2, 15.4, -45.0)}
	tiles, err := Split(aois, mustGrid(t, "utm-20km"), SplitOptions{Resolution: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(tiles) < 8 {
		t.Fatalf("only %d tiles", len(tiles))
	}
	for _, tl := range tiles {
		crs := wgs84.UTM(float64(tl.EPSG%100), tl.EPSG < 32700)
		want := [4]float64{math.Inf(1), math.Inf(1), math.Inf(-1), math.Inf(-1)}
		x0, y0, x1, y1 := tl.BBox[0], tl.BBox[1], tl.BBox[2], tl.BBox[3]
		for i := 0; i <= 400; i++ {
			f := float64(i) / 400
			for _, p := range [][2]float64{{x0 + f*(x1-x0), y0}, {x0 + f*(x1-x0), y1}, {x0, y0 + f*(y1-y0)}, {x1, y0 + f*(y1-y0)}} {
				lon, lat, _ := wgs84.Transform(crs, wgs84.LonLat())(p[0], p[1], 0)
				want = [4]float64{math.Min(want[0], lon), math.Min(want[1], lat), math.Max(want[2], lon), math.Max(want[3], lat)}
			}
		}
		for i := range want {
			if math.Abs(want[i]-tl.WGS84[i]) > 1e-6 {
				t.Errorf("%s: WGS84 %v, dense sampling gives %v", tl.Name, tl.WGS84, want)
				break
			}
		}
	}
}

func TestSplitConcaveAcrossZoneBorder(t *testing.T) {
	t.Parallel()
	// A U open to the east: two arms cross 12°E, joined by a bar in zone 32.
	// Zone 33 must only get tiles near the arms, not along the 12°E meridian
	// between them (where clipping to the zone would run an edge).
	u := AOI{Name: "u", Source: "test", Geometry: orb.MultiPolygon{{{
		{11.5, 46.0}, {12.5, 46.0}, {12.5, 46.1}, {11.6, 46.1}, {11.6, 47.9}, {12.5, 47.9},
		{12.5, 48.0}, {11.5, 48.0}, {11.5, 46.0},
	}}}}
	tiles, err := Split([]AOI{u}, mustGrid(t, "utm-10km"), SplitOptions{Resolution: 10})
	if err != nil {
		t.Fatal(err)
	}
	n33 := 0
	for _, tl := range tiles {
		if tl.EPSG != 32633 {
			continue
		}
		n33++
		if tl.WGS84[1] > 46.2 && tl.WGS84[3] < 47.8 {
			t.Errorf("zone 33 tile %s (%v) lies between the arms", tl.Name, tl.WGS84)
		}
	}
	if n33 == 0 {
		t.Error("no zone 33 tiles for the arms east of 12°E")
	}
}

func TestSplitConcaveAcrossEquator(t *testing.T) {
	t.Parallel()
	// A U open to the south: two arms cross the equator, joined by a bar in the
	// north. On utm-20km the equator (northing 10,000,000 in 33S) is not a grid
	// line; southern tiles must stay near the arms.
	u := AOI{Name: "u", Source: "test", Geometry: orb.MultiPolygon{{{
		{14.6, -0.5}, {14.7, -0.5}, {14.7, 0.4}, {15.3, 0.4}, {15.3, -0.5}, {15.4, -0.5},
		{15.4, 0.5}, {14.6, 0.5}, {14.6, -0.5},
	}}}}
	tiles, err := Split([]AOI{u}, mustGrid(t, "utm-20km"), SplitOptions{Resolution: 10})
	if err != nil {
		t.Fatal(err)
	}
	south := 0
	for _, tl := range tiles {
		if tl.EPSG != 32733 {
			continue
		}
		south++
		if tl.WGS84[0] > 14.8 && tl.WGS84[2] < 15.2 {
			t.Errorf("33S tile %s (%v) lies between the arms", tl.Name, tl.WGS84)
		}
		if tl.BBox[1] >= 10_000_000 {
			t.Errorf("33S tile %s starts north of the equator: %v", tl.Name, tl.BBox)
		}
	}
	if south == 0 {
		t.Error("no 33S tiles for the arms south of the equator")
	}
}
