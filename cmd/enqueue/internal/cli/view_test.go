package cli

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"shfleet/jobs"
	"shfleet/quota"
)

func TestBindingPolicy(t *testing.T) {
	policies := []quota.Policy{{Kind: quota.Requests, Capacity: 10, Period: time.Minute}, {Kind: quota.PU, Capacity: 10, Period: time.Minute}}
	cases := []struct {
		est  jobs.Estimate
		want time.Duration
		name string
	}{
		{jobs.Estimate{ProcessRequests: 100, EstimatedMilliPU: 5_000}, 10 * time.Minute, "requests:10:PT1M"},
		{jobs.Estimate{ProcessRequests: 10, EstimatedMilliPU: 300_000}, 30 * time.Minute, "pu:10:PT1M"},
		{jobs.Estimate{}, 0, ""},
	}
	for _, c := range cases {
		d, name := binding(c.est, policies)
		if d != c.want || name != c.name {
			t.Errorf("binding(%+v) = %s at %q, want %s at %q", c.est, d, name, c.want, c.name)
		}
	}
}

func TestOneLine(t *testing.T) {
	cases := map[string]string{
		"a":                          "a",
		"f: 2 problems:\n  x\n  y\n": "f: 2 problems: x; y",
		"one\ntwo":                   "one; two",
	}
	for in, want := range cases {
		if got := oneLine(in); got != want {
			t.Errorf("oneLine(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestFmtDuration(t *testing.T) {
	cases := map[time.Duration]string{
		0:                                 "0s",
		1500 * time.Millisecond:           "2s",
		4*time.Minute + 10*time.Second:    "4m10s",
		2*time.Hour + 3*time.Minute + 2e9: "2h3m",
		72 * time.Hour:                    "3.0 days",
	}
	for in, want := range cases {
		if got := fmtDuration(in); got != want {
			t.Errorf("fmtDuration(%s) = %q, want %q", in, got, want)
		}
	}
}

func TestStatusShowsFailedAnalysis(t *testing.T) {
	j := jobs.Job{ID: "j1", Status: jobs.StatusFailed, Error: "catalog group 0: catalog search: HTTP 400: no such collection",
		Progress: jobs.Progress{Tiles: 8, TilesAnalysed: 5, TilesFailed: 3}}
	var out bytes.Buffer
	a := &app{stdout: &out}
	a.printStatus(j, nil)
	for _, want := range []string{
		"tiles     8, 5 analysed, 3 failed, 0 catalog requests\n",
		"error     catalog group 0: catalog search: HTTP 400: no such collection\n",
		"searches its 3 failed tiles again",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("status lacks %q:\n%s", want, out.String())
		}
	}
	b, err := json.Marshal(newJobView(j, nil))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"tiles_failed":3`) || !strings.Contains(string(b), `"error":"catalog group 0: catalog search: HTTP 400: no such collection"`) {
		t.Errorf("--json lacks tiles_failed/error: %s", b)
	}
}
