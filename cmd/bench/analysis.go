package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"shfleet/grid"
	"shfleet/jobs"
	"shfleet/keys"
	"shfleet/quota"
	"shfleet/redisserver"
	"shfleet/sentinel/sentineltest"
	"shfleet/tasks"
	"shfleet/worker"
)

// Defaults of AnalysisOptions fields left zero.
const (
	// DefaultAnalysisGrid and DefaultAnalysisResolution split the AOI.
	DefaultAnalysisGrid       = "utm-10km"
	DefaultAnalysisResolution = 60.0
	// DefaultAnalysisDays is the job's time range: with one acquisition per cell
	// every 5 days, 2-3 items per tile.
	DefaultAnalysisDays = 10
	// DefaultAnalysisWorkers in-process workers of DefaultAnalysisConcurrency run
	// the catalog analysis.
	DefaultAnalysisWorkers     = 4
	DefaultAnalysisConcurrency = 16
	// DefaultAnalysisTimeout bounds the analysis.
	DefaultAnalysisTimeout = 30 * time.Minute
	// analysisChildCommand is the hidden subcommand that splits and submits, run as
	// a child process so that its peak RSS is its own.
	analysisChildCommand = "analysis-child"
	// childEnv marks the child (so a test binary can dispatch it from TestMain).
	childEnv = "SHFLEET_BENCH_CHILD"
)

// DefaultAnalysisBBox is a box over Europe, 8°W-38°E x 38-66°N: about 9.7
// million km², ~100,000 utm-10km tiles.
var DefaultAnalysisBBox = [4]float64{-8, 38, 38, 66}

// analysisPolicies are the workers' limits during the analysis (catalog requests
// cost one request each).
var analysisPolicies = []string{"requests:6000:PT1M", "pu:6000:PT1M"}

// AnalysisOptions configure RunAnalysis. The zero value uses the defaults.
type AnalysisOptions struct {
	// BBox is the AOI (minlon, minlat, maxlon, maxlat); default DefaultAnalysisBBox.
	BBox [4]float64
	// Grid and Resolution split it; defaults DefaultAnalysisGrid and
	// DefaultAnalysisResolution.
	Grid       string
	Resolution float64
	// Days is the time range from 2025-06-01; default DefaultAnalysisDays.
	Days int
	// Workers and Concurrency of the in-process workers running the analysis.
	Workers, Concurrency int
	// Latency and Jitter of the simulator; defaults DefaultFleetLatency and
	// DefaultFleetJitter, negative means none.
	Latency, Jitter time.Duration
	// Timeout bounds the analysis; default DefaultAnalysisTimeout.
	Timeout time.Duration
}

func (o AnalysisOptions) withDefaults() AnalysisOptions {
	if o.BBox == ([4]float64{}) {
		o.BBox = DefaultAnalysisBBox
	}
	if o.Grid == "" {
		o.Grid = DefaultAnalysisGrid
	}
	if o.Resolution <= 0 {
		o.Resolution = DefaultAnalysisResolution
	}
	if o.Days <= 0 {
		o.Days = DefaultAnalysisDays
	}
	if o.Workers <= 0 {
		o.Workers = DefaultAnalysisWorkers
	}
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultAnalysisConcurrency
	}
	o.Latency = orDefault(o.Latency, DefaultFleetLatency)
	o.Jitter = orDefault(o.Jitter, DefaultFleetJitter)
	if o.Timeout <= 0 {
		o.Timeout = DefaultAnalysisTimeout
	}
	return o
}

// childResult is what the analysis child prints (JSON) on stdout.
type childResult struct {
	Job     string        `json:"job"`
	Tiles   int           `json:"tiles"`
	Groups  int           `json:"groups"`
	Parse   time.Duration `json:"parse_ns"`
	Split   time.Duration `json:"split_ns"`
	Submit  time.Duration `json:"submit_ns"`
	VmHWMKB int64         `json:"vmhwm_kb"`
}

// AnalysisResult is the row of the analysis table.
type AnalysisResult struct {
	BBox   [4]float64
	Grid   string
	Days   int
	Tiles  int
	Groups int
	// Parse, Split and Submit are the child's times: ParseFile, grid.Split, and
	// Controller.Submit (jobs.Create + one catalog task per group).
	Parse, Split, Submit time.Duration
	// ChildVmHWM is the child's own /proc/self/status VmHWM at its end (kB). (The
	// parent's rusage of the child is no substitute: Linux carries the pre-exec
	// image's peak, i.e. the parent's, into the child's ru_maxrss.)
	ChildVmHWM int64
	// RedisSubmit is used_memory added by the submit; RedisAnalysis by the
	// analysis; CatalogCache the part of it that is the catalog result cache.
	RedisSubmit, RedisAnalysis, CatalogCache int64
	// Items made by the analysis; Analysis its time, from the workers' start to
	// AnalysedAt (the job's AnalysisStartedAt is only set when the first group is
	// recorded).
	Items    int
	Analysis time.Duration
	// CatalogRequests is the simulator's count; JobCatalogRequests the job's.
	CatalogRequests, JobCatalogRequests int
	RateLimited                         int
	Workers, Concurrency                int
}

// RunAnalysis runs the analysis benchmark and writes its table to stdout.
func RunAnalysis(ctx context.Context, o AnalysisOptions, stdout, progress io.Writer) error {
	o = o.withDefaults()
	res, err := runAnalysis(ctx, o, progress)
	if err != nil {
		return err
	}
	return WriteAnalysisTable(stdout, []AnalysisResult{res})
}

func runAnalysis(ctx context.Context, o AnalysisOptions, progress io.Writer) (AnalysisResult, error) {
	res := AnalysisResult{BBox: o.BBox, Grid: o.Grid, Days: o.Days, Workers: o.Workers, Concurrency: o.Concurrency}
	dir, err := os.MkdirTemp("", "shfleet-bench-analysis-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	aoiPath := filepath.Join(dir, "aoi.geojson")
	if err := writeBBoxGeoJSON(aoiPath, o.BBox); err != nil {
		return res, err
	}
	srv, err := redisserver.Start(redisserver.Options{})
	if err != nil {
		return res, err
	}
	defer srv.Stop()
	rdb := srv.Client()
	defer rdb.Close()
	m0, err := redisUsedMemory(ctx, rdb)
	if err != nil {
		return res, err
	}

	// Split and submit in a child process: its peak RSS is the enqueue CLI's.
	fmt.Fprintf(progress, "%s  analysis: split + submit of %v on %s in a child process ...\n", stamp(), o.BBox, o.Grid)
	exe, err := os.Executable()
	if err != nil {
		return res, err
	}
	from := DefaultFleetFrom
	to := from.AddDate(0, 0, o.Days)
	cmd := exec.CommandContext(ctx, exe, analysisChildCommand, "-aoi", aoiPath, "-redis-url", srv.URL(),
		"-grid", o.Grid, "-resolution", fmt.Sprint(o.Resolution), "-from", from.Format(time.RFC3339), "-to", to.Format(time.RFC3339))
	cmd.Env = append(os.Environ(), childEnv+"=1")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return res, fmt.Errorf("%s: %w\n%s", analysisChildCommand, err, stderr.String())
	}
	var child childResult
	if err := json.Unmarshal(out, &child); err != nil {
		return res, fmt.Errorf("%s printed %q: %w", analysisChildCommand, out, err)
	}
	res.Tiles, res.Groups, res.Parse, res.Split, res.Submit, res.ChildVmHWM = child.Tiles, child.Groups, child.Parse, child.Split, child.Submit, child.VmHWMKB
	fmt.Fprintf(progress, "          %d tiles, %d catalog groups; split %s, submit %s, child VmHWM %s\n",
		res.Tiles, res.Groups, fmtDur(res.Split), fmtDur(res.Submit), fmtBytes(float64(res.ChildVmHWM)*1024))
	m1, err := redisUsedMemory(ctx, rdb)
	if err != nil {
		return res, err
	}
	res.RedisSubmit = m1 - m0

	// The analysis: in-process workers against the simulator.
	simCfg := sentineltest.Config{Faults: sentineltest.Faults{Latency: o.Latency, LatencyJitter: o.Jitter}, MaxRecordedRequests: -1}
	pols, err := quota.ParsePolicies(analysisPolicies)
	if err != nil {
		return res, err
	}
	for _, p := range pols {
		simCfg.Policies = append(simCfg.Policies, sentineltest.Policy{Kind: string(p.Kind), Capacity: p.Capacity, Period: p.Period})
	}
	sim := sentineltest.NewServer(simCfg)
	defer sim.Close()
	fmt.Fprintf(progress, "%s  analysis: %d catalog tasks on %d workers x %d ...\n", stamp(), res.Groups, o.Workers, o.Concurrency)
	started := time.Now()
	for range o.Workers {
		wrdb := srv.Client()
		defer wrdb.Close()
		w, err := worker.New(worker.Config{Redis: wrdb, Sentinel: sim.ClientConfig(), Policies: pols, Concurrency: o.Concurrency})
		if err != nil {
			return res, err
		}
		if err := w.Start(); err != nil {
			return res, err
		}
		defer w.Shutdown()
	}
	store := &jobs.Store{Redis: rdb}
	job, err := waitJob(ctx, store, child.Job, o.Timeout, func(j jobs.Job) bool {
		return j.Status == jobs.StatusAnalysisDone || j.Status.Final()
	})
	if err != nil {
		return res, err
	}
	if job.Status != jobs.StatusAnalysisDone {
		return res, fmt.Errorf("job %s ended %s, want %s", job.ID, job.Status, jobs.StatusAnalysisDone)
	}
	m2, err := redisUsedMemory(ctx, rdb)
	if err != nil {
		return res, err
	}
	res.RedisAnalysis = m2 - m1
	if res.CatalogCache, err = keysMemory(ctx, rdb, keys.DefaultPrefix+":catalog:*"); err != nil {
		return res, err
	}
	st := sim.Stats()
	res.Items, res.Analysis = job.Progress.Total, job.AnalysedAt.Sub(started)
	res.CatalogRequests, res.JobCatalogRequests, res.RateLimited = st.CatalogRequests, job.Progress.CatalogRequests, st.RateLimited
	return res, nil
}

// keysMemory sums MEMORY USAGE of the keys matching pattern.
func keysMemory(ctx context.Context, rdb *redis.Client, pattern string) (int64, error) {
	var total int64
	iter := rdb.Scan(ctx, 0, pattern, 1000).Iterator()
	for iter.Next(ctx) {
		n, err := rdb.MemoryUsage(ctx, iter.Val()).Result()
		if err != nil {
			return 0, err
		}
		total += n
	}
	return total, iter.Err()
}

// writeBBoxGeoJSON writes a FeatureCollection of one box polygon.
func writeBBoxGeoJSON(path string, b [4]float64) error {
	fc := map[string]any{"type": "FeatureCollection", "features": []any{map[string]any{
		"type": "Feature", "properties": map[string]any{"name": "bench-box"},
		"geometry": map[string]any{"type": "Polygon", "coordinates": [][][2]float64{{
			{b[0], b[1]}, {b[2], b[1]}, {b[2], b[3]}, {b[0], b[3]}, {b[0], b[1]},
		}}},
	}}}
	raw, err := json.Marshal(fc)
	if err != nil {
		return err
	}
	return os.WriteFile(path, raw, 0o644)
}

// runAnalysisChild is the hidden subcommand: parse the AOI file, split it,
// submit the job (no auto-start) and print a childResult with its own VmHWM.
func runAnalysisChild(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet(analysisChildCommand, flag.ContinueOnError)
	fs.SetOutput(stderr)
	aoiPath := fs.String("aoi", "", "AOI file")
	redisURL := fs.String("redis-url", "", "Redis URL")
	gridName := fs.String("grid", DefaultAnalysisGrid, "grid")
	res := fs.Float64("resolution", DefaultAnalysisResolution, "resolution")
	fromS := fs.String("from", "", "RFC 3339 start")
	toS := fs.String("to", "", "RFC 3339 end")
	if err := fs.Parse(args); err != nil {
		return err
	}
	from, err := time.Parse(time.RFC3339, *fromS)
	if err != nil {
		return fmt.Errorf("-from: %w", err)
	}
	to, err := time.Parse(time.RFC3339, *toS)
	if err != nil {
		return fmt.Errorf("-to: %w", err)
	}
	ropt, err := redis.ParseURL(*redisURL)
	if err != nil {
		return fmt.Errorf("-redis-url: %w", err)
	}
	rdb := redis.NewClient(ropt)
	defer rdb.Close()

	var out childResult
	t0 := time.Now()
	aois, err := grid.ParseFile(*aoiPath, grid.Limits{MaxAreaKm2: 1e9})
	if err != nil {
		return err
	}
	t1 := time.Now()
	g, err := grid.ParseGrid(*gridName)
	if err != nil {
		return err
	}
	tiles, err := grid.Split(aois, g, grid.SplitOptions{Resolution: *res})
	if err != nil {
		return err
	}
	t2 := time.Now()
	spec := jobs.Spec{Name: "bench-analysis", AOISource: filepath.Base(*aoiPath), Grid: g.Name, Resolution: *res,
		Collection: "sentinel-2-l2a", Evalscript: evalRGB8, From: from, To: to, OutputURL: "file:///tmp/shfleet-bench-unused"}
	ctl := tasks.Controller{Jobs: &jobs.Store{Redis: rdb}, Queue: asynq.NewClientFromRedisClient(rdb), Inspector: asynq.NewInspectorFromRedisClient(rdb)}
	job, err := ctl.Submit(ctx, spec, tiles)
	if err != nil {
		return err
	}
	t3 := time.Now()
	out.Job, out.Tiles, out.Groups = job.ID, len(tiles), job.Spec.CatalogGroups
	out.Parse, out.Split, out.Submit = t1.Sub(t0), t2.Sub(t1), t3.Sub(t2)
	if out.VmHWMKB, err = procStatusKB(0, "VmHWM"); err != nil {
		return err
	}
	return json.NewEncoder(stdout).Encode(out)
}

// WriteAnalysisTable writes analysis results as a Markdown table.
func WriteAnalysisTable(w io.Writer, results []AnalysisResult) error {
	var b strings.Builder
	b.WriteString("| AOI (lon/lat box) | grid | tiles | catalog groups (= tasks) | parse | split | submit (Create + enqueue) | submitter peak RSS (VmHWM) | Redis after submit (per tile) | days | items (per tile) | analysis (4 workers) | catalog requests (simulator / job) | catalog requests per tile | Redis added by analysis (per item) | of which catalog cache | 429s |\n")
	b.WriteString("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, r := range results {
		perTile := float64(r.RedisSubmit) / float64(max(r.Tiles, 1))
		perItem := float64(r.RedisAnalysis) / float64(max(r.Items, 1))
		fmt.Fprintf(&b, "| %g,%g → %g,%g | %s | %d | %d | %s | %s | %s | %s | %s (%s) | %d | %d (%.2f) | %s | %d / %d | %.4f | %s (%s) | %s | %d |\n",
			r.BBox[0], r.BBox[1], r.BBox[2], r.BBox[3], r.Grid, r.Tiles, r.Groups, fmtDur(r.Parse), fmtDur(r.Split), fmtDur(r.Submit),
			fmtBytes(float64(r.ChildVmHWM)*1024),
			fmtBytes(float64(r.RedisSubmit)), fmtBytes(perTile), r.Days, r.Items, float64(r.Items)/float64(max(r.Tiles, 1)),
			fmtDur(r.Analysis), r.CatalogRequests, r.JobCatalogRequests, float64(r.CatalogRequests)/float64(max(r.Tiles, 1)),
			fmtBytes(float64(r.RedisAnalysis)), fmtBytes(perItem), fmtBytes(float64(r.CatalogCache)), r.RateLimited)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// parseAnalysisFlags reads the analysis benchmark's flags.
func parseAnalysisFlags(args []string, stderr io.Writer) (AnalysisOptions, error) {
	fs := flag.NewFlagSet("bench analysis", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o AnalysisOptions
	var bbox string
	fs.StringVar(&bbox, "bbox", "", "AOI minlon,minlat,maxlon,maxlat (default -8,38,38,66: ~100,000 utm-10km tiles)")
	fs.StringVar(&o.Grid, "grid", DefaultAnalysisGrid, "grid")
	fs.Float64Var(&o.Resolution, "resolution", DefaultAnalysisResolution, "resolution in the grid's units")
	fs.IntVar(&o.Days, "days", DefaultAnalysisDays, "time range in days from 2025-06-01")
	fs.IntVar(&o.Workers, "workers", DefaultAnalysisWorkers, "in-process workers running the analysis")
	fs.IntVar(&o.Concurrency, "concurrency", DefaultAnalysisConcurrency, "each worker's concurrency")
	fs.DurationVar(&o.Latency, "latency", DefaultFleetLatency, "simulator latency")
	fs.DurationVar(&o.Jitter, "jitter", DefaultFleetJitter, "simulator random extra latency")
	fs.DurationVar(&o.Timeout, "timeout", DefaultAnalysisTimeout, "longest the analysis may take")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if bbox != "" {
		b, err := parseBBox(bbox)
		if err != nil {
			return o, fmt.Errorf("-bbox: %w", err)
		}
		o.BBox = b
	}
	return o, nil
}
