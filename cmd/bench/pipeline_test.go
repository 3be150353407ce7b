package main

import (
	"context"
	"io"
	"testing"
	"time"
)

func TestRateAfterBurst(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	// 100 units at once, then 10 per second for 10 s.
	samples := []fleetSample{{at(0), 0}, {at(0.1), 60}, {at(0.2), 100}}
	for i := 1; i <= 10; i++ {
		samples = append(samples, fleetSample{at(0.2 + float64(i)), 100 + 10*float64(i)})
	}
	r, from, ok := rateAfter(samples, 99, at(10.2), 200)
	if !ok || !from.Equal(at(0.2)) || r < 9.99 || r > 10.01 {
		t.Errorf("rateAfter = %v from %s (%v); want 10/s from 0.2 s", r, from.Sub(t0), ok)
	}
	if _, _, ok := rateAfter(samples, 500, at(10.2), 200); ok {
		t.Error("rateAfter found a burst that was never reached")
	}
	if r := rateBetween(samples, at(0.15), at(10.2), 200); r < 13.8 || r > 13.9 { // (200-60)/10.1 s
		t.Errorf("rateBetween = %v, want (200-60)/10.1", r)
	}
}

func TestPipelineFlags(t *testing.T) {
	f, err := parseFleetFlags([]string{"-scenarios", "pu", "-aoi", "1,2,3,4", "-workers", "2"}, io.Discard)
	if err != nil || f.Scenarios[0] != "pu" || f.AOI != [4]float64{1, 2, 3, 4} || f.Workers != 2 || f.Headers != "retry-after" || f.Configured {
		t.Errorf("fleet flags: %+v, %v", f, err)
	}
	if f, err := parseFleetFlags([]string{"-headers", "legacy", "-configured"}, io.Discard); err != nil || f.Headers != "legacy" || !f.Configured {
		t.Errorf("fleet -headers legacy -configured: %+v, %v", f, err)
	}
	m, err := parseMemoryFlags([]string{"-rows", "32x4, 8x10"}, io.Discard)
	if err != nil || len(m.Rows) != 2 || m.Rows[1] != (MemoryRow{8, 10}) {
		t.Errorf("memory flags: %+v, %v", m, err)
	}
	a, err := parseAnalysisFlags([]string{"-bbox", "-8,38,38,66", "-days", "5"}, io.Discard)
	if err != nil || a.BBox != DefaultAnalysisBBox || a.Days != 5 {
		t.Errorf("analysis flags: %+v, %v", a, err)
	}
	for _, bad := range []func() error{
		func() error { _, err := parseFleetFlags([]string{"-aoi", "3,2,1,4"}, io.Discard); return err },
		func() error {
			_, err := parseFleetFlags([]string{"-from", "2025-06-01", "-to", "2025-05-01"}, io.Discard)
			return err
		},
		func() error { _, err := parseFleetFlags([]string{"-headers", "2019"}, io.Discard); return err },
		func() error { _, err := parseMemoryFlags([]string{"-rows", "32"}, io.Discard); return err },
		func() error { _, err := parseAnalysisFlags([]string{"x"}, io.Discard); return err },
		func() error {
			return RunFleet(context.Background(), FleetOptions{Scenarios: []string{"nope"}}, io.Discard, io.Discard)
		},
	} {
		if bad() == nil {
			t.Error("bad input accepted")
		}
	}
}
