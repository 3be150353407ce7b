package quota

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"
)

var (
	// ErrMonthlyQuotaExhausted is matched (errors.Is) by every error that refuses a
	// reservation because the month's PU are spent: our own budget (Config.MonthlyPU)
	// or the server's 403 recorded by Observe403. It clears on the 1st of the next
	// month (UTC) or with ResumeMonth.
	ErrMonthlyQuotaExhausted = errors.New("quota: monthly PU quota exhausted")
	// ErrTooFar is matched by a *TooFarError: the earliest slot is later than the
	// limiter will book (Config.MaxAhead, or the context deadline in Wait). Nothing
	// was charged; hand the task back to the queue.
	ErrTooFar = errors.New("quota: next slot too far ahead")
	// ErrRedisUnavailable is matched when Redis cannot be reached: the limiter never
	// admits without it.
	ErrRedisUnavailable = errors.New("quota: redis unreachable")
	// ErrCostExceedsCapacity is matched when one request costs more than a policy's
	// whole capacity: the server would never admit it, so retrying is pointless.
	ErrCostExceedsCapacity = errors.New("quota: cost exceeds a policy's capacity")
)

// MonthlyQuotaError refuses a reservation because the month's PU are spent.
// errors.Is(err, ErrMonthlyQuotaExhausted) is true.
type MonthlyQuotaError struct {
	// Month is the UTC month, "2026-11".
	Month string
	// Reset is when the month's quota resets: the 1st of the next month, 00:00 UTC.
	Reset time.Time
	// FromServer is true when the server said so (HTTP 403, Observe403); false when
	// our own budget (Config.MonthlyPU) refused.
	FromServer bool
	// Budget is Config.MonthlyPU (0 when FromServer).
	Budget float64
	// Spent is the settled PU spent this month according to the ledger.
	Spent float64
	// Reserved is the PU reserved but not settled yet.
	Reserved float64
	// Need is the PU estimate of the refused request.
	Need float64
	// Policy is the account's monthly PU policy (a period of MonthlyPeriod or
	// more, e.g. pu:30000:PT744H) when it is what has no units left; Reset is then
	// when enough of it has refilled for the request. Nil otherwise.
	Policy *Policy
}

// MonthlyPeriod is the shortest policy period the limiter treats as the
// account's monthly quota (the contract's PT744H is 31 days).
const MonthlyPeriod = 28 * 24 * time.Hour

func (e *MonthlyQuotaError) Error() string {
	reset := e.Reset.UTC().Format("2006-01-02 15:04 UTC")
	if e.Policy != nil {
		return fmt.Sprintf("quota: the account's monthly policy %s has no processing units left for this request (needs %s); enough refills by %s — raise the plan, or wait", e.Policy, fmtPU(e.Need), reset)
	}
	if e.FromServer {
		return fmt.Sprintf("quota: server reported the monthly PU quota exhausted (HTTP 403) in %s; resets %s — raise the plan and call ResumeMonth, or wait", e.Month, reset)
	}
	s := fmt.Sprintf("quota: monthly PU budget of %s exhausted (%s spent in %s", fmtPU(e.Budget), fmtPU(e.Spent), e.Month)
	if e.Reserved > 0 {
		s += ", " + fmtPU(e.Reserved) + " reserved"
	}
	return s + fmt.Sprintf(", this request needs %s); resets %s — raise the budget (Config.MonthlyPU) or wait", fmtPU(e.Need), reset)
}

// Is makes errors.Is(err, ErrMonthlyQuotaExhausted) true.
func (e *MonthlyQuotaError) Is(target error) bool { return target == ErrMonthlyQuotaExhausted }

// TooFarError refuses a reservation whose slot is later than the limiter books.
// Nothing was charged. errors.Is(err, ErrTooFar) is true, and so is
// errors.Is(err, context.DeadlineExceeded) when the context deadline was the limit.
type TooFarError struct {
	// At is the earliest time the request could have been sent (local clock).
	At time.Time
	// Ahead is how far ahead of now At was.
	Ahead time.Duration
	// Limit is the furthest ahead the limiter would book.
	Limit time.Duration
	// ByDeadline is true when the context deadline, not Config.MaxAhead, set Limit.
	ByDeadline bool
}

func (e *TooFarError) Error() string {
	if e.ByDeadline {
		return fmt.Sprintf("quota: next slot is in %s, after the context deadline (%s left); nothing charged", e.Ahead.Round(time.Millisecond), e.Limit.Round(time.Millisecond))
	}
	return fmt.Sprintf("quota: next slot is in %s, beyond MaxAhead %s; nothing charged — requeue the task", e.Ahead.Round(time.Millisecond), e.Limit)
}

// Is makes errors.Is match ErrTooFar, and context.DeadlineExceeded when ByDeadline.
func (e *TooFarError) Is(target error) bool {
	return target == ErrTooFar || (e.ByDeadline && target == context.DeadlineExceeded)
}

// fmtPU formats PU without float noise: 30000, 30001.2.
func fmtPU(pu float64) string { return strconv.FormatFloat(pu, 'f', -1, 64) }

// milliToPU converts milli-PU to PU.
func milliToPU(m int64) float64 { return float64(m) / 1000 }
