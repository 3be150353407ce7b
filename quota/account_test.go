package quota_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"shfleet/quota"
)

// testAccount stands for what the service publishes about an account (a TEST
// INPUT, not a double of our code): a contract, and the remaining units computed
// by the test (fixed numbers or a bucket the test feeds). It counts the calls.
type testAccount struct {
	mu           sync.Mutex
	contract     []quota.Policy
	contractErr  error
	contractWait time.Duration // Contract sleeps this long, widening the race between fetchers
	levels       func() ([]quota.Level, error)

	contractCalls, remainingCalls atomic.Int64
}

func (a *testAccount) Contract(ctx context.Context) ([]quota.Policy, error) {
	a.contractCalls.Add(1)
	a.mu.Lock()
	ps, err, wait := append([]quota.Policy(nil), a.contract...), a.contractErr, a.contractWait
	a.mu.Unlock()
	if wait > 0 {
		time.Sleep(wait)
	}
	return ps, err
}

func (a *testAccount) Remaining(ctx context.Context) ([]quota.Level, error) {
	a.remainingCalls.Add(1)
	a.mu.Lock()
	f := a.levels
	a.mu.Unlock()
	if f == nil {
		return nil, fmt.Errorf("tokenCounts answered 404: %w", quota.ErrAccountAPIUnavailable)
	}
	return f()
}

// fixedLevels publishes constant remaining units.
func fixedLevels(ls ...quota.Level) func() ([]quota.Level, error) {
	return func() ([]quota.Level, error) { return ls, nil }
}

func mustPolicies(t *testing.T, s string) []quota.Policy {
	t.Helper()
	ps, err := quota.ParsePolicies(strings.Fields(s))
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

func policyStrings(ps []quota.Policy) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, " ")
}

// The base policies are Config.Policies when set, else the contract the fleet
// cached, else Config.Fallback; PolicySource says which.
func TestPolicySourcePrecedence(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	api := &testAccount{contract: append(mustPolicies(t, "pu:30000:PT744H pu:300:PT1M requests:500:PT1M"),
		quota.Policy{Kind: quota.Requests, Capacity: 300, Period: time.Minute})}

	// Nothing fetched yet, no API: the fallback (the trial's policies).
	bare, err := quota.NewLimiter(quota.Config{Redis: f.client(), Account: f.account, Prefix: f.prefix, Now: f.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	src, err := bare.PolicySource(ctx)
	if err != nil || src.Kind != quota.SourceFallback || policyStrings(src.Policies) != "requests:10:PT1M pu:10:PT1M" ||
		!strings.Contains(src.Detail, "no AccountAPI is configured") || !strings.Contains(src.Detail, "SH_POLICIES") {
		t.Fatalf("without API or contract: %+v, %v; want the fallback naming the reason and SH_POLICIES", src, err)
	}

	// One process with the API fetches for the fleet.
	fetcher := f.limiter("", func(c *quota.Config) { c.Policies = nil; c.AccountAPI = api })
	src, err = fetcher.SyncContract(ctx)
	// The contract is kept sorted (requests first, by period) with the stricter
	// of the two requests:PT1M policies.
	if err != nil || src.Kind != quota.SourceAccount || policyStrings(src.Policies) != "requests:300:PT1M pu:300:PT1M pu:30000:PT744H" ||
		!src.FetchedAt.Equal(t0) || !strings.Contains(src.Detail, "fetched 2026-11-23 12:00:00 UTC") {
		t.Fatalf("after SyncContract: %+v, %v", src, err)
	}
	// The process without API enforces it too: the fleet cached it.
	if src, err := bare.PolicySource(ctx); err != nil || src.Kind != quota.SourceAccount || len(src.Policies) != 3 {
		t.Fatalf("other process after the fetch: %+v, %v; want the account's contract", src, err)
	}
	// The per-minute policies are paced cells; the monthly one is the month's
	// budget (no cell of its own): 30000 PU, the contract's PT744H capacity.
	if _, err := bare.Reserve(ctx, costOf(1)); err != nil {
		t.Fatal(err)
	}
	if f.tat("requests:PT1M") == "" || f.tat("pu:PT1M") == "" || f.tat("pu:PT744H") != "" {
		t.Fatal("a reservation under the account's contract: want TATs for requests:PT1M and pu:PT1M and none for the month")
	}
	if u, err := bare.Usage(ctx); err != nil || u.BudgetPU != 30000 {
		t.Fatalf("month budget %+v %v, want the contract's 30000 PU", u, err)
	}

	// Configured policies override the contract, and the detail shows both.
	conf := f.limiter("requests:60:PT1M", nil)
	src, err = conf.PolicySource(ctx)
	if err != nil || src.Kind != quota.SourceConfigured || policyStrings(src.Policies) != "requests:60:PT1M" ||
		!strings.Contains(src.Detail, "the account's contract lists requests:300:PT1M, pu:300:PT1M, pu:30000:PT744H") {
		t.Fatalf("configured: %+v, %v", src, err)
	}
	ps, err := conf.Policies(ctx)
	if err != nil || policyStrings(ps) != "requests:60:PT1M" {
		t.Fatalf("configured Policies = %v, %v", ps, err)
	}
	if api.contractCalls.Load() != 1 {
		t.Fatalf("Contract called %d times, want 1", api.contractCalls.Load())
	}
}

// Five processes syncing at once fetch the contract once; the next fetch happens
// ContractRefresh later, again once.
func TestContractFetchedOnceForTheFleet(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	api := &testAccount{contract: mustPolicies(t, "requests:300:PT1M pu:300:PT1M"), contractWait: 50 * time.Millisecond}
	limiters := make([]*quota.Limiter, 5)
	for i := range limiters {
		limiters[i] = f.limiter("", func(c *quota.Config) { c.Policies = nil; c.AccountAPI = api })
	}
	syncAll := func() {
		var wg sync.WaitGroup
		for _, l := range limiters {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := l.SyncContract(ctx); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
	}
	syncAll()
	syncAll() // fresh: nobody fetches
	if n := api.contractCalls.Load(); n != 1 {
		t.Fatalf("5 limiters syncing twice called Contract %d times, want 1", n)
	}
	for i, l := range limiters {
		if src, err := l.PolicySource(ctx); err != nil || src.Kind != quota.SourceAccount {
			t.Fatalf("limiter %d: %+v, %v", i, src, err)
		}
	}
	// A raised plan shows after ContractRefresh.
	api.mu.Lock()
	api.contract = mustPolicies(t, "requests:600:PT1M pu:600:PT1M")
	api.mu.Unlock()
	f.clock.Advance(quota.DefaultContractRefresh - time.Second)
	syncAll()
	if n := api.contractCalls.Load(); n != 1 {
		t.Fatalf("before ContractRefresh: %d calls, want 1", n)
	}
	f.clock.Advance(time.Second)
	syncAll()
	if n := api.contractCalls.Load(); n != 2 {
		t.Fatalf("after ContractRefresh: %d calls, want 2", n)
	}
	ps, err := limiters[4].Policies(ctx)
	if err != nil || policyStrings(ps) != "requests:600:PT1M pu:600:PT1M" {
		t.Fatalf("policies after the re-fetch = %v, %v", ps, err)
	}
}

// Processes starting together enforce the contract from their first admission:
// the ones that lose the fetch lock wait for the winner's fetch instead of
// enforcing the fallback meanwhile (whose reservations, 10 per minute, would move
// the TATs the whole fleet shares by 6 s each).
func TestConcurrentStartWaitsForTheFirstContract(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	// The fetch takes 300 ms: every loser calls SyncContract while it runs.
	api := &testAccount{contract: mustPolicies(t, "requests:600:PT1M"), contractWait: 300 * time.Millisecond}
	limiters := make([]*quota.Limiter, 4)
	for i := range limiters {
		limiters[i] = f.limiter("", func(c *quota.Config) { c.Policies = nil; c.AccountAPI = api })
	}
	srcs := make([]quota.PolicySource, len(limiters))
	var wg sync.WaitGroup
	for i, l := range limiters {
		wg.Go(func() {
			src, err := l.SyncContract(ctx)
			if err != nil {
				t.Error(err)
			}
			srcs[i] = src
		})
	}
	wg.Wait()
	for i, src := range srcs {
		if src.Kind != quota.SourceAccount || policyStrings(src.Policies) != "requests:600:PT1M" {
			t.Errorf("limiter %d started with %s %v (%s); want the account's requests:600:PT1M", i, src.Kind, src.Policies, src.Detail)
		}
	}
	if n := api.contractCalls.Load(); n != 1 {
		t.Errorf("Contract called %d times, want 1", n)
	}
	// The shared mirror is untouched by any fallback: 4 x 100 = 400 requests fit
	// the initial burst of (1 - 1%) x 600 = 594 with no wait.
	for _, l := range limiters {
		for range 100 {
			r, err := l.Reserve(ctx, quota.Cost{Requests: 1})
			if err != nil {
				t.Fatal(err)
			}
			if d := r.Delay; d > 0 {
				t.Fatalf("reservation delayed %s within the initial burst", d)
			}
		}
	}
}

// An unavailable API (or any error at start) leaves the fallback in force, with
// one warning per process naming the reason and SH_POLICIES; the failure is
// remembered, so the fleet does not ask again at once.
func TestFallbackWarnsOncePerProcess(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, reason string
		err          error
	}{
		{"unavailable", "contract answered 404", fmt.Errorf("contract answered 404: %w", quota.ErrAccountAPIUnavailable)},
		{"other error", "dial tcp: connection refused", errors.New("dial tcp: connection refused")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			ctx := context.Background()
			api := &testAccount{contractErr: tc.err}
			var logs [2]syncBuffer
			ls := make([]*quota.Limiter, 2)
			for i := range ls {
				ls[i] = f.limiter("", func(c *quota.Config) {
					c.Policies, c.AccountAPI, c.LearnedRefresh = nil, api, time.Nanosecond
					c.Logger = zerolog.New(&logs[i])
				})
			}
			for range 3 {
				for _, l := range ls {
					src, err := l.SyncContract(ctx)
					if err != nil || src.Kind != quota.SourceFallback || !strings.Contains(src.Detail, tc.reason) {
						t.Fatalf("SyncContract = %+v, %v; want the fallback naming %q", src, err, tc.reason)
					}
					if _, err := l.Reserve(ctx, quota.Cost{Requests: 1}); err != nil {
						t.Fatal(err)
					}
				}
			}
			for i := range logs {
				out := logs[i].String()
				if n := strings.Count(out, `"level":"warn"`); n != 1 || !strings.Contains(out, "SH_POLICIES") || !strings.Contains(out, tc.reason) ||
					!strings.Contains(out, "requests:10:PT1M, pu:10:PT1M") {
					t.Fatalf("process %d logged %d warnings, want 1 naming the reason, SH_POLICIES and the fallback:\n%s", i, n, out)
				}
			}
			if n := api.contractCalls.Load(); n != 1 {
				t.Fatalf("Contract called %d times, want 1 (the failure is remembered)", n)
			}
			ps, err := ls[0].Policies(ctx)
			if err != nil || policyStrings(ps) != "requests:10:PT1M pu:10:PT1M" {
				t.Fatalf("enforced %v, %v; want the trial policies", ps, err)
			}
		})
	}
}

// A contract without a usable policy is a failed fetch, not an empty limiter.
func TestContractWithoutUsablePolicy(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	api := &testAccount{contract: []quota.Policy{{Kind: "tokens", Capacity: 5, Period: time.Minute}}}
	l := f.limiter("", func(c *quota.Config) { c.Policies, c.AccountAPI = nil, api })
	src, err := l.SyncContract(context.Background())
	if err != nil || src.Kind != quota.SourceFallback || !strings.Contains(src.Detail, "lists no usable policy") {
		t.Fatalf("SyncContract = %+v, %v", src, err)
	}
}
