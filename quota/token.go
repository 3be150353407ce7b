package quota

import (
	"cmp"
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"golang.org/x/oauth2"

	"shfleet/internal/text"
	"shfleet/keys"
	"shfleet/sentinel"
)

// Defaults for TokenConfig fields left zero.
const (
	// DefaultTokenRefreshMargin is how long before expiry a token is refreshed
	// (sentinelhub-py uses 120 s).
	DefaultTokenRefreshMargin = 2 * time.Minute
	// DefaultTokenLockTTL bounds how long one process may hold the refresh lock; a
	// crashed holder is replaced after this.
	DefaultTokenLockTTL = 30 * time.Second
	// DefaultTokenWaitTimeout bounds how long a process waits for another one's
	// refresh.
	DefaultTokenWaitTimeout = 45 * time.Second
	// DefaultTokenRequestsPerMinute is the fleet-wide limit on token requests.
	DefaultTokenRequestsPerMinute = 10
	// DefaultTokenPollInterval is the slow fallback poll while waiting, in case a
	// pub/sub notification is lost.
	DefaultTokenPollInterval = 500 * time.Millisecond
	// DefaultTokenErrorTTL is how long a failed refresh is remembered fleet-wide, so
	// that the whole fleet does not retry at once (longer when the endpoint's
	// Retry-After or the token budget says so).
	DefaultTokenErrorTTL = 5 * time.Second
)

// tokenFallbackLifetime is assumed when a token has neither a JWT exp claim nor
// an Expiry.
const tokenFallbackLifetime = 10 * time.Minute

// tokenBodyMax truncates error bodies stored in Redis.
const tokenBodyMax = 512

var (
	//go:embed token_invalidate.lua
	tokenInvalidateLua    string
	tokenInvalidateScript = redis.NewScript(tokenInvalidateLua)

	//go:embed token_unlock.lua
	tokenUnlockLua    string
	tokenUnlockScript = redis.NewScript(tokenUnlockLua)
)

var _ oauth2.TokenSource = (*SharedTokenSource)(nil)

// TokenConfig configures a SharedTokenSource. Redis, ClientID, ClientSecret and
// Upstream are required; every other zero field takes its default.
type TokenConfig struct {
	// Redis holds the shared token, the refresh lock and the notifications. Required.
	Redis redis.UniversalClient
	// ClientID is the OAuth client id; it names the account's keys (hashed). Required.
	ClientID string
	// ClientSecret is only used to derive the key that encrypts the token at rest;
	// it is never stored or logged. Required.
	ClientSecret string
	// Upstream fetches a new token from the token endpoint: use
	// sentinelquota.Upstream(cfg). It must send a request on every call: a caching source
	// (sentinel.NewTokenSource, oauth2.ReuseTokenSource) would hand back a token the
	// fleet just invalidated. When it also has a TokenContext(ctx) method, that is
	// used, bounded by LockTTL. Required.
	Upstream oauth2.TokenSource
	// Prefix is the key prefix. Default: keys.DefaultPrefix.
	Prefix string
	// RefreshMargin: a token is refreshed this long before it expires (at most half
	// its lifetime). Default: DefaultTokenRefreshMargin.
	RefreshMargin time.Duration
	// LockTTL is the refresh lock's lifetime. Default: DefaultTokenLockTTL.
	LockTTL time.Duration
	// WaitTimeout bounds the wait for another process's refresh. Default:
	// DefaultTokenWaitTimeout.
	WaitTimeout time.Duration
	// PollInterval is the fallback poll while waiting. Default: DefaultTokenPollInterval.
	PollInterval time.Duration
	// ErrorTTL is how long a failed refresh is shared with the fleet. Default:
	// DefaultTokenErrorTTL.
	ErrorTTL time.Duration
	// TokenRequestsPerMinute is the fleet-wide limit on token requests (0: default
	// DefaultTokenRequestsPerMinute; negative: no limit).
	TokenRequestsPerMinute int
	// Logger receives refresh and invalidation events (never tokens or secrets,
	// only 8-digit fingerprints). Default: the zero Logger, which discards.
	Logger zerolog.Logger
	// Now is the clock used for expiry decisions. Default: time.Now.
	Now func() time.Time
}

// withDefaults returns c with every zero field at its default (the caller's
// TokenConfig is not changed).
func (c TokenConfig) withDefaults() TokenConfig {
	c.Prefix = cmp.Or(c.Prefix, keys.DefaultPrefix)
	c.RefreshMargin = cmp.Or(c.RefreshMargin, DefaultTokenRefreshMargin)
	c.LockTTL = cmp.Or(c.LockTTL, DefaultTokenLockTTL)
	c.WaitTimeout = cmp.Or(c.WaitTimeout, DefaultTokenWaitTimeout)
	c.PollInterval = cmp.Or(c.PollInterval, DefaultTokenPollInterval)
	c.ErrorTTL = cmp.Or(c.ErrorTTL, DefaultTokenErrorTTL)
	c.TokenRequestsPerMinute = cmp.Or(c.TokenRequestsPerMinute, DefaultTokenRequestsPerMinute)
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// validate names the first field NewSharedTokenSource cannot work with.
func (c TokenConfig) validate() error {
	switch {
	case c.Redis == nil:
		return errors.New("quota: TokenConfig.Redis is nil; pass a go-redis client")
	case c.ClientID == "":
		return errors.New("quota: TokenConfig.ClientID is empty; set the OAuth client id")
	case c.ClientSecret == "":
		return errors.New("quota: TokenConfig.ClientSecret is empty; it is needed to encrypt the shared token")
	case c.Upstream == nil:
		return errors.New("quota: TokenConfig.Upstream is nil; pass sentinelquota.Upstream(sentinelConfig)")
	case c.RefreshMargin < 0:
		return fmt.Errorf("quota: TokenConfig.RefreshMargin is negative (%s)", c.RefreshMargin)
	case c.LockTTL < 0:
		return fmt.Errorf("quota: TokenConfig.LockTTL is negative (%s)", c.LockTTL)
	case c.WaitTimeout < 0:
		return fmt.Errorf("quota: TokenConfig.WaitTimeout is negative (%s)", c.WaitTimeout)
	case c.PollInterval < 0:
		return fmt.Errorf("quota: TokenConfig.PollInterval is negative (%s)", c.PollInterval)
	case c.ErrorTTL < 0:
		return fmt.Errorf("quota: TokenConfig.ErrorTTL is negative (%s)", c.ErrorTTL)
	}
	return nil
}

// TokenBudgetError means the fleet-wide token request budget
// (TokenConfig.TokenRequestsPerMinute) is spent, so no token request was sent.
type TokenBudgetError struct {
	// Limit is the budget in token requests per minute.
	Limit int
	// RetryAfter is when the next token request will be allowed.
	RetryAfter time.Duration
}

func (e *TokenBudgetError) Error() string {
	return fmt.Sprintf("fleet token request budget spent (%d token requests per minute across all workers); next token request allowed in %s — something is invalidating or refreshing tokens too often",
		e.Limit, e.RetryAfter.Round(time.Millisecond))
}

// TokenStats are counters of one SharedTokenSource since it was created.
type TokenStats struct {
	// CacheHits are calls answered from the process-local cache.
	CacheHits uint64
	// RedisReads are reads of the shared token from Redis.
	RedisReads uint64
	// Refreshes are token requests this process sent to the token endpoint.
	Refreshes uint64
	// Waits are times this process waited for another process's refresh.
	Waits uint64
	// Errors are calls that returned an error.
	Errors uint64
	// Invalidations are tokens this process deleted after a 401.
	Invalidations uint64
}

// SharedTokenSource is an oauth2.TokenSource whose token is shared by every
// process of a fleet through Redis: one process refreshes (under a lock, ahead of
// expiry), the others wait for a pub/sub notification or keep using the still
// valid token. The token is AES-GCM encrypted at rest with a key derived from the
// client secret. Safe for concurrent use.
type SharedTokenSource struct {
	rdb      redis.UniversalClient
	upstream oauth2.TokenSource
	limiter  *redis_rate.Limiter
	log      zerolog.Logger
	now      func() time.Time
	key      []byte
	secret   string

	margin, lockTTL, waitTimeout, poll, errTTL time.Duration
	perMinute                                  int

	tokenKey, lockKey, errKey, rateKey, channel string

	// sem serialises the Redis slow path inside this process.
	sem chan struct{}

	mu     sync.Mutex
	cached *oauth2.Token
	cacheR tokenRecord
	// rejected is the fingerprint of the last token this process invalidated.
	rejected string

	hits, reads, refreshes, waits, errs, invalidations atomic.Uint64
}

// NewSharedTokenSource checks cfg, fills defaults and returns a source. It does
// not contact Redis or the token endpoint.
func NewSharedTokenSource(cfg TokenConfig) (*SharedTokenSource, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	key, err := tokenDeriveKey(cfg.ClientID, cfg.ClientSecret)
	if err != nil {
		return nil, fmt.Errorf("quota: derive token encryption key: %w", err)
	}
	return &SharedTokenSource{
		rdb:         cfg.Redis,
		upstream:    cfg.Upstream,
		limiter:     redis_rate.NewLimiter(cfg.Redis),
		log:         cfg.Logger,
		now:         cfg.Now,
		key:         key,
		secret:      cfg.ClientSecret,
		margin:      cfg.RefreshMargin,
		lockTTL:     cfg.LockTTL,
		waitTimeout: cfg.WaitTimeout,
		poll:        cfg.PollInterval,
		errTTL:      cfg.ErrorTTL,
		perMinute:   cfg.TokenRequestsPerMinute,
		tokenKey:    AccountKey(cfg.Prefix, cfg.ClientID, "token"),
		lockKey:     AccountKey(cfg.Prefix, cfg.ClientID, "token:lock"),
		errKey:      AccountKey(cfg.Prefix, cfg.ClientID, "token:error"),
		rateKey:     AccountKey(cfg.Prefix, cfg.ClientID, "token:ratelimit"),
		channel:     AccountKey(cfg.Prefix, cfg.ClientID, "token:events"),
		sem:         make(chan struct{}, 1),
	}, nil
}

// Token returns a valid shared token; it implements oauth2.TokenSource.
func (s *SharedTokenSource) Token() (*oauth2.Token, error) {
	return s.TokenContext(context.Background())
}

// TokenContext returns a valid shared token, fetching one for the whole fleet
// when needed. It returns ctx.Err() once ctx is done.
func (s *SharedTokenSource) TokenContext(ctx context.Context) (*oauth2.Token, error) {
	tok, err := s.token(ctx)
	if err != nil {
		s.errs.Add(1)
		return nil, err
	}
	return tok, nil
}

// Stats returns the source's counters.
func (s *SharedTokenSource) Stats() TokenStats {
	return TokenStats{
		CacheHits:     s.hits.Load(),
		RedisReads:    s.reads.Load(),
		Refreshes:     s.refreshes.Load(),
		Waits:         s.waits.Load(),
		Errors:        s.errs.Load(),
		Invalidations: s.invalidations.Load(),
	}
}

// Invalidate reports that the API rejected accessToken (HTTP 401). The shared
// token is deleted only if it is still that token (compared by SHA-256
// fingerprint in a Lua script), so many workers reporting the same 401 cause one
// refresh, and a late report about an old token does not delete the new one. The
// process-local cache is dropped.
func (s *SharedTokenSource) Invalidate(ctx context.Context, accessToken string) error {
	fp := tokenFingerprint(accessToken)
	s.mu.Lock()
	s.cached = nil
	s.rejected = fp
	s.mu.Unlock()
	n, err := tokenInvalidateScript.Run(ctx, s.rdb, []string{s.tokenKey}, fp).Int()
	if err != nil {
		return s.redisErr("invalidate token", s.tokenKey, err)
	}
	if n == 1 {
		s.invalidations.Add(1)
		s.log.Info().Str("fp", tokenShortFP(fp)).Msg("shared token invalidated after rejection")
	} else {
		s.log.Debug().Str("fp", tokenShortFP(fp)).Msg("rejected token already replaced; nothing to invalidate")
	}
	return nil
}

// tokenState is what Redis holds for the account right now.
type tokenState struct {
	tok *oauth2.Token
	rec tokenRecord
	err error // a recent failed refresh shared by its process, nil if none
}

// fresh: valid and not yet due for refresh.
func (s *SharedTokenSource) fresh(rec tokenRecord, now time.Time) bool {
	exp := time.UnixMilli(rec.Exp)
	margin := s.margin
	if life := exp.Sub(time.UnixMilli(rec.Iat)); life > 0 && margin > life/2 {
		margin = life / 2
	}
	return now.Before(exp.Add(-margin))
}

// tokenUsable: not yet expired (may be due for refresh).
func tokenUsable(rec tokenRecord, now time.Time) bool {
	return now.Before(time.UnixMilli(rec.Exp))
}

func (s *SharedTokenSource) token(ctx context.Context) (*oauth2.Token, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	now := s.now()
	s.mu.Lock()
	local, localRec := s.cached, s.cacheR
	s.mu.Unlock()
	if local != nil && s.fresh(localRec, now) {
		s.hits.Add(1)
		return tokenCopy(local), nil
	}
	if local != nil && tokenUsable(localRec, now) {
		// Due for refresh but still valid: never block on a refresh in this process.
		select {
		case s.sem <- struct{}{}:
		default:
			s.hits.Add(1)
			return tokenCopy(local), nil
		}
	} else {
		select {
		case s.sem <- struct{}{}:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	defer func() { <-s.sem }()
	// Another goroutine of this process may have refreshed while we queued.
	s.mu.Lock()
	local, localRec = s.cached, s.cacheR
	s.mu.Unlock()
	if local != nil && s.fresh(localRec, s.now()) {
		s.hits.Add(1)
		return tokenCopy(local), nil
	}
	return s.shared(ctx)
}

// shared is the Redis path: read, and refresh or wait when needed.
func (s *SharedTokenSource) shared(ctx context.Context) (*oauth2.Token, error) {
	st, err := s.read(ctx)
	if err != nil {
		return nil, err
	}
	now := s.now()
	if st.tok != nil && s.fresh(st.rec, now) {
		return s.keep(st), nil
	}
	if st.tok != nil && tokenUsable(st.rec, now) {
		// Refresh ahead: one process refreshes, everyone else keeps the valid token.
		owner, won, err := s.lock(ctx)
		if err != nil || !won {
			if err != nil {
				s.log.Warn().Err(err).Msg("shared token: refresh-ahead lock failed; using the still-valid token")
			}
			return s.keep(st), nil
		}
		return s.refreshLocked(ctx, owner, &st)
	}
	if st.err != nil {
		return nil, fmt.Errorf("shared token: a recent refresh failed, not retrying yet: %w", st.err)
	}
	owner, won, err := s.lock(ctx)
	if err != nil {
		return nil, err
	}
	if won {
		return s.refreshLocked(ctx, owner, nil)
	}
	return s.wait(ctx)
}

// keep stores st in the local cache and returns a copy of its token.
func (s *SharedTokenSource) keep(st tokenState) *oauth2.Token {
	s.mu.Lock()
	s.cached, s.cacheR = st.tok, st.rec
	s.mu.Unlock()
	return tokenCopy(st.tok)
}

// read fetches the token record and the shared error in one round trip.
func (s *SharedTokenSource) read(ctx context.Context) (tokenState, error) {
	s.reads.Add(1)
	vals, err := s.rdb.MGet(ctx, s.tokenKey, s.errKey).Result()
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return tokenState{}, ctxErr
		}
		return tokenState{}, s.redisErr("read token", s.tokenKey, err)
	}
	var st tokenState
	if raw, ok := vals[0].(string); ok {
		tok, rec, err := tokenOpen(s.key, []byte(raw))
		if err != nil {
			s.log.Warn().Str("key", s.tokenKey).Err(err).Msg("shared token unreadable; it will be replaced")
		} else {
			st.tok, st.rec = tok, rec
		}
	}
	if raw, ok := vals[1].(string); ok {
		st.err = tokenDecodeErr(raw)
	}
	return st, nil
}

// lock tries once to take the refresh lock.
func (s *SharedTokenSource) lock(ctx context.Context) (owner string, won bool, err error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", false, err
	}
	owner = hex.EncodeToString(b[:])
	won, err = s.rdb.SetNX(ctx, s.lockKey, owner, s.lockTTL).Result()
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return "", false, ctxErr
		}
		return "", false, s.redisErr("take refresh lock", s.lockKey, err)
	}
	return owner, won, nil
}

func (s *SharedTokenSource) unlock(owner string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := tokenUnlockScript.Run(ctx, s.rdb, []string{s.lockKey}, owner).Err(); err != nil {
		s.log.Warn().Err(err).Str("key", s.lockKey).Msg("shared token: release refresh lock failed; it expires by itself")
	}
}

func (s *SharedTokenSource) publish(msg string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.rdb.Publish(ctx, s.channel, msg).Err(); err != nil {
		s.log.Warn().Err(err).Msg("shared token: publish notification failed; waiters will poll")
	}
}

// refreshLocked runs while holding the lock. prev is the still-valid token in the
// refresh-ahead case, nil when there is none.
func (s *SharedTokenSource) refreshLocked(ctx context.Context, owner string, prev *tokenState) (*oauth2.Token, error) {
	defer s.unlock(owner)
	// Re-check after winning: another process may have refreshed between our read
	// and our lock (skipping this gives two refreshes).
	st, err := s.read(ctx)
	if err != nil {
		if prev != nil {
			return s.keep(*prev), nil
		}
		return nil, err
	}
	now := s.now()
	if st.tok != nil && s.fresh(st.rec, now) {
		return s.keep(st), nil
	}
	if st.tok != nil && tokenUsable(st.rec, now) {
		prev = &st
	} else {
		prev = nil
	}
	if st.err != nil {
		if prev != nil {
			return s.keep(*prev), nil
		}
		return nil, fmt.Errorf("shared token: a recent refresh failed, not retrying yet: %w", st.err)
	}
	fail := func(err error, rec tokenErrRecord, ttl time.Duration) (*oauth2.Token, error) {
		s.shareErr(rec, ttl)
		if prev != nil {
			s.log.Warn().Err(err).Str("fp", tokenShortFP(prev.rec.FP)).Time("expiry", time.UnixMilli(prev.rec.Exp)).
				Msg("shared token refresh failed; still using the current token until it expires")
			return s.keep(*prev), nil
		}
		s.log.Warn().Err(err).Msg("shared token refresh failed")
		return nil, err
	}
	if s.perMinute > 0 {
		res, err := s.limiter.Allow(ctx, s.rateKey, redis_rate.PerMinute(s.perMinute))
		if err != nil {
			if prev != nil {
				return s.keep(*prev), nil
			}
			if ctxErr := ctx.Err(); ctxErr != nil {
				return nil, ctxErr
			}
			return nil, s.redisErr("check token request budget", "rate:"+s.rateKey, err)
		}
		if res.Allowed == 0 {
			be := &TokenBudgetError{Limit: s.perMinute, RetryAfter: res.RetryAfter}
			return fail(fmt.Errorf("shared token: %w", be),
				tokenErrRecord{Kind: "budget", Limit: s.perMinute, RetryAfterMS: res.RetryAfter.Milliseconds()}, res.RetryAfter)
		}
	}
	s.refreshes.Add(1)
	tok, err := s.fetch(ctx)
	if err != nil && ctx.Err() != nil {
		// Our caller gave up: that is not the endpoint's answer, so do not share it.
		// Release now and wake the waiters so one of them takes over.
		s.unlock(owner)
		s.publish("released")
		return nil, ctx.Err()
	}
	if err != nil {
		te := s.tokenErr(err)
		rec := tokenErrRecord{Kind: "upstream", Status: te.Status, RetryAfterMS: te.RetryAfter.Milliseconds(), Body: te.Body}
		if te.Status == 0 && te.Err != nil {
			rec.Message = s.scrub(te.Err.Error())
		}
		return fail(fmt.Errorf("shared token: fetch from token endpoint: %w", te), rec, te.RetryAfter)
	}
	if tok == nil || tok.AccessToken == "" {
		te := &sentinel.TokenError{Status: 200, Body: "answer had no access_token"}
		return fail(fmt.Errorf("shared token: fetch from token endpoint: %w", te),
			tokenErrRecord{Kind: "upstream", Status: 200, Body: te.Body}, 0)
	}
	fp := tokenFingerprint(tok.AccessToken)
	s.mu.Lock()
	again := fp == s.rejected
	s.mu.Unlock()
	if again {
		return nil, fmt.Errorf("shared token: Upstream returned the token that was just invalidated (fp %s): it caches tokens; use sentinelquota.Upstream, not sentinel.NewTokenSource or oauth2.ReuseTokenSource",
			tokenShortFP(fp))
	}
	now = s.now()
	exp, ok := sentinel.JWTExpiry(tok.AccessToken)
	if !ok {
		exp = tok.Expiry
	}
	if exp.IsZero() {
		exp = now.Add(tokenFallbackLifetime)
		s.log.Warn().Dur("assumed_lifetime", tokenFallbackLifetime).Msg("token has no exp claim and no expiry")
	}
	stored := &oauth2.Token{AccessToken: tok.AccessToken, TokenType: tok.TokenType, RefreshToken: tok.RefreshToken, Expiry: exp}
	raw, err := tokenSeal(s.key, stored, exp, now)
	if err != nil {
		return nil, fmt.Errorf("shared token: encrypt: %w", err)
	}
	if ttl := exp.Sub(now); ttl > 0 {
		_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, s.tokenKey, raw, ttl)
			p.Del(ctx, s.errKey)
			return nil
		})
		if err != nil {
			// The token is good; only sharing it failed.
			s.log.Warn().Err(err).Str("fp", tokenShortFP(fp)).Msg("shared token: store in Redis failed; using it locally")
		} else {
			s.publish("ready " + tokenShortFP(fp))
		}
	} else {
		s.log.Warn().Str("fp", tokenShortFP(fp)).Time("expiry", exp).Msg("fetched token is already expired")
	}
	s.log.Info().Str("fp", tokenShortFP(fp)).Time("expiry", exp).Msg("shared token refreshed")
	rec := tokenRecord{V: tokenRecordVersion, FP: fp, Exp: exp.UnixMilli(), Iat: now.UnixMilli()}
	return s.keep(tokenState{tok: stored, rec: rec}), nil
}

// tokenContextSource is an Upstream that accepts a context.
type tokenContextSource interface {
	TokenContext(ctx context.Context) (*oauth2.Token, error)
}

func (s *SharedTokenSource) fetch(ctx context.Context) (*oauth2.Token, error) {
	if up, ok := s.upstream.(tokenContextSource); ok {
		ctx, cancel := context.WithTimeout(ctx, s.lockTTL)
		defer cancel()
		return up.TokenContext(ctx)
	}
	return s.upstream.Token()
}

// shareErr stores a failed refresh under the error key and notifies waiters.
func (s *SharedTokenSource) shareErr(rec tokenErrRecord, ttl time.Duration) {
	ttl = max(ttl, s.errTTL)
	raw, _ := json.Marshal(rec)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.rdb.Set(ctx, s.errKey, raw, ttl).Err(); err != nil {
		s.log.Warn().Err(err).Msg("shared token: store refresh error failed")
	}
	s.publish("error")
}

// wait waits for another process's refresh: pub/sub notifications plus a slow
// poll, bounded by WaitTimeout and ctx. When the lock becomes free without a
// result (holder crashed), this process takes over.
func (s *SharedTokenSource) wait(parent context.Context) (*oauth2.Token, error) {
	s.waits.Add(1)
	ctx, cancel := context.WithTimeout(parent, s.waitTimeout)
	defer cancel()
	sub := s.rdb.Subscribe(ctx, s.channel)
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil {
		if perr := parent.Err(); perr != nil {
			return nil, perr
		}
		return nil, s.redisErr("subscribe to token notifications", s.channel, err)
	}
	msgs := sub.Channel()
	ticker := time.NewTicker(s.poll)
	defer ticker.Stop()
	for {
		// Check after subscribing so a notification sent meanwhile is not lost.
		st, err := s.read(ctx)
		if err != nil && ctx.Err() == nil {
			return nil, err
		}
		if err == nil {
			if st.tok != nil && tokenUsable(st.rec, s.now()) {
				return s.keep(st), nil
			}
			if st.err != nil {
				return nil, fmt.Errorf("shared token: refresh by another worker failed: %w", st.err)
			}
			owner, won, err := s.lock(ctx)
			if err != nil && ctx.Err() == nil {
				return nil, err
			}
			if won {
				s.log.Info().Msg("shared token: refresh lock free without a token (holder gone?); taking over")
				return s.refreshLocked(parent, owner, nil)
			}
		}
		select {
		case <-ctx.Done():
			if perr := parent.Err(); perr != nil {
				return nil, perr
			}
			return nil, fmt.Errorf("shared token: waited %s for another worker to refresh the token (lock %s) without a result; check that worker and Redis, or raise TokenConfig.WaitTimeout",
				s.waitTimeout, s.lockKey)
		case <-msgs:
		case <-ticker.C:
		}
	}
}

// tokenErrRecord is a failed refresh as shared through Redis: status and body,
// never the secret.
type tokenErrRecord struct {
	Kind         string `json:"kind"` // "upstream" or "budget"
	Status       int    `json:"status,omitempty"`
	RetryAfterMS int64  `json:"retry_after_ms,omitempty"`
	Body         string `json:"body,omitempty"`
	Message      string `json:"message,omitempty"`
	Limit        int    `json:"limit,omitempty"`
}

func tokenDecodeErr(raw string) error {
	var rec tokenErrRecord
	if err := json.Unmarshal([]byte(raw), &rec); err != nil {
		return &sentinel.TokenError{Body: "unreadable shared error record"}
	}
	ra := time.Duration(rec.RetryAfterMS) * time.Millisecond
	if rec.Kind == "budget" {
		return &TokenBudgetError{Limit: rec.Limit, RetryAfter: ra}
	}
	te := &sentinel.TokenError{Status: rec.Status, RetryAfter: ra, Body: rec.Body}
	if rec.Message != "" {
		te.Err = errors.New(rec.Message)
	}
	return te
}

// tokenErr turns an Upstream error into a *sentinel.TokenError with the real
// status, Retry-After and body, scrubbed of the secret.
func (s *SharedTokenSource) tokenErr(err error) *sentinel.TokenError {
	var te *sentinel.TokenError
	if errors.As(err, &te) {
		c := *te
		c.Body = s.scrub(c.Body)
		return &c
	}
	return sentinel.TokenErrorOf(err, s.secret)
}

// scrub truncates s and removes the client secret should the endpoint echo it.
func (s *SharedTokenSource) scrub(msg string) string {
	return text.Truncate(sentinel.ScrubSecret(msg, s.secret), tokenBodyMax)
}

func (s *SharedTokenSource) redisErr(op, key string, err error) error {
	return fmt.Errorf("shared token: %s (key %s) in Redis: %w — check that Redis is reachable (REDIS_URL)", op, key, err)
}

func tokenCopy(t *oauth2.Token) *oauth2.Token {
	c := *t
	return &c
}
