package quota

import (
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"time"
)

// PolicyKind says what a Policy counts.
type PolicyKind string

const (
	// Requests counts HTTP requests.
	Requests PolicyKind = "requests"
	// PU counts processing units (charged in milli-PU).
	PU PolicyKind = "pu"
)

// PoliciesEnv is the environment variable PoliciesFromEnv reads.
const PoliciesEnv = "SH_POLICIES"

// Policy is one of an account's rate limits: Capacity units of Kind per Period,
// refilled continuously (a token bucket), e.g. 300 requests per minute. Its text form
// is "kind:capacity:period", e.g. "requests:300:PT1M" or "pu:1000:PT1M", with the
// period in the ISO-8601 spelling Sentinel Hub uses in X-RateLimit-ViolatedPolicy.
type Policy struct {
	// Kind is Requests or PU.
	Kind PolicyKind
	// Capacity is the number of requests or PU per Period (> 0).
	Capacity float64
	// Period is one of time.Second, time.Minute, time.Hour, 24h or 31 days.
	Period time.Duration
}

// periods lists the sampling periods Sentinel Hub documents, in order.
var periods = []struct {
	name string
	d    time.Duration
}{
	{"PT1S", time.Second},
	{"PT1M", time.Minute},
	{"PT1H", time.Hour},
	{"PT1D", 24 * time.Hour},
	{"P31D", 31 * 24 * time.Hour},
}

const validPeriods = "PT1S, PT1M, PT1H, PT1D, P31D"

// ParsePeriod converts an ISO-8601 sampling period (PT1S, PT1M, PT1H, PT1D, P31D)
// to a duration.
func ParsePeriod(s string) (time.Duration, error) {
	for _, p := range periods {
		if s == p.name {
			return p.d, nil
		}
	}
	return 0, fmt.Errorf("period %q is not one of %s", s, validPeriods)
}

// PeriodName is the ISO-8601 name of a period ParsePeriod accepts, or the Go
// duration string for any other value.
func PeriodName(d time.Duration) string {
	for _, p := range periods {
		if d == p.d {
			return p.name
		}
	}
	return d.String()
}

// ParsePolicy parses "kind:capacity:period", e.g. "requests:300:PT1M",
// "pu:10:PT1M" or "pu:30000:P31D". Kind is "requests" or "pu"; capacity a positive
// finite number; period one of PT1S, PT1M, PT1H, PT1D, P31D.
func ParsePolicy(s string) (Policy, error) {
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return Policy{}, fmt.Errorf("quota: policy %q: want kind:capacity:period, e.g. requests:300:PT1M or pu:300:PT1M", s)
	}
	var p Policy
	switch PolicyKind(parts[0]) {
	case Requests, PU:
		p.Kind = PolicyKind(parts[0])
	default:
		return Policy{}, fmt.Errorf("quota: policy %q: kind %q is not one of requests, pu", s, parts[0])
	}
	c, err := strconv.ParseFloat(parts[1], 64)
	if err != nil || math.IsNaN(c) || math.IsInf(c, 0) || c <= 0 || c > 1e12 {
		return Policy{}, fmt.Errorf("quota: policy %q: capacity %q is not a positive number up to 1e12", s, parts[1])
	}
	p.Capacity = c
	d, err := ParsePeriod(parts[2])
	if err != nil {
		return Policy{}, fmt.Errorf("quota: policy %q: %w", s, err)
	}
	p.Period = d
	return p, nil
}

// String is the text form ParsePolicy reads back, e.g. "requests:300:PT1M".
func (p Policy) String() string {
	return string(p.Kind) + ":" + strconv.FormatFloat(p.Capacity, 'g', -1, 64) + ":" + PeriodName(p.Period)
}

// id names the policy's state: "kind:period". Two policies with the same id are the
// same bucket (a learned policy replaces a configured one with the same id).
func (p Policy) id() string { return string(p.Kind) + ":" + PeriodName(p.Period) }

func (p Policy) validate() error {
	if p.Kind != Requests && p.Kind != PU {
		return fmt.Errorf("policy %s: kind %q is not one of requests, pu", p, p.Kind)
	}
	if math.IsNaN(p.Capacity) || math.IsInf(p.Capacity, 0) || p.Capacity <= 0 || p.Capacity > 1e12 {
		return fmt.Errorf("policy %s: capacity must be a positive number up to 1e12", p)
	}
	if _, err := ParsePeriod(PeriodName(p.Period)); err != nil {
		return fmt.Errorf("policy %s: %w", p, err)
	}
	return nil
}

// ParsePolicies parses each element with ParsePolicy and rejects two policies of
// the same kind and period.
func ParsePolicies(list []string) ([]Policy, error) {
	out := make([]Policy, 0, len(list))
	seen := map[string]string{}
	for _, s := range list {
		p, err := ParsePolicy(s)
		if err != nil {
			return nil, err
		}
		if prev, ok := seen[p.id()]; ok {
			return nil, fmt.Errorf("quota: policy %q repeats the kind and period of %q; keep one", s, prev)
		}
		seen[p.id()] = s
		out = append(out, p)
	}
	return out, nil
}

// PoliciesFromEnv reads the account's policies from SH_POLICIES: policies
// separated by commas and/or spaces, e.g.
//
//	SH_POLICIES="requests:300:PT1M,pu:300:PT1M"
//
// It returns nil and no error when the variable is unset or empty.
func PoliciesFromEnv() ([]Policy, error) {
	v := os.Getenv(PoliciesEnv)
	fields := strings.FieldsFunc(v, func(r rune) bool {
		return r == ',' || r == ' ' || r == '\t' || r == '\n'
	})
	if len(fields) == 0 {
		return nil, nil
	}
	ps, err := ParsePolicies(fields)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", PoliciesEnv, err)
	}
	return ps, nil
}
