package quota

import (
	"math"
	"time"
)

// TimeFor is how long requests requests and milliPU milli-PU take when the fleet
// runs at the binding (slowest) of policies, ignoring the initial burst, and that
// policy; 0 and the zero Policy when no policy limits them. A Requests policy's
// capacity is rounded to whole requests (at least 1), a PU policy's to milli-PU,
// so the CLI and the job page show the same time left.
func TimeFor(requests, milliPU int64, policies ...Policy) (time.Duration, Policy) {
	var worst float64
	var binding Policy
	for _, p := range policies {
		if p.Period <= 0 {
			continue
		}
		var d float64
		switch p.Kind {
		case PU:
			if c := math.Round(p.Capacity * 1000); c > 0 {
				d = float64(milliPU) / c * float64(p.Period)
			}
		default:
			d = float64(requests) / math.Max(1, math.Round(p.Capacity)) * float64(p.Period)
		}
		if d > worst {
			worst, binding = d, p
		}
	}
	if worst > math.MaxInt64 {
		return time.Duration(math.MaxInt64), binding
	}
	return time.Duration(worst), binding
}
