package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"shfleet/cmd/enqueue/internal/cli"
	"shfleet/internal/redistest"
	"shfleet/jobs"
	"shfleet/quota"
	"shfleet/sentinel/sentineltest"
	"shfleet/worker"
)

const (
	examples   = "../../../../examples"
	aoiFile    = examples + "/aoi.geojson"
	evalscript = examples + "/evalscript-truecolor.js"
)

// result is one run of the CLI.
type result struct {
	code           int
	stdout, stderr string
}

// run calls the CLI's real entry point with args.
func run(t *testing.T, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	code := cli.Run(ctx, args, &out, &errb)
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

// lastJSON decodes the last line of stdout.
func lastJSON[T any](t *testing.T, r result) T {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	var v T
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &v); err != nil {
		t.Fatalf("stdout's last line is not JSON: %v\nstdout: %s\nstderr: %s", err, r.stdout, r.stderr)
	}
	return v
}

// env is a redis-server and the simulator, with the CLI flags that reach them.
type env struct {
	redis *redistest.Server
	sim   *sentineltest.Server
	rdb   *redis.Client
	store *jobs.Store
	flags []string // --redis-url and the credentials
}

func newEnv(t *testing.T, simCfg sentineltest.Config) *env {
	t.Helper()
	e := &env{redis: redistest.Start(t)}
	e.sim = sentineltest.NewServer(simCfg)
	t.Cleanup(e.sim.Close)
	e.rdb = e.redis.Client()
	t.Cleanup(func() { e.rdb.Close() })
	e.store = &jobs.Store{Redis: e.rdb}
	e.flags = append([]string{"--redis-url", e.redis.URL()}, credentialFlags(t, e.sim, e.sim.ClientConfig().ClientSecret)...)
	return e
}

// credentialFlags point the CLI at sim with the given secret (in a file: the
// CLI takes secrets only from files or the environment).
func credentialFlags(t *testing.T, sim *sentineltest.Server, secret string) []string {
	t.Helper()
	cfg := sim.ClientConfig()
	file := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(file, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return []string{"--client-id", cfg.ClientID, "--client-secret-file", file, "--base-url", cfg.BaseURL, "--token-url", cfg.TokenURL}
}

// startWorkers starts n in-process workers against the env, as cmd/worker would.
func (e *env) startWorkers(t *testing.T, n int, policies []quota.Policy) {
	t.Helper()
	for i := 0; i < n; i++ {
		c := e.redis.Client()
		t.Cleanup(func() { c.Close() })
		w, err := worker.New(worker.Config{Redis: c, Sentinel: e.sim.ClientConfig(), Policies: policies,
			Concurrency: 4, ShutdownTimeout: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(w.Shutdown)
	}
}

func (e *env) dbsize(t *testing.T) int64 {
	t.Helper()
	n, err := e.rdb.DBSize(context.Background()).Result()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// waitStatus polls the store until the job reaches one of the statuses.
func (e *env) waitStatus(t *testing.T, id string, timeout time.Duration, want ...jobs.Status) jobs.Job {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		job, err := e.store.Get(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range want {
			if job.Status == s {
				return job
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s still %s after %s, want %v: %+v", id, job.Status, timeout, want, job.Progress)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// outputFiles lists result files under dir (the manifest, STAC files and VRT
// mosaics aside).
func outputFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && !strings.HasSuffix(p, "manifest.json") && !strings.Contains(filepath.ToSlash(p), "/manifest/part-") && !strings.Contains(filepath.ToSlash(p), "/stac/") && !strings.HasSuffix(p, ".vrt") {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
