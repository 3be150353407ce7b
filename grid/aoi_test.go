package grid

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseGeoJSONVariants(t *testing.T) {
	t.Parallel()
	poly := `{"type":"Polygon","coordinates":[[[14,46],[14.1,46],[14.1,46.1],[14,46]]]}`
	mpoly := `{"type":"MultiPolygon","coordinates":[[[[14,46],[14.1,46],[14.1,46.1],[14,46]]],[[[15,46],[15.1,46],[15.1,46.1],[15,46]]]]}`
	tests := []struct {
		name      string
		src       string
		wantNames []string
		wantPolys []int
	}{
		{"bare polygon", poly, []string{"in-0"}, []int{1}},
		{"bare multipolygon", mpoly, []string{"in-0"}, []int{2}},
		{"feature", `{"type":"Feature","properties":{"name":"field A"},"geometry":` + poly + `}`, []string{"field_A"}, []int{1}},
		{"collection names and ids", `{"type":"FeatureCollection","features":[
			{"type":"Feature","properties":{"name":"a"},"geometry":` + poly + `},
			{"type":"Feature","properties":{"id":17},"geometry":` + mpoly + `},
			{"type":"Feature","id":"fid","properties":"junk","geometry":` + poly + `},
			{"type":"Feature","properties":{},"geometry":` + poly + `}]}`,
			[]string{"a", "17", "fid", "in-3"}, []int{1, 2, 1, 1}},
		{"duplicate names made unique", `{"type":"FeatureCollection","features":[
			{"type":"Feature","properties":{"name":"x"},"geometry":` + poly + `},
			{"type":"Feature","properties":{"name":"x"},"geometry":` + poly + `},
			{"type":"Feature","properties":{"name":"x"},"geometry":` + poly + `}]}`,
			[]string{"x", "x-2", "x-3"}, []int{1, 1, 1}},
		{"path traversal names", `{"type":"FeatureCollection","features":[
			{"type":"Feature","properties":{"name":"../../etc"},"geometry":` + poly + `},
			{"type":"Feature","properties":{"name":".."},"geometry":` + poly + `},
			{"type":"Feature","properties":{"name":"a/b\\c d"},"geometry":` + poly + `}]}`,
			[]string{"etc", "in-1", "a_b_c_d"}, []int{1, 1, 1}},
		{"altitude ignored", `{"type":"Polygon","coordinates":[[[14,46,300],[14.1,46,300],[14.1,46.1,1],[14,46,300]]]}`, []string{"in-0"}, []int{1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			aois, err := ParseGeoJSON("dir/in.geojson", strings.NewReader(tc.src), Limits{})
			if err != nil {
				t.Fatalf("ParseGeoJSON: %v", err)
			}
			if len(aois) != len(tc.wantNames) {
				t.Fatalf("got %d AOIs, want %d", len(aois), len(tc.wantNames))
			}
			for i, a := range aois {
				if a.Name != tc.wantNames[i] {
					t.Errorf("AOI %d name = %q, want %q", i, a.Name, tc.wantNames[i])
				}
				if len(a.Geometry) != tc.wantPolys[i] {
					t.Errorf("AOI %d has %d polygons, want %d", i, len(a.Geometry), tc.wantPolys[i])
				}
				if !strings.HasPrefix(a.Source, "in.geojson") {
					t.Errorf("AOI %d source = %q, want it to name in.geojson", i, a.Source)
				}
			}
		})
	}
}

func TestParseGeoJSONErrors(t *testing.T) {
	t.Parallel()
	ring := `[[14,46],[14.1,46],[14.1,46.1],[14,46]]`
	feat := func(geom string) string {
		return `{"type":"Feature","properties":{},"geometry":` + geom + `}`
	}
	fc := func(feats ...string) string {
		return `{"type":"FeatureCollection","features":[` + strings.Join(feats, ",") + `]}`
	}
	good := feat(`{"type":"Polygon","coordinates":[` + ring + `]}`)
	tests := []struct {
		name string
		src  string
		want []string // substrings of the error
	}{
		{"malformed JSON", "{\n  \"type\": \"FeatureCollection\",\n  \"features\": [}\n", []string{"bad.geojson:3:16", "invalid JSON"}},
		{"not an object", `[1,2]`, []string{"bad.geojson:1:", "must be an object, found JSON array"}},
		{"features not an array", `{"type":"FeatureCollection","features":{}}`, []string{"bad.geojson:1:", "features must be an array, found JSON object"}},
		{"type not a string", `{"type":"FeatureCollection","features":[{"type":5}]}`, []string{"feature 0: not a GeoJSON Feature: type must be a string, found JSON number"}},
		{"empty collection", fc(), []string{"bad.geojson", "FeatureCollection is empty"}},
		{"unsupported top type", `{"type":"Point","coordinates":[1,2]}`, []string{"bad.geojson", "Point is not supported", "FeatureCollection, Feature, Polygon or MultiPolygon"}},
		{"missing type", `{"features":[]}`, []string{"bad.geojson", "missing GeoJSON type"}},
		{"linestring", fc(good, good, feat(`{"type":"LineString","coordinates":[[1,2],[3,4]]}`)),
			[]string{"bad.geojson: feature 2: geometry.type: geometry type LineString is not supported; use Polygon or MultiPolygon"}},
		{"point", fc(feat(`{"type":"Point","coordinates":[1,2]}`)), []string{"feature 0", "Point is not supported"}},
		{"null geometry", fc(good, `{"type":"Feature","properties":{},"geometry":null}`), []string{"feature 1: geometry:", "missing or null"}},
		{"not a feature", fc(`{"type":"Polygon","coordinates":[` + ring + `]}`), []string{"feature 0: type:", "must be a Feature"}},
		{"lon out of range", fc(good, feat(`{"type":"Polygon","coordinates":[[[14,46],[190,46],[14.1,46.1],[14,46]]]}`)),
			[]string{"feature 1: geometry.coordinates[0][1]", "longitude 190 is out of range -180..180"}},
		{"lat out of range", fc(feat(`{"type":"Polygon","coordinates":[[[14,46],[14.1,-95],[14.1,46.1],[14,46]]]}`)),
			[]string{"feature 0: geometry.coordinates[0][1]", "latitude -95 is out of range -90..90"}},
		{"unclosed ring", fc(feat(`{"type":"Polygon","coordinates":[[[14,46],[14.1,46],[14.1,46.1],[14,46.1]]]}`)),
			[]string{"feature 0: geometry.coordinates[0]", "ring is not closed", "repeat the first position"}},
		{"short ring", fc(feat(`{"type":"Polygon","coordinates":[[[14,46],[14.1,46],[14,46]]]}`)),
			[]string{"feature 0: geometry.coordinates[0]", "ring has 3 positions", "at least 4"}},
		{"multipolygon inner error", fc(feat(`{"type":"MultiPolygon","coordinates":[[` + ring + `],[[[1,2],[3,4],[1,2]]]]}`)),
			[]string{"feature 0: geometry.coordinates[1][0]", "ring has 3 positions"}},
		{"short position", fc(feat(`{"type":"Polygon","coordinates":[[[14],[14.1,46],[14.1,46.1],[14]]]}`)),
			[]string{"geometry.coordinates[0][0]", "position has 1 numbers"}},
		{"coordinates wrong shape", fc(feat(`{"type":"Polygon","coordinates":[14,46]}`)),
			[]string{"feature 0: geometry.coordinates", "array of rings"}},
		{"area too large", fc(feat(`{"type":"Polygon","coordinates":[[[0,0],[40,0],[40,40],[0,40],[0,0]]]}`)),
			[]string{"feature 0: geometry", "exceeds the limit of 1000000 km²", "split the AOI"}},
		{"all problems at once", fc(
			feat(`{"type":"LineString","coordinates":[[1,2],[3,4]]}`),
			good,
			feat(`{"type":"Polygon","coordinates":[[[14,46],[14.1,46],[14.1,46.1],[14,46.1]]]}`),
			feat(`{"type":"Polygon","coordinates":[[[14,46],[14.1,99],[14.1,46.1],[14,46]]]}`)),
			[]string{"3 problems", "feature 0: geometry.type", "feature 2: geometry.coordinates[0]: ring is not closed", "feature 3: geometry.coordinates[0][1]: latitude 99"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			aois, err := ParseGeoJSON("bad.geojson", strings.NewReader(tc.src), Limits{})
			if err == nil {
				t.Fatalf("ParseGeoJSON succeeded with %d AOIs; want error containing %q", len(aois), tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\n does not contain %q", err, w)
				}
			}
			if !strings.Contains(err.Error(), "bad.geojson") {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
}

func TestParseGeoJSONManyProblemsCapped(t *testing.T) {
	t.Parallel()
	var feats []string
	for range 30 {
		feats = append(feats, `{"type":"Feature","geometry":{"type":"Point","coordinates":[1,2]}}`)
	}
	_, err := ParseGeoJSON("many.geojson", strings.NewReader(`{"type":"FeatureCollection","features":[`+strings.Join(feats, ",")+`]}`), Limits{})
	var ie *InputError
	if !errors.As(err, &ie) {
		t.Fatalf("error %v is not an *InputError", err)
	}
	if len(ie.Problems) != MaxProblems || ie.More != 30-MaxProblems {
		t.Errorf("got %d problems + %d more, want %d + %d", len(ie.Problems), ie.More, MaxProblems, 30-MaxProblems)
	}
	if !strings.Contains(err.Error(), "30 problems") || !strings.Contains(err.Error(), "and 10 more") {
		t.Errorf("error %q does not count all problems", err)
	}
}

func TestParseGeoJSONLimits(t *testing.T) {
	t.Parallel()
	src := `{"type":"Polygon","coordinates":[[[14,46],[15,46],[15,47],[14,47],[14,46]]]}`
	if _, err := ParseGeoJSON("a.geojson", strings.NewReader(src), Limits{MaxAreaKm2: 100}); err == nil || !strings.Contains(err.Error(), "limit of 100 km²") {
		t.Errorf("MaxAreaKm2 100: err = %v, want area limit error", err)
	}
	if _, err := ParseGeoJSON("a.geojson", strings.NewReader(src), Limits{MaxBytes: 10}); err == nil || !strings.Contains(err.Error(), "larger than 10 bytes") {
		t.Errorf("MaxBytes 10: err = %v, want size error", err)
	}
	aois, err := ParseGeoJSON("a.geojson", strings.NewReader(src), Limits{})
	if err != nil || len(aois) != 1 {
		t.Fatalf("default limits: %v, %d AOIs", err, len(aois))
	}
}

func TestSafeName(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"../../etc":              "etc",
		"..":                     "",
		".":                      "",
		"/":                      "",
		"a/b":                    "a_b",
		"Field 1 (north)":        "Field_1_north",
		"ok-name_1.v2":           "ok-name_1.v2",
		"Šiška":                  "i_ka",
		strings.Repeat("x", 300): strings.Repeat("x", 100),
	} {
		got := SafeName(in)
		if got != want {
			t.Errorf("SafeName(%q) = %q, want %q", in, got, want)
		}
		if strings.ContainsAny(got, `/\`) || got == "." || got == ".." {
			t.Errorf("SafeName(%q) = %q is not path-safe", in, got)
		}
	}
}

func TestParseBBoxCSV(t *testing.T) {
	t.Parallel()
	src := "\ufeff# boxes\nminlon, minlat, maxlon, maxlat, name\n\n14.4,46.0,14.5,46.1,centre\n 14.6 , 46.0 , 14.7 , 46.1 \n# trailing comment\n13,45,13.5,45.5,../../x\n"
	aois, err := ParseBBoxCSV("data/boxes.csv", strings.NewReader(src), Limits{})
	if err != nil {
		t.Fatalf("ParseBBoxCSV: %v", err)
	}
	wantNames := []string{"centre", "boxes-5", "x"}
	if len(aois) != len(wantNames) {
		t.Fatalf("got %d AOIs, want %d", len(aois), len(wantNames))
	}
	for i, a := range aois {
		if a.Name != wantNames[i] {
			t.Errorf("AOI %d name %q, want %q", i, a.Name, wantNames[i])
		}
	}
	if b := aois[1].Geometry.Bound(); b.Min[0] != 14.6 || b.Min[1] != 46 || b.Max[0] != 14.7 || b.Max[1] != 46.1 {
		t.Errorf("AOI 1 bound = %v", b)
	}
	if aois[1].Source != "boxes.csv line 5" {
		t.Errorf("AOI 1 source = %q", aois[1].Source)
	}
}

func TestParseBBoxCSVErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"inverted lon", "14,46,13,47\n", []string{"b.csv: line 1", "minlon 14 > maxlon 13"}},
		{"inverted lat", "13,47,14,46\n", []string{"line 1", "minlat 47 > maxlat 46"}},
		{"zero width", "13,46,13,47\n", []string{"line 1", "minlon equals maxlon (13): the box has no area"}},
		{"lon out of range", "# c\n13,46,181,47\n", []string{"line 2: maxlon", "maxlon 181 is out of range -180..180"}},
		{"lat out of range", "13,-91,14,47\n", []string{"line 1: minlat", "out of range -90..90"}},
		{"column count", "13,46,14\n", []string{"line 1", "3 columns", "minlon,minlat,maxlon,maxlat[,name]"}},
		{"too many columns", "13,46,14,47,a,b\n", []string{"line 1", "6 columns"}},
		{"not a number", "13,46,14,47\n13,4x6,14,47\n", []string{"line 2: minlat", `"4x6" is not a number`}},
		{"header only", "minlon,minlat,maxlon,maxlat\n", []string{"b.csv", "no bounding boxes"}},
		{"empty", "", []string{"b.csv", "no bounding boxes"}},
		{"several", "14,46,13,47\nok\n13,46,14,47\n1,2,3\n", []string{"3 problems", "line 1", "line 2", "line 4"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseBBoxCSV("b.csv", strings.NewReader(tc.src), Limits{})
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\n does not contain %q", err, w)
				}
			}
		})
	}
}

func TestParseFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	gj := write("x.GeoJSON", `{"type":"Polygon","coordinates":[[[14,46],[14.1,46],[14.1,46.1],[14,46]]]}`)
	js := write("y.json", `{"type":"Polygon","coordinates":[[[14,46],[14.1,46],[14.1,46.1],[14,46]]]}`)
	csv := write("z.txt", "14,46,14.1,46.1\n")
	for _, p := range []string{gj, js, csv} {
		aois, err := ParseFile(p, Limits{})
		if err != nil || len(aois) != 1 {
			t.Errorf("ParseFile(%s) = %d AOIs, %v; want 1", p, len(aois), err)
		}
	}
	if _, err := ParseFile(write("w.kml", "<kml/>"), Limits{}); err == nil || !strings.Contains(err.Error(), ".geojson") {
		t.Errorf("kml: err = %v, want unknown type error listing .geojson", err)
	}
	if _, err := ParseFile(filepath.Join(dir, "missing.geojson"), Limits{}); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: err = %v, want ErrNotExist", err)
	}
}

func FuzzParseGeoJSON(f *testing.F) {
	f.Add(`{"type":"Polygon","coordinates":[[[14,46],[14.1,46],[14.1,46.1],[14,46]]]}`)
	f.Add(`{"type":"FeatureCollection","features":[{"type":"Feature","properties":{"name":"../x"},"geometry":{"type":"MultiPolygon","coordinates":[[[[1,1],[2,1],[2,2],[1,1]]]]}}]}`)
	f.Add(`{"type":"Feature","geometry":{"type":"Polygon","coordinates":[[[1],[],[1,2,3]]]}}`)
	f.Add(`{"type":"Polygon","coordinates":[[]]}`)
	f.Add(`{"type":"MultiPolygon","coordinates":[[]]}`)
	f.Add("{\n\"type\":")
	f.Fuzz(func(t *testing.T, src string) {
		aois, err := ParseGeoJSON("fuzz.geojson", strings.NewReader(src), Limits{})
		if err != nil {
			if !strings.Contains(err.Error(), "fuzz.geojson") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		for _, a := range aois {
			if a.Name == "" || a.Name == "." || a.Name == ".." || strings.ContainsAny(a.Name, `/\`) {
				t.Fatalf("unsafe name %q", a.Name)
			}
			if len(a.Geometry) == 0 {
				t.Fatalf("AOI %s without geometry", a.Name)
			}
		}
		// Whatever parses must split without panicking.
		g, _ := ParseGrid("wgs84-1deg")
		_, _ = Split(aois, g, SplitOptions{Resolution: 0.001, MaxTiles: 1000})
	})
}
