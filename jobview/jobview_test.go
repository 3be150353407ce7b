package jobview

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"shfleet/jobs"
	"shfleet/quota"
)

func TestNew(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	j := jobs.Job{ID: "J1", Spec: jobs.Spec{Name: "n", OutputURL: "file:///out"}, Status: jobs.StatusProcessing,
		CreatedAt: t0, StartedAt: t0.Add(time.Minute),
		Progress: jobs.Progress{Tiles: 10, TilesAnalysed: 10, Total: 100, Done: 30, Failed: 10, Pending: 60,
			EstimatedMilliPU: 200_000, SpentMilliPU: 41_500}}
	pols := []quota.Policy{{Kind: quota.Requests, Capacity: 60, Period: time.Minute}, {Kind: quota.PU, Capacity: 10, Period: time.Minute}}
	now := t0.Add(5 * time.Minute)
	v := New(j, pols, now)
	// By hand: 60 items remain, 60 requests at 60/min = 1 min; their PU share is
	// 200 x 60/100 = 120 PU at 10 PU/min = 12 min: PU binds, 720 s.
	// Pace: 40 items finished in the 4 min since the start, 60 remain: 6 min.
	// Elapsed: 5 min since creation.
	if v.ETASeconds != 720 || v.ETA != "12m0s" || v.BindingPolicy != "pu:10:PT1M" ||
		v.PaceETASeconds != 360 || v.PaceETA != "6m0s" || v.ElapsedSeconds != 300 ||
		v.SpentPU != 41.5 || v.EstimatedPU != 200 || v.Output != "file:///out" {
		t.Errorf("view %+v", v)
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"eta_seconds":720`, `"eta":"12m0s"`, `"binding_policy":"pu:10:PT1M"`, `"pace_eta_seconds":360`, `"elapsed_seconds":300`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("JSON lacks %s: %s", want, b)
		}
	}
	// A final job has no time left; its elapsed time ends at FinishedAt.
	j.Status, j.FinishedAt = jobs.StatusDone, t0.Add(90*time.Second)
	if v := New(j, pols, now); v.ETASeconds != 0 || v.ETA != "" || v.PaceETASeconds != 0 || v.ElapsedSeconds != 90 {
		t.Errorf("final job %+v", v)
	}
}
