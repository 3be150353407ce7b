package ops_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"shfleet/internal/redistest"
	"shfleet/ops"
	"shfleet/quota"
)

func TestHealthzRedisDown(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	rdb := rs.Client()
	defer rdb.Close()
	const account = "health-client"
	h, err := ops.NewHandler(ops.Config{Redis: rdb, Account: account})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	srv := httptest.NewServer(h)
	defer srv.Close()

	check := func(wantCode int, wantRedis, wantToken string) ops.Health {
		t.Helper()
		var hl ops.Health
		code := getJSON(t, srv.URL, "/healthz", &hl)
		if code != wantCode || !strings.HasPrefix(hl.Redis, wantRedis) || hl.Token.State != wantToken {
			t.Fatalf("healthz: %d %+v; want %d, redis %q, token %q", code, hl, wantCode, wantRedis, wantToken)
		}
		return hl
	}
	check(http.StatusOK, "ok", ops.TokenMissing)

	// A token stored by the token source's rules (its TTL is its lifetime) and a
	// refresh in progress.
	ctx := context.Background()
	if err := rdb.Set(ctx, quota.AccountKey("", account, "token"), "sealed", 90*time.Second).Err(); err != nil {
		t.Fatal(err)
	}
	if hl := check(http.StatusOK, "ok", ops.TokenValid); hl.Token.ExpiresInSeconds <= 80 || hl.Token.ExpiresInSeconds > 90 {
		t.Fatalf("expires_in_seconds %v, want about 90", hl.Token.ExpiresInSeconds)
	}
	if err := rdb.Set(ctx, quota.AccountKey("", account, "token:lock"), "owner", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	check(http.StatusOK, "ok", ops.TokenRefreshing)
	rdb.Del(ctx, quota.AccountKey("", account, "token"), quota.AccountKey("", account, "token:lock"))
	if err := rdb.Set(ctx, quota.AccountKey("", account, "token:error"), `{"kind":"upstream","status":429}`, time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if hl := check(http.StatusOK, "ok", ops.TokenFailing); hl.Token.ErrorStatus != 429 {
		t.Fatalf("error_status %d, want 429", hl.Token.ErrorStatus)
	}

	rs.Stop()
	check(http.StatusServiceUnavailable, "unreachable", ops.TokenUnknown)

	// The other pages stay up and say what failed.
	var snap ops.Snapshot
	if code := getJSON(t, srv.URL, "/jobs.json", &snap); code != http.StatusOK || len(snap.Errors) == 0 {
		t.Fatalf("/jobs.json with Redis down: %d, errors %v; want 200 with the error", code, snap.Errors)
	}
	if code, body := get(t, srv.URL, "/metrics"); code != http.StatusOK || !bytes.Contains(body, []byte("shfleet_quota_admissions_total")) {
		t.Fatalf("/metrics with Redis down: %d", code)
	}
}

func TestNewHandlerNeedsRedis(t *testing.T) {
	if _, err := ops.NewHandler(ops.Config{}); err == nil || !strings.Contains(err.Error(), "Config.Redis") {
		t.Fatalf("NewHandler without Redis: %v; want an error naming Config.Redis", err)
	}
}

func TestIndexLinks(t *testing.T) {
	rs := redistest.Start(t)
	rdb := rs.Client()
	defer rdb.Close()
	h, err := ops.NewHandler(ops.Config{Redis: rdb})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	srv := httptest.NewServer(h)
	defer srv.Close()
	code, body := get(t, srv.URL, "/")
	for _, l := range []string{`href="jobs"`, `href="monitoring/"`, `href="metrics"`, `href="healthz"`, `href="jobs.json"`} {
		if !bytes.Contains(body, []byte(l)) {
			t.Errorf("index lacks %s", l)
		}
	}
	if code != http.StatusOK {
		t.Fatalf("GET /: %d", code)
	}
	if code, _ := get(t, srv.URL, "/nope"); code != http.StatusNotFound {
		t.Fatalf("GET /nope: %d, want 404", code)
	}
	// An empty store renders the hint rather than an empty table.
	if _, body := get(t, srv.URL, "/jobs"); !bytes.Contains(body, []byte("No jobs yet")) {
		t.Fatalf("/jobs without jobs: %.300s", body)
	}
}

func TestRedisConnOpt(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: "10.0.0.1:6380", Username: "u", Password: "p", DB: 3})
	defer c.Close()
	opt, err := ops.RedisConnOpt(c)
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := opt.(asynq.RedisClientOpt); !ok || o.Addr != "10.0.0.1:6380" || o.Username != "u" || o.Password != "p" || o.DB != 3 {
		t.Fatalf("client options %#v", opt)
	}
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{"a:1", "b:2"}, Password: "p"})
	defer cc.Close()
	opt, err = ops.RedisConnOpt(cc)
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := opt.(asynq.RedisClusterClientOpt); !ok || len(o.Addrs) != 2 || o.Password != "p" {
		t.Fatalf("cluster options %#v", opt)
	}
	ring := redis.NewRing(&redis.RingOptions{Addrs: map[string]string{"a": "a:1"}})
	defer ring.Close()
	if _, err := ops.RedisConnOpt(ring); err == nil || !strings.Contains(err.Error(), "redis.NewClient") {
		t.Fatalf("ring: %v; want an error saying which clients work", err)
	}
}

func TestServeShutsDownGracefully(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	started := make(chan struct{})
	release := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
		w.Write([]byte("finished"))
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ops.Serve(ctx, addr, h) }()

	body := make(chan string, 1)
	go func() {
		var resp *http.Response
		for range 100 { // until the server listens
			if resp, err = http.Get("http://" + addr + "/"); err == nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err != nil {
			body <- "error: " + err.Error()
			return
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		body <- b.String()
	}()
	<-started
	cancel() // shutdown begins while the request is in flight
	time.Sleep(50 * time.Millisecond)
	close(release)
	if got := <-body; got != "finished" {
		t.Fatalf("in-flight request got %q, want it finished", got)
	}
	if err := <-done; err != nil {
		t.Fatalf("Serve returned %v after ctx was done, want nil", err)
	}
	if _, err := http.Get("http://" + addr + "/"); err == nil {
		t.Fatal("server still answers after shutdown")
	}
	if err := ops.Serve(context.Background(), "256.0.0.1:bad", h); err == nil || !strings.Contains(err.Error(), "listen") {
		t.Fatalf("bad address: %v", err)
	}
}

func TestSeriesRing(t *testing.T) {
	now := time.Date(2026, 11, 23, 10, 0, 30, 0, time.UTC)
	s := ops.NewSeries(func() time.Time { return now })
	s.AddRequest()
	s.AddRequest()
	s.AddPU(0.25)
	now = now.Add(time.Minute)
	s.AddRequest()
	s.AddPU(1.5)
	pts := s.Points()
	if len(pts) != ops.SeriesMinutes {
		t.Fatalf("%d points", len(pts))
	}
	last, prev := pts[len(pts)-1], pts[len(pts)-2]
	if !last.Minute.Equal(time.Date(2026, 11, 23, 10, 1, 0, 0, time.UTC)) || last.Requests != 1 || last.PU != 1.5 ||
		prev.Requests != 2 || prev.PU != 0.25 {
		t.Fatalf("last two points %+v %+v", prev, last)
	}
	// An hour later the old minutes have left the window and their slots are
	// reused without leaking old counts.
	now = now.Add(ops.SeriesMinutes * time.Minute)
	s.AddRequest()
	var total int64
	for _, p := range s.Points() {
		total += p.Requests
	}
	if total != 1 {
		t.Fatalf("after an hour %d requests in the window, want 1", total)
	}
}

func TestNewLogger(t *testing.T) {
	var buf bytes.Buffer
	log := ops.NewLogger(&buf, "", "warn") // a buffer is no terminal: JSON
	log.Info().Msg("hidden")
	log.Warn().Str("job", "j1").Msg("shown")
	var ev map[string]any
	if err := json.Unmarshal(buf.Bytes(), &ev); err != nil || ev["message"] != "shown" || ev["job"] != "j1" || ev["time"] == nil {
		t.Fatalf("json log %q: %v", buf.String(), err)
	}
	buf.Reset()
	log = ops.NewLogger(&buf, "console", "")
	log.Debug().Msg("hidden")
	log.Info().Msg("hello")
	if out := buf.String(); !strings.Contains(out, "hello") || strings.Contains(out, "hidden") || strings.HasPrefix(out, "{") {
		t.Fatalf("console log %q", out)
	}
	buf.Reset()
	log = ops.NewLogger(&buf, "yaml", "loud")
	if out := buf.String(); !strings.Contains(out, "unknown log format yaml") || !strings.Contains(out, "unknown log level loud") {
		t.Fatalf("bad settings not reported: %q", out)
	}
	if log.GetLevel() != zerolog.InfoLevel {
		t.Fatalf("level %s, want info", log.GetLevel())
	}
}
