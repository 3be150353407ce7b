package jobs_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"shfleet/grid"
	"shfleet/internal/redistest"
	"shfleet/jobs"
)

// Example walks one job through the workflow: create, analyse, start, process.
func Example() {
	srv, err := redistest.StartServer(redistest.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Stop()
	rdb := srv.Client()
	defer rdb.Close()
	ctx := context.Background()
	store := &jobs.Store{Redis: rdb, Prefix: "example"}

	from := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	job, err := store.Create(ctx, jobs.Spec{
		Collection: "sentinel-2-l2a", Evalscript: "//VERSION=3 ...",
		From: from, To: from.AddDate(0, 0, 10), OutputURL: "file:///tmp/out",
	}, []grid.Tile{{Name: "33T-0450000-5090000"}})
	if err != nil {
		fmt.Println(err)
		return
	}
	// A catalog task found two acquisitions on the tile.
	tile := "33T-0450000-5090000"
	var items []jobs.Item
	for _, d := range []time.Time{from, from.AddDate(0, 0, 5)} {
		items = append(items, jobs.Item{ID: jobs.ItemID(tile, d), Tile: tile, Date: d.Format(time.DateOnly),
			From: d, To: d.AddDate(0, 0, 1), EstimatedMilliPU: 1500})
	}
	analysed, _ := store.RecordAnalysis(ctx, job.ID, []string{tile}, items, 1)
	fmt.Println("analysis done:", analysed)

	// Start is a status change; the fleet's feeder then takes the items a
	// window at a time (Feed) and queues one task each.
	status, _ := store.Start(ctx, job.ID)
	fmt.Println("started:", status)
	todo, _ := store.Feed(ctx, job.ID, 10)
	slices.SortFunc(todo, func(a, b jobs.Item) int { return strings.Compare(a.ID, b.ID) })
	for _, it := range todo {
		if ok, _ := store.BeginItem(ctx, job.ID, it.ID); !ok {
			continue
		}
		out, _ := store.CompleteItem(ctx, job.ID, it.ID, jobs.Result{PU: 1.2})
		fmt.Printf("%s %s, job finished: %q\n", it.ID, out.Item, out.Finished)
	}
	// The job's end: the worker writes the manifest, then makes the status final.
	_, _ = store.Finish(ctx, job.ID)
	job, _ = store.Get(ctx, job.ID)
	fmt.Println(job.Status, job.Progress.EstimatedMilliPU, job.Progress.SpentMilliPU)
	// Output:
	// analysis done: true
	// started: PROCESSING
	// 33T-0450000-5090000_2024-05-01 DONE, job finished: ""
	// 33T-0450000-5090000_2024-05-06 DONE, job finished: "DONE"
	// DONE 3000 2400
}
