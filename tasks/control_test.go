package tasks

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"shfleet/grid"
	"shfleet/internal/redistest"
	"shfleet/jobs"
)

func TestCatalogTaskID(t *testing.T) {
	if got := CatalogTaskID("j1", 3, 0); got != "j1:catalog:3" {
		t.Errorf("submit id %q", got)
	}
	if got := CatalogTaskID("j1", 3, 2); got != "j1:catalog:3:r2" {
		t.Errorf("restart id %q", got)
	}
}

// failedJob creates a job of 4 tiles in 2 catalog groups (Submit's grouping: 2
// tiles each) whose searches both failed, so it is FAILED without items.
func failedJob(t *testing.T, c Controller) jobs.Job {
	t.Helper()
	ctx := context.Background()
	tiles := []grid.Tile{tileAt("a0", 14.0, 46.2), tileAt("a1", 14.1, 46.2), tileAt("a2", 14.2, 46.2), tileAt("a3", 14.3, 46.2)}
	spec := jobs.Spec{Collection: "sentinel-2-l2a", Evalscript: "//VERSION=3", OutputURL: "file:///tmp/out",
		From: time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC), CatalogGroups: 2}
	job, err := c.Jobs.Create(ctx, spec, tiles)
	if err != nil {
		t.Fatal(err)
	}
	for g, names := range [][]string{{"a0", "a1"}, {"a2", "a3"}} {
		if _, err := c.Jobs.FailAnalysis(ctx, job.ID, g, names, "HTTP 400: bad collection"); err != nil {
			t.Fatal(err)
		}
	}
	if j, _ := c.Jobs.Get(ctx, job.ID); j.Status != jobs.StatusFailed {
		t.Fatalf("setup: job %s, want FAILED", j.Status)
	}
	return job
}

// TestRestartEnqueuesFailedGroupsAndCancelRemovesThem: no worker runs, so the
// catalog tasks a restart enqueues stay queued under their fresh ids until
// Cancel deletes them.
func TestRestartEnqueuesFailedGroupsAndCancelRemovesThem(t *testing.T) {
	rs := redistest.Start(t)
	rdb := rs.Client()
	t.Cleanup(func() { rdb.Close() })
	insp := asynq.NewInspectorFromRedisClient(rdb)
	c := Controller{Jobs: &jobs.Store{Redis: rdb, Prefix: redistest.Prefix(t)}, Queue: asynq.NewClientFromRedisClient(rdb), Inspector: insp}
	ctx := context.Background()
	job := failedJob(t, c)
	n, err := c.Restart(ctx, job.ID)
	if err != nil || n != 0 {
		t.Fatalf("restart: %d items, %v", n, err)
	}
	for g, want := range [][]string{{"a0", "a1"}, {"a2", "a3"}} {
		id := fmt.Sprintf("%s:catalog:%d:r1", job.ID, g)
		info, err := insp.GetTaskInfo(QueueName(c.Jobs.Prefix, QueueCatalog), id)
		if err != nil {
			t.Fatalf("catalog task %s: %v", id, err)
		}
		p, err := decode[CatalogPayload](asynq.NewTask(info.Type, info.Payload))
		if err != nil || p.Group != g || p.Restarts != 1 || strings.Join(p.Tiles, ",") != strings.Join(want, ",") || info.MaxRetry != CatalogMaxRetry {
			t.Fatalf("task %s: payload %+v (%v), max retry %d", id, p, err, info.MaxRetry)
		}
	}
	if j, _ := c.Jobs.Get(ctx, job.ID); j.Status != jobs.StatusAnalysing || !j.Spec.AutoStart || j.Restarts != 1 {
		t.Fatalf("after restart: %s auto-start %v restarts %d", j.Status, j.Spec.AutoStart, j.Restarts)
	}
	if err := c.Cancel(ctx, job.ID); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{job.ID + ":catalog:0:r1", job.ID + ":catalog:1:r1"} {
		if _, err := insp.GetTaskInfo(QueueName(c.Jobs.Prefix, QueueCatalog), id); !errors.Is(err, asynq.ErrTaskNotFound) {
			t.Errorf("task %s after cancel: %v, want not found", id, err)
		}
	}
}

// TestRestartThatCannotEnqueueLeavesJobRestartable: when the queue refuses the
// catalog tasks, the groups are recorded as failed again, so the job ends
// instead of waiting in ANALYSING for searches that never run.
func TestRestartThatCannotEnqueueLeavesJobRestartable(t *testing.T) {
	rs := redistest.Start(t)
	rdb := rs.Client()
	t.Cleanup(func() { rdb.Close() })
	dead := rs.Client()
	dead.Close() // the queue's connection is gone
	c := Controller{Jobs: &jobs.Store{Redis: rdb, Prefix: redistest.Prefix(t)}, Queue: asynq.NewClientFromRedisClient(dead),
		Inspector: asynq.NewInspectorFromRedisClient(rdb)}
	ctx := context.Background()
	job := failedJob(t, c)
	if _, err := c.Restart(ctx, job.ID); err == nil || !strings.Contains(err.Error(), "2 groups were not re-run") {
		t.Fatalf("restart: %v, want the enqueue error naming the 2 groups", err)
	}
	j, err := c.Jobs.Get(ctx, job.ID)
	if err != nil {
		t.Fatal(err)
	}
	if j.Status != jobs.StatusFailed || j.Progress.TilesFailed != 4 || !strings.Contains(j.Error, "restart could not enqueue") {
		t.Fatalf("job %s error %q %+v, want FAILED again with 4 failed tiles", j.Status, j.Error, j.Progress)
	}
	if groups, _ := c.Jobs.FailedGroups(ctx, job.ID); len(groups) != 2 {
		t.Fatalf("failed groups %+v, want both again", groups)
	}
}
