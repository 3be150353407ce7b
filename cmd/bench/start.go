package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/hibiken/asynq"

	"shfleet/grid"
	"shfleet/internal/redistest"
	"shfleet/jobs"
	"shfleet/tasks"
)

// StartOptions shape the start benchmark.
type StartOptions struct {
	// Tiles and Days make Tiles x Days synthetic items (default 200 x 100).
	Tiles, Days int
	// Window caps the feeder's window (default tasks.DefaultMaxWindow).
	Window int
}

// StartResult is one run of the start benchmark.
type StartResult struct {
	Items int
	// Redis used_memory added by the analysis, by the start, by the feeder's
	// first top-up (bytes).
	Analysis, Start, Fed int64
	// StartTime is how long Controller.Start took.
	StartTime time.Duration
	// Queued is what asynq's queue holds after the start and the first top-up.
	Queued int
}

// RunStart creates a job of synthetic items straight through jobs.Store (no
// catalog search: the start is under test), measures Redis used_memory after
// the analysis, times `enqueue start` (Controller.Start), measures again, then
// runs one feeder tick (the window queued) and measures once more.
func RunStart(ctx context.Context, o StartOptions, stdout io.Writer) error {
	o.Tiles, o.Days = max(o.Tiles, 1), max(o.Days, 1)
	srv, err := redistest.StartServer(redistest.Options{})
	if err != nil {
		return err
	}
	defer srv.Stop()
	rdb := srv.Client()
	defer rdb.Close()
	store := &jobs.Store{Redis: rdb}
	queue := asynq.NewClientFromRedisClient(rdb)
	defer queue.Close()
	insp := asynq.NewInspectorFromRedisClient(rdb)
	ctl := tasks.Controller{Jobs: store, Queue: queue, Inspector: insp}

	from := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	tiles := make([]grid.Tile, o.Tiles)
	for i := range tiles {
		tiles[i] = grid.Tile{Name: fmt.Sprintf("33T-%07d-5090000", 400000+10000*i), AOI: "bench", EPSG: 32633,
			BBox: [4]float64{float64(400000 + 10000*i), 5090000, float64(410000 + 10000*i), 5100000}, Width: 167, Height: 167,
			WGS84: [4]float64{14, 45.9, 14.1, 46}}
	}
	spec := jobs.Spec{Name: "bench-start", Collection: "sentinel-2-l2a", Evalscript: evalRGB8, From: from,
		To: from.AddDate(0, 0, o.Days), OutputURL: "file:///tmp/shfleet-bench-unused"}
	base, err := redisUsedMemory(ctx, rdb)
	if err != nil {
		return err
	}
	job, err := store.Create(ctx, spec, tiles)
	if err != nil {
		return err
	}
	// One RecordAnalysis per group of 64 tiles, as the catalog tasks do.
	for g := 0; g < len(tiles); g += 64 {
		group := tiles[g:min(g+64, len(tiles))]
		names := make([]string, len(group))
		var items []jobs.Item
		for i, tl := range group {
			names[i] = tl.Name
			for d := range o.Days {
				day := from.AddDate(0, 0, d)
				items = append(items, jobs.Item{ID: jobs.ItemID(tl.Name, day), Tile: tl.Name, From: day, To: day.AddDate(0, 0, 1), EstimatedMilliPU: 33})
			}
		}
		if _, err := store.RecordAnalysis(ctx, job.ID, names, items, 1); err != nil {
			return err
		}
	}
	var r StartResult
	r.Items = o.Tiles * o.Days
	analysed, err := redisUsedMemory(ctx, rdb)
	if err != nil {
		return err
	}
	t0 := time.Now()
	if _, err := ctl.Start(ctx, job.ID); err != nil {
		return err
	}
	r.StartTime = time.Since(t0)
	started, err := redisUsedMemory(ctx, rdb)
	if err != nil {
		return err
	}
	feeder, err := tasks.NewFeeder(tasks.FeederConfig{Jobs: store, Queue: queue, Inspector: insp, MaxWindow: o.Window, MinWindow: 1})
	if err != nil {
		return err
	}
	if _, err := feeder.Tick(ctx); err != nil {
		return err
	}
	fed, err := redisUsedMemory(ctx, rdb)
	if err != nil {
		return err
	}
	if qi, err := insp.GetQueueInfo(tasks.ProcessQueue(spec)); err == nil {
		r.Queued = qi.Size
	}
	r.Analysis, r.Start, r.Fed = analysed-base, started-analysed, fed-started
	_, err = fmt.Fprintf(stdout, "| items | analysis: Redis per item | `enqueue start` | start: Redis added | first top-up: Redis added (tasks queued) | total per item |\n|--:|--:|--:|--:|--:|--:|\n| %d | %s | %s | %s | %s (%d) | %s |\n",
		r.Items, fmtBytes(float64(r.Analysis)/float64(r.Items)), fmtDur(r.StartTime), fmtBytes(float64(r.Start)), fmtBytes(float64(r.Fed)), r.Queued,
		fmtBytes(float64(r.Analysis+r.Start+r.Fed)/float64(r.Items)))
	return err
}

func parseStartFlags(args []string, stderr io.Writer) (StartOptions, error) {
	fs := flag.NewFlagSet("bench start", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o StartOptions
	fs.IntVar(&o.Tiles, "tiles", 200, "synthetic tiles")
	fs.IntVar(&o.Days, "days", 100, "items per tile (one per day)")
	fs.IntVar(&o.Window, "window", 0, fmt.Sprintf("the feeder's window cap (default %d)", tasks.DefaultMaxWindow))
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	return o, nil
}
