package tasks

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/hibiken/asynq"

	"shfleet/output"
	"shfleet/quota"
	"shfleet/sentinel"
)

// This file is the ONE place where errors become queue behaviour. Handlers return
// errors and carry out the Verdict this file gives them (release the item, fail
// it, record a failed catalog group, pause for the month); the worker's
// asynq.Config uses IsFailure and RetryDelay below. Nothing outside this file
// wraps asynq.SkipRetry, builds a WaitError or chooses between a retry and a
// failure.

// Retry backoff for failures (5xx, network errors, truncated bodies).
const (
	// RetryBase is the delay before the first retry of a failure; it doubles with
	// every further retry, with jitter, up to RetryMax.
	RetryBase = 2 * time.Second
	// RetryMax caps the delay between retries of a failure.
	RetryMax = 5 * time.Minute
)

// WaitError hands a task back to the queue without counting a failure: the quota
// has no slot soon enough (a fleet-wide hold after a 429, reservations booked far
// ahead) or the account's month is spent. The task runs again after After.
type WaitError struct {
	// After is how long the queue should hold the task.
	After time.Duration
	// Reason says why, for logs and the dashboard.
	Reason string
}

func (e *WaitError) Error() string {
	return fmt.Sprintf("waiting %s for the quota: %s", e.After.Round(time.Millisecond), e.Reason)
}

// MonthSpentError is a 403 answer that the evidence explains by a spent month:
// the account's monthly counts (or our own ledger) say its processing units are
// used up. The fleet stops until the reset.
type MonthSpentError struct {
	// Err is the server's answer.
	Err error
	// Evidence says what showed the month is spent.
	Evidence string
}

func (e *MonthSpentError) Error() string {
	return fmt.Sprintf("monthly processing units spent (%s): %v", e.Evidence, e.Err)
}

func (e *MonthSpentError) Unwrap() error { return e.Err }

// PermissionError is a 403 answer that the evidence does not explain by a spent
// month: the account may not have what this request asks for (a collection it
// cannot read, commercial data, an expired account). The item fails at once with
// the server's message; the rest of the fleet goes on.
type PermissionError struct {
	// Err is the server's answer.
	Err error
	// Evidence says why the month was ruled out.
	Evidence string
}

func (e *PermissionError) Error() string {
	return fmt.Sprintf("%v (not the monthly quota: %s); check that the account may use this collection", e.Err, e.Evidence)
}

func (e *PermissionError) Unwrap() error { return e.Err }

// Action is what the queue does with a task whose handler returned an error.
type Action int

// Actions, from the least to the most final.
const (
	// ActionWait re-runs the task later without counting a retry (429, quota waits).
	ActionWait Action = iota
	// ActionRetry retries with exponential backoff, counting a retry (5xx,
	// network errors, truncated bodies, a token endpoint failure).
	ActionRetry
	// ActionFail fails the item at once (400 and other client errors, a 403
	// that is not the monthly quota).
	ActionFail
	// ActionPauseMonth stops the fleet until the monthly quota resets (a 403 with
	// evidence of a spent month, our own monthly budget).
	ActionPauseMonth
)

func (a Action) String() string {
	switch a {
	case ActionWait:
		return "wait"
	case ActionRetry:
		return "retry"
	case ActionFail:
		return "fail"
	case ActionPauseMonth:
		return "pause-month"
	}
	return "unknown"
}

// Classify maps an error from the Sentinel Hub client, the quota or the output
// store to what the queue must do with the task.
func Classify(err error) Action {
	var (
		wait  *WaitError
		rle   *sentinel.RateLimitError
		month *MonthSpentError
		perm  *PermissionError
		fb    *sentinel.ForbiddenError
		api   *sentinel.APIError
		field *sentinel.FieldError
		coll  *output.CollisionError
	)
	switch {
	case errors.As(err, &wait), errors.As(err, &rle), errors.Is(err, quota.ErrTooFar):
		return ActionWait
	case errors.As(err, &coll):
		// Two items map to one key: retrying cannot help, the item fails with
		// a message naming both and the key.
		return ActionFail
	case errors.As(err, &month), errors.Is(err, quota.ErrMonthlyQuotaExhausted):
		return ActionPauseMonth
	case errors.As(err, &perm), errors.As(err, &fb):
		// A 403 never pauses the fleet on its status alone: without evidence of a
		// spent month it is this request's permission problem.
		return ActionFail
	case errors.As(err, &api):
		if api.Temporary() || api.Status == 408 || api.Status == 409 || api.Status == 425 {
			return ActionRetry
		}
		return ActionFail
	case errors.As(err, &field), errors.Is(err, asynq.SkipRetry), errors.Is(err, quota.ErrCostExceedsCapacity):
		return ActionFail
	}
	// 401 after the client's own refresh, token endpoint errors, network errors,
	// truncated bodies (io.ErrUnexpectedEOF), Redis hiccups: retry with backoff.
	return ActionRetry
}

// Verdict is what a handler does with a failed run of its item or catalog
// group, as Judge decides it.
type Verdict int

// Verdicts.
const (
	// Requeue: put the work back (the item to SCHEDULED) and return the error;
	// the queue waits (ActionWait, a shutdown) or retries with backoff.
	Requeue Verdict = iota
	// PauseMonth: the month's processing units are spent; pause until the reset.
	PauseMonth
	// FailNow: record the item (or catalog group) as failed for good and return
	// Final(err) so that the queue does not retry it.
	FailNow
)

// Judge decides what becomes of a run that failed with err: a shutdown or a
// wait requeues, a spent month pauses, a failure is retried until the task's
// last attempt and then fails, like a client error at once.
func Judge(ctx context.Context, err error) Verdict {
	if ctx.Err() != nil || errors.Is(err, context.Canceled) {
		return Requeue // shutdown: the task runs again elsewhere
	}
	switch Classify(err) {
	case ActionWait:
		return Requeue
	case ActionPauseMonth:
		return PauseMonth
	case ActionRetry:
		if !lastAttempt(ctx) {
			return Requeue
		}
	}
	return FailNow
}

// lastAttempt reports whether this run is the task's last before asynq
// archives it.
func lastAttempt(ctx context.Context) bool {
	retried, ok1 := asynq.GetRetryCount(ctx)
	maxRetry, ok2 := asynq.GetMaxRetry(ctx)
	return ok1 && ok2 && retried >= maxRetry
}

// countsRetry reports whether a requeued err costs the task one of its
// retries (a failure, not a wait), for the handlers' logs.
func countsRetry(err error) bool { return Classify(err) == ActionRetry }

// Final marks err as final: the queue does not retry the task (a bad payload,
// a job or item that no longer exists, an item failed for good).
func Final(err error) error { return fmt.Errorf("%w: %w", err, asynq.SkipRetry) }

// Permanent reports whether err fails its work at once, without retries (a
// client error, a 403 that is not the month, an invalid request).
func Permanent(err error) bool { return Classify(err) == ActionFail }

// waitFor hands the task back to the queue for after, without counting a
// retry.
func waitFor(after time.Duration, reason string) error {
	return &WaitError{After: after, Reason: reason}
}

// rateLimitWait is what a handler returns when 429s kept coming after its
// re-admissions: the same WaitError in the catalog and the process handler,
// held at least RetryBase.
func rateLimitWait(rle *sentinel.RateLimitError) error {
	return waitFor(max(rle.Wait(), RetryBase), "repeated 429s: "+rle.Error())
}

// IsFailure is asynq.Config.IsFailure: waiting for the quota is not a failure and
// must not eat the task's retry budget.
func IsFailure(err error) bool {
	return Classify(err) != ActionWait && !errors.Is(err, context.Canceled)
}

// RetryDelay is asynq.Config.RetryDelayFunc: the quota's own wait for ActionWait,
// exponential backoff with full jitter otherwise.
func RetryDelay(n int, err error, _ *asynq.Task) time.Duration {
	var wait *WaitError
	if errors.As(err, &wait) {
		return max(wait.After, time.Second)
	}
	var rle *sentinel.RateLimitError
	if errors.As(err, &rle) && rle.Wait() > 0 {
		return rle.Wait()
	}
	return Backoff(n)
}

// Backoff is the delay before retry n (0-based) of a failure: RetryBase x 2^n,
// capped at RetryMax, with jitter in [d/2, d].
func Backoff(n int) time.Duration {
	d := RetryBase
	for i := 0; i < n && d < RetryMax; i++ {
		d *= 2
	}
	d = min(d, RetryMax)
	return d/2 + rand.N(d/2+1)
}
