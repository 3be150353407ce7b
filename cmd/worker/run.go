package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/alicebob/miniredis/v2"

	"shfleet/config"
	"shfleet/ops"
	"shfleet/tasks"
	"shfleet/worker"
)

// options are the worker's flags.
type options struct {
	redisURL, embeddedRedis      string
	prefix                       string
	concurrency                  int
	queues                       string
	policies                     multiFlag
	monthlyPU                    float64
	opsAddr, logFormat, logLevel string
	shutdownTimeout              time.Duration
	sentinel                     config.SentinelFlags
	skipTokenCheck               bool
	tokenRPM                     int
	feedWindow                   int
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.redisURL, "redis-url", "", "Redis URL (env REDIS_URL; default "+config.DefaultRedisURL+"); password and TLS (rediss://) in the URL")
	fs.StringVar(&o.embeddedRedis, "embedded-redis", "", "serve an in-memory Redis on this address (e.g. 127.0.0.1:6379) and use it: NOT durable, single machine, for the demo only")
	fs.StringVar(&o.prefix, "prefix", "", "Redis key prefix (default shfleet)")
	fs.IntVar(&o.concurrency, "concurrency", worker.DefaultConcurrency, "tasks run at once by this process")
	fs.StringVar(&o.queues, "queues", "catalog=3,default=6", "queues and priorities, name=weight,...")
	fs.Var(&o.policies, "policy", "override the account's policies, kind:capacity:period, repeatable, e.g. requests:300:PT1M (env SH_POLICIES; default: the account's published contract, else the trial's requests:10:PT1M pu:10:PT1M)")
	fs.Float64Var(&o.monthlyPU, "pu-month", 0, "the fleet's own monthly PU budget (env SH_PU_MONTH; 0: none, the server's 403 still stops it)")
	fs.StringVar(&o.opsAddr, "ops-addr", "", "serve /monitoring, /metrics, /healthz and /jobs on this address (e.g. :8080)")
	fs.StringVar(&o.logFormat, "log-format", "", "json or console (default: console on a terminal, json otherwise)")
	fs.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.DurationVar(&o.shutdownTimeout, "shutdown-timeout", worker.DefaultShutdownTimeout, "on SIGTERM, how long in-flight items may finish before they go back to the queue")
	o.sentinel.Register(fs)
	fs.BoolVar(&o.skipTokenCheck, "skip-token-check", false, "start without first obtaining a token")
	fs.IntVar(&o.tokenRPM, "token-requests-per-minute", 0, "fleet-wide limit on token requests (default 10)")
	fs.IntVar(&o.feedWindow, "feed-window", 0, fmt.Sprintf("most process tasks the queue holds for all active jobs together, when this worker leads the feeder (default %d)", tasks.DefaultMaxWindow))
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q: the worker takes flags only (see worker -help)", fs.Arg(0))
	}
	return o, o.validate()
}

// validate refuses flag values that would leave a worker idle or unbounded.
func (o options) validate() error {
	switch {
	case o.concurrency < 1:
		return fmt.Errorf("-concurrency %d: give at least 1 (tasks run at once by this process; default %d)", o.concurrency, worker.DefaultConcurrency)
	case o.monthlyPU < 0 || o.monthlyPU != o.monthlyPU:
		return fmt.Errorf("-pu-month %g: give a budget >= 0 PU (0: none)", o.monthlyPU)
	case o.shutdownTimeout < 0:
		return fmt.Errorf("-shutdown-timeout %s: give a duration >= 0", o.shutdownTimeout)
	case o.feedWindow < 0:
		return fmt.Errorf("-feed-window %d: give a number >= 0 (0: the default %d)", o.feedWindow, tasks.DefaultMaxWindow)
	case o.tokenRPM < 0:
		return fmt.Errorf("-token-requests-per-minute %d: give a number >= 0 (0: the default 10)", o.tokenRPM)
	}
	return nil
}

func parseQueues(s string) (map[string]int, error) {
	out := map[string]int{}
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		name, w, ok := strings.Cut(part, "=")
		n := 1
		if ok {
			if _, err := fmt.Sscanf(w, "%d", &n); err != nil || n < 1 {
				return nil, fmt.Errorf("-queues %q: weight of %s must be a positive integer", s, name)
			}
		}
		if name = strings.TrimSpace(name); name == "" || strings.ContainsAny(name, ": ") {
			return nil, fmt.Errorf("-queues %q: queue name %q must be non-empty, without spaces or ':' (the -prefix namespaces queues)", s, name)
		}
		out[name] = n
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("-queues is empty; name at least one queue, e.g. catalog=3,default=6")
	}
	return out, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	} else if err != nil {
		return err
	}
	log := ops.NewLogger(stderr, o.logFormat, o.logLevel)
	metrics := ops.NewMetrics()

	if o.embeddedRedis != "" {
		mr := miniredis.NewMiniRedis()
		if err := mr.StartAddr(o.embeddedRedis); err != nil {
			return fmt.Errorf("--embedded-redis %s: %w", o.embeddedRedis, err)
		}
		defer mr.Close()
		o.redisURL = "redis://" + mr.Addr() + "/0"
		log.Warn().Str("addr", mr.Addr()).Msg("EMBEDDED IN-MEMORY REDIS: not durable (everything is lost when this worker stops) and single-machine; for the demo and trials only, use a real redis-server for real work")
	}
	if err := config.CheckTLS(ctx, o.redisURL); err != nil {
		return err
	}
	rdb, shown, err := config.Redis(o.redisURL)
	if err != nil {
		return err
	}
	defer rdb.Close()
	sh, err := config.Sentinel(o.sentinel)
	if err != nil {
		return err
	}
	// Policies given by flag or SH_POLICIES override the account's contract.
	policies, err := config.Policies(o.policies, nil)
	if err != nil {
		return err
	}
	monthly, err := config.MonthlyPU(o.monthlyPU)
	if err != nil {
		return err
	}
	queues, err := parseQueues(o.queues)
	if err != nil {
		return err
	}
	w, err := worker.New(worker.Config{Redis: rdb, Sentinel: sh, Policies: policies, MonthlyPU: monthly,
		Prefix: o.prefix, Concurrency: o.concurrency, Queues: queues, ShutdownTimeout: o.shutdownTimeout,
		TokenRequestsPerMinute: o.tokenRPM, Logger: log, Hooks: metrics.Hooks(),
		Feed: tasks.FeederConfig{MaxWindow: o.feedWindow}})
	if err != nil {
		return err
	}
	checkCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = w.Check(checkCtx, !o.skipTokenCheck)
	cancel()
	if err != nil {
		return err
	}
	ps := make([]string, len(policies))
	for i, p := range policies {
		ps[i] = p.String()
	}
	log.Info().Str("redis", shown).Str("base_url", sh.BaseURL).Strs("policy_override", ps).Float64("pu_month", monthly).
		Int("concurrency", o.concurrency).Msg("worker starting")
	// Start first (it reads the account's policies), then open the ops port:
	// whoever waits for that port finds a worker that knows the account.
	if err := w.Start(); err != nil {
		return err
	}
	// The fleet's per-minute counters (the job page's charts): this worker's
	// counts go to Redis every second, the last ones after the shutdown.
	flushCtx, stopFlush := context.WithCancel(context.WithoutCancel(ctx))
	flushed := make(chan struct{})
	go func() {
		defer close(flushed)
		var warned time.Time // at most one warning a minute while Redis fails
		metrics.Series().RunFleetFlush(flushCtx, rdb, o.prefix, 0, func(err error) {
			if time.Since(warned) >= time.Minute {
				warned = time.Now()
				log.Warn().Err(err).Msg("fleet counters (the job page's charts) not written; retrying every second")
			}
		})
	}()
	defer func() { stopFlush(); <-flushed }()
	if o.opsAddr != "" {
		ln, err := net.Listen("tcp", o.opsAddr)
		if err != nil {
			w.Shutdown()
			return fmt.Errorf("--ops-addr %s: %w", o.opsAddr, err)
		}
		go serveOps(ctx, ln, w, metrics, sh.ClientID, log)
		log.Info().Str("addr", ln.Addr().String()).Msg("ops server: /monitoring /metrics /healthz /jobs")
	}
	<-ctx.Done()
	w.Shutdown()
	log.Info().Msg("worker stopped")
	return nil
}
