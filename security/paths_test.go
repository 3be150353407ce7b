package security_test

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"shfleet/grid"
	"shfleet/internal/fleettest"
	"shfleet/jobs"
	"shfleet/output"
	"shfleet/sentinel"
	"shfleet/tasks"
)

// hostileNames are names an attacker might put in an AOI file, a tile list or a
// response identifier to place a file outside the output root.
var hostileNames = []string{
	"..", "../..", "../../etc", "../../../../../../tmp/x", "/etc/passwd", `..\..\windows`, "a/../../b",
	"....//....//x", ".", "...", ".hidden", "%2e%2e%2f%2e%2e", "x\x00y", "‥/‥", "~root", "C:\\x",
}

// TestHostileNamesStayUnderOutputRoot runs real jobs whose AOI feature is named
// "../../etc", whose tiles and response identifier carry traversal names, and one
// whose path template itself tries to climb out, and checks that every file
// written is under the output directory and nothing appeared beside it.
func TestHostileNamesStayUnderOutputRoot(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newSecFleet(t, 1)

	// The output root sits three levels deep in a directory of its own, so any
	// "../../x" escape lands where walkFiles(root) sees it.
	root := t.TempDir()
	outDir := filepath.Join(root, "a", "b", "out")
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		t.Fatal(err)
	}
	before := walkFiles(t, root)

	aoiFile := filepath.Join(t.TempDir(), "evil.geojson")
	geo := `{"type":"FeatureCollection","features":[{"type":"Feature","properties":{"name":"../../etc"},
	  "geometry":{"type":"Polygon","coordinates":[[[14.32,45.99],[14.40,45.99],[14.40,46.03],[14.32,46.03],[14.32,45.99]]]}}]}`
	if err := os.WriteFile(aoiFile, []byte(geo), 0o644); err != nil {
		t.Fatal(err)
	}
	aois, err := grid.ParseFile(aoiFile, grid.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if n := aois[0].Name; strings.ContainsAny(n, `/\`) || strings.Contains(n, "..") || n == "" {
		t.Fatalf("AOI name %q from properties.name \"../../etc\" is not path-safe", n)
	}
	tiles := splitAOI(t, aoiFile)
	if len(tiles) == 0 {
		t.Fatal("the AOI gave no tiles")
	}
	// A submitter is not trusted either: a hand-made tile list can carry any
	// names. Tile names become item ids, which the job store refuses when they
	// hold a separator; the others must be sanitised into the output root.
	for i := range tiles {
		tiles[i].Name = []string{"..x", ".hidden", "...", "x\x00y", "%2e%2e%2f", "~root"}[i%6] + strings.Repeat("-", i/6)
		tiles[i].AOI = "../../etc"
		tiles[i].AOIs = []string{"../../etc"}
	}
	spec := smallSpec(t, outDir)
	spec.Name, spec.AOISource = "../../etc", "../../etc.geojson"
	spec.PathTemplate = "<tileName>/<date>/<outputId>.<format>"
	spec.Responses = []jobs.Response{{Identifier: "../../evil", Format: jobs.ResponseFormat{Type: "image/tiff"}}}
	job, err := f.ctl.Submit(ctx, spec, tiles)
	if err != nil {
		t.Fatal(err)
	}
	job = f.waitFinal(t, job.ID, 40*time.Second)
	if job.Status != jobs.StatusDone {
		t.Fatalf("job with hostile names: status %s, want DONE (names are sanitised, not refused): %+v", job.Status, job.Progress)
	}

	// Tile names with separators or dot segments: refused at submit, or their
	// analysis is refused (the catalog task fails) — either way nothing is written.
	for _, name := range []string{"..", ".", "a/b", `a\b`, "a b"} {
		dot := slices.Clone(tiles[:1])
		dot[0].Name = name
		if _, err := f.ctl.Submit(ctx, smallSpec(t, outDir), dot); err == nil || !strings.Contains(err.Error(), "path-safe") {
			t.Errorf("tile name %q: Submit = %v, want a path-safety refusal", name, err)
		}
	}
	sepTiles := slices.Clone(tiles[:1])
	sepTiles[0].Name = "../../escape"
	if bad, err := f.ctl.Submit(ctx, smallSpec(t, outDir), sepTiles); err == nil {
		lastErr := waitCatalogFailure(t, f, bad.ID)
		if !strings.Contains(lastErr, "path-safe") {
			t.Errorf("tile %q: catalog task failed with %q, want a path-safety refusal", sepTiles[0].Name, lastErr)
		}
		if job, err := f.store.Get(ctx, bad.ID); err != nil || job.Status == jobs.StatusDone || job.Progress.Total != 0 {
			t.Fatalf("job with tile %q: %+v, %v; want no items", sepTiles[0].Name, job, err)
		}
		if err := f.ctl.Cancel(ctx, bad.ID); err != nil {
			t.Fatal(err)
		}
	}

	// A template that climbs out is refused by the parser...
	for _, tmpl := range []string{"../<tileName>/<date>.<format>", "/etc/<tileName>.<format>", "a/../../<tileName>.<format>",
		"<tileName>/../../../x.<format>", `..\<tileName>.<format>`, "<tileName>//<date>.<format>"} {
		if _, err := output.ParseTemplate(tmpl); err == nil {
			t.Errorf("path template %q was accepted", tmpl)
		}
	}
	// ...and a job that carries one anyway fails its items without writing.
	spec2 := smallSpec(t, outDir)
	spec2.PathTemplate = "../../<tileName>/<date>.<format>"
	if job2, err := f.ctl.Submit(ctx, spec2, tiles[:1]); err == nil {
		job2 = f.waitFinal(t, job2.ID, 40*time.Second)
		if job2.Status == jobs.StatusDone || job2.Progress.Done != 0 {
			t.Fatalf("job with path template %q: status %s, %d items done; want none", spec2.PathTemplate, job2.Status, job2.Progress.Done)
		}
	}

	after := walkFiles(t, root)
	var inside int
	outRel, _ := filepath.Rel(root, outDir)
	for p := range after {
		if before[p] {
			continue
		}
		if !strings.HasPrefix(p, outRel+string(filepath.Separator)) {
			t.Errorf("ESCAPE: %s was written outside the output directory %s", filepath.Join(root, p), outDir)
			continue
		}
		inside++
	}
	var items []jobs.Record
	for _, r := range fleettest.Records(t, f.store, job.ID) {
		items = append(items, r)
	}
	if inside == 0 || len(items) == 0 {
		t.Fatalf("%d files written for %d items: the check looked at nothing", inside, len(items))
	}
	for _, it := range items {
		for _, o := range it.Outputs {
			p := filepath.Join(outDir, filepath.FromSlash(o.Key))
			if !strings.HasPrefix(p, outDir+string(filepath.Separator)) || strings.Contains(o.Key, "..") {
				t.Errorf("item %s output key %q leaves the root", it.Item, o.Key)
			}
			if _, err := os.Stat(p); err != nil {
				t.Errorf("item %s output %q: %v", it.Item, o.Key, err)
			}
		}
	}
}

// TestTemplateRenderKeepsKeysInside renders the default and a custom template
// with every hostile name in every placeholder: each key is relative, has no "."
// or ".." segment, and joined to a root stays inside it.
func TestTemplateRenderKeepsKeysInside(t *testing.T) {
	t.Parallel()
	root := filepath.Join(t.TempDir(), "out")
	for _, src := range []string{"", "x/<tileName>-<date>/<requestId>_<outputId>.<format>"} {
		tmpl, err := output.ParseTemplate(src)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range hostileNames {
			v := output.PathVars{RequestID: name, TileName: name, Date: name, OutputID: name, Format: name}
			key, err := tmpl.Render(v)
			if err != nil {
				continue // refusing is safe too
			}
			segs := strings.Split(key, "/")
			if strings.HasPrefix(key, "/") || slices.Contains(segs, "..") || slices.Contains(segs, ".") ||
				strings.ContainsAny(key, "\\\x00") || len(segs) != strings.Count(tmpl.String(), "/")+1 {
				t.Errorf("template %q with %q rendered unsafe key %q", tmpl, name, key)
			}
			if p := filepath.Join(root, filepath.FromSlash(key)); !strings.HasPrefix(p, root+string(filepath.Separator)) {
				t.Errorf("template %q with %q: %q leaves the root", tmpl, name, p)
			}
		}
	}
}

// TestTarPartsCannotEscape feeds sentinel.SplitTar (which splits multi-output
// Process answers) archives whose entry names climb out; each is refused.
func TestTarPartsCannotEscape(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"../../evil.tif", "/etc/evil.tif", "a/../../evil.tif", `..\..\evil.tif`, "..", "../x/.."} {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		body := []byte("payload")
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(body); err != nil {
			t.Fatal(err)
		}
		if err := tw.Close(); err != nil {
			t.Fatal(err)
		}
		var got []string
		err := sentinel.SplitTar(&buf, func(n string, r io.Reader) error {
			got = append(got, n)
			_, err := io.Copy(io.Discard, r)
			return err
		})
		if err == nil {
			t.Errorf("tar entry %q accepted as %q", name, got)
		}
	}
}

// waitCatalogFailure waits until a catalog task of job id has failed at least
// once and returns its last error.
func waitCatalogFailure(t *testing.T, f *secFleet, id string) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		for _, list := range []func(string, ...asynq.ListOption) ([]*asynq.TaskInfo, error){
			f.ctl.Inspector.ListRetryTasks, f.ctl.Inspector.ListArchivedTasks} {
			infos, err := list(tasks.QueueCatalog)
			if err != nil {
				t.Fatal(err)
			}
			for _, ti := range infos {
				if ti.LastErr != "" && bytes.Contains(ti.Payload, []byte(id)) {
					return ti.LastErr
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no failed catalog task of job %s after 20s", id)
	return ""
}
