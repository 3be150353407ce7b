package worker_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"shfleet/grid"
	"shfleet/internal/fleettest"
	"shfleet/jobs"
	"shfleet/sentinel/sentineltest"
)

type stacItem struct {
	ID         string         `json:"id"`
	Properties map[string]any `json:"properties"`
	Assets     map[string]struct {
		Href     string `json:"href"`
		Type     string `json:"type"`
		Checksum string `json:"file:checksum"`
		Size     int64  `json:"file:size"`
	} `json:"assets"`
}

func gdalChecksums(t *testing.T, args ...string) []int {
	t.Helper()
	out, err := exec.Command("gdalinfo", append([]string{"-json", "-checksum"}, args...)...).Output()
	if err != nil {
		t.Fatalf("gdalinfo %v: %v", args, err)
	}
	var info struct {
		Bands []struct {
			Checksum int `json:"checksum"`
		} `json:"bands"`
	}
	if err := json.Unmarshal(out, &info); err != nil {
		t.Fatal(err)
	}
	var sums []int
	for _, b := range info.Bands {
		sums = append(sums, b.Checksum)
	}
	return sums
}

// TestJobWritesSTACAndMosaics runs the sample job at 50 m (10 km tiles of
// 200 x 200 px that abut exactly) and checks the output root: only outputs,
// the manifest, STAC files and VRTs; every item's asset is found through its
// relative href, with the file's size and sha2-256 multihash, and GDAL reads
// it; each date's VRT gives, in each tile's window, the tile's own pixels.
func TestJobWritesSTACAndMosaics(t *testing.T) {
	if _, err := exec.LookPath("gdalinfo"); err != nil {
		t.Skip("gdal-bin not installed")
	}
	outDir := t.TempDir()
	f := newFleet(t, 2, sentineltest.Config{})
	spec, _ := fleettest.SampleSpec(t, "file://"+outDir)
	aois, err := grid.ParseFile(filepath.Join(fleettest.Examples(), "aoi.geojson"), grid.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	g, _ := grid.ParseGrid("utm-10km")
	tiles, err := grid.Split(aois, g, grid.SplitOptions{Resolution: 50})
	if err != nil {
		t.Fatal(err)
	}
	spec.Resolution = 50
	spec.To = spec.From.AddDate(0, 0, 10)
	job, err := f.Ctl.Submit(context.Background(), spec, tiles)
	if err != nil {
		t.Fatal(err)
	}
	job = f.WaitFinal(t, job.ID, 3*time.Minute)
	if job.Status != jobs.StatusDone {
		t.Fatalf("job %s; want DONE", job.Status)
	}
	stacDir := filepath.Join(outDir, job.ID, "stac")
	// DONE means the end files are there already: no waiting.
	if _, err := os.Stat(filepath.Join(stacDir, "catalog.json")); err != nil {
		t.Fatalf("job DONE without its STAC catalog: %v", err)
	}

	// 1. Nothing under the root but outputs, the manifest, STAC and VRT files.
	id := regexp.QuoteMeta(job.ID)
	kinds := map[string]*regexp.Regexp{
		"output":   regexp.MustCompile(`^` + id + `/[^/]+/\d{4}-\d\d-\d\d/default\.tif$`),
		"manifest": regexp.MustCompile(`^` + id + `/manifest\.json$`),
		"part":     regexp.MustCompile(`^` + id + `/manifest/part-\d{5}\.jsonl$`),
		"stac":     regexp.MustCompile(`^` + id + `/stac/(catalog|collection)\.json$`),
		"item":     regexp.MustCompile(`^` + id + `/stac/items/[^/]+/[^/]+\.json$`),
		"vrt":      regexp.MustCompile(`^` + id + `/mosaic/\d{4}-\d\d-\d\d/default_EPSG32633\.vrt$`),
	}
	count := map[string]int{}
	var itemFiles, vrts []string
	err = filepath.WalkDir(outDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(outDir, p)
		rel = filepath.ToSlash(rel)
		for k, re := range kinds {
			if re.MatchString(rel) {
				count[k]++
				switch k {
				case "item":
					itemFiles = append(itemFiles, p)
				case "vrt":
					vrts = append(vrts, p)
				}
				return nil
			}
		}
		t.Errorf("unexpected file under the output root: %s", rel)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	done := job.Progress.Done
	if count["output"] != done || count["item"] != done || count["manifest"] != 1 || count["part"] != 1 || count["stac"] != 2 || count["vrt"] == 0 {
		t.Fatalf("files by kind %v; want %d outputs and items, 1 manifest with 1 part, catalog + collection, VRTs", count, done)
	}

	// 2. Items: assets through their hrefs, checksums and sizes of the files.
	dates := map[string]bool{}
	for i, p := range itemFiles {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var it stacItem
		if err := json.Unmarshal(b, &it); err != nil {
			t.Fatal(err)
		}
		if it.Properties["proj:epsg"] != float64(32633) || fmt.Sprint(it.Properties["proj:shape"]) != "[200 200]" {
			t.Errorf("item %s: proj:epsg %v proj:shape %v; want 32633 and [200 200]", it.ID, it.Properties["proj:epsg"], it.Properties["proj:shape"])
		}
		dates[it.ID[len(it.ID)-10:]] = true
		a, ok := it.Assets["default"]
		if !ok || strings.HasPrefix(a.Href, "/") || a.Type != "image/tiff; application=geotiff" {
			t.Fatalf("item %s asset %+v; want a relative GeoTIFF href", it.ID, a)
		}
		asset := filepath.Join(filepath.Dir(p), filepath.FromSlash(a.Href))
		data, err := os.ReadFile(asset)
		if err != nil {
			t.Fatalf("item %s: href %s does not resolve: %v", it.ID, a.Href, err)
		}
		sum := sha256.Sum256(data)
		if a.Checksum != "1220"+hex.EncodeToString(sum[:]) || a.Size != int64(len(data)) {
			t.Errorf("item %s: file:checksum %s size %d; the file's are 1220%x and %d", it.ID, a.Checksum, a.Size, sum, len(data))
		}
		if i < 3 {
			if out, err := exec.Command("gdalinfo", asset).CombinedOutput(); err != nil || !strings.Contains(string(out), "Size is 200, 200") {
				t.Errorf("gdalinfo via the href of %s: %v\n%s", it.ID, err, out)
			}
		}
	}
	if len(vrts) != len(dates) {
		t.Errorf("%d VRTs for %d dates; want one per date (one CRS)", len(vrts), len(dates))
	}

	// 3. The first date's VRT: each tile's window holds the tile's pixels. Tile
	// names carry the tile's south-west corner (easting, northing); at 50 m a
	// tile is 200 px, so its window starts (E - minE)/50 across and
	// (maxN - (N + 10000))/50 down.
	slices.Sort(vrts)
	vrt := vrts[0]
	date := filepath.Base(filepath.Dir(vrt))
	name := regexp.MustCompile(`^33N-(\d{7})-(\d{7})-10km$`)
	type placed struct {
		path string
		e, n int
	}
	var ts []placed
	minE, maxN := 1<<30, 0
	for _, tl := range tiles {
		p := filepath.Join(outDir, job.ID, tl.Name, date, "default.tif")
		if _, err := os.Stat(p); err != nil {
			continue
		}
		m := name.FindStringSubmatch(tl.Name)
		if m == nil {
			t.Fatalf("tile name %s is not a 33N 10 km tile", tl.Name)
		}
		e, _ := strconv.Atoi(m[1])
		n, _ := strconv.Atoi(m[2])
		ts = append(ts, placed{p, e, n})
		minE, maxN = min(minE, e), max(maxN, n+10000)
	}
	if len(ts) == 0 {
		t.Fatal("no tile of the first date found")
	}
	for _, tl := range ts {
		x, y := (tl.e-minE)/50, (maxN-(tl.n+10000))/50
		win := filepath.Join(t.TempDir(), "win.tif")
		if out, err := exec.Command("gdal_translate", "-q", "-srcwin", strconv.Itoa(x), strconv.Itoa(y), "200", "200", vrt, win).CombinedOutput(); err != nil {
			t.Fatalf("gdal_translate of %s: %v\n%s", vrt, err, out)
		}
		if got, want := gdalChecksums(t, win), gdalChecksums(t, tl.path); !slices.Equal(got, want) || len(want) != 4 { // examples/evalscript-truecolor.js: 4 bands (RGB + dataMask)
			t.Errorf("VRT window at %d,%d: band checksums %v; the tile %s has %v", x, y, got, filepath.Base(filepath.Dir(filepath.Dir(tl.path))), want)
		}
	}

	// 4. stac-node-validator, where installed.
	if _, err := exec.LookPath("stac-node-validator"); err == nil {
		checkSTAC(t, stacDir)
	}
}

// TestMosaicPerCRS: an AOI across the 18°E boundary of UTM zones 33 and 34
// gives tiles in EPSG:32633 and EPSG:32634; each date gets one VRT per CRS
// that has a tile that day, and GDAL reads each.
func TestMosaicPerCRS(t *testing.T) {
	if _, err := exec.LookPath("gdalinfo"); err != nil {
		t.Skip("gdal-bin not installed")
	}
	outDir := t.TempDir()
	f := newFleet(t, 1, sentineltest.Config{})
	spec, _ := fleettest.SampleSpec(t, "file://"+outDir)
	aois, err := grid.Parse("zones.csv", []byte("minlon,minlat,maxlon,maxlat\n17.97,46.00,18.03,46.03\n"), grid.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	g, _ := grid.ParseGrid("utm-10km")
	tiles, err := grid.Split(aois, g, grid.SplitOptions{Resolution: 100})
	if err != nil {
		t.Fatal(err)
	}
	zones := map[int]bool{}
	for _, tl := range tiles {
		zones[tl.EPSG] = true
	}
	if !zones[32633] || !zones[32634] {
		t.Fatalf("tiles in %v; want both 32633 and 32634", zones)
	}
	spec.Resolution = 100
	spec.To = spec.From.AddDate(0, 0, 6)
	job, err := f.Ctl.Submit(context.Background(), spec, tiles)
	if err != nil {
		t.Fatal(err)
	}
	job = f.WaitFinal(t, job.ID, 3*time.Minute)
	if job.Status != jobs.StatusDone {
		t.Fatalf("job %s; want DONE", job.Status)
	}
	// DONE means the end files are there already.
	if _, err := os.Stat(filepath.Join(outDir, job.ID, "stac", "catalog.json")); err != nil {
		t.Fatalf("job DONE without its STAC catalog: %v", err)
	}
	items, err := jobs.CollectItems(f.Store.AllItems(context.Background(), job.ID, jobs.ItemDone))
	if err != nil {
		t.Fatal(err)
	}
	byTile := map[string]int{}
	for _, tl := range tiles {
		byTile[tl.Name] = tl.EPSG
	}
	want := map[string]bool{} // date/EPSG that have a tile
	for _, it := range items {
		want[fmt.Sprintf("%s/default_EPSG%d.vrt", it.Date, byTile[it.Tile])] = true
	}
	got := map[string]bool{}
	vrts, _ := filepath.Glob(filepath.Join(outDir, job.ID, "mosaic", "*", "*.vrt"))
	for _, v := range vrts {
		got[filepath.Base(filepath.Dir(v))+"/"+filepath.Base(v)] = true
		if out, err := exec.Command("gdalinfo", v).CombinedOutput(); err != nil {
			t.Errorf("gdalinfo %s: %v\n%s", v, err, out)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) || len(got) < 2 {
		t.Errorf("VRTs %v; want one per date and CRS with tiles: %v", got, want)
	}
}
