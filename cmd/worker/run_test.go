package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"shfleet/internal/redistest"
	"shfleet/sentinel/sentineltest"
)

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func TestRunEmbeddedRedisServesOps(t *testing.T) {
	sim := sentineltest.NewServer(sentineltest.Config{})
	defer sim.Close()
	cfg := sim.ClientConfig()
	t.Setenv("SH_CLIENT_ID", cfg.ClientID)
	t.Setenv("SH_CLIENT_SECRET", cfg.ClientSecret)
	t.Setenv("SH_BASE_URL", cfg.BaseURL)
	t.Setenv("SH_TOKEN_URL", cfg.TokenURL)
	t.Setenv("HOME", t.TempDir())
	opsAddr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	logs := &syncBuf{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--embedded-redis", freeAddr(t), "--ops-addr", opsAddr,
			"--policy", "requests:60:PT1M", "--log-format", "json"}, io.Discard, logs)
	}()
	var body string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		resp, err := http.Get(fmt.Sprintf("http://%s/healthz", opsAddr))
		if err != nil {
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			body = string(b)
			break
		}
	}
	if body == "" {
		cancel()
		t.Fatalf("/healthz never answered 200; logs:\n%s", logs.String())
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	out := logs.String()
	if !strings.Contains(out, "EMBEDDED IN-MEMORY REDIS") || !strings.Contains(out, "worker stopped") {
		t.Fatalf("logs lack the embedded-Redis warning or the stop event:\n%s", out)
	}
	if strings.Contains(out, cfg.ClientSecret) {
		t.Fatal("logs contain the client secret")
	}
}

func TestRunRefusesMissingCredentials(t *testing.T) {
	for _, k := range []string{"SH_CLIENT_ID", "SH_CLIENT_SECRET", "SH_CLIENT_SECRET_FILE", "SH_PROFILE", "SH_CONFIG_FILE"} {
		t.Setenv(k, "")
	}
	t.Setenv("HOME", t.TempDir())
	err := run(context.Background(), []string{"--embedded-redis", freeAddr(t)}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "SH_CLIENT_ID") {
		t.Fatalf("run without credentials = %v, want a message naming SH_CLIENT_ID", err)
	}
}

func TestParseQueues(t *testing.T) {
	q, err := parseQueues("catalog=3, default=6,bulk")
	if err != nil || q["catalog"] != 3 || q["default"] != 6 || q["bulk"] != 1 {
		t.Fatalf("parseQueues = %v, %v", q, err)
	}
	for _, bad := range []string{"", "a=0", "a=x"} {
		if _, err := parseQueues(bad); err == nil {
			t.Errorf("parseQueues(%q) accepted", bad)
		}
	}
}

// TestRunRefusesBadFlags: worker flags that would leave it idle or unbounded,
// and files it cannot read, are refused before it touches Redis.
func TestRunRefusesBadFlags(t *testing.T) {
	sim := sentineltest.NewServer(sentineltest.Config{})
	defer sim.Close()
	rs := redistest.Start(t)
	rdb := rs.Client()
	defer rdb.Close()
	cfg := sim.ClientConfig()
	plain := "rediss://" + strings.TrimPrefix(rs.URL(), "redis://")
	base := []string{"-redis-url", rs.URL(), "-client-id", cfg.ClientID, "-base-url", cfg.BaseURL, "-token-url", cfg.TokenURL}
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"concurrency 0", []string{"-concurrency", "0"}, "-concurrency 0: give at least 1"},
		{"negative concurrency", []string{"-concurrency", "-3"}, "-concurrency -3: give at least 1"},
		{"negative monthly budget", []string{"-pu-month", "-1"}, "-pu-month -1: give a budget >= 0 PU"},
		{"negative shutdown timeout", []string{"-shutdown-timeout", "-1s"}, "-shutdown-timeout -1s"},
		{"zero queue weight", []string{"-queues", "catalog=0"}, "weight of catalog must be a positive integer"},
		{"queue name with a colon", []string{"-queues", "other:default=1"}, `queue name "other:default"`},
		{"stray argument", []string{"now"}, `unexpected argument "now"`},
		{"secret file is a device", []string{"-client-secret-file", "/dev/zero"}, "--client-secret-file /dev/zero: is a character device"},
		{"config.toml is a device", []string{"-config-file", "/dev/zero"}, "/dev/zero: is a character device"},
		{"rediss:// to a plain Redis", []string{"-redis-url", plain, "-client-secret-file", secretFile(t, cfg.ClientSecret)}, "plain (non-TLS) Redis"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var stderr syncBuf
			err := run(context.Background(), append(append([]string{}, base...), c.args...), io.Discard, &stderr)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err %v, want it to contain %q", err, c.want)
			}
			if n := rdb.DBSize(context.Background()).Val(); n != 0 {
				t.Errorf("DBSIZE %d, want 0", n)
			}
		})
	}
}

func secretFile(t *testing.T, secret string) string {
	p := t.TempDir() + "/secret"
	if err := os.WriteFile(p, []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
