package quota

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Key suffixes under the account (see AccountKey).
const (
	backoffSuffix = "backoff"
	learnedSuffix = "policy:learned"
)

// ledgerSuffix is the month's ledger, a counter of the actual milli-PU spent
// (settled): ledger:2026-11.
func ledgerSuffix(month string) string { return "ledger:" + month }

// pendingSuffix counts the month's reserved, not yet settled milli-PU.
func pendingSuffix(month string) string { return "ledger:" + month + ":pending" }

// exhaustedSuffix is the flag Observe403 sets for the month.
func exhaustedSuffix(month string) string { return "ledger:" + month + ":exhausted" }

// monthOf is the UTC month of t, "2026-11".
func monthOf(t time.Time) string { return t.UTC().Format("2006-01") }

// MonthReset is when the monthly PU quota of t's month resets: the 1st of the next
// month, 00:00 UTC.
func MonthReset(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month()+1, 1, 0, 0, 0, 0, time.UTC)
}

// monthReset is the reset time of a "2006-01" month.
func monthReset(month string) time.Time {
	t, err := time.Parse("2006-01", month)
	if err != nil {
		return time.Time{}
	}
	return MonthReset(t)
}

// ledgerTTL keeps a month's ledger until 35 days after its reset, so the last
// month stays readable.
func ledgerTTL(month string, now time.Time) time.Duration {
	d := monthReset(month).Add(35 * 24 * time.Hour).Sub(now)
	if d < time.Hour {
		d = time.Hour
	}
	return d
}

// MonthUsage is the month's PU account according to the ledger.
type MonthUsage struct {
	// Month is the UTC month, "2026-11".
	Month string
	// Reset is the 1st of the next month, 00:00 UTC.
	Reset time.Time
	// SpentMilliPU is the settled actual PU, in milli-PU.
	SpentMilliPU int64
	// ReservedMilliPU is reserved and not settled yet, in milli-PU.
	ReservedMilliPU int64
	// BudgetPU is Config.MonthlyPU (0 = none).
	BudgetPU float64
	// Exhausted is true when a 403 was observed this month (Observe403) and not
	// cleared (ResumeMonth).
	Exhausted bool
}

// Usage reads the current month's ledger.
func (l *Limiter) Usage(ctx context.Context) (MonthUsage, error) {
	now := l.now().UTC()
	u := MonthUsage{Month: monthOf(now), Reset: MonthReset(now), BudgetPU: l.monthBudget(l.set.Load())}
	pipe := l.rdb.Pipeline()
	spent := pipe.Get(ctx, l.key(ledgerSuffix(u.Month)))
	pending := pipe.Get(ctx, l.key(pendingSuffix(u.Month)))
	flag := pipe.Exists(ctx, l.key(exhaustedSuffix(u.Month)))
	if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
		return u, l.redisErr(ctx, "read ledger", err)
	}
	u.SpentMilliPU, _ = strconv.ParseInt(spent.Val(), 10, 64)
	u.ReservedMilliPU, _ = strconv.ParseInt(pending.Val(), 10, 64)
	u.ReservedMilliPU = max(u.ReservedMilliPU, 0)
	u.Exhausted = flag.Val() == 1
	return u, nil
}

// Observe403 records that the server answered 403 and the month's PU are spent:
// every Limiter of the account refuses to admit, with an ErrMonthlyQuotaExhausted
// error naming the reset date, until the month ends or ResumeMonth is called. A 403
// is mostly "insufficient permissions": call it only when MonthSpent says Spent.
func (l *Limiter) Observe403(ctx context.Context) error {
	now := l.now().UTC()
	month := monthOf(now)
	reset := MonthReset(now)
	ttl := reset.Sub(now) + time.Hour
	if err := l.rdb.Set(ctx, l.key(exhaustedSuffix(month)), "1", ttl).Err(); err != nil {
		return l.redisErr(ctx, "record 403", err)
	}
	l.forbidden.Add(1)
	if _, dup := l.loggedMonth.LoadOrStore(month, struct{}{}); !dup {
		l.log.Warn().Str("month", month).Time("reset", reset).
			Msg("server reports the monthly PU quota exhausted (HTTP 403); the fleet stops admitting until the reset or ResumeMonth")
	}
	return nil
}

// ResumeMonth clears what Observe403 recorded for the current month, e.g. after
// the plan was raised, and has the account's contract re-read (at once with an
// AccountAPI). Our own budget (Config.MonthlyPU) still applies.
func (l *Limiter) ResumeMonth(ctx context.Context) error {
	month := monthOf(l.now())
	if err := l.rdb.Del(ctx, l.key(exhaustedSuffix(month))).Err(); err != nil {
		return l.redisErr(ctx, "resume month", err)
	}
	// A resume usually follows a raised plan: the account's contract (its
	// monthly policy) is re-read now when this limiter can, else by the fleet's
	// next sync.
	if err := l.rdb.HSet(ctx, l.key(contractSuffix), "fetched", "0").Err(); err != nil {
		return l.redisErr(ctx, "resume month", err)
	}
	if l.cfg.AccountAPI != nil {
		if err := l.fetchContractIfDue(ctx); err != nil {
			return err
		}
	}
	l.loggedMonth.Delete(month)
	l.log.Info().Str("month", month).Msg("monthly PU quota flag cleared; admitting again")
	return nil
}

// String formats the usage for humans: "2026-11: 1234.5 PU spent, 3 reserved of 30000".
func (u MonthUsage) String() string {
	s := fmt.Sprintf("%s: %s PU spent, %s reserved", u.Month, fmtPU(milliToPU(u.SpentMilliPU)), fmtPU(milliToPU(u.ReservedMilliPU)))
	if u.BudgetPU > 0 {
		s += " of " + fmtPU(u.BudgetPU)
	}
	if u.Exhausted {
		s += "; server says exhausted until " + u.Reset.Format("2006-01-02 15:04 UTC")
	}
	return s
}

// MonthEvidence says whether the month's PU are really spent, and why (for the
// 403 that just came back: spent, or "insufficient permissions").
type MonthEvidence struct {
	// Spent is true when something says the month's PU cannot cover the request:
	// the account's remaining monthly PU, our own ledger against Config.MonthlyPU,
	// or an earlier Observe403 this month.
	Spent bool
	// Reason says what was checked, for logs and the job page.
	Reason string
}

// MonthSpent tells whether the month's PU are spent for a request needing
// needMilliPU, by evidence rather than by status code (a 403 is mostly a
// permission error): the last snapshot of the account's monthly PU policy (the PU
// level with the longest period of 28 days or more, PT744H) having less than the
// need, our own ledger reaching Config.MonthlyPU, or the month already recorded as
// spent (Observe403). The snapshot is stored by every resync; when it is older than
// LevelsMaxAge and an AccountAPI is configured, it is re-read (and reconciled)
// first. When nothing says the month is spent, Spent is false: the caller then
// treats the 403 as a permission error. Only Redis failures are errors; an
// unreadable account API is said in Reason.
func (l *Limiter) MonthSpent(ctx context.Context, needMilliPU int64) (MonthEvidence, error) {
	u, snap, err := l.monthState(ctx)
	if err != nil {
		return MonthEvidence{}, err
	}
	if u.Exhausted {
		return MonthEvidence{Spent: true, Reason: "the fleet already recorded " + u.Month + "'s PU as spent (a 403 with evidence); resets " +
			u.Reset.Format("2006-01-02 15:04 UTC")}, nil
	}
	need := milliToPU(needMilliPU)
	if u.BudgetPU > 0 && u.SpentMilliPU+needMilliPU > int64(math.Round(u.BudgetPU*1000)) {
		return MonthEvidence{Spent: true, Reason: fmt.Sprintf("our ledger has %s PU spent of the %s PU monthly budget in %s; this request needs %s",
			fmtPU(milliToPU(u.SpentMilliPU)), fmtPU(u.BudgetPU), u.Month, fmtPU(need))}, nil
	}
	var apiErr error
	if l.cfg.AccountAPI != nil && (!snap.ok || l.now().Sub(snap.at) > LevelsMaxAge) {
		spent := u.SpentMilliPU
		levels, err := l.cfg.AccountAPI.Remaining(ctx)
		if err == nil {
			if _, err := l.reconcile(ctx, levels, spent); err != nil {
				return MonthEvidence{}, err
			}
			if _, snap, err = l.monthState(ctx); err != nil {
				return MonthEvidence{}, err
			}
		} else {
			apiErr = err
		}
	}
	var reason string
	switch {
	// What the fleet settled since the count, and what it reserved and has not
	// settled yet (in flight), take units the count does not show: a fleet can
	// spend a small month's last PU within a second.
	case snap.ok && snap.remaining*1000-float64(snap.since(u)) < float64(needMilliPU):
		return MonthEvidence{Spent: true, Reason: fmt.Sprintf("the account's monthly PU policy (%s) had %s PU left %s ago, and the fleet has spent or reserved %s since; this request needs %s",
			snap.id, fmtUnits(snap.remaining), l.now().Sub(snap.at).Round(time.Millisecond), fmtPU(milliToPU(snap.since(u))), fmtPU(need))}, nil
	case snap.ok:
		reason = fmt.Sprintf("the account's monthly PU policy (%s) had %s PU left %s ago (the fleet spent or reserved %s since), enough for the %s PU needed",
			snap.id, fmtUnits(snap.remaining), l.now().Sub(snap.at).Round(time.Millisecond), fmtPU(milliToPU(snap.since(u))), fmtPU(need))
	default:
		reason = "no count of the account's monthly PU is known"
	}
	if u.BudgetPU > 0 {
		reason += fmt.Sprintf("; our ledger has %s of %s PU spent", fmtPU(milliToPU(u.SpentMilliPU)), fmtPU(u.BudgetPU))
	} else {
		reason += "; no monthly budget is set (Config.MonthlyPU)"
	}
	if apiErr != nil {
		reason += " (re-reading the account's counts failed: " + apiErr.Error() + ")"
	}
	return MonthEvidence{Spent: false, Reason: reason + ": the month is not spent by evidence"}, nil
}

// monthSnapshot is the last published level of the monthly PU policy.
type monthSnapshot struct {
	ok        bool
	id        string
	remaining float64
	at        time.Time
	ledger    int64 // the fleet's settled milli-PU when it was read (-1 unknown)
}

// since is what the fleet spent after the snapshot plus what it has in flight,
// in milli-PU.
func (s monthSnapshot) since(u MonthUsage) int64 {
	d := u.ReservedMilliPU
	if s.ledger >= 0 && u.SpentMilliPU > s.ledger {
		d += u.SpentMilliPU - s.ledger
	}
	return d
}

// monthState reads the month's ledger and the last levels snapshot in one round
// trip.
func (l *Limiter) monthState(ctx context.Context) (MonthUsage, monthSnapshot, error) {
	now := l.now().UTC()
	u := MonthUsage{Month: monthOf(now), Reset: MonthReset(now), BudgetPU: l.monthBudget(l.set.Load())}
	pipe := l.rdb.Pipeline()
	spent := pipe.Get(ctx, l.key(ledgerSuffix(u.Month)))
	pending := pipe.Get(ctx, l.key(pendingSuffix(u.Month)))
	flag := pipe.Exists(ctx, l.key(exhaustedSuffix(u.Month)))
	levels := pipe.HGetAll(ctx, l.key(levelsSuffix))
	if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
		return u, monthSnapshot{}, l.redisErr(ctx, "read month evidence", err)
	}
	u.SpentMilliPU, _ = strconv.ParseInt(spent.Val(), 10, 64)
	u.ReservedMilliPU, _ = strconv.ParseInt(pending.Val(), 10, 64)
	u.ReservedMilliPU = max(u.ReservedMilliPU, 0)
	u.Exhausted = flag.Val() == 1
	var snap monthSnapshot
	ms, err := strconv.ParseInt(levels.Val()["at"], 10, 64)
	if err != nil {
		return u, snap, nil
	}
	var best time.Duration
	for id, v := range levels.Val() {
		kind, period, ok := strings.Cut(id, ":")
		d, err := ParsePeriod(period)
		r, rerr := strconv.ParseFloat(v, 64)
		if !ok || PolicyKind(kind) != PU || err != nil || rerr != nil || d < 28*24*time.Hour || d <= best {
			continue
		}
		best = d
		snap = monthSnapshot{ok: true, id: id, remaining: r, at: time.UnixMilli(ms), ledger: -1}
	}
	if v, err := strconv.ParseInt(levels.Val()["ledger"], 10, 64); err == nil && snap.ok {
		snap.ledger = v
	}
	return u, snap, nil
}
