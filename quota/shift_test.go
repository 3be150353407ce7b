package quota_test

import (
	"context"
	"testing"
	"time"

	"shfleet/quota"
)

// A resync that tightens a policy while slots of it are booked ahead moves every
// slot already handed out, not only the queue's tail: a waiter sleeping in Wait
// sends that much later, and a slot handed out after the resync is not moved
// twice.
//
// requests:10:PT1S with headroom 0.2: 8 units of burst, 125 ms apart, tau = 1 s.
func TestResyncShiftsSlotsAlreadyHandedOut(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	api := &testAccount{}
	l := f.limiter("requests:10:PT1S", func(c *quota.Config) { headroom20(c); c.AccountAPI = api })
	one := quota.Cost{Requests: 1}
	for i := 0; i < 20; i++ {
		if _, err := l.Reserve(ctx, one); err != nil {
			t.Fatal(err)
		}
	}
	// 20 reserved at t0: TAT = t0 + 2.5 s. The 21st gets TAT t0 + 2.625 s and
	// its slot at 2.625 - 1 = 1.625 s.
	type waited struct {
		r   quota.Reservation
		err error
	}
	first := make(chan waited, 1)
	go func() { r, err := l.Wait(ctx, one); first <- waited{r, err} }()
	deadline := time.Now().Add(5 * time.Second)
	for f.tat("requests:PT1S") != us(2625*time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the waiter never reserved: TAT %s", f.tat("requests:PT1S"))
		}
		time.Sleep(5 * time.Millisecond)
	}
	// The server has nothing left (another client took it). Mirror level
	// (1 - 2.625) / 0.125 = -13, booked ahead 13, target 0 - 2 - 13 = -15:
	// 2 units too loose, so the TAT moves 2 x 125 ms = 250 ms later, and with it
	// every slot handed out.
	api.setLevels(quota.Level{Kind: quota.Requests, Period: time.Second, Remaining: 0})
	res, err := l.Resync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Shifted != 250*time.Millisecond {
		t.Fatalf("Resync shifted the queue %s, want 250ms (%+v)", res.Shifted, res)
	}
	w := <-first
	if w.err != nil {
		t.Fatal(w.err)
	}
	if w.r.Delay != 1875*time.Millisecond {
		t.Fatalf("the waiter's delay = %s, want 1.625s booked + 0.25s shifted = 1.875s", w.r.Delay)
	}
	// Reserved after the resync: TAT t0 + 2.875 + 0.125 = 3 s, slot 2 s; it
	// already sits behind the moved tail and is not moved again.
	r, err := l.Wait(ctx, one)
	if err != nil {
		t.Fatal(err)
	}
	if r.Delay != 2*time.Second {
		t.Fatalf("a slot handed out after the resync has delay %s, want 2s (not shifted)", r.Delay)
	}
}

// A resync of a policy with nothing booked ahead moves no slot: the tightened
// bucket only delays reservations still to come.
func TestResyncWithoutQueueShiftsNothing(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	api := &testAccount{}
	l := f.limiter("requests:10:PT1S", func(c *quota.Config) { headroom20(c); c.AccountAPI = api })
	for i := 0; i < 4; i++ {
		if _, err := l.Reserve(ctx, quota.Cost{Requests: 1}); err != nil {
			t.Fatal(err)
		}
	}
	// TAT t0 + 0.5 s, mirror level (1 - 0.5) / 0.125 = 4; the server has 3:
	// target 3 - 2 = 1, the TAT moves 3 x 125 ms later, yet no slot was waiting.
	api.setLevels(quota.Level{Kind: quota.Requests, Period: time.Second, Remaining: 3})
	res, err := l.Resync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if p := policySync(t, res, "requests:10:PT1S"); p.Moved != 375*time.Millisecond || res.Shifted != 0 {
		t.Fatalf("resync moved the TAT %s and shifted the queue %s; want 375ms and 0", p.Moved, res.Shifted)
	}
}

// The estimate of others' use is a signed mean: the fleet's own queue makes the
// samples noisy both ways, and a mean clamped at 0 after every negative sample
// would turn that noise into a phantom other client.
func TestResyncExternalMeanIsSigned(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	api := &testAccount{}
	l := f.limiter("pu:100:PT1M", func(c *quota.Config) { headroom20(c); c.AccountAPI = api })
	// Nothing reserved: mirror 80 PU. The server has 50: target 50 - 20 = 30,
	// the mirror is tightened to 30; D after = 30 - 50 = -20.
	api.setLevels(puMinute(50))
	if _, err := l.Resync(ctx); err != nil {
		t.Fatal(err)
	}
	// 2 s later the mirror refilled 2 / 0.75 = 2.667 (32.667); a server at
	// 54.667 gives D = -22, a sample of X = -2. Mean (1 - e^-0.2) x (-2 / 2) =
	// -0.181269 PU/s; nothing is booked for a negative mean.
	f.clock.Advance(2 * time.Second)
	api.setLevels(puMinute(164.0 / 3))
	r, err := l.Resync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if pu := policySync(t, r, "pu:100:PT1M"); !pu.HasExternal || !approx(pu.External, -2, 1e-5) || pu.Rate != 0 || pu.Booked != 0 {
		t.Fatalf("second resync = %+v; want a sample of -2, rate 0, nothing booked", pu)
	}
	// 2 s later: mirror 35.333, server 55.333, D = -20: X = +2. Mean
	// -0.181269 + 0.181269 x (1 + 0.181269) = 0.032859 PU/s, booked for the 2 s
	// until the next resync: 0.065718 PU. (A mean clamped at 0 would say
	// 0.181269 and book 0.362538.)
	f.clock.Advance(2 * time.Second)
	api.setLevels(puMinute(166.0 / 3))
	r, err = l.Resync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if pu := policySync(t, r, "pu:100:PT1M"); !approx(pu.External, 2, 1e-5) || !approx(pu.Rate, 0.032859, 1e-5) || !approx(pu.Booked, 0.065718, 1e-5) {
		t.Fatalf("third resync = %+v; want X 2, rate 0.032859, booked 0.065718", pu)
	}
}

// A 429 holds the slots already handed out too: a waiter booked before the 429
// sends after the hold, and later admissions queue behind it.
func TestObserve429ShiftsSlotsAlreadyHandedOut(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	l := f.limiter("requests:10:PT1S", headroom20)
	one := quota.Cost{Requests: 1}
	for i := 0; i < 20; i++ {
		if _, err := l.Reserve(ctx, one); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan quota.Reservation, 1)
	go func() {
		r, err := l.Wait(ctx, one)
		if err != nil {
			t.Error(err)
		}
		done <- r
	}()
	deadline := time.Now().Add(5 * time.Second)
	for f.tat("requests:PT1S") != us(2625*time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the waiter never reserved: TAT %s", f.tat("requests:PT1S"))
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Retry-After 1 s plus the first backoff step, 250 ms x a jitter in
	// [0.5, 1]: the hold ends 1.125-1.25 s after t0, and the waiter's slot
	// (1.625 s) moves by as much: 2.75-2.875 s.
	if err := l.Observe429(ctx, quota.RateLimit{RetryAfter: time.Second, HasRetryAfter: true}); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.Delay < 2750*time.Millisecond || r.Delay > 2875*time.Millisecond {
		t.Fatalf("the waiter's delay = %s, want 1.625s + the 1.125-1.25s hold", r.Delay)
	}
	moved := r.Delay - 1625*time.Millisecond
	// The TAT moved by the hold too: t0 + 2.625 s + hold.
	if got, want := f.tat("requests:PT1S"), us(2625*time.Millisecond+moved); got != want {
		t.Fatalf("TAT after the hold = %s, want %s (moved with the queue)", got, want)
	}
}
