package security_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/hibiken/asynqmon"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"golang.org/x/oauth2"

	"shfleet/grid"
	"shfleet/internal/redistest"
	"shfleet/jobs"
	"shfleet/keys"
	"shfleet/quota"
	"shfleet/quota/sentinelquota"
	"shfleet/sentinel"
	"shfleet/sentinel/sentineltest"
	"shfleet/tasks"
	"shfleet/worker"
)

// testPolicies are generous account limits for the simulator and the workers.
var testPolicies = []quota.Policy{
	{Kind: quota.Requests, Capacity: 600, Period: time.Minute},
	{Kind: quota.PU, Capacity: 600, Period: time.Minute},
}

// simPolicies are testPolicies in the simulator's terms.
func simPolicies() []sentineltest.Policy {
	var ps []sentineltest.Policy
	for _, p := range testPolicies {
		ps = append(ps, sentineltest.Policy{Kind: string(p.Kind), Capacity: p.Capacity, Period: p.Period})
	}
	return ps
}

// randomSecret returns prefix followed by 16 random hex digits: distinctive
// enough that finding it anywhere is a leak, not a coincidence.
func randomSecret(prefix string) string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// syncBuffer is a bytes.Buffer safe for the workers' concurrent log writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes())
}

// tokenRecorder is an http.RoundTripper in front of the real transport that
// remembers every access token the token endpoint issued, so the test knows
// every token it must not find anywhere.
type tokenRecorder struct {
	base   http.RoundTripper
	mu     sync.Mutex
	tokens []string
}

func (r *tokenRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.base.RoundTrip(req)
	if err != nil || resp.StatusCode != http.StatusOK || !strings.HasSuffix(req.URL.Path, sentineltest.TokenPath) {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if json.Unmarshal(body, &tok) == nil && tok.AccessToken != "" {
		r.mu.Lock()
		r.tokens = append(r.tokens, tok.AccessToken)
		r.mu.Unlock()
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp, nil
}

func (r *tokenRecorder) Tokens() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.tokens...)
}

// needle is a secret value that must not be found, with a name to report
// instead of the value.
type needle struct{ name, value string }

// secretNeedles are the forms of a client secret worth searching for.
func secretNeedles(name, secret string) []needle {
	return []needle{
		{name, secret},
		{name + " (base64)", base64.StdEncoding.EncodeToString([]byte(secret))},
		{name + " (base64url)", base64.RawURLEncoding.EncodeToString([]byte(secret))},
	}
}

// tokenNeedles are the forms of an access token worth searching for: the whole
// token, its base64, and the JWT's payload and signature parts (the header is
// the same for every token and says nothing).
func tokenNeedles(name, tok string) []needle {
	ns := []needle{{name, tok}, {name + " (base64)", base64.StdEncoding.EncodeToString([]byte(tok))}}
	parts := strings.Split(tok, ".")
	if len(parts) == 3 {
		ns = append(ns, needle{name + " JWT payload", parts[1]}, needle{name + " JWT signature", parts[2]})
	}
	return ns
}

// assertClean fails when data holds any needle; it names where and which
// needle, never the value.
func assertClean(t *testing.T, where string, data []byte, needles []needle) {
	t.Helper()
	for _, n := range needles {
		if n.value == "" {
			t.Fatalf("empty needle %s: the test is broken", n.name)
		}
		if i := bytes.Index(data, []byte(n.value)); i >= 0 {
			t.Errorf("LEAK: %s contains the %s at byte %d", where, n.name, i)
		}
	}
}

// dumpRedis reads every key of rdb with its value: strings, hashes, lists, sets,
// sorted sets and streams. The map holds one entry per key, the key name included
// in the value so that key names are searched too.
func dumpRedis(t *testing.T, ctx context.Context, rdb *redis.Client) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	var cursor uint64
	for {
		keys, next, err := rdb.Scan(ctx, cursor, "*", 1000).Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			var b bytes.Buffer
			b.WriteString(k + "\n")
			typ, err := rdb.Type(ctx, k).Result()
			if err != nil {
				t.Fatal(err)
			}
			var vals []string
			switch typ {
			case "string":
				v, err := rdb.Get(ctx, k).Result()
				if err == nil {
					vals = []string{v}
				}
			case "hash":
				m, _ := rdb.HGetAll(ctx, k).Result()
				for f, v := range m {
					vals = append(vals, f, v)
				}
			case "list":
				vals, _ = rdb.LRange(ctx, k, 0, -1).Result()
			case "set":
				vals, _ = rdb.SMembers(ctx, k).Result()
			case "zset":
				vals, _ = rdb.ZRange(ctx, k, 0, -1).Result()
			case "stream":
				msgs, _ := rdb.XRange(ctx, k, "-", "+").Result()
				for _, m := range msgs {
					vals = append(vals, fmt.Sprint(m.Values))
				}
			case "none": // expired between SCAN and TYPE
			default:
				t.Fatalf("key %s has type %s, which the dump does not read", k, typ)
			}
			for _, v := range vals {
				b.WriteString(v + "\n")
			}
			out[k] = b.Bytes()
		}
		cursor = next
		if cursor == 0 {
			return out
		}
	}
}

// monitorRedis puts a raw connection to addr into MONITOR mode and copies every
// command the server receives (from any client, Lua script arguments and
// PUBLISH messages included) into the returned buffer until the test ends.
func monitorRedis(t *testing.T, addr string) *syncBuffer {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write([]byte("*1\r\n$7\r\nMONITOR\r\n")); err != nil {
		t.Fatal(err)
	}
	rd := bufio.NewReader(conn)
	line, err := rd.ReadString('\n')
	if err != nil || line != "+OK\r\n" {
		t.Fatalf("MONITOR: %q, %v", line, err)
	}
	buf := &syncBuffer{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = io.Copy(buf, rd)
	}()
	t.Cleanup(func() {
		conn.Close()
		<-done
	})
	return buf
}

// secFleet is a redis-server, the simulator with a distinctive secret, and
// workers logging at debug level into one buffer.
type secFleet struct {
	redis    *redistest.Server
	sim      *sentineltest.Server
	secret   string
	shCfg    sentinel.Config
	recorder *tokenRecorder
	logs     *syncBuffer
	monitor  *syncBuffer // every command Redis received
	workers  []*worker.Worker
	rdb      *redis.Client
	store    *jobs.Store
	ctl      tasks.Controller
}

// newSecFleet starts a redis-server watched by MONITOR, the simulator and n
// started workers, each with its own Redis client and token source.
func newSecFleet(t *testing.T, n int) *secFleet {
	t.Helper()
	f := &secFleet{redis: redistest.Start(t), secret: randomSecret("S3CR3T-"), logs: &syncBuffer{}}
	f.monitor = monitorRedis(t, f.redis.Addr)
	f.sim = sentineltest.NewServer(sentineltest.Config{ClientID: "security-client", ClientSecret: f.secret, Policies: simPolicies()})
	t.Cleanup(f.sim.Close)
	f.recorder = &tokenRecorder{base: http.DefaultTransport.(*http.Transport).Clone()}
	f.shCfg = f.sim.ClientConfig()
	f.shCfg.HTTPClient = &http.Client{Transport: f.recorder}
	log := zerolog.New(f.logs).Level(zerolog.DebugLevel).With().Timestamp().Logger()
	for i := 0; i < n; i++ {
		w, err := worker.New(worker.Config{Redis: f.client(t), Sentinel: f.shCfg, Policies: testPolicies,
			Concurrency: 4, ShutdownTimeout: 5 * time.Second, Logger: log.With().Int("worker", i).Logger()})
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Check(context.Background(), true); err != nil {
			t.Fatal(err)
		}
		if err := w.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(w.Shutdown)
		f.workers = append(f.workers, w)
	}
	f.rdb = f.client(t)
	f.store = &jobs.Store{Redis: f.rdb}
	f.ctl = tasks.Controller{Jobs: f.store, Queue: asynq.NewClientFromRedisClient(f.rdb), Inspector: asynq.NewInspectorFromRedisClient(f.rdb)}
	return f
}

// client is a new Redis client of the fleet's server, closed with the test.
func (f *secFleet) client(t *testing.T) *redis.Client {
	c := f.redis.Client()
	t.Cleanup(func() { c.Close() })
	return c
}

// waitFinal polls the job until it is final.
func (f *secFleet) waitFinal(t *testing.T, id string, timeout time.Duration) jobs.Job {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		job, err := f.store.Get(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if job.Status.Final() {
			return job
		}
		if time.Now().After(deadline) {
			t.Logf("worker logs:\n%s", f.logs.Bytes())
			for _, q := range []string{tasks.QueueCatalog, jobs.DefaultQueue} {
				for _, list := range []func(string, ...asynq.ListOption) ([]*asynq.TaskInfo, error){f.ctl.Inspector.ListRetryTasks, f.ctl.Inspector.ListArchivedTasks, f.ctl.Inspector.ListPendingTasks, f.ctl.Inspector.ListActiveTasks} {
					infos, _ := list(q)
					for _, ti := range infos {
						t.Logf("task %s %s %s: %s", q, ti.Type, ti.State, ti.LastErr)
					}
				}
			}
			t.Fatalf("job %s still %s after %s: %+v", id, job.Status, timeout, job.Progress)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// splitAOI reads an AOI file and splits it at 60 m on utm-10km.
func splitAOI(t *testing.T, path string) []grid.Tile {
	t.Helper()
	aois, err := grid.ParseFile(path, grid.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	g, err := grid.ParseGrid("utm-10km")
	if err != nil {
		t.Fatal(err)
	}
	tiles, err := grid.Split(aois, g, grid.SplitOptions{Resolution: 60})
	if err != nil {
		t.Fatal(err)
	}
	return tiles
}

// smallSpec is a short job (two weeks, so few items) writing to outDir.
func smallSpec(t *testing.T, outDir string) jobs.Spec {
	t.Helper()
	script, err := os.ReadFile("../examples/evalscript-truecolor.js")
	if err != nil {
		t.Fatal(err)
	}
	cloud := 70.0
	return jobs.Spec{Grid: "utm-10km", Resolution: 60, Collection: "sentinel-2-l2a", Evalscript: string(script),
		From: time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2025, 6, 15, 0, 0, 0, 0, time.UTC),
		MaxCloudCover: &cloud, OutputURL: "file://" + outDir, AutoStart: true}
}

// TestSecretsAndTokensNeverLeak runs a real job on two workers with a
// distinctive client secret, forces a token rejection and refresh, provokes the
// credential errors, leaves tasks pending in paused queues, and then searches the
// workers' debug logs, the error messages, every key and value in Redis, the
// asynqmon JSON API, the job's manifest and the printed sentinel.Config for the
// secret and every access token the simulator issued.
func TestSecretsAndTokensNeverLeak(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newSecFleet(t, 2)
	outDir := t.TempDir()
	spec := smallSpec(t, outDir)
	tiles := splitAOI(t, "../examples/aoi.geojson")

	job, err := f.ctl.Submit(ctx, spec, tiles)
	if err != nil {
		t.Fatal(err)
	}
	job = f.waitFinal(t, job.ID, 40*time.Second)
	if job.Status != jobs.StatusDone {
		t.Fatalf("job status %s, want DONE: %+v", job.Status, job.Progress)
	}

	// Revoke every token: the next API call gets 401, the shared source
	// invalidates the token and fetches a second one (logged by fingerprint).
	f.sim.ExpireTokens()
	searchReq := tasks.SearchRequest(spec, tasks.GroupTiles(tiles, 0, 0)[0])
	if _, err := f.workers[0].Handlers.Client.Catalog.SearchPage(ctx, searchReq); err != nil {
		t.Fatalf("search after token revocation: %v (the shared source should have replaced the token)", err)
	}
	current, err := f.workers[0].Tokens.Token()
	if err != nil {
		t.Fatal(err)
	}
	issued := f.recorder.Tokens()
	if st := f.sim.Stats(); st.TokensIssued != 2 || st.Unauthorized < 1 || len(issued) != 2 {
		t.Fatalf("want 2 tokens issued (one revoked with a 401), got %d issued, %d recorded, %d 401s", st.TokensIssued, len(issued), st.Unauthorized)
	}
	if current.AccessToken != issued[1] {
		t.Fatal("the shared token source does not hold the token issued last")
	}

	wrongSecret := randomSecret("WR0NG-")
	needles := append(secretNeedles("client secret", f.secret), secretNeedles("wrong client secret", wrongSecret)...)
	for i, tok := range issued {
		needles = append(needles, tokenNeedles(fmt.Sprintf("access token #%d", i+1), tok)...)
	}

	// (b) Every credential error we can provoke.
	var errs []string
	{
		// 401 with a revoked token: AuthError.
		static := sentinel.NewClient(f.shCfg, oauth2.StaticTokenSource(&oauth2.Token{AccessToken: issued[0], TokenType: "Bearer"}))
		_, err := static.Catalog.SearchPage(ctx, searchReq)
		var ae *sentinel.AuthError
		if !errors.As(err, &ae) || ae.Status != http.StatusUnauthorized {
			t.Fatalf("revoked token: got %v, want *sentinel.AuthError 401", err)
		}
		errs = append(errs, err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", ae))
	}
	{
		// Wrong secret: the worker's start-up check fails with a TokenError.
		cfg := f.shCfg
		cfg.ClientSecret = wrongSecret
		w, err := worker.New(worker.Config{Redis: f.client(t), Sentinel: cfg, Policies: testPolicies, Prefix: "wrongsecret"})
		if err != nil {
			t.Fatal(err)
		}
		err = w.Check(ctx, true)
		var te *sentinel.TokenError
		if !errors.As(err, &te) || te.Status != http.StatusUnauthorized {
			t.Fatalf("wrong secret: got %v, want a *sentinel.TokenError 401", err)
		}
		if !strings.Contains(err.Error(), "secret rejected") {
			t.Errorf("wrong secret error %q does not say the secret was rejected", err)
		}
		errs = append(errs, err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", te))
		// A worker that was never started just closes (see Worker.Shutdown).
		w.Shutdown()
	}
	{
		// A secret file that does not exist: the error names the file only.
		cfg := f.shCfg
		cfg.ClientSecret, cfg.ClientSecretFile = "", filepath.Join(t.TempDir(), "missing-secret")
		_, err := worker.New(worker.Config{Redis: f.rdb, Sentinel: cfg, Policies: testPolicies})
		if err == nil || !strings.Contains(err.Error(), "missing-secret") {
			t.Fatalf("missing secret file: got %v, want an error naming the file", err)
		}
		errs = append(errs, err.Error())
	}
	for i, e := range errs {
		assertClean(t, fmt.Sprintf("error message #%d", i+1), []byte(e), needles)
	}

	// Leave tasks in Redis for (c) and (d): pause both queues and submit a
	// second job, whose catalog tasks then wait with their payloads.
	for _, q := range []string{tasks.QueueCatalog, jobs.DefaultQueue} {
		if err := f.ctl.Inspector.PauseQueue(q); err != nil {
			t.Fatal(err)
		}
	}
	job2, err := f.ctl.Submit(ctx, spec, tiles)
	if err != nil {
		t.Fatal(err)
	}
	pending, err := f.ctl.Inspector.ListPendingTasks(tasks.QueueCatalog)
	if err != nil || len(pending) == 0 {
		t.Fatalf("want pending catalog tasks of job %s in the paused queue, got %d (%v)", job2.ID, len(pending), err)
	}

	// (c) Every key and value in Redis.
	dump := dumpRedis(t, ctx, f.rdb)
	tokenKey := quota.AccountKey(keys.DefaultPrefix, f.shCfg.ClientID, "token")
	if _, ok := dump[tokenKey]; !ok || len(dump) < 10 {
		t.Fatalf("Redis dump has %d keys and no token key %s: the dump missed the fleet's keys", len(dump), tokenKey)
	}
	for k, v := range dump {
		assertClean(t, "Redis key "+k, v, needles)
	}

	// Every command Redis received, whoever sent it: Lua script arguments,
	// PUBLISH messages and values since overwritten or deleted included.
	monitored := f.monitor.Bytes()
	if tokenKey := []byte(quota.AccountKey(keys.DefaultPrefix, f.shCfg.ClientID, "token")); !bytes.Contains(monitored, tokenKey) {
		t.Fatalf("MONITOR saw %d bytes without the token key: it missed the fleet's commands", len(monitored))
	}
	assertClean(t, "commands sent to Redis (MONITOR)", monitored, needles)

	// (d) asynqmon's JSON API.
	mon := asynqmon.New(asynqmon.Options{RootPath: "/monitoring", RedisConnOpt: asynq.RedisClientOpt{Addr: f.redis.Addr}})
	defer mon.Close()
	srv := httptest.NewServer(mon)
	defer srv.Close()
	paths := []string{"/queues", "/queue_stats", "/servers", "/scheduler_entries", "/redis_info"}
	for _, q := range []string{tasks.QueueCatalog, jobs.DefaultQueue} {
		paths = append(paths, "/queues/"+q, "/queues/"+q+"/groups")
		for _, state := range []string{"active", "pending", "scheduled", "retry", "archived", "completed"} {
			paths = append(paths, "/queues/"+q+"/"+state+"_tasks")
		}
	}
	for _, ti := range pending {
		paths = append(paths, "/queues/"+tasks.QueueCatalog+"/tasks/"+ti.ID)
	}
	var pendingBody []byte
	for _, p := range paths {
		resp, err := http.Get(srv.URL + "/monitoring/api" + p)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("asynqmon GET %s: %d %s", p, resp.StatusCode, body)
		}
		if p == "/queues/"+tasks.QueueCatalog+"/pending_tasks" {
			pendingBody = body
		}
		assertClean(t, "asynqmon "+p, body, needles)
	}
	if !bytes.Contains(pendingBody, []byte(job2.ID)) {
		t.Fatalf("asynqmon's pending catalog tasks do not show job %s's payloads: the check looked at nothing", job2.ID)
	}

	// (a) Every log line of the workers, at debug level.
	logs := f.logs.Bytes()
	for _, want := range []string{"shared token refreshed", "shared token invalidated", "item DONE"} {
		if !bytes.Contains(logs, []byte(want)) {
			t.Errorf("worker logs lack %q: the log capture saw too little", want)
		}
	}
	assertClean(t, "worker logs", logs, needles)

	// The job's manifest and output records.
	manifest, err := os.ReadFile(filepath.Join(outDir, tasks.ManifestKey(job.ID)))
	if err != nil {
		t.Fatal(err)
	}
	assertClean(t, "manifest", manifest, needles)
	parts, _ := filepath.Glob(filepath.Join(outDir, job.ID, "manifest", "part-*.jsonl"))
	if len(parts) == 0 {
		t.Fatal("the job has no manifest part: the records check looked at nothing")
	}
	for _, p := range parts {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		assertClean(t, "manifest part "+filepath.Base(p), b, needles)
	}

	// (e) The printed Sentinel configuration, in every verb.
	wrapped := struct{ Sentinel sentinel.Config }{f.shCfg}
	for _, s := range []string{f.shCfg.String(), f.shCfg.GoString(),
		fmt.Sprintf("%v", f.shCfg), fmt.Sprintf("%+v", f.shCfg), fmt.Sprintf("%#v", f.shCfg), fmt.Sprintf("%s", f.shCfg),
		fmt.Sprintf("%v", &f.shCfg), fmt.Sprintf("%+v", &f.shCfg), fmt.Sprintf("%+v", wrapped), fmt.Sprintf("%#v", wrapped)} {
		if !strings.Contains(s, f.shCfg.ClientID) {
			t.Errorf("printed config %q lacks the client id: it printed something else", s)
		}
		assertClean(t, "printed sentinel.Config "+s, []byte(s), needles)
	}
}

// TestTokenAtRestNeedsTheSecret reads the shared token's raw Redis value and
// checks that it holds neither the token nor its parts, and that a token source
// with another secret never returns the stored token: against the same account it
// gets the token endpoint's refusal, against an account that accepts its secret it
// fetches a token of its own.
func TestTokenAtRestNeedsTheSecret(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := redistest.Start(t)
	rdb := srv.Client()
	defer rdb.Close()
	secret, other := randomSecret("S3CR3T-"), randomSecret("OTHER-")
	const clientID = "at-rest-client"

	sim := sentineltest.NewServer(sentineltest.Config{ClientID: clientID, ClientSecret: secret})
	defer sim.Close()
	source := func(prefix string, cfg sentinel.Config, secret string) *quota.SharedTokenSource {
		ts, err := quota.NewSharedTokenSource(quota.TokenConfig{Redis: rdb, ClientID: clientID, ClientSecret: secret,
			Upstream: sentinelquota.Upstream(cfg), Prefix: prefix})
		if err != nil {
			t.Fatal(err)
		}
		return ts
	}
	prefix := redistest.Prefix(t)
	tok, err := source(prefix, sim.ClientConfig(), secret).TokenContext(ctx)
	if err != nil {
		t.Fatal(err)
	}
	key := quota.AccountKey(prefix, clientID, "token")
	raw, err := rdb.Get(ctx, key).Bytes()
	if err != nil {
		t.Fatalf("token key %s: %v", key, err)
	}
	var rec struct {
		CT []byte `json:"ct"`
	}
	if err := json.Unmarshal(raw, &rec); err != nil || len(rec.CT) == 0 {
		t.Fatalf("token key %s holds no ciphertext (%v): the check would look at nothing", key, err)
	}
	needles := append(tokenNeedles("access token", tok.AccessToken), secretNeedles("client secret", secret)...)
	needles = append(needles, needle{"access token (base64url)", base64.RawURLEncoding.EncodeToString([]byte(tok.AccessToken))})
	assertClean(t, "raw token record", raw, needles)

	// Another secret, same account: the token endpoint refuses it and the
	// stored token is not handed out.
	wrongCfg := sim.ClientConfig()
	wrongCfg.ClientSecret = other
	got, err := source(prefix, wrongCfg, other).TokenContext(ctx)
	if err == nil {
		t.Fatalf("a source with another secret got a token (same as stored: %v)", got.AccessToken == tok.AccessToken)
	}
	assertClean(t, "wrong-secret token error", []byte(err.Error()), append(needles, secretNeedles("other secret", other)...))

	// Another secret that its own token endpoint accepts: it fetches its own
	// token (and replaces the stored one) instead of decrypting ours. (A fresh
	// prefix: the refusal above is shared with the account's sources for a while.)
	prefix2 := prefix + "-2"
	tok2, err := source(prefix2, sim.ClientConfig(), secret).TokenContext(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sim2 := sentineltest.NewServer(sentineltest.Config{ClientID: clientID, ClientSecret: other})
	defer sim2.Close()
	got, err = source(prefix2, sim2.ClientConfig(), other).TokenContext(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got.AccessToken == tok2.AccessToken || got.AccessToken == tok.AccessToken {
		t.Fatal("a source with another secret returned the stored token")
	}
	if n := sim2.Stats().TokensIssued; n != 1 {
		t.Fatalf("the other-secret source fetched %d tokens, want 1 of its own", n)
	}
}

// walkFiles lists every regular file under root, relative to it.
func walkFiles(t *testing.T, root string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, err := filepath.Rel(root, p)
			if err != nil {
				return err
			}
			out[rel] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestTokenEndpointEchoIsScrubbed points the credentials at a token endpoint
// that echoes the whole request (form body and headers) in its error answer, as
// misconfigured proxies do, with a secret full of characters that form encoding
// changes. Neither sentinel.FetchToken's nor the shared token source's error, nor
// the error record the source shares through Redis, may carry the secret in any
// encoding.
func TestTokenEndpointEchoIsScrubbed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	secret := randomSecret("S3CR3T+/=&%?# é-")
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, "bad request: %s %s\nheaders: %v\nbody: %s", r.Method, r.URL, r.Header, body)
	}))
	defer echo.Close()
	cfg := sentinel.Config{ClientID: "echo-client", ClientSecret: secret, BaseURL: echo.URL, TokenURL: echo.URL + "/token"}
	needles := append(secretNeedles("client secret", secret),
		needle{"client secret (form-encoded)", url.QueryEscape(secret)},
		needle{"client secret (path-escaped)", url.PathEscape(secret)},
		needle{"basic auth", base64.StdEncoding.EncodeToString([]byte(cfg.ClientID + ":" + secret))},
		needle{"basic auth (form-encoded)", base64.StdEncoding.EncodeToString([]byte(cfg.ClientID + ":" + url.QueryEscape(secret)))})

	_, err := sentinel.FetchToken(ctx, cfg)
	var te *sentinel.TokenError
	if !errors.As(err, &te) || te.Status != http.StatusBadRequest || !strings.Contains(te.Body, "bad request") {
		t.Fatalf("FetchToken against the echo endpoint: %v; want a TokenError 400 with the body", err)
	}
	assertClean(t, "FetchToken error", []byte(err.Error()+"\n"+fmt.Sprintf("%+v", err)+"\n"+te.Body), needles)

	srv := redistest.Start(t)
	rdb := srv.Client()
	defer rdb.Close()
	prefix := redistest.Prefix(t)
	logs := &syncBuffer{}
	ts, err := quota.NewSharedTokenSource(quota.TokenConfig{Redis: rdb, ClientID: cfg.ClientID, ClientSecret: secret,
		Upstream: sentinelquota.Upstream(cfg), Prefix: prefix, Logger: zerolog.New(logs).Level(zerolog.DebugLevel)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = ts.TokenContext(ctx)
	if !errors.As(err, &te) {
		t.Fatalf("shared source against the echo endpoint: %v; want a TokenError", err)
	}
	assertClean(t, "shared token source error", []byte(err.Error()+"\n"+fmt.Sprintf("%+v", err)), needles)
	// The refusal is shared with the fleet through Redis: a second source
	// reads it back without calling the endpoint.
	_, err = ts.TokenContext(ctx)
	if err == nil {
		t.Fatal("second call got a token from the echo endpoint")
	}
	assertClean(t, "shared token source error (second call)", []byte(err.Error()), needles)
	for k, v := range dumpRedis(t, ctx, rdb) {
		assertClean(t, "Redis key "+k, v, needles)
	}
	if l := logs.Bytes(); !bytes.Contains(l, []byte("refresh failed")) {
		t.Errorf("the token source logged no refresh failure: %s", l)
	} else {
		assertClean(t, "token source logs", l, needles)
	}
}
