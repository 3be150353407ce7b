package tasks

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/hibiken/asynq"

	"shfleet/grid"
	"shfleet/jobs"
)

// Controller runs the job-level operations of the enqueue CLI: submit, start,
// restart, cancel and resume, keeping the job store and the queue in step.
type Controller struct {
	Jobs      *jobs.Store
	Queue     *asynq.Client
	Inspector *asynq.Inspector
	// GroupSize and GroupDegrees shape catalog groups (defaults DefaultGroupSize,
	// DefaultGroupDegrees).
	GroupSize    int
	GroupDegrees float64
}

// Submit creates the job and enqueues one catalog task per group of neighbouring
// tiles. It is all or nothing: when an enqueue fails, the tasks already enqueued
// are deleted and the job removed, and the error says so.
func (c Controller) Submit(ctx context.Context, spec jobs.Spec, tiles []grid.Tile) (jobs.Job, error) {
	if spec.Engine == jobs.EngineBatch {
		return c.submitBatch(ctx, spec, tiles)
	}
	groups := GroupTiles(tiles, c.GroupSize, c.GroupDegrees)
	spec.CatalogGroups = len(groups)
	job, err := c.Jobs.Create(ctx, spec, tiles)
	if err != nil {
		return jobs.Job{}, err
	}
	for i, g := range groups {
		names := make([]string, len(g))
		for j, t := range g {
			names[j] = t.Name
		}
		task, err := NewCatalogTask(c.Jobs.Prefix, CatalogPayload{Job: job.ID, Group: i, Tiles: names})
		if err == nil {
			_, err = c.Queue.EnqueueContext(ctx, task)
		}
		if err != nil {
			c.rollback(job.ID, i)
			return jobs.Job{}, fmt.Errorf("enqueue catalog task %d of %d: %w; nothing was submitted", i+1, len(groups), err)
		}
	}
	return job, nil
}

func (c Controller) rollback(id string, groups int) {
	ctx := context.Background()
	for i := 0; i < groups; i++ {
		_ = c.Inspector.DeleteTask(QueueName(c.Jobs.Prefix, QueueCatalog), CatalogTaskID(id, i, 0))
	}
	_, _ = c.Jobs.Cancel(ctx, id)
	_ = c.Jobs.Delete(ctx, id)
}

// Start starts processing of an analysed job (ANALYSIS_DONE), or asks a job still
// analysing to start as soon as its analysis is done. Starting is a status
// change, whatever the job's size: the job enters the index of active jobs and
// the fleet's feeder ([Feeder]) queues its items a window at a time. Start on a
// PROCESSING job puts it back into that index (a repair, harmless otherwise).
func (c Controller) Start(ctx context.Context, id string) (jobs.Job, error) {
	job, err := c.Jobs.Get(ctx, id)
	if err != nil {
		return job, err
	}
	if job.Spec.Engine == jobs.EngineBatch {
		return c.startBatch(ctx, job)
	}
	switch job.Status {
	case jobs.StatusAnalysisDone:
		if _, err := c.Jobs.Start(ctx, id); err != nil {
			return job, err
		}
		return c.Jobs.Get(ctx, id)
	case jobs.StatusProcessing:
		return job, c.Jobs.Activate(ctx, id)
	case jobs.StatusCreated, jobs.StatusAnalysing:
		if err := c.Jobs.SetAutoStart(ctx, id); err != nil {
			return job, err
		}
		// The analysis may have finished in between (without auto-start).
		job, err = c.Jobs.Get(ctx, id)
		if err == nil && job.Status == jobs.StatusAnalysisDone {
			if _, err = c.Jobs.Start(ctx, id); err == nil {
				job, err = c.Jobs.Get(ctx, id)
			}
		}
		return job, err
	}
	return job, &jobs.TransitionError{Job: id, Op: "start", From: string(job.Status), To: string(jobs.StatusProcessing)}
}

// Restart puts the FAILED items of a PARTIAL or FAILED job back to PENDING (in
// pages, see [jobs.Store.Restart]) and returns how many; the job is PROCESSING
// again and the feeder queues them first, under fresh task ids (the job's
// restart count is part of them). When catalog groups of the job failed
// ([jobs.Store.FailAnalysis]), it enqueues one catalog task per group, under a
// fresh task id too; the job is ANALYSING until they are done, and the analysis
// they complete starts processing every PENDING item, the restarted ones
// included.
func (c Controller) Restart(ctx context.Context, id string) (int, error) {
	re, err := c.Jobs.Restart(ctx, id)
	if err != nil {
		return 0, err
	}
	job, err := c.Jobs.Get(ctx, id)
	if err != nil {
		return 0, err
	}
	if job.Spec.Engine == jobs.EngineBatch {
		// The worker polling the job re-starts the remote request's failed tiles.
		return re.Items, c.startBatchPolling(ctx, id)
	}
	for i, g := range re.Groups {
		task, err := NewCatalogTask(c.Jobs.Prefix, CatalogPayload{Job: id, Group: g.Group, Tiles: g.Tiles, Restarts: job.Restarts})
		if err == nil {
			_, err = c.Queue.EnqueueContext(ctx, task)
		}
		if err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
			return re.Items, c.unqueued(ctx, job, re.Groups[i:], err)
		}
	}
	return re.Items, nil
}

// unqueued records the catalog groups a restart could not enqueue as failed
// again, so the job still ends (PARTIAL or FAILED) and can be restarted, instead
// of waiting in ANALYSING for searches that will never run.
func (c Controller) unqueued(ctx context.Context, job jobs.Job, groups []jobs.FailedGroup, cause error) error {
	ctx = context.WithoutCancel(ctx)
	reason := fmt.Sprintf("restart could not enqueue the catalog search: %v", cause)
	for _, g := range groups {
		// The call that completes the analysis also starts the job (auto-start).
		if _, err := c.Jobs.FailAnalysis(ctx, job.ID, g.Group, g.Tiles, reason); err != nil {
			return fmt.Errorf("restart job %s: enqueue catalog group %d: %w; recording that failed too (%v): cancel the job", job.ID, g.Group, cause, err)
		}
	}
	return fmt.Errorf("restart job %s: enqueue catalog group %d: %w; %d groups were not re-run, `enqueue restart %s` tries again once the job ends",
		job.ID, groups[0].Group, cause, len(groups), job.ID)
}

// Cancel stops a job at any state: the job is CANCELED (the feeder stops, and
// handlers drop its work without a request), and the tasks of its SCHEDULED and
// PROCESSING items — at most the feeder's window — are deleted or cancelled.
// PENDING items never had a task.
func (c Controller) Cancel(ctx context.Context, id string) error {
	items, err := c.Jobs.Cancel(ctx, id)
	if err != nil {
		return err
	}
	job, err := c.Jobs.Get(ctx, id)
	if err != nil {
		return err
	}
	if job.Spec.Engine == jobs.EngineBatch {
		// The worker polling the job stops the remote request.
		return c.startBatchPolling(ctx, id)
	}
	// Only the catalog tasks of the latest restart (or of the submit) can still be
	// queued: a job is restarted only once its analysis is over.
	for i := 0; i < job.Spec.CatalogGroups; i++ {
		_ = c.Inspector.DeleteTask(QueueName(c.Jobs.Prefix, QueueCatalog), CatalogTaskID(id, i, job.Restarts))
	}
	queue := QueueName(c.Jobs.Prefix, ProcessQueue(job.Spec))
	for _, it := range items {
		// The feeder queues an item under the task id of the job's current
		// restart; no item of an older restart can still be in flight.
		taskID := ProcessTaskID(id, it.ID, job.Restarts)
		if it.Status == jobs.ItemProcessing {
			_ = c.Inspector.CancelProcessing(taskID)
		}
		_ = c.Inspector.DeleteTask(queue, taskID)
	}
	return nil
}

// Resume lifts an OUT_OF_PU pause after the monthly budget was raised: the job's
// reason is cleared, its queue unpaused, its waiting tasks run now. The caller
// clears the limiter's month flag (quota.Limiter.ResumeMonth).
func (c Controller) Resume(ctx context.Context, id string) error {
	job, err := c.Jobs.Get(ctx, id)
	if err != nil {
		return err
	}
	if err := c.Jobs.Resume(ctx, id); err != nil {
		return err
	}
	queue := QueueName(c.Jobs.Prefix, ProcessQueue(job.Spec))
	// A queue may be paused before it ever held a task (the feeder had not fed
	// the job yet): unpause whether asynq lists it or not.
	if err := c.Inspector.UnpauseQueue(queue); err != nil && !isNotPaused(err) {
		return err
	}
	// Only this job's waiting tasks (at most its window) run now; other jobs'
	// retries keep their own schedule.
	for page := 1; ; page++ {
		retry, err := c.Inspector.ListRetryTasks(queue, asynq.Page(page), asynq.PageSize(500))
		if errors.Is(err, asynq.ErrQueueNotFound) {
			return nil // the queue never held a task: nothing waits
		}
		if err != nil {
			return err
		}
		for _, t := range retry {
			if strings.HasPrefix(t.ID, id+":") {
				if err := c.Inspector.RunTask(queue, t.ID); err != nil && !errors.Is(err, asynq.ErrTaskNotFound) {
					return err
				}
			}
		}
		if len(retry) < 500 {
			return nil
		}
	}
}

func isNotPaused(err error) bool {
	return err != nil && (errors.Is(err, asynq.ErrQueueNotFound) || strings.Contains(err.Error(), "not paused"))
}
