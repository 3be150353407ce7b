package sentineltest

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Policy kinds.
const (
	// KindRequests counts HTTP requests: every process or catalog request costs 1.
	KindRequests = "requests"
	// KindPU counts processing units: a process request costs its PU, a catalog
	// request 0.
	KindPU = "pu"
)

// Policy is one rate-limiting policy of the simulated account: Capacity units of
// Kind per Period, enforced as a token bucket that starts full and refills
// continuously at Capacity/Period.
type Policy struct {
	// Kind is [KindRequests] or [KindPU].
	Kind string
	// Capacity is the bucket size and the number of units refilled per Period.
	Capacity float64
	// Period is the sampling period: time.Second, time.Minute, time.Hour,
	// 24*time.Hour and [MonthPeriod] have the service's ISO names (PT1S, PT1M, PT1H,
	// PT24H, PT744H); any other positive duration is named PT<seconds>S.
	Period time.Duration
}

// MonthPeriod is the sampling period Sentinel Hub publishes for a monthly policy:
// 31 days (PT744H).
const MonthPeriod = 31 * 24 * time.Hour

// Key names the policy in [Stats], e.g. "requests:PT1M".
func (p Policy) Key() string { return p.Kind + ":" + ISOPeriod(p.Period) }

// ISOPeriod returns the ISO-8601 name of a sampling period as Sentinel Hub's rate
// limit contract writes it: PT1S, PT1M, PT1H, PT24H (a day) or PT744H (31 days),
// else PT<seconds>S.
func ISOPeriod(d time.Duration) string {
	switch d {
	case time.Second:
		return "PT1S"
	case time.Minute:
		return "PT1M"
	case time.Hour:
		return "PT1H"
	case 24 * time.Hour:
		return "PT24H"
	case MonthPeriod:
		return "PT744H"
	}
	return "PT" + strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + "S"
}

func (p Policy) validate() error {
	if p.Kind != KindRequests && p.Kind != KindPU {
		return fmt.Errorf("sentineltest: policy kind %q: want %q or %q", p.Kind, KindRequests, KindPU)
	}
	if !(p.Capacity > 0) || p.Period <= 0 {
		return fmt.Errorf("sentineltest: policy %s: capacity and period must be positive (got %g per %s)", p.Kind, p.Capacity, p.Period)
	}
	return nil
}

// eps absorbs float rounding when comparing bucket levels with costs.
const eps = 1e-9

// bucket is one policy's token bucket plus the sliding-window record of what it
// admitted.
type bucket struct {
	pol    Policy
	tokens float64
	last   time.Time
	// share (0..1) of every refill goes to another client of the account
	// ([Config.ExternalLoad]); external is what it has taken so far.
	share, external float64

	window    []admitted // admissions within the last period, oldest first
	windowSum float64
	maxLoad   float64
}

type admitted struct {
	t     time.Time
	units float64
}

func newBucket(p Policy, now time.Time) *bucket {
	return &bucket{pol: p, tokens: p.Capacity, last: now}
}

// refill brings the bucket up to now, never above capacity. The other client
// takes share of the refill first: the bucket gains only (1-share) of it. The
// gain is linear in time, so the result does not depend on how often refill runs.
func (b *bucket) refill(now time.Time) {
	if now.After(b.last) {
		raw := float64(now.Sub(b.last)) * b.pol.Capacity / float64(b.pol.Period)
		b.external += b.share * raw
		b.tokens = math.Min(b.pol.Capacity, b.tokens+(1-b.share)*raw)
		b.last = now
	}
}

// setShare changes the other client's share from now on.
func (b *bucket) setShare(now time.Time, share float64) {
	b.refill(now)
	b.share = share
}

// wait is how long until the bucket holds cost units (0 if it does now), at the
// refill rate left by the other client. A cost above the capacity can never be
// met; wait then returns the time until the bucket is full. When the other client
// takes every refill, the bucket never fills: wait returns one period.
func (b *bucket) wait(cost float64) time.Duration {
	need := math.Min(cost, b.pol.Capacity) - b.tokens
	if need <= eps {
		return 0
	}
	gain := b.pol.Capacity * (1 - b.share) // units per period
	if gain <= 0 {
		return b.pol.Period
	}
	return time.Duration(math.Ceil(need * float64(b.pol.Period) / gain))
}

func (b *bucket) admits(cost float64) bool { return b.tokens+eps >= cost }

// charge takes cost units and records them in the sliding window.
func (b *bucket) charge(now time.Time, cost float64) {
	b.tokens -= cost
	if b.tokens < 0 {
		b.tokens = 0
	}
	if cost <= 0 {
		return
	}
	cut := now.Add(-b.pol.Period)
	i := 0
	for i < len(b.window) && !b.window[i].t.After(cut) {
		b.windowSum -= b.window[i].units
		i++
	}
	b.window = append(b.window[i:], admitted{now, cost})
	b.windowSum += cost
	if b.windowSum > b.maxLoad {
		b.maxLoad = b.windowSum
	}
}

// ms formats a duration as whole milliseconds, rounded up, as Retry-After carries it.
func ms(d time.Duration) string {
	if d <= 0 {
		return "0"
	}
	return strconv.FormatInt(int64(math.Ceil(float64(d)/float64(time.Millisecond))), 10)
}

// puString formats a PU amount with at most 6 decimals.
func puString(pu float64) string {
	return strconv.FormatFloat(math.Round(pu*1e6)/1e6, 'f', -1, 64)
}

// ParsePolicy reads a policy written "kind:capacity:period", e.g.
// "requests:300:PT1M" or "pu:1000:1h": kind is requests or pu, period an ISO name
// (PT1S, PT1M, PT1H, PT24H, PT744H, and the older spellings PT1D, P1D, P31D) or a
// Go duration.
func ParsePolicy(s string) (Policy, error) {
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return Policy{}, fmt.Errorf("sentineltest: policy %q: want kind:capacity:period, e.g. requests:300:PT1M", s)
	}
	c, err := strconv.ParseFloat(parts[1], 64)
	if err != nil {
		return Policy{}, fmt.Errorf("sentineltest: policy %q: capacity %q is not a number", s, parts[1])
	}
	p := Policy{Kind: parts[0], Capacity: c}
	switch strings.ToUpper(parts[2]) {
	case "PT1S":
		p.Period = time.Second
	case "PT1M":
		p.Period = time.Minute
	case "PT1H":
		p.Period = time.Hour
	case "PT24H", "PT1D", "P1D":
		p.Period = 24 * time.Hour
	case "PT744H", "P31D":
		p.Period = MonthPeriod
	default:
		if p.Period, err = time.ParseDuration(parts[2]); err != nil {
			return Policy{}, fmt.Errorf("sentineltest: policy %q: period %q: want PT1S, PT1M, PT1H, PT24H, PT744H or a Go duration like 90s", s, parts[2])
		}
	}
	if err := p.validate(); err != nil {
		return Policy{}, err
	}
	return p, nil
}
