package ops

import (
	"sync"
	"time"
)

// SeriesMinutes is how many minutes a Series keeps.
const SeriesMinutes = 60

// Point is one minute of a Series.
type Point struct {
	// Minute is the start of the minute (UTC).
	Minute time.Time `json:"minute"`
	// Requests is the number of requests admitted in the minute.
	Requests int64 `json:"requests"`
	// PU is the PU charged for items finished in the minute.
	PU float64 `json:"pu"`
}

// Series counts this process's requests and PU per minute for the last
// SeriesMinutes minutes in a ring buffer, and keeps what it has not yet added
// to the fleet's counters in Redis (see Flush and FleetPoints). Safe for
// concurrent use.
type Series struct {
	now func() time.Time

	mu      sync.Mutex
	buckets [SeriesMinutes]bucket
	// pending holds, per unix minute, the counts not flushed to Redis yet.
	pending map[int64]bucket
}

type bucket struct {
	minute   int64 // unix minute the bucket holds
	requests int64
	milliPU  int64
}

// NewSeries returns an empty series; now is its clock (nil: time.Now).
func NewSeries(now func() time.Time) *Series {
	if now == nil {
		now = time.Now
	}
	return &Series{now: now, pending: map[int64]bucket{}}
}

// slot returns the bucket of minute m, emptied when it held an older minute.
// The caller holds mu.
func (s *Series) slot(m int64) *bucket {
	b := &s.buckets[m%SeriesMinutes]
	if b.minute != m {
		*b = bucket{minute: m}
	}
	return b
}

func unixMinute(t time.Time) int64 { return t.Unix() / 60 }

// AddRequest counts one admitted request now.
func (s *Series) AddRequest() { s.add(1, 0) }

// AddPU adds pu processing units spent now.
func (s *Series) AddPU(pu float64) { s.add(0, int64(pu*1000+0.5)) }

func (s *Series) add(requests, milliPU int64) {
	m := unixMinute(s.now())
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.slot(m)
	b.requests += requests
	b.milliPU += milliPU
	p := s.pending[m]
	p.minute = m
	p.requests += requests
	p.milliPU += milliPU
	s.pending[m] = p
	if len(s.pending) > fleetPendingMinutes {
		s.prunePending(m)
	}
}

// prunePending drops pending minutes whose Redis keys would have expired
// already (nobody flushes, or Redis has been down for FleetSeriesTTL). The
// caller holds mu.
func (s *Series) prunePending(now int64) {
	for m := range s.pending {
		if m <= now-int64(FleetSeriesTTL/time.Minute) {
			delete(s.pending, m)
		}
	}
}

// Points returns the last SeriesMinutes minutes, oldest first; the last point is
// the current, unfinished minute. Minutes without events are zero.
func (s *Series) Points() []Point {
	now := unixMinute(s.now())
	out := make([]Point, SeriesMinutes)
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range out {
		m := now - SeriesMinutes + 1 + int64(i)
		out[i].Minute = time.Unix(m*60, 0).UTC()
		if b := s.buckets[m%SeriesMinutes]; b.minute == m {
			out[i].Requests = b.requests
			out[i].PU = float64(b.milliPU) / 1000
		}
	}
	return out
}
