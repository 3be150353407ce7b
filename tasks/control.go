package tasks

import (
	"context"
	"errors"
	"fmt"
	"slices"
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
	_ = c.Jobs.Cancel(ctx, id)
	_ = c.Jobs.Delete(ctx, id)
}

// Start starts processing of an analysed job (ANALYSIS_DONE), or asks a job still
// analysing to start as soon as its analysis is done.
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
		return job, c.startAnalysed(ctx, job)
	case jobs.StatusCreated, jobs.StatusAnalysing:
		if err := c.Jobs.SetAutoStart(ctx, id); err != nil {
			return job, err
		}
		// The analysis may have finished in between.
		job, err = c.Jobs.Get(ctx, id)
		if err == nil && job.Status == jobs.StatusAnalysisDone {
			err = c.startAnalysed(ctx, job)
		}
		return job, err
	}
	return job, &jobs.TransitionError{Job: id, Op: "start", From: string(job.Status), To: string(jobs.StatusProcessing)}
}

// startAnalysed moves an analysed job to PROCESSING and enqueues its items;
// called again on a PROCESSING job it enqueues what is still PENDING or
// SCHEDULED (idempotent: task ids are deterministic). Items are read and
// enqueued page by page.
func (c Controller) startAnalysed(ctx context.Context, job jobs.Job) error {
	statuses := []jobs.ItemStatus{jobs.ItemPending, jobs.ItemScheduled}
	if job.Status == jobs.StatusAnalysisDone {
		processing, err := c.Jobs.Start(ctx, job.ID)
		if err != nil || !processing {
			return err
		}
		statuses = statuses[:1]
	} else if job.Status != jobs.StatusProcessing {
		return nil
	}
	job, err := c.Jobs.Get(ctx, job.ID)
	if err != nil {
		return err
	}
	for _, st := range statuses {
		var cursor uint64
		for {
			items, next, err := c.Jobs.Items(ctx, job.ID, st, cursor, 500)
			if err != nil {
				return err
			}
			if err := c.enqueueItems(ctx, job, items); err != nil {
				return err
			}
			if next == 0 {
				break
			}
			cursor = next
		}
	}
	return nil
}

// enqueueItems schedules then enqueues one process task per item; a task id that
// exists already is fine (enqueued before).
func (c Controller) enqueueItems(ctx context.Context, job jobs.Job, items []jobs.Item) error {
	const batch = 500
	for len(items) > 0 {
		n := min(batch, len(items))
		ids := make([]string, n)
		for i, it := range items[:n] {
			ids[i] = it.ID
		}
		if err := c.Jobs.Schedule(ctx, job.ID, ids...); err != nil {
			return err
		}
		for _, it := range items[:n] {
			task, err := NewProcessTask(c.Jobs.Prefix, job, it.ID)
			if err != nil {
				return err
			}
			if _, err := c.Queue.EnqueueContext(ctx, task); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
				return fmt.Errorf("enqueue item %s: %w", it.ID, err)
			}
		}
		items = items[n:]
	}
	return nil
}

// Restart re-queues the FAILED items of a PARTIAL or FAILED job and returns
// how many. When catalog groups of the job failed ([jobs.Store.FailAnalysis]),
// it enqueues one catalog task per group instead, under a fresh task id (the
// job's restart count is part of it); the job is ANALYSING until they are done,
// and the analysis they complete enqueues every PENDING item, the restarted
// ones included.
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
		return len(re.Items), c.startBatchPolling(ctx, id)
	}
	if len(re.Groups) == 0 {
		return len(re.Items), c.enqueueItems(ctx, job, re.Items)
	}
	for i, g := range re.Groups {
		task, err := NewCatalogTask(c.Jobs.Prefix, CatalogPayload{Job: id, Group: g.Group, Tiles: g.Tiles, Restarts: job.Restarts})
		if err == nil {
			_, err = c.Queue.EnqueueContext(ctx, task)
		}
		if err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
			return len(re.Items), c.unqueued(ctx, job, re.Groups[i:], err)
		}
	}
	return len(re.Items), nil
}

// unqueued records the catalog groups a restart could not enqueue as failed
// again, so the job still ends (PARTIAL or FAILED) and can be restarted, instead
// of waiting in ANALYSING for searches that will never run.
func (c Controller) unqueued(ctx context.Context, job jobs.Job, groups []jobs.FailedGroup, cause error) error {
	ctx = context.WithoutCancel(ctx)
	reason := fmt.Sprintf("restart could not enqueue the catalog search: %v", cause)
	flipped := false
	for _, g := range groups {
		f, err := c.Jobs.FailAnalysis(ctx, job.ID, g.Group, g.Tiles, reason)
		if err != nil {
			return fmt.Errorf("restart job %s: enqueue catalog group %d: %w; recording that failed too (%v): cancel the job", job.ID, g.Group, cause, err)
		}
		flipped = flipped || f
	}
	if flipped {
		if j, err := c.Jobs.Get(ctx, job.ID); err == nil {
			_ = c.startAnalysed(ctx, j)
		}
	}
	return fmt.Errorf("restart job %s: enqueue catalog group %d: %w; %d groups were not re-run, `enqueue restart %s` tries again once the job ends",
		job.ID, groups[0].Group, cause, len(groups), job.ID)
}

// Cancel stops a job at any state: the job is CANCELED (handlers drop its work),
// its queued tasks are deleted and its running ones cancelled.
func (c Controller) Cancel(ctx context.Context, id string) error {
	if err := c.Jobs.Cancel(ctx, id); err != nil {
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
	for _, st := range []jobs.ItemStatus{jobs.ItemScheduled, jobs.ItemProcessing} {
		for it, err := range c.Jobs.AllItems(ctx, id, st) {
			if err != nil {
				return err
			}
			task := ProcessTaskID(id, it.ID, job.Restarts)
			if it.Status == jobs.ItemProcessing {
				_ = c.Inspector.CancelProcessing(task)
			}
			_ = c.Inspector.DeleteTask(queue, task)
		}
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
	queues, err := c.Inspector.Queues()
	if err != nil {
		return err
	}
	if !slices.Contains(queues, queue) {
		return nil // the queue never held a task: nothing is paused or waiting
	}
	if err := c.Inspector.UnpauseQueue(queue); err != nil && !isNotPaused(err) {
		return err
	}
	// Only this job's waiting tasks run now; other jobs' retries keep their
	// own schedule.
	for page := 1; ; page++ {
		retry, err := c.Inspector.ListRetryTasks(queue, asynq.Page(page), asynq.PageSize(500))
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
