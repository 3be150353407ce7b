package grid

import (
	"strings"
	"testing"
)

// TestCheckBatchResolution: each Batch tiling grid takes the resolutions the
// service lists for it and refuses others naming them; a grid the Batch API
// does not have takes none.
func TestCheckBatchResolution(t *testing.T) {
	cases := []struct {
		grid string
		res  float64
		want string // "" accepted, else a substring of the error
	}{
		{"utm-10km", 10, ""},
		{"utm-10km", 20, ""},
		{"utm-10km", 60, "use one of 10, 20 m"},
		{"utm-20km", 60, ""},
		{"utm-20km", 15, "use one of 10, 20, 30, 60 m"},
		{"utm-100km", 360, ""},
		{"utm-100km", 10, "use one of 30, 60, 120, 240, 360 m"},
		{"wgs84-1deg", 0.0002, ""},
		{"wgs84-1deg", 0.001, "use one of 0.0001, 0.0002 deg"},
		{"laea-100km", 50, ""},
		{"laea-100km", 20, "tiling grid 6); use one of 40, 50, 100 m"},
		{"laea-20km", 100, "tiling grid 7); use one of 10, 20 m"},
		{"wgs84-0.5deg", 0.0001, "not one of the Batch API's tiling grids"},
	}
	for _, c := range cases {
		g, err := ParseGrid(c.grid)
		if err != nil {
			t.Fatal(err)
		}
		err = g.CheckBatchResolution(c.res)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s at %g: %v, want accepted", c.grid, c.res, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s at %g: %v, want an error containing %q", c.grid, c.res, err, c.want)
		}
	}
}
