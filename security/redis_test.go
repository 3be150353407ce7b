package security_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"shfleet/config"
	"shfleet/internal/redistest"
	"shfleet/sentinel/sentineltest"
	"shfleet/worker"
)

// TestRedisPassword runs a worker's start-up check against a redis-server with
// requirepass: the right password in the URL works end to end, a wrong or
// missing one gives an error that names authentication, and no error or shown
// URL carries a password.
func TestRedisPassword(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pw := randomSecret("PW-")
	srv := redistest.Start(t, redistest.Options{Password: pw})
	sim := sentineltest.NewServer(sentineltest.Config{})
	defer sim.Close()
	needles := append(secretNeedles("Redis password", pw), needle{"client secret", sim.ClientConfig().ClientSecret})

	url := fmt.Sprintf("redis://:%s@%s/0", pw, srv.Addr)
	rdb, shown, err := config.Redis(url)
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	if !strings.Contains(shown, srv.Addr) || !strings.Contains(shown, "xxxxx") {
		t.Errorf("shown URL %q should name the address with the password masked", shown)
	}
	assertClean(t, "shown Redis URL", []byte(shown), needles)
	w, err := worker.New(worker.Config{Redis: rdb, Sentinel: sim.ClientConfig(), Policies: testPolicies})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Check(ctx, true); err != nil {
		t.Fatalf("worker check with the right Redis password: %v", err)
	}

	wrong := randomSecret("BADPW-")
	needles = append(needles, secretNeedles("wrong Redis password", wrong)...)
	for _, tc := range []struct{ name, url string }{
		{"wrong password", fmt.Sprintf("redis://:%s@%s/0", wrong, srv.Addr)},
		{"wrong user and password", fmt.Sprintf("redis://nobody:%s@%s/0", wrong, srv.Addr)},
		{"no password", fmt.Sprintf("redis://%s/0", srv.Addr)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rdb, shown, err := config.Redis(tc.url)
			if err != nil {
				t.Fatal(err)
			}
			defer rdb.Close()
			assertClean(t, "shown Redis URL", []byte(shown), needles)
			w, err := worker.New(worker.Config{Redis: rdb, Sentinel: sim.ClientConfig(), Policies: testPolicies})
			if err != nil {
				t.Fatal(err)
			}
			err = w.Check(ctx, false)
			if err == nil {
				t.Fatal("worker check passed with a wrong Redis password")
			}
			msg := err.Error()
			if l := strings.ToLower(msg); !strings.Contains(msg, "WRONGPASS") && !strings.Contains(l, "auth") {
				t.Errorf("error %q does not name authentication", msg)
			}
			if !strings.Contains(msg, "REDIS_URL") {
				t.Errorf("error %q does not say what to fix (REDIS_URL)", msg)
			}
			assertClean(t, "Redis auth error", []byte(msg), needles)
		})
	}

	// URLs that do not parse must not echo their password either.
	for _, bad := range []string{
		fmt.Sprintf("redis://:%s@%s:notaport/0", wrong, "127.0.0.1"),
		fmt.Sprintf("redis://:%s@%s/notadb", wrong, srv.Addr),
		fmt.Sprintf("redis://:%s@%s/0?dial_timeout=soon", wrong, srv.Addr),
		fmt.Sprintf("redis://:%s@%s/0?addr=%s&bogus=1", wrong, srv.Addr, srv.Addr),
		fmt.Sprintf("http://:%s@%s/0", wrong, srv.Addr),
	} {
		_, shown, err := config.Redis(bad)
		if err == nil {
			t.Errorf("config.Redis accepted %s", config.RedactURL(bad))
			continue
		}
		assertClean(t, "config.Redis error for "+config.RedactURL(bad), []byte(err.Error()), needles)
		assertClean(t, "shown URL for "+config.RedactURL(bad), []byte(shown), needles)
	}
}
