//go:build chaos

package chaos

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"shfleet/internal/redistest"
	"shfleet/jobs"
)

// TestRedisRestart restarts redis-server (AOF on, fsync always) twice in the
// middle of a job — once gracefully (SIGINT, immediately started again), once
// crashed (SIGKILL, down for 3 s): the workers reconnect and the job completes
// with nothing lost and nothing downloaded twice.
func TestRedisRestart(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{AppendOnly: true})
	f := newFleet(t, rs.URL(), "-latency", "300ms", "-jitter", "300ms")
	for i := 0; i < 3; i++ {
		f.startWorker()
	}
	out := t.TempDir()
	spec, tiles := jobSpec(t, smallArea, june, aug, out)
	start := time.Now()
	job, err := f.ctl.Submit(context.Background(), spec, tiles)
	if err != nil {
		t.Fatal(err)
	}
	// A graceful restart at a quarter of the items, a crash at 60%.
	for _, frac := range []float64{0.25, 0.6} {
		crash := frac > 0.5
		job = f.waitJob(job.ID, 3*time.Minute, fmt.Sprintf("%.0f%% of the items done", frac*100), func(j jobs.Job) bool {
			return j.Status.Final() || j.Progress.Total > 0 && float64(j.Progress.Done) >= frac*float64(j.Progress.Total)
		})
		if job.Status.Final() {
			t.Fatalf("job finished before the restart: %s", job.Status)
		}
		before, pid := runID(t, f)
		if crash {
			// The server is this test's own child (started by redistest).
			t.Logf("kill -9 redis-server (pid %d) at %d/%d items done, %d processing; down for 3 s", pid, job.Progress.Done, job.Progress.Total, job.Progress.Processing)
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			time.Sleep(3 * time.Second)
		} else {
			t.Logf("restarting redis-server at %d/%d items done, %d processing", job.Progress.Done, job.Progress.Total, job.Progress.Processing)
		}
		if err := rs.Restart(); err != nil {
			t.Fatal(err)
		}
		if after, _ := runID(t, f); after == before {
			t.Fatalf("redis run_id unchanged (%s): the server did not restart", after)
		}
	}
	job = f.waitFinal(job.ID, 5*time.Minute)
	v := f.verify("redis-restart", job, tiles, out, start)
	f.assertClean(v)
	if v.Duplicates != 0 {
		t.Errorf("%d process requests were served twice across the Redis restart: %v", v.Duplicates, v.DuplicateKeys)
	}
}

// runID is the redis-server's run_id (new on every start) and process id.
func runID(t *testing.T, f *fleet) (string, int) {
	t.Helper()
	info, err := f.rdb.Info(context.Background(), "server").Result()
	if err != nil {
		t.Fatal(err)
	}
	var id string
	pid := 0
	for _, line := range strings.Split(info, "\n") {
		line = strings.TrimSpace(line)
		if v, ok := strings.CutPrefix(line, "run_id:"); ok {
			id = v
		}
		if v, ok := strings.CutPrefix(line, "process_id:"); ok {
			pid, _ = strconv.Atoi(v)
		}
	}
	if id == "" || pid == 0 {
		t.Fatalf("no run_id or process_id in INFO server")
	}
	return id, pid
}
