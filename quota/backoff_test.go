package quota_test

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"shfleet/quota"
)

func TestObserve429HoldsEveryLimiter(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	mod := func(c *quota.Config) { c.MaxAhead = 5 * time.Minute; c.DefaultHold = 7 * time.Second }
	a := f.limiter("requests:600:PT1M pu:1000:PT1M", mod)
	b := f.limiter("requests:600:PT1M pu:1000:PT1M", mod)
	ctx := context.Background()

	// A legacy 429 (the X-ProcessingUnits-Retry-After header present, zero) says
	// the request policy ran out: it is marked empty at the end of the hold.
	legacyRequests := quota.RateLimit{RetryAfter: 3 * time.Second, HasRetryAfter: true, HasPURetryAfter: true}
	if err := a.Observe429(ctx, legacyRequests); err != nil {
		t.Fatal(err)
	}
	r1, err := b.Reserve(ctx, costOf(1))
	if err != nil {
		t.Fatal(err)
	}
	if r1.Delay < 3*time.Second || r1.Delay > 3*time.Second+quota.BackoffBase {
		t.Fatalf("other limiter's slot after a 429 with Retry-After 3s: in %s", r1.Delay)
	}
	// The violated request policy resumes paced, not in a burst.
	r2, err := b.Reserve(ctx, costOf(1))
	if err != nil {
		t.Fatal(err)
	}
	if d := r2.At.Sub(r1.At); d < inc600perMin-2*time.Microsecond {
		t.Fatalf("second slot after the hold %s after the first, want the emission interval %s", d, inc600perMin)
	}

	// A 429 during the hold (from a request sent before it) is the same episode.
	if err := b.Observe429(ctx, quota.RateLimit{RetryAfter: 3 * time.Second, HasRetryAfter: true}); err != nil {
		t.Fatal(err)
	}
	key := quota.AccountKey(f.prefix, f.account, "backoff")
	if n, _ := f.client().HGet(ctx, key, "streak").Int(); n != 1 {
		t.Fatalf("429 streak = %d after two 429s in one hold, want 1", n)
	}
	// A repeated 429 after the hold backs off further (exponential, jittered in
	// [50%, 100%]).
	f.clock.Advance(4 * time.Second)
	if err := b.Observe429(ctx, quota.RateLimit{RetryAfter: 3 * time.Second, HasRetryAfter: true}); err != nil {
		t.Fatal(err)
	}
	held := func(l *quota.Limiter) time.Duration {
		t.Helper()
		r, err := l.Reserve(ctx, quota.Cost{})
		if err != nil {
			t.Fatal(err)
		}
		return r.Delay
	}
	if d := held(a); d < 3*time.Second+quota.BackoffBase-time.Microsecond {
		t.Fatalf("after a second 429 the fleet holds %s, want at least %s", d, 3*time.Second+quota.BackoffBase)
	}
	if n, _ := f.client().HGet(ctx, key, "streak").Int(); n != 2 {
		t.Fatalf("429 streak = %d, want 2", n)
	}
	// ObserveSuccess ends the streak.
	if n, _ := f.client().HExists(ctx, key, "streak").Result(); !n {
		t.Fatal("no 429 streak recorded")
	}
	if err := a.ObserveSuccess(ctx); err != nil {
		t.Fatal(err)
	}
	if n, _ := f.client().HExists(ctx, key, "streak").Result(); n {
		t.Fatal("ObserveSuccess left the 429 streak")
	}

	// No header at all: Config.DefaultHold.
	f.clock.Advance(time.Minute)
	if err := a.Observe429(ctx, quota.RateLimit{}); err != nil {
		t.Fatal(err)
	}
	if d := held(b); d < 7*time.Second || d > 7*time.Second+quota.BackoffBase {
		t.Fatalf("after a 429 without headers the fleet holds %s, want DefaultHold 7s", d)
	}
	// An absurd Retry-After is capped.
	if err := a.Observe429(ctx, quota.RateLimit{RetryAfter: time.Hour, HasRetryAfter: true}); err != nil {
		t.Fatal(err)
	}
	if d := held(b); d > quota.MaxHold {
		t.Fatalf("hold %s exceeds MaxHold", d)
	}
	// One legacy 429 told the request kind; the others (Retry-After only, or no
	// header) did not.
	if s := a.Stats(); s.Throttled["requests"] != 1 || s.Throttled["unknown"] != 2 {
		t.Fatalf("Stats.Throttled = %v", s.Throttled)
	}
}

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestLearnStricterPolicy(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var logs syncBuffer
	a := f.limiter("requests:100:PT1M pu:10:PT1M", func(c *quota.Config) {
		c.Logger = zerolog.New(&logs)
		c.MaxAhead = 5 * time.Minute
	})
	b := f.limiter("requests:100:PT1M pu:10:PT1M", func(c *quota.Config) {
		c.LearnedRefresh = time.Nanosecond
		c.MaxAhead = 5 * time.Minute
	})
	ctx := context.Background()
	if _, err := b.Reserve(ctx, costOf(1)); err != nil { // b reads the policies before anything is learned
		t.Fatal(err)
	}
	e := quota.RateLimit{PURetryAfter: 500 * time.Millisecond, HasPURetryAfter: true, HasRetryAfter: true,
		Policy: &quota.Policy{Kind: quota.PU, Capacity: 5, Period: time.Minute}}
	for i := 0; i < 3; i++ {
		if err := a.Observe429(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	// A laxer policy teaches nothing.
	if err := a.Observe429(ctx, quota.RateLimit{Policy: &quota.Policy{Kind: quota.PU, Capacity: 50, Period: time.Minute}}); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(logs.String(), "stricter rate limit"); n != 1 || !strings.Contains(logs.String(), `"policy":"pu:PT1M"`) || !strings.Contains(logs.String(), `"level":"warn"`) {
		t.Fatalf("want exactly one warning about the learned policy, got %d:\n%s", n, logs.String())
	}
	ps, err := b.Policies(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range ps {
		got = append(got, p.String())
	}
	if strings.Join(got, " ") != "requests:100:PT1M pu:5:PT1M" {
		t.Fatalf("other limiter's policies = %v, want the learned pu:5:PT1M in place of pu:10:PT1M", got)
	}
	// b paces PU at the learned 5 PU/min.
	r1, err := b.Reserve(ctx, costOf(1))
	if err != nil {
		t.Fatal(err)
	}
	r2, err := b.Reserve(ctx, costOf(1))
	if err != nil {
		t.Fatal(err)
	}
	if d := r2.At.Sub(r1.At); d < inc5PUperMin-2*time.Microsecond || d > inc5PUperMin+2*time.Microsecond {
		t.Fatalf("PU slots %s apart, want %s (5 PU/min)", d, inc5PUperMin)
	}
	// A policy the configuration lacks joins the set.
	if err := a.Observe429(ctx, quota.RateLimit{Policy: &quota.Policy{Kind: quota.Requests, Capacity: 1000, Period: time.Hour}}); err != nil {
		t.Fatal(err)
	}
	ps, err = b.Policies(ctx)
	if err != nil || len(ps) != 3 || ps[2].String() != "requests:1000:PT1H" {
		t.Fatalf("policies after learning requests:1000:PT1H = %v, %v", ps, err)
	}
	if s := a.Stats(); s.Throttled["pu:5:PT1M"] != 3 {
		t.Fatalf("Stats.Throttled = %v", s.Throttled)
	}
}
