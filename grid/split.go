package grid

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/paulmach/orb"
	"github.com/paulmach/orb/clip"
	"github.com/paulmach/orb/planar"
	"github.com/wroge/wgs84"
)

const (
	// MaxPixels is the Process API's largest output width or height.
	MaxPixels = 2500
	// DefaultMaxTiles is the default guard on the number of tiles one Split makes.
	DefaultMaxTiles = 500_000
	// utmMinLat and utmMaxLat bound where UTM grids are defined.
	utmMinLat = -80.0
	utmMaxLat = 84.0
	// densifyDegrees is the longest AOI edge projected as a straight line; longer
	// edges get intermediate vertices so that the projected shape stays faithful.
	densifyDegrees = 0.05
	// zoneMargin is how far (degrees of longitude) beyond a UTM zone an AOI is
	// projected into that zone before its cells are chosen.
	zoneMargin = 3.0
)

// SplitOptions configure Split. Resolution is required; the zero value of every
// other field works.
type SplitOptions struct {
	// Resolution is the output pixel size: metres for UTM grids, degrees for
	// WGS84 grids. Required.
	Resolution float64
	// Subdivide splits each grid cell into n x n equal sub-tiles (names suffixed
	// "_r<row>c<col>", row 0 north, col 0 west) when a cell would exceed MaxPixels
	// at Resolution, instead of failing with a *PixelLimitError.
	Subdivide bool
	// Buffer enlarges each tile on every side, in the grid's units (metres or
	// degrees); default 0. Tiles are still chosen by their unbuffered cell.
	Buffer float64
	// MaxTiles fails Split when more tiles would be made; default DefaultMaxTiles.
	MaxTiles int
}

// PixelLimitError says a grid's tiles are larger than MaxPixels at the requested
// resolution, and what to do about it.
type PixelLimitError struct {
	Grid          Grid    // the grid asked for
	Resolution    float64 // the resolution asked for, in the grid's units
	Pixels        int     // tile width (= height) in pixels, buffer included
	MinResolution float64 // the finest resolution that fits
	SmallerGrid   string  // a grid that fits at Resolution, or ""
}

// Error says how large the tiles are and the ways out.
func (e *PixelLimitError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s at %s %s is %d px wide; the Process API allows %d: use --resolution >= %s",
		e.Grid.Name, fmtNum(e.Resolution), e.Grid.Units(), e.Pixels, MaxPixels, fmtNum(e.MinResolution))
	if e.SmallerGrid != "" {
		fmt.Fprintf(&b, " or a smaller grid such as %s", e.SmallerGrid)
	}
	b.WriteString(", or --subdivide")
	return b.String()
}

// ErrTooManyTiles is wrapped by Split's error when the MaxTiles guard trips.
var ErrTooManyTiles = errors.New("too many tiles")

func fmtNum(v float64) string {
	return strconv.FormatFloat(math.Round(v*1e6)/1e6, 'f', -1, 64)
}

// Split returns the tiles of grid g that intersect the AOIs' geometry (not just
// their bounding boxes), sorted by name. A tile shared by several AOIs appears
// once: Tile.AOI is the first of them (in input order), Tile.AOIs all of them.
// For UTM grids each part of an AOI is tiled in the UTM zone (and hemisphere) it
// lies in, so an AOI across a zone border yields tiles in two CRSs. Zones follow
// the plain 6° rule (the Norway/Svalbard exceptions are not applied). An AOI
// across the antimeridian must come cut into its two sides, as ParseGeoJSON
// cuts it; its parts are then tiled in zones 60 and 1.
func Split(aois []AOI, g Grid, opt SplitOptions) ([]Tile, error) {
	if g.Kind != UTM && g.Kind != WGS84 && g.Kind != LAEA || g.Size <= 0 {
		return nil, fmt.Errorf("split: grid %q is not initialised; get one from grid.ParseGrid", g.Name)
	}
	if opt.Resolution <= 0 || math.IsNaN(opt.Resolution) || math.IsInf(opt.Resolution, 0) {
		return nil, fmt.Errorf("split: resolution %g is not valid; give a positive resolution in %s (e.g. %s)", opt.Resolution, unitsLong(g), exampleRes(g))
	}
	if opt.Buffer < 0 || math.IsNaN(opt.Buffer) || math.IsInf(opt.Buffer, 0) {
		return nil, fmt.Errorf("split: buffer %g is not valid; give a buffer >= 0 in %s", opt.Buffer, unitsLong(g))
	}
	maxTiles := opt.MaxTiles
	if maxTiles <= 0 {
		maxTiles = DefaultMaxTiles
	}
	n, px, err := subdivision(g, opt)
	if err != nil {
		return nil, err
	}
	s := &splitter{g: g, opt: opt, n: n, px: px, cell: g.Size / float64(n), maxTiles: maxTiles, index: map[string]int{}, nodes: map[nodeKey][2]float64{}}
	for i := range aois {
		if err := s.addAOI(&aois[i]); err != nil {
			return nil, err
		}
	}
	slices.SortFunc(s.tiles, func(a, b Tile) int { return strings.Compare(a.Name, b.Name) })
	return s.tiles, nil
}

func unitsLong(g Grid) string {
	if g.Kind == WGS84 {
		return "degrees for wgs84 grids"
	}
	return "metres for utm grids"
}

func exampleRes(g Grid) string {
	if g.Kind == WGS84 {
		return "0.0001"
	}
	return "10"
}

// subdivision returns how many sub-tiles per side each cell is split into and
// the resulting tile size in pixels.
func subdivision(g Grid, opt SplitOptions) (n, px int, err error) {
	res, buf := opt.Resolution, opt.Buffer
	full := (g.Size + 2*buf) / res
	if math.Round(full) < 1 {
		return 0, 0, fmt.Errorf("split: resolution %g is larger than the %s tile (%g %s): tiles would be 0 px; resolutions are in %s (e.g. %s)",
			res, g.Name, g.Size, g.Units(), unitsLong(g), exampleRes(g))
	}
	if math.Round(full) <= MaxPixels {
		return 1, int(math.Round(full)), nil
	}
	if !opt.Subdivide {
		return 0, 0, &PixelLimitError{Grid: g, Resolution: res, Pixels: int(math.Round(full)),
			MinResolution: (g.Size + 2*buf) / MaxPixels, SmallerGrid: smallerGrid(g, res, buf)}
	}
	room := MaxPixels*res - 2*buf // largest sub-cell size that fits
	if room <= 0 {
		return 0, 0, fmt.Errorf("split: buffer %g %s alone exceeds %d px at resolution %g; reduce the buffer", buf, g.Units(), MaxPixels, res)
	}
	nmin := int(math.Ceil(g.Size / room))
	for math.Round((g.Size/float64(nmin)+2*buf)/res) > MaxPixels {
		nmin++
	}
	n = nmin
	// Prefer a split that gives whole pixels.
	cellPx := g.Size / res
	if math.Abs(cellPx-math.Round(cellPx)) < 1e-9 {
		p := int(math.Round(cellPx))
		for k := nmin; k <= 2*nmin; k++ {
			if p%k == 0 {
				n = k
				break
			}
		}
	}
	if n > 1000 {
		return 0, 0, fmt.Errorf("split: %s at %g %s needs %d x %d sub-tiles per cell; use a coarser resolution or a smaller grid", g.Name, res, g.Units(), n, n)
	}
	return n, int(math.Round((g.Size/float64(n) + 2*buf) / res)), nil
}

// smallerGrid suggests the largest grid of the same kind that fits at res.
func smallerGrid(g Grid, res, buf float64) string {
	fits := func(size float64) bool { return math.Round((size+2*buf)/res) <= MaxPixels }
	if g.Kind == UTM || g.Kind == LAEA {
		best := ""
		bestSize := 0.0
		family := utmGrids
		if g.Kind == LAEA {
			family = laeaGrids
		}
		for _, c := range family {
			if c.Size < g.Size && fits(c.Size) && c.Size > bestSize {
				best, bestSize = c.Name, c.Size
			}
		}
		return best
	}
	for _, d := range []float64{90, 45, 30, 15, 10, 5, 2, 1, 0.5, 0.25, 0.2, 0.1, 0.05, 0.025, 0.02, 0.01, 0.005, 0.0025, 0.002, 0.001} {
		if d < g.Size && fits(d) {
			return "wgs84-" + strconv.FormatFloat(d, 'f', -1, 64) + "deg"
		}
	}
	return ""
}

// splitter holds one Split's state: the tiles so far and per-zone caches.
type splitter struct {
	g        Grid
	opt      SplitOptions
	n        int     // sub-tiles per cell side
	px       int     // tile size in pixels
	cell     float64 // enumerated cell size (g.Size / n)
	maxTiles int
	tiles    []Tile
	index    map[string]int // tile name -> index in tiles
	crs      map[int]wgs84.ProjectedReferenceSystem
	nodes    map[nodeKey][2]float64 // lon/lat of UTM grid nodes
}

func (s *splitter) addAOI(a *AOI) error {
	if len(a.Geometry) == 0 {
		return fmt.Errorf("split: AOI %s (%s) has no geometry", a.Name, a.Source)
	}
	if s.g.Kind == WGS84 {
		return s.addCells(a, s.g.Size/float64(s.n), a.Geometry, func(c, r int64) (Tile, bool) { return s.wgs84Tile(c, r), true })
	}
	if s.g.Kind == LAEA {
		return s.addLAEA(a)
	}
	b := a.Geometry.Bound()
	if b.Min[1] < utmMinLat || b.Max[1] > utmMaxLat {
		return fmt.Errorf("split: AOI %s (%s) spans latitudes %g..%g; UTM grids cover %g..%g: use a wgs84 grid or cut the AOI", a.Name, a.Source, b.Min[1], b.Max[1], utmMinLat, utmMaxLat)
	}
	zmin := int(math.Floor((b.Min[0]+180)/6)) + 1
	zmax := int(math.Ceil((b.Max[0] + 180) / 6))
	zmin = min(max(zmin, 1), 60)
	zmax = min(max(zmax, zmin), 60)
	for zone := zmin; zone <= zmax; zone++ {
		for _, north := range []bool{true, false} {
			var lat0, lat1 float64
			if north {
				if b.Max[1] <= 0 {
					continue
				}
				lat0, lat1 = 0, 90
			} else {
				if b.Min[1] >= 0 {
					continue
				}
				lat0, lat1 = -90, 0
			}
			west, east := float64(zone)*6-186, float64(zone)*6-180
			zb := orb.Bound{Min: orb.Point{west, lat0}, Max: orb.Point{east, lat1}}
			part := a.Geometry
			if !zb.Contains(b.Min) || !zb.Contains(b.Max) {
				if in := clip.MultiPolygon(zb, cloneMP(a.Geometry)); len(in) == 0 || planar.Area(in) <= 0 {
					continue // the AOI only touches this zone
				}
				// Clip to the zone widened by zoneMargin, so that the edges
				// clipping adds along the cut (which a concave AOI can run far
				// from any of its area) lie outside the zone; cells are then kept
				// only if they reach into the zone itself.
				// The same for the equator, with a margin in latitude.
				wide := orb.Bound{Min: orb.Point{west - zoneMargin, lat0 - zoneMargin}, Max: orb.Point{east + zoneMargin, lat1 + zoneMargin}}
				part = clip.MultiPolygon(wide, cloneMP(a.Geometry))
			}
			if len(part) == 0 {
				continue
			}
			crs := s.zoneCRS(zone, north)
			proj := projectMP(densifyMP(part, densifyDegrees), crs)
			z, nth := zone, north
			key := zoneKey(zone, north)
			err := s.addCells(a, s.cell, proj, func(c, r int64) (Tile, bool) {
				// The equator is northing 0 (north) or 10,000,000 (south).
				if north && float64(r+1)*s.cell <= 0 || !north && float64(r)*s.cell >= utmSouthFalseNorthing {
					return Tile{}, false
				}
				lon0, lon1 := s.lonRange(key, crs, float64(c)*s.cell, float64(r)*s.cell, float64(c+1)*s.cell, float64(r+1)*s.cell)
				if lon1 <= west || lon0 >= east {
					return Tile{}, false // lies in the margin: the neighbouring zone's
				}
				return s.utmTile(z, nth, c, r), true
			})
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// addCells adds a tile for every cell of size cell that intersects mp.
func (s *splitter) addCells(a *AOI, cell float64, mp orb.MultiPolygon, mk func(c, r int64) (Tile, bool)) error {
	var err error
	seen := map[[2]int64]bool{}
	tooMany := func() error {
		return fmt.Errorf("split: AOI %s (%s) on %s: more than %d tiles; use a larger grid, a smaller AOI, or raise the tile limit (--max-tiles): %w",
			a.Name, a.Source, s.g.Name, s.maxTiles, ErrTooManyTiles)
	}
	for _, p := range mp {
		// A connected polygon meets every row and column of cells its bound
		// spans, so a huge span means too many tiles: fail before rasterizing.
		if b := p.Bound(); (b.Max[0]-b.Min[0])/cell > float64(s.maxTiles)+2 || (b.Max[1]-b.Min[1])/cell > float64(s.maxTiles)+2 {
			return tooMany()
		}
		rasterize(p, cell, func(c, r int64) bool {
			k := [2]int64{c, r}
			if seen[k] {
				return true
			}
			seen[k] = true
			t, ok := mk(c, r)
			if !ok {
				return true
			}
			if i, ok := s.index[t.Name]; ok {
				if !slices.Contains(s.tiles[i].AOIs, a.Name) {
					s.tiles[i].AOIs = append(s.tiles[i].AOIs, a.Name)
				}
				return true
			}
			if len(s.tiles) >= s.maxTiles {
				err = tooMany()
				return false
			}
			t.AOI = a.Name
			t.AOIs = []string{a.Name}
			s.index[t.Name] = len(s.tiles)
			s.tiles = append(s.tiles, t)
			return true
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func (s *splitter) zoneCRS(zone int, north bool) wgs84.ProjectedReferenceSystem {
	if s.crs == nil {
		s.crs = map[int]wgs84.ProjectedReferenceSystem{}
	}
	key := zoneKey(zone, north)
	crs, ok := s.crs[key]
	if !ok {
		crs = wgs84.UTM(float64(zone), north)
		s.crs[key] = crs
	}
	return crs
}

func zoneKey(zone int, north bool) int {
	if north {
		return zone
	}
	return -zone
}

// floorDiv splits a sub-cell index into its parent cell and the position inside.
func floorDiv(i int64, n int) (parent int64, sub int) {
	p := i / int64(n)
	if i%int64(n) != 0 && i < 0 {
		p--
	}
	return p, int(i - p*int64(n))
}

func (s *splitter) subSuffix(c, r int64) (pc, pr int64, suffix string) {
	pc, sc := floorDiv(c, s.n)
	pr, sr := floorDiv(r, s.n)
	if s.n > 1 {
		suffix = fmt.Sprintf("_r%dc%d", s.n-1-sr, sc)
	}
	return pc, pr, suffix
}

func (s *splitter) utmTile(zone int, north bool, c, r int64) Tile {
	pc, pr, suffix := s.subSuffix(c, r)
	hemi, epsg := "N", 32600+zone
	if !north {
		hemi, epsg = "S", 32700+zone
	}
	name := fmt.Sprintf("%02d%s-%07d-%07d-%s%s", zone, hemi,
		int64(math.Round(float64(pc)*s.g.Size)), int64(math.Round(float64(pr)*s.g.Size)), s.g.suffix(), suffix)
	buf := s.opt.Buffer
	x0, y0 := float64(c)*s.cell-buf, float64(r)*s.cell-buf
	x1, y1 := float64(c+1)*s.cell+buf, float64(r+1)*s.cell+buf
	return Tile{
		Name:   name,
		EPSG:   epsg,
		BBox:   [4]float64{x0, y0, x1, y1},
		WGS84:  s.lonLatBounds(zoneKey(zone, north), s.zoneCRS(zone, north), x0, y0, x1, y1),
		Width:  s.px,
		Height: s.px,
	}
}

// lonLatBounds is the lon/lat bounding box of a UTM rectangle. Along an edge of
// constant easting both lon and lat are monotonic, and so is lon along an edge
// of constant northing, whose latitude peaks at the central meridian; so the
// corners, plus the central meridian's crossings when the rectangle straddles
// it, give the exact box. Corners are shared by neighbouring tiles and cached.
func (s *splitter) lonLatBounds(zoneKey int, crs wgs84.ProjectedReferenceSystem, x0, y0, x1, y1 float64) [4]float64 {
	b := [4]float64{math.Inf(1), math.Inf(1), math.Inf(-1), math.Inf(-1)}
	add := func(e, n float64) {
		ll := s.node(zoneKey, crs, e, n)
		b[0], b[1] = math.Min(b[0], ll[0]), math.Min(b[1], ll[1])
		b[2], b[3] = math.Max(b[2], ll[0]), math.Max(b[3], ll[1])
	}
	add(x0, y0)
	add(x1, y0)
	add(x0, y1)
	add(x1, y1)
	if x0 < utmFalseEasting && x1 > utmFalseEasting {
		add(utmFalseEasting, y0)
		add(utmFalseEasting, y1)
	}
	for i := range b {
		b[i] = math.Round(b[i]*1e9) / 1e9
	}
	return b
}

// lonRange is the longitude range of a UTM rectangle (lon is monotonic along
// each edge, so its corners bound it).
func (s *splitter) lonRange(zoneKey int, crs wgs84.ProjectedReferenceSystem, x0, y0, x1, y1 float64) (lo, hi float64) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, p := range [4][2]float64{{x0, y0}, {x1, y0}, {x0, y1}, {x1, y1}} {
		ll := s.node(zoneKey, crs, p[0], p[1])
		lo, hi = math.Min(lo, ll[0]), math.Max(hi, ll[0])
	}
	return lo, hi
}

// node returns the lon/lat of a UTM point, cached.
func (s *splitter) node(zoneKey int, crs wgs84.ProjectedReferenceSystem, e, n float64) [2]float64 {
	k := nodeKey{zoneKey, e, n}
	ll, ok := s.nodes[k]
	if !ok {
		ll[0], ll[1] = crs.Projection.ToLonLat(e, n, crs.Datum)
		s.nodes[k] = ll
	}
	return ll
}

// utmFalseEasting is the easting of every UTM zone's central meridian;
// utmSouthFalseNorthing the northing of the equator in southern zones.
const (
	utmFalseEasting       = 500000
	utmSouthFalseNorthing = 10_000_000
)

// nodeKey is a grid node in one UTM zone (zone number, negative in the south).
type nodeKey struct {
	zone int
	e, n float64
}

func (s *splitter) wgs84Tile(c, r int64) Tile {
	pc, pr, suffix := s.subSuffix(c, r)
	name := fmt.Sprintf("%s-%s%s", s.g.Name, degName(float64(pc)*s.g.Size, float64(pr)*s.g.Size, s.g.Size), suffix)
	buf := s.opt.Buffer
	clean := func(v float64) float64 { return math.Round(v*1e9) / 1e9 }
	bbox := [4]float64{
		clean(float64(c)*s.cell - buf), clean(float64(r)*s.cell - buf),
		clean(float64(c+1)*s.cell + buf), clean(float64(r+1)*s.cell + buf),
	}
	return Tile{Name: name, EPSG: 4326, BBox: bbox, WGS84: bbox, Width: s.px, Height: s.px}
}

// degName formats a cell's south-west corner, e.g. "E013N45" or "W000.5S01.5".
func degName(lon, lat, size float64) string {
	d := 0
	if str := strconv.FormatFloat(size, 'f', -1, 64); strings.Contains(str, ".") {
		d = len(str) - strings.IndexByte(str, '.') - 1
	}
	ew, ns := "E", "N"
	if lon < -1e-12 {
		ew = "W"
	}
	if lat < -1e-12 {
		ns = "S"
	}
	w := func(ints int) int {
		if d == 0 {
			return ints
		}
		return ints + 1 + d
	}
	return fmt.Sprintf("%s%0*.*f%s%0*.*f", ew, w(3), d, math.Abs(lon), ns, w(2), d, math.Abs(lat))
}

func cloneMP(mp orb.MultiPolygon) orb.MultiPolygon {
	out := make(orb.MultiPolygon, len(mp))
	for i, p := range mp {
		out[i] = p.Clone()
	}
	return out
}

// densifyMP adds vertices so that no edge is longer than maxSeg (in each axis).
func densifyMP(mp orb.MultiPolygon, maxSeg float64) orb.MultiPolygon {
	out := make(orb.MultiPolygon, 0, len(mp))
	for _, p := range mp {
		np := make(orb.Polygon, 0, len(p))
		for _, r := range p {
			nr := make(orb.Ring, 0, len(r))
			for i, pt := range r {
				if i > 0 {
					prev := r[i-1]
					d := math.Max(math.Abs(pt[0]-prev[0]), math.Abs(pt[1]-prev[1]))
					if k := int(math.Ceil(d / maxSeg)); k > 1 {
						for j := 1; j < k; j++ {
							t := float64(j) / float64(k)
							nr = append(nr, orb.Point{prev[0] + t*(pt[0]-prev[0]), prev[1] + t*(pt[1]-prev[1])})
						}
					}
				}
				nr = append(nr, pt)
			}
			np = append(np, nr)
		}
		out = append(out, np)
	}
	return out
}

func projectMP(mp orb.MultiPolygon, crs wgs84.ProjectedReferenceSystem) orb.MultiPolygon {
	out := make(orb.MultiPolygon, len(mp))
	for i, p := range mp {
		np := make(orb.Polygon, len(p))
		for j, r := range p {
			nr := make(orb.Ring, len(r))
			for k, pt := range r {
				e, n := crs.Projection.FromLonLat(pt[0], pt[1], crs.Datum)
				nr[k] = orb.Point{e, n}
			}
			np[j] = nr
		}
		out[i] = np
	}
	return out
}

// rasterize calls add for every cell (col, row) of the square grid of the given
// size whose interior intersects polygon p (even-odd rule over its rings), once
// per cell. It stops when add returns false. A cell intersects p when a ring edge
// passes through it, or else when its centre is inside p (then the whole cell
// is). Cost is proportional to the rows each edge spans plus the cells found,
// not to cells x vertices.
func rasterize(p orb.Polygon, size float64, add func(c, r int64) bool) {
	b := p.Bound()
	rmin := int64(math.Floor(b.Min[1] / size))
	rmax := int64(math.Ceil(b.Max[1]/size)) - 1
	if rmax < rmin {
		return
	}
	nrows := rmax - rmin + 1
	crossings := make([][]float64, nrows)
	boundary := make([][]int64, nrows) // columns touched by edges, per row
	mark := func(r int64, a, bx float64) {
		if a > bx {
			a, bx = bx, a
		}
		lo := int64(math.Floor(a / size))
		hi := int64(math.Ceil(bx/size)) - 1
		if a == bx && lo > hi {
			return // a vertical edge exactly on a grid line: touches, does not enter
		}
		for c := lo; c <= hi; c++ {
			boundary[r-rmin] = append(boundary[r-rmin], c)
		}
	}
	for _, ring := range p {
		for i := 0; i+1 <= len(ring); i++ {
			p0 := ring[i]
			p1 := ring[(i+1)%len(ring)]
			if p0 == p1 {
				continue
			}
			if p0[1] == p1[1] {
				y := p0[1] / size
				if y != math.Floor(y) { // horizontal edge inside a row
					mark(int64(math.Floor(y)), p0[0], p1[0])
				}
				continue
			}
			lo, hi := p0, p1
			if lo[1] > hi[1] {
				lo, hi = hi, lo
			}
			r0 := int64(math.Floor(lo[1] / size))
			r1 := int64(math.Ceil(hi[1]/size)) - 1
			dxdy := (hi[0] - lo[0]) / (hi[1] - lo[1])
			for r := r0; r <= r1; r++ {
				ya := math.Max(lo[1], float64(r)*size)
				yb := math.Min(hi[1], float64(r+1)*size)
				mark(r, lo[0]+(ya-lo[1])*dxdy, lo[0]+(yb-lo[1])*dxdy)
				yc := (float64(r) + 0.5) * size
				if yc >= lo[1] && yc < hi[1] {
					crossings[r-rmin] = append(crossings[r-rmin], lo[0]+(yc-lo[1])*dxdy)
				}
			}
		}
	}
	for i := range nrows {
		r := rmin + i
		cols := boundary[i]
		xs := crossings[i]
		slices.Sort(xs)
		for j := 0; j+1 < len(xs); j += 2 {
			c0 := int64(math.Ceil(xs[j]/size - 0.5))
			c1 := int64(math.Floor(xs[j+1]/size - 0.5))
			for c := c0; c <= c1; c++ {
				cols = append(cols, c)
			}
		}
		slices.Sort(cols)
		cols = slices.Compact(cols)
		for _, c := range cols {
			if !add(c, r) {
				return
			}
		}
	}
}

// LAEAEurope bounds (lon/lat) where the LAEA grids are defined: Europe with
// Turkey, Iceland, Svalbard, the Azores and the Canary Islands (EPSG:3035's
// area of use, rounded out).
var LAEAEurope = orb.Bound{Min: orb.Point{-35, 24}, Max: orb.Point{45, 85}}

func (s *splitter) addLAEA(a *AOI) error {
	b := a.Geometry.Bound()
	if !LAEAEurope.Contains(b.Min) || !LAEAEurope.Contains(b.Max) {
		return fmt.Errorf("split: AOI %s (%s) spans lon %g..%g, lat %g..%g; the LAEA grids cover Europe (lon %g..%g, lat %g..%g): use a utm or wgs84 grid",
			a.Name, a.Source, b.Min[0], b.Max[0], b.Min[1], b.Max[1], LAEAEurope.Min[0], LAEAEurope.Max[0], LAEAEurope.Min[1], LAEAEurope.Max[1])
	}
	crs := wgs84.ETRS89LambertAzimuthalEqualArea()
	proj := projectMP(densifyMP(a.Geometry, densifyDegrees), crs)
	return s.addCells(a, s.cell, proj, func(c, r int64) (Tile, bool) { return s.laeaTile(crs, c, r), true })
}

func (s *splitter) laeaTile(crs wgs84.ProjectedReferenceSystem, c, r int64) Tile {
	pc, pr, suffix := s.subSuffix(c, r)
	name := fmt.Sprintf("LAEA-%07d-%07d-%s%s", int64(math.Round(float64(pc)*s.g.Size)), int64(math.Round(float64(pr)*s.g.Size)), s.g.suffix(), suffix)
	buf := s.opt.Buffer
	x0, y0 := float64(c)*s.cell-buf, float64(r)*s.cell-buf
	x1, y1 := float64(c+1)*s.cell+buf, float64(r+1)*s.cell+buf
	// The lon/lat box of the cell: LAEA's edges are curves in lon/lat, so
	// sample each edge.
	bb := [4]float64{math.Inf(1), math.Inf(1), math.Inf(-1), math.Inf(-1)}
	const n = 16
	for i := 0; i <= n; i++ {
		t := float64(i) / n
		for _, p := range [4][2]float64{{x0 + t*(x1-x0), y0}, {x0 + t*(x1-x0), y1}, {x0, y0 + t*(y1-y0)}, {x1, y0 + t*(y1-y0)}} {
			lon, lat := crs.Projection.ToLonLat(p[0], p[1], crs.Datum)
			bb[0], bb[1] = math.Min(bb[0], lon), math.Min(bb[1], lat)
			bb[2], bb[3] = math.Max(bb[2], lon), math.Max(bb[3], lat)
		}
	}
	for i := range bb {
		bb[i] = math.Round(bb[i]*1e9) / 1e9
	}
	return Tile{Name: name, EPSG: 3035, BBox: [4]float64{x0, y0, x1, y1}, WGS84: bb, Width: s.px, Height: s.px}
}
