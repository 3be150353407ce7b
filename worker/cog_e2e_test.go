package worker_test

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"shfleet/grid"
	"shfleet/internal/fleettest"
	"shfleet/jobs"
	"shfleet/sentinel/sentineltest"
)

// TestCOGJob runs a --cog job at 20 m (10 km tiles of 500 x 500 px, so one
// overview of 250 x 250) and checks every stored output with GDAL's COG
// validator.
func TestCOGJob(t *testing.T) {
	if _, err := exec.LookPath("gdalinfo"); err != nil {
		t.Skip("gdal-bin not installed")
	}
	if err := exec.Command("/usr/bin/python3", "-c", "import osgeo_utils.samples.validate_cloud_optimized_geotiff").Run(); err != nil {
		t.Skip("python3-gdal not installed")
	}
	outDir := t.TempDir()
	f := newFleet(t, 1, sentineltest.Config{})
	spec, _ := fleettest.SampleSpec(t, "file://"+outDir)
	aois, err := grid.ParseFile(filepath.Join(fleettest.Examples(), "aoi.geojson"), grid.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	g, _ := grid.ParseGrid("utm-10km")
	tiles, err := grid.Split(aois, g, grid.SplitOptions{Resolution: 20})
	if err != nil {
		t.Fatal(err)
	}
	spec.Resolution, spec.COG = 20, true
	spec.To = spec.From.AddDate(0, 0, 6)
	tiles = tiles[:2]
	job, err := f.Ctl.Submit(context.Background(), spec, tiles)
	if err != nil {
		t.Fatal(err)
	}
	job = f.WaitFinal(t, job.ID, 3*time.Minute)
	if job.Status != jobs.StatusDone || job.Progress.Done == 0 {
		t.Fatalf("job %s with %d DONE; want DONE", job.Status, job.Progress.Done)
	}
	files := fleettest.OutputFiles(t, outDir)
	if len(files) != job.Progress.Done {
		t.Fatalf("%d output files for %d DONE items", len(files), job.Progress.Done)
	}
	for _, p := range files {
		out, err := exec.Command("/usr/bin/python3", "-m", "osgeo_utils.samples.validate_cloud_optimized_geotiff", p).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "is a valid cloud optimized GeoTIFF") {
			t.Errorf("%s: validator %v\n%s", p, err, out)
		}
		info, err := exec.Command("gdalinfo", p).Output()
		if err != nil || !strings.Contains(string(info), "Size is 500, 500") || !strings.Contains(string(info), "Overviews: 250x250") ||
			!strings.Contains(string(info), "Block=256x256") {
			t.Errorf("%s: gdalinfo %v; want 500x500 in 256x256 blocks with a 250x250 overview:\n%s", p, err, info)
		}
	}
}
