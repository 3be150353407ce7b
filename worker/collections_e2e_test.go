package worker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"shfleet/grid"
	"shfleet/internal/fleettest"
	"shfleet/jobs"
	"shfleet/sentinel/sentineltest"
	"shfleet/tasks"
)

// The jobs of these tests cover the sample AOI (examples/aoi.geojson) at 200 m
// over 1-11 June 2025: 8 tiles of the utm-10km grid, 50 x 50 px each, four
// southern ones (northing 5090000, 45.96-46.05°N) and four northern ones
// (northing 5100000, 46.05-46.14°N), all between 14.22 and 14.75°E.
//
// The simulator's catalog over that bbox and range (listed once by a throwaway
// search without filter and written down here) has one acquisition every 5 days
// per 1° cell, the same dates and cloud covers in every collection:
//
//	cell E014N46 (46-47°N): 2025-06-02 (cloud 26.46), 2025-06-07 (22.08)
//	cell E014N45 (45-46°N): 2025-06-04 (cloud 56.97), 2025-06-09 (9.70)
//
// The southern tiles touch both cells (they reach 46.05°N), the northern ones
// only E014N46 (they start at 46.0509°N). So a tile gets one item per day of
// the scenes its cells have after the cloud filter (<= the limit):
//
//	no filter:  south 06-02 06-04 06-07 06-09, north 06-02 06-07 -> 4x4+4x2 = 24
//	cloud <=50: south 06-02 06-07 06-09,       north 06-02 06-07 -> 4x3+4x2 = 20
//	cloud <=25: south 06-07 06-09,             north 06-07       -> 4x2+4x1 = 12
//
// and every search fits one page (at most 8 scenes, 100 per page): one catalog
// request per job. DEM has no catalog: one item per tile, 8.
var (
	southTiles = []string{"33N-0440000-5090000-10km", "33N-0450000-5090000-10km", "33N-0460000-5090000-10km", "33N-0470000-5090000-10km"}
	northTiles = []string{"33N-0440000-5100000-10km", "33N-0450000-5100000-10km", "33N-0460000-5100000-10km", "33N-0470000-5100000-10km"}
	collFrom   = time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	collTo     = time.Date(2025, 6, 11, 0, 0, 0, 0, time.UTC)
)

// Evalscripts with each collection's own bands.
const (
	evalS2 = `//VERSION=3
function setup() {
  return { input: [{ bands: ["B02", "B03", "B04", "dataMask"] }], output: { bands: 4, sampleType: "UINT8" } };
}
function evaluatePixel(s) { return [2.5 * 255 * s.B04, 2.5 * 255 * s.B03, 2.5 * 255 * s.B02, 255 * s.dataMask]; }`
	evalS1 = `//VERSION=3
function setup() {
  return { input: [{ bands: ["VV", "VH", "dataMask"] }], output: { bands: 3, sampleType: "FLOAT32" } };
}
function evaluatePixel(s) { return [s.VV, s.VH, s.dataMask]; }`
	evalDEM = `//VERSION=3
function setup() {
  return { input: ["DEM"], output: { bands: 1, sampleType: "FLOAT32" } };
}
function evaluatePixel(s) { return [s.DEM]; }`
	evalLandsat = `//VERSION=3
function setup() {
  return { input: [{ bands: ["B02", "B03", "B04", "dataMask"] }], output: { bands: 4, sampleType: "UINT8" } };
}
function evaluatePixel(s) { return [3 * 255 * s.B04, 3 * 255 * s.B03, 3 * 255 * s.B02, 255 * s.dataMask]; }`
	evalBYOC = `//VERSION=3
function setup() {
  return { input: ["B1", "dataMask"], output: { bands: 2, sampleType: "UINT16" } };
}
function evaluatePixel(s) { return [s.B1, s.dataMask]; }`
)

// collectionTiles are the 8 tiles of the sample AOI at 200 m.
func collectionTiles(t *testing.T) []grid.Tile {
	t.Helper()
	aois, err := grid.ParseFile(filepath.Join(fleettest.Examples(), "aoi.geojson"), grid.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	g, err := grid.ParseGrid("utm-10km")
	if err != nil {
		t.Fatal(err)
	}
	tiles, err := grid.Split(aois, g, grid.SplitOptions{Resolution: 200})
	if err != nil {
		t.Fatal(err)
	}
	if len(tiles) != 8 || tiles[0].Width != 50 || tiles[0].Height != 50 {
		t.Fatalf("%d tiles of %dx%d px; the expectations below are for 8 of 50x50", len(tiles), tiles[0].Width, tiles[0].Height)
	}
	return tiles
}

// collectionSpec is an auto-started job of the collection over the test range,
// writing under its own directory in root (returned). root must be a TempDir
// made before the fleet started: cleanups run last-in first-out, so the
// workers stop before it is removed (a manifest written late cannot race the
// removal).
func collectionSpec(t *testing.T, root, collection, evalscript string, cloud float64) (jobs.Spec, string) {
	t.Helper()
	dir := filepath.Join(root, collection)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	spec := jobs.Spec{Name: collection, Grid: "utm-10km", Resolution: 200, Collection: collection, Evalscript: evalscript,
		From: collFrom, To: collTo, OutputURL: "file://" + dir, AutoStart: true}
	if cloud > 0 {
		spec.MaxCloudCover = &cloud
	}
	return spec, dir
}

// datesByTile is the dates of the job's items of status st, by tile.
func datesByTile(t *testing.T, f *fleettest.Fleet, id string, st jobs.ItemStatus) map[string][]string {
	t.Helper()
	items, err := jobs.CollectItems(f.Store.AllItems(context.Background(), id, st))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, it := range items {
		out[it.Tile] = append(out[it.Tile], it.Date)
	}
	for k := range out {
		slices.Sort(out[k])
	}
	return out
}

// wantDates is the expected dates by tile: south for the southern tiles, north
// for the northern ones.
func wantDates(south, north []string) map[string][]string {
	out := map[string][]string{}
	for _, n := range southTiles {
		out[n] = south
	}
	for _, n := range northTiles {
		out[n] = north
	}
	return out
}

func equalDates(a, b map[string][]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

// seenRequest is one API request as the recorder in front of the simulator saw it.
type seenRequest struct {
	path string
	body []byte
}

// recorder passes every request to the simulator and keeps the catalog and
// process ones (path and body).
type recorder struct {
	sim  *sentineltest.Server
	mu   sync.Mutex
	seen []seenRequest
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if strings.Contains(req.URL.Path, "/catalog/") || strings.Contains(req.URL.Path, "/process") {
		body, _ := io.ReadAll(req.Body)
		req.Body = io.NopCloser(bytes.NewReader(body))
		r.mu.Lock()
		r.seen = append(r.seen, seenRequest{req.URL.Path, body})
		r.mu.Unlock()
	}
	r.sim.ServeHTTP(w, req)
}

func (r *recorder) requests() []seenRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.seen)
}

// wireProcess is what the recorder reads from a process request body.
type wireProcess struct {
	Input struct {
		Data []struct {
			Type       string                     `json:"type"`
			DataFilter map[string]json.RawMessage `json:"dataFilter"`
		} `json:"data"`
	} `json:"input"`
}

// wireCatalog is what the recorder reads from a catalog search body.
type wireCatalog struct {
	Collections []string `json:"collections"`
	Filter      any      `json:"filter"`
}

// noQueuePaused fails the test when any asynq queue is paused.
func noQueuePaused(t *testing.T, insp *asynq.Inspector) {
	t.Helper()
	queues, err := insp.Queues()
	if err != nil {
		t.Fatal(err)
	}
	if len(queues) == 0 {
		t.Fatal("asynq knows no queue at all; the jobs must have used the catalog and default queues")
	}
	for _, q := range queues {
		qi, err := insp.GetQueueInfo(q)
		if err != nil {
			t.Fatal(err)
		}
		if qi.Paused {
			t.Fatalf("queue %q is paused; a permission 403 must never pause a queue", q)
		}
	}
}

// monthNotExhausted fails the test when the fleet's limiter marked the month spent.
func monthNotExhausted(t *testing.T, f *fleettest.Fleet) {
	t.Helper()
	u, err := f.Workers[0].Limiter.Usage(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if u.Exhausted {
		t.Fatalf("the limiter marked %s exhausted; a permission 403 is not a spent month", u.Month)
	}
}

// waitQueue waits until ok accepts the queue's info (asynq archives or
// completes a task just after its handler returned) or 30 s passed, and returns
// the last info.
func waitQueue(t *testing.T, insp *asynq.Inspector, queue string, ok func(*asynq.QueueInfo) bool) *asynq.QueueInfo {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		qi, err := insp.GetQueueInfo(queue)
		if err != nil {
			t.Fatal(err)
		}
		if ok(qi) || time.Now().After(deadline) {
			return qi
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// mustManifest checks that a job that reads final has its manifest: the
// worker writes it before it makes the status final.
func mustManifest(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("job final without its manifest: %v", err)
	}
}

// TestCollectionsEveryKindEndsDone runs a Sentinel-2 job with a cloud limit, a
// Sentinel-1 job (no cloud cover), a DEM job (timeless, no catalog) and a
// Landsat job (US West deployment) at once on one fleet: each ends DONE with the
// items the simulator's catalog implies, outputs identical to what it served,
// requests shaped for the collection and sent to the collection's deployment.
func TestCollectionsEveryKindEndsDone(t *testing.T) {
	root := t.TempDir()
	var rec *recorder
	f := fleettest.Start(t, fleettest.Options{Workers: 2, Front: func(sim *sentineltest.Server) http.Handler {
		rec = &recorder{sim: sim}
		return rec
	}})
	ctx := context.Background()
	tiles := collectionTiles(t)

	type kind struct {
		collection, evalscript string
		cloud                  float64
		want                   map[string][]string // dates by tile, see the top of the file
		items                  int
		dir                    string
		job                    jobs.Job
	}
	kinds := []*kind{
		{collection: "sentinel-2-l2a", evalscript: evalS2, cloud: 50,
			want: wantDates([]string{"2025-06-02", "2025-06-07", "2025-06-09"}, []string{"2025-06-02", "2025-06-07"}), items: 20},
		{collection: "sentinel-1-grd", evalscript: evalS1,
			want: wantDates([]string{"2025-06-02", "2025-06-04", "2025-06-07", "2025-06-09"}, []string{"2025-06-02", "2025-06-07"}), items: 24},
		// DEM: one item per tile over the whole range, dated by its start.
		{collection: "dem", evalscript: evalDEM, want: wantDates([]string{"2025-06-01"}, []string{"2025-06-01"}), items: 8},
		{collection: "landsat-ot-l2", evalscript: evalLandsat, cloud: 25,
			want: wantDates([]string{"2025-06-07", "2025-06-09"}, []string{"2025-06-07"}), items: 12},
	}
	for _, k := range kinds {
		spec, dir := collectionSpec(t, root, k.collection, k.evalscript, k.cloud)
		job, err := f.Ctl.Submit(ctx, spec, tiles)
		if err != nil {
			t.Fatalf("submit %s: %v", k.collection, err)
		}
		k.dir, k.job = dir, job
	}

	keyJob := map[string]*kind{} // RequestKey of every DONE item's request -> its job
	byTile := map[string]grid.Tile{}
	for _, tl := range tiles {
		byTile[tl.Name] = tl
	}
	for _, k := range kinds {
		job := f.WaitFinal(t, k.job.ID, time.Minute)
		k.job = job
		if job.Status != jobs.StatusDone || job.Error != "" {
			t.Fatalf("%s: job %s error %q %+v, want DONE", k.collection, job.Status, job.Error, job.Progress)
		}
		if job.Progress.Total != k.items || job.Progress.Done != k.items || job.Progress.Failed != 0 || job.Progress.TilesAnalysed != 8 {
			t.Fatalf("%s: %d of %d items done, %d failed, %d tiles analysed; want %d of %d, 0, 8",
				k.collection, job.Progress.Done, job.Progress.Total, job.Progress.Failed, job.Progress.TilesAnalysed, k.items, k.items)
		}
		if got := datesByTile(t, f, job.ID, jobs.ItemDone); !equalDates(got, k.want) {
			t.Fatalf("%s: item dates by tile %v, want %v", k.collection, got, k.want)
		}
		if job.Progress.RateLimited != 0 {
			t.Fatalf("%s: %d 429s, want 0", k.collection, job.Progress.RateLimited)
		}
		wantCatalog := 1
		if k.collection == "dem" {
			wantCatalog = 0
		}
		if job.Progress.CatalogRequests != wantCatalog {
			t.Fatalf("%s: %d catalog requests, want %d", k.collection, job.Progress.CatalogRequests, wantCatalog)
		}
		items := f.CheckOutputs(t, job, tiles, k.dir)
		if files := fleettest.OutputFiles(t, k.dir); len(files) != k.items {
			t.Fatalf("%s: %d output files, want %d (one per item)", k.collection, len(files), k.items)
		}
		mustManifest(t, filepath.Join(k.dir, tasks.ManifestKey(job.ID)))
		for _, it := range items {
			keyJob[sentineltest.RequestKey(tasks.BuildProcessRequest(job.Spec, byTile[it.Tile], it))] = k
		}
	}
	if len(keyJob) != 20+24+8+12 {
		t.Fatalf("%d distinct process requests, want 64 (every item its own)", len(keyJob))
	}

	st := f.Sim.Stats()
	if st.RateLimited != 0 {
		t.Fatalf("simulator answered %d 429s, want 0", st.RateLimited)
	}
	// Every answer was a 200: 64 process requests and 3 catalog searches (the
	// DEM job searched nothing); nothing refused (400), forbidden or missing.
	if len(st.RequestsByStatus) != 1 || st.RequestsByStatus[http.StatusOK] != 67 {
		t.Fatalf("answers by status %v, want {200: 67}", st.RequestsByStatus)
	}
	if st.ProcessRequests != 64 || st.CatalogRequests != 3 {
		t.Fatalf("simulator saw %d process and %d catalog requests, want 64 and 3", st.ProcessRequests, st.CatalogRequests)
	}
	for key, n := range st.Served {
		if n != 1 || keyJob[key] == nil {
			t.Fatalf("request %s served %d times (job known: %t), want once, of a known item", key, n, keyJob[key] != nil)
		}
	}

	// Deployments, from the simulator's own record: the Landsat job's process
	// requests (known by their keys) went to /uswest, nobody else's did; the one
	// catalog search under /uswest is the Landsat job's, the other two are on
	// the main deployment.
	uswest := func(path string) bool { return strings.HasPrefix(path, sentineltest.USWestPrefix+"/") }
	processBy := map[string][2]int{} // collection -> {main, uswest}
	catalog := [2]int{}
	for _, r := range f.Sim.Requests() {
		w := 0
		if uswest(r.Path) {
			w = 1
		}
		switch {
		case strings.Contains(r.Path, "/catalog/"):
			catalog[w]++
		case r.Key != "":
			k := keyJob[r.Key]
			if k == nil {
				t.Fatalf("process request %s at %s is no item's", r.Key, r.Path)
			}
			n := processBy[k.collection]
			n[w]++
			processBy[k.collection] = n
		default:
			t.Fatalf("unexpected request %s (status %d)", r.Path, r.Status)
		}
	}
	wantProcess := map[string][2]int{"sentinel-2-l2a": {20, 0}, "sentinel-1-grd": {24, 0}, "dem": {8, 0}, "landsat-ot-l2": {0, 12}}
	if !equalCounts(processBy, wantProcess) || catalog != [2]int{2, 1} {
		t.Fatalf("process requests {main, uswest} by collection %v, want %v; catalog %v, want [2 1]", processBy, wantProcess, catalog)
	}

	// What went over the wire, per collection: the catalog searches of the
	// collections with cloud cover carry the cloud filter, Sentinel-1's none,
	// and there is no DEM search; DEM process requests have no timeRange (nor
	// any other filter), Sentinel-1's no maxCloudCoverage, the others the job's
	// limit.
	searches := map[string]int{}
	filters := map[string]any{}
	for _, r := range rec.requests() {
		if strings.Contains(r.path, "/catalog/") {
			var c wireCatalog
			if err := json.Unmarshal(r.body, &c); err != nil || len(c.Collections) != 1 {
				t.Fatalf("catalog body %s: %v", r.body, err)
			}
			searches[c.Collections[0]]++
			filters[c.Collections[0]] = c.Filter
			if uswest(r.path) != (c.Collections[0] == "landsat-ot-l2") {
				t.Fatalf("catalog search of %s sent to %s", c.Collections[0], r.path)
			}
			continue
		}
		var p wireProcess
		if err := json.Unmarshal(r.body, &p); err != nil || len(p.Input.Data) != 1 {
			t.Fatalf("process body %s: %v", r.body, err)
		}
		d := p.Input.Data[0]
		if uswest(r.path) != (d.Type == "landsat-ot-l2") {
			t.Fatalf("process request of %s sent to %s", d.Type, r.path)
		}
		_, hasTime := d.DataFilter["timeRange"]
		cloud := string(d.DataFilter["maxCloudCoverage"])
		switch d.Type {
		case "dem":
			if d.DataFilter != nil {
				t.Fatalf("DEM process request has dataFilter %v, want none (no timeRange)", d.DataFilter)
			}
		case "sentinel-1-grd":
			if !hasTime || cloud != "" {
				t.Fatalf("Sentinel-1 dataFilter %v: want a timeRange and no maxCloudCoverage", d.DataFilter)
			}
		case "sentinel-2-l2a":
			if !hasTime || cloud != "50" {
				t.Fatalf("Sentinel-2 dataFilter %v: want a timeRange and maxCloudCoverage 50", d.DataFilter)
			}
		case "landsat-ot-l2":
			if !hasTime || cloud != "25" {
				t.Fatalf("Landsat dataFilter %v: want a timeRange and maxCloudCoverage 25", d.DataFilter)
			}
		default:
			t.Fatalf("process request of unexpected collection %q", d.Type)
		}
	}
	wantSearches := map[string]int{"sentinel-2-l2a": 1, "sentinel-1-grd": 1, "landsat-ot-l2": 1}
	if !equalInts(searches, wantSearches) {
		t.Fatalf("catalog searches by collection %v, want %v", searches, wantSearches)
	}
	if filters["sentinel-2-l2a"] != "eo:cloud_cover <= 50" || filters["landsat-ot-l2"] != "eo:cloud_cover <= 25" || filters["sentinel-1-grd"] != nil {
		t.Fatalf("catalog filters %v: want <= 50 for Sentinel-2, <= 25 for Landsat, none for Sentinel-1", filters)
	}
	noQueuePaused(t, f.Ctl.Inspector)
	t.Logf("%.3f PU over 64 items", st.PUSpent)
}

func equalCounts(a, b map[string][2]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func equalInts(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// forbiddenBYOC is a BYOC collection the account of TestForbidden may not read.
const forbiddenBYOC = "byoc-7f3e2a10-5c4b-4d8e-9a61-0b2c3d4e5f60"

// TestForbiddenCollectionFailsAlone: a job on a BYOC collection the account may
// not read and a Sentinel-2 job run at once. The BYOC job's catalog search gets
// the 403 and the job ends FAILED with the server's message; the Sentinel-2 job
// ends DONE; no queue was paused and the month is not marked spent.
func TestForbiddenCollectionFailsAlone(t *testing.T) {
	root := t.TempDir()
	f := fleettest.Start(t, fleettest.Options{Workers: 2, Sim: sentineltest.Config{ForbiddenCollections: []string{forbiddenBYOC}}})
	ctx := context.Background()
	tiles := collectionTiles(t)
	byocSpec, byocDir := collectionSpec(t, root, forbiddenBYOC, evalBYOC, 0)
	s2Spec, s2Dir := collectionSpec(t, root, "sentinel-2-l2a", evalS2, 50)
	byoc, err := f.Ctl.Submit(ctx, byocSpec, tiles)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := f.Ctl.Submit(ctx, s2Spec, tiles)
	if err != nil {
		t.Fatal(err)
	}
	byoc = f.WaitFinal(t, byoc.ID, time.Minute)
	s2 = f.WaitFinal(t, s2.ID, time.Minute)

	// The 8 tiles' centres share one 1° cell: one catalog group, refused once.
	if byoc.Status != jobs.StatusFailed || byoc.Progress.Total != 0 || byoc.Progress.TilesFailed != 8 || byoc.Progress.TilesAnalysed != 0 {
		t.Fatalf("BYOC job %s %+v, want FAILED with 8 failed tiles and no item", byoc.Status, byoc.Progress)
	}
	msg := `Insufficient permissions: this account may not access collection "` + forbiddenBYOC + `"`
	if !strings.Contains(byoc.Error, msg) || !strings.Contains(byoc.Error, "403") {
		t.Fatalf("BYOC job error %q, want the server's 403 message %q", byoc.Error, msg)
	}
	groups, err := f.Store.FailedGroups(ctx, byoc.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(groups) != 1 || groups[0].Group != 0 || len(groups[0].Tiles) != 8 || !strings.Contains(groups[0].Reason, msg) {
		t.Fatalf("failed groups %+v, want group 0 of 8 tiles with the 403", groups)
	}
	if files := fleettest.OutputFiles(t, byocDir); len(files) != 0 {
		t.Fatalf("BYOC job wrote %v, want nothing", files)
	}

	// The Sentinel-2 job as in TestCollectionsEveryKindEndsDone: 20 items.
	if s2.Status != jobs.StatusDone || s2.Progress.Total != 20 || s2.Progress.Done != 20 || s2.Error != "" {
		t.Fatalf("Sentinel-2 job %s error %q %+v, want DONE with 20 items", s2.Status, s2.Error, s2.Progress)
	}
	if n := len(f.CheckOutputs(t, s2, tiles, s2Dir)); n != 20 {
		t.Fatalf("%d Sentinel-2 items checked, want 20", n)
	}

	// One 403 (the BYOC search, not retried), no 400, no 429, no monthly 403.
	st := f.Sim.Stats()
	if st.PermissionDenied != 1 || st.QuotaExceeded != 0 || st.RateLimited != 0 {
		t.Fatalf("simulator: %d permission 403s, %d monthly 403s, %d 429s; want 1, 0, 0", st.PermissionDenied, st.QuotaExceeded, st.RateLimited)
	}
	if len(st.RequestsByStatus) != 2 || st.RequestsByStatus[http.StatusForbidden] != 1 || st.RequestsByStatus[http.StatusOK] != 21 {
		t.Fatalf("answers by status %v, want {200: 21 (20 process, 1 catalog), 403: 1}", st.RequestsByStatus)
	}
	if qi := waitQueue(t, f.Ctl.Inspector, tasks.QueueCatalog, func(qi *asynq.QueueInfo) bool { return qi.Archived >= 1 }); qi.Archived != 1 || qi.Retry != 0 {
		t.Fatalf("catalog queue: %d archived, %d retry; want the BYOC task archived, nothing retried", qi.Archived, qi.Retry)
	}
	noQueuePaused(t, f.Ctl.Inspector)
	for _, id := range []string{byoc.ID, s2.ID} {
		j, err := f.Store.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if j.StoppedReason != "" || !j.ResumeAt.IsZero() {
			t.Fatalf("job %s stopped (%q until %s); a permission 403 stops nothing", id, j.StoppedReason, j.ResumeAt)
		}
	}
	monthNotExhausted(t, f)
}

// permissionMessage is Sentinel Hub's message of a COMMON_INSUFFICIENT_PERMISSIONS
// 403 (as quoted in sentinel-hub/field-delineation issue #1).
const permissionMessage = "You are not authorized to perform this action."

// processGate answers every process request for collection with the service's
// permission 403 and passes everything else to the simulator.
type processGate struct {
	sim        *sentineltest.Server
	collection string
	refused    atomic.Int32
}

func (g *processGate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.Contains(r.URL.Path, "/process") {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		var p wireProcess
		if json.Unmarshal(body, &p) == nil && len(p.Input.Data) > 0 && p.Input.Data[0].Type == g.collection {
			g.refused.Add(1)
			b, _ := json.Marshal(map[string]any{"error": map[string]any{
				"status": http.StatusForbidden, "reason": "Forbidden", "message": permissionMessage, "code": "COMMON_INSUFFICIENT_PERMISSIONS"}})
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusForbidden)
			_, _ = w.Write(b)
			return
		}
	}
	g.sim.ServeHTTP(w, r)
}

// TestPermission403AtProcessFailsItemsAtOnce: the catalog search of a
// Sentinel-2 job succeeds, then every process request is refused with a
// permission 403 (the simulator's ForbiddenCollections is fixed at start, so a
// gate in front of it refuses them). Every item fails at its first attempt, with
// no backoff retry, the job ends FAILED, and nothing is paused.
func TestPermission403AtProcessFailsItemsAtOnce(t *testing.T) {
	root := t.TempDir()
	var gate *processGate
	f := fleettest.Start(t, fleettest.Options{Workers: 2, Front: func(sim *sentineltest.Server) http.Handler {
		gate = &processGate{sim: sim, collection: "sentinel-2-l2a"}
		return gate
	}})
	ctx := context.Background()
	tiles := collectionTiles(t)
	spec, dir := collectionSpec(t, root, "sentinel-2-l2a", evalS2, 50)
	job, err := f.Ctl.Submit(ctx, spec, tiles)
	if err != nil {
		t.Fatal(err)
	}
	job = f.WaitFinal(t, job.ID, time.Minute)

	// The analysis worked (20 items, see the top of the file); none was done.
	if job.Status != jobs.StatusFailed || job.Progress.TilesAnalysed != 8 || job.Progress.TilesFailed != 0 ||
		job.Progress.Total != 20 || job.Progress.Failed != 20 || job.Progress.Done != 0 || job.Progress.CatalogRequests != 1 {
		t.Fatalf("job %s %+v, want FAILED: 8 tiles analysed, 20 items, all failed", job.Status, job.Progress)
	}
	if got, want := datesByTile(t, f, job.ID, jobs.ItemFailed), wantDates([]string{"2025-06-02", "2025-06-07", "2025-06-09"}, []string{"2025-06-02", "2025-06-07"}); !equalDates(got, want) {
		t.Fatalf("failed items by tile %v, want %v", got, want)
	}
	items, err := jobs.CollectItems(f.Store.AllItems(ctx, job.ID, jobs.ItemFailed))
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range items {
		if it.Attempts != 1 || it.Returns != 0 || !strings.Contains(it.LastError, permissionMessage) || !strings.Contains(it.LastError, "COMMON_INSUFFICIENT_PERMISSIONS") {
			t.Fatalf("item %s: %d attempts, %d returns, error %q; want 1 attempt with the server's 403", it.ID, it.Attempts, it.Returns, it.LastError)
		}
	}
	// One refused request per item: no retry, no re-admission.
	if n := gate.refused.Load(); n != 20 {
		t.Fatalf("%d process requests refused, want 20 (one per item)", n)
	}
	st := f.Sim.Stats()
	if st.ProcessRequests != 0 || st.CatalogRequests != 1 || st.RequestsByStatus[http.StatusOK] != 1 || len(st.RequestsByStatus) != 1 {
		t.Fatalf("simulator saw %d process, %d catalog requests, answers %v; want 0, 1, {200: 1}", st.ProcessRequests, st.CatalogRequests, st.RequestsByStatus)
	}
	queue := tasks.ProcessQueue(spec)
	qi := waitQueue(t, f.Ctl.Inspector, queue, func(qi *asynq.QueueInfo) bool { return qi.Archived >= 20 })
	if qi.Archived != 20 || qi.Retry != 0 || qi.Pending != 0 || qi.Scheduled != 0 || qi.Active != 0 {
		t.Fatalf("queue %s: %d archived, %d retry, %d pending, %d scheduled, %d active; want 20 archived only",
			queue, qi.Archived, qi.Retry, qi.Pending, qi.Scheduled, qi.Active)
	}
	archived, err := f.Ctl.Inspector.ListArchivedTasks(queue, asynq.PageSize(100))
	if err != nil {
		t.Fatal(err)
	}
	for _, ti := range archived {
		if ti.Retried != 0 {
			t.Fatalf("task %s was retried %d times, want 0 (a permission 403 fails at once)", ti.ID, ti.Retried)
		}
	}
	if files := fleettest.OutputFiles(t, dir); len(files) != 0 {
		t.Fatalf("job wrote %v, want nothing", files)
	}
	noQueuePaused(t, f.Ctl.Inspector)
	if j, _ := f.Store.Get(ctx, job.ID); j.StoppedReason != "" {
		t.Fatalf("job stopped (%q); a permission 403 stops nothing", j.StoppedReason)
	}
	monthNotExhausted(t, f)
	t.Logf("job error %q", job.Error)
}
