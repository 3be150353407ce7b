package sentineltest

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The synthetic world of the simulated catalog.
const (
	// RevisitDays is the interval between two acquisitions of one cell.
	RevisitDays = 5
	// MaxCatalogItems caps the items one catalog search may match (400 beyond).
	MaxCatalogItems = 200000
	// maxCells caps the cells a bbox may cover (400 beyond).
	maxCells = 20000
)

// worldEpoch is the first day acquisitions may happen (Sentinel-2A's first data).
var worldEpoch = time.Date(2015, 6, 27, 0, 0, 0, 0, time.UTC)

const day = 24 * time.Hour

// cell is a 1x1 degree cell, its south-west corner at (Lon, Lat).
type cell struct{ Lon, Lat int }

func (c cell) hash(extra ...uint64) uint64 {
	h := fnv.New64a()
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(int64(c.Lon)))
	h.Write(b[:])
	binary.LittleEndian.PutUint64(b[:], uint64(int64(c.Lat)))
	h.Write(b[:])
	for _, e := range extra {
		binary.LittleEndian.PutUint64(b[:], e)
		h.Write(b[:])
	}
	return mix(h.Sum64())
}

// mix is splitmix64's finalizer, to spread FNV's low-entropy bits.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// name is e.g. "E012N45" or "W003S10".
func (c cell) name() string {
	ew, ns := 'E', 'N'
	lon, lat := c.Lon, c.Lat
	if lon < 0 {
		ew, lon = 'W', -lon
	}
	if lat < 0 {
		ns, lat = 'S', -lat
	}
	return fmt.Sprintf("%c%03d%c%02d", ew, lon, ns, lat)
}

// first is the cell's first acquisition: a phase of 0..4 days and a time of day
// between 09:30 and 11:29 UTC, both from the cell's hash.
func (c cell) first() time.Time {
	h := c.hash()
	return worldEpoch.Add(time.Duration(h%RevisitDays)*day + 9*time.Hour + 30*time.Minute +
		time.Duration((h>>8)%7200)*time.Second)
}

// acquisitions returns the cell's acquisition times within [from, to].
func (c cell) acquisitions(from, to time.Time) []time.Time {
	first := c.first()
	period := RevisitDays * day
	if to.Before(first) || to.Before(from) {
		return nil
	}
	k := int64(0)
	if from.After(first) {
		k = int64(math.Ceil(float64(from.Sub(first)) / float64(period)))
	}
	var out []time.Time
	for t := first.Add(time.Duration(k) * period); !t.After(to); t = t.Add(period) {
		if !t.Before(from) {
			out = append(out, t)
		}
	}
	return out
}

// cloudCover is the deterministic cloud cover (0..100, two decimals) of the cell's
// acquisition at t.
func (c cell) cloudCover(t time.Time) float64 {
	return float64(c.hash(uint64(t.Unix()))%10001) / 100
}

func (c cell) bbox() []float64 {
	return []float64{float64(c.Lon), float64(c.Lat), float64(c.Lon + 1), float64(c.Lat + 1)}
}

func (c cell) geometry() json.RawMessage {
	x0, y0, x1, y1 := c.Lon, c.Lat, c.Lon+1, c.Lat+1
	return json.RawMessage(fmt.Sprintf(`{"type":"Polygon","coordinates":[[[%d,%d],[%d,%d],[%d,%d],[%d,%d],[%d,%d]]]}`,
		x0, y0, x1, y0, x1, y1, x0, y1, x0, y0))
}

// cellsIn returns the cells a WGS84 bbox intersects, west to east, south to north.
func cellsIn(bb []float64) ([]cell, error) {
	x0 := clampInt(int(math.Floor(bb[0])), -180, 179)
	x1 := clampInt(int(math.Ceil(bb[2]))-1, -180, 179)
	y0 := clampInt(int(math.Floor(bb[1])), -90, 89)
	y1 := clampInt(int(math.Ceil(bb[3]))-1, -90, 89)
	x1, y1 = max(x1, x0), max(y1, y0)
	if n := (x1 - x0 + 1) * (y1 - y0 + 1); n > maxCells {
		return nil, fmt.Errorf("bbox covers %d one-degree cells, more than the simulator's %d: search smaller areas", n, maxCells)
	}
	var out []cell
	for x := x0; x <= x1; x++ {
		for y := y0; y <= y1; y++ {
			out = append(out, cell{x, y})
		}
	}
	return out, nil
}

func clampInt(v, lo, hi int) int { return min(max(v, lo), hi) }

// scene is one synthetic acquisition of one cell.
type scene struct {
	cell  cell
	t     time.Time
	cloud float64
	col   collection // set by searchPage
}

// id is e.g. "S2SIM_20250601T101500_E010N45": the collection's item prefix, the
// acquisition time and the cell.
func (sc scene) id() string {
	prefix := sc.col.itemPrefix
	if prefix == "" {
		prefix = "SIM"
	}
	return prefix + "_" + sc.t.Format("20060102T150405") + "_" + sc.cell.name()
}

// scenes returns the acquisitions of every cell in bb within [from, to] whose cloud
// cover passes keep, sorted by datetime then id.
func scenes(bb []float64, from, to time.Time, keep func(float64) bool) ([]scene, error) {
	cells, err := cellsIn(bb)
	if err != nil {
		return nil, err
	}
	var out []scene
	for _, c := range cells {
		for _, t := range c.acquisitions(from, to) {
			cc := c.cloudCover(t)
			if keep != nil && !keep(cc) {
				continue
			}
			out = append(out, scene{cell: c, t: t, cloud: cc})
			if len(out) > MaxCatalogItems {
				return nil, fmt.Errorf("search matches more than %d items: narrow the bbox or datetime", MaxCatalogItems)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].t.Equal(out[j].t) {
			return out[i].t.Before(out[j].t)
		}
		return out[i].id() < out[j].id()
	})
	return out, nil
}

// catalogSearch is the search body as the simulator reads it (filter and next may
// be JSON of several shapes).
type catalogSearch struct {
	Collections []string        `json:"collections"`
	BBox        []float64       `json:"bbox"`
	Intersects  json.RawMessage `json:"intersects"`
	Datetime    string          `json:"datetime"`
	Filter      json.RawMessage `json:"filter"`
	FilterLang  string          `json:"filter-lang"`
	Limit       *int            `json:"limit"`
	Next        json.RawMessage `json:"next"`
}

type stacItem struct {
	StacVersion string          `json:"stac_version"`
	Type        string          `json:"type"`
	ID          string          `json:"id"`
	Collection  string          `json:"collection,omitempty"`
	BBox        []float64       `json:"bbox"`
	Geometry    json.RawMessage `json:"geometry"`
	Properties  stacProps       `json:"properties"`
	Assets      struct{}        `json:"assets"`
	Links       []struct{}      `json:"links"`
}

// stacProps are an item's properties; items of collections without cloud cover
// (Sentinel-1, MODIS, BYOC) have no eo:cloud_cover.
type stacProps struct {
	Datetime   string   `json:"datetime"`
	CloudCover *float64 `json:"eo:cloud_cover,omitempty"`
}

type stacPage struct {
	Type     string     `json:"type"`
	Features []stacItem `json:"features"`
	Links    []struct{} `json:"links"`
	Context  stacCtx    `json:"context"`
}

type stacCtx struct {
	Next     *int `json:"next,omitempty"`
	Limit    int  `json:"limit"`
	Returned int  `json:"returned"`
}

var reCloudFilter = regexp.MustCompile(`^\s*eo:cloud_cover\s*(<=|<|>=|>|=)\s*([0-9]+(?:\.[0-9]*)?)\s*$`)

// parseCloudFilter understands the CQL2 filters shfleet sends: text
// "eo:cloud_cover < N" (and <=, >, >=, =) or the cql2-json equivalent
// {"op":"<","args":[{"property":"eo:cloud_cover"},N]}. Empty means no filter.
func parseCloudFilter(raw json.RawMessage) (func(float64) bool, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var op string
	var n float64
	var text string
	if err := json.Unmarshal(raw, &text); err == nil {
		if strings.TrimSpace(text) == "" {
			return nil, nil
		}
		m := reCloudFilter.FindStringSubmatch(text)
		if m == nil {
			return nil, fmt.Errorf("filter %q: the simulator understands only `eo:cloud_cover < N` (or <=, >, >=, =)", text)
		}
		op = m[1]
		n, _ = strconv.ParseFloat(m[2], 64)
	} else {
		var j struct {
			Op   string            `json:"op"`
			Args []json.RawMessage `json:"args"`
		}
		var prop struct {
			Property string `json:"property"`
		}
		if json.Unmarshal(raw, &j) != nil || len(j.Args) != 2 || json.Unmarshal(j.Args[0], &prop) != nil ||
			prop.Property != "eo:cloud_cover" || json.Unmarshal(j.Args[1], &n) != nil {
			return nil, fmt.Errorf("filter: the simulator understands only cql2-json {\"op\":\"<\",\"args\":[{\"property\":\"eo:cloud_cover\"},N]}")
		}
		op = j.Op
	}
	switch op {
	case "<":
		return func(v float64) bool { return v < n }, nil
	case "<=":
		return func(v float64) bool { return v <= n }, nil
	case ">":
		return func(v float64) bool { return v > n }, nil
	case ">=":
		return func(v float64) bool { return v >= n }, nil
	case "=":
		return func(v float64) bool { return v == n }, nil
	}
	return nil, fmt.Errorf("filter: operator %q is not supported (use <, <=, >, >=, =)", op)
}

// parseDatetime reads a STAC datetime: "from/to" (either end may be ".." or
// empty) or a single instant. Open ends are the world's epoch and now.
func parseDatetime(s string, now time.Time) (from, to time.Time, err error) {
	from, to = worldEpoch, now
	if strings.TrimSpace(s) == "" {
		return from, to, nil
	}
	parts := strings.Split(s, "/")
	if len(parts) > 2 {
		return from, to, fmt.Errorf("datetime %q: want an RFC 3339 instant or interval \"from/to\"", s)
	}
	parse := func(p string, def time.Time) (time.Time, error) {
		if p == "" || p == ".." {
			return def, nil
		}
		t, err := time.Parse(time.RFC3339Nano, p)
		if err != nil {
			return def, fmt.Errorf("datetime %q: %q is not RFC 3339", s, p)
		}
		return t, nil
	}
	if from, err = parse(parts[0], worldEpoch); err != nil {
		return
	}
	if len(parts) == 1 {
		return from, from, nil
	}
	if to, err = parse(parts[1], now); err != nil {
		return
	}
	if to.Before(from) {
		err = fmt.Errorf("datetime %q: end is before start", s)
	}
	return
}

// geometryBBox returns the bbox of every coordinate in a GeoJSON geometry.
func geometryBBox(raw json.RawMessage) ([]float64, error) {
	var g struct {
		Type        string `json:"type"`
		Coordinates any    `json:"coordinates"`
	}
	if err := json.Unmarshal(raw, &g); err != nil {
		return nil, fmt.Errorf("geometry is not GeoJSON: %v", err)
	}
	bb := []float64{math.Inf(1), math.Inf(1), math.Inf(-1), math.Inf(-1)}
	var walk func(v any) bool
	walk = func(v any) bool {
		arr, ok := v.([]any)
		if !ok {
			return false
		}
		if len(arr) >= 2 {
			x, okx := arr[0].(float64)
			y, oky := arr[1].(float64)
			if okx && oky {
				bb[0], bb[1] = math.Min(bb[0], x), math.Min(bb[1], y)
				bb[2], bb[3] = math.Max(bb[2], x), math.Max(bb[3], y)
				return true
			}
		}
		ok = len(arr) > 0
		for _, e := range arr {
			ok = walk(e) && ok
		}
		return ok
	}
	if !walk(g.Coordinates) || math.IsInf(bb[0], 0) {
		return nil, fmt.Errorf("geometry of type %q has no usable coordinates", g.Type)
	}
	return bb, nil
}

func validBBox(bb []float64) error {
	if len(bb) != 4 {
		return fmt.Errorf("want 4 numbers [minX, minY, maxX, maxY], got %d", len(bb))
	}
	if !(bb[0] < bb[2]) || !(bb[1] < bb[3]) {
		return fmt.Errorf("min must be below max, got %v", bb)
	}
	return nil
}

// catalogCollections checks the collections of a search on deployment dep: each
// must exist in this deployment's catalog (404 otherwise, as the service answers
// {"code": 404, "description": "Collection not found."}) and be readable by the
// account (403).
func (s *Server) catalogCollections(ids []string, dep string) ([]collection, *failure) {
	if len(ids) == 0 {
		return nil, badRequest(`collections: name at least one collection, e.g. ["sentinel-2-l2a"]`)
	}
	var out []collection
	for _, id := range ids {
		c, ok := lookupCollection(id)
		switch {
		case !ok:
			return nil, &failure{http.StatusNotFound, "COMMON_NOT_FOUND", fmt.Sprintf(
				"Collection not found: %q does not exist in the catalog; known collections are %s", id, knownCollections())}
		case !c.catalog:
			return nil, &failure{http.StatusNotFound, "COMMON_NOT_FOUND", fmt.Sprintf(
				"Collection not found: %q does not exist in the catalog (it is timeless: process it without searching)", id)}
		case c.deployment != dep:
			return nil, &failure{http.StatusNotFound, "COMMON_NOT_FOUND", "Collection not found: " + wrongDeployment(c, dep)}
		}
		if f := s.forbiddenFailure(id); f != nil {
			return nil, f
		}
		out = append(out, c)
	}
	return out, nil
}

// searchPage computes one page of a catalog search over cols, or a 400.
func searchPage(q catalogSearch, cols []collection, now time.Time) (*stacPage, *failure) {
	page, msg := searchPageMsg(q, cols, now)
	if msg != "" {
		return nil, badRequest(msg)
	}
	return page, nil
}

func searchPageMsg(q catalogSearch, cols []collection, now time.Time) (*stacPage, string) {
	var bb []float64
	var err error
	switch {
	case len(q.BBox) > 0 && len(q.Intersects) > 0:
		return nil, "bbox and intersects are mutually exclusive: send one"
	case len(q.BBox) > 0:
		if err := validBBox(q.BBox); err != nil {
			return nil, "bbox: " + err.Error()
		}
		bb = q.BBox
	case len(q.Intersects) > 0:
		if bb, err = geometryBBox(q.Intersects); err != nil {
			return nil, "intersects: " + err.Error()
		}
	default:
		return nil, "bbox or intersects is required"
	}
	limit := 10
	if q.Limit != nil {
		limit = *q.Limit
		if limit < 1 || limit > 100 {
			return nil, fmt.Sprintf("limit: must be between 1 and 100, got %d", limit)
		}
	}
	offset := 0
	if len(q.Next) > 0 && string(q.Next) != "null" {
		var n int
		var str string
		if json.Unmarshal(q.Next, &n) != nil {
			if json.Unmarshal(q.Next, &str) != nil {
				return nil, "next: must be the context.next value of the previous page"
			}
			if n, err = strconv.Atoi(str); err != nil {
				return nil, "next: must be the context.next value of the previous page"
			}
		}
		if n < 0 {
			return nil, "next: must not be negative"
		}
		offset = n
	}
	from, to, err := parseDatetime(q.Datetime, now)
	if err != nil {
		return nil, err.Error()
	}
	keep, err := parseCloudFilter(q.Filter)
	if err != nil {
		return nil, err.Error()
	}
	if keep != nil {
		for _, c := range cols {
			if !c.cloudCover {
				return nil, fmt.Sprintf("filter: property eo:cloud_cover is not a queryable of collection %q (it has no cloud cover); remove the filter", c.id)
			}
		}
	}
	var all []scene
	for _, c := range cols {
		sc, err := scenes(bb, from, to, keep)
		if err != nil {
			return nil, err.Error()
		}
		for i := range sc {
			sc[i].col = c
		}
		all = append(all, sc...)
		if len(all) > MaxCatalogItems {
			return nil, fmt.Sprintf("search matches more than %d items: narrow the bbox or datetime", MaxCatalogItems)
		}
	}
	if len(cols) > 1 {
		sort.Slice(all, func(i, j int) bool {
			if !all[i].t.Equal(all[j].t) {
				return all[i].t.Before(all[j].t)
			}
			return all[i].id() < all[j].id()
		})
	}
	page := &stacPage{Type: "FeatureCollection", Features: []stacItem{}, Links: []struct{}{}}
	for i := offset; i < len(all) && i < offset+limit; i++ {
		sc := all[i]
		props := stacProps{Datetime: sc.t.Format(time.RFC3339)}
		if sc.col.cloudCover {
			cc := sc.cloud
			props.CloudCover = &cc
		}
		page.Features = append(page.Features, stacItem{
			StacVersion: "1.0.0",
			Type:        "Feature",
			ID:          sc.id(),
			Collection:  sc.col.id,
			BBox:        sc.cell.bbox(),
			Geometry:    sc.cell.geometry(),
			Properties:  props,
			Links:       []struct{}{},
		})
	}
	page.Context = stacCtx{Limit: limit, Returned: len(page.Features)}
	if next := offset + limit; next < len(all) {
		page.Context.Next = &next
	}
	return page, ""
}

// catalogHandler serves the Catalog API of deployment dep.
func (s *Server) catalogHandler(dep string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { s.handleCatalog(w, r, dep) }
}

func (s *Server) handleCatalog(w http.ResponseWriter, r *http.Request, dep string) {
	now := s.cfg.Now()
	var q catalogSearch
	decodeErr := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&q)
	var page *stacPage
	var fail *failure
	if decodeErr != nil {
		fail = badRequest("cannot parse the search body as JSON: " + decodeErr.Error())
	} else if cols, f := s.catalogCollections(q.Collections, dep); f != nil {
		fail = f
	} else {
		page, fail = searchPage(q, cols, now) // outside the lock: it may scan many cells
	}
	body, truncate, ok := s.catalogLocked(w, r, now, page, fail)
	if ok { // written outside the lock: a page may be larger than net/http's buffer
		writeBody(w, "application/geo+json", body, truncate)
	}
}

// catalogLocked answers errors itself, in the catalog's error shape, and returns
// the page to write on success.
func (s *Server) catalogLocked(w http.ResponseWriter, r *http.Request, now time.Time, page *stacPage, fail *failure) (body []byte, truncate, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.CatalogRequests++
	path := r.URL.Path
	if _, ok := s.authorized(r, now); !ok {
		s.unauthorized(w, shapeCatalog, now, path)
		return nil, false, false
	}
	if fail != nil {
		if fail.status == http.StatusForbidden {
			s.denied(w, shapeCatalog, now, path, fail)
			return nil, false, false
		}
		s.record(now, path, fail.status, 0, "")
		writeFailure(w, shapeCatalog, fail.status, fail.code, fail.msg)
		return nil, false, false
	}
	a := s.check(now, 0)
	if !a.ok {
		s.record(now, path, http.StatusTooManyRequests, 0, "")
		s.reject429(w, shapeCatalog, a)
		return nil, false, false
	}
	f5, truncate := s.fault()
	if f5 {
		s.stats.Faults5xx++
		s.record(now, path, http.StatusServiceUnavailable, 0, "")
		writeFailure(w, shapeCatalog, http.StatusServiceUnavailable, "COMMON_SERVICE_UNAVAILABLE", "Service temporarily unavailable (injected fault): retry later")
		return nil, false, false
	}
	s.charge(now, 0)
	s.remainingHeaders(w.Header(), s.levels())
	s.record(now, path, http.StatusOK, 0, "")
	if truncate {
		s.stats.Truncated++
	}
	body = marshal(page)
	return body, truncate, true
}
