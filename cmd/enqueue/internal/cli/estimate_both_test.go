package cli_test

import (
	"strings"
	"testing"

	"shfleet/sentinel/sentineltest"
)

// TestEstimateEngineBoth prints the fleet's estimate and the Batch API's side
// by side. The sample's 8 tiles are 167 x 167 px (10 km at 60 m) of a 3-band
// UINT8 SIMPLE evalscript: 27889/262144 = 0.10639 PU each; batch x 1/3 =
// 0.03546, 36 milli-PU rounded up, 0.288 PU for 8 tiles.
func TestEstimateEngineBoth(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sentineltest.Config{Policies: simPolicies(fastPolicies)})
	e.startWorkers(t, 1, fastPolicies)
	args := jobArgs("estimate", t.TempDir())
	args = append(args[:len(args)-1], "--engine", "both", "--poll-interval", "100ms")
	r := run(t, append(args, e.flags...)...)
	if r.code != 0 {
		t.Fatalf("estimate --engine both: exit %d: %s", r.code, r.stderr)
	}
	out := r.stdout
	if !strings.Contains(out, "process requests") || !strings.Contains(out, "batch engine") ||
		!strings.Contains(out, "0.288 PU") || !strings.Contains(out, "batch is cheaper by") {
		t.Fatalf("estimate --engine both printed:\n%s\nwant both estimates, the batch one 0.288 PU and which is cheaper", out)
	}
}
