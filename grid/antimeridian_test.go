package grid

import (
	"slices"
	"strings"
	"testing"
)

// TestAntimeridianTiles: a 0.2° x 0.1° box across 180° (Fiji) is cut into its
// two sides and tiled there. Hand-worked with gdaltransform (EPSG:4326 ->
// EPSG:32760 and EPSG:32701): the corners (179.9,-16.1), (179.9,-16.0),
// (180,-16.1), (180,-16.0) lie at eastings 810234..821100 and northings
// 8217672..8228898 of zone 60S, and (-179.9..-180) at eastings 178900..189766 of
// zone 1S: 10 km columns 810000, 820000 (60S) and 170000, 180000 (1S), rows
// 8210000 and 8220000 in both.
func TestAntimeridianTiles(t *testing.T) {
	t.Parallel()
	for _, ring := range []string{
		// drawn from the east side, and from the west side
		`[[179.9,-16.1],[-179.9,-16.1],[-179.9,-16.0],[179.9,-16.0],[179.9,-16.1]]`,
		`[[-179.9,-16.1],[-179.9,-16.0],[179.9,-16.0],[179.9,-16.1],[-179.9,-16.1]]`,
	} {
		in := `{"type":"Polygon","coordinates":[` + ring + `]}`
		aois, err := ParseGeoJSON("fiji.geojson", strings.NewReader(in), Limits{})
		if err != nil {
			t.Fatal(err)
		}
		if len(aois) != 1 || len(aois[0].Geometry) != 2 {
			t.Fatalf("want one AOI of two parts, got %+v", aois)
		}
		g, _ := ParseGrid("utm-10km")
		tiles, err := Split(aois, g, SplitOptions{Resolution: 10})
		if err != nil {
			t.Fatal(err)
		}
		want := []string{
			"01S-0170000-8210000-10km", "01S-0170000-8220000-10km", "01S-0180000-8210000-10km", "01S-0180000-8220000-10km",
			"60S-0810000-8210000-10km", "60S-0810000-8220000-10km", "60S-0820000-8210000-10km", "60S-0820000-8220000-10km",
		}
		if got := names(tiles); !slices.Equal(got, want) {
			t.Errorf("ring %s: tiles %v, want %v", ring, got, want)
		}
		g, _ = ParseGrid("wgs84-0.1deg")
		tiles, err = Split(aois, g, SplitOptions{Resolution: 0.001})
		if err != nil {
			t.Fatal(err)
		}
		// One 0.1° cell each side: south-west corners (179.9,-16.1) and (-180,-16.1).
		if got, want := names(tiles), []string{"wgs84-0.1deg-E179.9S16.1", "wgs84-0.1deg-W180.0S16.1"}; !slices.Equal(got, want) {
			t.Errorf("ring %s: wgs84 tiles %v, want %v", ring, got, want)
		}
	}
}

// TestAntimeridianPole: a ring that goes round the pole cannot be cut.
func TestAntimeridianPole(t *testing.T) {
	t.Parallel()
	in := `{"type":"Polygon","coordinates":[[[0,80],[120,80],[-120,80],[0,80]]]}`
	_, err := ParseGeoJSON("pole.geojson", strings.NewReader(in), Limits{})
	if err == nil || !strings.Contains(err.Error(), "goes round a pole") {
		t.Fatalf("err %v, want the pole refusal", err)
	}
}

// TestBBoxCSVHeaderOrder: columns are read by the header's names.
func TestBBoxCSVHeaderOrder(t *testing.T) {
	t.Parallel()
	for _, src := range []string{
		"minlat,minlon,maxlat,maxlon\n46.0,14.4,46.1,14.5\n",
		"name,north,east,south,west\nljubljana,46.1,14.5,46.0,14.4\n",
		"YMIN,XMIN,YMAX,XMAX\n46.0,14.4,46.1,14.5\n",
	} {
		aois, err := ParseBBoxCSV("b.csv", strings.NewReader(src), Limits{})
		if err != nil {
			t.Fatalf("%q: %v", src, err)
		}
		if b := aois[0].Geometry.Bound(); b.Min[0] != 14.4 || b.Min[1] != 46.0 || b.Max[0] != 14.5 || b.Max[1] != 46.1 {
			t.Errorf("%q: bound %v, want lon 14.4..14.5 lat 46.0..46.1", src, b)
		}
	}
	for src, want := range map[string]string{
		"lat1,lon1,lat2,lon2\n46.0,14.4,46.1,14.5\n":    `header column 1 "lat1"`,
		"minlon,minlat,maxlon\n14.4,46.0,14.5\n":        "no maxlat column",
		"minlon,minlat,maxlon,xmin\n14.4,46.0,14.5,3\n": "names minlon twice",
	} {
		if _, err := ParseBBoxCSV("b.csv", strings.NewReader(src), Limits{}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err %v, want %q", src, err, want)
		}
	}
}
