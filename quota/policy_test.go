package quota_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"shfleet/quota"
)

func TestParsePolicy(t *testing.T) {
	t.Parallel()
	good := []struct {
		in   string
		want quota.Policy
	}{
		{"requests:300:PT1M", quota.Policy{Kind: quota.Requests, Capacity: 300, Period: time.Minute}},
		{"pu:10:PT1S", quota.Policy{Kind: quota.PU, Capacity: 10, Period: time.Second}},
		{"pu:2.5:PT1H", quota.Policy{Kind: quota.PU, Capacity: 2.5, Period: time.Hour}},
		{"requests:10000:PT1D", quota.Policy{Kind: quota.Requests, Capacity: 10000, Period: 24 * time.Hour}},
		{"pu:30000:P31D", quota.Policy{Kind: quota.PU, Capacity: 30000, Period: 31 * 24 * time.Hour}},
	}
	for _, tc := range good {
		t.Run(tc.in, func(t *testing.T) {
			p, err := quota.ParsePolicy(tc.in)
			if err != nil {
				t.Fatalf("ParsePolicy(%q): %v", tc.in, err)
			}
			if p != tc.want {
				t.Fatalf("ParsePolicy(%q) = %+v, want %+v", tc.in, p, tc.want)
			}
			if p.String() != tc.in {
				t.Fatalf("String() = %q, want %q", p.String(), tc.in)
			}
		})
	}
	bad := []struct{ in, wantMsg string }{
		{"requests:300", "want kind:capacity:period"},
		{"tokens:300:PT1M", `kind "tokens" is not one of requests, pu`},
		{"pu:-1:PT1M", `capacity "-1"`},
		{"pu:NaN:PT1M", `capacity "NaN"`},
		{"pu:0:PT1M", `capacity "0"`},
		{"pu:x:PT1M", `capacity "x"`},
		{"pu:10:PT2M", `period "PT2M" is not one of PT1S, PT1M, PT1H, PT1D, P31D`},
		{"pu:10:1m", `period "1m"`},
		{"pu:10:PT1M:x", "want kind:capacity:period"},
	}
	for _, tc := range bad {
		t.Run(tc.in, func(t *testing.T) {
			_, err := quota.ParsePolicy(tc.in)
			if err == nil || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Fatalf("ParsePolicy(%q) error = %v, want it to contain %q", tc.in, err, tc.wantMsg)
			}
		})
	}
}

func TestParsePolicies(t *testing.T) {
	t.Parallel()
	ps, err := quota.ParsePolicies([]string{"requests:300:PT1M", "pu:300:PT1M", "pu:30000:P31D"})
	if err != nil || len(ps) != 3 || ps[2].Period != 31*24*time.Hour {
		t.Fatalf("ParsePolicies = %v, %v", ps, err)
	}
	_, err = quota.ParsePolicies([]string{"pu:300:PT1M", "pu:100:PT1M"})
	if err == nil || !strings.Contains(err.Error(), "repeats the kind and period") {
		t.Fatalf("duplicate policies: error = %v", err)
	}
	_, err = quota.ParsePolicies([]string{"pu:300:PT1M", "pu:100:PT5M"})
	if err == nil || !strings.Contains(err.Error(), "PT5M") {
		t.Fatalf("bad second policy: error = %v", err)
	}
}

func TestPoliciesFromEnv(t *testing.T) {
	t.Setenv(quota.PoliciesEnv, "requests:300:PT1M, pu:300:PT1M  pu:30000:P31D")
	ps, err := quota.PoliciesFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range ps {
		got = append(got, p.String())
	}
	if strings.Join(got, " ") != "requests:300:PT1M pu:300:PT1M pu:30000:P31D" {
		t.Fatalf("PoliciesFromEnv = %v", got)
	}
	t.Setenv(quota.PoliciesEnv, "")
	if ps, err := quota.PoliciesFromEnv(); ps != nil || err != nil {
		t.Fatalf("empty %s: %v, %v; want nil, nil", quota.PoliciesEnv, ps, err)
	}
	t.Setenv(quota.PoliciesEnv, "requests:300:PT1M,pu:300:1min")
	if _, err := quota.PoliciesFromEnv(); err == nil || !strings.Contains(err.Error(), quota.PoliciesEnv) {
		t.Fatalf("bad %s: error = %v, want it to name the variable", quota.PoliciesEnv, err)
	}
}

func FuzzParsePolicy(f *testing.F) {
	for _, s := range []string{"requests:300:PT1M", "pu:0.005:PT1S", "pu:30000:P31D", "pu:1e3:PT1H", "x", "pu::PT1M", "requests:+5:PT1D"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := quota.ParsePolicy(s)
		if err != nil {
			return
		}
		if p.Capacity <= 0 || p.Period <= 0 || (p.Kind != quota.Requests && p.Kind != quota.PU) {
			t.Fatalf("ParsePolicy(%q) accepted an invalid policy %+v", s, p)
		}
		q, err := quota.ParsePolicy(p.String())
		if err != nil || q != p {
			t.Fatalf("round trip of %q: %q -> %+v, %v; want %+v", s, p.String(), q, err, p)
		}
	})
}

func ExampleParsePolicy() {
	p, err := quota.ParsePolicy("pu:300:PT1M")
	if err != nil {
		panic(err)
	}
	fmt.Println(p.Kind, p.Capacity, p.Period, p)
	_, err = quota.ParsePolicy("pu:300:PT5M")
	fmt.Println(err)
	// Output:
	// pu 300 1m0s pu:300:PT1M
	// quota: policy "pu:300:PT5M": period "PT5M" is not one of PT1S, PT1M, PT1H, PT1D, P31D
}
