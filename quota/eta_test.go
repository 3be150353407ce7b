package quota

import (
	"fmt"
	"testing"
	"time"
)

func TestTimeFor(t *testing.T) {
	perMin := func(k PolicyKind, c float64) Policy { return Policy{Kind: k, Capacity: c, Period: time.Minute} }
	cases := []struct {
		name          string
		requests, mpu int64
		policies      []Policy
		want          time.Duration
		binding       string
	}{
		// 600 requests at 300/min = 2 min; 300 PU at 300 PU/min = 1 min: requests bind.
		{"requests bind", 600, 300_000, []Policy{perMin(Requests, 300), perMin(PU, 300)}, 2 * time.Minute, "requests:300:PT1M"},
		// 600 requests at 1200/min = 30 s; 300 PU at 100 PU/min = 3 min: PU binds.
		{"PU binds", 600, 300_000, []Policy{perMin(Requests, 1200), perMin(PU, 100)}, 3 * time.Minute, "pu:100:PT1M"},
		// 299.6/min rounds to 300/min: 600 requests take 2 min (not 2m0.24s).
		{"requests rounded", 600, 0, []Policy{perMin(Requests, 299.6)}, 2 * time.Minute, "requests:299.6:PT1M"},
		// 0.2 requests/s rounds to 0, kept at 1/s: 5 requests take 5 s.
		{"at least one request", 5, 0, []Policy{{Kind: Requests, Capacity: 0.2, Period: time.Second}}, 5 * time.Second, "requests:0.2:PT1S"},
		// 2.5 PU per hour = 2500 milli-PU per hour: 5000 milli-PU take 2 h.
		{"PU in milli-PU", 0, 5000, []Policy{{Kind: PU, Capacity: 2.5, Period: time.Hour}}, 2 * time.Hour, "pu:2.5:PT1H"},
		{"no policies", 600, 300_000, nil, 0, ""},
		{"no period ignored", 600, 0, []Policy{{Kind: Requests, Capacity: 10}}, 0, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, p := TimeFor(c.requests, c.mpu, c.policies...)
			name := ""
			if p.Kind != "" {
				name = p.String()
			}
			if got != c.want || name != c.binding {
				t.Errorf("TimeFor = %v at %q, want %v at %q", got, name, c.want, c.binding)
			}
		})
	}
}

// ExampleTimeFor shows how long 1200 requests of 450 PU take on an account
// allowing 300 requests and 300 PU per minute: 4 minutes, bound by requests.
func ExampleTimeFor() {
	d, p := TimeFor(1200, 450_000,
		Policy{Kind: Requests, Capacity: 300, Period: time.Minute},
		Policy{Kind: PU, Capacity: 300, Period: time.Minute})
	fmt.Println(d, p)
	// Output: 4m0s requests:300:PT1M
}
