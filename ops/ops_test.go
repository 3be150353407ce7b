package ops_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"shfleet/jobs"
	"shfleet/ops"
	"shfleet/sentinel/sentineltest"
)

// scrape fetches /metrics and parses the text exposition.
func scrape(t *testing.T, base string) map[string]*dto.MetricFamily {
	t.Helper()
	code, body := get(t, base, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: %d: %s", code, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// value returns the value of the family's sample whose labels include want;
// ok is false when there is none.
func value(fams map[string]*dto.MetricFamily, name string, want map[string]string) (v float64, ok bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.Metric {
		labels := map[string]string{}
		for _, l := range m.Label {
			labels[l.GetName()] = l.GetValue()
		}
		for k, w := range want {
			if labels[k] != w {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

// sum adds every sample of a counter or gauge family.
func sum(fams map[string]*dto.MetricFamily, name string) float64 {
	var s float64
	if f := fams[name]; f != nil {
		for _, m := range f.Metric {
			s += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return s
}

// TestOpsAfterJob runs a small job on two workers, then checks every endpoint
// against the job store and the simulator.
func TestOpsAfterJob(t *testing.T) {
	t.Parallel()
	f := newFleet(t, 2, 4, sentineltest.Config{})
	job := f.waitDone(t, f.submit(t).ID)
	base := f.srv.URL

	t.Run("metrics", func(t *testing.T) {
		fams := scrape(t, base)
		st := f.Sim.Stats()
		// Every request the simulator answered was admitted once (no 429, no
		// fault here), and both workers feed the same hooks: the counter equals
		// the simulator's own count of catalog and process requests.
		sent := float64(st.ProcessRequests + st.CatalogRequests)
		if v, _ := value(fams, "shfleet_quota_admissions_total", nil); v != sent || sent < float64(job.Progress.Total+1) {
			t.Errorf("admissions %v, simulator answered %v requests (job: %d items)", v, sent, job.Progress.Total)
		}
		if v, _ := value(fams, "shfleet_quota_admission_wait_seconds", nil); v != sent {
			t.Errorf("admission wait histogram has %v samples, want one per admission: %v", v, sent)
		}
		pu, ok := value(fams, "shfleet_pu_spent_total", map[string]string{"job": job.ID})
		want := float64(job.Progress.SpentMilliPU) / 1000
		if !ok || want <= 0 || math.Abs(pu-want) > 0.0005*float64(job.Progress.Total) {
			t.Errorf("shfleet_pu_spent_total{job=%q} = %v (present %v), job store says %.3f", job.ID, pu, ok, want)
		}
		if math.Abs(pu-f.Sim.Stats().PUSpent) > 0.001*float64(job.Progress.Total) {
			t.Errorf("PU counter %v, simulator charged %v", pu, f.Sim.Stats().PUSpent)
		}
		if month, _ := value(fams, "shfleet_pu_month_spent", nil); math.Abs(month-want) > 0.0005*float64(job.Progress.Total) {
			t.Errorf("shfleet_pu_month_spent %v, want %.3f", month, want)
		}
		if n := sum(fams, "shfleet_quota_rate_limited_total"); n != 0 || f.Sim.Stats().RateLimited != 0 {
			t.Errorf("429 counter %v, simulator answered %d 429s; want 0", n, f.Sim.Stats().RateLimited)
		}
		if v, _ := value(fams, "shfleet_items_finished_total", map[string]string{"status": "DONE"}); int(v) != job.Progress.Done {
			t.Errorf("items DONE counter %v, job done %d", v, job.Progress.Done)
		}
		if v, ok := value(fams, "shfleet_items_finished_total", map[string]string{"status": "FAILED"}); !ok || v != 0 {
			t.Errorf("items FAILED counter %v (present %v), want 0", v, ok)
		}
		if v, _ := value(fams, "shfleet_catalog_requests_total", map[string]string{"cached": "false"}); int(v) != job.Progress.CatalogRequests {
			t.Errorf("catalog requests (not cached) %v, job made %d", v, job.Progress.CatalogRequests)
		}
		if v, _ := value(fams, "shfleet_jobs", map[string]string{"status": "DONE"}); v != 1 {
			t.Errorf("shfleet_jobs{status=DONE} = %v, want 1", v)
		}
		if _, ok := value(fams, "shfleet_job_items", map[string]string{"job": job.ID}); ok {
			t.Errorf("shfleet_job_items has the finished job %s; it lists jobs not final only", job.ID)
		}
		// The token counters are those of the first worker's token source (the
		// Sources given to the handler); the fleet asked the token endpoint
		// exactly as often as the simulator counted, whichever worker did.
		w0, w1 := f.Workers[0].Tokens.Stats(), f.Workers[1].Tokens.Stats()
		if v, ok := value(fams, "shfleet_token_redis_reads_total", nil); !ok || v != float64(w0.RedisReads) || v < 1 {
			t.Errorf("token fetches %v (present %v), want the first worker's %d (>= 1)", v, ok, w0.RedisReads)
		}
		if v, ok := value(fams, "shfleet_token_refreshes_total", nil); !ok || v != float64(w0.Refreshes) ||
			int(w0.Refreshes+w1.Refreshes) != st.TokenRequests {
			t.Errorf("token refreshes %v (present %v); workers refreshed %d + %d, simulator saw %d token requests",
				v, ok, w0.Refreshes, w1.Refreshes, st.TokenRequests)
		}
		// asynq's queue metrics (hibiken/asynq/x/metrics).
		if v, ok := value(fams, "asynq_tasks_processed_total", map[string]string{"queue": jobs.DefaultQueue}); !ok || int(v) < job.Progress.Done {
			t.Errorf("asynq_tasks_processed_total{queue=default} = %v (present %v), want >= %d", v, ok, job.Progress.Done)
		}
		// The job is DONE: nothing is left in either queue.
		for _, q := range []string{"catalog", jobs.DefaultQueue} {
			if v, ok := value(fams, "asynq_queue_size", map[string]string{"queue": q}); !ok || v != 0 {
				t.Errorf("asynq_queue_size{queue=%s} = %v (present %v), want 0 after the job", q, v, ok)
			}
		}
	})

	t.Run("jobs.json", func(t *testing.T) {
		f.flush(t)
		var snap ops.Snapshot
		if code := getJSON(t, base, "/jobs.json", &snap); code != http.StatusOK {
			t.Fatalf("GET /jobs.json: %d", code)
		}
		stored, err := f.Store.Get(context.Background(), job.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(snap.Jobs) != 1 || len(snap.Errors) != 0 {
			t.Fatalf("jobs.json has %d jobs, errors %v; want the 1 job", len(snap.Jobs), snap.Errors)
		}
		v, p := snap.Jobs[0], stored.Progress
		got := fmt.Sprint(v.ID, v.Name, v.Status, v.Total, v.Done, v.Failed, v.Tiles, v.SpentPU, v.EstimatedPU)
		want := fmt.Sprint(stored.ID, stored.Spec.Name, stored.Status, p.Total, p.Done, p.Failed, p.Tiles,
			float64(p.SpentMilliPU)/1000, float64(p.EstimatedMilliPU)/1000)
		if got != want {
			t.Errorf("jobs.json job %s, store %s", got, want)
		}
		if v.ETASeconds != 0 {
			t.Errorf("finished job has ETA %v", v.ETASeconds)
		}
		var reqs int64
		for _, pt := range snap.Series {
			reqs += pt.Requests
		}
		if len(snap.Series) != ops.SeriesMinutes || reqs < int64(p.Total) {
			t.Errorf("series: %d points with %d requests, want %d points and >= %d requests", len(snap.Series), reqs, ops.SeriesMinutes, p.Total)
		}
		if len(snap.Policies) != 2 || snap.Policies[0].PerMinute != 600 {
			t.Errorf("policies %+v, want the 2 configured at 600/min", snap.Policies)
		}
	})

	t.Run("jobs page", func(t *testing.T) {
		code, body := get(t, base, "/jobs")
		page := string(body)
		if code != http.StatusOK {
			t.Fatalf("GET /jobs: %d", code)
		}
		for _, want := range []string{
			fmt.Sprintf(`data-job="%s" data-field="done">%d<`, job.ID, job.Progress.Done),
			fmt.Sprintf(`data-job="%s" data-field="total">%d<`, job.ID, job.Progress.Total),
			fmt.Sprintf(`data-job="%s" data-field="status">DONE<`, job.ID),
			"ops test &lt;sample AOI&gt;", // the name, escaped
			`<svg class="chart" data-kind="requests"`, `<svg class="chart" data-kind="pu"`,
			"requests:600:PT1M<tspan", // the limit line's label
			`fetch("jobs?fragment=1"`,
		} {
			if !strings.Contains(page, want) {
				t.Errorf("/jobs lacks %q", want)
			}
		}
		_, frag := get(t, base, "/jobs?fragment=1")
		if bytes.Contains(frag, []byte("<html")) || !bytes.Contains(frag, []byte(`data-field="done"`)) {
			t.Errorf("fragment is not the page's content: %.200s", frag)
		}
	})

	t.Run("monitoring", func(t *testing.T) {
		code, body := get(t, base, "/monitoring/")
		if code != http.StatusOK || !bytes.Contains(body, []byte(`href="/monitoring/favicon.ico"`)) || !bytes.Contains(body, []byte(`id="root"`)) {
			t.Fatalf("GET /monitoring/: %d %.300s", code, body)
		}
		var qs struct {
			Queues []struct {
				Queue     string `json:"queue"`
				Processed int    `json:"processed"`
			} `json:"queues"`
		}
		if code := getJSON(t, base, "/monitoring/api/queues", &qs); code != http.StatusOK {
			t.Fatalf("GET /monitoring/api/queues: %d", code)
		}
		var names []string
		for _, q := range qs.Queues {
			names = append(names, q.Queue)
		}
		slices.Sort(names)
		if !slices.Equal(names, []string{"catalog", jobs.DefaultQueue}) {
			t.Errorf("asynqmon lists queues %v, want [catalog default]", names)
		}
		// Read-only by default: changing tasks by hand would bypass the job store.
		req, _ := http.NewRequest(http.MethodDelete, base+"/monitoring/api/queues/catalog", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode < 400 {
			t.Errorf("DELETE of a queue through asynqmon answered %d; want it refused (read-only)", resp.StatusCode)
		}
	})

	t.Run("healthz", func(t *testing.T) {
		code, body := get(t, base, "/healthz")
		var h ops.Health
		if err := json.Unmarshal(body, &h); err != nil || code != http.StatusOK || h.Redis != "ok" || h.Token.State != ops.TokenValid ||
			h.Token.ExpiresInSeconds < 60 || h.Token.ExpiresIn == "" {
			t.Fatalf("GET /healthz: %d %s (%v)", code, body, err)
		}
		tok, err := f.Workers[0].Tokens.TokenContext(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		secret := f.Sim.ClientConfig().ClientSecret
		for _, path := range []string{"/healthz", "/jobs", "/jobs.json", "/metrics", "/monitoring/api/queues"} {
			_, body := get(t, base, path)
			if bytes.Contains(body, []byte(tok.AccessToken)) || bytes.Contains(body, []byte(secret)) {
				t.Errorf("%s shows the token or the client secret", path)
			}
		}
		tokenLike := regexp.MustCompile(`eyJ[A-Za-z0-9_-]{10,}`) // a JWT
		if _, body := get(t, base, "/healthz"); tokenLike.Match(body) {
			t.Errorf("/healthz contains a JWT: %s", body)
		}
	})
}
