package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hibiken/asynq"
	"github.com/paulmach/orb"
	"github.com/redis/go-redis/v9"

	"shfleet/grid"
	"shfleet/jobs"
	"shfleet/quota"
	"shfleet/redisserver"
	"shfleet/sentinel/sentineltest"
	"shfleet/tasks"
)

// Defaults of FleetOptions fields left zero.
const (
	// DefaultFleetWorkers is the number of worker processes.
	DefaultFleetWorkers = 4
	// DefaultFleetConcurrency is each worker's --concurrency.
	DefaultFleetConcurrency = 16
	// DefaultFleetLatency and DefaultFleetJitter are the simulator's latency.
	DefaultFleetLatency = 30 * time.Millisecond
	DefaultFleetJitter  = 20 * time.Millisecond
	// DefaultFleetTimeout bounds one row.
	DefaultFleetTimeout = 30 * time.Minute
	// fleetPoll is how often the simulator's counters are read.
	fleetPoll = 100 * time.Millisecond
)

// DefaultFleetAOI is a 1° x 0.8° box around Ljubljana (14-15°E, 45.6-46.4°N): 80
// utm-10km tiles, 1128 items over DefaultFleetFrom..DefaultFleetTo in the
// simulator's world.
var DefaultFleetAOI = [4]float64{14.0, 45.6, 15.0, 46.4}

// DefaultFleetFrom and DefaultFleetTo are the job's two months.
var (
	DefaultFleetFrom = time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	DefaultFleetTo   = time.Date(2025, 8, 1, 0, 0, 0, 0, time.UTC)
)

const (
	// evalRGB8 is 3 input bands, 3 UINT8 output bands: a 167x167 px tile (60 m
	// on utm-10km) costs 0.106 PU.
	evalRGB8 = `//VERSION=3
function setup() { return { input: ["B02", "B03", "B04"], output: { bands: 3, sampleType: "UINT8" } }; }
function evaluatePixel(s) { return [2.5 * s.B04, 2.5 * s.B03, 2.5 * s.B02]; }`
	// evalFour8 is 4 input bands, 4 UINT8 output bands: a 500x500 px tile (20 m
	// on utm-10km) costs 500²/512² x 4/3 = 1.27 PU.
	evalFour8 = `//VERSION=3
function setup() { return { input: ["B02", "B03", "B04", "B08"], output: { bands: 4, sampleType: "UINT8" } }; }
function evaluatePixel(s) { return [2.5 * s.B04, 2.5 * s.B03, 2.5 * s.B02, 2.5 * s.B08]; }`
)

// FleetScenario is an account and a workload of the fleet benchmark.
type FleetScenario struct {
	// Name selects the scenario on the command line.
	Name string
	// Policies are the simulator's account (its published contract); the workers
	// read them from the contract, or get them as --policy with
	// FleetOptions.Configured.
	Policies []string
	// Resolution (m, utm-10km) and Evalscript make each item's PU cost.
	Resolution float64
	Evalscript string
	// Binding is the policy expected to bind (index into Policies).
	Binding int
}

// FleetScenarios are the fleet benchmark's rows.
func FleetScenarios() []FleetScenario {
	return []FleetScenario{
		{Name: "requests", Policies: []string{"requests:600:PT1M", "pu:100000:PT1M"}, Resolution: 60, Evalscript: evalRGB8, Binding: 0},
		{Name: "pu", Policies: []string{"requests:6000:PT1M", "pu:300:PT1M"}, Resolution: 20, Evalscript: evalFour8, Binding: 1},
	}
}

// FleetOptions configure RunFleet. The zero value runs every scenario with the
// defaults.
type FleetOptions struct {
	// Scenarios by name; default all.
	Scenarios []string
	// Workers is the number of worker processes; Concurrency each one's
	// --concurrency. Defaults DefaultFleetWorkers, DefaultFleetConcurrency.
	Workers, Concurrency int
	// Latency and Jitter of the simulator. Defaults DefaultFleetLatency,
	// DefaultFleetJitter; negative means none.
	Latency, Jitter time.Duration
	// AOI is the job's lon/lat box; default DefaultFleetAOI.
	AOI [4]float64
	// From and To are the job's time range; default DefaultFleetFrom..DefaultFleetTo.
	From, To time.Time
	// Timeout bounds one row; default DefaultFleetTimeout.
	Timeout time.Duration
	// BinDir holds prebuilt worker and shsim binaries; default: built into a
	// temporary directory.
	BinDir string
	// Headers is shsim's -headers: "retry-after" (today's service), "legacy" (the
	// 2019 headers) or "none". Default DefaultFleetHeaders.
	Headers string
	// Configured gives every worker the scenario's policies as --policy (the
	// override, SH_POLICIES); default false: the workers read the account's
	// contract from the simulator and resync with its remaining units.
	Configured bool
}

// DefaultFleetHeaders is the simulator's header mode of the fleet benchmark:
// today's service.
const DefaultFleetHeaders = "retry-after"

func (o FleetOptions) withDefaults() FleetOptions {
	if o.Workers <= 0 {
		o.Workers = DefaultFleetWorkers
	}
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultFleetConcurrency
	}
	o.Latency = orDefault(o.Latency, DefaultFleetLatency)
	o.Jitter = orDefault(o.Jitter, DefaultFleetJitter)
	if o.AOI == ([4]float64{}) {
		o.AOI = DefaultFleetAOI
	}
	if o.From.IsZero() {
		o.From = DefaultFleetFrom
	}
	if o.To.IsZero() {
		o.To = DefaultFleetTo
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultFleetTimeout
	}
	if o.Headers == "" {
		o.Headers = DefaultFleetHeaders
	}
	return o
}

// FleetResult is one row of the fleet table.
type FleetResult struct {
	Scenario             string
	Binding              quota.Policy
	Workers, Concurrency int
	Tiles, Items         int
	// Status is the job's final status; Failed its FAILED items.
	Status jobs.Status
	Failed int
	// CatalogRequests and ProcessOK are the simulator's counts; PU what it charged.
	CatalogRequests, ProcessOK int
	PU                         float64
	// Analysis is the catalog analysis (CreatedAt..AnalysedAt: the workers are
	// running when the job is submitted); Elapsed the processing
	// (StartedAt..FinishedAt).
	Analysis, Elapsed time.Duration
	// Ideal is the processing time at exactly the binding capacity (process units /
	// rate); IdealBucket the same for a client that first empties the server's
	// full bucket (C units at once, catalog requests included) and then runs at the
	// rate.
	Ideal, IdealBucket time.Duration
	// Overall is the binding policy's units served from StartedAt to FinishedAt
	// over that window's capacity (the initial burst included: can exceed 1).
	Overall float64
	// AfterBurst is the same from the moment (1-h)·C units had been served (the
	// limiter's initial burst, h = quota.DefaultHeadroom) to FinishedAt;
	// AfterWindow that window.
	AfterBurst  float64
	AfterWindow time.Duration
	// RateLimited counts the simulator's 429s; TokenRequests its token calls;
	// AuxRequests its rate-limit endpoint calls (contract and remaining units).
	RateLimited, TokenRequests, AuxRequests int
	// Headers and Configured are the row's FleetOptions.
	Headers    string
	Configured bool
	// Sources counts the workers by the policy source each logged at its start
	// ("account policies", source: account, configured or fallback).
	Sources map[string]int
	// Source is where the fleet's policies came from at the end of the job, as a
	// Limiter on the workers' Redis reports it (quota.Limiter.PolicySource): its
	// kind and the enforced policies.
	Source string
}

// RunFleet runs the fleet benchmark and writes its table to stdout.
func RunFleet(ctx context.Context, o FleetOptions, stdout, progress io.Writer) error {
	o = o.withDefaults()
	var scen []FleetScenario
	all := FleetScenarios()
	if len(o.Scenarios) == 0 {
		scen = all
	}
	for _, name := range o.Scenarios {
		i := slices.IndexFunc(all, func(s FleetScenario) bool { return s.Name == strings.TrimSpace(name) })
		if i < 0 {
			return fmt.Errorf("unknown fleet scenario %q; choose from requests, pu", name)
		}
		scen = append(scen, all[i])
	}
	dir, err := os.MkdirTemp("", "shfleet-bench-fleet-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bins, err := prepareBinaries(ctx, o.BinDir, dir, progress)
	if err != nil {
		return err
	}
	var results []FleetResult
	for _, sc := range scen {
		fmt.Fprintf(progress, "%s  fleet %s: %d workers x %d, policies %s ...\n", stamp(), sc.Name, o.Workers, o.Concurrency, strings.Join(sc.Policies, " "))
		res, err := runFleetRow(ctx, o, bins, sc, filepath.Join(dir, sc.Name))
		if err != nil {
			return fmt.Errorf("fleet %s: %w", sc.Name, err)
		}
		fmt.Fprintf(progress, "          %d items in %s, after burst %.1f%% of %s, %d x 429, %d token requests, policies %v at start, %s at end\n",
			res.Items, fmtDur(res.Elapsed), 100*res.AfterBurst, res.Binding, res.RateLimited, res.TokenRequests, res.Sources, res.Source)
		results = append(results, res)
	}
	return WriteFleetTable(stdout, results)
}

func stamp() string { return time.Now().UTC().Format("15:04:05") }

// prepareBinaries uses the binaries in binDir, or builds them into dir.
func prepareBinaries(ctx context.Context, binDir, dir string, progress io.Writer) (binaries, error) {
	if binDir != "" {
		b := binaries{Worker: filepath.Join(binDir, "worker"), Shsim: filepath.Join(binDir, "shsim")}
		for _, p := range []string{b.Worker, b.Shsim} {
			if _, err := os.Stat(p); err != nil {
				return b, fmt.Errorf("-bin-dir: %w; build them with go build -o DIR/ ./cmd/worker ./cmd/shsim", err)
			}
		}
		return b, nil
	}
	fmt.Fprintf(progress, "%s  building cmd/worker and cmd/shsim ...\n", stamp())
	return buildBinaries(ctx, dir)
}

// fleetSample is a reading of the simulator's counters.
type fleetSample struct {
	t     time.Time
	units float64
}

// fleetEnv is a redis-server, the simulator process and worker processes.
type fleetEnv struct {
	redis   *redisserver.Server
	sim     *proc
	base    string
	workers []*proc
	store   *jobs.Store
	ctl     tasks.Controller
	closers []func()
}

// startFleet starts redis-server, shsim with simArgs and n workers with
// workerArgs, logs in dir.
func startFleet(ctx context.Context, dir string, bins binaries, simArgs []string, n int, workerArgs []string) (*fleetEnv, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	e := &fleetEnv{}
	srv, err := redisserver.Start(redisserver.Options{})
	if err != nil {
		return nil, err
	}
	e.redis = srv
	e.closers = append(e.closers, srv.Stop)
	sim, base, err := startShsim(ctx, dir, bins.Shsim, simArgs)
	if err != nil {
		e.close()
		return nil, err
	}
	e.sim, e.base = sim, base
	e.closers = append(e.closers, func() { sim.stop(5 * time.Second) })
	env := append(workerEnv(base, srv.URL()), "TMPDIR="+dir)
	for i := range n {
		// Info: the "account policies" line says where the policies came from.
		w, err := startProc(dir, fmt.Sprintf("worker-%d", i+1), bins.Worker,
			append([]string{"--log-format", "json", "--log-level", "info"}, workerArgs...), env, nil)
		if err != nil {
			e.close()
			return nil, err
		}
		e.workers = append(e.workers, w)
	}
	// Workers stop first (in reverse order of the closers).
	e.closers = append(e.closers, func() {
		var wg sync.WaitGroup
		for _, w := range e.workers {
			wg.Go(func() { w.stop(30 * time.Second) })
		}
		wg.Wait()
	})
	rdb := srv.Client()
	e.closers = append(e.closers, func() { _ = rdb.Close() })
	e.store = &jobs.Store{Redis: rdb}
	e.ctl = tasks.Controller{Jobs: e.store, Queue: asynq.NewClientFromRedisClient(rdb), Inspector: asynq.NewInspectorFromRedisClient(rdb)}
	return e, nil
}

func (e *fleetEnv) close() {
	for i := len(e.closers) - 1; i >= 0; i-- {
		e.closers[i]()
	}
}

// checkWorkers fails when a worker process has exited.
func (e *fleetEnv) checkWorkers() error {
	for _, w := range e.workers {
		if w.exited() {
			return fmt.Errorf("%s exited: %v\n%s", w.name, w.err, w.tail())
		}
	}
	return nil
}

// loggedSources counts the workers by the source of the "account policies" line
// each logged at its start ("none" when a worker logged none).
func (e *fleetEnv) loggedSources() (map[string]int, error) {
	out := map[string]int{}
	for _, w := range e.workers {
		src, err := loggedSource(w.log)
		if err != nil {
			return nil, err
		}
		out[src]++
	}
	return out, nil
}

// loggedSource is the source field of the first "account policies" line of a
// worker's JSON log, "none" when there is none.
func loggedSource(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var line struct {
			Message string `json:"message"`
			Source  string `json:"source"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Message == "account policies" {
			return line.Source, nil
		}
	}
	return "none", sc.Err()
}

// fleetSource asks a Limiter on the workers' Redis (default prefix, the
// simulator's account; it neither fetches nor resyncs) where the fleet's policies
// come from: "account: requests:600:PT1M, pu:100000:PT1M".
func fleetSource(ctx context.Context, srv *redisserver.Server) (string, error) {
	rdb := srv.Client()
	defer rdb.Close()
	lim, err := quota.NewLimiter(quota.Config{Redis: rdb, Account: sentineltest.DefaultClientID})
	if err != nil {
		return "", err
	}
	src, err := lim.PolicySource(ctx)
	if err != nil {
		return "", fmt.Errorf("read the fleet's policy source: %w", err)
	}
	ps := make([]string, len(src.Policies))
	for i, p := range src.Policies {
		ps[i] = p.String()
	}
	return string(src.Kind) + ": " + strings.Join(ps, ", "), nil
}

// fleetSpec is the job of a row: AOI split on utm-10km at res.
func fleetSpec(aoi [4]float64, res float64, eval string, from, to time.Time, outDir string) (jobs.Spec, []grid.Tile, error) {
	g, err := grid.ParseGrid("utm-10km")
	if err != nil {
		return jobs.Spec{}, nil, err
	}
	tiles, err := grid.Split(bboxAOI("bench", aoi), g, grid.SplitOptions{Resolution: res})
	if err != nil {
		return jobs.Spec{}, nil, err
	}
	spec := jobs.Spec{Name: "bench", Grid: g.Name, Resolution: res, Collection: "sentinel-2-l2a", Evalscript: eval,
		From: from, To: to, OutputURL: "file://" + outDir, AutoStart: true}
	return spec, tiles, nil
}

func runFleetRow(ctx context.Context, o FleetOptions, bins binaries, sc FleetScenario, dir string) (FleetResult, error) {
	pols, err := quota.ParsePolicies(sc.Policies)
	if err != nil {
		return FleetResult{}, err
	}
	res := FleetResult{Scenario: sc.Name, Binding: pols[sc.Binding], Workers: o.Workers, Concurrency: o.Concurrency,
		Headers: o.Headers, Configured: o.Configured}
	simArgs := []string{"-latency", o.Latency.String(), "-jitter", o.Jitter.String(), "-headers", o.Headers}
	workerArgs := []string{"--concurrency", strconv.Itoa(o.Concurrency)}
	for _, p := range sc.Policies {
		simArgs = append(simArgs, "-policy", p)
		if o.Configured {
			workerArgs = append(workerArgs, "--policy", p)
		}
	}
	env, err := startFleet(ctx, dir, bins, simArgs, o.Workers, workerArgs)
	if err != nil {
		return res, err
	}
	defer env.close()

	spec, tiles, err := fleetSpec(o.AOI, sc.Resolution, sc.Evalscript, o.From, o.To, filepath.Join(dir, "out"))
	if err != nil {
		return res, err
	}
	res.Tiles = len(tiles)

	// The simulator's counters, read every fleetPoll from before the submit.
	units := func(st sentineltest.Stats) float64 {
		if res.Binding.Kind == quota.PU {
			return st.PUSpent
		}
		return float64(st.RequestsByStatus[200]) // catalog and process answers both cost a request
	}
	var mu sync.Mutex
	var samples []fleetSample
	pollCtx, stopPoll := context.WithCancel(ctx)
	var pollWG sync.WaitGroup
	pollWG.Go(func() {
		for pollCtx.Err() == nil {
			t0 := time.Now()
			st, err := simStats(pollCtx, env.base)
			if err == nil {
				t := t0.Add(time.Since(t0) / 2)
				mu.Lock()
				samples = append(samples, fleetSample{t, units(st)})
				mu.Unlock()
			}
			sleep(pollCtx, fleetPoll)
		}
	})
	defer func() { stopPoll(); pollWG.Wait() }()

	job, err := env.ctl.Submit(ctx, spec, tiles)
	if err != nil {
		return res, fmt.Errorf("submit: %w", err)
	}
	job, err = waitJob(ctx, env.store, job.ID, o.Timeout, func(j jobs.Job) bool {
		return j.Status.Final() || env.checkWorkers() != nil
	})
	if err != nil {
		return res, err
	}
	if err := env.checkWorkers(); err != nil {
		return res, err
	}
	stopPoll()
	pollWG.Wait()
	st, err := simStats(ctx, env.base)
	if err != nil {
		return res, err
	}
	res.Status, res.Items, res.Failed = job.Status, job.Progress.Total, job.Progress.Failed
	res.CatalogRequests, res.PU = st.CatalogRequests, st.PUSpent
	res.ProcessOK = processOK(st)
	res.RateLimited, res.TokenRequests, res.AuxRequests = st.RateLimited, st.TokenRequests, st.AuxRequests
	if res.Sources, err = env.loggedSources(); err != nil {
		return res, err
	}
	if res.Source, err = fleetSource(ctx, env.redis); err != nil {
		return res, err
	}
	res.Analysis = job.AnalysedAt.Sub(job.CreatedAt)
	res.Elapsed = job.FinishedAt.Sub(job.StartedAt)

	c := res.Binding.Capacity
	perSec := c / res.Binding.Period.Seconds()
	total := units(st)
	processUnits := total // PU: only process requests spend PU
	if res.Binding.Kind == quota.Requests {
		processUnits = float64(res.ProcessOK)
	}
	res.Ideal = secs(processUnits / perSec)
	res.IdealBucket = secs(max(0, total-c) / perSec)
	mu.Lock()
	defer mu.Unlock()
	res.Overall = rateBetween(samples, job.StartedAt, job.FinishedAt, total) / perSec
	burst := max(c*(1-quota.DefaultHeadroom), 1)
	if r, from, ok := rateAfter(samples, burst, job.FinishedAt, total); ok {
		res.AfterBurst = r / perSec
		res.AfterWindow = job.FinishedAt.Sub(from)
	}
	return res, nil
}

// processOK is the process requests answered 2xx: the sum of Stats.Served.
func processOK(st sentineltest.Stats) int {
	n := 0
	for _, c := range st.Served {
		n += c
	}
	return n
}

func secs(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// rateBetween is the units per second served from the last sample at or before
// from to end (whose cumulative count is endUnits).
func rateBetween(samples []fleetSample, from, end time.Time, endUnits float64) float64 {
	var u0 float64
	t0 := from
	for _, s := range samples {
		if s.t.After(from) {
			break
		}
		u0, t0 = s.units, s.t
	}
	d := end.Sub(t0).Seconds()
	if d <= 0 {
		return 0
	}
	return (endUnits - u0) / d
}

// rateAfter is the units per second served from the first sample whose
// cumulative count reached burst to end (cumulative endUnits), and that sample's
// time; ok is false when no sample reached burst before end.
func rateAfter(samples []fleetSample, burst float64, end time.Time, endUnits float64) (float64, time.Time, bool) {
	for _, s := range samples {
		if s.units >= burst {
			d := end.Sub(s.t).Seconds()
			if d <= 0 {
				return 0, s.t, false
			}
			return (endUnits - s.units) / d, s.t, true
		}
	}
	return 0, time.Time{}, false
}

// WriteFleetTable writes fleet results as a Markdown table.
func WriteFleetTable(w io.Writer, results []FleetResult) error {
	var b strings.Builder
	b.WriteString("| scenario | headers | worker policies | binding policy | workers x concurrency | tiles | items | status | catalog requests | process requests OK | PU | analysis | elapsed (StartedAt→FinishedAt) | ideal (units / rate) | ideal with full bucket | achieved overall (burst incl.) | achieved after burst (window) | 429s | token requests | rate-limit API calls | source logged at start | source at end |\n")
	b.WriteString("|---|---|---|---|--:|--:|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|---|\n")
	for _, r := range results {
		status := string(r.Status)
		if r.Failed > 0 {
			status += fmt.Sprintf(" (%d failed)", r.Failed)
		}
		after := "–"
		if r.AfterWindow > 0 {
			after = fmt.Sprintf("%.1f%% (%s)", 100*r.AfterBurst, fmtDur(r.AfterWindow))
		}
		policies := "account's contract"
		if r.Configured {
			policies = "--policy"
		}
		var logged []string
		for _, k := range slices.Sorted(maps.Keys(r.Sources)) {
			logged = append(logged, fmt.Sprintf("%s x%d", k, r.Sources[k]))
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %d x %d | %d | %d | %s | %d | %d | %.1f | %s | %s | %s | %s | %.1f%% | %s | %d | %d | %d | %s | %s |\n",
			r.Scenario, r.Headers, policies, r.Binding, r.Workers, r.Concurrency, r.Tiles, r.Items, status, r.CatalogRequests, r.ProcessOK, r.PU,
			fmtDur(r.Analysis), fmtDur(r.Elapsed), fmtDur(r.Ideal), fmtDur(r.IdealBucket), 100*r.Overall, after, r.RateLimited, r.TokenRequests,
			r.AuxRequests, strings.Join(logged, ", "), r.Source)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// parseFleetFlags reads the fleet benchmark's flags.
func parseFleetFlags(args []string, stderr io.Writer) (FleetOptions, error) {
	fs := flag.NewFlagSet("bench fleet", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o FleetOptions
	var scen, aoi, from, to string
	fs.StringVar(&scen, "scenarios", "", "comma-separated scenarios: requests, pu (default both)")
	fs.IntVar(&o.Workers, "workers", DefaultFleetWorkers, "worker processes")
	fs.IntVar(&o.Concurrency, "concurrency", DefaultFleetConcurrency, "each worker's --concurrency")
	fs.DurationVar(&o.Latency, "latency", DefaultFleetLatency, "simulator latency")
	fs.DurationVar(&o.Jitter, "jitter", DefaultFleetJitter, "simulator random extra latency")
	fs.StringVar(&aoi, "aoi", "", "job AOI minlon,minlat,maxlon,maxlat (default 14,45.6,15,46.4)")
	fs.StringVar(&from, "from", DefaultFleetFrom.Format(time.DateOnly), "job time range start (YYYY-MM-DD)")
	fs.StringVar(&to, "to", DefaultFleetTo.Format(time.DateOnly), "job time range end, exclusive (YYYY-MM-DD)")
	fs.DurationVar(&o.Timeout, "timeout", DefaultFleetTimeout, "longest a row may take")
	fs.StringVar(&o.BinDir, "bin-dir", "", "directory with prebuilt worker and shsim binaries (default: go build into a temp dir)")
	fs.StringVar(&o.Headers, "headers", DefaultFleetHeaders, "the simulator's rate-limit headers: retry-after (today's service), legacy (2019) or none")
	fs.BoolVar(&o.Configured, "configured", false, "give every worker the scenario's policies as --policy (default: the workers read the account's contract)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if !slices.Contains([]string{"retry-after", "legacy", "none"}, o.Headers) {
		return o, fmt.Errorf("-headers %q: want retry-after, legacy or none", o.Headers)
	}
	if scen != "" {
		o.Scenarios = strings.Split(scen, ",")
	}
	var err error
	if aoi != "" {
		if o.AOI, err = parseBBox(aoi); err != nil {
			return o, fmt.Errorf("-aoi: %w", err)
		}
	}
	if o.From, err = time.Parse(time.DateOnly, from); err != nil {
		return o, fmt.Errorf("-from %q: want YYYY-MM-DD", from)
	}
	if o.To, err = time.Parse(time.DateOnly, to); err != nil || !o.To.After(o.From) {
		return o, fmt.Errorf("-to %q: want YYYY-MM-DD after -from", to)
	}
	return o, nil
}

// parseBBox reads "minlon,minlat,maxlon,maxlat".
func parseBBox(s string) ([4]float64, error) {
	var b [4]float64
	parts := strings.Split(s, ",")
	if len(parts) != 4 {
		return b, fmt.Errorf("%q: want minlon,minlat,maxlon,maxlat", s)
	}
	for i, p := range parts {
		v, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil {
			return b, fmt.Errorf("%q: %q is not a number", s, p)
		}
		b[i] = v
	}
	if b[2] <= b[0] || b[3] <= b[1] {
		return b, errors.New("max must exceed min")
	}
	return b, nil
}

// The pipeline benchmarks (fleet, analysis, memory) run the real binaries: this
// file builds them and starts, samples and stops the processes.

// binaries are the worker and shsim executables built for one run.
type binaries struct {
	Worker, Shsim string
}

// moduleRoot is the directory of shfleet's go.mod.
func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w; run the benchmark from the shfleet checkout with Go installed", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("not inside the shfleet module: run the benchmark from the checkout (cd to the directory holding go.mod)")
	}
	return filepath.Dir(mod), nil
}

// buildBinaries builds cmd/worker and cmd/shsim into dir with go build.
func buildBinaries(ctx context.Context, dir string) (binaries, error) {
	root, err := moduleRoot(ctx)
	if err != nil {
		return binaries{}, err
	}
	b := binaries{Worker: filepath.Join(dir, "worker"), Shsim: filepath.Join(dir, "shsim")}
	for pkg, out := range map[string]string{"./cmd/worker": b.Worker, "./cmd/shsim": b.Shsim} {
		cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
		cmd.Dir = root
		if msg, err := cmd.CombinedOutput(); err != nil {
			return binaries{}, fmt.Errorf("go build %s: %w\n%s", pkg, err, msg)
		}
	}
	return b, nil
}

// proc is a child process with its stderr in a log file.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

// startProc starts bin with args and extra environment; stdout goes to stdout
// when given, else with stderr into dir/<name>.log.
func startProc(dir, name, bin string, args, env []string, stdout io.Writer) (*proc, error) {
	p := &proc{name: name, log: filepath.Join(dir, name+".log"), done: make(chan struct{})}
	f, err := os.Create(p.log)
	if err != nil {
		return nil, err
	}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stderr = f
	p.cmd.Stdout = f
	if stdout != nil {
		p.cmd.Stdout = stdout
	}
	if err := p.cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

// pid is the process id.
func (p *proc) pid() int { return p.cmd.Process.Pid }

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM, waits up to grace, then kills.
func (p *proc) stop(grace time.Duration) {
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// tail is the end of the process's log, for error messages.
func (p *proc) tail() string {
	b, _ := os.ReadFile(p.log)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// startShsim starts the simulator on a free port and returns it with its base URL.
func startShsim(ctx context.Context, dir, bin string, args []string) (*proc, string, error) {
	pr, pw := io.Pipe()
	p, err := startProc(dir, "shsim", bin, append([]string{"-addr", "127.0.0.1:0"}, args...), nil, pw)
	if err != nil {
		return nil, "", err
	}
	go func() { <-p.done; pw.Close() }()
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr) // reads until shsim exits, so its stdout never blocks
		for sc.Scan() {
			if v, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "SH_BASE_URL="); ok {
				found <- v
			}
		}
		close(found)
	}()
	select {
	case base, ok := <-found:
		if !ok {
			return nil, "", fmt.Errorf("shsim exited before listening: %v\n%s", p.err, p.tail())
		}
		return p, base, nil
	case <-time.After(30 * time.Second):
		p.stop(time.Second)
		return nil, "", errors.New("shsim did not print its address within 30s")
	case <-ctx.Done():
		p.stop(time.Second)
		return nil, "", ctx.Err()
	}
}

// workerEnv is the environment of a worker talking to the simulator at base and
// the Redis at redisURL.
func workerEnv(base, redisURL string) []string {
	return []string{
		"REDIS_URL=" + redisURL,
		"SH_CLIENT_ID=" + sentineltest.DefaultClientID,
		"SH_CLIENT_SECRET=" + sentineltest.DefaultClientSecret,
		"SH_BASE_URL=" + base,
		"SH_TOKEN_URL=" + base + sentineltest.TokenPath,
		"SH_POLICIES=", "SH_PU_MONTH=", "SH_PROFILE=", "SH_PRESET=", "SH_CLIENT_SECRET_FILE=",
	}
}

// simStats reads the simulator's GET /shsim/stats.
func simStats(ctx context.Context, base string) (sentineltest.Stats, error) {
	var st sentineltest.Stats
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/shsim/stats", nil)
	if err != nil {
		return st, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return st, fmt.Errorf("shsim stats: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("shsim stats: HTTP %d", resp.StatusCode)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// procStatusKB reads a "kB" field (VmRSS, VmHWM) of /proc/<pid>/status; pid 0
// means this process.
func procStatusKB(pid int, field string) (int64, error) {
	path := "/proc/self/status"
	if pid > 0 {
		path = "/proc/" + strconv.Itoa(pid) + "/status"
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("read %s (the memory figures need Linux /proc): %w", path, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("%s has no %s line", path, field)
}

// rssSampler samples a process's VmRSS at a fixed interval and keeps the peak.
type rssSampler struct {
	mu      sync.Mutex
	peakKB  int64
	samples int
	stopc   chan struct{}
	done    chan struct{}
}

func sampleRSS(pid int, every time.Duration) *rssSampler {
	s := &rssSampler{stopc: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			if kb, err := procStatusKB(pid, "VmRSS"); err == nil {
				s.mu.Lock()
				s.peakKB = max(s.peakKB, kb)
				s.samples++
				s.mu.Unlock()
			}
			select {
			case <-s.stopc:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

// stop ends the sampling and returns the peak VmRSS (kB) and the sample count.
func (s *rssSampler) stop() (int64, int) {
	close(s.stopc)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peakKB, s.samples
}

// redisUsedMemory is INFO memory's used_memory in bytes.
func redisUsedMemory(ctx context.Context, rdb redis.UniversalClient) (int64, error) {
	info, err := rdb.Info(ctx, "memory").Result()
	if err != nil {
		return 0, fmt.Errorf("redis INFO memory: %w", err)
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, errors.New("redis INFO memory has no used_memory")
}

// bboxAOI is one AOI covering a lon/lat box (minlon, minlat, maxlon, maxlat).
func bboxAOI(name string, b [4]float64) []grid.AOI {
	ring := orb.Ring{{b[0], b[1]}, {b[2], b[1]}, {b[2], b[3]}, {b[0], b[3]}, {b[0], b[1]}}
	return []grid.AOI{{Name: name, Geometry: orb.MultiPolygon{{ring}}, Source: "bench"}}
}

// waitJob polls the job every 100 ms until done says so, the timeout passes or
// ctx ends; each is called with the job.
func waitJob(ctx context.Context, store *jobs.Store, id string, timeout time.Duration, done func(jobs.Job) bool) (jobs.Job, error) {
	deadline := time.Now().Add(timeout)
	for {
		job, err := store.Get(ctx, id)
		if err != nil {
			return job, err
		}
		if done(job) {
			return job, nil
		}
		if time.Now().After(deadline) {
			return job, fmt.Errorf("job %s still %s after %s (progress %+v)", id, job.Status, timeout, job.Progress)
		}
		select {
		case <-ctx.Done():
			return job, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// fmtBytes prints a byte count in binary units: 512 B, 12.3 MiB, 4.56 GiB.
func fmtBytes(n float64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", n/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", n/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", n/(1<<10))
	}
	return fmt.Sprintf("%.0f B", n)
}
