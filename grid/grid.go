package grid

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Kind is the family of a grid.
type Kind int

const (
	// UTM grids have square cells in metres, snapped to multiples of the cell size
	// in each UTM zone's easting and northing (EPSG 326xx north, 327xx south).
	UTM Kind = iota + 1
	// WGS84 grids have square cells in degrees of longitude/latitude (EPSG 4326),
	// snapped to multiples of the cell size.
	WGS84
	// LAEA grids have square cells in metres of ETRS89 Lambert azimuthal
	// equal-area (EPSG 3035), for Europe, snapped to multiples of the cell size.
	LAEA
)

// Grid is a tiling grid. Get one from ParseGrid.
type Grid struct {
	// Name is the canonical name, e.g. "utm-10km" or "wgs84-0.5deg".
	Name string
	// Kind is UTM or WGS84.
	Kind Kind
	// Size is the cell size: metres for UTM, degrees for WGS84.
	Size float64
	// batchID is the Batch Processing API tilingGrid id + 1, 0 when there is none
	// (so that the zero Grid has none).
	batchID int
}

// Units is "m" for UTM grids and "deg" for WGS84 grids.
func (g Grid) Units() string {
	if g.Kind == WGS84 {
		return "deg"
	}
	return "m"
}

// String returns the grid's name.
func (g Grid) String() string { return g.Name }

// BatchGridID returns the Batch Processing API's tilingGrid id of the same grid
// (0 UTM 20 km, 1 UTM 10 km, 2 UTM 100 km, 3 WGS84 1 degree, 6 LAEA 100 km,
// 7 LAEA 20 km) and whether there is one.
func (g Grid) BatchGridID() (int, bool) { return g.batchID - 1, g.batchID > 0 }

// batchResolutions are the output resolutions the Batch Processing API allows
// on each of its tiling grids (by grid id, in the grid's units), as its
// /tilinggrids endpoint lists them.
var batchResolutions = map[int][]float64{
	0: {10, 20, 30, 60},
	1: {10, 20},
	2: {30, 60, 120, 240, 360},
	3: {0.0001, 0.0002},
	6: {40, 50, 100},
	7: {10, 20},
}

// BatchResolutions returns the resolutions (in the grid's units) the Batch
// Processing API allows on its tiling grid of g, smallest first; nil when g
// is not one of its grids.
func (g Grid) BatchResolutions() []float64 {
	id, ok := g.BatchGridID()
	if !ok {
		return nil
	}
	return slices.Clone(batchResolutions[id])
}

// CheckBatchResolution reports whether the Batch Processing API takes res on
// its tiling grid of g; the error names the allowed values.
func (g Grid) CheckBatchResolution(res float64) error {
	allowed := g.BatchResolutions()
	if allowed == nil {
		return fmt.Errorf("grid %s is not one of the Batch API's tiling grids", g.Name)
	}
	for _, a := range allowed {
		if math.Abs(a-res) <= 1e-9*a {
			return nil
		}
	}
	vals := make([]string, len(allowed))
	for i, a := range allowed {
		vals[i] = fmtNum(a)
	}
	id, _ := g.BatchGridID()
	return fmt.Errorf("the Batch API does not take %s %s on %s (tiling grid %d); use one of %s %s",
		fmtNum(res), g.Units(), g.Name, id, strings.Join(vals, ", "), g.Units())
}

// suffix is the grid part of a UTM or LAEA tile name, e.g. "10km".
func (g Grid) suffix() string { return strings.TrimPrefix(strings.TrimPrefix(g.Name, "utm-"), "laea-") }

// The LAEA grids of the Batch Processing API (EPSG:3035, Europe).
var laeaGrids = []Grid{
	{Name: "laea-100km", Kind: LAEA, Size: 100000, batchID: 6 + 1},
	{Name: "laea-20km", Kind: LAEA, Size: 20000, batchID: 7 + 1},
}

// The UTM grids of the Batch Processing API, with its tile sizes.
var utmGrids = []Grid{
	{Name: "utm-10km", Kind: UTM, Size: 10000, batchID: 1 + 1},
	{Name: "utm-20km", Kind: UTM, Size: 20040, batchID: 0 + 1},
	{Name: "utm-100km", Kind: UTM, Size: 100080, batchID: 2 + 1},
}

// GridNames lists the accepted grid names; "wgs84-<x>deg" takes any positive
// size x that divides 180, e.g. 1, 0.5, 0.25, 0.1.
var GridNames = []string{"utm-10km", "utm-20km", "utm-100km", "laea-100km", "laea-20km", "wgs84-1deg", "wgs84-<x>deg"}

// minDegrees is the smallest WGS84 cell accepted (about 11 m).
const minDegrees = 0.0001

// ParseGrid returns the grid called name (case-insensitive): "utm-10km" (10000 m
// tiles), "utm-20km" (20040 m), "utm-100km" (100080 m) — the Batch Processing
// API's UTM grids —, "laea-100km" (100000 m) or "laea-20km" (20000 m) — its
// LAEA grids in EPSG:3035 for Europe — or "wgs84-<x>deg" with x degrees, e.g. "wgs84-1deg",
// "wgs84-0.5deg"; x must divide 180 and be at least 0.0001.
func ParseGrid(name string) (Grid, error) {
	n := strings.ToLower(strings.TrimSpace(name))
	for _, g := range append(append([]Grid(nil), utmGrids...), laeaGrids...) {
		if n == g.Name {
			return g, nil
		}
	}
	if s, ok := strings.CutPrefix(n, "wgs84-"); ok {
		if num, ok := strings.CutSuffix(s, "deg"); ok {
			x, err := strconv.ParseFloat(num, 64)
			if err != nil || math.IsNaN(x) || math.IsInf(x, 0) || x <= 0 {
				return Grid{}, fmt.Errorf("grid %q: %q is not a positive number of degrees; write e.g. wgs84-1deg or wgs84-0.5deg", name, num)
			}
			if x < minDegrees || x > 180 {
				return Grid{}, fmt.Errorf("grid %q: cell size %g° is out of range %g..180", name, x, minDegrees)
			}
			k := 180 / x
			if math.Abs(k-math.Round(k)) > 1e-9*k {
				return Grid{}, fmt.Errorf("grid %q: cell size %g° does not divide 180°; use a size such as 1, 0.5, 0.25, 0.2 or 0.1", name, x)
			}
			id := 0
			if x == 1 {
				id = 3 + 1
			}
			return Grid{Name: "wgs84-" + strconv.FormatFloat(x, 'f', -1, 64) + "deg", Kind: WGS84, Size: x, batchID: id}, nil
		}
	}
	return Grid{}, fmt.Errorf("unknown grid %q; valid grids: %s (e.g. wgs84-0.5deg)", name, strings.Join(GridNames, ", "))
}
