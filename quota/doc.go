// Package quota keeps a whole worker fleet under one Sentinel Hub account's limits:
// one OAuth token shared through Redis (refreshed by exactly one process), and one
// multi-policy limiter (requests and PU per period, PU per month) whose admissions
// are atomic across all policies, paced evenly, and corrected by the server's own
// answers (429, 403, X-ProcessingUnits-Spent) and by the counts the account
// publishes.
//
// # The mirror
//
// For every policy (Kind, Capacity C, Period P) the Limiter keeps one GCRA
// "theoretical arrival time" (TAT, microseconds of the Redis server's TIME) under
// AccountKey(prefix, account, "policy:<kind>:<period>"), e.g. "policy:pu:PT744H".
// With headroom h (Config.Headroom, default 1%) the emission interval is
// per = P / ((1-h) x C) per unit and the burst tolerance tau = (1-h) x C x per:
// the mirror is a bucket of (1-h) x C units refilled at (1-h) x C per P, always
// h x C below the server's. A reservation charging n units gets the slot
// max(now, TAT + n x per - tau) and moves TAT to max(TAT, slot) + n x per, on all
// policies at once or on none (limiter.lua).
//
// # Where the policies come from
//
// The base set is, in this order: Config.Policies (SH_POLICIES) when set
// ("configured"); else the account's contract as the fleet cached it in Redis
// ("account"); else Config.Fallback, default TrialPolicies ("fallback").
// Policies learned from legacy 429 headers merge on top (the stricter wins).
// PolicySource tells which applies and why. The contract
// (AccountAPI.Contract: GET /aux/ratelimit/contract) is fetched by one process for
// the fleet under a Redis lock, stored with its fetch time, and re-fetched every
// Config.ContractRefresh; every Limiter re-reads it with the learned policies in
// one round trip every Config.LearnedRefresh. A failed fetch is remembered
// fleet-wide (for ContractRefresh when the API is unavailable, 30 s otherwise), a
// cached contract is kept for 24 h, and a process enforcing the fallback for a
// known reason logs one warning naming it and SH_POLICIES.
//
// # Live resync
//
// Every Config.ResyncInterval (2 s) one process of the fleet (RunAccountSync, a
// Redis lock with that TTL) reads the units remaining now
// (AccountAPI.Remaining: GET /aux/ratelimit/statistics/tokenCounts) and reconciles
// every policy with a published level in one Lua script (resync.lua). In units of
// the policy, with L_s the server's level:
//
//	mirror level     L_m = (tau - (TAT - now)) / per    (negative when booked ahead)
//	booked ahead     U_f = max(0, TAT - now - tau) / per
//	target           L_t = L_s - h x C - U_f
//	excess           E   = L_m - L_t
//	discrepancy      D   = L_m - L_s
//
// The target keeps our headroom below the server's real level and keeps the slots
// already handed out (the server has not seen them yet). If E > 0 the mirror is
// looser than the server allows and the TAT moves to now + tau - L_t x per. It is
// never loosened below what the server says, except to give back what an earlier
// resync booked as predicted use of others that did not happen (at most what was
// predicted, and never beyond L_t).
//
// The queue shift: slots already handed out (waiters sleeping in Wait) would go
// out as booked even after a correction moved the TAT, onto a server that has
// fewer units than that: at 64 workers about 6 s of queue, which met 15 429s per
// 1,000 requests beside a 25% other client. So a tightening (E > 0) that moves a
// policy's TAT later while slots of it are booked ahead also adds that move to the fleet's
// queue shift ("resync:shift", cumulative us); a reservation records the shift
// when granted and Wait re-reads it when its sleep ends, sleeping on by however
// far the queue moved meanwhile: the whole queue moves, not only its tail. A
// booking of others' predicted use moves only the tail: it is a forecast a later
// resync may give back, and a give-back cannot wake sleeping waiters earlier
// (shifting for bookings too cost a PU-bound fleet of 64 clients 13 points).
//
// Other clients of the same account: with only the fleet sending, D changes
// between two resyncs only by the slow drift of the server refilling h x C per P
// faster than the mirror; what others used since the last resync is therefore
// X = D - D_post, D_post being D right after the last resync's correction. Their
// rate is an exponentially weighted mean of X/Δt with time constant
// ExternalRateWindow (10 s): mean += (1 - e^(-Δt/10 s)) x (X/Δt - mean), and
// rate = max(mean, 0). The mean stays signed: the fleet's own queue growing and
// shrinking between resyncs shows in X both ways, and clamping the mean at 0 after
// every negative sample turned that noise into a phantom other client (up to
// 7.7 PU/s in a PU-bound benchmark). At each resync the predicted use rate x (now + ResyncInterval - booked
// until) is booked ahead (the TAT moves by it x per), so the fleet paces to what
// the other client leaves instead of meeting 429s between resyncs. A server bucket
// within h x C of full hides others' use (it refilled) and makes it harmless: such
// a resync samples X = 0. The state (last resync, D_post, rate, booked until) sits
// next to the TAT in "policy:<kind>:<period>:sync". A steady other client is
// followed within about three windows; it is logged once at Info when it reaches
// 2% of a capacity, and a tightening beyond 5% of a capacity is logged at debug.
//
// Worked example (the numbers of TestResyncTightensToTheServer): pu:100:PT1M at
// h = 0.2, so per = 60 s / 80 = 0.75 s, tau = 60 s, h x C = 20. At t0 the fleet
// reserves 30 PU: TAT = t0 + 22.5 s, L_m = (60 - 22.5) / 0.75 = 50. The server
// says 40 (someone else took 30): L_t = 40 - 20 - 0 = 20, E = 30, so TAT = t0 +
// 60 - 20 x 0.75 = t0 + 45 s (+22.5 s) and D_post = 20 - 40 = -20. Two seconds
// later the server refilled 3.333 and the other client took 5: L_s = 38.333,
// L_m = (60 - 43) / 0.75 = 22.667, D = -15.667, so X = 4.333 (their 5 less the
// 0.667 drift); rate = 0.181 x 4.333 / 2 = 0.393 PU/s, booked for the next 2 s:
// 0.785 PU. E = 22.667 - 18.333 = 4.333 is tightened, the booking added:
// L_m = 17.548, TAT = t0 + 62 - 13.161 = t0 + 48.839 s. With a steady 25% other
// client the fleet settles at the 75% left with no 429
// (TestResyncAbsorbsSteadyExternalUse).
//
// A Retry-After-only 429 (today's service) does not say which policy ran out:
// Observe429 holds the fleet for Retry-After (the hold's extension also moves
// the slots already handed out, through the queue shift, and the TAT of every
// policy with slots booked ahead, so nothing booked before the 429 goes out
// during the hold), and asks for a
// resync at once (at most one per 500 ms fleet-wide): the counts say which policy
// is exhausted. With the legacy headers (X-RateLimit-ViolatedPolicy,
// X-ProcessingUnits-Retry-After) the named policy is learned and its mirror marked
// empty, as before.
//
// # 403 by evidence
//
// A 403 is mostly a permission error. MonthSpent says whether the month's PU are
// really spent: the last snapshot of the monthly PU level (stored by every resync,
// re-read when older than LevelsMaxAge) below the need, our ledger reaching
// Config.MonthlyPU, or an earlier Observe403. Only then should the caller stop the
// fleet with Observe403.
//
// # Defaults
//
//	Config.Prefix           keys.DefaultPrefix     "shfleet"
//	Config.Policies         none: the account's contract, else Fallback
//	Config.Fallback         TrialPolicies          requests:10:PT1M, pu:10:PT1M
//	Config.AccountAPI       nil                    no contract fetch, no resync
//	Config.ContractRefresh  DefaultContractRefresh 5 min
//	Config.ResyncInterval   DefaultResyncInterval  2 s
//	Config.LearnedRefresh   DefaultLearnedRefresh  5 s (learned policies and cached contract)
//	Config.Headroom         DefaultHeadroom        1% (negative: none)
//	Config.MaxAhead         DefaultMaxAhead        20 s
//	Config.DefaultHold      DefaultHold            30 s (429 without retry header)
//	Config.MonthlyPU        0                      no own budget
//	backoff                 BackoffBase 250 ms doubling to BackoffMax 30 s, hold capped at MaxHold 2 min
//	others' rate            ExternalRateWindow     10 s time constant
//	month snapshot          LevelsMaxAge           1 s before MonthSpent re-reads it
//
// Periods are ISO-8601 (ParsePeriod): PT<n>S, PT<n>M, PT<n>H, P<n>D from 1 s to 32
// days; the month is PT744H (= P31D = 31 days), its canonical name.
package quota
