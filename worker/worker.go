// Package worker assembles one shfleet worker process: its own Redis client,
// quota limiter, shared token source, Sentinel Hub client and task handlers, run
// by an asynq server with the error mapping of package tasks. Start as many as
// you like, on as many machines as you like, against one Redis.
package worker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"shfleet/config"
	"shfleet/jobs"
	"shfleet/keys"
	"shfleet/quota"
	"shfleet/quota/sentinelquota"
	"shfleet/sentinel"
	"shfleet/tasks"
)

// Defaults of Config fields left zero.
const (
	// DefaultConcurrency is the number of tasks one worker runs at once.
	DefaultConcurrency = 16
	// DefaultShutdownTimeout is how long in-flight items may finish on SIGTERM
	// before they go back to the queue.
	DefaultShutdownTimeout = 25 * time.Second
)

// Config configures a worker process. Redis and the Sentinel credentials are
// required; the account's policies are read from the service (see Policies).
type Config struct {
	// Redis is the fleet's Redis. Required.
	Redis redis.UniversalClient
	// Sentinel is the Sentinel Hub configuration (credentials from env or files).
	Sentinel sentinel.Config
	// Policies override the account's rate limits. Default: none, the fleet reads
	// the account's published contract (one fetch for the whole fleet, shared
	// through Redis) and falls back to quota.TrialPolicies with one warning where
	// the service does not publish it.
	Policies []quota.Policy
	// MonthlyPU is the fleet's own monthly PU budget; 0: none.
	MonthlyPU float64
	// Headroom is the limiter's headroom (default quota.DefaultHeadroom).
	Headroom float64
	// Prefix starts every key. Default keys.DefaultPrefix.
	Prefix string
	// Concurrency is how many tasks run at once. Default DefaultConcurrency.
	Concurrency int
	// Queues maps queue names to priorities. Default: catalog 3, default 6.
	Queues map[string]int
	// ShutdownTimeout: see DefaultShutdownTimeout.
	ShutdownTimeout time.Duration
	// TokenRequestsPerMinute limits the fleet's token requests (default
	// quota.DefaultTokenRequestsPerMinute).
	TokenRequestsPerMinute int
	// Logger receives the worker's events. Default: nothing.
	Logger zerolog.Logger
	// Hooks count events for metrics.
	Hooks tasks.Hooks
	// Now is the limiter's clock for tests; nil uses Redis server time.
	Now func() time.Time
	// BatchPoll is the pause between two polls of a batch job's request;
	// default tasks.DefaultBatchPoll.
	BatchPoll time.Duration
	// Feed tunes the feeder every worker runs (one of them, the leader, feeds):
	// its zero value works. Jobs, Queue, Inspector, Limiter and Log are set by
	// New.
	Feed tasks.FeederConfig
}

// Worker is one running worker process.
type Worker struct {
	cfg       Config
	Limiter   *quota.Limiter
	Tokens    *quota.SharedTokenSource
	Jobs      *jobs.Store
	Handlers  *tasks.Handlers
	Inspector *asynq.Inspector
	// Feeder tops up the queue with process tasks while this worker leads.
	Feeder *tasks.Feeder
	queue  *asynq.Client
	server *asynq.Server

	stopFeed context.CancelFunc // stops the feeder (and drops its lease) first on shutdown
	fed      sync.WaitGroup

	abort           context.CancelFunc // cancels every handler's context and the account sync
	base            context.Context
	shutdownTimeout time.Duration
	inflight        sync.WaitGroup // running handlers
}

// New builds a worker from cfg; it does not contact Redis or Sentinel Hub (see
// Check).
func New(cfg Config) (*Worker, error) {
	if cfg.Redis == nil {
		return nil, errors.New("worker: no Redis; set REDIS_URL (redis://[:password@]host:port/db, rediss:// for TLS)")
	}
	if cfg.Sentinel.ClientID == "" {
		return nil, errors.New("worker: no Sentinel Hub client id; set SH_CLIENT_ID (and SH_CLIENT_SECRET or SH_CLIENT_SECRET_FILE)")
	}
	secret, err := cfg.Sentinel.Secret()
	if err != nil {
		return nil, fmt.Errorf("worker: %w", err)
	}
	if secret == "" {
		return nil, errors.New("worker: no Sentinel Hub client secret; set SH_CLIENT_SECRET or SH_CLIENT_SECRET_FILE")
	}
	prefix := cmp.Or(cfg.Prefix, keys.DefaultPrefix)
	tokens, err := quota.NewSharedTokenSource(quota.TokenConfig{Redis: cfg.Redis, ClientID: cfg.Sentinel.ClientID,
		ClientSecret: secret, Upstream: sentinelquota.Upstream(cfg.Sentinel), Prefix: prefix,
		TokenRequestsPerMinute: cfg.TokenRequestsPerMinute, Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	client := sentinel.NewClient(cfg.Sentinel, tokens)
	lim, err := quota.NewLimiter(quota.Config{Redis: cfg.Redis, Account: cfg.Sentinel.ClientID, Prefix: prefix,
		Policies: cfg.Policies, MonthlyPU: cfg.MonthlyPU, Headroom: cfg.Headroom, Logger: cfg.Logger, Now: cfg.Now,
		AccountAPI: sentinelquota.Account(client.RateLimit)})
	if err != nil {
		return nil, err
	}
	store := &jobs.Store{Redis: cfg.Redis, Prefix: prefix}
	queue := asynq.NewClientFromRedisClient(cfg.Redis)
	insp := asynq.NewInspectorFromRedisClient(cfg.Redis)
	h, err := tasks.NewHandlers(tasks.Handlers{Redis: cfg.Redis, Prefix: prefix, Jobs: store, Limiter: lim,
		Client: client, Queue: queue, Inspector: insp, Outputs: &tasks.Outputs{Log: cfg.Logger},
		Log: cfg.Logger, Hooks: cfg.Hooks, BatchPoll: cfg.BatchPoll})
	if err != nil {
		return nil, err
	}
	named := cfg.Queues
	if len(named) == 0 {
		named = map[string]int{tasks.QueueCatalog: 3, jobs.DefaultQueue: 6}
	}
	// Queues are namespaced by the prefix: a worker of another prefix never sees
	// (nor archives) this fleet's tasks.
	queues := make(map[string]int, len(named))
	for q, w := range named {
		queues[tasks.QueueName(prefix, q)] = w
	}
	fc := cfg.Feed
	fc.Jobs, fc.Queue, fc.Inspector, fc.Limiter, fc.Log = store, queue, insp, lim, cfg.Logger
	feeder, err := tasks.NewFeeder(fc)
	if err != nil {
		return nil, fmt.Errorf("worker: %w", err)
	}
	shutdownTimeout := cmp.Or(cfg.ShutdownTimeout, DefaultShutdownTimeout)
	base, abort := context.WithCancel(context.Background())
	srv := asynq.NewServerFromRedisClient(cfg.Redis, asynq.Config{
		// Handlers run under base: Shutdown cancels it shortly before asynq's own
		// deadline, so in-flight items are released while Redis is still open.
		BaseContext:     func() context.Context { return base },
		Concurrency:     cmp.Or(cfg.Concurrency, DefaultConcurrency),
		Queues:          queues,
		IsFailure:       tasks.IsFailure,
		RetryDelayFunc:  tasks.RetryDelay,
		ShutdownTimeout: shutdownTimeout,
		Logger:          asynqLogger{cfg.Logger},
		LogLevel:        asynq.WarnLevel,
		// Short waits belong in the handlers; keep the queue's own clock tight.
		DelayedTaskCheckInterval: time.Second,
	})
	return &Worker{cfg: cfg, Limiter: lim, Tokens: tokens, Jobs: store, Handlers: h, Inspector: insp, Feeder: feeder, queue: queue,
		server: srv, abort: abort, base: base, shutdownTimeout: shutdownTimeout, stopFeed: func() {}}, nil
}

// Check verifies what a worker needs before it takes work, with messages that
// say what to do: Redis reachable, maxmemory-policy noeviction (an evicting Redis
// silently loses queue state), and — when checkToken is set — that the
// credentials obtain a token.
func (w *Worker) Check(ctx context.Context, checkToken bool) error {
	if err := config.CheckRedis(ctx, w.cfg.Redis); err != nil {
		return err
	}
	if checkToken {
		if _, err := w.Tokens.TokenContext(ctx); err != nil {
			return fmt.Errorf("worker: cannot obtain a Sentinel Hub token: %w", err)
		}
	}
	return nil
}

// Start reads the account's policies (the fleet's cached contract, fetched now
// when none is cached), starts the account sync (contract refresh, live resync
// with the account's remaining counts) and processing in the background.
func (w *Worker) Start() error {
	ctx, cancel := context.WithTimeout(w.base, 30*time.Second)
	src, err := w.Limiter.SyncContract(ctx)
	cancel()
	if err != nil {
		w.cfg.Logger.Warn().Err(err).Msg("could not read the account's policies; enforcing the fallback until the sync succeeds")
	} else {
		w.cfg.Logger.Info().Str("source", string(src.Kind)).Str("detail", src.Detail).Strs("policies", policyStrings(src.Policies)).
			Msg("account policies")
	}
	w.inflight.Add(1)
	go func() {
		defer w.inflight.Done()
		if err := w.Limiter.RunAccountSync(w.base); err != nil && w.base.Err() == nil {
			w.cfg.Logger.Warn().Err(err).Msg("account sync stopped")
		}
	}()
	mux := w.Handlers.Mux()
	feedCtx, stopFeed := context.WithCancel(w.base)
	w.stopFeed = stopFeed
	w.fed.Add(1)
	go func() {
		defer w.fed.Done()
		_ = w.Feeder.Run(feedCtx)
	}()
	return w.server.Start(asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		w.inflight.Add(1)
		defer w.inflight.Done()
		return mux.ProcessTask(ctx, t)
	}))
}

// Shutdown stops taking tasks and lets in-flight items finish for most of the
// shutdown timeout; then it cancels the rest, whose handlers put their items back
// (SCHEDULED) while Redis is still reachable, waits for them, and closes what the
// worker opened. A worker that was never started just closes.
func (w *Worker) Shutdown() {
	// The feeder stops first and drops its lease: another worker feeds at its
	// next tick while this one finishes its items.
	w.stopFeed()
	w.fed.Wait()
	grace := w.shutdownTimeout * 9 / 10
	timer := time.AfterFunc(grace, w.abort)
	w.server.Shutdown()
	timer.Stop()
	w.abort()
	done := make(chan struct{})
	go func() { w.inflight.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(w.shutdownTimeout):
		w.cfg.Logger.Warn().Msg("handlers still running after shutdown; their items return through lease recovery")
	}
	_ = w.queue.Close()
	_ = w.Handlers.Outputs.Close()
}

// Run starts the worker and blocks until ctx is done, then shuts down gracefully.
func (w *Worker) Run(ctx context.Context) error {
	if err := w.Start(); err != nil {
		return err
	}
	<-ctx.Done()
	w.Shutdown()
	return nil
}

func policyStrings(ps []quota.Policy) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}

// asynqLogger routes asynq's own logs into zerolog.
type asynqLogger struct{ l zerolog.Logger }

func (a asynqLogger) Debug(args ...any) {
	a.l.Debug().Str("component", "asynq").Msg(fmt.Sprint(args...))
}
func (a asynqLogger) Info(args ...any) { a.l.Info().Str("component", "asynq").Msg(fmt.Sprint(args...)) }
func (a asynqLogger) Warn(args ...any) { a.l.Warn().Str("component", "asynq").Msg(fmt.Sprint(args...)) }
func (a asynqLogger) Error(args ...any) {
	a.l.Error().Str("component", "asynq").Msg(fmt.Sprint(args...))
}
func (a asynqLogger) Fatal(args ...any) {
	a.l.Fatal().Str("component", "asynq").Msg(fmt.Sprint(args...))
}
