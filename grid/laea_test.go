package grid

import (
	"strings"
	"testing"
)

// TestLAEAGridsKnownCells: EPSG:3035's natural origin, lon 10° lat 52°, is
// easting 4321000, northing 3210000 (its false easting and northing), so a
// small box around it lies in the 100 km cell 4300000..4400000 x
// 3200000..3300000 and the 20 km cell 4320000..4340000 x 3200000..3220000.
// The box is 0.02° x 0.01°: about 1.4 km x 1.1 km around the origin.
func TestLAEAGridsKnownCells(t *testing.T) {
	aoi := []AOI{box("origin", 9.99, 51.995, 10.01, 52.005)}
	for _, c := range []struct {
		grid, name string
		res        float64
		bbox       [4]float64
		px         int
		id         int
	}{
		{"laea-100km", "LAEA-4300000-3200000-100km", 50, [4]float64{4300000, 3200000, 4400000, 3300000}, 2000, 6},
		{"laea-20km", "LAEA-4320000-3200000-20km", 10, [4]float64{4320000, 3200000, 4340000, 3220000}, 2000, 7},
	} {
		g, err := ParseGrid(c.grid)
		if err != nil {
			t.Fatal(err)
		}
		if id, ok := g.BatchGridID(); !ok || id != c.id {
			t.Errorf("%s: batch grid id %d %v, want %d", c.grid, id, ok, c.id)
		}
		tiles, err := Split(aoi, g, SplitOptions{Resolution: c.res})
		if err != nil {
			t.Fatal(err)
		}
		if len(tiles) != 1 {
			t.Fatalf("%s: %d tiles %+v, want 1", c.grid, len(tiles), tiles)
		}
		tl := tiles[0]
		if tl.Name != c.name || tl.EPSG != 3035 || tl.BBox != c.bbox || tl.Width != c.px || tl.Height != c.px {
			t.Errorf("%s: tile %+v, want %s EPSG:3035 %v %d px", c.grid, tl, c.name, c.bbox, c.px)
		}
		// The lon/lat box holds the AOI (the cell contains it).
		if tl.WGS84[0] > 9.99 || tl.WGS84[1] > 51.995 || tl.WGS84[2] < 10.01 || tl.WGS84[3] < 52.005 {
			t.Errorf("%s: lon/lat box %v does not hold the AOI", c.grid, tl.WGS84)
		}
	}
	// A box across the 20 km cell border at easting 4340000 (about 0.27° east of
	// the origin at 52°N) spans two cells.
	two, err := Split([]AOI{box("border", 10.25, 52.0, 10.32, 52.01)}, mustGrid(t, "laea-20km"), SplitOptions{Resolution: 20})
	if err != nil {
		t.Fatal(err)
	}
	if len(two) != 2 || two[0].Name != "LAEA-4320000-3200000-20km" || two[1].Name != "LAEA-4340000-3200000-20km" {
		t.Fatalf("border box: %+v, want the cells at easting 4320000 and 4340000", two)
	}
}

func TestLAEAOutsideEuropeIsRefused(t *testing.T) {
	_, err := Split([]AOI{box("ny", -74.1, 40.6, -73.9, 40.8)}, mustGrid(t, "laea-20km"), SplitOptions{Resolution: 20})
	if err == nil || !strings.Contains(err.Error(), "LAEA grids cover Europe") {
		t.Fatalf("an AOI in New York on laea-20km: %v, want a refusal naming Europe", err)
	}
}
