package quota_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"shfleet/quota"
)

func monthLevel(rem float64) quota.Level {
	return quota.Level{Kind: quota.PU, Period: quota.Month, Remaining: rem}
}

// The month is spent by evidence: the account's monthly PU count below the need,
// our ledger at the budget, or an earlier recorded 403 — else a 403 is a
// permission error.
func TestMonthSpent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("monthly count below the need", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		api := &testAccount{}
		api.setLevels(puMinute(80), monthLevel(0.5))
		l := f.limiter("pu:100:PT1M pu:30000:PT744H", func(c *quota.Config) { c.AccountAPI = api })
		ev, err := l.MonthSpent(ctx, 1200)
		if err != nil || !ev.Spent || !strings.Contains(ev.Reason, "monthly PU policy (pu:PT744H) had 0.5 PU left") ||
			!strings.Contains(ev.Reason, "needs 1.2") {
			t.Fatalf("MonthSpent(1.2 PU) with 0.5 left = %+v, %v", ev, err)
		}
		// No snapshot existed: it was read once.
		if n := api.remainingCalls.Load(); n != 1 {
			t.Fatalf("Remaining called %d times, want 1", n)
		}
	})

	t.Run("in-flight reservations take the rest", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		api := &testAccount{}
		api.setLevels(puMinute(80), monthLevel(1)) // 1 PU left this month
		l := f.limiter("pu:100:PT1M", func(c *quota.Config) { c.AccountAPI = api })
		if _, err := l.Resync(ctx); err != nil {
			t.Fatal(err)
		}
		// 0.9 PU reserved by requests not settled yet: 1 - 0.9 = 0.1 < 0.2 needed.
		if _, err := l.Reserve(ctx, costOf(0.9)); err != nil {
			t.Fatal(err)
		}
		ev, err := l.MonthSpent(ctx, 200)
		if err != nil || !ev.Spent || !strings.Contains(ev.Reason, "spent or reserved 0.9 since") {
			t.Fatalf("MonthSpent with 1 PU left and 0.9 in flight = %+v, %v", ev, err)
		}
	})
	t.Run("monthly count enough", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		api := &testAccount{}
		api.setLevels(puMinute(80), monthLevel(12000))
		l := f.limiter("pu:100:PT1M", func(c *quota.Config) { c.AccountAPI = api })
		if _, err := l.Resync(ctx); err != nil { // stores the snapshot
			t.Fatal(err)
		}
		f.clock.Advance(quota.LevelsMaxAge)
		ev, err := l.MonthSpent(ctx, 1200)
		if err != nil || ev.Spent || !strings.Contains(ev.Reason, "had 12000 PU left 1s ago") || !strings.Contains(ev.Reason, "not spent by evidence") {
			t.Fatalf("MonthSpent with 12000 left = %+v, %v", ev, err)
		}
		if n := api.remainingCalls.Load(); n != 1 {
			t.Fatalf("a 1 s old snapshot was re-read: Remaining called %d times, want 1", n)
		}
		// Older than LevelsMaxAge: re-read, and the fresh count (spent meanwhile by
		// another client) decides.
		f.clock.Advance(time.Second)
		api.setLevels(puMinute(80), monthLevel(0))
		ev, err = l.MonthSpent(ctx, 1200)
		if err != nil || !ev.Spent || !strings.Contains(ev.Reason, "had 0 PU left 0s ago") {
			t.Fatalf("MonthSpent after the month ran out = %+v, %v", ev, err)
		}
		if n := api.remainingCalls.Load(); n != 2 {
			t.Fatalf("Remaining called %d times, want 2", n)
		}
	})

	t.Run("own ledger at the budget", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		l := f.limiter("pu:100:PT1M", func(c *quota.Config) { c.MonthlyPU = 3 })
		r, err := l.Reserve(ctx, costOf(2.5))
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Settle(ctx, r, 2500); err != nil {
			t.Fatal(err)
		}
		// 2.5 spent + 1 needed > 3.
		ev, err := l.MonthSpent(ctx, 1000)
		if err != nil || !ev.Spent || !strings.Contains(ev.Reason, "our ledger has 2.5 PU spent of the 3 PU monthly budget in 2026-11") {
			t.Fatalf("MonthSpent(1) with 2.5 of 3 spent = %+v, %v", ev, err)
		}
		// 2.5 + 0.4 <= 3, and no count is published: not spent.
		ev, err = l.MonthSpent(ctx, 400)
		if err != nil || ev.Spent || !strings.Contains(ev.Reason, "no count of the account's monthly PU is known; our ledger has 2.5 of 3 PU spent") {
			t.Fatalf("MonthSpent(0.4) = %+v, %v", ev, err)
		}
	})

	t.Run("nothing says spent", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		api := &testAccount{} // Remaining answers ErrAccountAPIUnavailable
		l := f.limiter("pu:100:PT1M", func(c *quota.Config) { c.AccountAPI = api })
		ev, err := l.MonthSpent(ctx, 1000)
		if err != nil || ev.Spent || !strings.Contains(ev.Reason, "no monthly budget is set") ||
			!strings.Contains(ev.Reason, "re-reading the account's counts failed: tokenCounts answered 404") {
			t.Fatalf("MonthSpent without any evidence = %+v, %v", ev, err)
		}
		// After Observe403 (a 403 the caller judged spent), the month is spent.
		if err := l.Observe403(ctx); err != nil {
			t.Fatal(err)
		}
		ev, err = l.MonthSpent(ctx, 1000)
		if err != nil || !ev.Spent || !strings.Contains(ev.Reason, "already recorded 2026-11's PU as spent") {
			t.Fatalf("MonthSpent after Observe403 = %+v, %v", ev, err)
		}
	})
}
