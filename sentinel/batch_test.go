package sentinel_test

import (
	"bytes"
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"shfleet/internal/s3test"
	"shfleet/sentinel"
	"shfleet/sentinel/sentineltest"
)

const batchScript = `//VERSION=3
function setup() { return { input: ["B04", "B08"], output: { id: "default", bands: 1, sampleType: "FLOAT32" } }; }
function evaluatePixel(s) { return [s.B04]; }`

// batchSetup starts versitygw with bucket "out" and a batch-enabled simulator
// that delivers there.
func batchSetup(t *testing.T, enterprise bool) (*sentineltest.Server, *sentinel.Client, s3test.Gateway) {
	t.Helper()
	gw := s3test.Start(t)
	gw.CreateBucket(t, "out")
	srv := sentineltest.NewServer(sentineltest.Config{Batch: enterprise, BatchStep: 5 * time.Millisecond,
		BatchS3: sentineltest.BatchS3{Endpoint: gw.Endpoint, Region: s3test.Region, AccessKey: s3test.AccessKey, SecretKey: s3test.SecretKey}})
	t.Cleanup(srv.Close)
	return srv, sentinel.NewClient(srv.ClientConfig(), nil), gw
}

func batchRequest() sentinel.BatchRequest {
	from := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	return sentinel.BatchRequest{
		ProcessRequest: sentinel.ProcessRequest{
			Input: sentinel.ProcessInput{
				// Inside one 10 km cell of UTM 33N: lon 14.50..14.52 is about 38 km
				// west of the central meridian (15°), easting ~462 km; lat 46.00..46.02
				// is northing ~5095-5097 km.
				Bounds: sentinel.Bounds{BBox: []float64{14.50, 46.00, 14.52, 46.02}},
				Data: []sentinel.InputData{{Type: "sentinel-2-l2a", DataFilter: &sentinel.DataFilter{
					TimeRange: &sentinel.TimeRange{From: from, To: from.AddDate(0, 1, 0)}}}},
			},
			Output:     sentinel.ProcessOutput{Responses: []sentinel.OutputResponse{{Identifier: "default", Format: sentinel.ResponseFormat{Type: "image/tiff"}}}},
			Evalscript: batchScript,
		},
		Input:  sentinel.BatchInput{ID: 1, Resolution: 20},
		Output: sentinel.BatchOutput{Delivery: sentinel.BatchDelivery{S3: sentinel.BatchS3{URL: "s3://out/results"}}},
	}
}

func waitBatch(t *testing.T, c *sentinel.Client, id string, want ...string) sentinel.BatchTask {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		task, err := c.Batch.Get(context.Background(), "", id)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range want {
			if task.Status == w {
				return task
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("batch %s stays %s, want %v", id, task.Status, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestBatchCreateStartDeliversTilesAtOneThirdPU(t *testing.T) {
	srv, c, gw := batchSetup(t, true)
	ctx := context.Background()
	task, err := c.Batch.Create(ctx, batchRequest())
	if err != nil {
		t.Fatal(err)
	}
	if task.Status != sentinel.BatchCreated || task.ID == "" {
		t.Fatalf("created %+v, want CREATED with an id", task)
	}
	if err := c.Batch.Start(ctx, "", task.ID); err != nil {
		t.Fatal(err)
	}
	done := waitBatch(t, c, task.ID, sentinel.BatchDone, sentinel.BatchFailed)
	if done.Status != sentinel.BatchDone || done.CompletionPercentage != 100 {
		t.Fatalf("final %+v, want DONE at 100%%", done)
	}
	// 500 x 500 px (10 km at 20 m), 2 input bands, FLOAT32, 1 sample:
	// 250000/262144 x 2/3 x 2 = 1.2715657552 PU; batch x 1/3 = 0.4238552517.
	if math.Abs(done.CostPU-0.4238552517) > 1e-6 {
		t.Errorf("costPU %v, want 0.4238552517", done.CostPU)
	}
	tiles := srv.BatchTiles(task.ID)
	if len(tiles) != 1 || tiles[0].Name != "33N-0460000-5090000-10km" || tiles[0].Status != sentineltest.TileDone {
		t.Fatalf("tiles %+v, want one DONE tile 33N-0460000-5090000-10km", tiles)
	}
	p := filepath.Join(gw.Root, "out", "results", task.ID, "33N-0460000-5090000-10km", "default.tif")
	got, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("delivered tile: %v", err)
	}
	// The same bytes as the Process API answers for that tile: its cell
	// 460000..470000 x 5090000..5100000 in EPSG:32633 at 500 x 500 px.
	tileReq := batchRequest().ProcessRequest
	tileReq.Input.Bounds = sentinel.Bounds{BBox: []float64{460000, 5090000, 470000, 5100000}, Properties: sentinel.BoundsProperties{CRS: sentinel.CRSEPSGPrefix + "32633"}}
	tileReq.Output.Width, tileReq.Output.Height = 500, 500
	if want := sentineltest.ProcessBody(tileReq, "default"); !bytes.Equal(got, want) {
		t.Fatalf("delivered tile: %d bytes differing from the Process API's %d for the same tile", len(got), len(want))
	}
}

func TestBatchStuckTilesRetriedTwiceThenFailedAndRestarted(t *testing.T) {
	srv, c, _ := batchSetup(t, true)
	ctx := context.Background()
	task, err := c.Batch.Create(ctx, batchRequest())
	if err != nil {
		t.Fatal(err)
	}
	srv.SetBatchStuck("33N-0460000-5090000-10km", 3) // stuck 3 times: FAILED in this run
	if err := c.Batch.Start(ctx, "", task.ID); err != nil {
		t.Fatal(err)
	}
	end := waitBatch(t, c, task.ID, sentinel.BatchDone, sentinel.BatchFailed)
	tiles := srv.BatchTiles(task.ID)
	if end.Status != sentinel.BatchFailed || tiles[0].Status != sentineltest.TileFailed || tiles[0].Stuck != 3 {
		t.Fatalf("after 3 sticks: %s, tiles %+v; want FAILED, the tile FAILED after 3", end.Status, tiles)
	}
	if err := c.Batch.Start(ctx, "", task.ID); err != nil {
		t.Fatal(err)
	}
	end = waitBatch(t, c, task.ID, sentinel.BatchDone, sentinel.BatchFailed)
	if end.Status != sentinel.BatchDone || srv.BatchTiles(task.ID)[0].Status != sentineltest.TileDone {
		t.Fatalf("after re-start: %s, want DONE", end.Status)
	}
	// A tile stuck twice goes back to PENDING twice and ends DONE in one run.
	task2, err := c.Batch.Create(ctx, batchRequest())
	if err != nil {
		t.Fatal(err)
	}
	srv.SetBatchStuck("33N-0460000-5090000-10km", 2)
	_ = c.Batch.Start(ctx, "", task2.ID)
	if end := waitBatch(t, c, task2.ID, sentinel.BatchDone, sentinel.BatchFailed); end.Status != sentinel.BatchDone {
		t.Fatalf("stuck twice: %s, want DONE", end.Status)
	}
}

func TestBatchStopWhileAnalysingLetsTheAnalysisFinish(t *testing.T) {
	srv, c, _ := batchSetup(t, true)
	ctx := context.Background()
	task, _ := c.Batch.Create(ctx, batchRequest())
	if err := c.Batch.Analyse(ctx, "", task.ID); err != nil {
		t.Fatal(err)
	}
	if err := c.Batch.Stop(ctx, "", task.ID); err != nil {
		t.Fatal(err)
	}
	end := waitBatch(t, c, task.ID, sentinel.BatchStopped)
	if end.StoppedStatusReason != sentinel.BatchStoppedUserAction || len(srv.BatchTiles(task.ID)) != 1 {
		t.Fatalf("stopped %+v with %d tiles; want USER_ACTION and the analysis's 1 tile", end, len(srv.BatchTiles(task.ID)))
	}
	if end.CostPU != 0 {
		t.Errorf("a request stopped before processing cost %v PU, want 0", end.CostPU)
	}
}

func TestBatchNotEnterpriseIs403(t *testing.T) {
	_, c, _ := batchSetup(t, false)
	_, err := c.Batch.Create(context.Background(), batchRequest())
	var fb *sentinel.ForbiddenError
	if !errors.As(err, &fb) {
		t.Fatalf("create on a non-enterprise account: %v, want a 403 ForbiddenError", err)
	}
}

func TestBatchTilingGrids(t *testing.T) {
	_, c, _ := batchSetup(t, true)
	grids, err := c.Batch.TilingGrids(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	byID := map[int]sentinel.TilingGrid{}
	for _, g := range grids {
		byID[g.ID] = g
	}
	// The documentation's table: LAEA 100 km (id 6) at 40/50/100 m, LAEA 20 km (id 7) at 10/20 m.
	if g := byID[6]; g.Properties.TileWidth != 100000 || len(g.Properties.Resolutions) != 3 || g.Properties.Resolutions[0] != 40 {
		t.Errorf("grid 6 %+v, want 100000 m tiles at 40, 50, 100 m", g)
	}
	if g := byID[7]; g.Properties.TileWidth != 20000 || len(g.Properties.Resolutions) != 2 || g.Properties.Unit != "METRE" {
		t.Errorf("grid 7 %+v, want 20000 m tiles at 10, 20 m", g)
	}
	if len(grids) != 6 {
		t.Errorf("%d grids, want 6 (ids 0, 1, 2, 3, 6, 7)", len(grids))
	}
}

// TestBatchListPagesNewestFirst: five requests listed two per page, newest
// first, come back as pages of 2, 2 and 1 with the descriptions they were
// created with, and the last page has no next token.
func TestBatchListPagesNewestFirst(t *testing.T) {
	_, c, _ := batchSetup(t, true)
	ctx := context.Background()
	for _, d := range []string{"r0", "r1", "r2", "r3", "r4"} {
		req := batchRequest()
		req.Description = d
		if _, err := c.Batch.Create(ctx, req); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	var sizes []int
	token := ""
	for range 5 {
		page, err := c.Batch.ListPage(ctx, "", sentinel.BatchListOptions{Count: 2, Sort: "created:desc", ViewToken: token})
		if err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, len(page.Tasks))
		for _, task := range page.Tasks {
			got = append(got, task.Description())
		}
		if token = page.NextToken; token == "" {
			break
		}
	}
	if want := "r4 r3 r2 r1 r0"; strings.Join(got, " ") != want || len(sizes) != 3 || sizes[2] != 1 {
		t.Fatalf("pages %v with %v; want sizes [2 2 1] and %s", sizes, got, want)
	}
}
