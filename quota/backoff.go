package quota

import (
	"context"
	_ "embed"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"shfleet/sentinel"
)

var (
	//go:embed backoff.lua
	backoffLua    string
	backoffScript = redis.NewScript(backoffLua)
	//go:embed learn.lua
	learnLua    string
	learnScript = redis.NewScript(learnLua)
)

// Observe429 tells the fleet the server answered 429. Every Limiter of the account
// then admits nothing before now + max(Retry-After, X-ProcessingUnits-Retry-After)
// (Config.DefaultHold when the answer had neither header), plus an exponential
// backoff with jitter while 429s repeat (BackoffBase doubling up to BackoffMax),
// the whole pause capped at MaxHold. The violated policy's mirror is marked empty at
// that time, so admissions resume evenly paced rather than in a burst. A violated
// policy (X-RateLimit-ViolatedPolicy) stricter than, or missing from, the
// configuration is learned fleet-wide and logged once.
//
// Do not Cancel or Settle the reservation of the refused request: its charge
// stands, which keeps the mirror conservative.
func (l *Limiter) Observe429(ctx context.Context, e *sentinel.RateLimitError) error {
	if e == nil {
		e = &sentinel.RateLimitError{}
	}
	wait := e.Wait()
	if !e.HasRetryAfter && !e.HasPURetryAfter {
		wait = l.cfg.DefaultHold
	}
	wait = min(wait, MaxHold)

	kind := violatedKind(e)
	label := string(kind)
	if label == "" {
		label = "unknown"
	}
	period := time.Duration(0)
	if e.Policy != nil {
		period = e.Policy.Period()
		if period > 0 && e.Policy.Capacity > 0 {
			label = string(kindOr(kind, "units")) + ":" + strconv.FormatFloat(e.Policy.Capacity, 'g', -1, 64) + ":" + e.Policy.SamplingPeriod
			if err := l.learn(ctx, kind, e.Policy.Capacity, period); err != nil {
				return err
			}
		}
	}
	l.throttledMu.Lock()
	l.throttled[label]++
	l.throttledMu.Unlock()

	set := l.set.Load()
	keys := []string{l.key(backoffSuffix)}
	args := []any{l.scriptNow(), wait.Microseconds(), BackoffBase.Microseconds(), BackoffMax.Microseconds(),
		0.5 + 0.5*rand.Float64(), MaxHold.Microseconds(), StreakMemory.Milliseconds()}
	for _, lm := range violated(set, kind, period) {
		keys = append(keys, lm.key)
		args = append(args, lm.tau-incFor(lm.perMilli, 1000))
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
// when the parser could tell, else the larger positive retry header, else "".
func violatedKind(e *sentinel.RateLimitError) PolicyKind {
	if e.Policy != nil && (e.Policy.Kind == string(Requests) || e.Policy.Kind == string(PU)) {
		return PolicyKind(e.Policy.Kind)
	}
	switch {
	case e.HasPURetryAfter && e.PURetryAfter > 0 && e.PURetryAfter >= e.RetryAfter:
		return PU
	case e.HasRetryAfter && e.RetryAfter > 0:
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
