package quota

import (
	"context"
	"fmt"
	"strconv"
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
	u := MonthUsage{Month: monthOf(now), Reset: MonthReset(now), BudgetPU: l.cfg.MonthlyPU}
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

// Observe403 records that the server answered 403 (monthly quota exhausted): every
// Limiter of the account refuses to admit, with an ErrMonthlyQuotaExhausted error
// naming the reset date, until the month ends or ResumeMonth is called.
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
// the plan was raised. Our own budget (Config.MonthlyPU) still applies.
func (l *Limiter) ResumeMonth(ctx context.Context) error {
	month := monthOf(l.now())
	if err := l.rdb.Del(ctx, l.key(exhaustedSuffix(month))).Err(); err != nil {
		return l.redisErr(ctx, "resume month", err)
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
