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
