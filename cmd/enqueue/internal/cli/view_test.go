package cli

import (
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
