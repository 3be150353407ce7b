package quota

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"shfleet/internal/redistest"
	"shfleet/sentinel"
	"shfleet/sentinel/sentineltest"
)

const (
	tokenTestClientID = "test-client-id"
	tokenTestSecret   = "test-client-secret-s3cr3t"
)

// tokenTestClock is an adjustable clock shared by the sources and the endpoint.
type tokenTestClock struct{ ns atomic.Int64 }

func newTokenTestClock() *tokenTestClock {
	c := &tokenTestClock{}
	c.ns.Store(time.Now().UnixNano())
	return c
}

func (c *tokenTestClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *tokenTestClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// tokenTestEndpoint is a real HTTP OAuth client-credentials endpoint that counts
// requests and issues JWTs whose exp follows the test clock.
type tokenTestEndpoint struct {
	srv      *httptest.Server
	requests atomic.Int64
	status   atomic.Int32 // when non-zero, answer with this status
	delay    atomic.Int64 // nanoseconds to wait before answering
	ttl      time.Duration
	now      func() time.Time
}

func newTokenTestEndpoint(t *testing.T, ttl time.Duration, now func() time.Time) *tokenTestEndpoint {
	t.Helper()
	ep := &tokenTestEndpoint{ttl: ttl, now: now}
	ep.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := ep.requests.Add(1)
		time.Sleep(time.Duration(ep.delay.Load()))
		if err := r.ParseForm(); err != nil || r.PostForm.Get("client_secret") != tokenTestSecret ||
			r.PostForm.Get("grant_type") != "client_credentials" {
			http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
			return
		}
		if st := ep.status.Load(); st != 0 {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Retry-After", "1500")
			w.WriteHeader(int(st))
			fmt.Fprint(w, `{"error":"too_many_requests","error_description":"slow down"}`)
			return
		}
		exp := ep.now().Add(ep.ttl)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"access_token": tokenTestJWT(exp, n),
			"token_type":   "Bearer",
			"expires_in":   int(ep.ttl.Seconds()),
		})
	}))
	t.Cleanup(ep.srv.Close)
	return ep
}

func tokenTestJWT(exp time.Time, jti int64) string {
	enc := base64.RawURLEncoding.EncodeToString
	head := enc([]byte(`{"alg":"RS256","typ":"JWT"}`))
	body := enc([]byte(fmt.Sprintf(`{"sub":"client","exp":%d,"jti":"%d"}`, exp.Unix(), jti)))
	return head + "." + body + "." + enc([]byte(fmt.Sprintf("signature-%d", jti)))
}

// tokenTestUpstream fetches a new token on every call, as TokenConfig.Upstream
// must.
type tokenTestUpstream struct{ cfg *clientcredentials.Config }

func (u tokenTestUpstream) Token() (*oauth2.Token, error) { return u.cfg.Token(context.Background()) }

// TokenContext lets the source bound the request by its context.
func (u tokenTestUpstream) TokenContext(ctx context.Context) (*oauth2.Token, error) {
	return u.cfg.Token(ctx)
}

func (ep *tokenTestEndpoint) upstream() oauth2.TokenSource {
	return tokenTestUpstream{cfg: &clientcredentials.Config{
		ClientID:     tokenTestClientID,
		ClientSecret: tokenTestSecret,
		TokenURL:     ep.srv.URL,
		AuthStyle:    oauth2.AuthStyleInParams,
	}}
}

type tokenTestEnv struct {
	t      *testing.T
	redis  *redistest.Server
	prefix string
	ep     *tokenTestEndpoint
	clock  *tokenTestClock
}

func newTokenTestEnv(t *testing.T, ttl time.Duration) *tokenTestEnv {
	clock := newTokenTestClock()
	return &tokenTestEnv{
		t:      t,
		redis:  redistest.Start(t),
		prefix: redistest.Prefix(t),
		ep:     newTokenTestEndpoint(t, ttl, clock.Now),
		clock:  clock,
	}
}

// source returns a SharedTokenSource with its own Redis client, as a separate
// process would have.
func (e *tokenTestEnv) source(mod func(*TokenConfig)) *SharedTokenSource {
	e.t.Helper()
	rdb := e.redis.Client()
	e.t.Cleanup(func() { rdb.Close() })
	cfg := TokenConfig{
		Redis:        rdb,
		ClientID:     tokenTestClientID,
		ClientSecret: tokenTestSecret,
		Upstream:     e.ep.upstream(),
		Prefix:       e.prefix,
		PollInterval: 50 * time.Millisecond,
		Now:          e.clock.Now,
	}
	if mod != nil {
		mod(&cfg)
	}
	s, err := NewSharedTokenSource(cfg)
	if err != nil {
		e.t.Fatalf("NewSharedTokenSource: %v", err)
	}
	return s
}

func (e *tokenTestEnv) sources(n int) []*SharedTokenSource {
	out := make([]*SharedTokenSource, n)
	for i := range out {
		out[i] = e.source(nil)
	}
	return out
}

// all runs f for every source at once and returns the results in order.
func tokenTestAll(srcs []*SharedTokenSource, f func(*SharedTokenSource) (*oauth2.Token, error)) ([]*oauth2.Token, []error) {
	toks := make([]*oauth2.Token, len(srcs))
	errs := make([]error, len(srcs))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, s := range srcs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			toks[i], errs[i] = f(s)
		}()
	}
	close(start)
	wg.Wait()
	return toks, errs
}

func tokenTestSame(t *testing.T, toks []*oauth2.Token, errs []error) string {
	t.Helper()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("source %d: %v", i, err)
		}
	}
	want := toks[0].AccessToken
	for i, tok := range toks {
		if tok.AccessToken != want {
			t.Fatalf("source %d got a different token (fp %s, want %s)", i,
				tokenShortFP(tokenFingerprint(tok.AccessToken)), tokenShortFP(tokenFingerprint(want)))
		}
	}
	return want
}

func TestSharedTokenSingleFlight(t *testing.T) {
	e := newTokenTestEnv(t, time.Hour)
	srcs := e.sources(50)
	toks, errs := tokenTestAll(srcs, func(s *SharedTokenSource) (*oauth2.Token, error) { return s.Token() })
	tok := tokenTestSame(t, toks, errs)
	if got := e.ep.requests.Load(); got != 1 {
		t.Fatalf("token endpoint saw %d requests for 50 concurrent sources, want exactly 1", got)
	}
	if exp, ok := sentinel.JWTExpiry(tok); !ok || !toks[0].Expiry.Equal(exp) {
		t.Errorf("token Expiry = %v, want the JWT exp %v", toks[0].Expiry, exp)
	}
	var refreshes, waits uint64
	for _, s := range srcs {
		st := s.Stats()
		refreshes += st.Refreshes
		waits += st.Waits
	}
	if refreshes != 1 {
		t.Errorf("sum of Stats().Refreshes = %d, want 1", refreshes)
	}
	if waits == 0 {
		t.Errorf("no source waited for the refresh; the single-flight path was not exercised")
	}
	// Second call: served from the process-local cache, no Redis read.
	before := srcs[0].Stats()
	again, err := srcs[0].Token()
	if err != nil || again.AccessToken != tok {
		t.Fatalf("second Token() = %v, %v; want the same token", again, err)
	}
	after := srcs[0].Stats()
	if after.CacheHits != before.CacheHits+1 || after.RedisReads != before.RedisReads {
		t.Errorf("second call stats %+v -> %+v, want one cache hit and no Redis read", before, after)
	}
}

func TestSharedTokenSameProcessConcurrency(t *testing.T) {
	e := newTokenTestEnv(t, time.Hour)
	s := e.source(nil)
	srcs := make([]*SharedTokenSource, 20)
	for i := range srcs {
		srcs[i] = s
	}
	toks, errs := tokenTestAll(srcs, func(s *SharedTokenSource) (*oauth2.Token, error) { return s.Token() })
	tokenTestSame(t, toks, errs)
	if got := e.ep.requests.Load(); got != 1 {
		t.Fatalf("token endpoint saw %d requests, want 1", got)
	}
	if st := s.Stats(); st.Waits != 0 {
		t.Errorf("goroutines of one process waited on Redis %d times; want them queued locally", st.Waits)
	}
}

func TestSharedTokenRefreshAhead(t *testing.T) {
	e := newTokenTestEnv(t, time.Hour)
	first, err := e.source(nil).Token()
	if err != nil {
		t.Fatal(err)
	}
	srcs := e.sources(50)
	if _, errs := tokenTestAll(srcs, func(s *SharedTokenSource) (*oauth2.Token, error) { return s.Token() }); errs[0] != nil {
		t.Fatal(errs[0])
	}
	// One minute before expiry: inside the 2-minute margin, still valid.
	e.clock.Advance(59 * time.Minute)
	toks, errs := tokenTestAll(srcs, func(s *SharedTokenSource) (*oauth2.Token, error) { return s.Token() })
	var fresh string
	for i, err := range errs {
		if err != nil {
			t.Fatalf("source %d during refresh-ahead: %v", i, err)
		}
		if toks[i].AccessToken != first.AccessToken {
			if fresh != "" && fresh != toks[i].AccessToken {
				t.Fatalf("two different new tokens: the refresh ran twice")
			}
			fresh = toks[i].AccessToken
		}
	}
	if got := e.ep.requests.Load(); got != 2 {
		t.Fatalf("token endpoint saw %d requests, want 2 (initial + one refresh ahead)", got)
	}
	toks, errs = tokenTestAll(srcs, func(s *SharedTokenSource) (*oauth2.Token, error) { return s.Token() })
	second := tokenTestSame(t, toks, errs)
	if second == first.AccessToken || (fresh != "" && second != fresh) {
		t.Fatalf("after the refresh, sources still use the old token or another one")
	}
	if got := e.ep.requests.Load(); got != 2 {
		t.Fatalf("token endpoint saw %d requests, want still 2", got)
	}
}

func TestSharedTokenExpiredRefreshes(t *testing.T) {
	e := newTokenTestEnv(t, time.Hour)
	s := e.source(nil)
	a, err := s.Token()
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(2 * time.Hour)
	b, err := s.Token()
	if err != nil {
		t.Fatal(err)
	}
	if a.AccessToken == b.AccessToken || e.ep.requests.Load() != 2 {
		t.Fatalf("expired token was not refreshed (requests %d)", e.ep.requests.Load())
	}
}

func TestSharedTokenInvalidateOnce(t *testing.T) {
	e := newTokenTestEnv(t, time.Hour)
	srcs := e.sources(50)
	toks, errs := tokenTestAll(srcs, func(s *SharedTokenSource) (*oauth2.Token, error) { return s.Token() })
	rejected := tokenTestSame(t, toks, errs)
	// Every worker saw the same 401 and reports it, then asks for a token.
	toks, errs = tokenTestAll(srcs, func(s *SharedTokenSource) (*oauth2.Token, error) {
		if err := s.Invalidate(context.Background(), rejected); err != nil {
			return nil, err
		}
		return s.Token()
	})
	renewed := tokenTestSame(t, toks, errs)
	if renewed == rejected {
		t.Fatal("sources still return the rejected token")
	}
	if got := e.ep.requests.Load(); got != 2 {
		t.Fatalf("token endpoint saw %d requests, want 2 (one refresh for 50 invalidations)", got)
	}
	var deleted uint64
	for _, s := range srcs {
		deleted += s.Stats().Invalidations
	}
	if deleted != 1 {
		t.Errorf("%d sources deleted the shared token, want 1", deleted)
	}
}

func TestSharedTokenInvalidateOldKeepsNew(t *testing.T) {
	e := newTokenTestEnv(t, time.Hour)
	s := e.source(nil)
	ctx := context.Background()
	a, err := s.Token()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Invalidate(ctx, a.AccessToken); err != nil {
		t.Fatal(err)
	}
	b, err := s.Token()
	if err != nil {
		t.Fatal(err)
	}
	if b.AccessToken == a.AccessToken {
		t.Fatal("no new token after invalidation")
	}
	// A late 401 report about the old token must not delete the new one.
	if err := e.source(nil).Invalidate(ctx, a.AccessToken); err != nil {
		t.Fatal(err)
	}
	raw, err := e.redis.Client().Get(ctx, AccountKey(e.prefix, tokenTestClientID, "token")).Bytes()
	if err != nil {
		t.Fatalf("new token was deleted by a stale invalidation: %v", err)
	}
	var rec tokenRecord
	if err := json.Unmarshal(raw, &rec); err != nil || rec.FP != tokenFingerprint(b.AccessToken) {
		t.Fatalf("stored token fp %q, want the new token's", rec.FP)
	}
	c, err := e.source(nil).Token()
	if err != nil || c.AccessToken != b.AccessToken {
		t.Fatalf("another process got %v, %v; want the new token", c, err)
	}
	if got := e.ep.requests.Load(); got != 2 {
		t.Fatalf("token endpoint saw %d requests, want 2", got)
	}
}

func TestSharedTokenUpstream429SharedWithWaiters(t *testing.T) {
	e := newTokenTestEnv(t, time.Hour)
	e.ep.status.Store(http.StatusTooManyRequests)
	srcs := e.sources(50)
	_, errs := tokenTestAll(srcs, func(s *SharedTokenSource) (*oauth2.Token, error) { return s.Token() })
	for i, err := range errs {
		var te *sentinel.TokenError
		if !errors.As(err, &te) {
			t.Fatalf("source %d: error %v is not a *sentinel.TokenError", i, err)
		}
		if te.Status != http.StatusTooManyRequests || te.RetryAfter != 1500*time.Millisecond {
			t.Errorf("source %d: TokenError status %d retry %s, want 429 and 1.5s", i, te.Status, te.RetryAfter)
		}
		if !strings.Contains(te.Body, "slow down") {
			t.Errorf("source %d: body %q lacks the endpoint's message", i, te.Body)
		}
		if msg := err.Error(); !strings.Contains(msg, "token endpoint answered 429") || strings.Contains(msg, tokenTestSecret) {
			t.Errorf("source %d: message %q", i, msg)
		}
	}
	if got := e.ep.requests.Load(); got != 1 {
		t.Fatalf("token endpoint saw %d requests, want 1 (waiters must reuse the holder's error)", got)
	}
	var stErrs uint64
	for _, s := range srcs {
		stErrs += s.Stats().Errors
	}
	if stErrs != 50 {
		t.Errorf("Stats().Errors sum = %d, want 50", stErrs)
	}
}

func TestSharedTokenFleetBudget(t *testing.T) {
	e := newTokenTestEnv(t, time.Hour)
	s := e.source(func(c *TokenConfig) { c.TokenRequestsPerMinute = 2 })
	ctx := context.Background()
	var budgetErr *TokenBudgetError
	for i := 0; i < 5; i++ {
		tok, err := s.Token()
		if err != nil {
			if !errors.As(err, &budgetErr) {
				t.Fatalf("round %d: %v, want a *TokenBudgetError", i, err)
			}
			continue
		}
		if err := s.Invalidate(ctx, tok.AccessToken); err != nil {
			t.Fatal(err)
		}
	}
	if got := e.ep.requests.Load(); got != 2 {
		t.Fatalf("token endpoint saw %d requests with a budget of 2/min, want 2", got)
	}
	if budgetErr == nil {
		t.Fatal("no *TokenBudgetError after spending the budget")
	}
	if budgetErr.RetryAfter <= 0 || budgetErr.Limit != 2 || !strings.Contains(budgetErr.Error(), "token request budget spent") {
		t.Errorf("budget error %+v: %v", budgetErr, budgetErr)
	}
	// Another process shares the same budget.
	if _, err := e.source(func(c *TokenConfig) { c.TokenRequestsPerMinute = 2 }).Token(); !errors.As(err, &budgetErr) {
		t.Fatalf("other process: %v, want a *TokenBudgetError", err)
	}
	if got := e.ep.requests.Load(); got != 2 {
		t.Fatalf("token endpoint saw %d requests, want 2", got)
	}
}

func TestSharedTokenEncryptedAtRest(t *testing.T) {
	e := newTokenTestEnv(t, time.Hour)
	tok, err := e.source(nil).Token()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := e.redis.Client().Get(context.Background(), AccountKey(e.prefix, tokenTestClientID, "token")).Bytes()
	if err != nil {
		t.Fatal(err)
	}
	payload := strings.Split(tok.AccessToken, ".")[1]
	if bytes.Contains(raw, []byte(tok.AccessToken)) || bytes.Contains(raw, []byte(payload)) {
		t.Fatal("Redis value contains the access token in clear")
	}
	if bytes.Contains(raw, []byte(tokenTestSecret)) {
		t.Fatal("Redis value contains the client secret")
	}
	other, err := tokenDeriveKey(tokenTestClientID, "another-secret")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := tokenOpen(other, raw); !errors.Is(err, errTokenUndecryptable) {
		t.Fatalf("decrypt with another secret: err = %v, want errTokenUndecryptable", err)
	}
	right, _ := tokenDeriveKey(tokenTestClientID, tokenTestSecret)
	got, rec, err := tokenOpen(right, raw)
	if err != nil || got.AccessToken != tok.AccessToken {
		t.Fatalf("decrypt with the right secret: %v", err)
	}
	// Tampering with the clear expiry is detected.
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	m["exp"] = rec.Exp + 3600_000
	tampered, _ := json.Marshal(m)
	if _, _, err := tokenOpen(right, tampered); err == nil {
		t.Fatal("a record with an altered expiry was accepted")
	}
}

func TestSharedTokenLockHolderCrash(t *testing.T) {
	e := newTokenTestEnv(t, time.Hour)
	ctx := context.Background()
	// A process took the lock and died: the lock stays until its TTL runs out.
	if err := e.redis.Client().Set(ctx, AccountKey(e.prefix, tokenTestClientID, "token:lock"), "crashed", 300*time.Millisecond).Err(); err != nil {
		t.Fatal(err)
	}
	s := e.source(func(c *TokenConfig) { c.LockTTL = 300 * time.Millisecond })
	tok, err := s.Token()
	if err != nil {
		t.Fatalf("Token after the holder crashed: %v", err)
	}
	if tok.AccessToken == "" || e.ep.requests.Load() != 1 {
		t.Fatalf("requests %d, want 1", e.ep.requests.Load())
	}
	if st := s.Stats(); st.Waits != 1 || st.Refreshes != 1 {
		t.Errorf("stats %+v, want one wait then one refresh (take-over)", st)
	}
}

func TestSharedTokenWaitBoundedByContextAndTimeout(t *testing.T) {
	e := newTokenTestEnv(t, time.Hour)
	bg := context.Background()
	if err := e.redis.Client().Set(bg, AccountKey(e.prefix, tokenTestClientID, "token:lock"), "alive", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(bg, 150*time.Millisecond)
	defer cancel()
	if _, err := e.source(nil).TokenContext(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want context.DeadlineExceeded", err)
	}
	_, err := e.source(func(c *TokenConfig) { c.WaitTimeout = 150 * time.Millisecond }).Token()
	if err == nil || !strings.Contains(err.Error(), "WaitTimeout") {
		t.Fatalf("err = %v, want a wait timeout naming WaitTimeout", err)
	}
	if e.ep.requests.Load() != 0 {
		t.Fatal("a waiter fetched a token while the lock was held")
	}
}

func TestSharedTokenRedisDown(t *testing.T) {
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	defer rdb.Close()
	srv.Stop()
	ep := newTokenTestEndpoint(t, time.Hour, time.Now)
	s, err := NewSharedTokenSource(TokenConfig{Redis: rdb, ClientID: tokenTestClientID, ClientSecret: tokenTestSecret, Upstream: ep.upstream()})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Token()
	if err == nil || !strings.Contains(err.Error(), "Redis") || !strings.Contains(err.Error(), "read token") {
		t.Fatalf("Token with Redis down: %v, want an error naming Redis", err)
	}
	if err := s.Invalidate(context.Background(), "x"); err == nil || !strings.Contains(err.Error(), "Redis") {
		t.Fatalf("Invalidate with Redis down: %v", err)
	}
	if ep.requests.Load() != 0 {
		t.Fatal("fetched a token although it could not be shared")
	}
}

func TestSharedTokenLogsNoSecrets(t *testing.T) {
	e := newTokenTestEnv(t, time.Hour)
	var buf tokenSyncBuffer
	s := e.source(func(c *TokenConfig) { c.Logger = zerolog.New(&buf).Level(zerolog.DebugLevel) })
	tok, err := s.Token()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Invalidate(context.Background(), tok.AccessToken); err != nil {
		t.Fatal(err)
	}
	e.ep.status.Store(http.StatusInternalServerError)
	if _, err := s.Token(); err == nil {
		t.Fatal("want an error from the failing endpoint")
	}
	out := buf.String()
	if strings.Contains(out, tok.AccessToken) || strings.Contains(out, tokenTestSecret) {
		t.Fatalf("log contains the token or the secret: %s", out)
	}
	if !strings.Contains(out, tokenShortFP(tokenFingerprint(tok.AccessToken))) {
		t.Errorf("log lacks the token fingerprint: %s", out)
	}
}

type tokenSyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *tokenSyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *tokenSyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// tokenOpaqueUpstream returns non-JWT tokens with an Expiry, as some servers do.
type tokenOpaqueUpstream struct{ n atomic.Int64 }

func (u *tokenOpaqueUpstream) Token() (*oauth2.Token, error) {
	n := u.n.Add(1)
	return &oauth2.Token{AccessToken: fmt.Sprintf("opaque-%d", n), Expiry: time.Now().Add(30 * time.Minute)}, nil
}

func TestSharedTokenExpiryFallback(t *testing.T) {
	e := newTokenTestEnv(t, time.Hour)
	up := &tokenOpaqueUpstream{}
	s := e.source(func(c *TokenConfig) { c.Upstream = up; c.Now = nil })
	tok, err := s.Token()
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Until(tok.Expiry); d < 29*time.Minute || d > 30*time.Minute {
		t.Fatalf("expiry in %s, want the upstream's 30m", d)
	}
	ttl := e.redis.Client().PTTL(context.Background(), AccountKey(e.prefix, tokenTestClientID, "token")).Val()
	if ttl < 29*time.Minute || ttl > 30*time.Minute {
		t.Fatalf("Redis TTL %s, want about 30m (until expiry)", ttl)
	}
}

func TestNewSharedTokenSourceValidates(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer rdb.Close()
	up := &tokenOpaqueUpstream{}
	good := TokenConfig{Redis: rdb, ClientID: "id", ClientSecret: "s", Upstream: up}
	tests := []struct {
		field string
		mod   func(*TokenConfig)
	}{
		{"Redis", func(c *TokenConfig) { c.Redis = nil }},
		{"ClientID", func(c *TokenConfig) { c.ClientID = "" }},
		{"ClientSecret", func(c *TokenConfig) { c.ClientSecret = "" }},
		{"Upstream", func(c *TokenConfig) { c.Upstream = nil }},
		{"RefreshMargin", func(c *TokenConfig) { c.RefreshMargin = -1 }},
		{"LockTTL", func(c *TokenConfig) { c.LockTTL = -1 }},
		{"WaitTimeout", func(c *TokenConfig) { c.WaitTimeout = -1 }},
	}
	for _, tt := range tests {
		t.Run(tt.field, func(t *testing.T) {
			cfg := good
			tt.mod(&cfg)
			_, err := NewSharedTokenSource(cfg)
			if err == nil || !strings.Contains(err.Error(), tt.field) {
				t.Fatalf("err = %v, want one naming %s", err, tt.field)
			}
		})
	}
	s, err := NewSharedTokenSource(good)
	if err != nil {
		t.Fatal(err)
	}
	if s.margin != DefaultTokenRefreshMargin || s.lockTTL != DefaultTokenLockTTL || s.waitTimeout != DefaultTokenWaitTimeout ||
		s.perMinute != DefaultTokenRequestsPerMinute || s.poll != DefaultTokenPollInterval {
		t.Errorf("defaults not applied: %+v", s)
	}
}

// tokenSentinelSources returns n sources, each with its own Redis client, fetching from
// the Sentinel Hub simulator through fetchUpstream (as sentinelquota.Upstream does).
func tokenSentinelSources(t *testing.T, srv *redistest.Server, sim *sentineltest.Server, n int, mod func(*TokenConfig)) []*SharedTokenSource {
	t.Helper()
	prefix := redistest.Prefix(t)
	cc := sim.ClientConfig()
	out := make([]*SharedTokenSource, n)
	for i := range out {
		rdb := srv.Client()
		t.Cleanup(func() { rdb.Close() })
		cfg := TokenConfig{Redis: rdb, ClientID: cc.ClientID, ClientSecret: cc.ClientSecret,
			Upstream: fetchUpstream{cc}, Prefix: prefix, PollInterval: 50 * time.Millisecond}
		if mod != nil {
			mod(&cfg)
		}
		s, err := NewSharedTokenSource(cfg)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = s
	}
	return out
}

func TestSharedTokenWithSimulator(t *testing.T) {
	srv := redistest.Start(t)
	sim := sentineltest.NewServer(sentineltest.Config{TokenTTL: time.Hour, TokenRequestsPerMinute: 2})
	defer sim.Close()
	srcs := tokenSentinelSources(t, srv, sim, 50, func(c *TokenConfig) { c.TokenRequestsPerMinute = -1 })
	toks, errs := tokenTestAll(srcs, func(s *SharedTokenSource) (*oauth2.Token, error) { return s.Token() })
	first := tokenTestSame(t, toks, errs)
	if st := sim.Stats(); st.TokenRequests != 1 || st.TokensIssued != 1 {
		t.Fatalf("simulator saw %d token requests (%d issued), want 1", st.TokenRequests, st.TokensIssued)
	}
	// One 401 seen by everyone: one refresh, a new token for all.
	toks, errs = tokenTestAll(srcs, func(s *SharedTokenSource) (*oauth2.Token, error) {
		if err := s.Invalidate(context.Background(), first); err != nil {
			return nil, err
		}
		return s.Token()
	})
	second := tokenTestSame(t, toks, errs)
	if second == first || sim.Stats().TokensIssued != 2 {
		t.Fatalf("after invalidation: issued %d, same token %v", sim.Stats().TokensIssued, second == first)
	}
	// The simulator allows 2 token requests per minute: the third is a real 429,
	// which every worker sees as the typed error, after one request.
	toks, errs = tokenTestAll(srcs, func(s *SharedTokenSource) (*oauth2.Token, error) {
		if err := s.Invalidate(context.Background(), second); err != nil {
			return nil, err
		}
		return s.Token()
	})
	for i, err := range errs {
		var te *sentinel.TokenError
		if !errors.As(err, &te) || te.Status != http.StatusTooManyRequests || te.RetryAfter <= 0 ||
			!strings.Contains(err.Error(), "token endpoint answered 429") {
			t.Fatalf("source %d: %v (token %v), want a *sentinel.TokenError 429 with Retry-After", i, err, toks[i])
		}
	}
	if st := sim.Stats(); st.TokenRequests != 3 || st.TokenRateLimited != 1 {
		t.Fatalf("simulator saw %d token requests, %d rate limited; want 3 and 1", st.TokenRequests, st.TokenRateLimited)
	}
}

func TestSharedTokenRejectsCachingUpstream(t *testing.T) {
	srv := redistest.Start(t)
	sim := sentineltest.NewServer(sentineltest.Config{TokenTTL: time.Hour})
	defer sim.Close()
	cached := sentinel.NewTokenSource(context.Background(), sim.ClientConfig())
	s := tokenSentinelSources(t, srv, sim, 1, func(c *TokenConfig) { c.Upstream = cached })[0]
	tok, err := s.Token()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Invalidate(context.Background(), tok.AccessToken); err != nil {
		t.Fatal(err)
	}
	_, err = s.Token()
	if err == nil || !strings.Contains(err.Error(), "caches tokens") {
		t.Fatalf("err = %v, want one saying the Upstream caches tokens", err)
	}
}

func TestSharedTokenCancelledHolderDoesNotPoisonFleet(t *testing.T) {
	e := newTokenTestEnv(t, time.Hour)
	e.ep.delay.Store(int64(400 * time.Millisecond))
	holder, waiter := e.source(nil), e.source(nil)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	holderErr := make(chan error, 1)
	go func() {
		_, err := holder.TokenContext(ctx)
		holderErr <- err
	}()
	// Let the holder take the lock first.
	lockKey := AccountKey(e.prefix, tokenTestClientID, "token:lock")
	rdb := e.redis.Client()
	defer rdb.Close()
	for rdb.Exists(context.Background(), lockKey).Val() == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	tok, err := waiter.Token()
	if err != nil {
		t.Fatalf("waiter after the holder gave up: %v", err)
	}
	if err := <-holderErr; !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("holder: %v, want context.DeadlineExceeded", err)
	}
	if tok.AccessToken == "" || waiter.Stats().Refreshes != 1 || waiter.Stats().Waits != 1 {
		t.Fatalf("waiter stats %+v, want one wait and a take-over refresh", waiter.Stats())
	}
	if n := rdb.Exists(context.Background(), AccountKey(e.prefix, tokenTestClientID, "token:error")).Val(); n != 0 {
		t.Fatal("the holder's cancellation was shared with the fleet as a refresh error")
	}
}

// Three workers (separate processes in production, each with its own Redis
// client) share one token: the token endpoint is asked once.
func ExampleSharedTokenSource() {
	rs, err := redistest.StartServer(redistest.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer rs.Stop()
	sim := sentineltest.NewServer(sentineltest.Config{})
	defer sim.Close()
	cc := sim.ClientConfig()

	var first string
	for worker := 0; worker < 3; worker++ {
		rdb := rs.Client()
		defer rdb.Close()
		ts, err := NewSharedTokenSource(TokenConfig{
			Redis:        rdb,
			ClientID:     cc.ClientID,
			ClientSecret: cc.ClientSecret,
			Upstream:     fetchUpstream{cc},
			Prefix:       "example",
		})
		if err != nil {
			fmt.Println(err)
			return
		}
		tok, err := ts.Token() // use with oauth2.NewClient(ctx, ts) or sentinel.NewClient(cc, ts)
		if err != nil {
			fmt.Println(err)
			return
		}
		if worker == 0 {
			first = tok.AccessToken
		}
		fmt.Printf("worker %d: same token %v\n", worker, tok.AccessToken == first)
	}
	fmt.Println("token requests:", sim.Stats().TokenRequests)
	// Output:
	// worker 0: same token true
	// worker 1: same token true
	// worker 2: same token true
	// token requests: 1
}

// fetchUpstream sends one token request per call, as sentinelquota.Upstream
// does (which this package's tests cannot import: it imports quota).
type fetchUpstream struct{ cfg sentinel.Config }

func (u fetchUpstream) Token() (*oauth2.Token, error) {
	return sentinel.FetchToken(context.Background(), u.cfg)
}
