package cli_test

import (
	"strings"
	"testing"

	"shfleet/cmd/enqueue/internal/cli"
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

// TestEstimateEngineBothJSON: with --json the estimate carries the batch part:
// the same 0.288 PU (see above) for the sample's 8 tiles, batch the cheaper,
// and the note that the sample's 60 m is not a resolution of Batch tiling grid
// 1 (utm-10km takes 10 and 20 m).
func TestEstimateEngineBothJSON(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sentineltest.Config{Policies: simPolicies(fastPolicies)})
	e.startWorkers(t, 1, fastPolicies)
	args := jobArgs("estimate", t.TempDir())
	args = append(args[:len(args)-1], "--engine", "both", "--poll-interval", "100ms", "--json")
	r := run(t, append(args, e.flags...)...)
	if r.code != 0 {
		t.Fatalf("estimate --engine both --json: exit %d: %s", r.code, r.stderr)
	}
	v := lastJSON[cli.EstimateView](t, r)
	b := v.Batch
	if b == nil {
		t.Fatalf("estimate --json printed %s; want a batch part", r.stdout)
	}
	if b.Tiles != 8 || b.EstimatedPU != 0.288 || b.Cheaper != "batch" || b.SavingPU <= 0 || b.ResolutionOK ||
		len(b.Resolutions) != 2 || b.Resolutions[0] != 10 || b.Resolutions[1] != 20 || v.EstimatedPU <= b.EstimatedPU {
		t.Fatalf("batch part %+v beside the fleet's %.3f PU; want 8 tiles, 0.288 PU, batch cheaper, resolutions [10 20] without 60", *b, v.EstimatedPU)
	}
}
