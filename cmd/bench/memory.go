package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"shfleet/jobs"
)

// Defaults of MemoryOptions fields left zero.
const (
	// DefaultMemoryTimeout bounds one row.
	DefaultMemoryTimeout = 20 * time.Minute
	// memorySample is the VmRSS sampling interval.
	memorySample = 100 * time.Millisecond
	// evalFloat4 has 4 FLOAT32 output bands: 16 bytes per pixel, 100 MB for a
	// 2500x2500 px tile.
	evalFloat4 = `//VERSION=3
function setup() { return { input: ["B02", "B03", "B04", "B08"], output: { bands: 4, sampleType: "FLOAT32" } }; }
function evaluatePixel(s) { return [s.B02, s.B03, s.B04, s.B08]; }`
)

// memoryPolicies are generous: the row measures memory, not pacing.
var memoryPolicies = []string{"requests:6000:PT1M", "pu:1000000:PT1M"}

// DefaultMemoryAOI and the time range below give 42 items on 4 utm-10km tiles:
// more than 32, so every download slot of the largest row is used.
var (
	DefaultMemoryAOI  = [4]float64{14.45, 46.02, 14.6, 46.1}
	DefaultMemoryFrom = time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	DefaultMemoryTo   = time.Date(2025, 7, 6, 0, 0, 0, 0, time.UTC)
)

// MemoryRow is one row: a worker's --concurrency and the resolution (m on
// utm-10km) that sets the tile size (4 m: 2500 px).
type MemoryRow struct {
	Concurrency int
	Resolution  float64
}

// DefaultMemoryRows: 32 downloads of 100 MB, then 8 of 100 MB and 32 of 16 MB to
// show that the peak follows neither the answer size nor (much) the concurrency.
var DefaultMemoryRows = []MemoryRow{{32, 4}, {8, 4}, {32, 10}}

// MemoryOptions configure RunMemory. The zero value uses the defaults.
type MemoryOptions struct {
	// Rows to run; default DefaultMemoryRows.
	Rows []MemoryRow
	// AOI, From and To make the job; defaults DefaultMemoryAOI,
	// DefaultMemoryFrom, DefaultMemoryTo.
	AOI      [4]float64
	From, To time.Time
	// Timeout bounds one row; default DefaultMemoryTimeout.
	Timeout time.Duration
	// BinDir: see FleetOptions.BinDir.
	BinDir string
}

func (o MemoryOptions) withDefaults() MemoryOptions {
	if len(o.Rows) == 0 {
		o.Rows = DefaultMemoryRows
	}
	if o.AOI == ([4]float64{}) {
		o.AOI = DefaultMemoryAOI
	}
	if o.From.IsZero() {
		o.From = DefaultMemoryFrom
	}
	if o.To.IsZero() {
		o.To = DefaultMemoryTo
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultMemoryTimeout
	}
	return o
}

// MemoryResult is one row of the memory table.
type MemoryResult struct {
	Concurrency int
	// TilePx is the tile side; ItemBytes the answer size of one item.
	TilePx    int
	ItemBytes int64
	// Items of the job; Done of them; MaxInFlight the most PROCESSING at once
	// (sampled every 100 ms).
	Items, Done, MaxInFlight int
	// BytesWritten is the sum of the stored outputs' sizes.
	BytesWritten int64
	// Elapsed is StartedAt..FinishedAt.
	Elapsed time.Duration
	// IdleRSS is the worker's VmRSS before the submit; PeakRSS the largest VmRSS
	// sampled every 100 ms; VmHWM the kernel's peak at the end (kB all).
	IdleRSS, PeakRSS, VmHWM int64
	Samples                 int
}

// RunMemory runs the memory benchmark and writes its table to stdout.
func RunMemory(ctx context.Context, o MemoryOptions, stdout, progress io.Writer) error {
	o = o.withDefaults()
	dir, err := os.MkdirTemp("", "shfleet-bench-memory-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bins, err := prepareBinaries(ctx, o.BinDir, dir, progress)
	if err != nil {
		return err
	}
	var results []MemoryResult
	for i, row := range o.Rows {
		fmt.Fprintf(progress, "%s  memory: --concurrency %d, %g m tiles ...\n", stamp(), row.Concurrency, row.Resolution)
		rowDir := filepath.Join(dir, fmt.Sprintf("row-%d", i+1))
		res, err := runMemoryRow(ctx, o, bins, row, rowDir)
		_ = os.RemoveAll(rowDir) // gigabytes of outputs
		if err != nil {
			return fmt.Errorf("memory row %d (concurrency %d, %g m): %w", i+1, row.Concurrency, row.Resolution, err)
		}
		fmt.Fprintf(progress, "          %d items, %s written in %s; peak RSS %s (VmHWM %s)\n", res.Done,
			fmtBytes(float64(res.BytesWritten)), fmtDur(res.Elapsed), fmtBytes(float64(res.PeakRSS)*1024), fmtBytes(float64(res.VmHWM)*1024))
		results = append(results, res)
	}
	return WriteMemoryTable(stdout, results)
}

func runMemoryRow(ctx context.Context, o MemoryOptions, bins binaries, row MemoryRow, dir string) (MemoryResult, error) {
	res := MemoryResult{Concurrency: row.Concurrency}
	workerArgs := []string{"--concurrency", strconv.Itoa(row.Concurrency)}
	for _, p := range memoryPolicies {
		workerArgs = append(workerArgs, "--policy", p)
	}
	env, err := startFleet(ctx, dir, bins, []string{"-full-size"}, 1, workerArgs)
	if err != nil {
		return res, err
	}
	defer env.close()
	spec, tiles, err := fleetSpec(o.AOI, row.Resolution, evalFloat4, o.From, o.To, filepath.Join(dir, "out"))
	if err != nil {
		return res, err
	}
	res.TilePx = tiles[0].Width
	res.ItemBytes = int64(tiles[0].Width) * int64(tiles[0].Height) * 4 * 4

	w := env.workers[0]
	if err := waitReady(ctx, env); err != nil {
		return res, err
	}
	if res.IdleRSS, err = procStatusKB(w.pid(), "VmRSS"); err != nil {
		return res, err
	}
	sampler := sampleRSS(w.pid(), memorySample)
	job, err := env.ctl.Submit(ctx, spec, tiles)
	if err != nil {
		sampler.stop()
		return res, fmt.Errorf("submit: %w", err)
	}
	job, err = waitJob(ctx, env.store, job.ID, o.Timeout, func(j jobs.Job) bool {
		res.MaxInFlight = max(res.MaxInFlight, j.Progress.Processing)
		return j.Status.Final() || env.checkWorkers() != nil
	})
	res.PeakRSS, res.Samples = sampler.stop()
	if err != nil {
		return res, err
	}
	if err := env.checkWorkers(); err != nil {
		return res, err
	}
	if res.VmHWM, err = procStatusKB(w.pid(), "VmHWM"); err != nil {
		return res, err
	}
	res.Items, res.Done, res.Elapsed = job.Progress.Total, job.Progress.Done, job.FinishedAt.Sub(job.StartedAt)
	// The worker that ended the job moves every record to the manifest just
	// after the final status.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if job, err = env.store.Get(ctx, job.ID); err != nil {
			return res, err
		}
		if n, err := env.store.RecordsBacklog(ctx, job.ID); err != nil || n == 0 || time.Now().After(deadline) {
			break
		}
	}
	res.BytesWritten = job.Drained.Bytes
	if job.Status != jobs.StatusDone {
		return res, fmt.Errorf("job ended %s (%d of %d done); worker log:\n%s", job.Status, res.Done, res.Items, w.tail())
	}
	return res, nil
}

// waitReady waits until the simulator has issued the workers' token (their
// startup check), so the idle RSS is taken from a started worker.
func waitReady(ctx context.Context, env *fleetEnv) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if err := env.checkWorkers(); err != nil {
			return err
		}
		if st, err := simStats(ctx, env.base); err == nil && st.TokensIssued > 0 {
			sleep(ctx, 500*time.Millisecond) // the asynq server starts after the check
			return ctx.Err()
		}
		sleep(ctx, 100*time.Millisecond)
	}
	return fmt.Errorf("the worker obtained no token within 30s:\n%s", env.workers[0].tail())
}

// WriteMemoryTable writes memory results as a Markdown table.
func WriteMemoryTable(w io.Writer, results []MemoryResult) error {
	var b strings.Builder
	b.WriteString("| worker --concurrency | tile | answer size | items (max in flight) | bytes written | elapsed | throughput | idle RSS | peak VmRSS (100 ms samples) | VmHWM | bytes written / peak RSS | peak RSS / (concurrency x answer) |\n")
	b.WriteString("|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, r := range results {
		peak := float64(r.PeakRSS) * 1024
		thr := "–"
		if r.Elapsed > 0 {
			thr = fmtBytes(float64(r.BytesWritten)/r.Elapsed.Seconds()) + "/s"
		}
		fmt.Fprintf(&b, "| %d | %dx%d px, 4 x FLOAT32 | %s | %d (%d) | %s | %s | %s | %s | %s (%d) | %s | %.1f | %.2f%% |\n",
			r.Concurrency, r.TilePx, r.TilePx, fmtBytes(float64(r.ItemBytes)), r.Done, r.MaxInFlight, fmtBytes(float64(r.BytesWritten)),
			fmtDur(r.Elapsed), thr, fmtBytes(float64(r.IdleRSS)*1024), fmtBytes(peak), r.Samples, fmtBytes(float64(r.VmHWM)*1024),
			float64(r.BytesWritten)/max(peak, 1), 100*peak/max(float64(r.Concurrency)*float64(r.ItemBytes), 1))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// parseMemoryFlags reads the memory benchmark's flags.
func parseMemoryFlags(args []string, stderr io.Writer) (MemoryOptions, error) {
	fs := flag.NewFlagSet("bench memory", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o MemoryOptions
	var rows, aoi, from, to string
	fs.StringVar(&rows, "rows", "32x4,8x4,32x10", "rows as CONCURRENCYxRESOLUTION (m on utm-10km: 4 gives 2500 px tiles, 10 gives 1000 px)")
	fs.StringVar(&aoi, "aoi", "", "job AOI minlon,minlat,maxlon,maxlat (default 14.45,46.02,14.6,46.1: 42 items)")
	fs.StringVar(&from, "from", DefaultMemoryFrom.Format(time.DateOnly), "job time range start (YYYY-MM-DD)")
	fs.StringVar(&to, "to", DefaultMemoryTo.Format(time.DateOnly), "job time range end, exclusive (YYYY-MM-DD)")
	fs.DurationVar(&o.Timeout, "timeout", DefaultMemoryTimeout, "longest a row may take")
	fs.StringVar(&o.BinDir, "bin-dir", "", "directory with prebuilt worker and shsim binaries (default: go build into a temp dir)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	for _, r := range strings.Split(rows, ",") {
		c, res, ok := strings.Cut(strings.TrimSpace(r), "x")
		n, err1 := strconv.Atoi(c)
		m, err2 := strconv.ParseFloat(res, 64)
		if !ok || err1 != nil || err2 != nil || n < 1 || m <= 0 {
			return o, fmt.Errorf("-rows %q: %q is not CONCURRENCYxRESOLUTION, e.g. 32x4", rows, r)
		}
		o.Rows = append(o.Rows, MemoryRow{Concurrency: n, Resolution: m})
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
