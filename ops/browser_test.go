package ops_test

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"shfleet/jobs"
	"shfleet/sentinel/sentineltest"
)

// artifactDir keeps what the browser test saw: $SHFLEET_ARTIFACTS (CI keeps
// it), else testdata/artifacts (gitignored, see ops/.gitignore).
var artifactDir = cmp.Or(os.Getenv("SHFLEET_ARTIFACTS"), "testdata/artifacts")

// chromium runs Debian's chromium headless with args and the url, and returns
// its stdout.
func chromium(t *testing.T, bin string, url string, args ...string) []byte {
	t.Helper()
	profile, err := os.MkdirTemp("", "ops-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(profile)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	all := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
		"--user-data-dir=" + profile}, args...)
	cmd := exec.CommandContext(ctx, bin, append(all, url)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Env = append(os.Environ(), "HOME="+profile)
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, stderr.Bytes())
	}
	return stdout.Bytes()
}

// mapRects matches a tile of the job map and captures its state.
var mapRects = regexp.MustCompile(`<rect x="[0-9.]+" y="[0-9.]+" width="[0-9.]+" height="[0-9.]+" fill="#[0-9a-f]{6}" stroke="#fff" stroke-width="0.5" data-state="([a-z]+)">`)

// mixedDate returns the job's date with the most tiles not started (PENDING
// or SCHEDULED) among those with a tile DONE.
func mixedDate(ctx context.Context, st *jobs.Store, id string) (string, error) {
	all, err := st.TileStatuses(ctx, id, "")
	if err != nil {
		return "", err
	}
	best, bestWaiting := "", 0
	for _, d := range all.Dates {
		ts, err := st.TileStatuses(ctx, id, d)
		if err != nil {
			return "", err
		}
		done, waiting := 0, 0
		for _, c := range ts.Tiles {
			if c.Done > 0 {
				done++
			} else if c.Pending+c.Scheduled > 0 {
				waiting++
			}
		}
		if done > 0 && waiting > bestWaiting {
			best, bestWaiting = d, waiting
		}
	}
	if best == "" {
		return "", fmt.Errorf("job %s: no date has tiles done and tiles waiting: %+v", id, all)
	}
	return best, nil
}

// field reads the number or text the page shows for a job's field.
func field(t *testing.T, dom []byte, job, name string) string {
	t.Helper()
	re := regexp.MustCompile(`data-job="` + regexp.QuoteMeta(job) + `" data-field="` + name + `">([^<]*)<`)
	m := re.FindSubmatch(dom)
	if m == nil {
		t.Fatalf("the page shows no %s for job %s", name, job)
	}
	return string(m[1])
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("page shows %q where a number belongs", s)
	}
	return n
}

// TestBrowserJobsPage loads /jobs in a real browser while a job runs (the
// simulator answers slowly) and checks that what it shows, after the page's
// script ran, matches the job store.
func TestBrowserJobsPage(t *testing.T) {
	t.Parallel()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium is not installed; the jobs page is tested in a real browser: apt-get install -y chromium (%v)", err)
	}
	// 52 items, 4 at a time, 1.5 s each: the job runs for about 20 s; the test
	// ends after the screenshot and hands the rest back to the queue.
	f := newFleet(t, 2, 2, sentineltest.Config{Faults: sentineltest.Faults{Latency: 1500 * time.Millisecond}})
	id := f.submit(t).ID
	f.WaitFor(t, id, 30*time.Second, "PROCESSING with items done", func(j jobs.Job) bool {
		return j.Status == jobs.StatusProcessing && j.Progress.Done > 0
	})
	ctx := context.Background()
	before, err := f.Store.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	dom := chromium(t, bin, f.srv.URL+"/jobs", "--virtual-time-budget=3000", "--dump-dom")
	after, err := f.Store.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(artifactDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(artifactDir, "jobs.dom.html"), dom, 0o644); err != nil {
		t.Fatal(err)
	}
	if before.Progress.Done >= before.Progress.Total || before.Status != jobs.StatusProcessing {
		t.Fatalf("the job was not running when the browser loaded the page: %s %+v", before.Status, before.Progress)
	}

	done := atoi(t, field(t, dom, id, "done"))
	if done < before.Progress.Done || done > after.Progress.Done {
		t.Errorf("page shows %d done; the store said %d before and %d after", done, before.Progress.Done, after.Progress.Done)
	}
	if total := atoi(t, field(t, dom, id, "total")); total != before.Progress.Total {
		t.Errorf("page shows total %d, store %d", total, before.Progress.Total)
	}
	if failed := atoi(t, field(t, dom, id, "failed")); failed != 0 || after.Progress.Failed != 0 {
		t.Errorf("page shows %d failed, store %d", failed, after.Progress.Failed)
	}
	if st := field(t, dom, id, "status"); st != string(before.Status) && st != string(after.Status) {
		t.Errorf("page shows status %s, store %s then %s", st, before.Status, after.Status)
	}
	if eta := field(t, dom, id, "eta"); !after.Status.Final() && (eta == "—" || eta == "") {
		t.Errorf("a running job shows no ETA (%q)", eta)
	}
	spent, err := strconv.ParseFloat(field(t, dom, id, "spent_pu"), 64)
	if err != nil || spent < float64(before.Progress.SpentMilliPU)/1000-0.005 || spent > float64(after.Progress.SpentMilliPU)/1000+0.005 {
		t.Errorf("page shows %v PU spent (%v); store %.3f before, %.3f after", spent, err,
			float64(before.Progress.SpentMilliPU)/1000, float64(after.Progress.SpentMilliPU)/1000)
	}
	// The script replaced the content with a fresh fragment at least once.
	if !regexp.MustCompile(`<body[^>]* data-refreshed="20`).Match(dom) {
		t.Errorf("the page's script did not refresh the content within the virtual 3 s")
	}
	if !bytes.Contains(dom, []byte(`<svg class="chart" data-kind="requests"`)) {
		t.Errorf("the page has no request chart")
	}
	// The map of the (only, so newest) job on all dates: one rect per tile.
	if !bytes.Contains(dom, []byte(`<section class="jobmap" id="jobmap" data-job="`+id+`"`)) {
		t.Errorf("the page has no map of job %s", id)
	}
	if n := len(mapRects.FindAll(dom, -1)); n != before.Progress.Tiles {
		t.Errorf("the map draws %d tiles, the job has %d", n, before.Progress.Tiles)
	}

	// The map on one date that has tiles done and tiles not started: the
	// store's counts just before the browser loads it pick the date.
	date, err := mixedDate(ctx, f.Store, id)
	if err != nil {
		t.Fatal(err)
	}
	mapURL := f.srv.URL + "/jobs?job=" + id + "&date=" + date
	dateDOM := chromium(t, bin, mapURL, "--virtual-time-budget=3000", "--dump-dom")
	if err := os.WriteFile(filepath.Join(artifactDir, "jobs-map.dom.html"), dateDOM, 0o644); err != nil {
		t.Fatal(err)
	}
	states := map[string]int{}
	for _, m := range mapRects.FindAllSubmatch(dateDOM, -1) {
		states[string(m[1])]++
	}
	if states["done"] == 0 || states["pending"] == 0 {
		t.Errorf("the map of %s shows %v; want done and pending tiles", date, states)
	}
	if !bytes.Contains(dateDOM, []byte(`<option value="`+date+`" selected="">`)) {
		t.Errorf("the date selector does not show %s as selected", date)
	}

	// The scrape-time gauge of a running job's items agrees with the store.
	fams := scrape(t, f.srv.URL)
	now, err := f.Store.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if !now.Status.Final() {
		var items float64
		for _, st := range jobs.ItemStatuses {
			v, ok := value(fams, "shfleet_job_items", map[string]string{"job": id, "status": string(st)})
			if !ok {
				t.Errorf("shfleet_job_items{job=%s,status=%s} missing for a running job", id, st)
			}
			items += v
		}
		doneG, _ := value(fams, "shfleet_job_items", map[string]string{"job": id, "status": "DONE"})
		if int(items) != now.Progress.Total || int(doneG) < after.Progress.Done || int(doneG) > now.Progress.Done {
			t.Errorf("shfleet_job_items: %v items, %v DONE; store: %d items, %d..%d DONE", items, doneG, now.Progress.Total, after.Progress.Done, now.Progress.Done)
		}
	}

	// A screenshot for people, while the job still runs.
	shot, err := filepath.Abs(filepath.Join(artifactDir, "jobs.png"))
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(shot)
	chromium(t, bin, mapURL, "--virtual-time-budget=3000", "--hide-scrollbars",
		"--window-size=1280,1200", "--screenshot="+shot)
	fh, err := os.Open(shot)
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	defer fh.Close()
	img, err := png.Decode(fh)
	if err != nil {
		t.Fatalf("screenshot %s: %v", shot, err)
	}
	if b := img.Bounds(); b.Dx() != 1280 || b.Dy() != 1200 {
		t.Errorf("screenshot is %v, want 1280x1200", b)
	}
	fmt.Printf("job page screenshot: %s\n", shot)
	t.Log(fmt.Sprintf("job %s: page showed %d/%d done (store %d..%d); map of %s: %v; screenshot %s",
		id, done, before.Progress.Total, before.Progress.Done, after.Progress.Done, date, states, shot))
}
