package tasks

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"shfleet/jobs"
	"shfleet/keys"
	"shfleet/output"
	"shfleet/quota"
	"shfleet/quota/sentinelquota"
	"shfleet/sentinel"
)

// Defaults of Handlers fields left zero.
const (
	// DefaultCatalogCacheTTL is how long identical catalog searches are served from
	// Redis.
	DefaultCatalogCacheTTL = 24 * time.Hour
	// DefaultRateLimitRetries is how often a handler re-admits a request after a 429
	// within one run, before handing the task back to the queue.
	DefaultRateLimitRetries = 5
)

// Hooks let the worker count what happens (Prometheus metrics); every field may be
// nil.
type Hooks struct {
	// ItemFinished is called when an item becomes DONE or FAILED.
	ItemFinished func(job string, status jobs.ItemStatus, pu float64)
	// RateLimited is called for every 429, with the violated policy ("" unknown).
	RateLimited func(policy string)
	// CatalogRequest is called for every catalog page requested (cached: false) or
	// served from the cache (cached: true).
	CatalogRequest func(cached bool)
	// Admitted is called after every quota admission with its wait.
	Admitted func(wait time.Duration)
	// BatchCreated is called when a batch job's request was created, before
	// its id is saved; an error stands for a failed save (tests use it to
	// simulate a worker dying between the two).
	BatchCreated func(job, request string) error
}

// Handlers run the catalog and process tasks of a worker process; make them
// with NewHandlers. Each worker process has its own Handlers (own Redis client,
// limiter and token source); Redis keeps them in step. Redis, Jobs, Limiter,
// Client and Queue are required; every other field has a default.
type Handlers struct {
	// Redis is the shared Redis (catalog cache).
	Redis redis.UniversalClient
	// Prefix starts the catalog cache keys. Default keys.DefaultPrefix.
	Prefix string
	// Jobs is the job store.
	Jobs *jobs.Store
	// Limiter admits every Sentinel Hub request (catalog and process).
	Limiter *quota.Limiter
	// Client talks to Sentinel Hub with the fleet's shared token.
	Client *sentinel.Client
	// Queue enqueues process tasks when an analysis is done.
	Queue *asynq.Client
	// Inspector pauses the process queues when the month's PU are spent.
	Inspector *asynq.Inspector
	// Outputs opens result stores by URL; default NewOutputs().
	Outputs *Outputs
	// Log receives one event per item and per 429 burst. Default: nothing.
	Log zerolog.Logger
	// Hooks count events for metrics.
	Hooks Hooks
	// CatalogCacheTTL is how long catalog results are cached. Default
	// DefaultCatalogCacheTTL.
	CatalogCacheTTL time.Duration
	// RateLimitRetries bounds re-admissions after 429s within one run. Default
	// DefaultRateLimitRetries.
	RateLimitRetries int
	// BatchPoll is the pause between two polls of a batch job's request.
	// Default DefaultBatchPoll.
	BatchPoll time.Duration
	// PartSize is the number of records per manifest part, and the backlog at
	// which a completion moves whole parts out of Redis. Default [PartSize].
	PartSize int
	// Now is the clock (month boundaries of a batch job's OUT_OF_PU pause).
	// Default time.Now.
	Now func() time.Time

	burstLog zerolog.Logger
}

// NewHandlers returns the handlers cfg describes, with the defaults of its zero
// fields filled in (cfg itself is not changed), or an error naming the first
// missing field.
func NewHandlers(cfg Handlers) (*Handlers, error) {
	h := cfg.withDefaults()
	if err := h.validate(); err != nil {
		return nil, err
	}
	return &h, nil
}

// withDefaults returns h with every zero field at its default.
func (h Handlers) withDefaults() Handlers {
	if h.Outputs == nil {
		h.Outputs = NewOutputs()
	}
	h.PartSize = cmp.Or(h.PartSize, PartSize)
	h.Prefix = cmp.Or(h.Prefix, keys.DefaultPrefix)
	h.CatalogCacheTTL = cmp.Or(h.CatalogCacheTTL, DefaultCatalogCacheTTL)
	h.RateLimitRetries = cmp.Or(h.RateLimitRetries, DefaultRateLimitRetries)
	// One line per 429 burst, not per request.
	h.burstLog = h.Log.Sample(&zerolog.BurstSampler{Burst: 1, Period: 10 * time.Second})
	return h
}

// validate names the first field the handlers cannot work without.
func (h Handlers) validate() error {
	switch {
	case h.Redis == nil:
		return errors.New("tasks: Handlers.Redis is nil; pass the fleet's Redis client")
	case h.Jobs == nil:
		return errors.New("tasks: Handlers.Jobs is nil; pass the job store")
	case h.Limiter == nil:
		return errors.New("tasks: Handlers.Limiter is nil; pass the fleet's quota limiter")
	case h.Client == nil:
		return errors.New("tasks: Handlers.Client is nil; pass a Sentinel Hub client")
	case h.Queue == nil:
		return errors.New("tasks: Handlers.Queue is nil; pass an asynq client")
	}
	return nil
}

func (h *Handlers) now() time.Time {
	if h.Now != nil {
		return h.Now()
	}
	return time.Now()
}

// Mux returns the asynq handler of both task types.
func (h *Handlers) Mux() *asynq.ServeMux {
	mux := asynq.NewServeMux()
	mux.HandleFunc(TypeCatalog, h.HandleCatalog)
	mux.HandleFunc(TypeProcess, h.HandleProcess)
	mux.HandleFunc(TypeFinish, h.HandleFinish)
	mux.HandleFunc(TypeBatch, h.HandleBatch)
	return mux
}

// Outputs caches opened result stores by URL; safe for concurrent use. The
// first open of a local store in a process starts a sweep of the temp files
// that dead writers left under it (output.Store.RemoveStale) in the
// background: at a worker's start, per output root.
type Outputs struct {
	mu      sync.Mutex
	stores  map[string]*output.Store
	sweeps  sync.WaitGroup
	stop    context.CancelFunc
	stopCtx context.Context
	// Config opens new stores. The zero value works.
	Config output.Config
	// Log receives one event per sweep that removed something or failed.
	// Default: nothing.
	Log zerolog.Logger
}

// NewOutputs returns an empty store cache.
func NewOutputs() *Outputs { return &Outputs{stores: map[string]*output.Store{}} }

// Open returns the store for url, opening it once.
func (o *Outputs) Open(ctx context.Context, url string) (*output.Store, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.stores == nil {
		o.stores = map[string]*output.Store{}
	}
	if s, ok := o.stores[url]; ok {
		return s, nil
	}
	s, err := o.Config.Open(ctx, url)
	if err != nil {
		return nil, err
	}
	o.stores[url] = s
	if s.Dir() != "" {
		if o.stopCtx == nil {
			o.stopCtx, o.stop = context.WithCancel(context.Background())
		}
		o.sweeps.Go(func() {
			n, err := s.RemoveStale(o.stopCtx)
			switch {
			case err != nil && o.stopCtx.Err() == nil:
				o.Log.Warn().Err(err).Str("output", s.URL()).Msg("sweep of stale temp files failed")
			case n > 0:
				o.Log.Info().Int("removed", n).Str("output", s.URL()).Msg("removed temp files of dead writers")
			}
		})
	}
	return s, nil
}

// Close stops the sweeps and closes every opened store.
func (o *Outputs) Close() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.stop != nil {
		o.stop()
	}
	o.sweeps.Wait()
	var errs []error
	for k, s := range o.stores {
		errs = append(errs, s.Close())
		delete(o.stores, k)
	}
	return errors.Join(errs...)
}

// admit waits for a quota slot, hands the task back to the queue when the slot
// is too far ahead, and reports the wait.
func (h *Handlers) admit(ctx context.Context, cost quota.Cost) (quota.Reservation, error) {
	res, err := h.Limiter.Wait(ctx, cost)
	if err != nil {
		var far *quota.TooFarError
		if errors.As(err, &far) && !far.ByDeadline {
			return res, waitFor(far.Ahead, "the fleet's quota is booked ahead")
		}
		return res, err
	}
	if h.Hooks.Admitted != nil {
		h.Hooks.Admitted(res.Delay)
	}
	return res, nil
}

// rateLimited records a 429 fleet-wide and logs once per burst.
func (h *Handlers) rateLimited(ctx context.Context, rle *sentinel.RateLimitError, job string) {
	if err := h.Jobs.CountRateLimited(ctx, job); err != nil {
		h.Log.Debug().Err(err).Str("job", job).Msg("could not count a 429")
	}
	if err := h.Limiter.Observe429(ctx, sentinelquota.RateLimit(rle)); err != nil {
		h.Log.Warn().Err(err).Str("job", job).Msg("could not share a 429 with the fleet")
	}
	policy := ""
	if rle.Policy != nil {
		policy = fmt.Sprintf("%s:%g:%s", rle.Policy.Kind(), rle.Policy.Capacity, rle.Policy.SamplingPeriod)
	}
	if h.Hooks.RateLimited != nil {
		h.Hooks.RateLimited(policy)
	}
	h.burstLog.Warn().Str("job", job).Str("policy", policy).Dur("retry_after", rle.Wait()).
		Msg("Sentinel Hub answered 429; the whole fleet holds (logged once per burst)")
}

// judgeForbidden turns a 403 into the error its evidence supports: a
// *MonthSpentError when the account's monthly counts (or our own ledger) say the
// month's processing units cannot cover needMilliPU, else a *PermissionError (the
// account may not have what the request asks for). Other errors pass unchanged.
// It only gathers evidence; Classify decides what the queue does.
func (h *Handlers) judgeForbidden(ctx context.Context, err error, needMilliPU int64) error {
	var fb *sentinel.ForbiddenError
	if !errors.As(err, &fb) {
		return err
	}
	ev, merr := h.Limiter.MonthSpent(ctx, needMilliPU)
	if merr != nil {
		// Without evidence either way the request is retried: pausing the fleet
		// or failing the item on a guess would both be wrong.
		return fmt.Errorf("HTTP 403 (%s), and the month's counts could not be read to tell a spent month from a permission error: %w", fb.Body, merr)
	}
	if ev.Spent {
		return &MonthSpentError{Err: err, Evidence: ev.Reason}
	}
	return &PermissionError{Err: err, Evidence: ev.Reason}
}

// monthSpent pauses the fleet for the rest of the month: the limiter refuses,
// every job of this queue is marked OUT_OF_PU with the reset date, and the queue
// is paused so no task starts; the task waits until the reset without a retry
// storm. `enqueue resume` undoes it after a budget raise.
func (h *Handlers) monthSpent(ctx context.Context, job jobs.Job, cause error) error {
	var serverSaid *MonthSpentError
	if errors.As(cause, &serverSaid) {
		if err := h.Limiter.Observe403(ctx); err != nil {
			h.Log.Warn().Err(err).Msg("could not record the 403 fleet-wide")
		}
	}
	reset := quota.MonthReset(time.Now())
	var mq *quota.MonthlyQuotaError
	if errors.As(cause, &mq) {
		reset = mq.Reset
	}
	if err := h.Jobs.Pause(ctx, job.ID, jobs.ReasonOutOfPU, reset); err != nil && !errors.Is(err, jobs.ErrInvalidTransition) {
		h.Log.Warn().Err(err).Str("job", job.ID).Msg("could not mark the job OUT_OF_PU")
	}
	queue := QueueName(h.Prefix, ProcessQueue(job.Spec))
	if h.Inspector != nil {
		if err := h.Inspector.PauseQueue(queue); err != nil {
			h.Log.Warn().Err(err).Str("queue", queue).Msg("could not pause the queue")
		}
	}
	h.Log.Error().Str("job", job.ID).Str("queue", queue).Time("resets", reset).Err(cause).
		Msg("monthly processing units exhausted: queue paused until the reset; raise the budget and run `enqueue resume` to go on earlier")
	return waitFor(time.Until(reset), "monthly PU quota exhausted (OUT_OF_PU) until "+reset.UTC().Format(time.DateOnly))
}

// job reads a task's job; a job that no longer exists (deleted) is Final: the
// task has nothing left to do.
func (h *Handlers) job(ctx context.Context, id string) (jobs.Job, error) {
	job, err := h.Jobs.Get(ctx, id)
	if errors.Is(err, jobs.ErrNotFound) {
		return job, Final(err)
	}
	return job, err
}

func decode[T any](t *asynq.Task) (T, error) {
	var p T
	if err := json.Unmarshal(t.Payload(), &p); err != nil {
		return p, Final(fmt.Errorf("task %s: payload does not decode: %v", t.Type(), err))
	}
	return p, nil
}
