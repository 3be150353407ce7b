package quota_test

import (
	"context"
	"errors"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"shfleet/internal/redistest"
	"shfleet/quota"
)

// clock is an injectable clock shared by the limiters of a test.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(t time.Time) *clock { return &clock{t: t} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

var t0 = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

// fixture makes limiters sharing one account on one redis-server, each with its
// own client (like separate worker processes).
type fixture struct {
	t       *testing.T
	srv     *redistest.Server
	prefix  string
	account string
	clock   *clock
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	return &fixture{t: t, srv: redistest.Start(t), prefix: redistest.Prefix(t), account: "client-" + t.Name(), clock: newClock(t0)}
}

func (f *fixture) client() *redis.Client {
	c := f.srv.Client()
	f.t.Cleanup(func() { c.Close() })
	return c
}

func (f *fixture) limiter(policies string, mod func(*quota.Config)) *quota.Limiter {
	f.t.Helper()
	ps, err := quota.ParsePolicies(strings.Fields(policies))
	if err != nil {
		f.t.Fatal(err)
	}
	cfg := quota.Config{Redis: f.client(), Account: f.account, Prefix: f.prefix, Policies: ps, Now: f.clock.Now}
	if mod != nil {
		mod(&cfg)
	}
	l, err := quota.NewLimiter(cfg)
	if err != nil {
		f.t.Fatal(err)
	}
	return l
}

// tat reads a policy's theoretical arrival time straight from Redis.
func (f *fixture) tat(id string) string {
	f.t.Helper()
	v, err := f.client().Get(context.Background(), quota.AccountKey(f.prefix, f.account, "policy:"+id)).Result()
	if err != nil && err != redis.Nil {
		f.t.Fatal(err)
	}
	return v
}

// Emission intervals and burst tolerances of the policies below, worked out by
// hand at the default 1 % headroom: a policy of C units per period P admits
// 0.99 x C units per P, so one milli-unit costs P / (990 x C) and a charge of u
// milli-units adds ceil(u x P / (990 x C)) microseconds to the TAT (each charge
// rounds up on its own); the burst tolerance is 0.99 x C units (at least one
// unit) worth of that, i.e. P itself whenever 0.99 x C >= 1.
const (
	// requests:10:PT1S, one request: 1000 x 1e6 / 9900 = 101010.1 -> 101011 us.
	inc10perSec = 101011 * time.Microsecond
	// pu:4:PT1S, 700 milli-PU: 700 x 1e6 / 3960 = 176767.7 -> 176768 us.
	inc4PUperSec700 = 176768 * time.Microsecond
	// requests:60:PT1M, one request: 1000 x 60e6 / 59400 = 1010101.01 -> 1010102 us.
	inc60perMin = 1010102 * time.Microsecond
	// requests:1:PT1M, one request: 1000 x 60e6 / 990 = 60606060.6 -> 60606061 us,
	// and its tolerance is one whole request (0.99 < 1): the same 60606061 us.
	inc1perMin = 60606061 * time.Microsecond
	tau1perMin = 60606061 * time.Microsecond
	// requests:1000:PT1M, one request: 1000 x 60e6 / 990000 = 60606.06 -> 60607 us;
	// pu:1000:PT1M, 500 milli-PU: 30303.03 -> 30304 us.
	inc1000perMin    = 60607 * time.Microsecond
	inc1000PUperMin5 = 30304 * time.Microsecond
	// requests:600:PT1M, one request: 1000 x 60e6 / 594000 = 101010.1 -> 101011 us.
	inc600perMin = 101011 * time.Microsecond
	// pu:5:PT1M, 1000 milli-PU: 1000 x 60e6 / 4950 = 12121212.1 -> 12121213 us.
	inc5PUperMin = 12121213 * time.Microsecond
	// Tolerances of policies with 0.99 x C >= 1: the period.
	tauSec = time.Second
	tauMin = time.Minute
)

// costOf is one request estimated at pu processing units.
func costOf(pu float64) quota.Cost {
	return quota.Cost{Requests: 1, MilliPU: int64(math.Ceil(pu*1000 - 1e-9))}
}

func near(a, b time.Time) bool {
	d := a.Sub(b)
	return d >= -2*time.Microsecond && d <= 2*time.Microsecond
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	c := srv.Client()
	defer c.Close()
	ok := []quota.Policy{{Kind: quota.PU, Capacity: 10, Period: time.Minute}}
	cases := []struct {
		field string
		cfg   quota.Config
	}{
		{"Config.Redis", quota.Config{Account: "a", Policies: ok}},
		{"Config.Account", quota.Config{Redis: c, Policies: ok}},
		{"Config.Policies[0]", quota.Config{Redis: c, Account: "a", Policies: []quota.Policy{{Kind: quota.PU, Capacity: 10, Period: 1500 * time.Millisecond}}}},
		{"Config.Fallback[0]", quota.Config{Redis: c, Account: "a", Fallback: []quota.Policy{{Kind: quota.PU, Capacity: 10, Period: 33 * 24 * time.Hour}}}},
		{"Config.ResyncInterval", quota.Config{Redis: c, Account: "a", ResyncInterval: 10 * time.Millisecond}},
		{"Config.ContractRefresh", quota.Config{Redis: c, Account: "a", ContractRefresh: -time.Second}},
		{"Config.Policies[1]", quota.Config{Redis: c, Account: "a", Policies: append(ok, ok[0])}},
		{"Config.MonthlyPU", quota.Config{Redis: c, Account: "a", Policies: ok, MonthlyPU: -1}},
		{"Config.Headroom", quota.Config{Redis: c, Account: "a", Policies: ok, Headroom: 0.7}},
		{"Config.MaxAhead", quota.Config{Redis: c, Account: "a", Policies: ok, MaxAhead: -time.Second}},
		{"Config.Prefix", quota.Config{Redis: c, Account: "a", Policies: ok, Prefix: "x{y}"}},
	}
	for _, tc := range cases {
		if _, err := quota.NewLimiter(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("NewLimiter with bad %s: error = %v, want it to name the field", tc.field, err)
		}
	}
	// Policies are optional now: the zero config enforces the fallback.
	if _, err := quota.NewLimiter(quota.Config{Redis: c, Account: "a"}); err != nil {
		t.Fatalf("minimal config: %v", err)
	}
}

// Fifty goroutines with two policies: the granted slots are exactly those of one
// serial GCRA per policy (no policy over- or under-charged), and the policies' final
// states account for every admission once.
func TestReserveAtomicAcrossPoliciesConcurrent(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	const n = 50
	cost := quota.Cost{Requests: 1, MilliPU: 700}
	// requests bind first (burst 10), then PU (burst 4000/700 = 5 at full rate).
	limiters := make([]*quota.Limiter, 5)
	for i := range limiters {
		limiters[i] = f.limiter("requests:10:PT1S pu:4:PT1S", func(c *quota.Config) { c.MaxAhead = time.Minute })
	}
	slots := make([]time.Time, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			r, err := limiters[i%len(limiters)].Reserve(context.Background(), cost)
			if err != nil {
				errs <- err
				return
			}
			slots[i] = r.At
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	sort.Slice(slots, func(i, j int) bool { return slots[i].Before(slots[j]) })
	incR, tauR := inc10perSec, tauSec
	incP, tauP := inc4PUperSec700, tauSec
	for k, got := range slots {
		want := t0
		for _, at := range []time.Time{t0.Add(time.Duration(k+1)*incR - tauR), t0.Add(time.Duration(k+1)*incP - tauP)} {
			if at.After(want) {
				want = at
			}
		}
		if !near(got, want) {
			t.Fatalf("slot %d = +%s, want +%s (serial GCRA on both policies)", k, got.Sub(t0), want.Sub(t0))
		}
		if k > 0 && got.Before(slots[k-1]) {
			t.Fatalf("slot %d before slot %d", k, k-1)
		}
	}
	// By hand: requests allow slots k+1 <= 9 at t0 (9 x 101011 us < 1 s), PU
	// only k+1 <= 5 (5 x 176768 us < 1 s); slot 5 is PU's 6 x 176768 - 1e6 =
	// 60608 us, slot 9 PU's 10 x 176768 - 1e6 = 767680 us (requests: 10110 us).
	for k, want := range map[int]time.Duration{0: 0, 4: 0, 5: 60608 * time.Microsecond, 9: 767680 * time.Microsecond} {
		if !near(slots[k], t0.Add(want)) {
			t.Errorf("slot %d = +%s, want +%s", k, slots[k].Sub(t0), want)
		}
	}
	// Each policy's TAT is exactly n charges past t0 (the slots never waited on
	// the other policy beyond its own TAT here, as the PU policy binds throughout
	// after its burst).
	wantP := strconv.FormatInt(t0.Add(time.Duration(n)*incP).UnixMicro(), 10)
	if got := f.tat("pu:PT1S"); got != wantP {
		t.Fatalf("pu TAT = %s, want %s", got, wantP)
	}
	var admitted int64
	for _, l := range limiters {
		admitted += l.Stats().Admitted
	}
	if admitted != n {
		t.Fatalf("Stats().Admitted sums to %d, want %d", admitted, n)
	}

	// A refusal by the PU policy (too far ahead) charges neither policy.
	l := f.limiter("requests:10:PT1S pu:4:PT1S", func(c *quota.Config) { c.MaxAhead = time.Second })
	beforeR, beforeP := f.tat("requests:PT1S"), f.tat("pu:PT1S")
	_, err := l.Reserve(context.Background(), cost)
	var tf *quota.TooFarError
	if !errors.As(err, &tf) || !errors.Is(err, quota.ErrTooFar) || tf.ByDeadline {
		t.Fatalf("Reserve past MaxAhead: error = %v, want *TooFarError", err)
	}
	if !near(tf.At, t0.Add(time.Duration(n+1)*incP-tauP)) {
		t.Fatalf("TooFarError.At = +%s, want the next PU slot +%s", tf.At.Sub(t0), (time.Duration(n+1)*incP - tauP))
	}
	if afterR, afterP := f.tat("requests:PT1S"), f.tat("pu:PT1S"); afterR != beforeR || afterP != beforeP {
		t.Fatalf("refused reservation changed state: requests %s -> %s, pu %s -> %s", beforeR, afterR, beforeP, afterP)
	}
}

// Granted times are FIFO and, after the initial burst of (1-headroom) x capacity,
// evenly spaced at the emission interval.
func TestReserveFIFOEvenPacing(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	l := f.limiter("requests:60:PT1M", func(c *quota.Config) { c.MaxAhead = time.Hour })
	T := inc60perMin
	var prev time.Time
	for k := 0; k < 100; k++ {
		r, err := l.Reserve(context.Background(), quota.Cost{Requests: 1})
		if err != nil {
			t.Fatal(err)
		}
		want := t0.Add(time.Duration(k+1)*T - tauMin)
		if want.Before(t0) {
			want = t0
		}
		if !near(r.At, want) {
			t.Fatalf("reservation %d at +%s, want +%s", k, r.At.Sub(t0), want.Sub(t0))
		}
		if k < 59 && r.Delay != 0 {
			t.Fatalf("reservation %d of the initial burst delayed %s", k, r.Delay)
		}
		if k > 60 {
			if d := r.At.Sub(prev); d < T-2*time.Microsecond || d > T+2*time.Microsecond {
				t.Fatalf("reservation %d spaced %s after the previous one, want %s", k, d, T)
			}
		}
		prev = r.At
	}
	if s := l.Stats(); s.Admitted != 100 || s.TotalWait <= 0 {
		t.Fatalf("Stats = %+v", s)
	}
}

func TestWaitFailsFastWithoutCharging(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	l := f.limiter("requests:1:PT1M", func(c *quota.Config) { c.MaxAhead = 5 * time.Minute })
	ctx := context.Background()
	r, err := l.Wait(ctx, quota.Cost{Requests: 1})
	if err != nil || r.Delay != 0 {
		t.Fatalf("first Wait = %+v, %v; want an immediate slot", r, err)
	}
	dctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	_, err = l.Wait(dctx, quota.Cost{Requests: 1})
	var tf *quota.TooFarError
	if !errors.As(err, &tf) || !tf.ByDeadline || !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, quota.ErrTooFar) {
		t.Fatalf("Wait with a 1s deadline and a slot a minute away: error = %v", err)
	}
	before := f.tat("requests:PT1M")
	// Not charged: the next reservation gets the slot the refused one was offered.
	r2, err := l.Reserve(ctx, quota.Cost{Requests: 1})
	if err != nil || !near(r2.At, tf.At) {
		t.Fatalf("Reserve after the refused Wait at +%s (%v), want +%s", r2.At.Sub(t0), err, tf.At.Sub(t0))
	}
	if before == f.tat("requests:PT1M") {
		t.Fatal("the granted reservation did not move the TAT")
	}

	// A Wait whose ctx is cancelled while sleeping refunds its reservation.
	mid := f.tat("requests:PT1M")
	cctx, ccancel := context.WithCancel(ctx)
	go func() { time.Sleep(200 * time.Millisecond); ccancel() }()
	if _, err := l.Wait(cctx, quota.Cost{Requests: 1}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Wait: error = %v, want context.Canceled", err)
	}
	if got := f.tat("requests:PT1M"); got != mid {
		t.Fatalf("cancelled Wait left TAT %s, want %s (refunded)", got, mid)
	}
	if s := l.Stats(); s.Canceled != 1 || s.TooFar != 1 {
		t.Fatalf("Stats = %+v, want 1 cancel and 1 too-far", s)
	}
}

func TestCancelRefunds(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	l := f.limiter("requests:1:PT1M pu:100:PT1M", func(c *quota.Config) { c.MaxAhead = 5 * time.Minute })
	ctx := context.Background()
	if _, err := l.Reserve(ctx, costOf(1)); err != nil {
		t.Fatal(err)
	}
	r2, err := l.Reserve(ctx, costOf(1))
	if err != nil || r2.Delay <= 0 {
		t.Fatalf("second reservation %+v, %v; want a later slot", r2, err)
	}
	if err := l.Cancel(ctx, r2); err != nil {
		t.Fatal(err)
	}
	r3, err := l.Reserve(ctx, costOf(1))
	if err != nil || !near(r3.At, r2.At) {
		t.Fatalf("after Cancel the next slot is +%s, want the cancelled +%s", r3.At.Sub(t0), r2.At.Sub(t0))
	}
	u, err := l.Usage(ctx)
	if err != nil || u.ReservedMilliPU != 2000 || u.SpentMilliPU != 0 {
		t.Fatalf("Usage = %+v, %v; want 2000 milli-PU reserved (the cancelled one refunded)", u, err)
	}
	if err := l.Cancel(ctx, quota.Reservation{}); err == nil {
		t.Fatal("Cancel of a zero Reservation succeeded")
	}
}

func TestCostExceedingCapacity(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	l := f.limiter("requests:100:PT1M pu:10:PT1M", nil)
	_, err := l.Reserve(context.Background(), costOf(10.5))
	if !errors.Is(err, quota.ErrCostExceedsCapacity) || !strings.Contains(err.Error(), "pu:10:PT1M") {
		t.Fatalf("Reserve of 10.5 PU on a 10 PU/min policy: error = %v", err)
	}
	if _, err := l.Reserve(context.Background(), costOf(10)); err != nil {
		t.Fatalf("Reserve of exactly the capacity: %v", err)
	}
}

// Settlement moves the PU policy's TAT by the difference between estimate and
// actual: three accounts run the same sequence and settle 400, 1000 and 1600
// milli-PU of a 1000 milli-PU estimate.
func TestSettleMovesNextSlot(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	prefix := redistest.Prefix(t)
	ctx := context.Background()
	probe := map[int64]time.Time{}
	for _, actual := range []int64{400, 1000, 1600} {
		c := srv.Client()
		defer c.Close()
		clk := newClock(t0)
		l, err := quota.NewLimiter(quota.Config{Redis: c, Account: "acct-" + strconv.FormatInt(actual, 10), Prefix: prefix,
			Policies: []quota.Policy{{Kind: quota.Requests, Capacity: 1000, Period: time.Minute}, {Kind: quota.PU, Capacity: 10, Period: time.Minute}},
			MaxAhead: time.Minute, Now: clk.Now})
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 10; i++ { // the burst
			if _, err := l.Reserve(ctx, quota.Cost{Requests: 1, MilliPU: 1000}); err != nil {
				t.Fatal(err)
			}
		}
		r, err := l.Reserve(ctx, quota.Cost{Requests: 1, MilliPU: 1000})
		if err != nil || r.Delay <= 0 {
			t.Fatalf("reservation after the burst: %+v, %v", r, err)
		}
		if err := l.Settle(ctx, r, actual); err != nil {
			t.Fatal(err)
		}
		p, err := l.Reserve(ctx, quota.Cost{Requests: 1, MilliPU: 1000})
		if err != nil {
			t.Fatal(err)
		}
		probe[actual] = p.At
		u, err := l.Usage(ctx)
		if err != nil || u.SpentMilliPU != actual || u.ReservedMilliPU != 11000 {
			t.Fatalf("Usage after settling %d = %+v, %v; want spent %d, reserved 11000", actual, u, err, actual)
		}
		if s := l.Stats(); s.Settled != 1 {
			t.Fatalf("Stats.Settled = %d", s.Settled)
		}
	}
	// Settling refunds or charges the difference of the rounded increments of
	// pu:10:PT1M (u milli-PU cost ceil(u x 60e6 / 9900) us: 1000 -> 6060607,
	// 400 -> 2424243, 1600 -> 9696970): 400 instead of 1000 milli-PU moves the next slot earlier by 6060607 -
	// 2424243 = 3636364 us, 1600 moves it later by 9696970 - 6060607 = 3636363 us.
	if d := probe[1000].Sub(probe[400]); d != 3636364*time.Microsecond {
		t.Fatalf("settling 400 of 1000 moved the next slot earlier by %s, want 3.636364s", d)
	}
	if d := probe[1600].Sub(probe[1000]); d != 3636363*time.Microsecond {
		t.Fatalf("settling 1600 of 1000 moved the next slot later by %s, want 3.636363s", d)
	}
}

func TestMonthlyBudgetAndRollover(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.clock = newClock(time.Date(2026, 11, 30, 23, 59, 0, 0, time.UTC))
	l := f.limiter("requests:1000:PT1M pu:1000:PT1M", func(c *quota.Config) { c.MonthlyPU = 3 })
	ctx := context.Background()
	r, err := l.Reserve(ctx, costOf(1.5))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Settle(ctx, r, 1600); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Reserve(ctx, costOf(1.2)); err != nil { // 1.6 + 1.2 <= 3
		t.Fatal(err)
	}
	before := f.tat("requests:PT1M")
	_, err = l.Reserve(ctx, costOf(0.5)) // 1.6 + 1.2 + 0.5 > 3
	var mq *quota.MonthlyQuotaError
	if !errors.Is(err, quota.ErrMonthlyQuotaExhausted) || !errors.As(err, &mq) || mq.FromServer {
		t.Fatalf("Reserve over the budget: error = %v", err)
	}
	for _, want := range []string{"monthly PU budget of 3 exhausted (1.6 spent in 2026-11", "1.2 reserved", "needs 0.5", "resets 2026-12-01 00:00 UTC"} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("error %q lacks %q", err, want)
		}
	}
	if after := f.tat("requests:PT1M"); after != before {
		t.Fatalf("refused reservation changed the request policy: %s -> %s", before, after)
	}
	f.clock.Advance(2 * time.Minute) // 2026-12-01 00:01 UTC
	if _, err := l.Reserve(ctx, costOf(0.5)); err != nil {
		t.Fatalf("Reserve in the new month: %v", err)
	}
	u, err := l.Usage(ctx)
	if err != nil || u.Month != "2026-12" || u.ReservedMilliPU != 500 || u.SpentMilliPU != 0 || !u.Reset.Equal(time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("Usage in December = %+v, %v", u, err)
	}
	if s := l.Stats(); s.MonthlyRefused != 1 {
		t.Fatalf("Stats.MonthlyRefused = %d, want 1", s.MonthlyRefused)
	}
}

func TestObserve403StopsEveryLimiter(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	a := f.limiter("pu:100:PT1M", nil)
	b := f.limiter("pu:100:PT1M", nil)
	other := func() *quota.Limiter { // another account on the same server
		g := *f
		g.account = "someone-else"
		return g.limiter("pu:100:PT1M", nil)
	}()
	ctx := context.Background()
	if err := a.Observe403(ctx); err != nil {
		t.Fatal(err)
	}
	_, err := b.Reserve(ctx, costOf(1))
	var mq *quota.MonthlyQuotaError
	if !errors.Is(err, quota.ErrMonthlyQuotaExhausted) || !errors.As(err, &mq) || !mq.FromServer || !strings.Contains(err.Error(), "resets 2026-12-01 00:00 UTC") {
		t.Fatalf("second limiter after a 403: error = %v", err)
	}
	if _, err := other.Reserve(ctx, costOf(1)); err != nil {
		t.Fatalf("another account was stopped too: %v", err)
	}
	if u, err := b.Usage(ctx); err != nil || !u.Exhausted {
		t.Fatalf("Usage = %+v, %v; want Exhausted", u, err)
	}
	if err := b.ResumeMonth(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Reserve(ctx, costOf(1)); err != nil {
		t.Fatalf("after ResumeMonth: %v", err)
	}
	// The flag belongs to the month: the next month admits again.
	if err := a.Observe403(ctx); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(8 * 24 * time.Hour)
	if _, err := b.Reserve(ctx, costOf(1)); err != nil {
		t.Fatalf("in December after November's 403: %v", err)
	}
	if a.Stats().Forbidden != 2 {
		t.Fatalf("Stats.Forbidden = %d, want 2", a.Stats().Forbidden)
	}
}

func TestRedisDownRefuses(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr, MaxRetries: -1}) // fail fast once stopped
	defer c.Close()
	l, err := quota.NewLimiter(quota.Config{Redis: c, Account: "secret-client-id", Prefix: redistest.Prefix(t),
		Policies: []quota.Policy{{Kind: quota.Requests, Capacity: 10, Period: time.Second}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Reserve(context.Background(), costOf(1)); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	for _, call := range []func() error{
		func() error { _, err := l.Reserve(context.Background(), costOf(1)); return err },
		func() error { _, err := l.Wait(context.Background(), costOf(1)); return err },
	} {
		err := call()
		if !errors.Is(err, quota.ErrRedisUnavailable) {
			t.Fatalf("with redis stopped: error = %v, want ErrRedisUnavailable", err)
		}
		for _, want := range []string{"redis unreachable at " + srv.Addr, "refusing to send unlimited"} {
			if !strings.Contains(err.Error(), want) {
				t.Fatalf("error %q lacks %q", err, want)
			}
		}
		if strings.Contains(err.Error(), "secret-client-id") {
			t.Fatalf("error %q shows the client id", err)
		}
	}
	if l.Stats().RedisErrors == 0 {
		t.Fatal("Stats.RedisErrors = 0")
	}
}

func BenchmarkReserve(b *testing.B) {
	srv := redistest.Start(b)
	c := srv.Client()
	defer c.Close()
	l, err := quota.NewLimiter(quota.Config{Redis: c, Account: "bench", Prefix: redistest.Prefix(b),
		Policies: []quota.Policy{{Kind: quota.Requests, Capacity: 1e9, Period: time.Second}, {Kind: quota.PU, Capacity: 1e9, Period: time.Second}}})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := l.Reserve(ctx, costOf(1)); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// Without Config.Now the scripts use the Redis server's TIME; keys carry TTLs so
// an idle account leaves nothing behind.
func TestServerClockAndExpiry(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	c := srv.Client()
	defer c.Close()
	prefix := redistest.Prefix(t)
	l, err := quota.NewLimiter(quota.Config{Redis: c, Account: "acct", Prefix: prefix, MaxAhead: 5 * time.Minute,
		Policies: []quota.Policy{{Kind: quota.Requests, Capacity: 1, Period: time.Minute}, {Kind: quota.PU, Capacity: 100, Period: time.Minute}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	before := time.Now()
	r1, err := l.Reserve(ctx, costOf(2))
	if err != nil || r1.Delay != 0 {
		t.Fatalf("first reservation %+v, %v; want now", r1, err)
	}
	r2, err := l.Reserve(ctx, costOf(2))
	// The second request's slot is 2 x 60606061 - 60606061 us after the first.
	if err != nil || r2.Delay <= 0 || r2.Delay > 2*inc1perMin-tau1perMin {
		t.Fatalf("second reservation in %s (%v), want within (0, 1m0.606061s]", r2.Delay, err)
	}
	if r2.At.Before(before) {
		t.Fatalf("At %s is before the call", r2.At)
	}
	keys, err := c.Keys(ctx, prefix+"*").Result()
	if err != nil || len(keys) != 3 { // two policies + pending PU
		t.Fatalf("keys = %v, %v", keys, err)
	}
	for _, k := range keys {
		ttl, err := c.PTTL(ctx, k).Result()
		limit := 3 * time.Minute // a policy: its TAT lead plus a second
		if strings.HasSuffix(k, ":pending") {
			limit = quota.PendingMemory
		}
		if err != nil || ttl <= 0 || ttl > limit {
			t.Fatalf("key %s has TTL %s (%v), want one up to %s", k, ttl, err, limit)
		}
		if strings.Contains(k, "acct") {
			t.Fatalf("key %s shows the account id", k)
		}
	}
}

// Concurrent reservations against a monthly budget: exactly as many are admitted
// as the budget holds, and the refused ones charge no policy.
func TestMonthlyBudgetConcurrentAllOrNothing(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	l := f.limiter("requests:1000:PT1M pu:1000:PT1M", func(c *quota.Config) { c.MonthlyPU = 10 })
	var wg sync.WaitGroup
	var mu sync.Mutex
	admitted, refused := 0, 0
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := l.Reserve(context.Background(), costOf(0.5))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				admitted++
			case errors.Is(err, quota.ErrMonthlyQuotaExhausted):
				refused++
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if admitted != 20 || refused != 30 {
		t.Fatalf("admitted %d, refused %d; want 20 and 30 (10 PU budget, 0.5 PU each)", admitted, refused)
	}
	// 20 charges of 60607 us and of 30304 us: 1212140 us and 606080 us past t0.
	wantR := strconv.FormatInt(t0.Add(20*inc1000perMin).UnixMicro(), 10)
	wantP := strconv.FormatInt(t0.Add(20*inc1000PUperMin5).UnixMicro(), 10)
	if 20*inc1000perMin != 1212140*time.Microsecond || 20*inc1000PUperMin5 != 606080*time.Microsecond {
		t.Fatal("hand-worked constants disagree")
	}
	if r, p := f.tat("requests:PT1M"), f.tat("pu:PT1M"); r != wantR || p != wantP {
		t.Fatalf("TATs requests %s, pu %s; want %s and %s (20 charges each)", r, p, wantR, wantP)
	}
}

// A negative Headroom admits the full capacity: a burst of exactly Capacity, then
// one every Period/Capacity.
func TestNoHeadroom(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	l := f.limiter("requests:4:PT1S", func(c *quota.Config) { c.Headroom = -1 })
	want := []time.Duration{0, 0, 0, 0, 250 * time.Millisecond, 500 * time.Millisecond}
	for i, w := range want {
		r, err := l.Reserve(context.Background(), quota.Cost{Requests: 1})
		if err != nil || r.Delay != w {
			t.Fatalf("reservation %d in %s (%v), want %s", i, r.Delay, err, w)
		}
	}
}
