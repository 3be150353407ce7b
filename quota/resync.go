package quota

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Resync constants (see the package documentation for the algorithm).
const (
	// ExternalRateWindow is the time constant of the estimate of what the account's
	// other clients use (an exponentially weighted mean of their units per second):
	// a steady other client is followed within about three windows.
	ExternalRateWindow = 10 * time.Second
	// externalDetected: others' use is reported (one Info line) once their rate
	// reaches 2% of a policy's capacity per period, and forgotten below 0.5%.
	externalDetected  = 0.02
	externalForgotten = 0.005
	// discrepancyLogged: a resync that finds the mirror looser than the server by
	// more than 5% of a capacity logs it at debug level.
	discrepancyLogged = 0.05
	// LevelsMaxAge: MonthSpent re-reads the account's remaining units when the
	// last snapshot is older than this. A fleet can spend a small month's last
	// PU within a second or two (seen in the chaos suite: 5 PU in 2 s), so a
	// 403 is judged on counts at most a second old; a run of permission 403s
	// then costs at most about one read per second.
	LevelsMaxAge = time.Second
	// syncStateMemory: a policy's sync state (last resync, others' rate) is
	// forgotten after this long without a resync.
	syncStateMemory = 10 * time.Minute
	// levelsMemory: the last Remaining snapshot is kept this long.
	levelsMemory = time.Hour
	// maxSampleGap: a resync longer than this after the previous one gives no
	// sample of others' use (too much may have refilled meanwhile).
	maxSampleGap = time.Minute
)

var (
	//go:embed resync.lua
	resyncLua    string
	resyncScript = redis.NewScript(clockLua + resyncLua)
)

// ResyncResult is what one reconciliation found and did.
type ResyncResult struct {
	// At is the time of the reconciliation (local clock).
	At time.Time
	// Policies has one entry per enforced policy the server published a level for.
	Policies []PolicySync
	// Unmatched are published levels no enforced policy has (kept in the snapshot
	// for MonthSpent and the status).
	Unmatched []Level
	// Shifted is how far every slot already handed out moved later (the largest
	// TAT move of a policy with slots booked ahead); Limiter.Wait applies it.
	Shifted time.Duration
}

// PolicySync is the reconciliation of one policy; every amount is in the policy's
// units (requests, or PU).
type PolicySync struct {
	// Policy is the enforced policy.
	Policy Policy
	// Server is the server's level L_s (units remaining now).
	Server float64
	// Mirror is the mirror's level L_m before the reconciliation; negative when
	// slots are booked ahead.
	Mirror float64
	// Excess is L_m - L_t: positive when the mirror was looser than the server
	// allows, and then it was tightened by that much.
	Excess float64
	// External is others' use since the previous resync (an estimate), valid when
	// HasExternal.
	External    float64
	HasExternal bool
	// Rate is the estimate of others' use, units per second.
	Rate float64
	// Booked is the predicted use of others booked ahead now.
	Booked float64
	// Returned is what an earlier prediction booked too much, given back now.
	Returned float64
	// Moved is how far the TAT moved (positive: later; admissions slow down).
	Moved time.Duration
}

// Resync reads the units the server says remain (Config.AccountAPI's Remaining)
// and reconciles every enforced policy with a published level, in one Lua script
// (resync.lua): the mirror is tightened to the server's level less the headroom
// and the slots booked ahead, others' use is estimated and its prediction booked
// ahead for the next interval, and an earlier over-prediction is given back. It
// also stores the snapshot MonthSpent reads.
//
// Resync does not take the fleet's lock: RunAccountSync is what keeps the fleet
// at one resync per interval. Call Resync directly in tests and tools.
func (l *Limiter) Resync(ctx context.Context) (ResyncResult, error) {
	if l.cfg.AccountAPI == nil {
		return ResyncResult{}, errors.New("quota: resync: Config.AccountAPI is nil; nothing to read the account's remaining units from")
	}
	spent, err := l.monthSpentMilli(ctx)
	if err != nil {
		return ResyncResult{}, err
	}
	levels, err := l.cfg.AccountAPI.Remaining(ctx)
	if err != nil {
		return ResyncResult{}, fmt.Errorf("quota: resync: read the account's remaining units: %w", err)
	}
	return l.reconcile(ctx, levels, spent)
}

// monthSpentMilli reads the fleet's settled milli-PU of the month. Read before
// the counts, it lets MonthSpent subtract what the fleet spent after them.
func (l *Limiter) monthSpentMilli(ctx context.Context) (int64, error) {
	v, err := l.rdb.Get(ctx, l.key(ledgerSuffix(monthOf(l.now())))).Int64()
	if err != nil && !errors.Is(err, redis.Nil) {
		return 0, l.redisErr(ctx, "read ledger", err)
	}
	return v, nil
}

// reconcile applies levels (read when the fleet's ledger stood at spentMilli).
func (l *Limiter) reconcile(ctx context.Context, levels []Level, spentMilli int64) (ResyncResult, error) {
	set, err := l.policies(ctx)
	if err != nil {
		return ResyncResult{}, err
	}
	byID := map[string]Level{}
	var order []string
	for _, lv := range levels {
		if (lv.Kind != Requests && lv.Kind != PU) || math.IsNaN(lv.Remaining) || math.IsInf(lv.Remaining, 0) {
			continue // not a level this limiter can use
		}
		if _, err := ParsePeriod(PeriodName(lv.Period)); err != nil {
			continue
		}
		id := describeLevel(lv.Kind, lv.Period)
		if _, dup := byID[id]; !dup {
			order = append(order, id)
		}
		byID[id] = lv
	}
	at := l.now()
	keys := []string{l.key(levelsSuffix)}
	args := []any{l.scriptNow(), at.UnixMilli(), l.headroom, l.cfg.ResyncInterval.Microseconds(),
		ExternalRateWindow.Microseconds(), maxSampleGap.Microseconds(), levelsMemory.Milliseconds(),
		syncStateMemory.Milliseconds(), externalDetected, externalForgotten, len(order)}
	for _, id := range order {
		args = append(args, id, strconv.FormatFloat(byID[id].Remaining, 'g', -1, 64))
	}
	// The fleet's ledger when the counts were read, kept with them (no ":" in
	// the name, so it is never taken for a level).
	args[10] = len(order) + 1
	args = append(args, "ledger", strconv.FormatInt(spentMilli, 10))
	res := ResyncResult{At: at}
	var matched []limit
	used := map[string]bool{}
	for _, lm := range set.limits {
		lv, ok := byID[lm.id()]
		if !ok {
			continue
		}
		used[lm.id()] = true
		matched = append(matched, lm)
		keys = append(keys, lm.key, lm.key+":sync")
		args = append(args, lm.tau, lm.perMilli*1000, lm.Capacity, lv.Remaining, lm.Period.Microseconds())
	}
	for _, id := range order {
		if !used[id] {
			res.Unmatched = append(res.Unmatched, byID[id])
		}
	}
	keys = append(keys, l.key(shiftSuffix))
	out, err := resyncScript.Run(ctx, l.rdb, keys, args...).StringSlice()
	if err != nil {
		return ResyncResult{}, l.redisErr(ctx, "resync", err)
	}
	if len(out) != 2+8*len(matched) {
		return ResyncResult{}, fmt.Errorf("quota: resync script answered %d values; want %d", len(out), 2+8*len(matched))
	}
	l.resyncs.Add(1)
	num := func(s string) float64 { v, _ := strconv.ParseFloat(s, 64); return v }
	res.Shifted = time.Duration(num(out[len(out)-1])) * time.Microsecond
	for i, lm := range matched {
		o := out[1+8*i:]
		ps := PolicySync{Policy: lm.Policy, Server: byID[lm.id()].Remaining, Mirror: num(o[0]), Excess: num(o[1]),
			External: num(o[2]), HasExternal: o[2] != "", Rate: num(o[3]), Booked: num(o[4]), Returned: num(o[5]),
			Moved: time.Duration(num(o[6])) * time.Microsecond}
		res.Policies = append(res.Policies, ps)
		if ps.Excess > discrepancyLogged*lm.Capacity {
			l.log.Debug().Str("policy", lm.Policy.String()).Float64("server", ps.Server).Float64("mirror", ps.Mirror).
				Float64("excess", ps.Excess).Dur("moved", ps.Moved).
				Msg("resync: the server has fewer units than the mirror; mirror tightened")
		}
		switch o[7] {
		case "1":
			l.log.Info().Str("policy", lm.Policy.String()).Float64("others_per_period", ps.Rate*lm.Period.Seconds()).
				Msg("another client of the account uses this policy; the fleet now leaves it room (" +
					fmtUnits(ps.Rate*lm.Period.Seconds()) + " " + string(lm.Kind) + " per " + PeriodName(lm.Period) + ")")
		case "2":
			l.log.Info().Str("policy", lm.Policy.String()).Msg("the account's other client stopped using this policy; the fleet may use all of it again")
		}
	}
	return res, nil
}
