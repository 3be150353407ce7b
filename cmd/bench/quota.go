package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/time/rate"

	"shfleet/quota"
	"shfleet/quota/sentinelquota"
	"shfleet/redisserver"
	"shfleet/sentinel"
	"shfleet/sentinel/sentineltest"
)

// Defaults of Options fields left zero.
const (
	// DefaultDuration is how long each row runs.
	DefaultDuration = 60 * time.Second
	// QuickDuration is the duration of -quick runs.
	QuickDuration = 15 * time.Second
	// DefaultLatency is the simulator's latency before every answer: one client
	// cannot fill a high capacity alone, as on the real service.
	DefaultLatency = 20 * time.Millisecond
	// DefaultJitter is the simulator's random extra latency (uniform 0..jitter).
	DefaultJitter = 10 * time.Millisecond
	// DefaultTokenRPM is the simulator's token endpoint limit, per minute.
	DefaultTokenRPM = 60
	// DefaultWarmupFraction of the duration is never measured.
	DefaultWarmupFraction = 0.1
	// DrainLevel: the initial burst counts as spent once the simulator's bucket,
	// replayed from its record of answered requests, first falls below this fraction
	// of the capacity (or below the largest request), or at the first 429. It is
	// above the limiter's 1% headroom, which the fleet leaves in the bucket. The
	// measured window never starts before that.
	DrainLevel = 0.03
	// maxRecorded bounds the simulator's request record (a "none" row at W=64 sends
	// about a thousand requests per second).
	maxRecorded = 4 << 20
)

// Mode is how the clients of a row share the account.
type Mode string

const (
	// ModeShfleet: every client has its own quota.Limiter and SharedTokenSource on
	// the shared Redis, as separate worker processes would, set up as a worker is
	// by default: no configured policies, Config.AccountAPI =
	// sentinelquota.Account(client.RateLimit), SyncContract before the first
	// request and RunAccountSync in a goroutine (the account's contract, resynced
	// every 2 s with the units remaining).
	ModeShfleet Mode = "shfleet"
	// ModeNoSync: as ModeShfleet but with Config.Policies = the account's full
	// contract (SH_POLICIES) and no AccountAPI: no contract fetch, no resync, only
	// the fleet's own mirror and the 429s.
	ModeNoSync Mode = "shfleet-nosync"
	// ModeLocal: every client paces itself at capacity/W with its own
	// golang.org/x/time/rate limiter and fetches its own token.
	ModeLocal Mode = "local"
	// ModeNone: every client sends as fast as it can with its own token and waits
	// Retry-After after a 429.
	ModeNone Mode = "none"
)

// Options configure RunQuota. The zero value runs every scenario with the defaults.
type Options struct {
	// Duration of every row. Default DefaultDuration.
	Duration time.Duration
	// Scenarios to run by name (see ScenarioNames). Default: all.
	Scenarios []string
	// Ws, when set, replaces the client counts of every scenario (for each of the
	// scenario's modes).
	Ws []int
	// Modes, when set, keeps only the rows of these modes.
	Modes []Mode
	// Latency and Jitter of the simulator. Default DefaultLatency, DefaultJitter;
	// negative means none.
	Latency, Jitter time.Duration
	// TokenRPM is the simulator's token endpoint limit per minute. Default
	// DefaultTokenRPM; negative means unlimited.
	TokenRPM int
	// Warmup is the fraction of Duration never measured. Default
	// DefaultWarmupFraction.
	Warmup float64
}

func (o Options) withDefaults() Options {
	if o.Duration == 0 {
		o.Duration = DefaultDuration
	}
	o.Latency = orDefault(o.Latency, DefaultLatency)
	o.Jitter = orDefault(o.Jitter, DefaultJitter)
	switch {
	case o.TokenRPM == 0:
		o.TokenRPM = DefaultTokenRPM
	case o.TokenRPM < 0:
		o.TokenRPM = 0
	}
	if o.Warmup == 0 {
		o.Warmup = DefaultWarmupFraction
	}
	return o
}

func orDefault(d, def time.Duration) time.Duration {
	switch {
	case d == 0:
		return def
	case d < 0:
		return 0
	}
	return d
}

// allModes are the modes in the order -modes lists them.
var allModes = []Mode{ModeShfleet, ModeNoSync, ModeLocal, ModeNone}

func modeList() string {
	s := make([]string, len(allModes))
	for i, m := range allModes {
		s[i] = string(m)
	}
	return strings.Join(s, ", ")
}

// fleetMode reports whether m runs quota.Limiters (shfleet or shfleet-nosync).
func fleetMode(m Mode) bool { return m == ModeShfleet || m == ModeNoSync }

// RowSpec is one row of a scenario: a mode and a number of clients.
type RowSpec struct {
	Mode Mode
	W    int
}

// Scenario is an account (its policies and token lifetime), a workload and the
// rows to run against it.
type Scenario struct {
	// Name selects the scenario on the command line.
	Name string
	// Policies are the account's limits, configured in the simulator and in every
	// Limiter.
	Policies []quota.Policy
	// Workload picks each request.
	Workload Workload
	// TokenTTL is the simulator's token lifetime (0: sentineltest.DefaultTokenTTL);
	// RefreshMargin the shared token source's (0: its default).
	TokenTTL, RefreshMargin time.Duration
	// Headers are the simulator's rate-limit headers; the zero value is
	// sentineltest.HeadersRetryAfterOnly (today's service).
	Headers sentineltest.HeaderMode
	// ExternalLoad (0..1) is the share of every rate policy's refill another client
	// of the same account takes (sentineltest.Config.ExternalLoad); the rows are
	// measured against what it leaves, (1-ExternalLoad) x capacity.
	ExternalLoad float64
	// Rows are the modes and client counts run.
	Rows []RowSpec
}

// Workload picks the next request of a client.
type Workload struct {
	// Name describes the requests in the report.
	Name string
	// Next returns a request.
	Next func(r *rand.Rand) sentinel.ProcessRequest
}

const (
	evalRGB = `//VERSION=3
function setup() { return { input: ["B02", "B03", "B04"], output: { bands: 3 } }; }
function evaluatePixel(s) { return [s.B04, s.B03, s.B02]; }`
	evalRGBFloat = `//VERSION=3
function setup() { return { input: ["B02", "B03", "B04"], output: { bands: 3, sampleType: "FLOAT32" } }; }
function evaluatePixel(s) { return [s.B04, s.B03, s.B02]; }`
)

// processRequest is a 3-band request of w x h px, float32 output when float.
func processRequest(r *rand.Rand, w, h int, float bool) sentinel.ProcessRequest {
	lon, lat := 10+r.Float64()*5, 45+r.Float64()*2
	eval := evalRGB
	if float {
		eval = evalRGBFloat
	}
	return sentinel.ProcessRequest{
		Input: sentinel.ProcessInput{
			Bounds: sentinel.Bounds{BBox: []float64{lon, lat, lon + 0.05, lat + 0.05}, Properties: sentinel.BoundsProperties{CRS: sentinel.CRSWGS84}},
			Data: []sentinel.InputData{{Type: "sentinel-2-l2a", DataFilter: &sentinel.DataFilter{TimeRange: &sentinel.TimeRange{
				From: time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2025, 6, 30, 0, 0, 0, 0, time.UTC),
			}}}},
		},
		Output:     sentinel.ProcessOutput{Width: w, Height: h},
		Evalscript: eval,
	}
}

var (
	// smallWorkload: 256x256 px, 3 bands: 0.25 PU, request-bound.
	smallWorkload = Workload{Name: "256x256 3-band (0.25 PU)", Next: func(r *rand.Rand) sentinel.ProcessRequest {
		return processRequest(r, 256, 256, false)
	}}
	// halfWorkload: 512x256 px, 3 bands: exactly 0.5 PU, so 600 requests and 300
	// PU per minute bind at the same time.
	halfWorkload = Workload{Name: "512x256 3-band (0.5 PU)", Next: func(r *rand.Rand) sentinel.ProcessRequest {
		return processRequest(r, 512, 256, false)
	}}
	// mixedWorkload: square outputs of 256..1024 px, 8-bit or float32: 0.25..8 PU,
	// about 2.8 PU on average.
	mixedWorkload = Workload{Name: "256..1024 px, 3-band, 8-bit or float32 (0.25..8 PU)", Next: func(r *rand.Rand) sentinel.ProcessRequest {
		side := []int{256, 512, 768, 1024}[r.IntN(4)]
		return processRequest(r, side, side, r.IntN(2) == 1)
	}}
)

func mustPolicies(s ...string) []quota.Policy {
	ps, err := quota.ParsePolicies(s)
	if err != nil {
		panic(err)
	}
	return ps
}

// Scenarios returns the benchmark's scenarios in the order they run.
func Scenarios() []Scenario {
	fleet := func(ws ...int) []RowSpec {
		rows := make([]RowSpec, len(ws))
		for i, w := range ws {
			rows[i] = RowSpec{ModeShfleet, w}
		}
		return rows
	}
	return []Scenario{
		{
			Name: "requests", Policies: mustPolicies("requests:1200:PT1M"), Workload: smallWorkload,
			Rows: append(fleet(1, 8, 64, 256),
				RowSpec{ModeLocal, 8}, RowSpec{ModeLocal, 64}, RowSpec{ModeNone, 8}, RowSpec{ModeNone, 64}),
		},
		{Name: "pu", Policies: mustPolicies("pu:600:PT1M", "requests:1200:PT1M"), Workload: mixedWorkload, Rows: fleet(8, 64)},
		{Name: "both", Policies: mustPolicies("requests:600:PT1M", "pu:300:PT1M"), Workload: halfWorkload, Rows: fleet(64)},
		{
			Name: "ttl", Policies: mustPolicies("requests:1200:PT1M"), Workload: smallWorkload,
			TokenTTL: 20 * time.Second, RefreshMargin: 7 * time.Second, Rows: fleet(64),
		},
		// legacy: the 2019 set-up for comparison, the simulator sending the legacy
		// headers and every client configured with the policies.
		{
			Name: "legacy", Policies: mustPolicies("requests:1200:PT1M"), Workload: smallWorkload,
			Headers: sentineltest.HeadersLegacy, Rows: []RowSpec{{ModeNoSync, 64}},
		},
		// external: another client of the account takes 25% of the request policy;
		// the fleet should reach the 75% it leaves (450/min) without 429s.
		{
			Name: "external", Policies: mustPolicies("requests:600:PT1M"), Workload: smallWorkload, ExternalLoad: 0.25,
			Rows: []RowSpec{{ModeShfleet, 8}, {ModeShfleet, 64}, {ModeNoSync, 8}, {ModeNoSync, 64}},
		},
	}
}

// ScenarioNames lists the names Options.Scenarios accepts.
func ScenarioNames() []string {
	var names []string
	for _, s := range Scenarios() {
		names = append(names, s.Name)
	}
	return names
}

// selectScenarios applies Options.Scenarios and Options.Ws.
func selectScenarios(o Options) ([]Scenario, error) {
	all := Scenarios()
	var out []Scenario
	if len(o.Scenarios) == 0 {
		out = all
	}
	for _, name := range o.Scenarios {
		name = strings.TrimSpace(name)
		i := slices.IndexFunc(all, func(s Scenario) bool { return s.Name == name })
		if i < 0 {
			return nil, fmt.Errorf("unknown scenario %q; choose from %s", name, strings.Join(ScenarioNames(), ", "))
		}
		out = append(out, all[i])
	}
	if len(o.Modes) > 0 {
		for _, m := range o.Modes {
			if !slices.Contains(allModes, m) {
				return nil, fmt.Errorf("unknown mode %q; choose from %s", m, modeList())
			}
		}
		var kept []Scenario
		for _, sc := range out {
			sc.Rows = slices.DeleteFunc(slices.Clone(sc.Rows), func(r RowSpec) bool { return !slices.Contains(o.Modes, r.Mode) })
			if len(sc.Rows) > 0 {
				kept = append(kept, sc)
			}
		}
		out = kept
	}
	if len(o.Ws) > 0 {
		for i := range out {
			var modes []Mode
			for _, r := range out[i].Rows {
				if !slices.Contains(modes, r.Mode) {
					modes = append(modes, r.Mode)
				}
			}
			out[i].Rows = nil
			for _, m := range modes {
				for _, w := range o.Ws {
					out[i].Rows = append(out[i].Rows, RowSpec{m, w})
				}
			}
		}
	}
	return out, nil
}

// Result is one row of the table.
type Result struct {
	Scenario string
	Mode     Mode
	W        int
	// Headers and ExternalLoad are the scenario's simulator behaviour.
	Headers      sentineltest.HeaderMode
	ExternalLoad float64
	// Binding is the policy with the highest utilization in the measured window;
	// Achieved its utilization: 1 = all the policy leaves us, (1-ExternalLoad) x
	// capacity per period.
	Binding  quota.Policy
	Achieved float64
	// Utilization of every policy in the measured window, by policy text.
	Utilization map[string]float64
	// StockUsed is, per policy, what the bucket's level dropped over the window:
	// initial burst used in it, not counted as achieved rate.
	StockUsed map[string]float64
	// OK counts 200 answers of the whole run; RateLimited the 429s the simulator
	// answered; TokenRequests the calls of its token endpoint.
	OK, RateLimited, TokenRequests int
	// AuxRequests counts the simulator's rate-limit endpoint calls (contract and
	// remaining units); ExternalUnits what the other client took, by policy key.
	AuxRequests   int
	ExternalUnits map[string]float64
	// Sources counts the clients by the policy source SyncContract reported at
	// their start (shfleet rows), e.g. "account": 63, "fallback": 1.
	Sources map[quota.PolicySourceKind]int
	// ExpectedTokens is what a fleet sharing one token should need: one per token
	// lifetime minus refresh margin (shfleet rows only).
	ExpectedTokens int
	// WaitP50, WaitP99 are percentiles of the time spent in Limiter.Wait by the
	// calls that admitted a request (shfleet rows only).
	WaitP50, WaitP99 time.Duration
	// HandBacks counts *quota.TooFarError answers (the task would go back to the
	// queue); Errors other failed attempts, FirstError the first of them.
	HandBacks, Errors int64
	FirstError        string
	// Duration is the run; Measured the window the rates are measured over.
	Duration, Measured time.Duration
	// RateLimitedAt are the times of the first 429s, from the start of the run;
	// LastRateLimitedAt the time of the last one.
	RateLimitedAt     []time.Duration
	LastRateLimitedAt time.Duration
	// Drained is false when the initial burst was never spent: the clients never
	// reached the limit and the rate is not a steady-state number.
	Drained bool
}

// RunQuota runs the chosen scenarios one row after the other and writes the table
// to stdout (progress goes to progress).
func RunQuota(ctx context.Context, o Options, stdout, progress io.Writer) error {
	o = o.withDefaults()
	scenarios, err := selectScenarios(o)
	if err != nil {
		return err
	}
	srv, err := redisserver.Start(redisserver.Options{Args: []string{"--maxclients", "20000"}})
	if err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	defer srv.Stop()
	var results []Result
	for _, sc := range scenarios {
		for _, spec := range sc.Rows {
			fmt.Fprintf(progress, "%s  %s %s W=%d for %s ...\n", time.Now().UTC().Format("15:04:05"), sc.Name, spec.Mode, spec.W, o.Duration)
			res, err := runRow(ctx, o, srv, sc, spec)
			if err != nil {
				return fmt.Errorf("scenario %s, %s W=%d: %w", sc.Name, spec.Mode, spec.W, err)
			}
			fmt.Fprintf(progress, "          achieved %.1f%% of what %s leaves, %d OK, %d x 429, %d token requests\n",
				100*res.Achieved, res.Binding, res.OK, res.RateLimited, res.TokenRequests)
			results = append(results, res)
		}
	}
	return WriteTable(stdout, results)
}

// clientStats are one client's counters.
type clientStats struct {
	handBacks, errs atomic.Int64
	waits           []time.Duration
	firstErr        atomic.Pointer[string]
	// source is what SyncContract reported at the start (ModeShfleet).
	source quota.PolicySourceKind
}

func (s *clientStats) fail(err error) {
	s.errs.Add(1)
	msg := err.Error()
	s.firstErr.CompareAndSwap(nil, &msg)
}

// runRow runs one row against a fresh simulator and a fresh key prefix.
func runRow(ctx context.Context, o Options, srv *redisserver.Server, sc Scenario, spec RowSpec) (Result, error) {
	var simPolicies []sentineltest.Policy
	for _, p := range sc.Policies {
		simPolicies = append(simPolicies, sentineltest.Policy{Kind: string(p.Kind), Capacity: p.Capacity, Period: p.Period})
	}
	simStart := time.Now() // no later than the buckets' start: they are full at creation
	sim := sentineltest.NewServer(sentineltest.Config{
		Policies:               simPolicies,
		HeaderMode:             sc.Headers,
		ExternalLoad:           sc.ExternalLoad,
		TokenTTL:               sc.TokenTTL,
		TokenRequestsPerMinute: o.TokenRPM,
		Faults:                 sentineltest.Faults{Latency: o.Latency, LatencyJitter: o.Jitter, Seed: int64(spec.W)},
		MaxRecordedRequests:    maxRecorded,
	})
	defer sim.Close()
	cfg := sim.ClientConfig()
	prefix := fmt.Sprintf("bench-%s-%s-%d-%d", sc.Name, spec.Mode, spec.W, time.Now().UnixNano())

	stats := make([]*clientStats, spec.W)
	var closers []func()
	defer func() {
		for _, c := range closers {
			c()
		}
	}()
	runs := make([]func(ctx, sendCtx context.Context), spec.W)
	// The account syncs run for the whole row, as a worker's run for its process:
	// they stop once every client has stopped sending.
	syncCtx, stopSync := context.WithCancel(ctx)
	var syncWG sync.WaitGroup
	defer func() { stopSync(); syncWG.Wait() }()
	for i := range spec.W {
		st := &clientStats{}
		stats[i] = st
		rng := rand.New(rand.NewPCG(uint64(i+1), uint64(spec.W)))
		ccfg := cfg
		ccfg.HTTPClient = sentinel.DefaultHTTPClient() // its own connections, like a process
		closers = append(closers, ccfg.HTTPClient.CloseIdleConnections)
		switch spec.Mode {
		case ModeShfleet, ModeNoSync:
			rdb := srv.Client()
			closers = append(closers, func() { _ = rdb.Close() })
			c, err := newFleetClient(rdb, ccfg, prefix, sc, spec.Mode == ModeShfleet)
			if err != nil {
				return Result{}, err
			}
			runs[i] = func(ctx, sendCtx context.Context) {
				if c.sync {
					c.startSync(sendCtx, syncCtx, &syncWG, st)
				}
				c.run(ctx, sendCtx, sc.Workload, rng, st)
			}
		case ModeLocal, ModeNone:
			c := newSoloClient(ctx, ccfg, sc, spec)
			runs[i] = func(ctx, sendCtx context.Context) { c.run(ctx, sendCtx, sc.Workload, rng, st) }
		default:
			return Result{}, fmt.Errorf("unknown mode %q", spec.Mode)
		}
	}

	start := time.Now()
	end := start.Add(o.Duration)
	// sendCtx stops new requests at the end; requests in flight finish with ctx.
	sendCtx, cancel := context.WithDeadline(ctx, end)
	defer cancel()
	var wg sync.WaitGroup
	for _, run := range runs {
		wg.Go(func() { run(ctx, sendCtx) })
	}
	wg.Wait()
	stopSync()
	syncWG.Wait()
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}

	res := measure(sim.Requests(), sc.Policies, sc.ExternalLoad, simStart, start.Add(time.Duration(o.Warmup*float64(o.Duration))), end)
	st := sim.Stats()
	res.Scenario, res.Mode, res.W, res.Duration = sc.Name, spec.Mode, spec.W, o.Duration
	res.Headers, res.ExternalLoad = sc.Headers, sc.ExternalLoad
	res.AuxRequests, res.ExternalUnits = st.AuxRequests, st.ExternalUnits
	for _, r := range sim.Requests() {
		if r.Status != 429 {
			continue
		}
		if len(res.RateLimitedAt) < 5 {
			res.RateLimitedAt = append(res.RateLimitedAt, r.Time.Sub(start))
		}
		res.LastRateLimitedAt = max(res.LastRateLimitedAt, r.Time.Sub(start))
	}
	res.OK = st.RequestsByStatus[200]
	res.RateLimited = st.RateLimited
	res.TokenRequests = st.TokenRequests
	var waits []time.Duration
	for _, s := range stats {
		res.HandBacks += s.handBacks.Load()
		res.Errors += s.errs.Load()
		if p := s.firstErr.Load(); p != nil && res.FirstError == "" {
			res.FirstError = *p
		}
		waits = append(waits, s.waits...)
		if s.source != "" {
			if res.Sources == nil {
				res.Sources = map[quota.PolicySourceKind]int{}
			}
			res.Sources[s.source]++
		}
	}
	if fleetMode(spec.Mode) {
		ttl := cmp0(sc.TokenTTL, sentineltest.DefaultTokenTTL)
		margin := min(cmp0(sc.RefreshMargin, quota.DefaultTokenRefreshMargin), ttl/2)
		res.ExpectedTokens = 1 + int(o.Duration/(ttl-margin))
		res.WaitP50, res.WaitP99 = percentile(waits, 0.50), percentile(waits, 0.99)
	}
	return res, nil
}

func cmp0(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// measure computes the utilization of every policy from the simulator's record.
// The window starts at the later of warmEnd and the moment the initial burst was
// spent, and ends at end. The burst counts as spent at the first 429, or when a
// policy's bucket, replayed from the record, first falls below DrainLevel of its
// capacity or below the largest request seen (it could not admit that one). A
// policy's utilization is the share of the window's refill left to us ((1-share)
// x capacity x window / period, share being the other client's part of every
// refill, as the simulator's ExternalLoad takes it) that was used: the units
// served in the window minus what the bucket's level dropped over it (stock left
// from the initial burst, if any).
func measure(recs []sentineltest.RecordedRequest, policies []quota.Policy, share float64, simStart, warmEnd, end time.Time) Result {
	var ok []sentineltest.RecordedRequest
	var drained time.Time
	for _, r := range recs {
		switch r.Status {
		case 200:
			ok = append(ok, r)
		case 429:
			if drained.IsZero() || r.Time.Before(drained) {
				drained = r.Time
			}
		}
	}
	sort.SliceStable(ok, func(i, j int) bool { return ok[i].Time.Before(ok[j].Time) })
	units := func(p quota.Policy, r sentineltest.RecordedRequest) float64 {
		if p.Kind == quota.PU {
			return r.PU
		}
		return 1
	}
	// replay runs p's bucket over the record up to t (or, when low > 0, until it
	// first falls below low) and returns its level and the time it stopped.
	replay := func(p quota.Policy, t time.Time, low float64) (float64, time.Time) {
		perNs := (1 - share) * p.Capacity / float64(p.Period)
		level, last := p.Capacity, simStart
		for _, r := range ok {
			if r.Time.After(t) {
				break
			}
			if r.Time.After(last) {
				level = math.Min(p.Capacity, level+float64(r.Time.Sub(last))*perNs)
				last = r.Time
			}
			level -= units(p, r)
			if low > 0 && level < low {
				return level, r.Time
			}
		}
		if t.After(last) {
			level = math.Min(p.Capacity, level+float64(t.Sub(last))*perNs)
		}
		return level, time.Time{}
	}
	for _, p := range policies {
		low := DrainLevel * p.Capacity
		for _, r := range ok {
			low = max(low, units(p, r))
		}
		if _, at := replay(p, end, low); !at.IsZero() && (drained.IsZero() || at.Before(drained)) {
			drained = at
		}
	}
	res := Result{Drained: !drained.IsZero(), Utilization: map[string]float64{}, StockUsed: map[string]float64{}}
	from := warmEnd
	if drained.After(from) {
		from = drained
	}
	if !from.Before(end) {
		return res
	}
	res.Measured = end.Sub(from)
	for _, p := range policies {
		sum := 0.0
		for _, r := range ok {
			if !r.Time.Before(from) && !r.Time.After(end) {
				sum += units(p, r)
			}
		}
		l0, _ := replay(p, from, 0)
		l1, _ := replay(p, end, 0)
		stock := max(0, l0-l1)
		u := (sum - stock) / ((1 - share) * p.Capacity * float64(res.Measured) / float64(p.Period))
		res.Utilization[p.String()] = u
		if stock > 0 {
			res.StockUsed[p.String()] = stock
		}
		if u > res.Achieved || res.Binding.Capacity == 0 {
			res.Achieved, res.Binding = u, p
		}
	}
	return res
}

// percentile of ds (nearest rank); 0 when empty.
func percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

// fleetClient is one shfleet worker: its own Redis client, Limiter, shared token
// source and sentinel client.
type fleetClient struct {
	lim    *quota.Limiter
	client *sentinel.Client
	// sync: the Limiter reads the account (contract and remaining units) and the
	// client runs its RunAccountSync, as a worker does.
	sync bool
}

// newFleetClient builds a worker's Limiter: with sync, as a worker by default
// (AccountAPI through the client's RateLimit service with the shared token, no
// configured policies); without, configured with the scenario's policies and no
// AccountAPI.
func newFleetClient(rdb redis.UniversalClient, cfg sentinel.Config, prefix string, sc Scenario, sync bool) (*fleetClient, error) {
	ts, err := quota.NewSharedTokenSource(quota.TokenConfig{
		Redis: rdb, ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret, Prefix: prefix,
		Upstream: sentinelquota.Upstream(cfg), RefreshMargin: sc.RefreshMargin,
	})
	if err != nil {
		return nil, err
	}
	client := sentinel.NewClient(cfg, ts)
	qc := quota.Config{Redis: rdb, Account: cfg.ClientID, Prefix: prefix}
	if sync {
		qc.AccountAPI = sentinelquota.Account(client.RateLimit)
	} else {
		qc.Policies = sc.Policies
	}
	lim, err := quota.NewLimiter(qc)
	if err != nil {
		return nil, err
	}
	return &fleetClient{lim: lim, client: client, sync: sync}, nil
}

// startSync does what worker.Worker.Start does before serving: it reads the
// account's policies (SyncContract) and starts RunAccountSync, which runs until
// syncCtx ends (wg counts it).
func (c *fleetClient) startSync(ctx, syncCtx context.Context, wg *sync.WaitGroup, st *clientStats) {
	src, err := c.lim.SyncContract(ctx)
	if err != nil {
		st.fail(err)
	}
	st.source = src.Kind
	wg.Go(func() {
		if err := c.lim.RunAccountSync(syncCtx); err != nil && syncCtx.Err() == nil {
			st.fail(err)
		}
	})
}

// run loops until sendCtx ends: reserve, send, settle; after a 429, tell the
// limiter and retry; a slot beyond MaxAhead is handed back (the client sleeps
// until the slot is about half MaxAhead away, as a re-queued task would come back).
func (c *fleetClient) run(ctx, sendCtx context.Context, wl Workload, rng *rand.Rand, st *clientStats) {
	for sendCtx.Err() == nil {
		req := wl.Next(rng)
		cost := quota.Cost{Requests: 1, MilliPU: sentinel.MilliPU(sentinel.EstimateRequestPU(req, 1))}
		for sendCtx.Err() == nil {
			t0 := time.Now()
			r, err := c.lim.Wait(sendCtx, cost)
			if err != nil {
				var far *quota.TooFarError
				switch {
				case sendCtx.Err() != nil || errors.Is(err, context.DeadlineExceeded):
					return
				case errors.As(err, &far):
					st.handBacks.Add(1)
					sleep(sendCtx, max(far.Ahead-quota.DefaultMaxAhead/2, 100*time.Millisecond)+jitter(rng, 500*time.Millisecond))
				default:
					st.fail(err)
					sleep(sendCtx, 100*time.Millisecond)
				}
				continue
			}
			st.waits = append(st.waits, time.Since(t0))
			resp, err := c.client.Process.Do(ctx, req)
			if err != nil {
				var rl *sentinel.RateLimitError
				if errors.As(err, &rl) {
					if err := c.lim.Observe429(ctx, sentinelquota.RateLimit(rl)); err != nil {
						st.fail(err)
					}
					continue
				}
				st.fail(err)
				_ = c.lim.Cancel(ctx, r)
				sleep(sendCtx, 100*time.Millisecond)
				continue
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Close()
			spent := cost.MilliPU
			if resp.HasPUSpent {
				spent = sentinel.MilliPU(resp.PUSpent)
			}
			if err := c.lim.Settle(ctx, r, spent); err != nil {
				st.fail(err)
			}
			if err := c.lim.ObserveSuccess(ctx); err != nil {
				st.fail(err)
			}
			break
		}
	}
}

// soloClient is a baseline worker: its own token, and either its own pacing at
// capacity/W per policy (local) or none.
type soloClient struct {
	client   *sentinel.Client
	limiters []*rate.Limiter
	kinds    []quota.PolicyKind
}

func newSoloClient(ctx context.Context, cfg sentinel.Config, sc Scenario, spec RowSpec) *soloClient {
	c := &soloClient{client: sentinel.NewClient(cfg, sentinel.NewTokenSource(ctx, cfg))}
	if spec.Mode == ModeLocal {
		for _, p := range sc.Policies {
			// Units: requests, or milli-PU with a burst of the largest request (8 PU).
			perSec := p.Capacity / p.Period.Seconds() / float64(spec.W)
			burst := 1
			if p.Kind == quota.PU {
				perSec *= 1000
				burst = 8000
			}
			c.limiters = append(c.limiters, rate.NewLimiter(rate.Limit(perSec), burst))
			c.kinds = append(c.kinds, p.Kind)
		}
	}
	return c
}

func (c *soloClient) run(ctx, sendCtx context.Context, wl Workload, rng *rand.Rand, st *clientStats) {
	for sendCtx.Err() == nil {
		req := wl.Next(rng)
		milliPU := int(sentinel.MilliPU(sentinel.EstimateRequestPU(req, 1)))
		for sendCtx.Err() == nil {
			for i, l := range c.limiters {
				n := 1
				if c.kinds[i] == quota.PU {
					n = min(milliPU, l.Burst())
				}
				if err := l.WaitN(sendCtx, n); err != nil {
					return
				}
			}
			resp, err := c.client.Process.Do(ctx, req)
			if err != nil {
				var rl *sentinel.RateLimitError
				var te *sentinel.TokenError
				switch {
				case errors.As(err, &rl):
					sleep(sendCtx, cmp0(rl.Wait(), time.Second))
				case errors.As(err, &te):
					sleep(sendCtx, cmp0(te.RetryAfter, time.Second))
				default:
					st.fail(err)
					sleep(sendCtx, 100*time.Millisecond)
				}
				continue
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Close()
			break
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

func jitter(r *rand.Rand, d time.Duration) time.Duration {
	return time.Duration(r.Int64N(int64(d) + 1))
}

// headerName is the -headers name of shsim for a header mode.
func headerName(h sentineltest.HeaderMode) string {
	switch h {
	case sentineltest.HeadersRetryAfterOnly:
		return "retry-after"
	case sentineltest.HeadersLegacy:
		return "legacy"
	case sentineltest.HeadersNone:
		return "none"
	}
	return fmt.Sprint(int(h))
}

// per1000 is n per 1,000 of total, 0 when total is 0.
func per1000(n, total int) float64 {
	if total == 0 {
		return 0
	}
	return 1000 * float64(n) / float64(total)
}

// WriteTable writes results as a Markdown table. "available" is what the policy
// leaves us: its capacity less the other client's share; "429s / 1k" is per
// 1,000 process requests sent (answered 200 or 429).
func WriteTable(w io.Writer, results []Result) error {
	var b strings.Builder
	b.WriteString("| scenario | mode | headers | other client | policy (binding) | W | achieved / available | requests OK | 429s | 429s / 1k | token requests | p50 wait | p99 wait | duration (measured) | notes |\n")
	b.WriteString("|---|---|---|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|\n")
	for _, r := range results {
		p50, p99 := "–", "–"
		tokens := fmt.Sprint(r.TokenRequests)
		if fleetMode(r.Mode) {
			p50, p99 = fmtDur(r.WaitP50), fmtDur(r.WaitP99)
			tokens += fmt.Sprintf(" (expect %d)", r.ExpectedTokens)
		}
		var notes []string
		if !r.Drained {
			notes = append(notes, "initial burst never spent (the bucket never emptied): the rate is the share of the refill used, not a steady state at the limit")
		}
		var others []string
		for _, k := range slices.Sorted(maps.Keys(r.Utilization)) {
			if k != r.Binding.String() {
				others = append(others, fmt.Sprintf("%s %.1f%%", k, 100*r.Utilization[k]))
			}
		}
		if u := r.StockUsed[r.Binding.String()]; u >= 0.01 {
			notes = append(notes, fmt.Sprintf("%.3g units of initial burst used in the window, not counted", u))
		}
		if len(others) > 0 {
			notes = append(notes, "also "+strings.Join(others, ", "))
		}
		if r.Mode == ModeShfleet && (len(r.Sources) != 1 || r.Sources[quota.SourceAccount] == 0) {
			var src []string
			for _, k := range slices.Sorted(maps.Keys(r.Sources)) {
				src = append(src, fmt.Sprintf("%s x%d", k, r.Sources[k]))
			}
			notes = append(notes, "policy source at start: "+strings.Join(src, ", "))
		}
		if fleetMode(r.Mode) && len(r.RateLimitedAt) > 0 {
			var at []string
			for _, d := range r.RateLimitedAt {
				at = append(at, fmtDur(d))
			}
			note := "first 429s at " + strings.Join(at, ", ")
			if r.RateLimited > len(r.RateLimitedAt) {
				note += ", last at " + fmtDur(r.LastRateLimitedAt)
			}
			notes = append(notes, note+" after start")
		}
		if r.ExternalLoad > 0 {
			var took []string
			for _, k := range slices.Sorted(maps.Keys(r.ExternalUnits)) {
				took = append(took, fmt.Sprintf("%.0f %s", r.ExternalUnits[k], k))
			}
			notes = append(notes, "the other client took "+strings.Join(took, ", "))
		}
		if r.HandBacks > 0 {
			notes = append(notes, fmt.Sprintf("%d hand-backs (slot > MaxAhead)", r.HandBacks))
		}
		if r.Errors > 0 {
			notes = append(notes, fmt.Sprintf("%d errors, first: %s", r.Errors, r.FirstError))
		}
		other := "–"
		if r.ExternalLoad > 0 {
			other = fmt.Sprintf("%.0f%%", 100*r.ExternalLoad)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %d | %.1f%% | %d | %d | %.2f | %s | %s | %s | %s (%s) | %s |\n",
			r.Scenario, r.Mode, headerName(r.Headers), other, r.Binding, r.W, 100*r.Achieved, r.OK, r.RateLimited,
			per1000(r.RateLimited, r.OK+r.RateLimited), tokens, p50, p99,
			fmtDur(r.Duration), fmtDur(r.Measured), strings.Join(notes, "; "))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// fmtDur prints a duration with three significant digits: 512µs, 12.3ms, 4.56s.
func fmtDur(d time.Duration) string {
	switch {
	case d == 0:
		return "0"
	case d < time.Millisecond:
		return d.Round(time.Microsecond).String()
	case d < time.Second:
		return d.Round(100 * time.Microsecond).String()
	case d < time.Minute:
		return d.Round(10 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}
