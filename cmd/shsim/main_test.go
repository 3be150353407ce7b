package main

import (
	"context"
	"encoding/json"
	"flag"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"shfleet/sentinel/sentineltest"
)

func TestRunServesSimulatorAndStats(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, ln, sentineltest.Config{TokenRequestsPerMinute: 1})
	}()
	base := "http://" + ln.Addr().String()
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {sentineltest.DefaultClientID}, "client_secret": {sentineltest.DefaultClientSecret}}
	for i, want := range []int{http.StatusOK, http.StatusTooManyRequests} {
		resp, err := http.PostForm(base+sentineltest.TokenPath, form)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("token request %d: HTTP %d, want %d", i, resp.StatusCode, want)
		}
	}
	// The US West deployment and the rate-limit endpoints are served too (401
	// without a token, like the API).
	for _, path := range []string{sentineltest.USWestPrefix + sentineltest.RateLimitStatisticsPath + sentineltest.DefaultUserID, sentineltest.RateLimitContractPath} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET %s: HTTP %d, want 401", path, resp.StatusCode)
		}
	}
	resp, err := http.Get(base + StatsPath)
	if err != nil {
		t.Fatal(err)
	}
	var st sentineltest.Stats
	err = json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if err != nil || st.TokenRequests != 2 || st.TokensIssued != 1 || st.AuxRequests != 2 {
		t.Errorf("stats = %+v, %v", st, err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("run did not return after cancel")
	}
}

func TestParseHeaderMode(t *testing.T) {
	for in, want := range map[string]sentineltest.HeaderMode{
		"retry-after": sentineltest.HeadersRetryAfterOnly,
		"Legacy":      sentineltest.HeadersLegacy,
		"none":        sentineltest.HeadersNone,
	} {
		if got, err := parseHeaderMode(in); err != nil || got != want {
			t.Errorf("parseHeaderMode(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := parseHeaderMode("full"); err == nil {
		t.Error(`parseHeaderMode("full") succeeded: the 2019 headers are now "legacy"`)
	}
}

func TestListFlag(t *testing.T) {
	var l list
	for _, v := range []string{"sentinel-1-grd", "byoc-1, batch-2", ""} {
		if err := l.Set(v); err != nil {
			t.Fatal(err)
		}
	}
	if got := l.String(); got != "sentinel-1-grd,byoc-1,batch-2" {
		t.Errorf("list = %q", got)
	}
}

// TestBatchFlags: -batch, -batch-step and repeated -batch-stuck fill the
// simulator's Config; a malformed -batch-stuck and -batch without an S3
// endpoint are refused naming the flag; -help lists the batch flags and never
// prints the S3 secret taken from the environment.
func TestBatchFlags(t *testing.T) {
	t.Setenv("SHSIM_S3_SECRET_KEY", "s3-secret-from-env")
	parse := func(args ...string) (sentineltest.Config, error) {
		var cfg sentineltest.Config
		var o options
		fs := flag.NewFlagSet("shsim", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		defineFlags(fs, &cfg, &o)
		if err := fs.Parse(args); err != nil {
			return cfg, err
		}
		return cfg, finishConfig(&cfg, o)
	}
	cfg, err := parse("-batch", "-batch-s3-endpoint", "http://127.0.0.1:7070", "-batch-step", "5ms",
		"-batch-stuck", "UTM-33N-460000-5090000-10km:3", "-batch-stuck", "UTM-33N-470000-5090000-10km:1")
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Batch || cfg.BatchStep != 5*time.Millisecond || len(cfg.BatchStuck) != 2 ||
		cfg.BatchStuck["UTM-33N-460000-5090000-10km"] != 3 || cfg.BatchStuck["UTM-33N-470000-5090000-10km"] != 1 ||
		cfg.BatchS3.SecretKey != "s3-secret-from-env" {
		t.Fatalf("config %+v", cfg)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-batch-stuck", "UTM-33N-460000-5090000-10km"}, "want TILE:N"},
		{[]string{"-batch-stuck", "T:0"}, "want TILE:N"},
		{[]string{"-batch"}, "-batch needs -batch-s3-endpoint"},
	} {
		if _, err := parse(c.args...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want an error containing %q", c.args, err, c.want)
		}
	}
	var help strings.Builder
	fs := flag.NewFlagSet("shsim", flag.ContinueOnError)
	defineFlags(fs, &sentineltest.Config{}, &options{})
	fs.SetOutput(&help)
	fs.PrintDefaults()
	for _, f := range []string{"-batch\n", "-batch-step", "-batch-stuck", "-batch-s3-endpoint", "-batch-s3-secret-key"} {
		if !strings.Contains(help.String(), f) {
			t.Errorf("-help does not list %s", strings.TrimSpace(f))
		}
	}
	if strings.Contains(help.String(), "s3-secret-from-env") {
		t.Error("-help prints the S3 secret from the environment")
	}
}
