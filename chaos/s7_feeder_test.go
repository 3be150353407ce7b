//go:build chaos

package chaos

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"shfleet/internal/redistest"
	"shfleet/jobs"
	"shfleet/tasks"
)

// leaderPID reads the feeder's lease: its holder is host:pid:random.
func (f *fleet) leaderPID() int {
	f.t.Helper()
	v, err := f.rdb.Get(context.Background(), tasks.LeaseKey("")).Result()
	if err != nil {
		return 0
	}
	parts := strings.Split(v, ":")
	if len(parts) < 3 {
		f.t.Fatalf("feeder lease holder %q is not host:pid:random", v)
	}
	pid, _ := strconv.Atoi(parts[len(parts)-2])
	return pid
}

// TestKillFeederLeader kills the worker process whose feeder leads with
// SIGKILL, twice, during a job of 500+ items: another worker's feeder takes
// the lease over once it expires (and re-queues what the dead leader had taken
// but not queued), asynq recovers the dead worker's tasks, and the job ends
// DONE with every output stored exactly once.
func TestKillFeederLeader(t *testing.T) {
	rs := redistest.Start(t)
	f := newFleet(t, rs.URL(), "-latency", "300ms", "-jitter", "400ms")
	for range 3 {
		f.startWorker()
	}
	out := t.TempDir()
	spec, tiles := jobSpec(t, bigArea, june, aug, out)
	start := time.Now()
	job, err := f.ctl.Submit(context.Background(), spec, tiles)
	if err != nil {
		t.Fatal(err)
	}
	job = f.waitJob(job.ID, 2*time.Minute, "processing", func(j jobs.Job) bool { return j.Status == jobs.StatusProcessing })
	if job.Progress.Total < 500 {
		t.Fatalf("%d items; the scenario needs >= 500", job.Progress.Total)
	}
	kills := 0
	for _, frac := range []int{5, 2} { // at a fifth and at half of the items
		f.waitJob(job.ID, 3*time.Minute, "progress", func(j jobs.Job) bool {
			return j.Status.Final() || j.Progress.Done >= j.Progress.Total/frac
		})
		pid := f.leaderPID()
		var victim *proc
		for _, p := range f.workers {
			if p.running() && p.cmd.Process.Pid == pid {
				victim = p
			}
		}
		if victim == nil {
			t.Fatalf("the feeder's lease names pid %d, which is none of the running workers", pid)
		}
		j := f.job(job.ID)
		if j.Status.Final() {
			t.Fatalf("the job ended before kill %d: nothing tested", kills+1)
		}
		victim.kill()
		kills++
		t.Logf("kill -9 %s, the feeder's leader (pid %d), at %d/%d items done", victim.name, pid, j.Progress.Done, j.Progress.Total)
		// Another worker leads once the lease (3 s) expires.
		deadline := time.Now().Add(30 * time.Second)
		for next := f.leaderPID(); next == 0 || next == pid; next = f.leaderPID() {
			if time.Now().After(deadline) {
				t.Fatalf("no other feeder took the lease over within 30 s of the kill")
			}
			time.Sleep(100 * time.Millisecond)
		}
		f.startWorker() // the fleet keeps 3 workers
	}
	job = f.waitFinal(job.ID, 6*time.Minute)
	v := f.verify("kill-leader", job, tiles, out, start)
	f.assertClean(v)
	t.Logf("%d leader kills, %d items returned after a kill, %d re-downloads (stored once)", kills, v.Returns, v.Duplicates)
}
