package cli_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"shfleet/internal/redistest"
	"shfleet/sentinel/sentineltest"
)

// TestBadInput runs bad input through the CLI's real code path: every case
// fails with one clear stderr line naming the problem and where, and writes
// nothing to Redis.
func TestBadInput(t *testing.T) {
	e := newEnv(t, sentineltest.Config{})
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	polygon := func(coords string) string {
		return `{"type":"FeatureCollection","features":[{"type":"Feature","properties":{"name":"a"},"geometry":{"type":"Polygon","coordinates":[` + coords + `]}}]}`
	}
	malformedJSON := write("malformed.geojson", "{\"type\": \"FeatureCollection\",\n \"features\": [ {\"type\": \"Feature\",, } ]}")
	malformedGeo := write("malformed-geo.geojson", `{"type":"FeatureCollection","features":[{"type":"Feature","geometry":{"type":"Polygon","coordinates":[[[14.3,46.0],[14.4,46.0]]]}}]}`)
	point := write("point.geojson", `{"type":"FeatureCollection","features":[{"type":"Feature","geometry":{"type":"Point","coordinates":[14.3,46.0]}}]}`)
	outOfRange := write("range.geojson", polygon(`[[14.3,46.0],[214.4,46.0],[214.4,46.1],[14.3,46.1],[14.3,46.0]]`))
	inverted := write("inverted.csv", "14.3,46.0,14.4,46.1,ok\n14.6,46.1,14.5,46.0,upside-down\n")
	empty := write("empty.geojson", "")
	huge := write("huge.geojson", polygon(`[[-60,-60],[60,-60],[60,60],[-60,60],[-60,-60]]`))
	emptyScript := write("empty.js", "  \n")

	// A closed port: listen, note the address, close.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedURL := "redis://" + ln.Addr().String() + "/0"
	ln.Close()
	evicting := redistest.Start(t, redistest.Options{Args: []string{"--maxmemory-policy", "allkeys-lru"}})
	evictingClient := evicting.Client()
	t.Cleanup(func() { evictingClient.Close() })

	out := filepath.Join(dir, "out")
	submit := func(aoi string, extra ...string) []string {
		a := []string{"submit", aoi, "--from", "2025-06-01", "--to", "2025-07-01", "--evalscript", evalscript,
			"--output", out, "--resolution", "60"}
		return append(append(a, e.flags...), extra...)
	}
	cases := []struct {
		name string
		args []string
		want []string // substrings of the one stderr line
	}{
		{"malformed JSON", submit(malformedJSON), []string{"malformed.geojson:2:", "JSON"}},
		{"malformed GeoJSON", submit(malformedGeo), []string{"malformed-geo.geojson", "feature 0", "geometry.coordinates"}},
		{"wrong geometry type", submit(point), []string{"point.geojson", "feature 0", "geometry.type", "Point"}},
		{"coordinates out of range", submit(outOfRange), []string{"range.geojson", "feature 0", "214.4"}},
		{"inverted bbox", submit(inverted), []string{"inverted.csv", "line 2"}},
		{"empty input", submit(empty), []string{"empty.geojson:1:1", "end of JSON input"}},
		{"AOI over the size limit", submit(huge), []string{"huge.geojson", "feature 0", "km²", "--max-area-km2"}},
		{"missing AOI file", submit(filepath.Join(dir, "nope.geojson")), []string{"nope.geojson", "no such file"}},
		{"missing evalscript", submit(aoiFile, "--evalscript", filepath.Join(dir, "missing.js")), []string{"--evalscript", "missing.js", "does not exist"}},
		{"empty evalscript", submit(aoiFile, "--evalscript", emptyScript), []string{"--evalscript", "empty.js", "empty"}},
		{"from after to", submit(aoiFile, "--from", "2025-08-01"), []string{"--from 2025-08-01", "--to 2025-07-01", "empty"}},
		{"unparseable date", submit(aoiFile, "--to", "2025-13-45"), []string{"--to", "2025-13-45", "YYYY-MM-DD"}},
		{"unknown grid", submit(aoiFile, "--grid", "utm-7km"), []string{"--grid", "utm-7km", "utm-10km"}},
		{"unknown collection", submit(aoiFile, "--collection", "sentinel-9"), []string{"--collection", "sentinel-9", "sentinel-2-l2a", "byoc-<id>"}},
		{"cloud filter on Sentinel-1", submit(aoiFile, "--collection", "sentinel-1-grd", "--max-cloud", "20"), []string{"sentinel-1-grd", "no cloud cover", "--max-cloud"}},
		{"leastCC on a BYOC collection", submit(aoiFile, "--collection", "byoc-abc", "--mosaicking", "leastCC"), []string{"--mosaicking", "leastCC", "byoc-abc", "mostRecent"}},
		{"mosaicking order on DEM", submit(aoiFile, "--collection", "dem", "--mosaicking", "mostRecent"), []string{"dem", "no mosaicking order", "--mosaicking"}},
		{"Landsat on CDSE", submit(aoiFile, "--collection", "landsat-ot-l2", "--base-url", "https://sh.dataspace.copernicus.eu"), []string{"landsat-ot-l2", "uswest", "--uswest-url"}},
		{"resolution over 2500 px", submit(aoiFile, "--grid", "utm-100km", "--resolution", "10"), []string{"--resolution 10", "utm-100km", "2500", "--resolution >= 40.032", "--subdivide"}},
		// utm-10km is Batch tiling grid 1, which takes 10 and 20 m only.
		{"batch resolution the grid lacks", submit(aoiFile, "--engine", "batch", "--output", "s3://batch-out?region=eu-central-1"),
			[]string{"--engine batch --resolution 60", "utm-10km (tiling grid 1)", "use one of 10, 20 m"}},
		{"COG without a GeoTIFF output", submit(aoiFile, "--cog", "--response", "default:image/png"), []string{"--cog", "writes no GeoTIFF"}},
		{"invalid output URL", submit(aoiFile, "--output", "ftp://example.com/out"), []string{"--output", "ftp", "not supported"}},
		{"interval without interval mode", submit(aoiFile, "--interval", "P1M"), []string{"--interval P1M", "--mode interval"}},
		{"bad interval", submit(aoiFile, "--mode", "interval", "--interval", "1 month"), []string{"--interval", "1 month", "P1M"}},
		{"bad path template", submit(aoiFile, "--path-template", "<job>/<tileName>.tif"), []string{"--path-template", "<job>"}},
		{"bad cloud cover", submit(aoiFile, "--max-cloud", "130"), []string{"--max-cloud 130", "0..100"}},
		{"response the evalscript lacks", submit(aoiFile, "--response", "ndvi:image/tiff"), []string{"--response", "ndvi", "evalscript-truecolor.js"}},
		{"wrong credentials", append(submit(aoiFile), credentialFlags(t, e.sim, "not-the-secret")...), []string{"wrong credentials", e.sim.ClientConfig().TokenURL, "HTTP 401", "nothing was submitted"}},
		{"unreachable Redis", submit(aoiFile, "--redis-url", closedURL), []string{closedURL, "unreachable", "connection refused"}},
		{"evicting Redis", submit(aoiFile, "--redis-url", evicting.URL()), []string{evicting.URL(), "allkeys-lru", "noeviction"}},
		{"unknown job status", append([]string{"status", "01NOSUCHJOB"}, e.flags...), []string{"job 01NOSUCHJOB: not found; list jobs with `enqueue list`"}},
		{"unknown job restart", append([]string{"restart", "01NOSUCHJOB"}, e.flags...), []string{"job 01NOSUCHJOB: not found; list jobs with `enqueue list`"}},
		{"unknown job cancel", append([]string{"cancel", "01NOSUCHJOB"}, e.flags...), []string{"job 01NOSUCHJOB: not found; list jobs with `enqueue list`"}},
		{"unknown job resume", append([]string{"resume", "01NOSUCHJOB"}, e.flags...), []string{"job 01NOSUCHJOB: not found; list jobs with `enqueue list`"}},
		{"unknown job start", append([]string{"start", "01NOSUCHJOB"}, e.flags...), []string{"job 01NOSUCHJOB: not found; list jobs with `enqueue list`"}},
		{"no jobs yet", append([]string{"status"}, e.flags...), []string{"no jobs yet"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			if n := e.dbsize(t); n != 0 {
				t.Fatalf("DBSIZE %d before the run, want 0", n)
			}
			r := run(t, c.args...)
			if r.code != 1 {
				t.Errorf("exit code %d, want 1 (stderr %q)", r.code, r.stderr)
			}
			line := strings.TrimSuffix(r.stderr, "\n")
			t.Logf("stderr: %s", line)
			if strings.Contains(line, "\n") || !strings.HasPrefix(line, "enqueue: ") {
				t.Errorf("stderr is not one line starting with \"enqueue: \": %q", r.stderr)
			}
			for _, w := range c.want {
				if !strings.Contains(line, w) {
					t.Errorf("stderr %q does not contain %q", line, w)
				}
			}
			if strings.Contains(r.stderr, "Usage:") || strings.Contains(r.stderr, "not-the-secret") {
				t.Errorf("stderr has a usage dump or the secret: %q", r.stderr)
			}
			if n := e.dbsize(t); n != 0 {
				t.Fatalf("DBSIZE %d after the run, want 0: the CLI wrote to Redis", n)
			}
			if _, err := os.Stat(out); !os.IsNotExist(err) {
				t.Errorf("output root %s exists after a refused command (%v)", out, err)
			}
			if n, err := evictingClient.DBSize(context.Background()).Result(); err != nil || n != 0 {
				t.Fatalf("evicting Redis: DBSIZE %d (%v), want 0", n, err)
			}
		})
	}
}

// TestUsageErrors: a wrong command line exits 2 with one line and no usage dump.
func TestUsageErrors(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"unknown command", []string{"frobnicate"}, `unknown command "frobnicate"`},
		{"unknown flag", []string{"list", "--bogus"}, "unknown flag: --bogus"},
		{"missing required flags", []string{"submit", aoiFile, "--skip-credential-check"}, "required flag"},
		{"too many arguments", []string{"status", "a", "b"}, "accepts at most 1 arg"},
		{"missing job", []string{"cancel"}, "accepts 1 arg"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			r := run(t, c.args...)
			if r.code != 2 {
				t.Errorf("exit code %d, want 2 (stderr %q)", r.code, r.stderr)
			}
			line := strings.TrimSuffix(r.stderr, "\n")
			if strings.Contains(line, "\n") || !strings.Contains(line, c.want) || strings.Contains(line, "Usage:") {
				t.Errorf("stderr %q: want one line containing %q", r.stderr, c.want)
			}
		})
	}
}
