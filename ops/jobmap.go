package ops

import (
	"cmp"
	"fmt"
	"html"
	"html/template"
	"math"
	"slices"
	"strings"

	"shfleet/jobs"
)

// Map limits. A job of 100,000 tiles must not make a 10 MB page that reloads
// every few seconds, so above MapMaxTiles the map draws a coarser raster.
const (
	// MapMaxTiles is the most tiles the job map draws one by one; a job with
	// more is drawn as the cells of a raster of at most MapRasterCells cells on
	// its longer side (about 0.7 MB of SVG at worst, as is a map of
	// MapMaxTiles tiles).
	MapMaxTiles = 20000
	// MapRasterCells is the raster's size on its longer side.
	MapRasterCells = 150
	// MapTitledTiles is the most tiles or cells drawn as rects with a hover
	// title (name and counts); more are drawn as one path per state.
	MapTitledTiles = 2000
)

// Map geometry, in SVG units: the drawing fits the box mapPad..mapW-mapPad by
// mapPad..mapPad+mapPlotH, centred across and at the top; the SVG ends
// mapFooter below the drawing, which holds the legend and the scale bar.
const (
	mapW        = 760
	mapPad      = 20
	mapPlotW    = mapW - 2*mapPad // 720
	mapPlotH    = 440
	mapFooter   = 62
	kmPerDegree = 111.32 // one degree of latitude (and of longitude at the equator)
)

// MapState is what the job map shows for a tile (or a raster cell).
type MapState string

// Map states, in legend order.
const (
	MapPending MapState = "pending" // not analysed yet, or items PENDING or SCHEDULED
	MapRunning MapState = "running" // items PROCESSING, or some DONE and some not yet
	MapDone    MapState = "done"    // every item DONE
	MapFailed  MapState = "failed"  // an item FAILED, or the tile's catalog search failed
	MapNoData  MapState = "nodata"  // analysed, no item (on the date shown)
)

// mapStates are the states in legend order, with their colours and labels.
var mapStates = []struct {
	State MapState
	Color string
	Label string
}{
	{MapPending, "#b3b9c0", "pending"},
	{MapRunning, "#f39c12", "running"},
	{MapDone, "#27ae60", "done"},
	{MapFailed, "#e74c3c", "failed"},
	{MapNoData, "#eef0f2", "no item"},
}

func stateColor(s MapState) string {
	for _, m := range mapStates {
		if m.State == s {
			return m.Color
		}
	}
	return "#000"
}

// stateTally counts tiles (or items) by map state.
type stateTally map[MapState]int

// combine is the summary of many states: failed when any failed; running when
// any runs, or some are done and some pending; done when all that have items
// are done; pending when all are pending; no data when nothing has items. It
// makes a tile's state from its items' (all dates) and a cell's from its tiles'.
func (t stateTally) combine() MapState {
	switch {
	case t[MapFailed] > 0:
		return MapFailed
	case t[MapRunning] > 0, t[MapDone] > 0 && t[MapPending] > 0:
		return MapRunning
	case t[MapDone] > 0:
		return MapDone
	case t[MapPending] > 0:
		return MapPending
	}
	return MapNoData
}

// tileState is a tile's state from its record and its items' counts (ok false:
// it has no item on the date shown).
func tileState(rec jobs.TileRecord, c jobs.StatusCounts, ok bool) MapState {
	if !ok || c.Total() == 0 {
		switch {
		case rec.Failed:
			return MapFailed
		case !rec.Analysed:
			return MapPending
		}
		return MapNoData
	}
	return stateTally{MapPending: c.Pending + c.Scheduled, MapRunning: c.Processing, MapDone: c.Done, MapFailed: c.Failed}.combine()
}

// MapInput is what the job map is drawn from.
type MapInput struct {
	// Tiles are the job's tiles (jobs.Store.Tiles).
	Tiles []jobs.TileRecord
	// Status are the items' counts per tile on the date shown (or all dates).
	Status map[string]jobs.StatusCounts
	// Outline is the AOI outline (may be empty).
	Outline jobs.Outline
}

// MapResult is the drawn map.
type MapResult struct {
	// SVG is the map, legend and scale bar.
	SVG template.HTML
	// Tiles counts the job's tiles by state.
	Tiles map[MapState]int
	// Cells is 0 when every tile is drawn, else the number of raster cells
	// drawn (Cols x Rows raster) because the job has more than MapMaxTiles tiles.
	Cells, Cols, Rows int
}

// lonFrame shifts longitudes into [start, start+360), start chosen after the
// widest gap between the drawn boxes, so that an AOI on both sides of the
// antimeridian is drawn in one piece (170°E..190°E) and not across the globe.
type lonFrame struct{ start float64 }

func (f lonFrame) lon(v float64) float64 {
	for v < f.start-1e-9 {
		v += 360
	}
	for v >= f.start+360-1e-9 {
		v -= 360
	}
	return v
}

// normBox returns a WGS84 box with west < east: a box whose corners wrapped
// around ±180 (west > east, or wider than 180°) is turned into one whose east
// lies past 180.
func normBox(b [4]float64) [4]float64 {
	if b[0] > b[2] || b[2]-b[0] > 180 {
		b[0], b[2] = b[2], b[0]+360
	}
	return b
}

// frameFor finds the widest longitude gap between the intervals and starts the
// frame where it ends.
func frameFor(iv [][2]float64) lonFrame {
	if len(iv) == 0 {
		return lonFrame{start: -180}
	}
	for i := range iv {
		w := math.Mod(iv[i][0]+180, 360)
		if w < 0 {
			w += 360
		}
		w -= 180
		iv[i] = [2]float64{w, w + (iv[i][1] - iv[i][0])}
	}
	slices.SortFunc(iv, func(a, b [2]float64) int { return cmp.Compare(a[0], b[0]) })
	bestGap, start := -1.0, iv[0][0]
	end := iv[0][1]
	for _, v := range iv[1:] {
		if g := v[0] - end; g > bestGap {
			bestGap, start = g, v[0]
		}
		end = math.Max(end, v[1])
	}
	if g := iv[0][0] + 360 - end; g >= bestGap { // the gap that wraps round ±180
		start = iv[0][0]
	}
	return lonFrame{start: start}
}

// projection maps lon/lat to SVG units: equirectangular, longitudes scaled by
// the cosine of the middle latitude, fitted and centred in the plot box.
type projection struct {
	frame              lonFrame
	minX, maxY         float64 // extent: west (in frame), north
	kx, scale          float64 // cos(mid latitude); SVG units per degree of latitude
	offX, offY         float64
	widthDeg, heightDg float64
}

func newProjection(frame lonFrame, west, south, east, north float64) projection {
	p := projection{frame: frame, minX: west, maxY: north}
	p.kx = math.Cos((south + north) / 2 * math.Pi / 180)
	p.widthDeg = math.Max((east-west)*p.kx, 1e-9)
	p.heightDg = math.Max(north-south, 1e-9)
	p.scale = math.Min(mapPlotW/p.widthDeg, mapPlotH/p.heightDg)
	p.offX = mapPad + (mapPlotW-p.widthDeg*p.scale)/2
	p.offY = mapPad
	return p
}

// x takes a longitude already in the frame.
func (p projection) x(lon float64) float64 { return p.offX + (lon-p.minX)*p.kx*p.scale }
func (p projection) y(lat float64) float64 { return p.offY + (p.maxY-lat)*p.scale }

// JobMap draws the job's tiles coloured by state over the AOI outline, with a
// legend and a scale bar, as SVG. Tiles come from their WGS84 boxes; more than
// MapMaxTiles tiles are drawn as raster cells (each cell's state combines its
// tiles', see stateTally.combine).
func JobMap(in MapInput) MapResult {
	res := MapResult{Tiles: map[MapState]int{}}
	boxes := make([][4]float64, len(in.Tiles))
	states := make([]MapState, len(in.Tiles))
	var iv [][2]float64
	for i, t := range in.Tiles {
		c, ok := in.Status[t.Name]
		states[i] = tileState(t, c, ok)
		res.Tiles[states[i]]++
		boxes[i] = normBox(t.WGS84)
		iv = append(iv, [2]float64{boxes[i][0], boxes[i][2]})
	}
	for _, r := range in.Outline {
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, pt := range r {
			lo, hi = math.Min(lo, pt[0]), math.Max(hi, pt[0])
		}
		iv = append(iv, [2]float64{lo, hi})
	}
	frame := frameFor(iv)

	// The extent of everything drawn, in the frame.
	west, south, east, north := math.Inf(1), math.Inf(1), math.Inf(-1), math.Inf(-1)
	grow := func(lon, lat float64) {
		west, east = math.Min(west, lon), math.Max(east, lon)
		south, north = math.Min(south, lat), math.Max(north, lat)
	}
	for i := range boxes {
		b := &boxes[i]
		w := frame.lon(b[0])
		b[0], b[2] = w, w+(b[2]-b[0])
		grow(b[0], b[1])
		grow(b[2], b[3])
	}
	outline := make([][][2]float64, len(in.Outline))
	for i, r := range in.Outline {
		outline[i] = make([][2]float64, len(r))
		for j, pt := range r {
			outline[i][j] = [2]float64{frame.lon(pt[0]), pt[1]}
			grow(outline[i][j][0], pt[1])
		}
	}

	var b strings.Builder
	if len(boxes) == 0 && len(outline) == 0 {
		fmt.Fprintf(&b, `<svg class="map" viewBox="0 0 %d 60" width="%d" height="60" xmlns="http://www.w3.org/2000/svg"><text x="%d" y="%d" class="axis">no tiles</text></svg>`,
			mapW, mapW, mapPad, mapPad+14)
		res.SVG = template.HTML(b.String())
		return res
	}
	p := newProjection(frame, west, south, east, north)
	plotH := math.Ceil(p.heightDg*p.scale - 1e-6)
	h, legendY := int(mapPad+plotH+mapFooter), int(mapPad+plotH+22)
	fmt.Fprintf(&b, `<svg class="map" viewBox="0 0 %d %d" width="%d" height="%d" role="img" aria-label="map of the job's tiles by status" xmlns="http://www.w3.org/2000/svg">`,
		mapW, h, mapW, h)
	fmt.Fprintf(&b, `<rect x="0" y="0" width="%d" height="%d" fill="#fff"/>`, mapW, h)

	var shapes []shape
	if len(boxes) <= MapMaxTiles {
		titled := len(boxes) <= MapTitledTiles
		shapes = make([]shape, len(boxes))
		for i, bx := range boxes {
			shapes[i] = shape{x: p.x(bx[0]), y: p.y(bx[3]), w: (bx[2] - bx[0]) * p.kx * p.scale, h: (bx[3] - bx[1]) * p.scale, state: states[i]}
			if titled {
				c := in.Status[in.Tiles[i].Name]
				shapes[i].title = fmt.Sprintf("%s: %s (%d done, %d running, %d pending, %d failed)", in.Tiles[i].Name, states[i],
					c.Done, c.Processing, c.Pending+c.Scheduled, c.Failed)
			}
		}
	} else {
		shapes, res.Cols, res.Rows = raster(p, boxes, states)
		res.Cells = len(shapes)
	}
	writeShapes(&b, shapes)

	for _, r := range outline {
		if len(r) < 2 {
			continue
		}
		b.WriteString(`<path class="aoi" fill="none" stroke="#2c3e50" stroke-width="1.5" stroke-linejoin="round" d="`)
		for j, pt := range r {
			op := "L"
			if j == 0 {
				op = "M"
			}
			fmt.Fprintf(&b, "%s%.1f %.1f", op, p.x(pt[0]), p.y(pt[1]))
		}
		b.WriteString(`Z"/>`)
	}

	// Legend: a swatch and the number of tiles per state.
	x := float64(mapPad)
	for _, m := range mapStates {
		fmt.Fprintf(&b, `<rect x="%.0f" y="%d" width="12" height="12" fill="%s" stroke="#999" stroke-width="0.5"/>`, x, legendY-10, m.Color)
		label := fmt.Sprintf("%s %d", m.Label, res.Tiles[m.State])
		fmt.Fprintf(&b, `<text x="%.0f" y="%d" class="legend" data-state="%s">%s</text>`, x+16, legendY, m.State, label)
		x += 16 + 7*float64(len(label)) + 18
	}
	writeScaleBar(&b, p, float64(legendY+18))
	b.WriteString(`</svg>`)
	res.SVG = template.HTML(b.String()) // only numbers and escaped names are interpolated
	return res
}

// shape is one tile or raster cell to draw, in SVG units.
type shape struct {
	x, y, w, h float64
	state      MapState
	title      string
}

// writeShapes draws up to MapTitledTiles shapes as rects with a hover title
// each; more as one path per state (about 30 bytes a shape instead of 110).
func writeShapes(b *strings.Builder, shapes []shape) {
	if len(shapes) <= MapTitledTiles {
		for _, s := range shapes {
			fmt.Fprintf(b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s" stroke="#fff" stroke-width="0.5" data-state="%s"`,
				s.x, s.y, math.Max(s.w, 0.3), math.Max(s.h, 0.3), stateColor(s.state), s.state)
			if s.title == "" {
				b.WriteString(`/>`)
				continue
			}
			fmt.Fprintf(b, `><title>%s</title></rect>`, html.EscapeString(s.title))
		}
		return
	}
	for _, m := range mapStates {
		n := 0
		for _, s := range shapes {
			if s.state != m.State {
				continue
			}
			if n == 0 {
				fmt.Fprintf(b, `<path class="tiles" fill="%s" stroke="#fff" stroke-width="0.3" data-state="%s" d="`, m.Color, m.State)
			}
			n++
			w, h := math.Max(s.w, 0.3), math.Max(s.h, 0.3)
			fmt.Fprintf(b, "M%.1f %.1fh%.1fv%.1fh-%.1fz", s.x, s.y, w, h, w)
		}
		if n > 0 {
			b.WriteString(`"/>`)
		}
	}
}

// raster makes the cells of a raster over the drawing (a tile counts in the
// cell of its centre; a cell's state combines its tiles') and returns them
// and the raster's size.
func raster(p projection, boxes [][4]float64, states []MapState) (cells []shape, cols, rows int) {
	wpx, hpx := p.widthDeg*p.scale, p.heightDg*p.scale
	cell := math.Max(wpx, hpx) / MapRasterCells
	cols, rows = min(MapRasterCells, max(1, int(math.Ceil(wpx/cell-1e-9)))), min(MapRasterCells, max(1, int(math.Ceil(hpx/cell-1e-9))))
	tally := map[int]stateTally{}
	for i, bx := range boxes {
		cx := (p.x(bx[0])+p.x(bx[2]))/2 - p.offX
		cy := (p.y(bx[1])+p.y(bx[3]))/2 - p.offY
		c := min(cols-1, max(0, int(cx/cell)))
		r := min(rows-1, max(0, int(cy/cell)))
		k := r*cols + c
		if tally[k] == nil {
			tally[k] = stateTally{}
		}
		tally[k][states[i]]++
	}
	keys := make([]int, 0, len(tally))
	for k := range tally {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	titled := len(keys) <= MapTitledTiles
	for _, k := range keys {
		t := tally[k]
		s := shape{x: p.offX + float64(k%cols)*cell, y: p.offY + float64(k/cols)*cell, w: cell, h: cell, state: t.combine()}
		if titled {
			s.title = fmt.Sprintf("%d tiles: %d done, %d running, %d pending, %d failed", t[MapPending]+t[MapRunning]+t[MapDone]+t[MapFailed]+t[MapNoData],
				t[MapDone], t[MapRunning], t[MapPending], t[MapFailed])
		}
		cells = append(cells, s)
	}
	return cells, cols, rows
}

// writeScaleBar draws a bar of a round length (1, 2 or 5 x 10^n metres) about
// a quarter of the plot wide, true at the middle latitude.
func writeScaleBar(b *strings.Builder, p projection, y float64) {
	kmPerUnit := kmPerDegree / p.scale
	target := mapPlotW / 4 * kmPerUnit
	l := math.Pow(10, math.Floor(math.Log10(target)))
	for _, m := range []float64{5, 2} {
		if l*m <= target {
			l *= m
			break
		}
	}
	w := l / kmPerUnit
	x0 := float64(mapW-mapPad) - w
	fmt.Fprintf(b, `<path class="scalebar" d="M%.1f %.1fv4h%.1fv-4" fill="none" stroke="#333" stroke-width="1.5"/>`, x0, y-4, w)
	label := fmt.Sprintf("%g km", l)
	if l < 1 {
		label = fmt.Sprintf("%g m", math.Round(l*1000))
	}
	fmt.Fprintf(b, `<text x="%.1f" y="%.1f" class="legend" text-anchor="end">%s</text>`, x0-6, y, label)
}
