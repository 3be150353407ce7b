//go:build chaos

package chaos

import (
	"context"
	"testing"
	"time"

	"shfleet/internal/redistest"
)

// TestSimulatorFaults runs a job against a simulator answering 5% 503s, 2%
// truncated bodies and slow, jittery responses: the job completes and no
// truncated body is stored as an output.
func TestSimulatorFaults(t *testing.T) {
	rs := redistest.Start(t)
	f := newFleet(t, rs.URL(), "-error-rate", "0.05", "-truncate-rate", "0.02", "-latency", "100ms", "-jitter", "400ms", "-seed", "11")
	for i := 0; i < 3; i++ {
		f.startWorker()
	}
	out := t.TempDir()
	spec, tiles := jobSpec(t, smallArea, june, aug, out)
	start := time.Now()
	job, err := f.ctl.Submit(context.Background(), spec, tiles)
	if err != nil {
		t.Fatal(err)
	}
	job = f.waitFinal(job.ID, 5*time.Minute)
	v := f.verify("simulator-faults", job, tiles, out, start) // fails on any stored output that differs
	f.assertClean(v)
	if v.Faults5xx == 0 || v.Truncated == 0 {
		t.Errorf("faults injected: %d 503s, %d truncated bodies; want some of both or the scenario proves nothing", v.Faults5xx, v.Truncated)
	}
	// A truncated body is a 2xx the simulator counts as served; its item is
	// downloaded again. Anything beyond that is a real duplicate.
	if v.Duplicates > v.Truncated {
		t.Errorf("%d re-downloads but only %d truncated bodies: %v", v.Duplicates, v.Truncated, v.DuplicateKeys)
	}
	t.Logf("%d 503s and %d truncated bodies survived; %d re-downloads", v.Faults5xx, v.Truncated, v.Duplicates)
}
