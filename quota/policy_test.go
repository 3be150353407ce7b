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
		str  string // canonical String(); "" when it is in
	}{
		{"requests:300:PT1M", quota.Policy{Kind: quota.Requests, Capacity: 300, Period: time.Minute}, ""},
		{"pu:10:PT1S", quota.Policy{Kind: quota.PU, Capacity: 10, Period: time.Second}, ""},
		{"pu:2.5:PT1H", quota.Policy{Kind: quota.PU, Capacity: 2.5, Period: time.Hour}, ""},
		{"requests:10000:PT1D", quota.Policy{Kind: quota.Requests, Capacity: 10000, Period: 24 * time.Hour}, ""},
		// The month: 744 h = 31 x 24 h, spelled PT744H by the contract.
		{"pu:30000:PT744H", quota.Policy{Kind: quota.PU, Capacity: 30000, Period: 744 * time.Hour}, ""},
		{"pu:30000:P31D", quota.Policy{Kind: quota.PU, Capacity: 30000, Period: 31 * 24 * time.Hour}, "pu:30000:PT744H"},
		{"pu:30000:PT44640M", quota.Policy{Kind: quota.PU, Capacity: 30000, Period: 744 * time.Hour}, "pu:30000:PT744H"},
		{"requests:5:PT10S", quota.Policy{Kind: quota.Requests, Capacity: 5, Period: 10 * time.Second}, ""},
		{"requests:5:PT90S", quota.Policy{Kind: quota.Requests, Capacity: 5, Period: 90 * time.Second}, ""},
		{"requests:5:PT120S", quota.Policy{Kind: quota.Requests, Capacity: 5, Period: 2 * time.Minute}, "requests:5:PT2M"},
		{"pu:10:PT5M", quota.Policy{Kind: quota.PU, Capacity: 10, Period: 5 * time.Minute}, ""},
		{"pu:10:PT48H", quota.Policy{Kind: quota.PU, Capacity: 10, Period: 48 * time.Hour}, ""},
		{"pu:10:P1D", quota.Policy{Kind: quota.PU, Capacity: 10, Period: 24 * time.Hour}, "pu:10:PT1D"},
		{"pu:10:P7D", quota.Policy{Kind: quota.PU, Capacity: 10, Period: 7 * 24 * time.Hour}, "pu:10:PT168H"},
		{"pu:10:P32D", quota.Policy{Kind: quota.PU, Capacity: 10, Period: 32 * 24 * time.Hour}, "pu:10:PT768H"},
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
			want := tc.str
			if want == "" {
				want = tc.in
			}
			if p.String() != want {
				t.Fatalf("String() = %q, want %q", p.String(), want)
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
		{"pu:10:1m", `period "1m" is not an ISO-8601 duration of the form PT<n>S, PT<n>M, PT<n>H or P<n>D`},
		{"pu:10:PT1.5M", `period "PT1.5M" is not an ISO-8601 duration`},
		{"pu:10:PT-1M", `period "PT-1M" is not an ISO-8601 duration`},
		{"pu:10:PTM", `period "PTM" is not an ISO-8601 duration`},
		{"pu:10:PT1H30M", `period "PT1H30M" is not an ISO-8601 duration`},
		{"pu:10:pt1m", `period "pt1m" is not an ISO-8601 duration`},
		{"pu:10:PT0S", `period "PT0S" (0s) is outside the supported range of 1 s to 32 days`},
		{"pu:10:P33D", `period "P33D" (792h0m0s) is outside the supported range of 1 s to 32 days`},
		{"pu:10:PT769H", `period "PT769H" (769h0m0s) is outside the supported range`},
		{"pu:10:PT9999999999S", `period "PT9999999999S" is not an ISO-8601 duration`},
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

func TestPeriodName(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{
		time.Second: "PT1S", time.Minute: "PT1M", time.Hour: "PT1H", 24 * time.Hour: "PT1D",
		31 * 24 * time.Hour: "PT744H", 90 * time.Second: "PT90S", 15 * time.Minute: "PT15M",
		36 * time.Hour: "PT36H", 1500 * time.Millisecond: "1.5s", 40 * 24 * time.Hour: "960h0m0s",
	} {
		if got := quota.PeriodName(d); got != want {
			t.Errorf("PeriodName(%s) = %q, want %q", d, got, want)
		}
	}
}

func TestParsePolicies(t *testing.T) {
	t.Parallel()
	ps, err := quota.ParsePolicies([]string{"requests:300:PT1M", "pu:300:PT1M", "pu:30000:PT744H"})
	if err != nil || len(ps) != 3 || ps[2].Period != 31*24*time.Hour {
		t.Fatalf("ParsePolicies = %v, %v", ps, err)
	}
	_, err = quota.ParsePolicies([]string{"pu:300:PT1M", "pu:100:PT1M"})
	if err == nil || !strings.Contains(err.Error(), "repeats the kind and period") {
		t.Fatalf("duplicate policies: error = %v", err)
	}
	// P31D and PT744H are the same bucket.
	_, err = quota.ParsePolicies([]string{"pu:30000:P31D", "pu:20000:PT744H"})
	if err == nil || !strings.Contains(err.Error(), `"pu:20000:PT744H" repeats the kind and period of "pu:30000:P31D"`) {
		t.Fatalf("P31D and PT744H: error = %v", err)
	}
	_, err = quota.ParsePolicies([]string{"pu:300:PT1M", "pu:100:PT5X"})
	if err == nil || !strings.Contains(err.Error(), "PT5X") {
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
	if strings.Join(got, " ") != "requests:300:PT1M pu:300:PT1M pu:30000:PT744H" {
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
	for _, s := range []string{"requests:300:PT1M", "pu:0.005:PT1S", "pu:30000:P31D", "pu:30000:PT744H", "pu:1:PT90S", "pu:1e3:PT1H", "x", "pu::PT1M", "requests:+5:PT1D"} {
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
	month, _ := quota.ParsePolicy("pu:30000:P31D")
	fmt.Println(month.Period, month)
	_, err = quota.ParsePolicy("pu:300:PT1.5M")
	fmt.Println(err)
	// Output:
	// pu 300 1m0s pu:300:PT1M
	// 744h0m0s pu:30000:PT744H
	// quota: policy "pu:300:PT1.5M": period "PT1.5M" is not an ISO-8601 duration of the form PT<n>S, PT<n>M, PT<n>H or P<n>D (e.g. PT1M, PT1H, PT744H, P31D), from 1 s to 32 days
}
