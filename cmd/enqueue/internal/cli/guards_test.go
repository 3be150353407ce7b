package cli_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"shfleet/internal/redistest"
	"shfleet/sentinel/sentineltest"
)

// badCase is one bad input through the CLI: the exit code, substrings of the
// one stderr line, and — checked for every case — Redis (DBSIZE) and the output
// root unchanged.
type badCase struct {
	name string
	args []string
	want []string
}

// runBad runs the cases in parallel against e: each must exit 1 with one
// stderr line holding every want, leave DBSIZE at its value before the run and
// leave outRoot absent.
func runBad(t *testing.T, e *env, outRoot string, cases []badCase) {
	t.Helper()
	base := e.dbsize(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			r := run(t, c.args...)
			if r.code != 1 {
				t.Errorf("exit code %d, want 1 (stderr %q)", r.code, r.stderr)
			}
			// The estimate and warnings come before a refusal only when the
			// refusal is the last check; the reason is the last line.
			lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
			line := lines[len(lines)-1]
			t.Logf("stderr: %s", r.stderr)
			if len(lines) != 1 || !strings.HasPrefix(line, "enqueue: ") {
				t.Errorf("stderr is not one line starting with \"enqueue: \": %q", r.stderr)
			}
			for _, w := range c.want {
				if !strings.Contains(line, w) {
					t.Errorf("stderr %q does not contain %q", line, w)
				}
			}
			for _, goIdent := range []string{"Limits.", "SplitOptions.", "ClientSecretFile:", "Usage:"} {
				if strings.Contains(r.stderr, goIdent) {
					t.Errorf("stderr names %q (a Go identifier or a usage dump): %q", goIdent, r.stderr)
				}
			}
			if n := e.dbsize(t); n != base {
				t.Errorf("DBSIZE %d after the run, want %d: the CLI wrote to Redis", n, base)
			}
			if _, err := os.Stat(outRoot); !os.IsNotExist(err) {
				t.Errorf("output root %s exists after a refused submit (%v)", outRoot, err)
			}
		})
	}
}

// TestBadInputGuards: the guards of issue 14 — bounded file reads, the area
// the user meant, the cost guard, injective output paths, queues and resume,
// evalscripts, messages naming what to change.
func TestBadInputGuards(t *testing.T) {
	e := newEnv(t, sentineltest.Config{})
	dir := t.TempDir()
	write := func(name string, content []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, content, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	fifo := func(name string) string {
		p := filepath.Join(dir, name)
		if err := syscall.Mkfifo(p, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	subdir := filepath.Join(dir, "a-directory.geojson")
	if err := os.Mkdir(subdir, 0o755); err != nil {
		t.Fatal(err)
	}
	fc := func(extra, coords string) string {
		return `{"type":"FeatureCollection",` + extra + `"features":[{"type":"Feature","properties":{"name":"a"},"geometry":{"type":"Polygon","coordinates":[` + coords + `]}}]}`
	}
	box := `[[14.32,45.99],[14.46,45.99],[14.46,46.05],[14.32,46.05],[14.32,45.99]]`
	utf16 := []byte{0xFF, 0xFE}
	for _, r := range fc("", box) {
		utf16 = append(utf16, byte(r), 0)
	}
	twoOutputs := write("two.js", []byte(`//VERSION=3
function setup() {
  return { input: ["B04", "B08"], output: [{ id: "ndvi", bands: 1 }, { id: "rgb", bands: 3 }] };
}
function evaluatePixel(s) { return { ndvi: [0], rgb: [s.B04, s.B04, s.B04] }; }
`))
	sparse := filepath.Join(dir, "huge.geojson")
	if f, err := os.Create(sparse); err != nil {
		t.Fatal(err)
	} else {
		_ = f.Truncate(65 << 20) // 65 MiB, sparse: refused by its size before a read
		f.Close()
	}
	// 11 bytes x 60 Ki lines = 660 KiB of comments.
	bigScript := write("big.js", append([]byte("//VERSION=3\n"), []byte(strings.Repeat("// padding\n", 60<<10))...))
	v2 := write("v2.js", []byte("function setup() { return { input: [\"B04\"], output: { bands: 1 } }; }\nfunction evaluatePixel(s) { return [s.B04]; }\n"))
	utf16Script := write("utf16.js", append([]byte{0xFF, 0xFE}, []byte("/\x00/\x00V\x00")...))
	bigSecret := write("big-secret", []byte(strings.Repeat("s", 5000)))
	// A sliver: a 1° diagonal of next to no area, tiled at 10 m.
	sliver := write("sliver.geojson", []byte(fc("", `[[14.0,46.0],[15.0,46.7],[15.0,46.700001],[14.0,46.0]]`)))

	// A token endpoint that never answers (until the client gives up).
	stop := make(chan struct{})
	silent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-stop:
		}
	}))
	t.Cleanup(func() { close(stop); silent.CloseClientConnections(); silent.Close() })
	// A plain redis-server, spoken to with rediss://.
	plain := redistest.Start(t)
	tlsURL := "rediss://" + strings.TrimPrefix(plain.URL(), "redis://")

	out := filepath.Join(dir, "out")
	submit := func(aoi string, extra ...string) []string {
		a := []string{"submit", aoi, "--from", "2025-06-01", "--to", "2025-07-01", "--evalscript", evalscript,
			"--output", out, "--resolution", "60"}
		return append(append(a, e.flags...), extra...)
	}
	geo := func(name, content string) string { return write(name, []byte(content)) }
	cases := []badCase{
		// 1. One bounded reader: regular files only, a limit per kind.
		{"AOI is a FIFO", submit(fifo("fifo.geojson")), []string{"fifo.geojson", "named pipe (FIFO)", "regular file"}},
		{"AOI is /dev/zero", submit("/dev/zero"), []string{"AOI file /dev/zero", "character device", "regular file"}},
		{"AOI is a device", submit(devLink(t, dir, "zero.geojson")), []string{"zero.geojson", "character device"}},
		{"AOI is a directory", submit(subdir), []string{"a-directory.geojson", "is a directory"}},
		{"AOI over 64 MiB", submit(sparse), []string{"huge.geojson", "65.0 MiB", "64.0 MiB"}},
		{"AOI in UTF-16", submit(write("utf16.geojson", utf16)), []string{"utf16.geojson", "UTF-16", "save the AOI file as UTF-8"}},
		{"AOI in Latin-1", submit(geo("latin1.csv", "name,minlon,minlat,maxlon,maxlat\nLjubljana \xe8,14.3,46.0,14.4,46.1\n")), []string{"latin1.csv", "not UTF-8", "0xE8"}},
		{"AOI is binary", submit(geo("bin.geojson", "{\x00\x01\x02}")), []string{"bin.geojson", "NUL byte"}},
		{"evalscript is /dev/zero", submit(aoiFile, "--evalscript", "/dev/zero"), []string{"--evalscript /dev/zero", "character device"}},
		{"evalscript is a FIFO", submit(aoiFile, "--evalscript", fifo("script.js")), []string{"--evalscript", "script.js", "named pipe (FIFO)"}},
		{"evalscript is a directory", submit(aoiFile, "--evalscript", dir), []string{"--evalscript", "is a directory"}},
		{"evalscript over 512 KiB", submit(aoiFile, "--evalscript", bigScript), []string{"--evalscript", "big.js", "larger than the limit of 512.0 KiB"}},
		{"evalscript in UTF-16", submit(aoiFile, "--evalscript", utf16Script), []string{"--evalscript", "utf16.js", "UTF-16"}},
		{"secret file is /dev/zero", submit(aoiFile, "--client-secret-file", "/dev/zero"), []string{"--client-secret-file /dev/zero", "character device"}},
		{"secret file is a FIFO", submit(aoiFile, "--client-secret-file", fifo("secret-fifo")), []string{"--client-secret-file", "secret-fifo", "named pipe (FIFO)"}},
		{"secret file over 4 KiB", submit(aoiFile, "--client-secret-file", bigSecret), []string{"--client-secret-file", "big-secret", "4.0 KiB"}},
		{"secret file missing", submit(aoiFile, "--client-secret-file", filepath.Join(dir, "no-secret")), []string{"--client-secret-file", "no-secret", "no such file"}},
		{"config.toml is /dev/zero", submit(aoiFile, "--config-file", "/dev/zero"), []string{"sentinelhub config", "--config-file", "/dev/zero", "character device"}},
		{"config.toml is a FIFO", submit(aoiFile, "--config-file", fifo("config.toml")), []string{"--config-file", "config.toml", "named pipe (FIFO)"}},
		{"config.toml is a directory", submit(aoiFile, "--config-file", dir), []string{"--config-file", "is a directory"}},

		// 2. The area the user meant.
		{"ring round a pole", submit(geo("pole.geojson", fc("", `[[0,80],[120,80],[-120,80],[0,80]]`)), "--grid", "wgs84-1deg", "--resolution", "0.01"), []string{"pole.geojson", "feature 0", "goes round a pole"}},
		{"crs in Web Mercator", submit(geo("merc.geojson", fc(`"crs":{"type":"name","properties":{"name":"urn:ogc:def:crs:EPSG::3857"}},`, box))), []string{"merc.geojson", "crs", "EPSG::3857", "not WGS84", "ogr2ogr"}},
		{"crs on a feature", submit(geo("featcrs.geojson", `{"type":"FeatureCollection","features":[{"type":"Feature","crs":{"type":"name","properties":{"name":"EPSG:32633"}},"geometry":{"type":"Polygon","coordinates":[`+box+`]}}]}`)), []string{"featcrs.geojson", "feature 0", "crs EPSG:32633"}},
		{"crs not an object", submit(geo("crsstr.geojson", fc(`"crs":"EPSG:3857",`, box))), []string{"crsstr.geojson", "crs is not an object"}},
		{"CSV header unknown", submit(geo("lat1.csv", "lat1,lon1,lat2,lon2\n46.0,14.3,46.1,14.4\n")), []string{"lat1.csv", "line 1", `header column 1 "lat1"`, "minlon, minlat, maxlon, maxlat"}},
		{"CSV header without maxlat", submit(geo("three.csv", "minlon,minlat,maxlon\n14.3,46.0,14.4\n")), []string{"three.csv", "no maxlat column"}},
		{"CSV header repeats a column", submit(geo("twice.csv", "minlon,minlat,maxlon,maxlat,west\n14.3,46.0,14.4,46.1,14.3\n")), []string{"twice.csv", "names minlon twice (columns 1 and 5)"}},
		{"CSV row shorter than its header", submit(geo("short.csv", "minlat,minlon,maxlat,maxlon,name\n46.0,14.3,46.1\n")), []string{"short.csv", "line 2", "3 columns; the header has 5"}},
		{"CSV by header, swapped values out of range", submit(geo("swapped.csv", "minlat,minlon,maxlat,maxlon\n146.0,14.3,146.1,14.4\n")), []string{"swapped.csv", "line 2", "minlat"}},

		// 3. The cost guard.
		{"estimate over --max-pu", submit(aoiFile, "--max-pu", "1"), []string{"cost guard", "more than --max-pu 1", "x 6 items each (30 days at a revisit of 5 days)", "nothing was submitted"}},
		{"negative --max-pu", submit(aoiFile, "--max-pu", "-5"), []string{"--max-pu -5", "positive"}},
		{"tiles out of proportion to the AOI", submit(sliver, "--resolution", "10"), []string{"cost guard", "times the AOIs' own", "--accept-cost"}},
		{"over the configured month's share", submit(aoiFile, "--policy", "pu:1:PT744H", "--policy", "requests:10:PT1M"), []string{"cost guard", "50% of the 1 PU left of the account's 1 PU", "--accept-cost"}},

		// 4. Outputs: injective templates, no mem:// for a fleet.
		{"template without <date>", submit(aoiFile, "--path-template", "<requestId>/<tileName>/<outputId>.<format>"), []string{"--path-template", "has no <date>", "overwrite or skip"}},
		{"constant template", submit(aoiFile, "--path-template", "results/out.tif"), []string{"--path-template", "has no <tileName> or <date>"}},
		{"template without <tileName>", submit(aoiFile, "--path-template", "<date>/<outputId>.<format>"), []string{"has no <tileName>"}},
		{"two outputs without <outputId>", submit(aoiFile, "--evalscript", twoOutputs, "--path-template", "<tileName>/<date>.<format>"), []string{"has no <outputId>", "this job writes 2 outputs"}},
		{"placeholders that touch", submit(aoiFile, "--path-template", "<tileName><date>/<outputId>.<format>"), []string{"<date> directly follows <tileName>", "separator"}},
		{"--cog without a GeoTIFF output", submit(aoiFile, "--cog", "--response", "default:image/png"), []string{"--cog", "writes no GeoTIFF", "image/tiff"}},
		{"mem:// for a fleet job", submit(aoiFile, "--output", "mem://"), []string{"--output mem://", "other processes", "embedded demo and tests"}},
		{"output under a file", submit(aoiFile, "--output", filepath.Join(evalscriptAbs(t), "out")), []string{"--output", "is a file, not a directory"}},

		// 5. Queues.
		{"blank --queue", submit(aoiFile, "--queue", "  "), []string{"--queue is empty"}},

		// 6. Evalscripts.
		{"evalscript without //VERSION=3", submit(aoiFile, "--evalscript", v2), []string{"--evalscript", "v2.js", "not //VERSION=3", "V3 evalscripts only"}},

		// 7. Messages that name what to change.
		{"rediss:// to a plain Redis", submit(aoiFile, "--redis-url", tlsURL), []string{"no TLS answer", "plain (non-TLS) Redis", "use redis://"}},
		{"token endpoint silent", submit(aoiFile, "--token-url", silent.URL, "--credential-timeout", "300ms"), []string{"did not answer within --credential-timeout 300ms", "raise --credential-timeout"}},
		{"--max-tiles 0", submit(aoiFile, "--max-tiles", "0"), []string{"--max-tiles 0"}},
		{"more tiles than --max-tiles", submit(aoiFile, "--max-tiles", "1"), []string{"more than 1 tiles", "--max-tiles"}},
		{"AOI over --max-area-km2", submit(aoiFile, "--max-area-km2", "1"), []string{"aoi.geojson", "feature 0", "--max-area-km2"}},
	}
	runBad(t, e, out, cases)
	if n := plain.Client().DBSize(context.Background()).Val(); n != 0 {
		t.Errorf("the plain Redis holds %d keys, want 0", n)
	}
}

// devLink is a symlink with an AOI extension to /dev/zero: the stat follows it
// and refuses the device.
func devLink(t *testing.T, dir, name string) string {
	p := filepath.Join(dir, name)
	if err := os.Symlink("/dev/zero", p); err != nil {
		t.Fatal(err)
	}
	return p
}

func evalscriptAbs(t *testing.T) string {
	p, err := filepath.Abs(evalscript)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestBadInputEnvSecret: SH_CLIENT_SECRET_FILE naming a device is refused by
// name (the environment is per process, so this case runs alone).
func TestBadInputEnvSecret(t *testing.T) {
	e := newEnv(t, sentineltest.Config{})
	out := filepath.Join(t.TempDir(), "out")
	t.Setenv("SH_CLIENT_SECRET_FILE", "/dev/zero")
	cfg := e.sim.ClientConfig()
	args := []string{"submit", aoiFile, "--from", "2025-06-01", "--to", "2025-07-01", "--evalscript", evalscript,
		"--output", out, "--resolution", "60", "--redis-url", e.redis.URL(), "--client-id", cfg.ClientID, "--token-url", cfg.TokenURL, "--base-url", cfg.BaseURL}
	r := run(t, args...)
	if r.code != 1 || !strings.Contains(r.stderr, "SH_CLIENT_SECRET_FILE /dev/zero: is a character device") {
		t.Errorf("exit %d, stderr %q: want 1 and the device named", r.code, r.stderr)
	}
	if n := e.dbsize(t); n != 0 {
		t.Errorf("DBSIZE %d, want 0", n)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("output root exists: %v", err)
	}
}

// TestResumeRefusesUnstoppedJob: resume of a job that is not OUT_OF_PU changes
// nothing: no key, no job field, not the account's month flag.
func TestResumeRefusesUnstoppedJob(t *testing.T) {
	e := newEnv(t, sentineltest.Config{})
	out := filepath.Join(t.TempDir(), "out")
	r := run(t, append([]string{"submit", aoiFile, "--from", "2025-06-01", "--to", "2025-07-01", "--evalscript", evalscript,
		"--output", out, "--resolution", "60", "--no-start", "--json"}, e.flags...)...)
	if r.code != 0 {
		t.Fatalf("submit: %d %s", r.code, r.stderr)
	}
	job := lastJSON[struct {
		ID string `json:"id"`
	}](t, r)
	before, _ := e.store.Get(context.Background(), job.ID)
	keys := e.dbsize(t)
	r = run(t, append([]string{"resume", job.ID}, e.flags...)...)
	if r.code != 1 || !strings.Contains(r.stderr, "not stopped for OUT_OF_PU") || !strings.Contains(r.stderr, "nothing was changed") {
		t.Errorf("resume: exit %d, stderr %q; want 1 and the refusal", r.code, r.stderr)
	}
	after, _ := e.store.Get(context.Background(), job.ID)
	b1, _ := json.Marshal(before)
	b2, _ := json.Marshal(after)
	if string(b1) != string(b2) {
		t.Errorf("the job changed:\n%s\n%s", b1, b2)
	}
	if n := e.dbsize(t); n != keys {
		t.Errorf("DBSIZE %d, want %d", n, keys)
	}
}

// TestSubmitAntimeridianAndHeaderTiles: the antimeridian box and a CSV with
// its columns in another order are tiled where the user drew them (tile
// names hand-worked in grid's TestAntimeridianTiles and below), and a job with
// no live worker is submitted with a warning naming the queues.
func TestSubmitAntimeridianAndHeaderTiles(t *testing.T) {
	e := newEnv(t, sentineltest.Config{})
	dir := t.TempDir()
	fiji := filepath.Join(dir, "fiji.geojson")
	if err := os.WriteFile(fiji, []byte(`{"type":"Polygon","coordinates":[[[179.9,-16.1],[-179.9,-16.1],[-179.9,-16.0],[179.9,-16.0],[179.9,-16.1]]]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	// Columns minlat,minlon,...: lon 14.5..14.6, lat 46.0..46.05 (Ljubljana).
	// Hand-worked with gdaltransform to EPSG:32633: eastings 461284..469055,
	// northings 5094125..5099724: column 460000, row 5090000 — one 10 km tile, 33N-0460000-5090000-10km.
	csv := filepath.Join(dir, "latfirst.csv")
	if err := os.WriteFile(csv, []byte("minlat,minlon,maxlat,maxlon,name\n46.0,14.5,46.05,14.6,centre\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		aoi  string
		want []string
	}{
		{fiji, []string{"01S-0170000-8210000-10km", "01S-0170000-8220000-10km", "01S-0180000-8210000-10km", "01S-0180000-8220000-10km",
			"60S-0810000-8210000-10km", "60S-0810000-8220000-10km", "60S-0820000-8210000-10km", "60S-0820000-8220000-10km"}},
		{csv, []string{"33N-0460000-5090000-10km"}},
	} {
		r := run(t, append([]string{"submit", c.aoi, "--from", "2025-06-01", "--to", "2025-07-01", "--evalscript", evalscript,
			"--output", filepath.Join(dir, "out"), "--no-start", "--json"}, e.flags...)...)
		if r.code != 0 {
			t.Fatalf("%s: exit %d: %s", c.aoi, r.code, r.stderr)
		}
		if !strings.Contains(r.stderr, `no live worker serves queue "catalog"`) || !strings.Contains(r.stderr, `no live worker serves queue "default"`) {
			t.Errorf("stderr %q: want the no-worker warnings", r.stderr)
		}
		job := lastJSON[struct {
			ID string `json:"id"`
		}](t, r)
		tiles, err := e.store.Tiles(context.Background(), job.ID)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, tl := range tiles {
			got = append(got, tl.Name)
		}
		slices.Sort(got)
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: tiles %v, want %v", c.aoi, got, c.want)
		}
	}
}
