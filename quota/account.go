package quota

import (
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// AccountAPI reads what the service publishes about the account's limits
// (Sentinel Hub: GET /aux/ratelimit/contract and
// /aux/ratelimit/statistics/tokenCounts). Package sentinel implements it; tests
// use their own. Its errors must not carry credentials: the limiter logs them and
// shares their text with the fleet through Redis.
type AccountAPI interface {
	// Contract returns the account's policies (kinds Requests and PU, any period,
	// e.g. Month for the monthly PU).
	Contract(ctx context.Context) ([]Policy, error)
	// Remaining returns the units left now in each published policy.
	Remaining(ctx context.Context) ([]Level, error)
}

// Level is the units left now in one policy bucket.
type Level struct {
	// Kind is Requests or PU.
	Kind PolicyKind
	// Period is the policy's sampling period.
	Period time.Duration
	// Remaining is the units (requests, or PU) the server's bucket holds now.
	Remaining float64
}

// ErrAccountAPIUnavailable is returned (wrapped) by an AccountAPI whose endpoints
// do not exist or are refused (HTTP 404/403, e.g. a deployment that does not
// publish them): the limiter falls back to Config.Policies or Config.Fallback and
// stops asking for a while (Config.ContractRefresh).
var ErrAccountAPIUnavailable = errors.New("quota: the account's rate-limit API is unavailable")

// TrialPolicies are the default Config.Fallback: a trial account's 10 requests and
// 10 PU per minute. Slow, but no account has less.
var TrialPolicies = []Policy{
	{Kind: Requests, Capacity: 10, Period: time.Minute},
	{Kind: PU, Capacity: 10, Period: time.Minute},
}

// Internals of the account sync.
const (
	// contractMemory is how long a fetched contract stays cached without a
	// successful re-fetch (a fleet whose API broke keeps enforcing it).
	contractMemory = 24 * time.Hour
	// contractLockTTL bounds one contract fetch (the lock's lifetime).
	contractLockTTL = 30 * time.Second
	// contractRetry is how long a failed fetch (other than ErrAccountAPIUnavailable)
	// is remembered before the fleet tries again.
	contractRetry = 30 * time.Second
	// urgentResyncGap is the fleet-wide minimum gap between two resyncs asked for
	// by Observe429.
	urgentResyncGap = 500 * time.Millisecond
	// contractCheckGap is the least time between two looks at a cached contract
	// that is missing or old, per process.
	contractCheckGap = 10 * time.Second
	// reasonMax truncates error texts shared through Redis.
	reasonMax = 300
	// contractPollGap is how often a process waiting for another one's first
	// contract fetch looks whether it ended.
	contractPollGap = 50 * time.Millisecond
)

// Key suffixes of the account sync (see AccountKey).
const (
	contractSuffix      = "policy:contract"       // hash: policies, fetched (unix ms)
	contractErrorSuffix = "policy:contract:error" // why the last fetch failed (TTL)
	contractLockSuffix  = "policy:contract:lock"  // one fetcher for the fleet
	levelsSuffix        = "account:levels"        // last Remaining snapshot: "kind:period" -> units, at (unix ms)
	resyncLockSuffix    = "resync:lock"           // one resync per ResyncInterval for the fleet
	resyncUrgentSuffix  = "resync:urgent"         // one resync per 500 ms asked for by a 429
	resyncOffSuffix     = "resync:off"            // Remaining unavailable: no resync until it expires
	shiftSuffix         = "resync:shift"          // how far resyncs moved the booked queue, us (cumulative)
)

// PolicySourceKind says where the base policies came from.
type PolicySourceKind string

const (
	// SourceConfigured: Config.Policies (SH_POLICIES) override everything.
	SourceConfigured PolicySourceKind = "configured"
	// SourceAccount: the account's contract, fetched by the fleet (AccountAPI).
	SourceAccount PolicySourceKind = "account"
	// SourceFallback: neither is available; Config.Fallback (TrialPolicies).
	SourceFallback PolicySourceKind = "fallback"
)

// PolicySource tells where the policies a Limiter enforces came from, for the
// CLI, the status and the job page.
type PolicySource struct {
	// Kind is configured, account or fallback.
	Kind PolicySourceKind
	// Detail says it for humans, e.g. "the account's contract, fetched
	// 2026-11-23 12:00:00 UTC" or why the contract is unavailable.
	Detail string
	// FetchedAt is when the fleet fetched the account's contract; zero when no
	// contract is cached.
	FetchedAt time.Time
	// Policies are the base policies of this source.
	Policies []Policy
	// Learned are the stricter policies learned from 429s that the limiter
	// enforces on top (replacing a base policy of the same kind and period).
	Learned []Policy
}

// contractState is what Redis holds about the account's contract.
type contractState struct {
	policies  []Policy
	fetchedAt time.Time // zero: none cached
	failure   string    // why the last fetch failed, while remembered
}

func parseContract(h map[string]string, failure string) contractState {
	cs := contractState{failure: failure}
	ms, err := strconv.ParseInt(h["fetched"], 10, 64)
	if err != nil || h["policies"] == "" {
		return cs
	}
	ps, err := ParsePolicies(strings.Split(h["policies"], ","))
	if err != nil || len(ps) == 0 {
		return cs
	}
	cs.policies, cs.fetchedAt = ps, time.UnixMilli(ms).UTC()
	return cs
}

// sourceOf picks the base policies: configured, else the cached contract, else
// the fallback.
func (l *Limiter) sourceOf(cs contractState) PolicySource {
	switch {
	case len(l.cfg.Policies) > 0:
		d := "Config.Policies (SH_POLICIES) override the account's limits"
		if len(cs.policies) > 0 {
			d += "; the account's contract lists " + policyList(cs.policies)
		}
		return PolicySource{Kind: SourceConfigured, Detail: d, FetchedAt: cs.fetchedAt, Policies: l.cfg.Policies}
	case len(cs.policies) > 0:
		d := "the account's contract, fetched " + cs.fetchedAt.Format("2006-01-02 15:04:05 UTC")
		if cs.failure != "" {
			d += " (the last refresh failed: " + cs.failure + ")"
		}
		return PolicySource{Kind: SourceAccount, Detail: d, FetchedAt: cs.fetchedAt, Policies: cs.policies}
	}
	return PolicySource{Kind: SourceFallback, Detail: l.fallbackReason(cs) + "; enforcing the fallback " + policyList(l.cfg.Fallback) +
		" — set " + PoliciesEnv + " to the account's limits", Policies: l.cfg.Fallback}
}

// fallbackReason says why no contract is used: known (no API, a failed fetch) or
// not yet ("" inside "waiting for ...").
func (l *Limiter) fallbackReason(cs contractState) string {
	switch {
	case cs.failure != "":
		return "the account's contract is unavailable: " + cs.failure
	case l.cfg.AccountAPI == nil:
		return "no AccountAPI is configured and no process of the fleet cached the account's contract"
	}
	return "waiting for the first fetch of the account's contract"
}

// logSource logs the fallback warning once per process (when its reason is
// known) and an Info line when the account's contract starts to apply or changes.
func (l *Limiter) logSource(prevSet, nextSet *policySet) {
	prev, next := prevSet.source, nextSet.source
	switch next.Kind {
	case SourceFallback:
		if nextSet.contract.failure == "" && l.cfg.AccountAPI != nil {
			return // reason not known yet: the first fetch is pending
		}
		if l.warnedFallback.CompareAndSwap(false, true) {
			l.log.Warn().Str("policies", policyList(next.Policies)).Str("reason", next.Detail).
				Msg("account's rate-limit contract unavailable; the fleet paces to the fallback policies — set " + PoliciesEnv + " to the account's limits")
		}
	case SourceAccount:
		if prev.Kind != SourceAccount || policyList(prev.Policies) != policyList(next.Policies) {
			l.log.Info().Str("policies", policyList(next.Policies)).Time("fetched", next.FetchedAt).
				Msg("enforcing the account's published rate-limit contract")
		}
	}
}

func policyList(ps []Policy) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ", ")
}

// PolicySource re-reads the fleet's cached contract and learned policies and tells
// where the enforced policies come from.
func (l *Limiter) PolicySource(ctx context.Context) (PolicySource, error) {
	l.refreshMu.Lock()
	defer l.refreshMu.Unlock()
	if err := l.refresh(ctx); err != nil {
		return PolicySource{}, err
	}
	return l.set.Load().source, nil
}

// SyncContract fetches the account's contract for the whole fleet when the cached
// one is older than Config.ContractRefresh (one process fetches, under a Redis
// lock; the others keep what is cached), then re-reads the policies and tells
// where they come from. Without an AccountAPI it only re-reads. A failed fetch is
// not an error: it is remembered fleet-wide and shows in PolicySource (and the
// fallback warning); only Redis failures are returned. RunAccountSync calls it;
// a worker may call it once before serving so its first admissions already pace
// to the contract.
func (l *Limiter) SyncContract(ctx context.Context) (PolicySource, error) {
	if l.cfg.AccountAPI != nil {
		if err := l.fetchContractIfDue(ctx); err != nil {
			return PolicySource{}, err
		}
	}
	return l.PolicySource(ctx)
}

// contractDue reads whether the cached contract needs a fetch.
func (l *Limiter) contractDue(ctx context.Context) (bool, error) {
	pipe := l.rdb.Pipeline()
	fetched := pipe.HGet(ctx, l.key(contractSuffix), "fetched")
	failed := pipe.Exists(ctx, l.key(contractErrorSuffix))
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return false, l.redisErr(ctx, "read contract state", err)
	}
	if failed.Val() == 1 {
		return false, nil
	}
	ms, err := strconv.ParseInt(fetched.Val(), 10, 64)
	return err != nil || l.now().Sub(time.UnixMilli(ms)) >= l.cfg.ContractRefresh, nil
}

func (l *Limiter) fetchContractIfDue(ctx context.Context) error {
	if due, err := l.contractDue(ctx); err != nil || !due {
		return err
	}
	owner := randomOwner()
	won, err := l.rdb.SetNX(ctx, l.key(contractLockSuffix), owner, contractLockTTL).Result()
	if err != nil {
		return l.redisErr(ctx, "lock contract fetch", err)
	}
	if !won {
		return l.awaitFirstContract(ctx)
	}
	defer func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = tokenUnlockScript.Run(uctx, l.rdb, []string{l.key(contractLockSuffix)}, owner).Err()
	}()
	// Re-check under the lock: another process may have fetched between our read
	// and our win.
	if due, err := l.contractDue(ctx); err != nil || !due {
		return err
	}
	fctx, cancel := context.WithTimeout(ctx, contractLockTTL-5*time.Second)
	ps, err := l.cfg.AccountAPI.Contract(fctx)
	cancel()
	if err == nil {
		ps, err = cleanContract(ps)
	}
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		ttl := min(contractRetry, l.cfg.ContractRefresh)
		if errors.Is(err, ErrAccountAPIUnavailable) {
			ttl = l.cfg.ContractRefresh
		}
		reason := err.Error()
		if len(reason) > reasonMax {
			reason = reason[:reasonMax] + "…"
		}
		if err := l.rdb.Set(ctx, l.key(contractErrorSuffix), reason, ttl).Err(); err != nil {
			return l.redisErr(ctx, "record contract failure", err)
		}
		if l.set.Load().contract.fetchedAt.IsZero() {
			return nil // the fallback warning (logSource) says it
		}
		if l.warnedContract.CompareAndSwap(false, true) {
			l.log.Warn().Err(err).Dur("retry_in", ttl).
				Msg("could not refresh the account's rate-limit contract; the fleet keeps the cached one")
		}
		return nil
	}
	l.warnedContract.Store(false)
	key := l.key(contractSuffix)
	_, err = l.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, key)
		p.HSet(ctx, key, "policies", strings.ReplaceAll(policyList(ps), " ", ""), "fetched", l.now().UnixMilli())
		if c := monthCapOf(ps); c > 0 {
			p.HSet(ctx, key, "month_cap", strconv.FormatFloat(c, 'f', -1, 64))
		}
		p.PExpire(ctx, key, contractMemory)
		p.Del(ctx, l.key(contractErrorSuffix))
		return nil
	})
	if err != nil {
		return l.redisErr(ctx, "store contract", err)
	}
	return nil
}

// awaitFirstContract waits, while no contract is cached and another process holds
// the fetch lock, until that fetch ends (a contract cached, a failure recorded or
// the lock gone), at most contractLockTTL. Processes starting together would
// otherwise enforce the fallback meanwhile, on the mirror keys the whole fleet
// shares: each fallback reservation (10 per minute) moves a policy's TAT by 6 s,
// which spends the fleet's initial burst and stalls it for up to MaxAhead. With a
// contract cached (a refresh) it returns at once: the cached one applies.
func (l *Limiter) awaitFirstContract(ctx context.Context) error {
	deadline := time.Now().Add(contractLockTTL)
	for {
		pipe := l.rdb.Pipeline()
		fetched := pipe.HGet(ctx, l.key(contractSuffix), "fetched")
		failed := pipe.Exists(ctx, l.key(contractErrorSuffix))
		locked := pipe.Exists(ctx, l.key(contractLockSuffix))
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return l.redisErr(ctx, "wait for the contract fetch", err)
		}
		if fetched.Val() != "" || failed.Val() == 1 || locked.Val() == 0 || !time.Now().Before(deadline) {
			return nil
		}
		t := time.NewTimer(contractPollGap)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// monthCapOf is the capacity of the strictest monthly PU policy (a period of
// MonthlyPeriod or more), 0 when there is none.
func monthCapOf(ps []Policy) float64 {
	c := 0.0
	for _, p := range ps {
		if p.Kind == PU && p.Period >= MonthlyPeriod && (c == 0 || p.Capacity < c) {
			c = p.Capacity
		}
	}
	return c
}

// cleanContract keeps the contract's valid policies, the stricter one of two with
// the same kind and period, sorted by kind then period.
func cleanContract(ps []Policy) ([]Policy, error) {
	best := map[string]Policy{}
	var bad []string
	for _, p := range ps {
		if err := p.validate(); err != nil {
			bad = append(bad, err.Error())
			continue
		}
		if q, ok := best[p.id()]; !ok || p.Capacity < q.Capacity {
			best[p.id()] = p
		}
	}
	if len(best) == 0 {
		msg := "the account's contract lists no usable policy"
		if len(bad) > 0 {
			msg += " (" + strings.Join(bad, "; ") + ")"
		}
		return nil, errors.New(msg)
	}
	out := make([]Policy, 0, len(best))
	for _, p := range best {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Kind != out[j].Kind {
			return out[i].Kind == Requests
		}
		return out[i].Period < out[j].Period
	})
	return out, nil
}

func randomOwner() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

var (
	//go:embed resync_lock.lua
	resyncLockLua    string
	resyncLockScript = redis.NewScript(resyncLockLua)
)

// RunAccountSync keeps the fleet in step with what the account publishes, until
// ctx ends (it then returns ctx.Err()); a worker runs it in a goroutine:
//
//	go lim.RunAccountSync(ctx)
//
// Without Config.AccountAPI it returns nil at once. It fetches the contract
// (SyncContract) at start and whenever the cached one is older than
// ContractRefresh, and resyncs (Resync) every ResyncInterval — the whole fleet
// together at most once per ResyncInterval, through a Redis lock with that TTL —
// and at once, at most once per 500 ms fleet-wide, when Observe429 asks. Failures
// are logged, never fatal; an unavailable Remaining endpoint
// (ErrAccountAPIUnavailable) pauses the resyncs of the whole fleet for
// ContractRefresh.
func (l *Limiter) RunAccountSync(ctx context.Context) error {
	if l.cfg.AccountAPI == nil {
		return nil
	}
	if _, err := l.SyncContract(ctx); err != nil && ctx.Err() == nil {
		l.log.Warn().Err(err).Msg("could not sync the account's rate-limit contract")
	}
	// Each process looks four times per interval, so the fleet's resyncs follow
	// each other closely however the processes' ticks are phased.
	tick := func() time.Duration {
		return time.Duration(float64(l.cfg.ResyncInterval) / 4 * (0.75 + 0.5*mrand.Float64()))
	}
	timer := time.NewTimer(tick())
	defer timer.Stop()
	// A process whose set is not refreshed by admissions (idle) would see an old
	// fetch time on every tick: look again at most every contractCheckGap.
	nextCheck := time.Now().Add(contractCheckGap)
	contractDue := func() bool {
		cs := l.set.Load().contract
		if !cs.fetchedAt.IsZero() && l.now().Sub(cs.fetchedAt) < l.cfg.ContractRefresh {
			return false
		}
		return time.Now().After(nextCheck)
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-l.trigger:
			l.syncOnce(ctx, true)
		case <-timer.C:
			if contractDue() {
				nextCheck = time.Now().Add(contractCheckGap)
				if _, err := l.SyncContract(ctx); err != nil && ctx.Err() == nil {
					l.log.Warn().Err(err).Msg("could not sync the account's rate-limit contract")
				}
			}
			l.syncOnce(ctx, false)
			timer.Reset(tick())
		}
	}
}

// syncOnce resyncs when this process wins the fleet's lock.
func (l *Limiter) syncOnce(ctx context.Context, urgent bool) {
	mode := "periodic"
	if urgent {
		mode = "urgent"
	}
	won, err := resyncLockScript.Run(ctx, l.rdb,
		[]string{l.key(resyncLockSuffix), l.key(resyncUrgentSuffix), l.key(resyncOffSuffix)},
		mode, l.cfg.ResyncInterval.Milliseconds(), urgentResyncGap.Milliseconds()).Int()
	if err != nil {
		if ctx.Err() == nil {
			l.log.Debug().Err(l.redisErr(ctx, "lock resync", err)).Msg("resync skipped")
		}
		return
	}
	if won != 1 {
		return
	}
	rctx, cancel := context.WithTimeout(ctx, max(l.cfg.ResyncInterval, 5*time.Second))
	defer cancel()
	_, err = l.Resync(rctx)
	switch {
	case err == nil:
		l.warnedResync.Store(false)
	case ctx.Err() != nil:
	case errors.Is(err, ErrAccountAPIUnavailable):
		_ = l.rdb.Set(ctx, l.key(resyncOffSuffix), "1", l.cfg.ContractRefresh).Err()
		if l.warnedResync.CompareAndSwap(false, true) {
			l.log.Warn().Err(err).Dur("retry_in", l.cfg.ContractRefresh).
				Msg("the account's remaining units are unavailable; the fleet paces by its own mirror only")
		}
	default:
		if l.warnedResync.CompareAndSwap(false, true) {
			l.log.Warn().Err(err).Msg("resync with the account's remaining units failed; retrying every interval")
		}
	}
}

// askResync asks RunAccountSync for a resync now (non-blocking; one pending).
func (l *Limiter) askResync() {
	select {
	case l.trigger <- struct{}{}:
	default:
	}
}

// fmtUnits formats units without float noise for logs and reasons.
func fmtUnits(v float64) string {
	return strconv.FormatFloat(math.Round(v*1000)/1000, 'f', -1, 64)
}

// describeLevel names a level for humans: "pu:PT744H".
func describeLevel(kind PolicyKind, period time.Duration) string {
	return fmt.Sprintf("%s:%s", kind, PeriodName(period))
}
