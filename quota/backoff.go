package quota

import (
	"context"
	_ "embed"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

var (
	//go:embed backoff.lua
	backoffLua    string
	backoffScript = redis.NewScript(clockLua + backoffLua)
	//go:embed learn.lua
	learnLua    string
	learnScript = redis.NewScript(learnLua)
)

// RateLimit is what a 429 answer said, in quota's own terms
// (sentinelquota.RateLimit converts the HTTP client's 429 error). Every field
// is optional: today's service sends only Retry-After.
type RateLimit struct {
	// RetryAfter is Retry-After: time until the next request is admitted.
	RetryAfter time.Duration
	// HasRetryAfter is true when Retry-After was sent.
	HasRetryAfter bool
	// PURetryAfter is the legacy X-ProcessingUnits-Retry-After.
	PURetryAfter time.Duration
	// HasPURetryAfter is true when X-ProcessingUnits-Retry-After was sent.
	HasPURetryAfter bool
	// Policy is the legacy X-RateLimit-ViolatedPolicy, nil when absent. Any of
	// its fields may be unknown: Kind "" (the headers did not tell), Capacity
	// or Period 0.
	Policy *Policy
}

// wait is the larger retry header.
func (r RateLimit) wait() time.Duration { return max(r.RetryAfter, r.PURetryAfter) }

// legacy is true when the 429 carried one of the 2019 headers that say which
// policy ran out.
func (r RateLimit) legacy() bool { return r.Policy != nil || r.HasPURetryAfter }

// Observe429 tells the fleet the server answered 429. Every Limiter of the account
// then admits nothing before now + max(Retry-After, X-ProcessingUnits-Retry-After)
// (Config.DefaultHold when the answer had neither header), plus an exponential
// backoff with jitter while 429s repeat (BackoffBase doubling up to BackoffMax),
// the whole pause capped at MaxHold. It also asks RunAccountSync for a resync now
// (at most one per 500 ms for the fleet), so the server's counts say which policy
// ran out.
//
// A Retry-After-only 429 (today's service) does not say which policy ran out, so
// no policy's mirror is touched: the resync marks the exhausted one. With the
// legacy headers, the violated policy's mirror is marked empty at the end of the
// hold, so admissions resume evenly paced rather than in a burst, and a violated
// policy (X-RateLimit-ViolatedPolicy) stricter than, or missing from, the
// enforced set is learned fleet-wide and logged once.
//
// Do not Cancel or Settle the reservation of the refused request: its charge
// stands, which keeps the mirror conservative.
func (l *Limiter) Observe429(ctx context.Context, rl RateLimit) error {
	defer l.askResync()
	wait := rl.wait()
	if !rl.HasRetryAfter && !rl.HasPURetryAfter {
		wait = l.cfg.DefaultHold
	}
	wait = min(wait, MaxHold)

	kind := violatedKind(rl)
	label := string(kind)
	if label == "" {
		label = "unknown"
	}
	period := time.Duration(0)
	if p := rl.Policy; p != nil {
		period = p.Period
		if period > 0 && p.Capacity > 0 {
			label = string(kindOr(kind, "units")) + ":" + strconv.FormatFloat(p.Capacity, 'g', -1, 64) + ":" + PeriodName(period)
			if err := l.learn(ctx, kind, p.Capacity, period); err != nil {
				return err
			}
		}
	}
	l.throttledMu.Lock()
	l.throttled[label]++
	l.throttledMu.Unlock()

	set := l.set.Load()
	keys := []string{l.key(backoffSuffix), l.key(shiftSuffix)}
	args := []any{l.scriptNow(), wait.Microseconds(), BackoffBase.Microseconds(), BackoffMax.Microseconds(),
		0.5 + 0.5*rand.Float64(), MaxHold.Microseconds(), StreakMemory.Milliseconds(), 0}
	if rl.legacy() {
		for _, lm := range violated(set, kind, period) {
			keys = append(keys, lm.key)
			args = append(args, lm.tau-incFor(lm.perMilli, 1000))
		}
		args[7] = len(keys) - 2
	}
	if set != nil {
		for _, lm := range set.limits {
			keys = append(keys, lm.key)
			args = append(args, lm.tau)
		}
	}
	if err := backoffScript.Run(ctx, l.rdb, keys, args...).Err(); err != nil {
		return l.redisErr(ctx, "record 429", err)
	}
	l.streakSeen.Store(true)
	return nil
}

// ObserveSuccess tells the fleet a request went through: a 429 streak, if any,
// ends, so the next 429 starts the backoff from BackoffBase again. It costs a Redis
// call only while this process knows of a streak.
func (l *Limiter) ObserveSuccess(ctx context.Context) error {
	if !l.streakSeen.Swap(false) {
		return nil
	}
	if err := l.rdb.HDel(ctx, l.key(backoffSuffix), "streak").Err(); err != nil {
		l.streakSeen.Store(true)
		return l.redisErr(ctx, "end 429 streak", err)
	}
	return nil
}

// violatedKind tells which kind of policy a 429 is about: the policy header's kind
// when the parser could tell, else (legacy headers only) the larger positive retry
// header, else "" (unknown: a Retry-After-only 429 says nothing about the kind).
func violatedKind(r RateLimit) PolicyKind {
	if r.Policy != nil && (r.Policy.Kind == Requests || r.Policy.Kind == PU) {
		return r.Policy.Kind
	}
	if !r.legacy() {
		return ""
	}
	switch {
	case r.HasPURetryAfter && r.PURetryAfter > 0 && r.PURetryAfter >= r.RetryAfter:
		return PU
	case r.HasRetryAfter && r.RetryAfter > 0:
		return Requests
	}
	return ""
}

func kindOr(k PolicyKind, def string) PolicyKind {
	if k == "" {
		return PolicyKind(def)
	}
	return k
}

// violated picks the policies a 429 is about: of the given kind (all kinds when
// ""), with the given period, or, when the period is unknown, the shortest period of
// each kind (the one a busy fleet meets first; marking a daily policy empty would
// stop the fleet for a day).
func violated(s *policySet, kind PolicyKind, period time.Duration) []limit {
	var out []limit
	for _, k := range []PolicyKind{Requests, PU} {
		if kind != "" && kind != k {
			continue
		}
		var best *limit
		for i := range s.limits {
			lm := &s.limits[i]
			if lm.Kind != k {
				continue
			}
			if period > 0 {
				if lm.Period == period {
					best = lm
				}
				continue
			}
			if best == nil || lm.Period < best.Period {
				best = lm
			}
		}
		if best != nil {
			out = append(out, *best)
		}
	}
	return out
}

// learn stores a policy the server named, when it is stricter than or missing from
// the effective set, for the whole fleet. With an unknown kind it is learned for
// both kinds (conservative: it can only slow the fleet down, never cause a 429).
func (l *Limiter) learn(ctx context.Context, kind PolicyKind, capacity float64, period time.Duration) error {
	if _, err := ParsePeriod(PeriodName(period)); err != nil {
		return nil
	}
	kinds := []PolicyKind{kind}
	if kind == "" {
		kinds = []PolicyKind{Requests, PU}
	}
	set := l.set.Load()
	args := []any{LearnedMemory.Milliseconds()}
	configured := map[string]float64{}
	for _, k := range kinds {
		p := Policy{Kind: k, Capacity: capacity, Period: period}
		stricter := true
		for _, lm := range set.limits {
			if lm.id() == p.id() {
				configured[p.id()] = lm.Capacity
				stricter = capacity < lm.Capacity
			}
		}
		if stricter {
			args = append(args, p.id(), strconv.FormatFloat(capacity, 'g', -1, 64))
		}
	}
	if len(args) == 1 {
		return nil
	}
	changed, err := learnScript.Run(ctx, l.rdb, []string{l.key(learnedSuffix)}, args...).StringSlice()
	if err != nil {
		return l.redisErr(ctx, "learn policy", err)
	}
	l.refreshMu.Lock()
	err = l.refresh(ctx)
	l.refreshMu.Unlock()
	for _, id := range changed {
		p := id + ":" + strconv.FormatFloat(capacity, 'g', -1, 64)
		if _, dup := l.logged.LoadOrStore(p, struct{}{}); dup {
			continue
		}
		ev := l.log.Warn().Str("policy", id).Float64("capacity", capacity).Str("period", PeriodName(period))
		if c, ok := configured[id]; ok {
			ev = ev.Float64("configured_capacity", c)
		}
		ev.Msg("server enforces a stricter rate limit than configured; the whole fleet now paces to it — update the configured policies")
	}
	return err
}
