package ops_test

import (
	"context"
	"net"
	"net/http/httptest"
	"reflect"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"shfleet/internal/fleettest"
	"shfleet/internal/redistest"
	"shfleet/jobs"
	"shfleet/ops"
	"shfleet/sentinel/sentineltest"
	"shfleet/worker"
)

// TestFleetSeriesTwoProcesses: two processes' series flush into one Redis and
// two ops handlers over it chart the same sums. Counts by hand: at 10:00
// process 1 admits 3 requests and spends 1.5 PU, process 2 admits 2 and spends
// 0.25: the fleet's 10:00 is 5 requests, 1.75 PU; at 10:01 process 2 admits 1.
func TestFleetSeriesTwoProcesses(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	rdb := rs.Client()
	defer rdb.Close()
	prefix := redistest.Prefix(t)
	ctx := context.Background()

	now := time.Date(2026, 11, 23, 10, 0, 30, 0, time.UTC)
	clock := func() time.Time { return now }
	s1, s2 := ops.NewSeries(clock), ops.NewSeries(clock)
	for range 3 {
		s1.AddRequest()
	}
	s1.AddPU(1.5)
	s2.AddRequest()
	s2.AddRequest()
	s2.AddPU(0.25)
	if err := s1.Flush(ctx, rdb, prefix); err != nil {
		t.Fatal(err)
	}
	// Process 2's first flush fails (its Redis is unreachable); its counts stay
	// pending and arrive once with the next flush.
	dead := redis.NewClient(&redis.Options{Addr: deadAddr(t), MaxRetries: -1, DialTimeout: time.Second})
	defer dead.Close()
	if err := s2.Flush(ctx, dead, prefix); err == nil {
		t.Fatal("flush to an unreachable Redis: no error")
	}
	now = now.Add(35 * time.Second) // 10:01:05
	s2.AddRequest()
	if err := s2.Flush(ctx, rdb, prefix); err != nil {
		t.Fatal(err)
	}
	// A flush with nothing new adds nothing.
	if err := s1.Flush(ctx, rdb, prefix); err != nil {
		t.Fatal(err)
	}
	key := ops.FleetSeriesKey(prefix, now.Add(-time.Minute))
	if ttl := rdb.TTL(ctx, key).Val(); ttl <= 0 || ttl > ops.FleetSeriesTTL {
		t.Errorf("%s expires in %v, want within %v", key, ttl, ops.FleetSeriesTTL)
	}

	var snaps [2]ops.Snapshot
	for i := range snaps {
		h, err := ops.NewHandler(ops.Config{Redis: rdb, Prefix: prefix, Now: clock})
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		srv := httptest.NewServer(h)
		defer srv.Close()
		getJSON(t, srv.URL, "/jobs.json", &snaps[i])
	}
	if !reflect.DeepEqual(snaps[0].Series, snaps[1].Series) {
		t.Fatalf("the two pages chart different fleet series")
	}
	pts := snaps[0].Series
	if len(pts) != ops.SeriesMinutes || len(snaps[0].Errors) != 0 {
		t.Fatalf("%d points, errors %v", len(pts), snaps[0].Errors)
	}
	last, prev := pts[len(pts)-1], pts[len(pts)-2]
	want := []ops.Point{
		{Minute: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC), Requests: 5, PU: 1.75},
		{Minute: time.Date(2026, 11, 23, 10, 1, 0, 0, time.UTC), Requests: 1},
	}
	if !reflect.DeepEqual([]ops.Point{prev, last}, want) {
		t.Errorf("last two minutes %+v, want %+v", []ops.Point{prev, last}, want)
	}
	var older int64
	for _, p := range pts[:len(pts)-2] {
		older += p.Requests
	}
	if older != 0 {
		t.Errorf("%d requests before 10:00, want 0", older)
	}
}

// TestFleetTotalsOnTwoWorkersPages runs a job on two in-process workers, each
// with its own metrics (as two processes have), each serving its own ops
// page: after the job both pages' /jobs.json chart the same fleet series,
// which holds both workers' requests and exactly the PU the job store
// charged.
func TestFleetTotalsOnTwoWorkersPages(t *testing.T) {
	t.Parallel()
	f := fleettest.Start(t, fleettest.Options{Workers: 0, Sim: sentineltest.Config{Faults: sentineltest.Faults{Latency: 20 * time.Millisecond}}})
	var (
		ms    [2]*ops.Metrics
		bases [2]string
	)
	for i := range ms {
		ms[i] = ops.NewMetrics()
		w, err := worker.New(worker.Config{Redis: f.Client(t), Sentinel: f.ClientConfig(), Concurrency: 2,
			ShutdownTimeout: 5 * time.Second, Hooks: ms[i].Hooks()})
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Check(context.Background(), true); err != nil {
			t.Fatal(err)
		}
		if err := w.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(w.Shutdown)
		h, err := ops.NewHandler(ops.Config{Redis: f.Client(t), Metrics: ms[i],
			Sources: ops.Sources{Limiter: w.Limiter, Tokens: w.Tokens, Jobs: w.Jobs, Inspector: w.Inspector}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Close() })
		srv := httptest.NewServer(h)
		t.Cleanup(srv.Close)
		bases[i] = srv.URL
		startFlush(t, ms[i], f.Client(t))
	}
	spec, tiles := fleettest.SampleSpec(t, "file://"+t.TempDir())
	sub, err := f.Ctl.Submit(context.Background(), spec, tiles)
	if err != nil {
		t.Fatal(err)
	}
	job := f.WaitFinal(t, sub.ID, time.Minute)
	if job.Status != jobs.StatusDone {
		t.Fatalf("job %s: %+v", job.Status, job.Progress)
	}
	for _, m := range ms {
		if err := m.Series().Flush(context.Background(), f.Client(t), ""); err != nil {
			t.Fatal(err)
		}
	}
	var local [2]int64
	for i, m := range ms {
		for _, p := range m.Series().Points() {
			local[i] += p.Requests
		}
	}
	var snaps [2]ops.Snapshot
	for i := range snaps {
		getJSON(t, bases[i], "/jobs.json", &snaps[i])
	}
	// The two pages read Redis at slightly different times; the job is over,
	// so only a minute boundary between the reads could shift the window.
	sum := func(s ops.Snapshot) (reqs int64, mpu int64) {
		for _, p := range s.Series {
			reqs += p.Requests
			mpu += int64(p.PU*1000 + 0.5)
		}
		return reqs, mpu
	}
	r0, pu0 := sum(snaps[0])
	r1, pu1 := sum(snaps[1])
	if r0 != r1 || pu0 != pu1 {
		t.Fatalf("worker 1's page: %d requests, %d mPU; worker 2's: %d, %d", r0, pu0, r1, pu1)
	}
	if local[0] == 0 || local[1] == 0 || r0 != local[0]+local[1] {
		t.Errorf("fleet requests %d; the workers admitted %d and %d", r0, local[0], local[1])
	}
	if r0 < int64(job.Progress.Total) || pu0 != job.Progress.SpentMilliPU {
		t.Errorf("fleet series: %d requests, %d mPU; the job had %d items and cost %d mPU", r0, pu0, job.Progress.Total, job.Progress.SpentMilliPU)
	}
	t.Logf("fleet: %d requests (%d + %d), %.3f PU on both pages", r0, local[0], local[1], float64(pu0)/1000)
}

// deadAddr is a local address nothing listens on.
func deadAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}
