package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"shfleet/grid"
	"shfleet/jobs"
)

// ScaleOptions configure the scale benchmark.
type ScaleOptions struct {
	// Items lists the job sizes, one row each.
	Items []int
	// PerTile is the number of acquisitions per tile (one every 5 days).
	PerTile int
	// GroupTiles is the number of tiles per catalog group (one RecordAnalysis).
	GroupTiles int
	// Sample is how many items are processed (Feed, Begin, Complete) to
	// count commands and CPU per processed item.
	Sample int
	// RedisURL is a Redis to use instead of a redis-server the benchmark starts;
	// it must be empty (the benchmark reads used_memory).
	RedisURL string
}

// ScaleResult is one row of the scale benchmark.
type ScaleResult struct {
	Items, Tiles int
	// BytesAnalysed and BytesStarted are used_memory growth per item after the
	// analysis and after start.
	BytesAnalysed, BytesStarted float64
	// AnalysisCmds and AnalysisCPU are Redis commands (scripts' own calls
	// included) and Redis CPU (used_cpu_user+sys) per item during the analysis.
	AnalysisCmds, AnalysisCPU float64
	// ProcessCmds and ProcessCPU are the same per processed item (its share
	// of a Feed of 1,000, BeginItem, CompleteItem) over the sample.
	ProcessCmds, ProcessCPU float64
	// Analysis is the time of every RecordAnalysis, Start of Store.Start, Feed
	// of the first Feed of a 1,000-item window after it.
	Analysis, Start, Feed time.Duration
}

func parseScaleFlags(args []string, stderr io.Writer) (ScaleOptions, error) {
	fs := flag.NewFlagSet("bench scale", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o ScaleOptions
	items := fs.String("items", "100000,1000000", "comma-separated job sizes in items, one row each (e.g. 100000,1000000,10000000)")
	fs.IntVar(&o.PerTile, "per-tile", 70, "acquisitions per tile (one every 5 days)")
	fs.IntVar(&o.GroupTiles, "group", 16, "tiles per catalog group (one RecordAnalysis call)")
	fs.IntVar(&o.Sample, "sample", 10000, "items processed per row to count commands and CPU per processed item")
	fs.StringVar(&o.RedisURL, "redis", "", "an empty Redis to use (default: start a redis-server per row)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q; flags go after the benchmark name", fs.Args())
	}
	for _, f := range strings.Split(*items, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return o, fmt.Errorf("-items %q: %q is not a positive number of items", *items, f)
		}
		o.Items = append(o.Items, n)
	}
	if o.PerTile < 1 || o.PerTile > 73 {
		return o, fmt.Errorf("-per-tile %d: use 1..73 (one acquisition every 5 days within a year)", o.PerTile)
	}
	if o.GroupTiles < 1 || o.Sample < 1 {
		return o, errors.New("-group and -sample must be at least 1")
	}
	return o, nil
}

// RunScale creates, analyses and starts jobs of o.Items items straight through
// jobs.Store against a fresh Redis and prints a Markdown table.
func RunScale(ctx context.Context, o ScaleOptions, stdout, progress io.Writer) error {
	var results []ScaleResult
	for _, n := range o.Items {
		r, err := runScaleRow(ctx, o, n, progress)
		if err != nil {
			return fmt.Errorf("%d items: %w", n, err)
		}
		results = append(results, r)
	}
	return WriteScaleTable(stdout, results)
}

// WriteScaleTable prints scale results as a Markdown table.
func WriteScaleTable(w io.Writer, rs []ScaleResult) error {
	fmt.Fprintln(w, "| items | tiles | Redis B/item after analysis | after start + feed | analysis cmds/item | analysis Redis CPU us/item | processing cmds/item | processing Redis CPU us/item | analysis | start | feed 1,000 |")
	fmt.Fprintln(w, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range rs {
		if _, err := fmt.Fprintf(w, "| %d | %d | %.1f | %.1f | %.2f | %.1f | %.1f | %.1f | %s | %s | %s |\n", r.Items, r.Tiles,
			r.BytesAnalysed, r.BytesStarted, r.AnalysisCmds, r.AnalysisCPU, r.ProcessCmds, r.ProcessCPU,
			r.Analysis.Round(time.Millisecond), r.Start.Round(time.Microsecond), r.Feed.Round(time.Microsecond)); err != nil {
			return err
		}
	}
	return nil
}

func runScaleRow(ctx context.Context, o ScaleOptions, n int, progress io.Writer) (ScaleResult, error) {
	url, stop, err := scaleRedis(ctx, o.RedisURL)
	if err != nil {
		return ScaleResult{}, err
	}
	defer stop()
	opt, err := redis.ParseURL(url)
	if err != nil {
		return ScaleResult{}, err
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	store := &jobs.Store{Redis: rdb, Prefix: "bench"}
	from := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	spec := jobs.Spec{Name: "scale", Grid: "utm-10km", Resolution: 10, From: from, To: from.AddDate(1, 0, 0),
		Collection: "sentinel-2-l2a", Evalscript: "//VERSION=3\nfunction setup(){return {input:[\"B04\"],output:{bands:1}}}\nfunction evaluatePixel(s){return [s.B04]}",
		OutputURL: "file:///tmp/bench-scale"}
	nt := (n + o.PerTile - 1) / o.PerTile
	tiles := make([]grid.Tile, nt)
	for i := range tiles {
		// UTM-like names and boxes, as the 10 km grid makes them.
		e, no := 400000+10000*(i%60), 5000000+10000*(i/60)
		tiles[i] = grid.Tile{Name: fmt.Sprintf("33N-%07d-%07d-10km", e, no), AOI: "europe", EPSG: 32633,
			BBox:  [4]float64{float64(e), float64(no), float64(e + 10000), float64(no + 10000)},
			WGS84: [4]float64{13.6, 45.1, 13.7, 45.2}, Width: 1000, Height: 1000}
	}
	base, err := usedMemory(ctx, rdb)
	if err != nil {
		return ScaleResult{}, err
	}
	fmt.Fprintf(progress, "scale %d items: creating %d tiles\n", n, nt)
	job, err := store.Create(ctx, spec, tiles)
	if err != nil {
		return ScaleResult{}, err
	}
	before, err := redisStats(ctx, rdb)
	if err != nil {
		return ScaleResult{}, err
	}
	t0 := time.Now()
	left := n
	for g := 0; g < nt; g += o.GroupTiles {
		group := tiles[g:min(g+o.GroupTiles, nt)]
		names := make([]string, len(group))
		var items []jobs.Item
		for i, tl := range group {
			names[i] = tl.Name
			for k := 0; k < o.PerTile && left > 0; k++ {
				d := from.AddDate(0, 0, 5*k)
				items = append(items, jobs.Item{ID: jobs.ItemID(tl.Name, d), Tile: tl.Name, From: d, To: d.Add(24 * time.Hour), EstimatedMilliPU: 1100})
				left--
			}
		}
		if _, err := store.RecordAnalysis(ctx, job.ID, names, items, 1); err != nil {
			return ScaleResult{}, err
		}
		if g%(o.GroupTiles*1000) == 0 && g > 0 {
			fmt.Fprintf(progress, "scale %d items: %d/%d tiles analysed\n", n, g, nt)
		}
	}
	analysis := time.Since(t0)
	after, err := redisStats(ctx, rdb)
	if err != nil {
		return ScaleResult{}, err
	}
	analysed, err := usedMemory(ctx, rdb)
	if err != nil {
		return ScaleResult{}, err
	}
	j, err := store.Get(ctx, job.ID)
	if err != nil {
		return ScaleResult{}, err
	}
	if j.Status != jobs.StatusAnalysisDone || j.Progress.Total != n {
		return ScaleResult{}, fmt.Errorf("after the analysis: %s with %d items, want ANALYSIS_DONE with %d", j.Status, j.Progress.Total, n)
	}
	t1 := time.Now()
	if _, err := store.Start(ctx, job.ID); err != nil {
		return ScaleResult{}, err
	}
	start := time.Since(t1)
	const window = 1000
	pBefore, err := redisStats(ctx, rdb)
	if err != nil {
		return ScaleResult{}, err
	}
	t2 := time.Now()
	first, err := store.Feed(ctx, job.ID, min(window, o.Sample))
	if err != nil {
		return ScaleResult{}, err
	}
	feed := time.Since(t2)
	started, err := usedMemory(ctx, rdb)
	if err != nil {
		return ScaleResult{}, err
	}

	// Process a sample: windows of items as a feeder hands them out.
	sample := first
	for len(sample) < min(o.Sample, n) {
		more, err := store.Feed(ctx, job.ID, min(window, o.Sample-len(sample)))
		if err != nil {
			return ScaleResult{}, err
		}
		if len(more) == 0 {
			break
		}
		sample = append(sample, more...)
	}
	for _, it := range sample {
		if _, err := store.BeginItem(ctx, job.ID, it.ID); err != nil {
			return ScaleResult{}, err
		}
		if _, err := store.CompleteItem(ctx, job.ID, it.ID, jobs.Result{PU: 1.1,
			Outputs: []jobs.OutputRecord{{Key: job.ID + "/" + it.Tile + "/" + it.Date + "/default.tif", Size: 2000000}}}); err != nil {
			return ScaleResult{}, err
		}
	}
	pAfter, err := redisStats(ctx, rdb)
	if err != nil {
		return ScaleResult{}, err
	}
	ns := float64(len(sample))
	return ScaleResult{Items: n, Tiles: nt,
		BytesAnalysed: float64(analysed-base) / float64(n), BytesStarted: float64(started-base) / float64(n),
		AnalysisCmds: float64(after.calls-before.calls) / float64(n), AnalysisCPU: (after.cpu - before.cpu) * 1e6 / float64(n),
		ProcessCmds: float64(pAfter.calls-pBefore.calls) / ns, ProcessCPU: (pAfter.cpu - pBefore.cpu) * 1e6 / ns,
		Analysis: analysis, Start: start, Feed: feed}, nil
}

// scaleRedis returns the URL of an empty Redis: url itself (checked empty) or
// a redis-server started for the row, and how to stop it.
func scaleRedis(ctx context.Context, url string) (string, func(), error) {
	if url != "" {
		opt, err := redis.ParseURL(url)
		if err != nil {
			return "", nil, fmt.Errorf("-redis %q: %w", url, err)
		}
		c := redis.NewClient(opt)
		defer c.Close()
		n, err := c.DBSize(ctx).Result()
		if err != nil {
			return "", nil, fmt.Errorf("-redis %q: %w", url, err)
		}
		if n != 0 {
			return "", nil, fmt.Errorf("-redis %q holds %d keys; the benchmark needs an empty database to measure used_memory", url, n)
		}
		return url, func() {}, nil
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return "", nil, errors.New("redis-server not found in PATH; install it or pass -redis")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	dir, err := os.MkdirTemp("", "bench-scale-")
	if err != nil {
		return "", nil, err
	}
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", dir, "--lua-time-limit", "60000")
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return "", nil, err
	}
	stop := func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		os.RemoveAll(dir)
	}
	url = fmt.Sprintf("redis://127.0.0.1:%d/0", port)
	c := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", port)})
	defer c.Close()
	for i := 0; ; i++ {
		if c.Ping(ctx).Err() == nil {
			return url, stop, nil
		}
		if i == 100 {
			stop()
			return "", nil, errors.New("redis-server did not answer within 5 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func usedMemory(ctx context.Context, c *redis.Client) (int64, error) {
	info, err := c.Info(ctx, "memory").Result()
	if err != nil {
		return 0, err
	}
	v, ok := infoField(info, "used_memory")
	if !ok {
		return 0, errors.New("INFO memory has no used_memory")
	}
	return strconv.ParseInt(v, 10, 64)
}

// redisCounters are Redis' command calls (INFO commandstats, scripts' own calls
// included) and its CPU seconds (used_cpu_user + used_cpu_sys).
type redisCounters struct {
	calls int64
	cpu   float64
}

func redisStats(ctx context.Context, c *redis.Client) (redisCounters, error) {
	var r redisCounters
	info, err := c.Info(ctx, "commandstats", "cpu").Result()
	if err != nil {
		return r, err
	}
	sc := bufio.NewScanner(strings.NewReader(info))
	for sc.Scan() {
		line := sc.Text()
		if name, rest, ok := strings.Cut(line, ":"); ok && strings.HasPrefix(name, "cmdstat_") && name != "cmdstat_info" {
			for _, kv := range strings.Split(rest, ",") {
				if v, ok := strings.CutPrefix(kv, "calls="); ok {
					n, _ := strconv.ParseInt(v, 10, 64)
					r.calls += n
				}
			}
		}
	}
	for _, k := range []string{"used_cpu_user", "used_cpu_sys"} {
		v, _ := infoField(info, k)
		f, _ := strconv.ParseFloat(v, 64)
		r.cpu += f
	}
	return r, nil
}

func infoField(info, key string) (string, bool) {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), key+":"); ok {
			return v, true
		}
	}
	return "", false
}
