package jobs

import (
	"errors"
	"fmt"
)

// Status is a job's status, named as in the Batch Processing API.
type Status string

// Job statuses.
const (
	// StatusCreated: the job and its tiles are stored; no catalog search yet.
	StatusCreated Status = "CREATED"
	// StatusAnalysing: catalog searches are finding the work items.
	StatusAnalysing Status = "ANALYSING"
	// StatusAnalysisDone: every tile is analysed; the estimate is final.
	StatusAnalysisDone Status = "ANALYSIS_DONE"
	// StatusProcessing: work items are being processed.
	StatusProcessing Status = "PROCESSING"
	// StatusDone: every item is DONE.
	StatusDone Status = "DONE"
	// StatusPartial: some items are DONE, some FAILED or some tiles' catalog
	// search failed; Restart re-queues the failed items and groups.
	StatusPartial Status = "PARTIAL"
	// StatusFailed: no item is DONE: every item FAILED, or the catalog searches
	// that failed left the job without items.
	StatusFailed Status = "FAILED"
	// StatusCanceled: the user canceled the job.
	StatusCanceled Status = "CANCELED"
)

// Final reports whether no transition leaves s except Restart (PARTIAL, FAILED).
func (s Status) Final() bool {
	switch s {
	case StatusDone, StatusPartial, StatusFailed, StatusCanceled:
		return true
	}
	return false
}

// ItemStatus is a work item's status, named as the Batch API's tile statuses.
type ItemStatus string

// Item statuses.
const (
	// ItemPending: waiting to be queued (new, returned after getting stuck, or restarted).
	ItemPending ItemStatus = "PENDING"
	// ItemScheduled: a task for the item is in the queue.
	ItemScheduled ItemStatus = "SCHEDULED"
	// ItemProcessing: a worker is processing the item.
	ItemProcessing ItemStatus = "PROCESSING"
	// ItemDone: the outputs are written.
	ItemDone ItemStatus = "DONE"
	// ItemFailed: the item failed permanently or got stuck too often.
	ItemFailed ItemStatus = "FAILED"
)

// ItemStatuses lists every item status in workflow order.
var ItemStatuses = []ItemStatus{ItemPending, ItemScheduled, ItemProcessing, ItemDone, ItemFailed}

// MaxReturns is how many times a stuck item goes back to PENDING before the next
// failure makes it FAILED (the Batch API's "up to twice").
const MaxReturns = 2

// ReasonOutOfPU is the StoppedReason of a job paused because the account's
// monthly processing units are used up; ResumeAt is when the quota resets.
const ReasonOutOfPU = "OUT_OF_PU"

// ErrNotFound is matched (errors.Is) by every error about a job or item that does
// not exist; the error itself is a *NotFoundError naming it.
var ErrNotFound = errors.New("not found")

// ErrInvalidTransition is matched by every *TransitionError: the job or item is in
// a status the requested operation cannot start from.
var ErrInvalidTransition = errors.New("invalid transition")

// ErrCanceled is matched by a *TransitionError whose job is CANCELED, so task
// handlers can drop work for canceled jobs with errors.Is.
var ErrCanceled = errors.New("job canceled")

// NotFoundError says which job (and item) does not exist.
type NotFoundError struct {
	Job  string
	Item string // empty when the job itself is missing
}

func (e *NotFoundError) Error() string {
	if e.Item != "" {
		return fmt.Sprintf("job %s: item %s: not found; list the job's items with `enqueue status %s`", e.Job, e.Item, e.Job)
	}
	return fmt.Sprintf("job %s: not found; list jobs with `enqueue list`", e.Job)
}

// Is makes errors.Is(err, ErrNotFound) true.
func (e *NotFoundError) Is(target error) bool { return target == ErrNotFound }

// TransitionError says that an operation cannot move a job from its status.
type TransitionError struct {
	Job string
	// Op is the operation, e.g. "start" or "restart".
	Op string
	// From is the job's current status, To the status the operation leads to.
	From, To string
}

func (e *TransitionError) Error() string {
	msg := fmt.Sprintf("job %s: cannot %s: status %s cannot become %s", e.Job, e.Op, e.From, e.To)
	switch {
	case e.From == string(StatusCanceled):
		msg += " (the job was canceled)"
	case e.To == "DELETED":
		msg += "; cancel it first with `enqueue cancel " + e.Job + "`"
	case e.From == string(StatusPartial) || e.From == string(StatusFailed):
		msg += "; `enqueue restart " + e.Job + "` re-queues its failed items and catalog groups"
	}
	return msg
}

// Is makes errors.Is match ErrInvalidTransition, and ErrCanceled when the job is
// CANCELED.
func (e *TransitionError) Is(target error) bool {
	return target == ErrInvalidTransition || (target == ErrCanceled && e.From == string(StatusCanceled))
}
