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
// is "kind:capacity:period", e.g. "requests:300:PT1M" or "pu:30000:PT744H", with the
// period in the ISO-8601 spelling of the account's contract (samplingPeriod).
type Policy struct {
	// Kind is Requests or PU.
	Kind PolicyKind
	// Capacity is the number of requests or PU per Period (> 0).
	Capacity float64
	// Period is the sampling period, a whole number of seconds from 1 s to 32 days
	// (Month, 744 h, for the monthly PU policy).
	Period time.Duration
}

// Period bounds: ParsePeriod refuses anything shorter than MinPeriod or longer
// than MaxPeriod (a policy's bucket must refill within about a month).
const (
	// MinPeriod is the shortest sampling period, 1 s.
	MinPeriod = time.Second
	// MaxPeriod is the longest sampling period, 32 days.
	MaxPeriod = 32 * 24 * time.Hour
)

// Month is the sampling period of Sentinel Hub's monthly PU policy: 744 h (31 days),
// spelled PT744H in the account's contract and P31D in older headers.
const Month = 744 * time.Hour

// namedPeriods are the canonical names PeriodName gives; any other whole number of
// hours, minutes or seconds is named PT<n>H, PT<n>M or PT<n>S.
var namedPeriods = []struct {
	name string
	d    time.Duration
}{
	{"PT1S", time.Second},
	{"PT1M", time.Minute},
	{"PT1H", time.Hour},
	{"PT1D", 24 * time.Hour},
	{"PT744H", Month},
}

const validPeriods = "PT<n>S, PT<n>M, PT<n>H or P<n>D (e.g. PT1M, PT1H, PT744H, P31D), from 1 s to 32 days"

// ParsePeriod converts an ISO-8601 sampling period to a duration. It accepts the
// forms Sentinel Hub uses: PT<n>S, PT<n>M, PT<n>H and P<n>D with a whole number
// n, plus the historical PT1D (one day). PT744H and P31D are the same 31 days (the
// monthly PU policy, see Month). Periods under 1 s or over 32 days are refused.
func ParsePeriod(s string) (time.Duration, error) {
	var unit time.Duration
	var digits string
	switch {
	case s == "PT1D":
		return 24 * time.Hour, nil
	case strings.HasPrefix(s, "PT") && len(s) > 3:
		digits = s[2 : len(s)-1]
		switch s[len(s)-1] {
		case 'S':
			unit = time.Second
		case 'M':
			unit = time.Minute
		case 'H':
			unit = time.Hour
		}
	case strings.HasPrefix(s, "P") && len(s) > 2 && s[len(s)-1] == 'D':
		digits, unit = s[1:len(s)-1], 24*time.Hour
	}
	if unit == 0 || digits == "" || len(digits) > 9 || strings.Trim(digits, "0123456789") != "" {
		return 0, fmt.Errorf("period %q is not an ISO-8601 duration of the form %s", s, validPeriods)
	}
	n, _ := strconv.ParseInt(digits, 10, 64) // at most 9 digits: no overflow below
	d := time.Duration(n) * unit
	if d < MinPeriod || d > MaxPeriod {
		return 0, fmt.Errorf("period %q (%s) is outside the supported range of 1 s to 32 days", s, d)
	}
	return d, nil
}

// PeriodName is the canonical ISO-8601 name of a period ParsePeriod accepts:
// PT1S, PT1M, PT1H, PT1D, PT744H (31 days, as the account's contract spells it),
// else PT<n>H, PT<n>M or PT<n>S, whichever unit divides it. For any other value
// (sub-second, out of range) it is the Go duration string.
func PeriodName(d time.Duration) string {
	for _, p := range namedPeriods {
		if d == p.d {
			return p.name
		}
	}
	if d < MinPeriod || d > MaxPeriod || d%time.Second != 0 {
		return d.String()
	}
	switch {
	case d%time.Hour == 0:
		return "PT" + strconv.FormatInt(int64(d/time.Hour), 10) + "H"
	case d%time.Minute == 0:
		return "PT" + strconv.FormatInt(int64(d/time.Minute), 10) + "M"
	}
	return "PT" + strconv.FormatInt(int64(d/time.Second), 10) + "S"
}

// ParsePolicy parses "kind:capacity:period", e.g. "requests:300:PT1M",
// "pu:10:PT1M" or "pu:30000:PT744H" (the month; P31D is the same). Kind is
// "requests" or "pu"; capacity a positive finite number up to 1e12; period an
// ISO-8601 duration ParsePeriod accepts.
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
