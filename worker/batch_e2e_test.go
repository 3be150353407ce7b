package worker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/paulmach/orb"

	"shfleet/grid"
	"shfleet/internal/fleettest"
	"shfleet/internal/s3test"
	"shfleet/jobs"
	"shfleet/sentinel/sentineltest"
)

// batchFleet is a fleet whose simulated account has the Batch API, delivering
// to versitygw buckets "proc" and "batch".
func batchFleet(t *testing.T) (*fleettest.Fleet, s3test.Gateway) {
	t.Helper()
	gw := s3test.Start(t)
	gw.CreateBucket(t, "proc")
	gw.CreateBucket(t, "batch")
	f := fleettest.Start(t, fleettest.Options{Workers: 2, BatchPoll: 30 * time.Millisecond, Sim: sentineltest.Config{
		Batch: true, BatchStep: 5 * time.Millisecond,
		BatchS3: sentineltest.BatchS3{Endpoint: gw.Endpoint, Region: s3test.Region, AccessKey: s3test.AccessKey, SecretKey: s3test.SecretKey}}})
	return f, gw
}

// aoiGeometry is the sample AOIs as one MultiPolygon, as enqueue submit
// --engine batch stores them.
func aoiGeometry(t *testing.T) json.RawMessage {
	aois, err := grid.ParseFile(filepath.Join(fleettest.Examples(), "aoi.geojson"), grid.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	var coords [][][][2]float64
	for _, a := range aois {
		for _, p := range a.Geometry {
			var poly [][][2]float64
			for _, r := range p {
				var ring [][2]float64
				for _, pt := range r {
					ring = append(ring, [2]float64{pt[0], pt[1]})
				}
				poly = append(poly, ring)
			}
			coords = append(coords, poly)
		}
	}
	b, _ := json.Marshal(map[string]any{"type": "MultiPolygon", "coordinates": coords})
	return b
}

// sample20 is the sample job at 20 m, a resolution of the Batch API's 10 km grid.
func sample20(t *testing.T, out string) (jobs.Spec, []grid.Tile) {
	spec, _ := fleettest.SampleSpec(t, out)
	aois, err := grid.ParseFile(filepath.Join(fleettest.Examples(), "aoi.geojson"), grid.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	g, _ := grid.ParseGrid("utm-10km")
	tiles, err := grid.Split(aois, g, grid.SplitOptions{Resolution: 20})
	if err != nil {
		t.Fatal(err)
	}
	spec.Resolution = 20
	return spec, tiles
}

func doneTiles(t *testing.T, f *fleettest.Fleet, id string) map[string][]jobs.OutputRecord {
	out := map[string][]jobs.OutputRecord{}
	for _, r := range f.Records(t, id) {
		out[r.Tile] = r.Outputs
	}
	return out
}

// TestBatchEngineSameTilesSameBytesThirdOfPU: the sample job run once by the
// fleet's Process API requests (one item per tile over June) and once as one
// Batch request gives the same tiles and byte-identical GeoTIFFs, and the batch
// run books 1/3 of the PU in the ledger.
func TestBatchEngineSameTilesSameBytesThirdOfPU(t *testing.T) {
	f, gw := batchFleet(t)
	ctx := context.Background()
	spec, tiles := sample20(t, gw.URL("proc"))
	spec.Mode, spec.Interval = jobs.ModeInterval, "P1M"
	spec.PathTemplate = "<requestId>/<tileName>/<outputId>.tif"
	proc, err := f.Ctl.Submit(ctx, spec, tiles)
	if err != nil {
		t.Fatal(err)
	}
	proc = f.WaitFinal(t, proc.ID, 2*time.Minute)
	lim := f.Workers[0].Limiter
	after1, err := lim.Usage(ctx)
	if err != nil {
		t.Fatal(err)
	}

	bspec, _ := sample20(t, gw.URL("batch"))
	bspec.Engine, bspec.AOIGeometry = jobs.EngineBatch, aoiGeometry(t)
	bjob, err := f.Ctl.Submit(ctx, bspec, tiles)
	if err != nil {
		t.Fatal(err)
	}
	bjob = f.WaitFinal(t, bjob.ID, 2*time.Minute)
	if proc.Status != jobs.StatusDone || bjob.Status != jobs.StatusDone {
		t.Fatalf("process job %s, batch job %s (%s); want both DONE", proc.Status, bjob.Status, bjob.Error)
	}
	pt, bt := doneTiles(t, f, proc.ID), doneTiles(t, f, bjob.ID)
	if len(pt) != 8 || len(bt) != 8 {
		t.Fatalf("%d process tiles, %d batch tiles; want the sample's 8 each", len(pt), len(bt))
	}
	for name, outs := range pt {
		bouts, ok := bt[name]
		if !ok {
			t.Fatalf("tile %s: processed, but not in the batch job (%v)", name, slices.Collect(mapKeys(bt)))
		}
		a, err := os.ReadFile(filepath.Join(gw.Root, "proc", outs[0].Key))
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(gw.Root, "batch", bouts[0].Key))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Fatalf("tile %s: %s (%d bytes) and %s (%d bytes) differ", name, outs[0].Key, len(a), bouts[0].Key, len(b))
		}
	}
	after2, err := lim.Usage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	procMPU := after1.SpentMilliPU
	batchMPU := after2.SpentMilliPU - after1.SpentMilliPU
	// 8 tiles of 500 x 500 px (10 km at 20 m), 3 input bands, UINT8, SIMPLE:
	// 250000/262144 = 0.953674 PU each, 7.629 PU for 8; the batch request 1/3
	// of it. Milli-PU rounding: within 8 milli-PU.
	if procMPU < 7625 || procMPU > 7640 {
		t.Errorf("process run booked %d milli-PU, want about 7629", procMPU)
	}
	if d := 3*batchMPU - procMPU; d < -24 || d > 24 {
		t.Errorf("batch run booked %d milli-PU, process run %d: want 1/3", batchMPU, procMPU)
	}
	if bjob.Progress.SpentMilliPU != batchMPU {
		t.Errorf("batch job shows %d milli-PU spent, the ledger %d", bjob.Progress.SpentMilliPU, batchMPU)
	}
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// TestBatchEnginePartialRestartDone: a tile stuck three times fails on the
// service, the job ends PARTIAL; restart re-starts the request's failed tile
// and the job ends DONE.
func TestBatchEnginePartialRestartDone(t *testing.T) {
	f, gw := batchFleet(t)
	ctx := context.Background()
	spec, tiles := sample20(t, gw.URL("batch"))
	spec.Engine, spec.AOIGeometry = jobs.EngineBatch, aoiGeometry(t)
	f.Sim.SetBatchStuck(tiles[0].Name, 3)
	job, err := f.Ctl.Submit(ctx, spec, tiles)
	if err != nil {
		t.Fatal(err)
	}
	job = f.WaitFinal(t, job.ID, 2*time.Minute)
	if job.Status != jobs.StatusPartial || job.Progress.Failed != 1 || job.Progress.Done != 7 {
		t.Fatalf("first run: %s %+v, want PARTIAL with 1 failed and 7 done", job.Status, job.Progress)
	}
	if n, err := f.Ctl.Restart(ctx, job.ID); err != nil || n != 1 {
		t.Fatalf("restart: %d items, %v; want 1", n, err)
	}
	job = f.WaitFor(t, job.ID, 2*time.Minute, "DONE after restart", func(j jobs.Job) bool { return j.Status.Final() })
	if job.Status != jobs.StatusDone || job.Progress.Done != 8 {
		t.Fatalf("after restart: %s %+v, want DONE with 8 done", job.Status, job.Progress)
	}
}

// TestBatchEngineCancelStopsTheRequest and an account without Batch.
func TestBatchEngineNotEnterpriseFails(t *testing.T) {
	gw := s3test.Start(t)
	gw.CreateBucket(t, "batch")
	f := fleettest.Start(t, fleettest.Options{Workers: 1, BatchPoll: 30 * time.Millisecond})
	spec, tiles := sample20(t, gw.URL("batch"))
	spec.Engine, spec.AOIGeometry = jobs.EngineBatch, aoiGeometry(t)
	job, err := f.Ctl.Submit(context.Background(), spec, tiles)
	if err != nil {
		t.Fatal(err)
	}
	job = f.WaitFor(t, job.ID, time.Minute, "FAILED", func(j jobs.Job) bool { return j.Status.Final() })
	if job.Status != jobs.StatusFailed || !bytes.Contains([]byte(job.Error), []byte("enterprise")) {
		t.Fatalf("%s %q, want FAILED saying the Batch API is for enterprise accounts", job.Status, job.Error)
	}
}

// TestLAEAGridsBothEnginesGDAL: a Europe AOI on laea-100km and laea-20km gives
// tiles in EPSG:3035, under the process and the batch engine alike, and GDAL
// reads their CRS as ETRS89 / LAEA Europe.
func TestLAEAGridsBothEnginesGDAL(t *testing.T) {
	if _, err := exec.LookPath("gdalinfo"); err != nil {
		t.Fatal("gdalinfo not found: install gdal-bin (the CI does)")
	}
	f, gw := batchFleet(t)
	ctx := context.Background()
	// Around EPSG:3035's origin (10°E 52°N): one cell of each grid.
	aoi := []grid.AOI{{Name: "origin", Source: "test", Geometry: orb.MultiPolygon{{{{9.99, 51.995}, {10.01, 51.995}, {10.01, 52.005}, {9.99, 52.005}, {9.99, 51.995}}}}}}
	geom := json.RawMessage(`{"type":"MultiPolygon","coordinates":[[[[9.99,51.995],[10.01,51.995],[10.01,52.005],[9.99,52.005],[9.99,51.995]]]]}`)
	for _, c := range []struct {
		grid string
		res  float64
		tile string
	}{{"laea-100km", 100, "LAEA-4300000-3200000-100km"}, {"laea-20km", 20, "LAEA-4320000-3200000-20km"}} {
		g, _ := grid.ParseGrid(c.grid)
		tiles, err := grid.Split(aoi, g, grid.SplitOptions{Resolution: c.res})
		if err != nil {
			t.Fatal(err)
		}
		for _, engine := range []string{jobs.EngineProcess, jobs.EngineBatch} {
			bucket := "proc"
			spec, _ := fleettest.SampleSpec(t, "")
			spec.Grid, spec.Resolution = c.grid, c.res
			if engine == jobs.EngineBatch {
				bucket = "batch"
				spec.Engine, spec.AOIGeometry = jobs.EngineBatch, geom
			} else {
				spec.Mode, spec.Interval = jobs.ModeInterval, "P1M"
			}
			spec.OutputURL = gw.URL(bucket)
			job, err := f.Ctl.Submit(ctx, spec, tiles)
			if err != nil {
				t.Fatal(err)
			}
			job = f.WaitFinal(t, job.ID, 2*time.Minute)
			done := doneTiles(t, f, job.ID)
			outs, ok := done[c.tile]
			if job.Status != jobs.StatusDone || len(done) != 1 || !ok {
				t.Fatalf("%s %s: %s, tiles %v; want DONE with tile %s", c.grid, engine, job.Status, slices.Collect(mapKeys(done)), c.tile)
			}
			out, err := exec.Command("gdalinfo", "-json", filepath.Join(gw.Root, bucket, outs[0].Key)).Output()
			if err != nil {
				t.Fatalf("gdalinfo: %v", err)
			}
			var info struct {
				CoordinateSystem struct {
					WKT string `json:"wkt"`
				} `json:"coordinateSystem"`
				Size []int `json:"size"`
			}
			if err := json.Unmarshal(out, &info); err != nil {
				t.Fatal(err)
			}
			// 100 km at 100 m and 20 km at 20 m are both 1000 px.
			if !strings.Contains(info.CoordinateSystem.WKT, `ID["EPSG",3035]`) || len(info.Size) != 2 || info.Size[0] != 1000 {
				t.Fatalf("%s %s: GDAL reads size %v, CRS %s; want 1000 px in EPSG:3035", c.grid, engine, info.Size, info.CoordinateSystem.WKT)
			}
		}
	}
}
