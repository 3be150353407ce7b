//go:build chaos

package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"shfleet/config"
	"shfleet/grid"
	"shfleet/internal/fleettest"
	"shfleet/jobs"
	"shfleet/output"
	"shfleet/quota"
	"shfleet/sentinel/sentineltest"
	"shfleet/tasks"
)

// Binaries built once by TestMain. The enqueue CLI is optional: when it does
// not build, enqueueErr says why and the scenarios use tasks.Controller, saying
// so in their output.
var (
	workerBin  string
	shsimBin   string
	enqueueBin string
	enqueueErr error
)

// Account settings shared by the simulator and the workers.
const (
	clientID     = sentineltest.DefaultClientID
	clientSecret = sentineltest.DefaultClientSecret
)

// generousPolicies are the account's limits in most scenarios: generous enough
// that the scenario, not the quota, sets the pace, but present so the limiter is
// exercised on every request.
var generousPolicies = []string{"requests:3000:PT1M", "pu:3000:PT1M"}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "chaos-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(1)
	}
	workerBin = filepath.Join(dir, "worker")
	shsimBin = filepath.Join(dir, "shsim")
	// CHAOS_RACE=1 builds the worker and the simulator with the race detector
	// (slower; every scenario then also fails on a reported data race).
	build := []string{"build"}
	if os.Getenv("CHAOS_RACE") != "" {
		build = append(build, "-race")
	}
	for bin, pkg := range map[string]string{workerBin: "shfleet/cmd/worker", shsimBin: "shfleet/cmd/shsim"} {
		cmd := exec.Command("go", append(build, "-o", bin, pkg)...)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "chaos: go build %s: %v\n", pkg, err)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	enqueueBin = filepath.Join(dir, "enqueue")
	if out, err := exec.Command("go", "build", "-o", enqueueBin, "shfleet/cmd/enqueue").CombinedOutput(); err != nil {
		enqueueErr = fmt.Errorf("go build ./cmd/enqueue: %v: %s", err, out)
		enqueueBin = ""
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// logDir makes a directory for a scenario's process logs. It is kept after the
// test (it is named in the output) so a failure can be investigated.
func logDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "chaos-"+strings.ReplaceAll(t.Name(), "/", "_")+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("process logs in %s", dir)
	return dir
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// proc is one child process whose stdout and stderr go to a file.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
	// stopped is set when the test itself killed or terminated the process.
	stopped bool
}

func startProc(t *testing.T, dir, name string, env []string, bin string, args ...string) *proc {
	t.Helper()
	logf, err := os.OpenFile(filepath.Join(dir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// The children die with the test process, even when it is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	t.Cleanup(func() { p.kill() })
	return p
}

func (p *proc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *proc) kill() {
	p.stopped = true
	if p.running() {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
	}
	<-p.done
}

// terminate sends SIGTERM and waits up to timeout for the process to exit.
func (p *proc) terminate(t *testing.T, timeout time.Duration) {
	t.Helper()
	p.stopped = true
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(timeout):
		t.Fatalf("%s did not exit within %s of SIGTERM", p.name, timeout)
	}
}

// sim is the simulator process. Restart keeps the totals of earlier instances so
// duplicates and token counts span the whole scenario.
type sim struct {
	t        *testing.T
	policies []string
	dir      string
	addr     string
	p        *proc
	starts   int
	prior    []sentineltest.Stats
}

func startSim(t *testing.T, dir string, policies []string, args ...string) *sim {
	t.Helper()
	s := &sim{t: t, dir: dir, addr: freeAddr(t), policies: policies}
	s.start(args...)
	return s
}

func (s *sim) start(args ...string) {
	s.t.Helper()
	s.starts++
	full := append([]string{"-addr", s.addr, "-client-id", clientID, "-client-secret", clientSecret}, args...)
	for _, p := range s.policies {
		full = append(full, "-policy", p)
	}
	s.p = startProc(s.t, s.dir, fmt.Sprintf("shsim-%d", s.starts), nil, shsimBin, full...)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := s.fetch(); err == nil {
			return
		}
		if time.Now().After(deadline) || !s.p.running() {
			s.t.Fatalf("shsim on %s did not come up; see %s", s.addr, s.dir)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Restart stops the simulator (after taking its final stats) and starts it on
// the same address with new flags.
func (s *sim) Restart(args ...string) {
	s.t.Helper()
	s.prior = append(s.prior, s.Stats())
	s.p.kill()
	s.start(args...)
}

// BaseURL is the simulator's API root.
func (s *sim) BaseURL() string { return "http://" + s.addr }

func (s *sim) fetch() (sentineltest.Stats, error) {
	var st sentineltest.Stats
	resp, err := http.Get(s.BaseURL() + "/shsim/stats")
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("GET /shsim/stats: %s", resp.Status)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// Stats are the current instance's counters.
func (s *sim) Stats() sentineltest.Stats {
	s.t.Helper()
	st, err := s.fetch()
	if err != nil {
		s.t.Fatalf("simulator stats: %v", err)
	}
	return st
}

// Totals sums the counters that matter here over every instance so far.
func (s *sim) Totals() sentineltest.Stats {
	s.t.Helper()
	all := append(append([]sentineltest.Stats(nil), s.prior...), s.Stats())
	tot := sentineltest.Stats{Served: map[string]int{}}
	for _, st := range all {
		tot.ProcessRequests += st.ProcessRequests
		tot.CatalogRequests += st.CatalogRequests
		tot.RateLimited += st.RateLimited
		tot.TokensIssued += st.TokensIssued
		tot.TokenRequests += st.TokenRequests
		tot.Unauthorized += st.Unauthorized
		tot.QuotaExceeded += st.QuotaExceeded
		tot.Faults5xx += st.Faults5xx
		tot.Truncated += st.Truncated
		tot.PUSpent += st.PUSpent
		for k, n := range st.Served {
			tot.Served[k] += n
		}
	}
	return tot
}

// fleet is a scenario's processes: the simulator, the worker processes and a
// controller in the test process on the same Redis.
type fleet struct {
	t        *testing.T
	dir      string
	redisURL string
	sim      *sim
	workers  []*proc
	started  int
	rdb      redis.UniversalClient
	store    *jobs.Store
	ctl      tasks.Controller
	insp     *asynq.Inspector
	// policies are the account's limits, known to the simulator and the workers.
	policies []string
	// workerArgs are extra flags for every worker.
	workerArgs []string
}

// newFleet starts the simulator (generousPolicies and simArgs) for a fleet on
// redisURL; workers start with startWorker.
func newFleet(t *testing.T, redisURL string, simArgs ...string) *fleet {
	t.Helper()
	return newFleetPolicies(t, redisURL, generousPolicies, simArgs...)
}

// newFleetPolicies is newFleet with other account policies.
func newFleetPolicies(t *testing.T, redisURL string, policies []string, simArgs ...string) *fleet {
	t.Helper()
	dir := logDir(t)
	f := &fleet{t: t, dir: dir, redisURL: redisURL, policies: policies, sim: startSim(t, dir, policies, simArgs...)}
	rdb, _, err := config.Redis(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	f.rdb = rdb
	f.store = &jobs.Store{Redis: rdb}
	f.insp = asynq.NewInspectorFromRedisClient(rdb)
	f.ctl = tasks.Controller{Jobs: f.store, Queue: asynq.NewClientFromRedisClient(rdb), Inspector: f.insp}
	return f
}

// startWorker starts one more worker process (extra flags after the fleet's).
func (f *fleet) startWorker(extra ...string) *proc {
	f.t.Helper()
	f.started++
	env := f.env()
	args := []string{"--concurrency", "4", "--log-format", "json", "--shutdown-timeout", "5s"}
	for _, p := range f.policies {
		args = append(args, "--policy", p)
	}
	args = append(append(args, f.workerArgs...), extra...)
	p := startProc(f.t, f.dir, fmt.Sprintf("worker-%d", f.started), env, workerBin, args...)
	f.workers = append(f.workers, p)
	return p
}

// env is the environment of the fleet's processes.
func (f *fleet) env() []string {
	return []string{"REDIS_URL=" + f.redisURL, "SH_CLIENT_ID=" + clientID, "SH_CLIENT_SECRET=" + clientSecret,
		"SH_BASE_URL=" + f.sim.BaseURL(), "SH_TOKEN_URL=" + f.sim.BaseURL() + sentineltest.TokenPath,
		"SH_POLICIES=" + strings.Join(f.policies, ",")}
}

// enqueue runs the enqueue CLI as an operator would (e.g. "cancel", id) and
// reports whether it could: false when the CLI did not build (the caller then
// uses tasks.Controller). A failing command fails the test.
func (f *fleet) enqueue(args ...string) bool {
	f.t.Helper()
	if enqueueBin == "" {
		f.t.Logf("enqueue CLI unavailable, using tasks.Controller instead: %v", enqueueErr)
		return false
	}
	cmd := exec.Command(enqueueBin, args...)
	cmd.Env = append(os.Environ(), f.env()...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		f.t.Fatalf("enqueue %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	f.t.Logf("enqueue %s: %s", strings.Join(args, " "), strings.TrimSpace(string(out)))
	return true
}

// limiter is a quota limiter on the fleet's Redis, as an operator's tool would
// build one (for ResumeMonth).
func (f *fleet) limiter() *quota.Limiter {
	f.t.Helper()
	pols, err := quota.ParsePolicies(f.policies)
	if err != nil {
		f.t.Fatal(err)
	}
	l, err := quota.NewLimiter(quota.Config{Redis: f.rdb, Account: clientID, Policies: pols})
	if err != nil {
		f.t.Fatal(err)
	}
	return l
}

func (f *fleet) job(id string) jobs.Job {
	f.t.Helper()
	job, err := f.store.Get(context.Background(), id)
	if err != nil {
		f.t.Fatalf("get job %s: %v", id, err)
	}
	return job
}

// waitJob polls the job until cond holds, failing after timeout.
func (f *fleet) waitJob(id string, timeout time.Duration, what string, cond func(jobs.Job) bool) jobs.Job {
	f.t.Helper()
	deadline := time.Now().Add(timeout)
	last := time.Now()
	for {
		job := f.job(id)
		if cond(job) {
			return job
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("job %s: %s did not happen within %s: %s %+v (logs: %s)\nworker errors:\n%s", id, what, timeout, job.Status, job.Progress, f.dir, f.logErrors(20))
		}
		if time.Since(last) > 15*time.Second {
			last = time.Now()
			f.t.Logf("waiting for %s: %s %+v", what, job.Status, job.Progress)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// logErrors returns up to n distinct error lines of the worker logs (error
// level, or not JSON at all: a crash or a flag error).
func (f *fleet) logErrors(n int) string {
	files, _ := filepath.Glob(filepath.Join(f.dir, "worker-*.log"))
	seen := map[string]bool{}
	var out []string
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if line == "" || (strings.HasPrefix(line, "{") && !strings.Contains(line, `"level":"error"`) && !strings.Contains(line, `"level":"fatal"`)) {
				continue
			}
			// Dedupe on the message, not the timestamp.
			key := line
			if i := strings.Index(line, `"message":`); i >= 0 {
				key = line[i:]
			}
			if !seen[key] && len(out) < n {
				seen[key] = true
				out = append(out, filepath.Base(name)+": "+line)
			}
		}
	}
	return strings.Join(out, "\n")
}

func (f *fleet) waitFinal(id string, timeout time.Duration) jobs.Job {
	f.t.Helper()
	return f.waitJob(id, timeout, "a final status", func(j jobs.Job) bool { return j.Status.Final() })
}

// area is a lon/lat box.
type area struct{ minLon, minLat, maxLon, maxLat float64 }

// Areas: big gives 500+ items over two months, small ~100 items over one.
var (
	bigArea   = area{14.2, 45.7, 14.8, 46.3}
	smallArea = area{14.35, 45.9, 14.65, 46.1}
)

// Job periods.
var (
	june = time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	july = time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC)
	aug  = time.Date(2025, 8, 1, 0, 0, 0, 0, time.UTC)
)

// jobSpec builds the spec and tiles of a job over a on utm-10km at 60 m (small
// PU per item), acquisitions from..to, outputs under outDir.
func jobSpec(t *testing.T, a area, from, to time.Time, outDir string) (jobs.Spec, []grid.Tile) {
	t.Helper()
	gj := fmt.Sprintf(`{"type":"Feature","properties":{"name":"chaos"},"geometry":{"type":"Polygon","coordinates":[[[%g,%g],[%g,%g],[%g,%g],[%g,%g],[%g,%g]]]}}`,
		a.minLon, a.minLat, a.maxLon, a.minLat, a.maxLon, a.maxLat, a.minLon, a.maxLat, a.minLon, a.minLat)
	aois, err := grid.ParseGeoJSON("chaos.geojson", strings.NewReader(gj), grid.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	g, err := grid.ParseGrid("utm-10km")
	if err != nil {
		t.Fatal(err)
	}
	tiles, err := grid.Split(aois, g, grid.SplitOptions{Resolution: 60})
	if err != nil {
		t.Fatal(err)
	}
	script, err := os.ReadFile("../examples/evalscript-truecolor.js")
	if err != nil {
		t.Fatal(err)
	}
	return jobs.Spec{Grid: "utm-10km", Resolution: 60, Collection: "sentinel-2-l2a", Evalscript: string(script),
		From: from, To: to, OutputURL: "file://" + outDir, AutoStart: true}, tiles
}

// verdict is what verify found.
type verdict struct {
	Status                                jobs.Status
	Items, Done, Failed, Missing, Left    int
	Extra, Temp, Duplicates, RateLimited  int
	Tokens, Returns                       int
	Elapsed                               time.Duration
	TempFiles, ExtraFiles, DuplicateKeys  []string
	FailedErrors, ReturnedItems           []string
	ProcessRequests, Truncated, Faults5xx int
	QuotaExceeded                         int
	// Manifest counts the manifest's entries for DONE items; -1: no manifest.
	Manifest int
}

func (v verdict) String() string {
	return fmt.Sprintf("status=%s items=%d done=%d failed=%d missing=%d duplicates=%d 429s=%d tokens=%d elapsed=%s returns=%d",
		v.Status, v.Items, v.Done, v.Failed, v.Missing, v.Duplicates, v.RateLimited, v.Tokens, v.Elapsed.Round(time.Second), v.Returns)
}

// verify checks a finished job against the output directory and the simulator,
// prints the VERDICT line and returns the findings; the caller asserts what its
// scenario requires. It fails the test only when a stored output is wrong
// (differs from what the simulator serves for the item's request): that is
// never acceptable.
func (f *fleet) verify(name string, job jobs.Job, tiles []grid.Tile, outDir string, start time.Time) verdict {
	f.t.Helper()
	ctx := context.Background()
	v := verdict{Status: job.Status, Items: job.Progress.Total, Elapsed: time.Since(start)}
	// A job that ended by its items reads final only once its end files
	// (manifest, STAC, VRTs) are written. A canceled job has none.
	if job.Status != jobs.StatusCanceled && job.Progress.Total > 0 {
		catalog := filepath.Join(outDir, filepath.FromSlash(tasks.STACDir(job.ID)), "catalog.json")
		if _, err := os.Stat(catalog); err != nil {
			f.t.Errorf("job %s is %s without its STAC catalog: %v (logs: %s)", job.ID, job.Status, err, f.dir)
		}
	}
	byTile := map[string]grid.Tile{}
	for _, tl := range tiles {
		byTile[tl.Name] = tl
	}
	want := map[string]bool{} // output keys of DONE items
	counted := 0
	recs := map[string][]jobs.OutputRecord{}
	for r, rec := range fleettest.Records(f.t, f.store, job.ID) {
		recs[r] = rec.Outputs
	}
	for _, st := range jobs.ItemStatuses {
		items, err := jobs.CollectItems(f.store.AllItems(ctx, job.ID, st))
		if err != nil {
			f.t.Fatal(err)
		}
		counted += len(items)
		for _, it := range items {
			v.Returns += it.Returns
			if it.Returns > 0 {
				v.ReturnedItems = append(v.ReturnedItems, fmt.Sprintf("%s (%s, returns %d, attempts %d, last error %q)", it.ID, it.Status, it.Returns, it.Attempts, it.LastError))
			}
			switch st {
			case jobs.ItemDone:
				v.Done++
				if len(recs[it.ID]) != 1 {
					f.t.Errorf("item %s: %d outputs recorded, want 1", it.ID, len(recs[it.ID]))
					v.Missing++
					continue
				}
				key := recs[it.ID][0].Key
				want[key] = true
				got, err := os.ReadFile(filepath.Join(outDir, filepath.FromSlash(key)))
				if err != nil {
					v.Missing++
					f.t.Errorf("item %s DONE but its output %s is missing: %v", it.ID, key, err)
					continue
				}
				exp := sentineltest.ProcessBody(tasks.BuildProcessRequest(job.Spec, byTile[it.Tile], it), "default")
				if !bytes.Equal(got, exp) {
					f.t.Errorf("item %s: stored %s (%d bytes) differs from the simulator's %d bytes: a truncated or foreign file was stored as DONE",
						it.ID, key, len(got), len(exp))
				}
			case jobs.ItemFailed:
				v.Failed++
				v.FailedErrors = append(v.FailedErrors, it.ID+": "+it.LastError)
			default:
				v.Left++
			}
		}
	}
	if counted != job.Progress.Total {
		f.t.Errorf("job counts %d items but %d are stored: items lost", job.Progress.Total, counted)
	}
	_ = filepath.WalkDir(outDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(outDir, p)
		rel = filepath.ToSlash(rel)
		switch {
		case strings.HasSuffix(rel, ".tmp") || strings.HasSuffix(rel, output.TempSuffix):
			v.TempFiles = append(v.TempFiles, rel)
		case rel == tasks.ManifestKey(job.ID) || strings.HasPrefix(rel, job.ID+"/manifest/part-") || strings.HasPrefix(rel, tasks.STACDir(job.ID)+"/") || strings.HasSuffix(rel, ".vrt"):
		case !want[rel]:
			v.ExtraFiles = append(v.ExtraFiles, rel)
		}
		return nil
	})
	v.Temp, v.Extra = len(v.TempFiles), len(v.ExtraFiles)
	// The manifest, written by the worker that finished the job.
	v.Manifest = -1
	if _, err := os.Stat(filepath.Join(outDir, tasks.ManifestKey(job.ID))); err == nil {
		v.Manifest = 0
		if out, err := output.Open(ctx, "file://"+outDir); err == nil {
			for e, err := range output.ManifestEntries(ctx, out, tasks.ManifestKey(job.ID)) {
				if err != nil {
					f.t.Errorf("manifest of job %s: %v", job.ID, err)
					break
				}
				if want[e.Key] {
					v.Manifest++
				}
			}
			out.Close()
		}
	}
	st := f.sim.Totals()
	for k, n := range st.Served {
		if n > 1 {
			v.Duplicates += n - 1
			v.DuplicateKeys = append(v.DuplicateKeys, fmt.Sprintf("%s x%d", k, n))
		}
	}
	sort.Strings(v.DuplicateKeys)
	v.RateLimited, v.Tokens = st.RateLimited, st.TokensIssued
	v.ProcessRequests, v.Truncated, v.Faults5xx, v.QuotaExceeded = st.ProcessRequests, st.Truncated, st.Faults5xx, st.QuotaExceeded
	fmt.Printf("VERDICT %s: %s\n", name, v)
	f.t.Logf("details: returns=%d left=%d extra-files=%d temp-files=%d process-requests=%d catalog=%d 503s=%d truncated=%d 403s=%d 401s=%d PU=%.2f",
		v.Returns, v.Left, v.Extra, v.Temp, st.ProcessRequests, st.CatalogRequests, st.Faults5xx, st.Truncated, st.QuotaExceeded, st.Unauthorized, st.PUSpent)
	if len(v.DuplicateKeys) > 0 {
		f.t.Logf("re-downloaded requests: %s", firstOf(v.DuplicateKeys, 5))
	}
	if len(v.ReturnedItems) > 0 {
		f.t.Logf("items returned to PENDING as stuck: %s", firstOf(v.ReturnedItems, 5))
	}
	if len(v.FailedErrors) > 0 {
		f.t.Logf("failed items: %s", firstOf(v.FailedErrors, 10))
	}
	for _, w := range f.workers {
		if !w.stopped && !w.running() {
			f.t.Errorf("%s exited on its own: %v; see %s", w.name, w.err, f.dir)
		}
	}
	if races := f.grepLogs("WARNING: DATA RACE"); races != "" {
		f.t.Errorf("the race detector reported data races:\n%s", races)
	}
	return v
}

// assertClean asserts what every scenario that ends DONE must show: DONE, every
// item DONE with its output, no stray or temporary file.
func (f *fleet) assertClean(v verdict) {
	f.t.Helper()
	if v.Status != jobs.StatusDone || v.Done != v.Items || v.Failed != 0 || v.Left != 0 {
		f.t.Errorf("job ended %s with %d/%d items DONE, %d FAILED, %d unfinished; want DONE with every item", v.Status, v.Done, v.Items, v.Failed, v.Left)
	}
	if v.Missing != 0 {
		f.t.Errorf("%d DONE items have no output file", v.Missing)
	}
	if v.Temp != 0 {
		f.t.Errorf("%d temporary files left in the output directory: %v", v.Temp, v.TempFiles)
	}
	if v.Extra != 0 {
		f.t.Errorf("%d output files belong to no DONE item: %v", v.Extra, v.ExtraFiles)
	}
	if v.Manifest != v.Done {
		f.t.Errorf("the job manifest lists %d of the %d DONE items' outputs (-1: no manifest)", v.Manifest, v.Done)
	}
}

// firstOf prints at most n entries of list and how many more there are.
func firstOf(list []string, n int) string {
	if len(list) <= n {
		return strings.Join(list, "; ")
	}
	return fmt.Sprintf("%s; ... and %d more", strings.Join(list[:n], "; "), len(list)-n)
}

// grepLogs returns the lines of every process log containing s.
func (f *fleet) grepLogs(s string) string {
	files, _ := filepath.Glob(filepath.Join(f.dir, "*.log"))
	var out []string
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if strings.Contains(line, s) {
				out = append(out, filepath.Base(name)+": "+line)
			}
		}
	}
	return strings.Join(out, "\n")
}
