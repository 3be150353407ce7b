package quota_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"shfleet/internal/redistest"
	"shfleet/quota"
)

// One Limiter per worker process, each with its own Redis client; all share the
// account's budget through Redis.
func ExampleLimiter() {
	srv, err := redistest.StartServer(redistest.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Stop()
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	newWorker := func() *quota.Limiter {
		l, err := quota.NewLimiter(quota.Config{
			Redis:    srv.Client(),
			Account:  "my-oauth-client-id",
			Policies: []quota.Policy{{Kind: quota.Requests, Capacity: 2, Period: time.Second}, {Kind: quota.PU, Capacity: 10, Period: time.Minute}},
			Now:      func() time.Time { return now }, // tests only; production uses Redis TIME
		})
		if err != nil {
			panic(err)
		}
		return l
	}
	w1, w2 := newWorker(), newWorker()
	ctx := context.Background()
	for i, w := range []*quota.Limiter{w1, w2, w1, w2} {
		r, err := w.Reserve(ctx, quota.Cost{Requests: 1, MilliPU: 1000}) // 1 request + 1 PU
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("request %d may go in %s\n", i, r.Delay.Round(time.Millisecond))
		// ... send the request; on success settle the PU the server reported:
		_ = w.Settle(ctx, r, 800) // X-ProcessingUnits-Spent: 0.8
	}
	// A 429 anywhere holds the whole fleet.
	_ = w1.Observe429(ctx, quota.RateLimit{RetryAfter: 2 * time.Second, HasRetryAfter: true})
	_, err = w2.Reserve(ctx, quota.Cost{Requests: 1, MilliPU: 1000})
	fmt.Println(errors.Is(err, quota.ErrTooFar) || err == nil)
	u, _ := w2.Usage(ctx)
	fmt.Println(u)
	// Output:
	// request 0 may go in 0s
	// request 1 may go in 10ms
	// request 2 may go in 515ms
	// request 3 may go in 1.02s
	// true
	// 2026-11: 3.2 PU spent, 1 reserved
}

// publishedAccount is what an account publishes (package sentinel implements
// quota.AccountAPI against the real endpoints).
type publishedAccount struct{ remainingPU float64 }

func (a publishedAccount) Contract(ctx context.Context) ([]quota.Policy, error) {
	return quota.ParsePolicies([]string{"requests:300:PT1M", "pu:300:PT1M", "pu:30000:PT744H"})
}

func (a publishedAccount) Remaining(ctx context.Context) ([]quota.Level, error) {
	return []quota.Level{
		{Kind: quota.Requests, Period: time.Minute, Remaining: 300},
		{Kind: quota.PU, Period: time.Minute, Remaining: a.remainingPU},
		{Kind: quota.PU, Period: quota.Month, Remaining: 12000},
	}, nil
}

// Without SH_POLICIES the fleet enforces the account's published contract, and
// the resync keeps the mirror at or below what the server says remains. The
// monthly policy (PT744H) is the month's budget in the ledger, not a paced cell,
// so the resync does not list it; its remaining units are the evidence
// MonthSpent reads.
func ExampleLimiter_Resync() {
	srv, err := redistest.StartServer(redistest.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Stop()
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	l, err := quota.NewLimiter(quota.Config{
		Redis:      srv.Client(),
		Account:    "my-oauth-client-id",
		AccountAPI: publishedAccount{remainingPU: 100}, // another client used 200 PU
		Now:        func() time.Time { return now },
	})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	src, _ := l.SyncContract(ctx) // a worker runs `go l.RunAccountSync(ctx)` instead
	fmt.Println(src.Kind, src.Policies)
	r, _ := l.Resync(ctx)
	for _, p := range r.Policies {
		fmt.Printf("%s: server %g, mirror %g, tightened by %g\n", p.Policy, p.Server, p.Mirror, max(p.Excess, 0))
	}
	ev, _ := l.MonthSpent(ctx, 1000)
	fmt.Println("month spent:", ev.Spent)
	// Output:
	// account [requests:300:PT1M pu:300:PT1M pu:30000:PT744H]
	// requests:300:PT1M: server 300, mirror 297, tightened by 0
	// pu:300:PT1M: server 100, mirror 297, tightened by 200
	// month spent: false
}
