package sentineltest

import (
	"fmt"
	"math"

	"github.com/wroge/wgs84"
)

// The simulator's own table of the Batch Processing API's tiling grids
// (seed: the Batch API documentation's grid table), independent of shfleet's
// grid package so that a wrong grid there is caught by the tests.
type simGrid struct {
	id          int
	name        string
	kind        string // "utm", "wgs84", "laea"
	size        float64
	resolutions []float64
	unit        string
	suffix      string // tile name suffix
}

var simGrids = []simGrid{
	{0, "UTM 20km grid", "utm", 20040, []float64{10, 20, 30, 60}, "METRE", "20km"},
	{1, "UTM 10km grid", "utm", 10000, []float64{10, 20}, "METRE", "10km"},
	{2, "UTM 100km grid", "utm", 100080, []float64{30, 60, 120, 240, 360}, "METRE", "100km"},
	{3, "WGS84 1 degree grid", "wgs84", 1, []float64{0.0001, 0.0002}, "DEGREE", "1deg"},
	{6, "LAEA 100km grid", "laea", 100000, []float64{40, 50, 100}, "METRE", "100km"},
	{7, "LAEA 20km grid", "laea", 20000, []float64{10, 20}, "METRE", "20km"},
}

func lookupSimGrid(id int) (simGrid, bool) {
	for _, g := range simGrids {
		if g.id == id {
			return g, true
		}
	}
	return simGrid{}, false
}

// simTile is one output tile of a batch request.
type simTile struct {
	name   string
	epsg   int
	bbox   [4]float64
	px, py int
}

// laeaEurope bounds where the LAEA grids are defined (EPSG:3035's area of use,
// roughly): Europe with Turkey, Iceland, Svalbard, the Azores and the Canaries.
var laeaEurope = [4]float64{-35, 24, 45, 85}

// tilesFor returns the cells of g that intersect the lon/lat polygon ring (the
// AOI's outer ring, or its bbox), at resolution res. The simulator tiles an AOI
// in one UTM zone only (the zone of its bbox centre): enough for the tests, and
// it answers 400 for AOIs across zones rather than guessing.
func tilesFor(g simGrid, ring [][2]float64, res float64) ([]simTile, string) {
	bb := ringBBox(ring)
	px := int(math.Round(g.size / res))
	var proj func(lon, lat float64) (float64, float64)
	epsg := 4326
	prefix := ""
	switch g.kind {
	case "wgs84":
		proj = func(lon, lat float64) (float64, float64) { return lon, lat }
	case "laea":
		if bb[0] < laeaEurope[0] || bb[1] < laeaEurope[1] || bb[2] > laeaEurope[2] || bb[3] > laeaEurope[3] {
			return nil, fmt.Sprintf("input: the AOI (%g,%g,%g,%g) is outside the coverage of grid %d (Europe)", bb[0], bb[1], bb[2], bb[3], g.id)
		}
		crs := wgs84.ETRS89LambertAzimuthalEqualArea()
		proj = func(lon, lat float64) (float64, float64) { return crs.Projection.FromLonLat(lon, lat, crs.Datum) }
		epsg, prefix = 3035, "LAEA"
	case "utm":
		lon, lat := (bb[0]+bb[2])/2, (bb[1]+bb[3])/2
		zone := int(math.Floor((lon+180)/6)) + 1
		north := lat >= 0
		if int(math.Floor((bb[0]+180)/6))+1 != zone || int(math.Floor((bb[2]+180)/6))+1 != zone || (bb[1] < 0) != (bb[3] < 0) {
			return nil, "input: the simulator tiles AOIs inside one UTM zone and hemisphere only"
		}
		crs := wgs84.UTM(float64(zone), north)
		proj = func(lon, lat float64) (float64, float64) { return crs.Projection.FromLonLat(lon, lat, crs.Datum) }
		hemi := "N"
		epsg = 32600 + zone
		if !north {
			hemi, epsg = "S", 32700+zone
		}
		prefix = fmt.Sprintf("%02d%s", zone, hemi)
	}
	// Densify the ring and project it.
	var pr [][2]float64
	for i := 0; i+1 < len(ring); i++ {
		a, b := ring[i], ring[i+1]
		const n = 32
		for k := 0; k < n; k++ {
			t := float64(k) / n
			x, y := proj(a[0]+t*(b[0]-a[0]), a[1]+t*(b[1]-a[1]))
			pr = append(pr, [2]float64{x, y})
		}
	}
	pr = append(pr, pr[0])
	pb := ringBBox(pr)
	c0, c1 := int64(math.Floor(pb[0]/g.size)), int64(math.Ceil(pb[2]/g.size))-1
	r0, r1 := int64(math.Floor(pb[1]/g.size)), int64(math.Ceil(pb[3]/g.size))-1
	var out []simTile
	for r := r0; r <= r1; r++ {
		for c := c0; c <= c1; c++ {
			cell := [4]float64{float64(c) * g.size, float64(r) * g.size, float64(c+1) * g.size, float64(r+1) * g.size}
			if !ringMeetsRect(pr, cell) {
				continue
			}
			t := simTile{epsg: epsg, bbox: cell, px: px, py: px}
			switch g.kind {
			case "wgs84":
				t.name = fmt.Sprintf("wgs84-1deg-%s%03d%s%02d", ew(c), absI(c), ns(r), absI(r))
			default:
				t.name = fmt.Sprintf("%s-%07d-%07d-%s", prefix, int64(math.Round(cell[0])), int64(math.Round(cell[1])), g.suffix)
			}
			out = append(out, t)
		}
	}
	if len(out) == 0 {
		return nil, "input: the AOI intersects no tile of the grid"
	}
	return out, ""
}

func ew(c int64) string {
	if c < 0 {
		return "W"
	}
	return "E"
}

func ns(r int64) string {
	if r < 0 {
		return "S"
	}
	return "N"
}

func absI(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}

func ringBBox(r [][2]float64) [4]float64 {
	b := [4]float64{math.Inf(1), math.Inf(1), math.Inf(-1), math.Inf(-1)}
	for _, p := range r {
		b[0], b[1] = math.Min(b[0], p[0]), math.Min(b[1], p[1])
		b[2], b[3] = math.Max(b[2], p[0]), math.Max(b[3], p[1])
	}
	return b
}

// ringMeetsRect reports whether the closed ring and the rectangle's interiors
// intersect: a ring vertex strictly inside, the rectangle's centre inside the
// ring, or a ring edge crossing the rectangle's interior.
func ringMeetsRect(ring [][2]float64, r [4]float64) bool {
	in := func(p [2]float64) bool { return p[0] > r[0] && p[0] < r[2] && p[1] > r[1] && p[1] < r[3] }
	for _, p := range ring {
		if in(p) {
			return true
		}
	}
	cx, cy := (r[0]+r[2])/2, (r[1]+r[3])/2
	inside := false
	for i := 0; i+1 < len(ring); i++ {
		a, b := ring[i], ring[i+1]
		if (a[1] > cy) != (b[1] > cy) && cx < a[0]+(cy-a[1])*(b[0]-a[0])/(b[1]-a[1]) {
			inside = !inside
		}
	}
	if inside {
		return true
	}
	// An edge crossing the interior: clip it to the rectangle (Liang-Barsky).
	for i := 0; i+1 < len(ring); i++ {
		if segmentCrosses(ring[i], ring[i+1], r) {
			return true
		}
	}
	return false
}

func segmentCrosses(a, b [2]float64, r [4]float64) bool {
	t0, t1 := 0.0, 1.0
	dx, dy := b[0]-a[0], b[1]-a[1]
	for _, e := range [4][2]float64{{-dx, a[0] - r[0]}, {dx, r[2] - a[0]}, {-dy, a[1] - r[1]}, {dy, r[3] - a[1]}} {
		p, q := e[0], e[1]
		if p == 0 {
			if q <= 0 {
				return false
			}
			continue
		}
		t := q / p
		if p < 0 {
			t0 = math.Max(t0, t)
		} else {
			t1 = math.Min(t1, t)
		}
		if t0 >= t1 {
			return false
		}
	}
	return t1-t0 > 1e-12
}
