package ops

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"shfleet/keys"

	"github.com/redis/go-redis/v9"
)

// The fleet's per-minute counters in Redis: every process adds its Series'
// counts to one hash per minute, so every worker's job page charts the same
// fleet-wide numbers.
const (
	// FleetSeriesTTL is how long a minute's hash lives after its last write.
	FleetSeriesTTL = 2 * time.Hour
	// FleetFlushInterval is how often RunFleetFlush adds the local counts to
	// Redis (one pipeline of HINCRBY and EXPIRE per flush).
	FleetFlushInterval = time.Second
	// fleetPendingMinutes bounds the pending minutes kept when no flush runs.
	fleetPendingMinutes = 2*int(FleetSeriesTTL/time.Minute) + 1
)

// FleetSeriesKey is the hash of one minute's fleet counters:
// "<prefix>:fleet:minute:<unix minute>" with fields "requests" (admitted
// requests) and "mpu" (milli-PU charged). prefix "" is keys.DefaultPrefix; a
// trailing ':' is dropped, as jobs.Store does.
func FleetSeriesKey(prefix string, minute time.Time) string {
	return cmp.Or(strings.TrimSuffix(prefix, ":"), keys.DefaultPrefix) + ":fleet:minute:" + strconv.FormatInt(unixMinute(minute), 10)
}

// Flush adds the counts gathered since the last flush to the fleet's counters
// in Redis, in one pipeline: per minute with counts, HINCRBY of requests and
// mpu and an EXPIRE of FleetSeriesTTL. When Redis fails the counts stay
// pending for the next flush (minutes older than FleetSeriesTTL are dropped).
func (s *Series) Flush(ctx context.Context, rdb redis.Cmdable, prefix string) error {
	s.mu.Lock()
	pending := s.pending
	s.pending = map[int64]bucket{}
	s.mu.Unlock()
	if len(pending) == 0 {
		return nil
	}
	minutes := slices.Sorted(maps.Keys(pending))
	_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, m := range minutes {
			b := pending[m]
			key := FleetSeriesKey(prefix, time.Unix(m*60, 0))
			if b.requests != 0 {
				p.HIncrBy(ctx, key, "requests", b.requests)
			}
			if b.milliPU != 0 {
				p.HIncrBy(ctx, key, "mpu", b.milliPU)
			}
			p.Expire(ctx, key, FleetSeriesTTL)
		}
		return nil
	})
	if err != nil {
		// Nothing of a failed pipeline is known to have been applied as a
		// whole; keep it all for the next flush (a partly applied pipeline
		// counts twice what it applied: rare, and only on a dying connection).
		s.mu.Lock()
		for m, b := range pending {
			p := s.pending[m]
			p.minute, p.requests, p.milliPU = m, p.requests+b.requests, p.milliPU+b.milliPU
			s.pending[m] = p
		}
		s.prunePending(unixMinute(s.now()))
		s.mu.Unlock()
		return fmt.Errorf("fleet counters: add this process's counts to Redis: %w", err)
	}
	return nil
}

// RunFleetFlush flushes s to Redis every interval (0: FleetFlushInterval)
// for the life of a worker process (cmd/worker runs it beside the worker, with
// or without an ops server, so every worker's counts reach the fleet's charts)
// until ctx is done, then once more with a short timeout of its own, so a
// worker that stops adds its last second. Failed flushes are retried on the
// next tick; onErr (may be nil) hears of each.
func (s *Series) RunFleetFlush(ctx context.Context, rdb redis.Cmdable, prefix string, interval time.Duration, onErr func(error)) {
	if interval <= 0 {
		interval = FleetFlushInterval
	}
	report := func(err error) {
		if err != nil && onErr != nil {
			onErr(err)
		}
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			report(s.Flush(fctx, rdb, prefix))
			cancel()
			return
		case <-t.C:
			report(s.Flush(ctx, rdb, prefix))
		}
	}
}

// FleetPoints reads the fleet's counters of the SeriesMinutes minutes up to
// now, oldest first (one pipeline of HMGET); the last point is the current,
// unfinished minute. Minutes without counts are zero.
func FleetPoints(ctx context.Context, rdb redis.Cmdable, prefix string, now time.Time) ([]Point, error) {
	last := unixMinute(now)
	out := make([]Point, SeriesMinutes)
	cmds := make([]*redis.SliceCmd, SeriesMinutes)
	_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range out {
			out[i].Minute = time.Unix((last-SeriesMinutes+1+int64(i))*60, 0).UTC()
			cmds[i] = p.HMGet(ctx, FleetSeriesKey(prefix, out[i].Minute), "requests", "mpu")
		}
		return nil
	})
	if err != nil {
		return out, fmt.Errorf("fleet counters: read the last %d minutes: %w", SeriesMinutes, err)
	}
	for i, c := range cmds {
		v := c.Val()
		if len(v) != 2 {
			continue
		}
		if s, ok := v[0].(string); ok {
			out[i].Requests, _ = strconv.ParseInt(s, 10, 64)
		}
		if s, ok := v[1].(string); ok {
			mpu, _ := strconv.ParseInt(s, 10, 64)
			out[i].PU = float64(mpu) / 1000
		}
	}
	return out, nil
}
