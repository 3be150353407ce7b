package quota

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"shfleet/keys"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
)

// Defaults of Config fields left zero.
const (
	// DefaultHeadroom: admit at most 99% of each policy's capacity, so send-time
	// jitter and the server's bucket starting a little later than ours cause no 429.
	DefaultHeadroom = 0.01
	// DefaultMaxAhead: never book a slot more than 20 s ahead; a task that would wait
	// longer goes back to the queue (reservations far ahead cannot be corrected by
	// settlement in time).
	DefaultMaxAhead = 20 * time.Second
	// DefaultHold is the fleet-wide pause after a 429 that carried no retry header.
	DefaultHold = 30 * time.Second
	// DefaultLearnedRefresh is how often a Limiter re-reads the policies the fleet
	// learned from 429s.
	DefaultLearnedRefresh = 5 * time.Second
	// MaxHold caps one fleet-wide pause after a 429, backoff included.
	MaxHold = 2 * time.Minute
	// BackoffBase is the extra pause after the first 429 of a streak (before
	// jitter); it doubles with every further 429 up to BackoffMax.
	BackoffBase = 250 * time.Millisecond
	// BackoffMax caps the exponential part of the pause after repeated 429s.
	BackoffMax = 30 * time.Second
	// StreakMemory is how long a 429 streak is remembered without another 429 (an
	// ObserveSuccess ends it at once).
	StreakMemory = 2 * time.Minute
	// PendingMemory is how long the month's "reserved, not settled" PU survive
	// without any new reservation: estimates of reservations that were never settled
	// nor cancelled (a crashed worker) stop counting against the budget after it.
	PendingMemory = 15 * time.Minute
	// LearnedMemory is how long learned policies are kept without a new 429
	// confirming one (a raised plan is picked up after it).
	LearnedMemory = 24 * time.Hour
	// DefaultContractRefresh is how often the fleet re-fetches the account's
	// contract (its published policies); one process fetches for all.
	DefaultContractRefresh = 5 * time.Minute
	// DefaultResyncInterval is how often the fleet reconciles its mirror with the
	// units the server says remain; one process at a time, for all.
	DefaultResyncInterval = 2 * time.Second
)

var (
	// clockLua is prepended to the scripts that read the clock (one definition
	// of the fleet's clock: the Redis server's TIME unless a test injects one).
	//go:embed clock.lua
	clockLua string
	//go:embed limiter.lua
	reserveLua    string
	reserveScript = redis.NewScript(clockLua + reserveLua)
	//go:embed settle.lua
	settleLua    string
	settleScript = redis.NewScript(clockLua + settleLua)
)

// Config configures a Limiter. Redis and Account are required; every other zero
// field takes its default.
type Config struct {
	// Redis holds the fleet's shared state. A *redis.Client, *redis.ClusterClient or
	// failover client; every key of one account shares a hash tag, so Cluster works.
	// Required.
	Redis redis.UniversalClient
	// Account is the OAuth client id of the Sentinel Hub account. It is hashed into
	// the keys' hash tag (AccountTag) and never stored in clear. Required.
	Account string
	// Prefix starts every key. Default keys.DefaultPrefix.
	Prefix string
	// Policies override the account's rate limits (see ParsePolicy,
	// PoliciesFromEnv, SH_POLICIES). Optional: when empty the limiter enforces the
	// account's contract as the fleet cached it in Redis (see AccountAPI), else
	// Fallback. PolicySource tells which.
	Policies []Policy
	// Fallback are the policies enforced when neither Policies nor a contract is
	// available. Default TrialPolicies (the trial account's 10 requests and 10 PU
	// per minute: slow but safe).
	Fallback []Policy
	// AccountAPI reads what the service publishes about the account's limits: the
	// contract (re-fetched every ContractRefresh by one process for the fleet) and
	// the units remaining now (read every ResyncInterval by one process to
	// reconcile the fleet's mirror, see RunAccountSync). Default nil: this process
	// neither fetches the contract nor resyncs; it still enforces a contract that
	// another process of the fleet cached.
	AccountAPI AccountAPI
	// ContractRefresh is how old the cached contract may get before one process
	// re-fetches it. Default DefaultContractRefresh; at least 1 s.
	ContractRefresh time.Duration
	// ResyncInterval is how often one process of the fleet reconciles the mirror
	// with the server's remaining units (RunAccountSync). Default
	// DefaultResyncInterval; at least 100 ms.
	ResyncInterval time.Duration
	// MonthlyPU is our own monthly PU budget; 0 means none (the server's 403 still
	// stops the fleet through Observe403).
	MonthlyPU float64
	// Headroom is the fraction of every capacity left unused: the limiter admits at
	// most (1-Headroom) x Capacity per Period. Default DefaultHeadroom; a negative
	// value means none. Must be below 0.5.
	Headroom float64
	// MaxAhead is the furthest ahead a reservation is booked; a later slot is
	// refused with *TooFarError and nothing is charged. Default DefaultMaxAhead.
	MaxAhead time.Duration
	// DefaultHold is the fleet-wide pause after a 429 without any retry header.
	// Default DefaultHold.
	DefaultHold time.Duration
	// LearnedRefresh is how often the policies learned by other processes and the
	// contract the fleet cached are re-read (one round trip). Default
	// DefaultLearnedRefresh.
	LearnedRefresh time.Duration
	// Logger receives one event per learned policy, 403, resume, policy source
	// change and first detection of another client's use.
	// The zero value logs nothing (like zerolog.Nop()).
	Logger zerolog.Logger
	// Now is the clock for tests. When nil (production), the limiter uses the Redis
	// server's TIME inside its scripts, one clock for the whole fleet however skewed
	// the machines' clocks are, and time.Now for the month and local deadlines.
	// When set, its time is passed to the scripts instead.
	Now func() time.Time
}

// withDefaults returns a copy of c with every zero field at its default; the
// caller's slices are copied, never shared.
func (c Config) withDefaults() Config {
	if c.Prefix == "" {
		c.Prefix = keys.DefaultPrefix
	}
	c.Policies = append([]Policy(nil), c.Policies...)
	if len(c.Fallback) == 0 {
		c.Fallback = TrialPolicies
	}
	c.Fallback = append([]Policy(nil), c.Fallback...)
	if c.ContractRefresh == 0 {
		c.ContractRefresh = DefaultContractRefresh
	}
	if c.ResyncInterval == 0 {
		c.ResyncInterval = DefaultResyncInterval
	}
	if c.MaxAhead == 0 {
		c.MaxAhead = DefaultMaxAhead
	}
	if c.DefaultHold == 0 {
		c.DefaultHold = DefaultHold
	}
	if c.LearnedRefresh == 0 {
		c.LearnedRefresh = DefaultLearnedRefresh
	}
	return c
}

func validatePolicies(field string, ps []Policy) error {
	seen := map[string]bool{}
	for i, p := range ps {
		if err := p.validate(); err != nil {
			return fmt.Errorf("quota: Config.%s[%d]: %w", field, i, err)
		}
		if seen[p.id()] {
			return fmt.Errorf("quota: Config.%s[%d] %s repeats the kind and period of another policy; keep one", field, i, p)
		}
		seen[p.id()] = true
	}
	return nil
}

func (c *Config) validate() error {
	if c.Redis == nil {
		return errors.New("quota: Config.Redis is nil; pass a go-redis client (redis.NewClient or redis.NewUniversalClient)")
	}
	if c.Account == "" {
		return errors.New("quota: Config.Account is empty; set it to the account's OAuth client id (SH_CLIENT_ID)")
	}
	if strings.ContainsAny(c.Prefix, "{}") {
		return fmt.Errorf("quota: Config.Prefix %q contains { or }; the account's hash tag must be the only one in a key", c.Prefix)
	}
	if err := validatePolicies("Policies", c.Policies); err != nil {
		return err
	}
	if err := validatePolicies("Fallback", c.Fallback); err != nil {
		return err
	}
	if c.ContractRefresh < time.Second {
		return fmt.Errorf("quota: Config.ContractRefresh %s is below 1s (default %s)", c.ContractRefresh, DefaultContractRefresh)
	}
	if c.ResyncInterval < 100*time.Millisecond {
		return fmt.Errorf("quota: Config.ResyncInterval %s is below 100ms, which would flood the account API (default %s)", c.ResyncInterval, DefaultResyncInterval)
	}
	if math.IsNaN(c.MonthlyPU) || math.IsInf(c.MonthlyPU, 0) || c.MonthlyPU < 0 {
		return fmt.Errorf("quota: Config.MonthlyPU %v must be 0 (no budget) or a positive number", c.MonthlyPU)
	}
	if math.IsNaN(c.Headroom) || c.Headroom >= 0.5 {
		return fmt.Errorf("quota: Config.Headroom %v must be below 0.5 (default %v, negative for none)", c.Headroom, DefaultHeadroom)
	}
	if c.MaxAhead < 0 {
		return fmt.Errorf("quota: Config.MaxAhead %s is negative (default %s)", c.MaxAhead, DefaultMaxAhead)
	}
	if c.DefaultHold < 0 {
		return fmt.Errorf("quota: Config.DefaultHold %s is negative (default %s)", c.DefaultHold, DefaultHold)
	}
	if c.LearnedRefresh < 0 {
		return fmt.Errorf("quota: Config.LearnedRefresh %s is negative (default %s)", c.LearnedRefresh, DefaultLearnedRefresh)
	}
	return nil
}

// Cost is what one request costs: requests and PU (in milli-PU, as the server's
// X-ProcessingUnits-Spent rounded up).
type Cost struct {
	// Requests is the number of HTTP requests, usually 1.
	Requests int64
	// MilliPU is the PU estimate in thousandths; reserve an upper bound and settle
	// the actual value with Settle.
	MilliPU int64
}

// Reservation is a slot granted by Reserve or Wait: the request may be sent at At.
// Pass it to exactly one of Settle (sent: with the actual PU) or Cancel (not sent).
// After a 429 call Observe429 and neither: the charge stays, as the server's bucket
// was touched.
type Reservation struct {
	// At is when the request may be sent (local clock).
	At time.Time
	// Delay is how long after the reservation At is.
	Delay time.Duration
	// Cost is what was charged.
	Cost Cost

	month   string
	charges []charge
	shift   int64 // the fleet's queue shift (us) when the slot was handed out
}

// charge is what a reservation added to one policy.
type charge struct {
	key      string
	kind     PolicyKind
	perMilli float64 // microseconds per milli-unit
	inc      int64   // microseconds added to the TAT
}

// Stats are a Limiter's counters since it was made.
type Stats struct {
	// Admitted counts granted reservations.
	Admitted int64
	// TotalWait sums the delays of granted reservations.
	TotalWait time.Duration
	// TooFar counts reservations refused because the slot was beyond MaxAhead or
	// the context deadline.
	TooFar int64
	// MonthlyRefused counts reservations refused by the monthly budget or a 403.
	MonthlyRefused int64
	// Canceled counts refunded reservations; Settled settled ones.
	Canceled, Settled int64
	// Throttled counts the 429s observed, by violated policy ("pu:1000:PT1M") or,
	// without a policy header, by the kind told by the legacy headers ("pu",
	// "requests") or "unknown" (a Retry-After-only 429, today's usual answer).
	Throttled map[string]int64
	// Forbidden counts the 403s observed.
	Forbidden int64
	// RedisErrors counts failed Redis calls.
	RedisErrors int64
	// Resyncs counts the reconciliations with the server's counts this Limiter
	// ran (Resync, RunAccountSync, MonthSpent).
	Resyncs int64
}

// Limiter admits the requests of one account's whole fleet: every process makes its
// own Limiter with the same Account and Prefix, and Redis keeps them in step.
// It is safe for concurrent use.
type Limiter struct {
	cfg      Config
	rdb      redis.UniversalClient
	log      zerolog.Logger
	headroom float64

	set            atomic.Pointer[policySet]
	refreshMu      sync.Mutex
	refreshedAt    atomic.Int64  // unix nanos of the last read of learned policies and contract
	logged         sync.Map      // learned policy -> struct{}: logged once
	loggedMonth    sync.Map      // month -> struct{}: 403 logged once
	streakSeen     atomic.Bool   // a 429 streak may be recorded; ObserveSuccess clears it
	warnedFallback atomic.Bool   // the fallback warning was logged (once per process)
	warnedContract atomic.Bool   // a failed contract refresh was logged (once per episode)
	warnedResync   atomic.Bool   // a failed resync was logged (once per episode)
	trigger        chan struct{} // Observe429 asks RunAccountSync for a resync now

	admitted, tooFar, monthly, canceled, settled, forbidden, redisErrors atomic.Int64
	resyncs                                                              atomic.Int64
	waitNanos                                                            atomic.Int64
	throttledMu                                                          sync.Mutex
	throttled                                                            map[string]int64
}

// NewLimiter checks cfg and makes a Limiter. It does not talk to Redis.
func NewLimiter(cfg Config) (*Limiter, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	l := &Limiter{cfg: cfg, rdb: cfg.Redis, throttled: map[string]int64{}, trigger: make(chan struct{}, 1)}
	switch {
	case cfg.Headroom == 0:
		l.headroom = DefaultHeadroom
	case cfg.Headroom > 0:
		l.headroom = cfg.Headroom
	}
	l.log = cfg.Logger
	l.set.Store(l.buildSet(contractState{}, nil))
	return l, nil
}

// policySet is the effective set of policies: the base set (configured, the
// account's contract or the fallback), with learned stricter ones replacing or
// joining them.
type policySet struct {
	limits []limit
	// monthCap is the capacity of the account's monthly PU policy (a PU policy
	// of MonthlyPeriod or more, PT744H in the contract), enforced as the month's
	// budget by the ledger rather than as a GCRA cell: a raised plan then takes
	// effect at once, and the month resets like the service's (the 1st, UTC).
	// 0 when there is none.
	monthCap float64
	source   PolicySource
	contract contractState
	learned  []Policy
}

// limit is one effective policy with its GCRA parameters.
type limit struct {
	Policy
	key      string
	perMilli float64 // emission interval per milli-unit, microseconds
	tau      int64   // burst tolerance, microseconds ((1-headroom) x capacity)
	learned  bool
}

func (l *Limiter) newLimit(p Policy, learned bool) limit {
	periodUS := float64(p.Period / time.Microsecond)
	per := periodUS / (p.Capacity * 1000 * (1 - l.headroom))
	return limit{
		Policy:   p,
		key:      l.key("policy:" + p.id()),
		perMilli: per,
		// The initial burst, like the steady rate, keeps the headroom: the server's
		// bucket is left Headroom x Capacity units of slack from the first second,
		// so send-time jitter right after the burst finds units to spare. At least
		// one unit, so a tiny policy (1 request/min) still sends at once.
		tau:     int64(math.Ceil(max(p.Capacity*(1-l.headroom), 1) * 1000 * per)),
		learned: learned,
	}
}

// units is the cost in milli-units of the limit's kind.
func (lm limit) units(c Cost) int64 {
	if lm.Kind == PU {
		return c.MilliPU
	}
	return c.Requests * 1000
}

func incFor(perMilli float64, units int64) int64 {
	if units <= 0 {
		return 0
	}
	return int64(math.Ceil(float64(units) * perMilli))
}

// buildSet picks the base policies (configuration, else the contract the fleet
// cached, else the fallback) and merges the learned capacities ("kind:period" ->
// cap) on top.
func (l *Limiter) buildSet(cs contractState, learned map[string]float64) *policySet {
	src := l.sourceOf(cs)
	s := &policySet{source: src, contract: cs}
	have := map[string]int{}
	for _, p := range src.Policies {
		if p.Kind == PU && p.Period >= MonthlyPeriod {
			if s.monthCap == 0 || p.Capacity < s.monthCap {
				s.monthCap = p.Capacity
			}
			continue
		}
		have[p.id()] = len(s.limits)
		s.limits = append(s.limits, l.newLimit(p, false))
	}
	ids := make([]string, 0, len(learned))
	for id := range learned {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		kind, period, ok := strings.Cut(id, ":")
		d, err := ParsePeriod(period)
		c := learned[id]
		if !ok || err != nil || (PolicyKind(kind) != Requests && PolicyKind(kind) != PU) || !(c > 0) {
			continue
		}
		p := Policy{Kind: PolicyKind(kind), Capacity: c, Period: d}
		if p.Kind == PU && p.Period >= MonthlyPeriod {
			if s.monthCap == 0 || c < s.monthCap {
				s.monthCap = c
			}
			continue
		}
		if i, ok := have[p.id()]; ok {
			if s.limits[i].Capacity > c {
				s.limits[i] = l.newLimit(p, true)
				s.learned = append(s.learned, p)
			}
			continue
		}
		have[p.id()] = len(s.limits)
		s.limits = append(s.limits, l.newLimit(p, true))
		s.learned = append(s.learned, p)
	}
	s.source.Learned = s.learned
	return s
}

// monthBudget is the month's PU budget: the smaller of Config.MonthlyPU and the
// account's monthly policy, 0 when neither is set.
func (l *Limiter) monthBudget(s *policySet) float64 {
	b := l.cfg.MonthlyPU
	if s != nil && s.monthCap > 0 && (b == 0 || s.monthCap < b) {
		b = s.monthCap
	}
	return b
}

// policies returns the effective policy set, re-reading learned policies and the
// cached contract when the last read is older than LearnedRefresh (one goroutine
// reads; others use the current set meanwhile).
func (l *Limiter) policies(ctx context.Context) (*policySet, error) {
	if time.Now().UnixNano()-l.refreshedAt.Load() < int64(l.cfg.LearnedRefresh) {
		return l.set.Load(), nil
	}
	if !l.refreshMu.TryLock() {
		return l.set.Load(), nil
	}
	defer l.refreshMu.Unlock()
	if err := l.refresh(ctx); err != nil {
		return nil, err
	}
	return l.set.Load(), nil
}

// refresh re-reads the learned policies and the fleet's cached contract in one
// round trip and rebuilds the set. The caller holds refreshMu.
func (l *Limiter) refresh(ctx context.Context) error {
	pipe := l.rdb.Pipeline()
	learnedCmd := pipe.HGetAll(ctx, l.key(learnedSuffix))
	contractCmd := pipe.HGetAll(ctx, l.key(contractSuffix))
	errCmd := pipe.Get(ctx, l.key(contractErrorSuffix))
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return l.redisErr(ctx, "read learned policies and contract", err)
	}
	learned := make(map[string]float64, len(learnedCmd.Val()))
	for k, v := range learnedCmd.Val() {
		if c, err := strconv.ParseFloat(v, 64); err == nil {
			learned[k] = c
		}
	}
	cs := parseContract(contractCmd.Val(), errCmd.Val())
	prev := l.set.Load()
	next := l.buildSet(cs, learned)
	l.set.Store(next)
	l.refreshedAt.Store(time.Now().UnixNano())
	l.logSource(prev, next)
	return nil
}

// Policies returns the policies the limiter enforces now: the base set (see
// PolicySource) and the stricter ones the fleet learned from 429s.
func (l *Limiter) Policies(ctx context.Context) ([]Policy, error) {
	l.refreshMu.Lock()
	defer l.refreshMu.Unlock()
	if err := l.refresh(ctx); err != nil {
		return nil, err
	}
	s := l.set.Load()
	out := make([]Policy, len(s.limits))
	for i, lm := range s.limits {
		out[i] = lm.Policy
	}
	return out, nil
}

func (l *Limiter) key(suffix string) string { return AccountKey(l.cfg.Prefix, l.cfg.Account, suffix) }

// now is the local clock (injected in tests).
func (l *Limiter) now() time.Time {
	if l.cfg.Now != nil {
		return l.cfg.Now()
	}
	return time.Now()
}

// scriptNow is ARGV "now" of the scripts: "" for the server's TIME, the injected
// clock in microseconds otherwise.
func (l *Limiter) scriptNow() string {
	if l.cfg.Now == nil {
		return ""
	}
	return strconv.FormatInt(l.cfg.Now().UnixMicro(), 10)
}

// Reserve charges cost against every policy now and returns when the request may
// be sent: later callers get later slots (FIFO), evenly paced. It refuses, charging
// nothing, with *TooFarError when the slot is more than MaxAhead away, with
// *MonthlyQuotaError (errors.Is ErrMonthlyQuotaExhausted) when the month's PU are
// spent, with ErrCostExceedsCapacity when no policy could ever admit cost, and with
// an ErrRedisUnavailable error when Redis cannot be reached — it never admits
// without Redis.
func (l *Limiter) Reserve(ctx context.Context, cost Cost) (Reservation, error) {
	return l.reserve(ctx, cost, l.cfg.MaxAhead, false)
}

// Wait reserves like Reserve and sleeps until the slot. When ctx's deadline comes
// before the slot it fails at once with a *TooFarError that matches
// context.DeadlineExceeded, charging nothing; when ctx ends during the sleep the
// reservation is refunded and ctx.Err() returned.
//
// A slot handed out is not final: when a resync finds the account's other
// clients (or a plain mirror error) left the server fewer units than the fleet
// booked, it moves the whole booked queue later (the fleet's queue shift), not
// only its tail. Wait re-reads the shift when its sleep ends and sleeps on by
// however far the queue moved meanwhile; a move past ctx's deadline or MaxAhead
// refunds the slot and fails with a *TooFarError, as a slot that far ahead
// would have been refused in the first place.
func (l *Limiter) Wait(ctx context.Context, cost Cost) (Reservation, error) {
	if err := ctx.Err(); err != nil {
		return Reservation{}, err
	}
	limit, byDeadline := l.cfg.MaxAhead, false
	if dl, ok := ctx.Deadline(); ok {
		if left := time.Until(dl); left < limit {
			limit, byDeadline = max(left, 0), true
		}
	}
	r, err := l.reserve(ctx, cost, limit, byDeadline)
	if err != nil {
		return r, err
	}
	if r.Delay <= 0 {
		return r, nil
	}
	for sleep := r.Delay; sleep > 0; {
		if err := l.sleep(ctx, r, sleep); err != nil {
			return Reservation{}, err
		}
		moved, err := l.shiftSince(ctx, &r)
		if err != nil {
			// Without Redis the slot stands as booked: the reservation itself
			// was granted.
			return r, nil
		}
		dl, hasDeadline := ctx.Deadline()
		if moved > l.cfg.MaxAhead || hasDeadline && time.Now().Add(moved).After(dl) {
			if err := l.refund(ctx, r); err != nil {
				return Reservation{}, err
			}
			l.tooFar.Add(1)
			return Reservation{}, &TooFarError{At: l.now().Add(moved), Ahead: moved, Limit: limit, ByDeadline: moved <= l.cfg.MaxAhead}
		}
		r.Delay += moved
		r.At = r.At.Add(moved)
		sleep = moved // the sleep just ended at the old slot
	}
	return r, nil
}

// sleep waits d, or refunds r and returns ctx.Err() when ctx ends first.
func (l *Limiter) sleep(ctx context.Context, r Reservation, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		if err := l.refund(ctx, r); err != nil {
			return fmt.Errorf("%w (and the refund failed: %v)", ctx.Err(), err)
		}
		return ctx.Err()
	}
}

// refund cancels r on a context that outlives ctx by a few seconds.
func (l *Limiter) refund(ctx context.Context, r Reservation) error {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	return l.Cancel(cctx, r)
}

// shiftSince reads the fleet's queue shift and returns how far the queue moved
// since r's slot was handed out (recording the new value in r).
func (l *Limiter) shiftSince(ctx context.Context, r *Reservation) (time.Duration, error) {
	v, err := l.rdb.Get(ctx, l.key(shiftSuffix)).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	moved := v - r.shift
	if moved <= 0 {
		return 0, nil
	}
	r.shift = v
	return time.Duration(moved) * time.Microsecond, nil
}

func (l *Limiter) reserve(ctx context.Context, cost Cost, maxAhead time.Duration, byDeadline bool) (Reservation, error) {
	if cost.Requests < 0 || cost.MilliPU < 0 {
		return Reservation{}, fmt.Errorf("quota: cost %+v is negative", cost)
	}
	set, err := l.policies(ctx)
	if err != nil {
		return Reservation{}, err
	}
	now := l.now().UTC()
	month := monthOf(now)
	keys := make([]string, 0, 4+len(set.limits))
	keys = append(keys, l.key(backoffSuffix), l.key(exhaustedSuffix(month)), l.key(ledgerSuffix(month)), l.key(pendingSuffix(month)))
	args := make([]any, 0, 5+2*len(set.limits))
	// The account's monthly policy bounds the budget through the script's fresh
	// read of the cached contract; configured or fallback ones through the set.
	fromAccount := set.source.Kind == SourceAccount
	budget := l.cfg.MonthlyPU
	if !fromAccount {
		budget = l.monthBudget(set)
	}
	args = append(args, l.scriptNow(), maxAhead.Microseconds(), int64(math.Round(budget*1000)), cost.MilliPU, PendingMemory.Milliseconds())
	charges := make([]charge, 0, len(set.limits))
	for _, lm := range set.limits {
		u := lm.units(cost)
		if float64(u) > lm.Capacity*1000+1e-6 {
			return Reservation{}, fmt.Errorf("quota: one request costing %g %s exceeds policy %s, whose whole capacity it needs; the server would never admit it — make the request smaller (smaller tile or fewer bands): %w",
				float64(u)/1000, lm.Kind, lm.Policy, ErrCostExceedsCapacity)
		}
		inc := incFor(lm.perMilli, u)
		keys = append(keys, lm.key)
		args = append(args, inc, lm.tau)
		charges = append(charges, charge{key: lm.key, kind: lm.Kind, perMilli: lm.perMilli, inc: inc})
	}
	keys = append(keys, l.key(contractSuffix), l.key(shiftSuffix))
	args = append(args, map[bool]string{true: "1", false: "0"}[fromAccount])
	res, err := reserveScript.Run(ctx, l.rdb, keys, args...).Int64Slice()
	if err != nil {
		return Reservation{}, l.redisErr(ctx, "reserve", err)
	}
	if len(res) < 5 {
		return Reservation{}, fmt.Errorf("quota: reserve script answered %v; want 5 numbers", res)
	}
	if res[4] == 1 {
		l.streakSeen.Store(true)
	}
	delay := time.Duration(res[2]-res[1]) * time.Microsecond
	switch res[0] {
	case 0:
		l.admitted.Add(1)
		l.waitNanos.Add(int64(delay))
		var shift int64
		if len(res) > 5 {
			shift = res[5]
		}
		return Reservation{At: l.now().Add(delay), Delay: delay, Cost: cost, month: month, charges: charges, shift: shift}, nil
	case 1:
		l.tooFar.Add(1)
		return Reservation{}, &TooFarError{At: l.now().Add(delay), Ahead: delay, Limit: maxAhead, ByDeadline: byDeadline}
	case 2:
		l.monthly.Add(1)
		budget := 0.0
		if len(res) > 5 {
			budget = milliToPU(res[5])
		}
		return Reservation{}, &MonthlyQuotaError{Month: month, Reset: MonthReset(now), Budget: budget,
			Spent: milliToPU(res[2]), Reserved: milliToPU(res[3]), Need: milliToPU(cost.MilliPU)}
	case 3:
		l.monthly.Add(1)
		return Reservation{}, &MonthlyQuotaError{Month: month, Reset: MonthReset(now), FromServer: true}
	}
	return Reservation{}, fmt.Errorf("quota: reserve script answered code %d", res[0])
}

// Cancel refunds a reservation that was not used (the request was never sent).
// Call it at most once per reservation.
func (l *Limiter) Cancel(ctx context.Context, r Reservation) error {
	if r.charges == nil {
		return errors.New("quota: cancel of a reservation Reserve did not grant")
	}
	deltas := make([]int64, len(r.charges))
	for i, c := range r.charges {
		deltas[i] = -c.inc
	}
	if _, err := l.adjust(ctx, r, deltas, -r.Cost.MilliPU, 0); err != nil {
		return fmt.Errorf("quota: cancel: %w", err)
	}
	l.canceled.Add(1)
	return nil
}

// Settle books what a sent request really cost: every PU policy is credited (or
// charged) the difference between the reservation's estimate and actualMilliPU
// (from X-ProcessingUnits-Spent), and actualMilliPU is added to the month's ledger.
// Call it at most once per reservation.
func (l *Limiter) Settle(ctx context.Context, r Reservation, actualMilliPU int64) error {
	if r.charges == nil {
		return errors.New("quota: settle of a reservation Reserve did not grant")
	}
	if actualMilliPU < 0 {
		return fmt.Errorf("quota: settle: actual cost %d milli-PU is negative", actualMilliPU)
	}
	deltas := make([]int64, len(r.charges))
	for i, c := range r.charges {
		if c.kind == PU {
			deltas[i] = incFor(c.perMilli, actualMilliPU) - c.inc
		}
	}
	if _, err := l.adjust(ctx, r, deltas, -r.Cost.MilliPU, actualMilliPU); err != nil {
		return fmt.Errorf("quota: settle: %w", err)
	}
	l.settled.Add(1)
	return nil
}

func (l *Limiter) adjust(ctx context.Context, r Reservation, deltas []int64, pending, spent int64) (int64, error) {
	keys := []string{l.key(ledgerSuffix(r.month)), l.key(pendingSuffix(r.month))}
	args := []any{l.scriptNow(), pending, spent, ledgerTTL(r.month, l.now()).Milliseconds()}
	for i, c := range r.charges {
		keys = append(keys, c.key)
		args = append(args, deltas[i])
	}
	n, err := settleScript.Run(ctx, l.rdb, keys, args...).Int64()
	if err != nil {
		return 0, l.redisErr(ctx, "settle", err)
	}
	return n, nil
}

// Stats returns the limiter's counters.
func (l *Limiter) Stats() Stats {
	s := Stats{
		Admitted:       l.admitted.Load(),
		TotalWait:      time.Duration(l.waitNanos.Load()),
		TooFar:         l.tooFar.Load(),
		MonthlyRefused: l.monthly.Load(),
		Canceled:       l.canceled.Load(),
		Settled:        l.settled.Load(),
		Forbidden:      l.forbidden.Load(),
		RedisErrors:    l.redisErrors.Load(),
		Resyncs:        l.resyncs.Load(),
		Throttled:      map[string]int64{},
	}
	l.throttledMu.Lock()
	for k, v := range l.throttled {
		s.Throttled[k] = v
	}
	l.throttledMu.Unlock()
	return s
}

// unreachableError is a Redis call that failed for want of a server.
type unreachableError struct {
	msg string
	err error
}

func (e *unreachableError) Error() string        { return e.msg }
func (e *unreachableError) Unwrap() error        { return e.err }
func (e *unreachableError) Is(target error) bool { return target == ErrRedisUnavailable }

// redisErr explains a failed Redis call.
func (l *Limiter) redisErr(ctx context.Context, op string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("quota: %s: %w", op, ctxErr)
	}
	l.redisErrors.Add(1)
	var re redis.Error
	if errors.As(err, &re) {
		return fmt.Errorf("quota: %s: redis answered: %w", op, err)
	}
	return &unreachableError{
		msg: fmt.Sprintf("quota: redis unreachable at %s (%s): %v; refusing to send unlimited — check REDIS_URL and that redis-server runs", redisAddr(l.rdb), op, err),
		err: err,
	}
}

func redisAddr(c redis.UniversalClient) string {
	switch c := c.(type) {
	case *redis.Client:
		return c.Options().Addr
	case *redis.ClusterClient:
		return strings.Join(c.Options().Addrs, ",")
	}
	return "the configured address"
}
