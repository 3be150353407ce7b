package grid

import (
	"math"

	"github.com/paulmach/orb"
	"github.com/paulmach/orb/clip"
)

// A GeoJSON edge between two positions is read the short way round: an edge
// whose longitudes differ by more than 180° crosses the antimeridian (RFC 7946
// §3.1.9 asks writers to cut such shapes; many do not). splitAntimeridian cuts
// a polygon with such edges at ±180° into its eastern and western parts, so a
// 0.2° box at 180° stays a 0.2° box instead of wrapping the globe.

// crossesAntimeridian reports whether a ring has an edge longer than 180° of
// longitude.
func crossesAntimeridian(r orb.Ring) bool {
	for i := 1; i < len(r); i++ {
		if math.Abs(r[i][0]-r[i-1][0]) > 180 {
			return true
		}
	}
	return false
}

// unwrap returns the ring with longitudes made continuous (each edge the short
// way), and the net number of turns (non-zero for a ring around a pole).
func unwrap(r orb.Ring) (orb.Ring, int) {
	out := make(orb.Ring, len(r))
	offset := 0.0
	for i, p := range r {
		if i > 0 {
			d := p[0] - r[i-1][0]
			switch {
			case d > 180:
				offset -= 360
			case d < -180:
				offset += 360
			}
		}
		out[i] = orb.Point{p[0] + offset, p[1]}
	}
	return out, int(math.Round(offset / 360))
}

// splitAntimeridian returns p unchanged when no ring crosses the antimeridian;
// else its parts east and west of ±180°, in -180..180, and ok false when a ring
// goes round a pole (which cannot be cut into parts).
func splitAntimeridian(p orb.Polygon) (orb.MultiPolygon, bool) {
	crosses := false
	for _, r := range p {
		crosses = crosses || crossesAntimeridian(r)
	}
	if !crosses {
		return orb.MultiPolygon{p}, true
	}
	// Unwrap every ring; then move the exterior so that it starts east of -180
	// (its unwrapped longitudes run past +180), and each hole by whole turns next
	// to it.
	ext, turns := unwrap(p[0])
	if turns != 0 {
		return nil, false
	}
	if b := ext.Bound(); b.Min[0] < -180 {
		ext = shift(ext, 360)
	}
	eb := ext.Bound()
	wide := orb.Polygon{ext}
	for _, h := range p[1:] {
		hr, turns := unwrap(h)
		if turns != 0 {
			return nil, false
		}
		hb := hr.Bound()
		for hb.Max[0] < eb.Min[0] {
			hr, hb = shift(hr, 360), shift(hr, 360).Bound()
		}
		for hb.Min[0] > eb.Max[0] {
			hr, hb = shift(hr, -360), shift(hr, -360).Bound()
		}
		wide = append(wide, hr)
	}
	east := clip.Polygon(orb.Bound{Min: orb.Point{-180, -90}, Max: orb.Point{180, 90}}, wide.Clone())
	west := clip.Polygon(orb.Bound{Min: orb.Point{180, -90}, Max: orb.Point{540, 90}}, wide.Clone())
	var out orb.MultiPolygon
	if len(east) > 0 && len(east[0]) >= 4 {
		out = append(out, east)
	}
	if len(west) > 0 && len(west[0]) >= 4 {
		w := make(orb.Polygon, len(west))
		for i, r := range west {
			w[i] = shift(r, -360)
		}
		out = append(out, w)
	}
	return out, true
}

func shift(r orb.Ring, d float64) orb.Ring {
	out := make(orb.Ring, len(r))
	for i, p := range r {
		out[i] = orb.Point{p[0] + d, p[1]}
	}
	return out
}
