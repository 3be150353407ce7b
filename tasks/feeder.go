package tasks

import (
	"cmp"
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"os"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"shfleet/jobs"
	"shfleet/keys"
	"shfleet/quota"
)

// Defaults of FeederConfig fields left zero.
const (
	// DefaultFeedInterval is the pause between two top-ups of the queue.
	DefaultFeedInterval = 500 * time.Millisecond
	// DefaultLeaseTTL is how long the feeder's leader lease lasts without a
	// renewal: when the leader dies, another worker feeds within about this long.
	DefaultLeaseTTL = 3 * time.Second
	// DefaultFeedHorizon is how much work the window holds: the account's rate
	// times this.
	DefaultFeedHorizon = 45 * time.Second
	// DefaultMaxWindow is the most process tasks the queue holds for all active
	// jobs together (queued, waiting for a retry and running).
	DefaultMaxWindow = 5000
	// DefaultReconcileInterval is how often the leader repairs what a crash can
	// leave behind: PROCESSING jobs missing from the active index, SCHEDULED
	// items whose task was never queued. A new leader does it at once.
	DefaultReconcileInterval = time.Minute
	// DefaultFinishGrace is how long a job may stay ending (every item final,
	// the manifest not yet written) before the feeder queues a finish task: the
	// worker that finished the last item normally ends the job within a second.
	DefaultFinishGrace = 10 * time.Second
)

// ratePeriodMax: policies with a longer period (the monthly PU budget) are
// budgets, not rates, and do not size the window.
const ratePeriodMax = time.Hour

// serversTTL is how long the fleet's concurrency, read from asynq's servers,
// is reused.
const serversTTL = 5 * time.Second

var (
	//go:embed lua/lease.lua
	luaLease string
	//go:embed lua/release.lua
	luaRelease string

	scriptLease   = redis.NewScript(luaLease)
	scriptRelease = redis.NewScript(luaRelease)
)

// FeederConfig configures a [Feeder]. Jobs, Queue and Inspector are required.
type FeederConfig struct {
	// Jobs is the job store; its Redis also holds the leader lease.
	Jobs *jobs.Store
	// Queue enqueues the process tasks.
	Queue *asynq.Client
	// Inspector reads the fleet's servers (their concurrency).
	Inspector *asynq.Inspector
	// Limiter supplies the account's policies that size the window. Default:
	// none, the window is MaxWindow.
	Limiter *quota.Limiter
	// Holder names this feeder in the lease. Default: host:pid:random, so an
	// operator (or a test) can tell which process leads.
	Holder string
	// Interval is the pause between two top-ups. Default DefaultFeedInterval.
	Interval time.Duration
	// LeaseTTL is the leader lease. Default DefaultLeaseTTL.
	LeaseTTL time.Duration
	// Horizon is the seconds of work the window holds. Default DefaultFeedHorizon.
	Horizon time.Duration
	// MinWindow is the smallest window of a job's queue. Default: the
	// concurrency of the fleet's servers that serve the queue (at least 1).
	MinWindow int
	// MaxWindow caps the window of all active jobs together. Default
	// DefaultMaxWindow.
	MaxWindow int
	// ReconcileInterval: see DefaultReconcileInterval.
	ReconcileInterval time.Duration
	// FinishGrace: see DefaultFinishGrace.
	FinishGrace time.Duration
	// Log receives leadership changes and enqueue failures. Default: nothing.
	Log zerolog.Logger
}

func (c FeederConfig) withDefaults() FeederConfig {
	if c.Holder == "" {
		b := make([]byte, 4)
		_, _ = rand.Read(b)
		host, _ := os.Hostname()
		c.Holder = fmt.Sprintf("%s:%d:%s", host, os.Getpid(), hex.EncodeToString(b))
	}
	c.Interval = cmp.Or(c.Interval, DefaultFeedInterval)
	c.LeaseTTL = cmp.Or(c.LeaseTTL, DefaultLeaseTTL)
	c.Horizon = cmp.Or(c.Horizon, DefaultFeedHorizon)
	c.MaxWindow = cmp.Or(c.MaxWindow, DefaultMaxWindow)
	c.ReconcileInterval = cmp.Or(c.ReconcileInterval, DefaultReconcileInterval)
	c.FinishGrace = cmp.Or(c.FinishGrace, DefaultFinishGrace)
	return c
}

func (c FeederConfig) validate() error {
	switch {
	case c.Jobs == nil || c.Jobs.Redis == nil:
		return errors.New("feeder: FeederConfig.Jobs (with its Redis) is required")
	case c.Queue == nil:
		return errors.New("feeder: FeederConfig.Queue is required")
	case c.Inspector == nil:
		return errors.New("feeder: FeederConfig.Inspector is required")
	case c.Interval < 0 || c.LeaseTTL < 0 || c.Horizon < 0 || c.ReconcileInterval < 0 || c.FinishGrace < 0:
		return errors.New("feeder: FeederConfig durations must not be negative")
	case c.LeaseTTL <= c.Interval:
		return fmt.Errorf("feeder: FeederConfig.LeaseTTL (%s) must be longer than Interval (%s), or the leader loses its lease between two renewals", c.LeaseTTL, c.Interval)
	case c.MinWindow < 0 || c.MaxWindow < 0:
		return errors.New("feeder: FeederConfig.MinWindow and MaxWindow must not be negative")
	}
	return nil
}

// Feeder keeps the queue holding a bounded window of process tasks per active
// job, instead of one task per item of the whole job. Every worker runs one;
// one of them, elected through a lease in Redis, feeds: every Interval it lists
// the active jobs ([jobs.Store.ActiveJobs]), computes each one's share of the
// window ([Window], split equally between the jobs that may run), takes the
// missing items from the job ([jobs.Store.Feed]) and enqueues their tasks.
// An item whose enqueue fails goes back ([jobs.Store.Unfeed]); a task id that
// exists already is a task queued before (the same item is never queued
// twice). A paused (OUT_OF_PU), canceled, finished or batch job gets nothing.
type Feeder struct {
	cfg FeederConfig

	mu            sync.Mutex
	leader        bool
	lastReconcile time.Time
	rr            int
	servers       map[string]int // queue -> concurrency
	serversAt     time.Time
	unfed         map[string][]string // job -> items to hand back once Redis answers
}

// NewFeeder checks cfg and returns a feeder; it contacts nothing until Run.
func NewFeeder(cfg FeederConfig) (*Feeder, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Feeder{cfg: cfg, unfed: map[string][]string{}}, nil
}

// LeaseKey is the key of the feeder's leader lease under a key prefix.
func LeaseKey(prefix string) string { return cmp.Or(prefix, keys.DefaultPrefix) + ":feeder:leader" }

// Leader reports whether this feeder held the lease at its last tick.
func (f *Feeder) Leader() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.leader
}

// Run feeds until ctx is done, then drops the lease (when held) so another
// worker takes over at once. Errors of a tick are logged, not returned.
func (f *Feeder) Run(ctx context.Context) error {
	t := time.NewTicker(f.cfg.Interval)
	defer t.Stop()
	defer f.release()
	for {
		if _, err := f.Tick(ctx); err != nil && ctx.Err() == nil {
			f.cfg.Log.Warn().Err(err).Msg("feeder tick failed; trying again")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (f *Feeder) release() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	f.mu.Lock()
	was := f.leader
	f.leader = false
	f.mu.Unlock()
	if was {
		_ = scriptRelease.Run(ctx, f.cfg.Jobs.Redis, []string{LeaseKey(f.cfg.Jobs.Prefix)}, f.cfg.Holder).Err()
	}
}

// Tick takes or renews the lease and, as the leader, tops the window up once.
// It returns how many tasks it enqueued (0 when another feeder leads).
func (f *Feeder) Tick(ctx context.Context) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ok, err := f.lease(ctx)
	if err != nil {
		return 0, err
	}
	if !ok {
		if f.leader {
			f.cfg.Log.Warn().Str("holder", f.cfg.Holder).Msg("feeder lost its lease; another worker feeds")
		}
		f.leader = false
		return 0, nil
	}
	if !f.leader {
		f.cfg.Log.Info().Str("holder", f.cfg.Holder).Msg("feeder leads: this worker tops up the queue")
		f.leader = true
		f.lastReconcile = time.Time{}
	}
	f.handBack(ctx)
	if time.Since(f.lastReconcile) >= f.cfg.ReconcileInterval {
		if err := f.reconcile(ctx); err != nil {
			return 0, err
		}
		f.lastReconcile = time.Now()
	}
	return f.topUp(ctx)
}

// lease takes or renews the leader lease and reports whether this feeder
// holds it for the next LeaseTTL.
func (f *Feeder) lease(ctx context.Context) (bool, error) {
	ok, err := scriptLease.Run(ctx, f.cfg.Jobs.Redis, []string{LeaseKey(f.cfg.Jobs.Prefix)}, f.cfg.Holder, f.cfg.LeaseTTL.Milliseconds()).Int()
	if err != nil {
		return false, fmt.Errorf("feeder lease: %w", err)
	}
	return ok == 1, nil
}

// feedable is an active job that may get tasks now.
type feedable struct {
	job    jobs.Job
	window int
}

// topUp gives every job that may run its share of the window.
func (f *Feeder) topUp(ctx context.Context) (int, error) {
	ids, err := f.cfg.Jobs.ActiveJobs(ctx)
	if err != nil {
		return 0, err
	}
	var run []feedable
	for _, id := range ids {
		job, err := f.cfg.Jobs.Get(ctx, id)
		if err == nil && job.Status == jobs.StatusProcessing && job.Ending != "" {
			// Every item is final: nothing to feed; end it if its last worker
			// could not.
			if err := f.finishLate(ctx, job); err != nil {
				return 0, err
			}
			continue
		}
		if errors.Is(err, jobs.ErrNotFound) || err == nil && (job.Status != jobs.StatusProcessing || job.Spec.Engine == jobs.EngineBatch) {
			// Ended, canceled, deleted, or fed by its own poll task (batch).
			if err := f.cfg.Jobs.Deactivate(ctx, id); err != nil {
				return 0, err
			}
			continue
		}
		if err != nil {
			return 0, err
		}
		if job.StoppedReason != "" {
			continue // paused (OUT_OF_PU): no new work until `enqueue resume`
		}
		run = append(run, feedable{job: job})
	}
	if len(run) == 0 {
		return 0, nil
	}
	policies := f.policies(ctx)
	for i := range run {
		p := run[i].job.Progress
		perItem := int64(0)
		if p.Total > 0 {
			perItem = p.EstimatedMilliPU / int64(p.Total)
		}
		run[i].window = Window(policies, perItem, f.cfg.Horizon, f.minWindow(ctx, run[i].job), f.cfg.MaxWindow)
	}
	// Equal shares; the job served first rotates so that rounding never favours
	// one job for good.
	fed := 0
	f.rr++
	for k := range run {
		r := run[(k+f.rr)%len(run)]
		share := max(1, r.window/len(run))
		n := share - r.job.Progress.Scheduled - r.job.Progress.Processing
		if n <= 0 {
			continue
		}
		// A slow tick must not outlive the lease: another feeder may lead by
		// now, and two feeding at once would overfill the window.
		if ok, err := f.lease(ctx); err != nil || !ok {
			if err == nil {
				f.leader = false
				f.cfg.Log.Warn().Str("holder", f.cfg.Holder).Msg("feeder lost its lease during a tick; another worker feeds")
			}
			return fed, err
		}
		m, err := f.feed(ctx, r.job, n)
		fed += m
		if err != nil {
			return fed, err
		}
	}
	return fed, nil
}

// feed takes n items of a job and enqueues their tasks; items whose enqueue
// failed go back.
func (f *Feeder) feed(ctx context.Context, job jobs.Job, n int) (int, error) {
	items, err := f.cfg.Jobs.Feed(ctx, job.ID, n)
	if err != nil {
		return 0, err
	}
	enqueued := 0
	var back []string
	var cause error
	for _, it := range items {
		if cause == nil {
			cause = f.enqueue(ctx, job, it.ID)
		}
		if cause != nil {
			back = append(back, it.ID)
			continue
		}
		enqueued++
	}
	if len(back) > 0 {
		f.unfed[job.ID] = append(f.unfed[job.ID], back...)
		f.handBack(ctx)
		f.cfg.Log.Warn().Err(cause).Str("job", job.ID).Int("items", len(back)).Msg("could not enqueue process tasks; the items go back to the job")
	}
	return enqueued, cause
}

// enqueue queues an item's process task; a task of the same id (queued before,
// e.g. by a leader that died before it could record it) counts as queued.
func (f *Feeder) enqueue(ctx context.Context, job jobs.Job, item string) error {
	task, err := NewProcessTask(f.cfg.Jobs.Prefix, job, item)
	if err != nil {
		return err
	}
	if _, err := f.cfg.Queue.EnqueueContext(ctx, task); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return fmt.Errorf("enqueue item %s of job %s: %w", item, job.ID, err)
	}
	return nil
}

// finishLate queues the finish task of a job that has been ending for longer
// than FinishGrace (the worker that finished its last item died or could not
// write the manifest). The task id makes it one at a time.
func (f *Feeder) finishLate(ctx context.Context, job jobs.Job) error {
	if job.EndingAt.IsZero() || time.Since(job.EndingAt) < f.cfg.FinishGrace {
		return nil
	}
	task, err := NewFinishTask(f.cfg.Jobs.Prefix, job)
	if err != nil {
		return err
	}
	_, err = f.cfg.Queue.EnqueueContext(ctx, task)
	if errors.Is(err, asynq.ErrTaskIDConflict) {
		return nil // queued already (or archived after its retries: asynqmon shows why)
	}
	if err != nil {
		return fmt.Errorf("enqueue the finish task of job %s: %w", job.ID, err)
	}
	f.cfg.Log.Warn().Str("job", job.ID).Str("ending", string(job.Ending)).Msg("job still ending after its last item: a finish task writes its manifest")
	return nil
}

// handBack returns items whose enqueue failed to their job, now or at a later
// tick when Redis does not answer.
func (f *Feeder) handBack(ctx context.Context) {
	ctx = context.WithoutCancel(ctx)
	for id, items := range f.unfed {
		if _, err := f.cfg.Jobs.Unfeed(ctx, id, items...); err != nil && !errors.Is(err, jobs.ErrNotFound) {
			continue
		}
		delete(f.unfed, id)
	}
}

// reconcile repairs what a crash can leave: a PROCESSING job missing from the
// active index (its indexing failed after the status change), and SCHEDULED
// items without a task (a leader killed between Feed and its enqueue). Both
// are cheap: the first reads the job index (one hash per job, not per item),
// the second pages through the job's status bytes for the SCHEDULED items, at
// most the window; re-enqueueing an item
// whose task exists is refused by asynq (same task id).
func (f *Feeder) reconcile(ctx context.Context) error {
	all, err := f.cfg.Jobs.List(ctx)
	if err != nil {
		return err
	}
	for _, job := range all {
		if job.Status != jobs.StatusProcessing || job.Spec.Engine == jobs.EngineBatch {
			continue
		}
		if err := f.cfg.Jobs.Activate(ctx, job.ID); err != nil {
			return err
		}
		if job.Progress.Scheduled == 0 {
			continue
		}
		// Paged through the status bytes: only the SCHEDULED items (at most
		// the window) are read.
		for it, err := range f.cfg.Jobs.AllItems(ctx, job.ID, jobs.ItemScheduled) {
			if err != nil {
				return err
			}
			if err := f.enqueue(ctx, job, it.ID); err != nil {
				return err
			}
		}
	}
	return nil
}

// policies are the account's policies as the limiter enforces them; none
// without a limiter or when they cannot be read (the window is then the cap).
func (f *Feeder) policies(ctx context.Context) []quota.Policy {
	if f.cfg.Limiter == nil {
		return nil
	}
	ps, err := f.cfg.Limiter.Policies(ctx)
	if err != nil {
		f.cfg.Log.Debug().Err(err).Msg("feeder: policies unavailable; the window is the cap")
		return nil
	}
	return ps
}

// minWindow is the job queue's floor: MinWindow, else the concurrency of the
// fleet's servers that take tasks of the queue, so that no worker idles for
// want of a task.
func (f *Feeder) minWindow(ctx context.Context, job jobs.Job) int {
	if f.cfg.MinWindow > 0 {
		return f.cfg.MinWindow
	}
	if f.servers == nil || time.Since(f.serversAt) > serversTTL {
		servers, err := f.cfg.Inspector.Servers()
		if err == nil {
			m := map[string]int{}
			for _, s := range servers {
				for q := range s.Queues {
					m[q] += s.Concurrency
				}
			}
			f.servers, f.serversAt = m, time.Now()
		}
	}
	return max(1, f.servers[QueueName(f.cfg.Jobs.Prefix, ProcessQueue(job.Spec))])
}

// Window is how many process tasks a job's queue should hold: the items the
// account's rate policies let through in horizon, at least minWindow and at
// most maxWindow (when > 0). A request policy admits Capacity/Period items per
// second; a PU policy Capacity*1000/perItemMilliPU per Period (perItemMilliPU
// is the job's estimate per item; ignored when 0). Policies whose period is
// longer than an hour (the monthly budget) are budgets, not rates, and do not
// count. Without any rate policy the window is maxWindow (minWindow when that
// is 0).
func Window(policies []quota.Policy, perItemMilliPU int64, horizon time.Duration, minWindow, maxWindow int) int {
	rate := math.Inf(1) // items per second
	for _, p := range policies {
		if p.Period <= 0 || p.Period > ratePeriodMax || p.Capacity <= 0 {
			continue
		}
		per := p.Capacity / p.Period.Seconds()
		if p.Kind == quota.PU {
			if perItemMilliPU <= 0 {
				continue
			}
			per = per * 1000 / float64(perItemMilliPU)
		}
		rate = min(rate, per)
	}
	w := maxWindow
	if !math.IsInf(rate, 1) {
		w = int(math.Ceil(rate * horizon.Seconds()))
	}
	w = max(w, minWindow)
	if maxWindow > 0 {
		w = min(w, maxWindow)
	}
	return w
}
