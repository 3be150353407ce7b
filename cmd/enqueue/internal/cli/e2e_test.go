package cli_test

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"shfleet/cmd/enqueue/internal/cli"
	"shfleet/jobs"
	"shfleet/quota"
	"shfleet/sentinel/sentineltest"
	"shfleet/tasks"
)

var fastPolicies = []quota.Policy{{Kind: quota.Requests, Capacity: 600, Period: time.Minute}, {Kind: quota.PU, Capacity: 600, Period: time.Minute}}

func simPolicies(ps []quota.Policy) []sentineltest.Policy {
	var out []sentineltest.Policy
	for _, p := range ps {
		out = append(out, sentineltest.Policy{Kind: string(p.Kind), Capacity: p.Capacity, Period: p.Period})
	}
	return out
}

// jobArgs are the inputs of the sample job (the examples' AOI at 60 m).
func jobArgs(cmd, out string) []string {
	return []string{cmd, aoiFile, "--from", "2025-06-01", "--to", "2025-07-01", "--evalscript", evalscript,
		"--resolution", "60", "--max-cloud", "70", "--output", out, "--json"}
}

// TestSubmitAndWatchEndToEnd submits through the CLI to three real workers and
// follows the job with status --watch until it is DONE.
func TestSubmitAndWatchEndToEnd(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sentineltest.Config{Policies: simPolicies(fastPolicies)})
	e.startWorkers(t, 3, fastPolicies)
	out := t.TempDir()

	r := run(t, append(append(jobArgs("submit", out), "--name", "e2e"), e.flags...)...)
	if r.code != 0 {
		t.Fatalf("submit: exit %d: %s", r.code, r.stderr)
	}
	sub := lastJSON[cli.JobView](t, r)
	if sub.ID == "" || sub.Tiles == 0 || sub.Name != "e2e" || sub.Output != "file://"+out {
		t.Fatalf("submit printed %+v", sub)
	}
	// The job keeps its AOI outline for the job page's map: the two polygons of
	// examples/aoi.geojson (6 and 5 positions), positions as in the file.
	if job, err := e.store.Get(context.Background(), sub.ID); err != nil || len(job.Spec.AOIOutline) != 2 ||
		len(job.Spec.AOIOutline[0]) != 6 || job.Spec.AOIOutline[0][3] != [2]float64{14.40, 46.07} || len(job.Spec.AOIOutline[1]) != 5 {
		t.Fatalf("stored outline %v (%v); want the example's two rings", job.Spec.AOIOutline, err)
	}

	w := run(t, append([]string{"status", sub.ID, "--watch", "--json", "--poll-interval", "100ms"}, e.flags...)...)
	if w.code != 0 {
		t.Fatalf("status --watch: exit %d: %s", w.code, w.stderr)
	}
	final := lastJSON[cli.JobView](t, w)
	if final.ID != sub.ID || final.Status != jobs.StatusDone || final.Total == 0 || final.Done != final.Total ||
		final.Failed != 0 || final.Total < final.Tiles || final.SpentPU <= 0 || final.FinishedAt.IsZero() {
		t.Fatalf("final status %+v, want DONE with done == total", final)
	}
	files := outputFiles(t, out)
	if len(files) != final.Total {
		t.Fatalf("%d output files, want %d (one per item): %v", len(files), final.Total, files)
	}
	for _, f := range files {
		if !strings.HasPrefix(f, filepath.Join(out, sub.ID)+"/") || !strings.HasSuffix(f, ".tif") {
			t.Fatalf("output %s is not under <out>/<job id>/... with .tif", f)
		}
	}
	// A job reads DONE only once its manifest is written: no waiting here.
	if _, err := os.Stat(filepath.Join(out, tasks.ManifestKey(sub.ID))); err != nil {
		t.Fatalf("job DONE without its manifest: %v", err)
	}
	st := e.sim.Stats()
	if st.ProcessRequests != final.Total {
		t.Fatalf("simulator saw %d process requests, want %d", st.ProcessRequests, final.Total)
	}
	// One token for the credential check, one shared by the whole fleet.
	if st.TokensIssued != 2 {
		t.Fatalf("tokens issued %d, want 2 (the CLI's check and the fleet's shared one)", st.TokensIssued)
	}

	// list and status for people and machines.
	l := run(t, append([]string{"list", "--json"}, e.flags...)...)
	list := lastJSON[[]cli.JobView](t, l)
	if l.code != 0 || len(list) != 1 || list[0].ID != sub.ID || list[0].Status != jobs.StatusDone {
		t.Fatalf("list --json: exit %d, %+v", l.code, list)
	}
	l = run(t, append([]string{"list"}, e.flags...)...)
	if l.code != 0 || !strings.Contains(l.stdout, sub.ID) || !strings.Contains(l.stdout, "e2e") || !strings.Contains(l.stdout, "DONE") {
		t.Fatalf("list: exit %d: %s", l.code, l.stdout)
	}
	s := run(t, append([]string{"status"}, e.flags...)...) // newest job
	if s.code != 0 || !strings.Contains(s.stdout, "job "+sub.ID+" (e2e): DONE") || !strings.Contains(s.stdout, "PU") {
		t.Fatalf("status: exit %d: %s", s.code, s.stdout)
	}
	// submit --watch for people, in interval mode (one item per tile and month):
	// progress on stderr (plain lines: the test's stderr is not a terminal, so no
	// carriage-return redraws), a summary on stdout.
	args := jobArgs("submit", t.TempDir())
	args = append(args[:len(args)-1], "--watch", "--poll-interval", "100ms", "--mode", "interval", "--interval", "P1M") // --json dropped
	h := run(t, append(args, e.flags...)...)
	m := regexp.MustCompile(`job \S+ DONE: (\d+)/(\d+) items done, 0 failed`).FindStringSubmatch(h.stdout)
	n := 0
	if m != nil {
		n, _ = strconv.Atoi(m[1])
	}
	if h.code != 0 || !strings.Contains(h.stdout, "submitted job") || m == nil || m[1] != m[2] ||
		n == 0 || n > sub.Tiles || !strings.Contains(h.stderr, "items") || strings.Contains(h.stderr, "\r") ||
		!regexp.MustCompile(`(?m)^\d\d:\d\d:\d\d job \S+: (ANALYSING|CREATED|\d+/\d+ items, )`).MatchString(h.stderr) {
		t.Fatalf("submit --watch --mode interval: exit %d (want one item per tile with data, at most %d)\nstdout: %s\nstderr: %q", h.code, sub.Tiles, h.stdout, h.stderr)
	}
	// Watching a job that is DONE already prints the summary at once.
	s = run(t, append([]string{"status", sub.ID, "--watch"}, e.flags...)...)
	if s.code != 0 || !strings.Contains(s.stdout, "job "+sub.ID+" DONE:") || !strings.Contains(s.stdout, "failed") {
		t.Fatalf("status --watch: exit %d: %s", s.code, s.stdout)
	}
}

// TestStartAndCancelMidJob submits without starting, starts, then cancels while
// a tight quota keeps the job slow: the job is CANCELED and no task of it stays
// queued.
func TestStartAndCancelMidJob(t *testing.T) {
	t.Parallel()
	slow := []quota.Policy{{Kind: quota.Requests, Capacity: 6, Period: time.Minute}, {Kind: quota.PU, Capacity: 600, Period: time.Minute}}
	e := newEnv(t, sentineltest.Config{Policies: simPolicies(slow)})
	e.startWorkers(t, 3, slow)
	out := t.TempDir()

	r := run(t, append(append(jobArgs("submit", out), "--no-start"), e.flags...)...)
	if r.code != 0 {
		t.Fatalf("submit --no-start: exit %d: %s", r.code, r.stderr)
	}
	id := lastJSON[cli.JobView](t, r).ID
	job := e.waitStatus(t, id, 30*time.Second, jobs.StatusAnalysisDone)
	if job.Progress.Total < 10 {
		t.Fatalf("the sample job has %d items; the test needs more than the quota's burst", job.Progress.Total)
	}

	r = run(t, append([]string{"start", id, "--json"}, e.flags...)...)
	if v := lastJSON[cli.JobView](t, r); r.code != 0 || v.Status != jobs.StatusProcessing {
		t.Fatalf("start: exit %d, %+v: %s", r.code, v, r.stderr)
	}
	ctx := context.Background()
	insp := asynq.NewInspectorFromRedisClient(e.rdb)
	// Start only changes the status; the workers' feeder queues the first
	// tasks within a tick or two.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, err := insp.GetQueueInfo(jobs.DefaultQueue); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("no task queued 10 s after the start: %v", err)
		}
	}

	// The month's PU ran out meanwhile: status says so, resume lifts it. The
	// flag is set for another account than the workers', so that they do not
	// react to it while the test looks.
	const account = "account-out-of-pu"
	lim, err := quota.NewLimiter(quota.Config{Redis: e.rdb, Account: account, Policies: fastPolicies})
	if err != nil {
		t.Fatal(err)
	}
	if err := lim.Observe403(ctx); err != nil {
		t.Fatal(err)
	}
	reset := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	// What a worker does on a 403: pause the job and its queue.
	if err := e.store.Pause(ctx, id, jobs.ReasonOutOfPU, reset); err != nil {
		t.Fatal(err)
	}
	if err := insp.PauseQueue(jobs.DefaultQueue); err != nil {
		t.Fatal(err)
	}
	s := run(t, append([]string{"status", id, "--json"}, e.flags...)...)
	if v := lastJSON[cli.JobView](t, s); s.code != 0 || v.StoppedReason != jobs.ReasonOutOfPU || !v.ResumeAt.Equal(reset) {
		t.Fatalf("status of the paused job: exit %d, %+v", s.code, v)
	}
	s = run(t, append([]string{"status", id}, e.flags...)...)
	if s.code != 0 || !strings.Contains(s.stdout, "OUT_OF_PU until 2030-01-01") || !strings.Contains(s.stdout, "enqueue resume "+id) {
		t.Fatalf("status of the paused job: exit %d: %s", s.code, s.stdout)
	}
	s = run(t, append(append([]string{"resume", id, "--json"}, e.flags...), "--client-id", account)...)
	if v := lastJSON[cli.ActionView](t, s); s.code != 0 || v.Action != "resume" {
		t.Fatalf("resume: exit %d, %+v: %s", s.code, v, s.stderr)
	}
	if job, err := e.store.Get(ctx, id); err != nil || job.Paused() {
		t.Fatalf("after resume: paused %v (%v)", job.Paused(), err)
	}
	if u, err := lim.Usage(ctx); err != nil || u.Exhausted {
		t.Fatalf("after resume the account's month is still flagged exhausted (%v)", err)
	}
	if q, err := insp.GetQueueInfo(jobs.DefaultQueue); err != nil || q.Paused {
		t.Fatalf("after resume queue %s: %+v (%v), want unpaused", jobs.DefaultQueue, q, err)
	}

	r = run(t, append([]string{"cancel", id, "--json"}, e.flags...)...)
	if v := lastJSON[cli.ActionView](t, r); r.code != 0 || v.Status != jobs.StatusCanceled || v.Action != "cancel" {
		t.Fatalf("cancel: exit %d, %+v: %s", r.code, v, r.stderr)
	}
	job, err = e.store.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if job.Status != jobs.StatusCanceled || job.Progress.Done >= job.Progress.Total {
		t.Fatalf("after cancel: %s with %d/%d done, want CANCELED mid-job", job.Status, job.Progress.Done, job.Progress.Total)
	}
	// Cancel deleted every queued task of the job; only tasks that were running
	// (at most 3 workers x 4) may come back as retries, which drop the item.
	count := func(list func(string, ...asynq.ListOption) ([]*asynq.TaskInfo, error)) int {
		tasks, err := list(jobs.DefaultQueue)
		if err != nil {
			t.Fatal(err)
		}
		return len(tasks)
	}
	if p, s, r := count(insp.ListPendingTasks), count(insp.ListScheduledTasks), count(insp.ListRetryTasks); p != 0 || s != 0 || r > 12 {
		t.Fatalf("after cancel: %d pending, %d scheduled, %d retry tasks in queue %s; want 0, 0 and at most 12 (%d items)", p, s, r, jobs.DefaultQueue, job.Progress.Total)
	}
	w := run(t, append([]string{"status", id, "--watch", "--json"}, e.flags...)...)
	if v := lastJSON[cli.JobView](t, w); w.code != 1 || v.Status != jobs.StatusCanceled || !strings.Contains(w.stderr, "job "+id+" was canceled") {
		t.Fatalf("status --watch of a canceled job: exit %d, %+v, stderr %q", w.code, v, w.stderr)
	}
}

// TestEstimateThenRestartPartial: estimate waits for the analysis and prints the
// cost; the job is driven to PARTIAL (two items failed for good), and restart
// re-queues exactly those two, which the workers then finish: DONE.
func TestEstimateThenRestartPartial(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sentineltest.Config{Policies: simPolicies(fastPolicies)})
	e.startWorkers(t, 3, fastPolicies)
	out := t.TempDir()
	ctx := context.Background()

	r := run(t, append(append(jobArgs("estimate", out), "--poll-interval", "100ms",
		"--policy", "requests:60:PT1M", "--policy", "pu:1:PT1M"), e.flags...)...)
	if r.code != 0 {
		t.Fatalf("estimate: exit %d: %s", r.code, r.stderr)
	}
	est := lastJSON[cli.EstimateView](t, r)
	if est.Status != jobs.StatusAnalysisDone || est.Items == 0 || est.ProcessRequests != est.Items || est.CatalogRequests == 0 ||
		est.EstimatedPU <= 0 || est.DurationSeconds <= 0 || len(est.Policies) != 2 {
		t.Fatalf("estimate printed %+v", est)
	}
	// At 1 PU per minute the PU policy binds unless the job is tiny.
	reqTime := float64(est.ProcessRequests)
	puTime := est.EstimatedPU * 60
	if want := max(reqTime, puTime); est.DurationSeconds < want*0.99 || est.DurationSeconds > want*1.01 {
		t.Fatalf("estimate duration %.1fs, want %.1fs (requests %.1fs, PU %.1fs)", est.DurationSeconds, want, reqTime, puTime)
	}

	// Process every item by hand, two of them failing for good: PARTIAL. The
	// job is paused first, so the workers' feeder leaves its items alone (the
	// end of the job clears the pause).
	if err := e.store.Pause(ctx, est.ID, "processed by the test", time.Time{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.Start(ctx, est.ID); err != nil {
		t.Fatal(err)
	}
	items, err := jobs.CollectItems(e.store.AllItems(ctx, est.ID, jobs.ItemPending))
	if err != nil {
		t.Fatal(err)
	}

	var outcome jobs.Outcome
	for i, it := range items {
		if ok, err := e.store.BeginItem(ctx, est.ID, it.ID); err != nil || !ok {
			t.Fatalf("begin %s: %v %v", it.ID, ok, err)
		}
		if i < 2 {
			outcome, err = e.store.FailItem(ctx, est.ID, it.ID, "HTTP 400: simulated bad request", true)
		} else {
			outcome, err = e.store.CompleteItem(ctx, est.ID, it.ID, jobs.Result{PU: 0.1})
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if outcome.Finished != jobs.StatusPartial {
		t.Fatalf("job finished %q, want PARTIAL", outcome.Finished)
	}
	// The worker would write the manifest and then end the job: do the end here.
	if _, err := e.store.Finish(ctx, est.ID); err != nil {
		t.Fatal(err)
	}
	s := run(t, append([]string{"status", est.ID, "--json"}, e.flags...)...)
	if v := lastJSON[cli.JobView](t, s); s.code != 0 || v.Status != jobs.StatusPartial || v.Failed != 2 {
		t.Fatalf("status of the PARTIAL job: exit %d, %+v", s.code, v)
	}
	s = run(t, append([]string{"status", est.ID}, e.flags...)...)
	if s.code != 0 || !strings.Contains(s.stdout, ": PARTIAL") || !strings.Contains(s.stdout, "`enqueue restart "+est.ID+"` re-queues its 2 failed items") {
		t.Fatalf("status of the PARTIAL job: exit %d: %s", s.code, s.stdout)
	}

	r = run(t, append([]string{"restart", est.ID, "--json"}, e.flags...)...)
	if v := lastJSON[cli.ActionView](t, r); r.code != 0 || v.Requeued != 2 || v.Status != jobs.StatusProcessing {
		t.Fatalf("restart: exit %d, %+v: %s", r.code, v, r.stderr)
	}
	w := run(t, append([]string{"status", est.ID, "--watch", "--json", "--poll-interval", "100ms"}, e.flags...)...)
	final := lastJSON[cli.JobView](t, w)
	if w.code != 0 || final.Status != jobs.StatusDone || final.Done != final.Total || final.Total != est.Items || final.Restarts != 1 {
		t.Fatalf("after restart: exit %d, %+v: %s", w.code, final, w.stderr)
	}
	if st := e.sim.Stats(); st.ProcessRequests != 2 {
		t.Fatalf("simulator saw %d process requests, want 2 (only the failed items re-run)", st.ProcessRequests)
	}
	if files := outputFiles(t, out); len(files) != 2 {
		t.Fatalf("%d output files, want 2: %v", len(files), files)
	}

	// estimate for people: a spinner on stderr, the cost on stdout.
	args := jobArgs("estimate", t.TempDir())
	args = append(args[:len(args)-1], "--poll-interval", "100ms", "--policy", "requests:60:PT1M", "--policy", "pu:1:PT1M")
	h := run(t, append(args, e.flags...)...)
	for _, want := range []string{": ANALYSIS_DONE", "process requests   " + strconv.Itoa(est.Items), "PU (estimate)", "at pu:1:PT1M", "enqueue start "} {
		if h.code != 0 || !strings.Contains(h.stdout, want) {
			t.Fatalf("estimate: exit %d, stdout lacks %q:\n%s\nstderr: %q", h.code, want, h.stdout, h.stderr)
		}
	}
}

// TestEstimateUsesTheAccountsPolicies: with no --policy and no SH_POLICIES, the
// worker reads the account's published contract (the simulator's 600 requests
// and 300 PU per minute, and its 5000 PU month as PT744H), and estimate shows
// those policies and where they came from, not the trial's 10/10.
func TestEstimateUsesTheAccountsPolicies(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sentineltest.Config{MonthlyPU: 5000, Policies: []sentineltest.Policy{
		{Kind: sentineltest.KindRequests, Capacity: 600, Period: time.Minute},
		{Kind: sentineltest.KindPU, Capacity: 300, Period: time.Minute},
	}})
	e.startWorkers(t, 1, nil)
	r := run(t, append(append(jobArgs("estimate", t.TempDir()), "--poll-interval", "100ms"), e.flags...)...)
	if r.code != 0 {
		t.Fatalf("estimate: exit %d: %s", r.code, r.stderr)
	}
	est := lastJSON[cli.EstimateView](t, r)
	got := strings.Join(est.Policies, ",")
	// The month is a budget, not a rate: named in the source, left out of the
	// policies that give the duration.
	if !strings.HasPrefix(est.PolicySource, "account (requests:600:PT1M, pu:300:PT1M, pu:5000:PT744H)") ||
		got != "requests:600:PT1M,pu:300:PT1M" {
		t.Fatalf("estimate policies %q from %q; want the account's contract", got, est.PolicySource)
	}
	if st := e.sim.Stats(); st.AuxRequests == 0 {
		t.Fatalf("the simulator's rate-limit endpoints were never asked")
	}
}
