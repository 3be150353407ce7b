package grid

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"

	"github.com/paulmach/orb"
	"github.com/paulmach/orb/geo"

	"shfleet/internal/text"
	"shfleet/internal/userfile"
)

// Defaults for Limits.
const (
	// DefaultMaxAreaKm2 is the largest AOI area accepted, in km² (about the area of
	// Egypt); larger AOIs are usually a mistake (a swapped lon/lat, a world polygon).
	DefaultMaxAreaKm2 = 1_000_000
	// DefaultMaxBytes is the largest input file read, in bytes.
	DefaultMaxBytes = 64 << 20
	// DefaultMaxFeatures is the largest number of AOIs in one file.
	DefaultMaxFeatures = 100_000
	// MaxProblems is how many problems one InputError lists; further ones are counted.
	MaxProblems = 20
)

// Limits bounds what the parsers accept. The zero value uses the defaults.
type Limits struct {
	// MaxAreaKm2 is the largest area of one AOI in km²; default DefaultMaxAreaKm2.
	MaxAreaKm2 float64
	// MaxBytes is the largest input read, in bytes; default DefaultMaxBytes.
	MaxBytes int64
	// MaxFeatures is the largest number of AOIs in one input; default DefaultMaxFeatures.
	MaxFeatures int
}

func (l Limits) withDefaults() Limits {
	if l.MaxAreaKm2 <= 0 {
		l.MaxAreaKm2 = DefaultMaxAreaKm2
	}
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultMaxBytes
	}
	if l.MaxFeatures <= 0 {
		l.MaxFeatures = DefaultMaxFeatures
	}
	return l
}

// AOI is one area of interest in WGS84 longitude/latitude.
type AOI struct {
	// Name is path-safe ([A-Za-z0-9._-], never "." or "..") and unique within
	// one parsed file.
	Name string
	// Geometry is the area, lon/lat in degrees.
	Geometry orb.MultiPolygon
	// Source says where the AOI came from, e.g. "aoi.geojson feature 3" or
	// "boxes.csv line 7".
	Source string
}

// Problem is one thing wrong with an input file.
type Problem struct {
	// Where is "feature 2" (0-based, the index in the features array), "line 7"
	// (1-based) or "3:15" (line:column of a syntax error); empty for the whole file.
	Where string
	// Field is the JSON path or CSV column at fault, e.g. "geometry.type"; may be empty.
	Field string
	// Reason says what is wrong and what to do.
	Reason string
}

func (p Problem) String() string {
	var b strings.Builder
	if p.Where != "" {
		b.WriteString(p.Where)
		b.WriteString(": ")
	}
	if p.Field != "" {
		b.WriteString(p.Field)
		b.WriteString(": ")
	}
	b.WriteString(p.Reason)
	return b.String()
}

// InputError lists every problem found in an input file, so they can be fixed at
// once. At most MaxProblems are kept; More counts the rest.
type InputError struct {
	// File is the input's name as given to the parser.
	File string
	// Problems are the first MaxProblems problems, in file order.
	Problems []Problem
	// More counts the problems not listed.
	More int
}

// Error formats one problem per line, each prefixed with the file name.
func (e *InputError) Error() string {
	var b strings.Builder
	if len(e.Problems) == 1 && e.More == 0 {
		return e.prefix(e.Problems[0]) + e.Problems[0].String()
	}
	fmt.Fprintf(&b, "%s: %d problems:", e.File, len(e.Problems)+e.More)
	for _, p := range e.Problems {
		b.WriteString("\n  ")
		b.WriteString(e.prefix(p))
		b.WriteString(p.String())
	}
	if e.More > 0 {
		fmt.Fprintf(&b, "\n  ... and %d more", e.More)
	}
	return b.String()
}

// prefix is "file: ", or "file:" before a line:column position (file:3:16:).
func (e *InputError) prefix(p Problem) string {
	if strings.ContainsRune(p.Where, ':') {
		return e.File + ":"
	}
	return e.File + ": "
}

func (e *InputError) add(where, field, format string, args ...any) {
	if len(e.Problems) >= MaxProblems {
		e.More++
		return
	}
	e.Problems = append(e.Problems, Problem{Where: where, Field: field, Reason: fmt.Sprintf(format, args...)})
}

func (e *InputError) errOrNil() error {
	if len(e.Problems) == 0 {
		return nil
	}
	return e
}

// ParseFile reads AOIs from path, choosing the format by extension (see Parse).
// The file is read through the bounded reader: a FIFO, device or directory is
// refused before it is opened, and at most Limits.MaxBytes are read.
func ParseFile(path string, lim Limits) ([]AOI, error) {
	return ParseFileContext(context.Background(), path, lim)
}

// ParseFileContext is ParseFile ending the read when ctx ends.
func ParseFileContext(ctx context.Context, path string, lim Limits) ([]AOI, error) {
	if _, err := parser(path); err != nil {
		return nil, err
	}
	lim = lim.withDefaults()
	kind := userfile.AOI
	kind.MaxBytes = lim.MaxBytes
	data, err := userfile.Read(ctx, "", path, kind)
	if err != nil {
		return nil, err
	}
	return Parse(path, data, lim)
}

// Parse reads AOIs from data, the content of filename, choosing the format by
// extension: .geojson and .json are GeoJSON (ParseGeoJSON), .csv and .txt are
// bounding-box lists (ParseBBoxCSV).
func Parse(filename string, data []byte, lim Limits) ([]AOI, error) {
	parse, err := parser(filename)
	if err != nil {
		return nil, err
	}
	return parse(filename, bytes.NewReader(data), lim)
}

func parser(path string) (func(string, io.Reader, Limits) ([]AOI, error), error) {
	switch ext := strings.ToLower(filepath.Ext(path)); ext {
	case ".geojson", ".json":
		return ParseGeoJSON, nil
	case ".csv", ".txt":
		return ParseBBoxCSV, nil
	default:
		return nil, fmt.Errorf("%s: unknown AOI file type %q; use .geojson/.json (GeoJSON Polygon/MultiPolygon) or .csv/.txt (lines minlon,minlat,maxlon,maxlat[,name])", path, ext)
	}
}

func readLimited(filename string, r io.Reader, lim Limits) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, lim.MaxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%s: read: %w", filename, err)
	}
	if int64(len(data)) > lim.MaxBytes {
		return nil, fmt.Errorf("%s: larger than %d bytes; simplify the geometry or split the file", filename, lim.MaxBytes)
	}
	data, reason := userfile.CheckText(data)
	if reason != "" {
		return nil, fmt.Errorf("%s: %s; save the AOI file as UTF-8", filename, reason)
	}
	return data, nil
}

// lineCol turns a byte offset into 1-based line and column.
func lineCol(data []byte, off int64) (line, col int) {
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	if off < 0 {
		off = 0
	}
	before := data[:off]
	line = bytes.Count(before, []byte("\n")) + 1
	col = int(off) - (bytes.LastIndexByte(before, '\n') + 1) + 1
	return line, col
}

type rawGeometry struct {
	Type        string          `json:"type"`
	Coordinates json.RawMessage `json:"coordinates"`
}

type rawObject struct {
	Type        string            `json:"type"`
	Features    []json.RawMessage `json:"features"`
	Geometry    json.RawMessage   `json:"geometry"`
	Properties  json.RawMessage   `json:"properties"`
	ID          json.RawMessage   `json:"id"`
	Coordinates json.RawMessage   `json:"coordinates"`
	CRS         json.RawMessage   `json:"crs"`
}

// ParseGeoJSON reads AOIs from GeoJSON in WGS84 lon/lat: a FeatureCollection, a
// Feature, or a bare Polygon or MultiPolygon geometry. A feature's name comes from
// its properties "name" or "id" (or the feature id), else "<file-stem>-<index>";
// names are made path-safe and unique. All problems of all features (up to
// MaxProblems) are returned together in one *InputError.
func ParseGeoJSON(filename string, r io.Reader, lim Limits) ([]AOI, error) {
	lim = lim.withDefaults()
	data, err := readLimited(filename, r, lim)
	if err != nil {
		return nil, err
	}
	ie := &InputError{File: filename}
	var top rawObject
	if err := json.Unmarshal(data, &top); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			l, c := lineCol(data, se.Offset-1) // Offset is just past the bad byte
			ie.add(fmt.Sprintf("%d:%d", l, c), "", "invalid JSON: %v; fix the syntax (jq . %s shows the spot)", se, filepath.Base(filename))
		case errors.As(err, &te):
			l, c := lineCol(data, te.Offset)
			ie.add(fmt.Sprintf("%d:%d", l, c), "", "%s", describeJSONError(err))
		default:
			ie.add("", "", "invalid GeoJSON: %v; the file must hold one GeoJSON object", err)
		}
		return nil, ie
	}
	if !checkCRS(top.CRS, "", ie) {
		return nil, ie
	}
	stem := strings.TrimSuffix(filepath.Base(filename), filepath.Ext(filename))
	names := newNamer(stem)
	var aois []AOI
	switch top.Type {
	case "FeatureCollection":
		if len(top.Features) == 0 {
			ie.add("", "features", "the FeatureCollection is empty; add at least one Polygon or MultiPolygon feature")
			return nil, ie
		}
		if len(top.Features) > lim.MaxFeatures {
			ie.add("", "features", "%d features exceed the limit of %d; split the file", len(top.Features), lim.MaxFeatures)
			return nil, ie
		}
		for i, raw := range top.Features {
			where := fmt.Sprintf("feature %d", i)
			var f rawObject
			if err := json.Unmarshal(raw, &f); err != nil {
				ie.add(where, "", "not a GeoJSON Feature: %s", describeJSONError(err))
				continue
			}
			if f.Type != "Feature" {
				ie.add(where, "type", "type is %q; each element of features must be a Feature", f.Type)
				continue
			}
			if !checkCRS(f.CRS, where, ie) {
				continue
			}
			if a, ok := parseFeature(f, where, lim, ie); ok {
				a.Name = names.name(featureName(f), i)
				a.Source = filepath.Base(filename) + " " + where
				aois = append(aois, a)
			}
		}
	case "Feature":
		if a, ok := parseFeature(top, "feature 0", lim, ie); ok {
			a.Name = names.name(featureName(top), 0)
			a.Source = filepath.Base(filename) + " feature 0"
			aois = append(aois, a)
		}
	case "Polygon", "MultiPolygon":
		g := rawGeometry{Type: top.Type, Coordinates: top.Coordinates}
		if mp, ok := parseGeometry(g, "geometry", "", ie); ok {
			if checkArea(mp, "geometry", "", lim, ie) {
				aois = append(aois, AOI{Name: names.name("", 0), Geometry: mp, Source: filepath.Base(filename)})
			}
		}
	case "":
		ie.add("", "type", "missing GeoJSON type; use a FeatureCollection, Feature, Polygon or MultiPolygon")
	default:
		ie.add("", "type", "GeoJSON type %s is not supported; use a FeatureCollection, Feature, Polygon or MultiPolygon", top.Type)
	}
	if err := ie.errOrNil(); err != nil {
		return nil, err
	}
	return aois, nil
}

// wgs84Names are the crs names (lower case) that mean WGS84 longitude/latitude,
// what RFC 7946 GeoJSON always is.
var wgs84Names = []string{"urn:ogc:def:crs:ogc:1.3:crs84", "urn:ogc:def:crs:ogc::crs84", "crs84", "ogc:crs84",
	"http://www.opengis.net/def/crs/ogc/1.3/crs84", "epsg:4326", "urn:ogc:def:crs:epsg::4326", "urn:ogc:def:crs:epsg:4326",
	"http://www.opengis.net/def/crs/epsg/0/4326", "wgs84"}

// checkCRS accepts a missing crs member (RFC 7946) or one naming WGS84, and
// refuses any other: positions in another CRS would be read as degrees of the
// wrong place.
func checkCRS(raw json.RawMessage, where string, ie *InputError) bool {
	if len(raw) == 0 || string(raw) == "null" {
		return true
	}
	var crs struct {
		Type       string `json:"type"`
		Properties struct {
			Name string `json:"name"`
			Code any    `json:"code"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(raw, &crs); err != nil {
		ie.add(where, "crs", "crs is not an object with properties.name; remove it (GeoJSON positions are WGS84 lon/lat)")
		return false
	}
	name := strings.ToLower(strings.TrimSpace(crs.Properties.Name))
	if crs.Type == "EPSG" && fmt.Sprint(crs.Properties.Code) == "4326" {
		return true
	}
	for _, n := range wgs84Names {
		if name == n {
			return true
		}
	}
	shown := crs.Properties.Name
	if shown == "" {
		shown = string(raw)
	}
	ie.add(where, "crs", "crs %s is not WGS84, and shfleet reads positions only as WGS84 lon/lat; reproject the file (e.g. ogr2ogr -t_srs EPSG:4326 out.geojson in.geojson) and drop the crs member", shown)
	return false
}

func featureName(f rawObject) string {
	var props map[string]json.RawMessage
	_ = json.Unmarshal(f.Properties, &props) // properties that are not an object carry no name
	for _, raw := range []json.RawMessage{props["name"], props["id"], f.ID} {
		if s := text.JSONScalar(raw); s != "" {
			return s
		}
	}
	return ""
}

// describeJSONError words a decoding error in JSON terms rather than Go's.
func describeJSONError(err error) string {
	var te *json.UnmarshalTypeError
	if !errors.As(err, &te) {
		return err.Error()
	}
	want := "a " + te.Type.String()
	switch te.Type.Kind() {
	case reflect.Slice:
		want = "an array"
	case reflect.Map, reflect.Struct:
		want = "an object"
	case reflect.String:
		want = "a string"
	case reflect.Float64:
		want = "a number"
	}
	if te.Field == "" {
		return fmt.Sprintf("must be %s, found JSON %s; the file must hold one GeoJSON object", want, te.Value)
	}
	return fmt.Sprintf("%s must be %s, found JSON %s", te.Field, want, te.Value)
}

func parseFeature(f rawObject, where string, lim Limits, ie *InputError) (AOI, bool) {
	if len(f.Geometry) == 0 || string(f.Geometry) == "null" {
		ie.add(where, "geometry", "geometry is missing or null; give a Polygon or MultiPolygon")
		return AOI{}, false
	}
	var g rawGeometry
	if err := json.Unmarshal(f.Geometry, &g); err != nil {
		ie.add(where, "geometry", "not a GeoJSON geometry: %s", describeJSONError(err))
		return AOI{}, false
	}
	mp, ok := parseGeometry(g, where, "geometry.", ie)
	if !ok || !checkArea(mp, where, "geometry", lim, ie) {
		return AOI{}, false
	}
	return AOI{Geometry: mp}, true
}

func checkArea(mp orb.MultiPolygon, where, field string, lim Limits, ie *InputError) bool {
	km2 := geo.Area(mp) / 1e6
	if km2 > lim.MaxAreaKm2 {
		ie.add(where, field, "area %.0f km² exceeds the limit of %.0f km²; split the AOI into smaller ones (or raise the area limit, --max-area-km2)", km2, lim.MaxAreaKm2)
		return false
	}
	return true
}

// parseGeometry decodes a Polygon or MultiPolygon and validates it, adding
// problems to ie. prefix is the JSON path of the geometry ("geometry." or "").
func parseGeometry(g rawGeometry, where, prefix string, ie *InputError) (orb.MultiPolygon, bool) {
	field := prefix + "coordinates"
	switch g.Type {
	case "Polygon":
		var coords [][][]float64
		if err := json.Unmarshal(g.Coordinates, &coords); err != nil || len(coords) == 0 {
			ie.add(where, field, "a Polygon's coordinates must be a non-empty array of rings, each an array of [lon, lat] positions")
			return nil, false
		}
		p, ok := parsePolygon(coords, where, field, ie)
		if !ok {
			return nil, false
		}
		return cutAntimeridian(p, where, field, ie)
	case "MultiPolygon":
		var coords [][][][]float64
		if err := json.Unmarshal(g.Coordinates, &coords); err != nil || len(coords) == 0 {
			ie.add(where, field, "a MultiPolygon's coordinates must be a non-empty array of polygons, each an array of rings of [lon, lat] positions")
			return nil, false
		}
		mp := make(orb.MultiPolygon, 0, len(coords))
		ok := true
		for i, pc := range coords {
			if len(pc) == 0 {
				ie.add(where, fmt.Sprintf("%s[%d]", field, i), "polygon has no rings; remove it or add an exterior ring")
				ok = false
				continue
			}
			p, pok := parsePolygon(pc, where, fmt.Sprintf("%s[%d]", field, i), ie)
			if pok {
				var parts orb.MultiPolygon
				parts, pok = cutAntimeridian(p, where, fmt.Sprintf("%s[%d]", field, i), ie)
				mp = append(mp, parts...)
			}
			ok = ok && pok
		}
		return mp, ok
	case "":
		ie.add(where, prefix+"type", "geometry type is missing; use Polygon or MultiPolygon")
	default:
		ie.add(where, prefix+"type", "geometry type %s is not supported; use Polygon or MultiPolygon", g.Type)
	}
	return nil, false
}

// cutAntimeridian splits a polygon that crosses the antimeridian into its two
// sides (see splitAntimeridian), or refuses one that goes round a pole.
func cutAntimeridian(p orb.Polygon, where, field string, ie *InputError) (orb.MultiPolygon, bool) {
	mp, ok := splitAntimeridian(p)
	if !ok {
		ie.add(where, field, "a ring goes round a pole (its edges, each taken the short way across the antimeridian, circle the globe); cut the AOI at the antimeridian or use a smaller one")
		return nil, false
	}
	if len(mp) == 0 {
		ie.add(where, field, "the polygon has no area after it was cut at the antimeridian")
		return nil, false
	}
	return mp, true
}

func parsePolygon(coords [][][]float64, where, field string, ie *InputError) (orb.Polygon, bool) {
	p := make(orb.Polygon, 0, len(coords))
	ok := true
	for ri, rc := range coords {
		rf := fmt.Sprintf("%s[%d]", field, ri)
		if len(rc) < 4 {
			ie.add(where, rf, "ring has %d positions; a ring needs at least 4 (3 corners and the first repeated at the end)", len(rc))
			ok = false
			continue
		}
		ring := make(orb.Ring, 0, len(rc))
		ringOK := true
		for pi, pos := range rc {
			pf := fmt.Sprintf("%s[%d]", rf, pi)
			if len(pos) < 2 {
				ie.add(where, pf, "position has %d numbers; write [lon, lat]", len(pos))
				ringOK = false
				break
			}
			lon, lat := pos[0], pos[1]
			if math.IsNaN(lon) || lon < -180 || lon > 180 {
				ie.add(where, pf, "longitude %g is out of range -180..180; positions are [lon, lat] in WGS84 degrees", lon)
				ringOK = false
				break
			}
			if math.IsNaN(lat) || lat < -90 || lat > 90 {
				ie.add(where, pf, "latitude %g is out of range -90..90; positions are [lon, lat] in WGS84 degrees (lon first)", lat)
				ringOK = false
				break
			}
			ring = append(ring, orb.Point{lon, lat})
		}
		if ringOK && ring[0] != ring[len(ring)-1] {
			ie.add(where, rf, "ring is not closed: first position %v differs from last %v; repeat the first position at the end", rc[0][:2], rc[len(rc)-1][:2])
			ringOK = false
		}
		ok = ok && ringOK
		p = append(p, ring)
	}
	return p, ok
}

// namer makes path-safe unique names.
type namer struct {
	stem string
	seen map[string]bool
}

func newNamer(stem string) *namer {
	s := SafeName(stem)
	if s == "" {
		s = "aoi"
	}
	return &namer{stem: s, seen: map[string]bool{}}
}

// name returns a unique safe name from raw, or "<stem>-<index>" if raw has
// nothing usable.
func (n *namer) name(raw string, index int) string {
	base := SafeName(raw)
	if base == "" {
		base = fmt.Sprintf("%s-%d", n.stem, index)
	}
	name := base
	for i := 2; n.seen[name]; i++ {
		name = fmt.Sprintf("%s-%d", base, i)
	}
	n.seen[name] = true
	return name
}

// maxNameLen bounds names so that they stay usable as file names.
const maxNameLen = 100

// SafeName maps s to a path-safe name: characters outside [A-Za-z0-9._-] become
// "_" (runs collapsed), leading and trailing ".", "_" and "-" are trimmed, and
// the result is at most 100 bytes. It can be empty (the caller picks a default);
// it never contains "/" and is never "." or "..".
func SafeName(s string) string {
	var b strings.Builder
	lastUnderscore := false
	for _, r := range s {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_'
		if !ok {
			r = '_'
		}
		if r == '_' {
			if lastUnderscore {
				continue
			}
			lastUnderscore = true
		} else {
			lastUnderscore = false
		}
		b.WriteRune(r)
	}
	out := strings.Trim(b.String(), "._-")
	if len(out) > maxNameLen {
		out = strings.TrimRight(out[:maxNameLen], "._-")
	}
	return out
}

// ParseBBoxCSV reads AOIs from lines "minlon,minlat,maxlon,maxlat[,name]" in WGS84
// degrees. Blank lines and lines starting with "#" are skipped; the first other
// line may be a header (its first field not a number). Unnamed boxes are called
// "<file-stem>-<line>". All problems (up to MaxProblems) are returned together in
// one *InputError naming each line.
func ParseBBoxCSV(filename string, r io.Reader, lim Limits) ([]AOI, error) {
	lim = lim.withDefaults()
	data, err := readLimited(filename, r, lim)
	if err != nil {
		return nil, err
	}
	ie := &InputError{File: filename}
	stem := strings.TrimSuffix(filepath.Base(filename), filepath.Ext(filename))
	names := newNamer(stem)
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), len(data)+1)
	var aois []AOI
	lineNo := 0
	seenData := false
	colNames := [4]string{"minlon", "minlat", "maxlon", "maxlat"}
	// cols maps minlon, minlat, maxlon, maxlat and name to field indices: by
	// position without a header, by the header's names with one.
	cols := [5]int{0, 1, 2, 3, 4}
	ncols := 0 // the header's width; 0 without a header (4 or 5 columns)
	for sc.Scan() {
		lineNo++
		line := strings.TrimSpace(sc.Text())
		if lineNo == 1 {
			line = strings.TrimPrefix(line, "\ufeff")
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		where := fmt.Sprintf("line %d", lineNo)
		fields := strings.Split(line, ",")
		for i := range fields {
			fields[i] = strings.TrimSpace(fields[i])
		}
		if !seenData {
			seenData = true
			if _, err := strconv.ParseFloat(fields[0], 64); err != nil && looksLikeHeader(fields[0]) {
				c, err := headerColumns(fields)
				if err != nil {
					ie.add(where, "", "%s", err)
					return nil, ie
				}
				cols, ncols = c, len(fields)
				continue
			}
		}
		switch {
		case ncols > 0 && len(fields) != ncols && !(len(fields) == ncols-1 && cols[4] == ncols-1):
			ie.add(where, "", "%d columns; the header has %d", len(fields), ncols)
			continue
		case ncols == 0 && len(fields) != 4 && len(fields) != 5:
			ie.add(where, "", "%d columns; write minlon,minlat,maxlon,maxlat[,name]", len(fields))
			continue
		}
		var v [4]float64
		ok := true
		for i := 0; i < 4; i++ {
			f, err := strconv.ParseFloat(fields[cols[i]], 64)
			if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
				ie.add(where, colNames[i], "%q is not a number; write decimal degrees such as 14.5", fields[cols[i]])
				ok = false
				continue
			}
			v[i] = f
		}
		if !ok {
			continue
		}
		for i := 0; i < 4; i++ {
			lim := 180.0
			if i%2 == 1 {
				lim = 90
			}
			if v[i] < -lim || v[i] > lim {
				ie.add(where, colNames[i], "%s %g is out of range %g..%g; columns are minlon,minlat,maxlon,maxlat in WGS84 degrees", colNames[i], v[i], -lim, lim)
				ok = false
			}
		}
		if !ok {
			continue
		}
		if v[0] == v[2] {
			ie.add(where, "", "minlon equals maxlon (%g): the box has no area; write minlon,minlat,maxlon,maxlat with min < max", v[0])
			ok = false
		} else if v[0] > v[2] {
			ie.add(where, "", "minlon %g > maxlon %g; write minlon,minlat,maxlon,maxlat with min < max (split boxes that cross the antimeridian)", v[0], v[2])
			ok = false
		}
		if v[1] == v[3] {
			ie.add(where, "", "minlat equals maxlat (%g): the box has no area; write minlon,minlat,maxlon,maxlat with min < max", v[1])
			ok = false
		} else if v[1] > v[3] {
			ie.add(where, "", "minlat %g > maxlat %g; write minlon,minlat,maxlon,maxlat with min < max", v[1], v[3])
			ok = false
		}
		if !ok {
			continue
		}
		mp := orb.MultiPolygon{orb.Polygon{orb.Bound{Min: orb.Point{v[0], v[1]}, Max: orb.Point{v[2], v[3]}}.ToRing()}}
		if !checkArea(mp, where, "", lim, ie) {
			continue
		}
		if len(aois) >= lim.MaxFeatures {
			ie.add(where, "", "more than %d boxes; split the file", lim.MaxFeatures)
			break
		}
		raw := ""
		if cols[4] >= 0 && cols[4] < len(fields) {
			raw = fields[cols[4]]
		}
		aois = append(aois, AOI{Name: names.name(raw, lineNo), Geometry: mp, Source: fmt.Sprintf("%s %s", filepath.Base(filename), where)})
	}
	if err := sc.Err(); err != nil {
		ie.add(fmt.Sprintf("line %d", lineNo+1), "", "cannot read: %v", err)
	}
	if len(aois) == 0 && len(ie.Problems) == 0 {
		ie.add("", "", "no bounding boxes found; add lines minlon,minlat,maxlon,maxlat[,name]")
	}
	if err := ie.errOrNil(); err != nil {
		return nil, err
	}
	return aois, nil
}

// headerNames are the accepted column titles (lower case) of a bbox CSV header,
// for minlon, minlat, maxlon, maxlat and name.
var headerNames = [5][]string{
	{"minlon", "min_lon", "lonmin", "lon_min", "minx", "min_x", "xmin", "x_min", "west", "left", "minlng", "min_lng"},
	{"minlat", "min_lat", "latmin", "lat_min", "miny", "min_y", "ymin", "y_min", "south", "bottom"},
	{"maxlon", "max_lon", "lonmax", "lon_max", "maxx", "max_x", "xmax", "x_max", "east", "right", "maxlng", "max_lng"},
	{"maxlat", "max_lat", "latmax", "lat_max", "maxy", "max_y", "ymax", "y_max", "north", "top"},
	{"name", "id", "label"},
}

// headerColumns maps a header's titles to the field index of minlon, minlat,
// maxlon, maxlat and name (-1: no name column). Columns may come in any order;
// an unknown, repeated or missing title is an error.
func headerColumns(fields []string) ([5]int, error) {
	cols := [5]int{-1, -1, -1, -1, -1}
	for i, f := range fields {
		title := strings.ToLower(strings.Trim(f, `"' `))
		k := -1
		for j, names := range headerNames {
			for _, n := range names {
				if title == n {
					k = j
				}
			}
		}
		if k < 0 {
			return cols, fmt.Errorf("header column %d %q is not one of minlon, minlat, maxlon, maxlat, name (or west/south/east/north, xmin/ymin/xmax/ymax); rename it so the columns are read by name", i+1, f)
		}
		if cols[k] >= 0 {
			return cols, fmt.Errorf("header names %s twice (columns %d and %d)", headerNames[k][0], cols[k]+1, i+1)
		}
		cols[k] = i
	}
	for k := 0; k < 4; k++ {
		if cols[k] < 0 {
			return cols, fmt.Errorf("header has no %s column; name the columns minlon, minlat, maxlon, maxlat[, name] in any order", headerNames[k][0])
		}
	}
	return cols, nil
}

// looksLikeHeader reports whether a first field is a column title rather than a
// mistyped number.
func looksLikeHeader(s string) bool {
	for _, r := range s {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' {
			return true
		}
	}
	return false
}
