package jobs

import (
	"cmp"
	"math"
	"slices"

	"shfleet/grid"
)

// Bounds of an [Outline], so a job record stays small whatever AOI file it came
// from (a country border can have millions of vertices).
const (
	// MaxOutlinePoints is the most positions an Outline keeps in all.
	MaxOutlinePoints = 2000
	// MaxOutlineRings is the most rings an Outline keeps (the largest by
	// bounding-box area).
	MaxOutlineRings = 200
)

// Outline is a compact copy of a job's AOIs for drawing (the job page's map):
// the exterior ring of every polygon, longitude/latitude in degrees rounded to
// 1e-5 (about a metre), thinned to at most [MaxOutlinePoints] positions and
// [MaxOutlineRings] rings. Rings are closed (first position repeated last).
// AOIs that crossed the antimeridian arrive here already cut into their eastern
// and western parts (grid.Parse does that), so every longitude is in -180..180.
type Outline [][][2]float64

// OutlineOf makes the Outline of aois; nil when they have no polygon.
func OutlineOf(aois []grid.AOI) Outline {
	var rings [][][2]float64
	for _, a := range aois {
		for _, p := range a.Geometry {
			if len(p) == 0 || len(p[0]) < 4 {
				continue
			}
			r := make([][2]float64, len(p[0]))
			for i, pt := range p[0] {
				r[i] = [2]float64{pt[0], pt[1]}
			}
			rings = append(rings, r)
		}
	}
	if len(rings) == 0 {
		return nil
	}
	if len(rings) > MaxOutlineRings {
		slices.SortStableFunc(rings, func(a, b [][2]float64) int { return cmp.Compare(boxArea(b), boxArea(a)) })
		rings = rings[:MaxOutlineRings]
	}
	total := 0
	for _, r := range rings {
		total += len(r)
	}
	stride := max(1, (total+MaxOutlinePoints-1)/MaxOutlinePoints)
	out := make(Outline, 0, len(rings))
	for _, r := range rings {
		out = append(out, thin(r, stride))
	}
	return out
}

// thin keeps every stride-th position of the closed ring r, at least three
// distinct ones, rounded, and closes the result.
func thin(r [][2]float64, stride int) [][2]float64 {
	open := r[:len(r)-1] // r is closed: the last position repeats the first
	step := min(stride, max(1, len(open)/3))
	out := make([][2]float64, 0, len(open)/step+2)
	for i := 0; i < len(open); i += step {
		out = append(out, [2]float64{round5(open[i][0]), round5(open[i][1])})
	}
	return append(out, out[0])
}

func round5(v float64) float64 { return math.Round(v*1e5) / 1e5 }

func boxArea(r [][2]float64) float64 {
	b := ringBox(r)
	return (b[2] - b[0]) * (b[3] - b[1])
}

func ringBox(r [][2]float64) [4]float64 {
	b := [4]float64{math.Inf(1), math.Inf(1), math.Inf(-1), math.Inf(-1)}
	for _, p := range r {
		b[0], b[1] = math.Min(b[0], p[0]), math.Min(b[1], p[1])
		b[2], b[3] = math.Max(b[2], p[0]), math.Max(b[3], p[1])
	}
	return b
}

// BBox is the outline's bounding box (min lon, min lat, max lon, max lat); ok
// is false for an empty outline.
func (o Outline) BBox() (box [4]float64, ok bool) {
	box = [4]float64{math.Inf(1), math.Inf(1), math.Inf(-1), math.Inf(-1)}
	for _, r := range o {
		b := ringBox(r)
		box[0], box[1] = math.Min(box[0], b[0]), math.Min(box[1], b[1])
		box[2], box[3] = math.Max(box[2], b[2]), math.Max(box[3], b[3])
	}
	return box, len(o) > 0 && box[0] <= box[2]
}
