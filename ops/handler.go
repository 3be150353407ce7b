package ops

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/hibiken/asynq"
	"github.com/hibiken/asynqmon"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"shfleet/jobs"
	"shfleet/keys"
	"shfleet/quota"
)

// Defaults of Config and Serve.
const (
	// MonitoringPath is where asynqmon is served.
	MonitoringPath = "/monitoring"
	// ShutdownTimeout is how long Serve lets requests finish once ctx is done.
	ShutdownTimeout = 5 * time.Second
	// ReadHeaderTimeout bounds how long Serve waits for a request's headers.
	ReadHeaderTimeout = 10 * time.Second
)

// Config configures the operations handler. Redis is required; everything else
// has a default.
type Config struct {
	// Redis is the fleet's Redis (health check, job store, asynqmon). Required.
	Redis redis.UniversalClient
	// Sources are what the pages and metrics read (a worker's limiter, token
	// source, job store and inspector). Default: Jobs and Inspector over Redis,
	// the rest absent (its metrics and the token state are then missing).
	Sources Sources
	// Metrics is served at /metrics; Attach is called with Sources. Default:
	// NewMetrics() (no hook counters then: pass its Hooks to the worker).
	Metrics *Metrics
	// Policies are the account's limits, for ETAs and the chart's limit lines.
	// Default: the limiter's policies (configured and learned).
	Policies []quota.Policy
	// Account is the Sentinel Hub client id (only its hash is used, in key names),
	// for the token state in /healthz. Default: the token state is "unknown".
	Account string
	// Prefix starts every key, as in worker.Config. Default keys.DefaultPrefix.
	Prefix string
	// MonitoringWritable lets asynqmon delete, run and archive tasks. Default
	// false: read-only, since changing tasks by hand bypasses the job store
	// (use `enqueue cancel/restart`).
	MonitoringWritable bool
	// Logger receives errors of the handlers. Default: nothing.
	Logger zerolog.Logger
	// Now is the clock of the jobs page. Default time.Now.
	Now func() time.Time
}

// Handler serves the operations endpoints; see NewHandler. Close it to close
// asynqmon's Redis connections.
type Handler struct {
	cfg Config
	mux *http.ServeMux
	mon *asynqmon.HTTPHandler
}

var _ http.Handler = (*Handler)(nil)

// NewHandler builds the operations handler:
//
//	/              links to the others
//	/monitoring/   asynqmon (read-only unless Config.MonitoringWritable)
//	/metrics       Prometheus metrics of Config.Metrics
//	/healthz       JSON: Redis and shared-token state; 200, or 503 when Redis fails
//	/jobs          live HTML page of every job (refreshes itself every 2 s)
//	/jobs.json     the same data as JSON
func NewHandler(cfg Config) (*Handler, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if err := cfg.Metrics.Attach(cfg.Sources); err != nil {
		return nil, err
	}
	connOpt, err := RedisConnOpt(cfg.Redis)
	if err != nil {
		return nil, err
	}
	h := &Handler{cfg: cfg, mux: http.NewServeMux()}
	h.mon = asynqmon.New(asynqmon.Options{RootPath: MonitoringPath, RedisConnOpt: connOpt, ReadOnly: !cfg.MonitoringWritable})
	h.mux.Handle(MonitoringPath+"/", h.mon)
	h.mux.Handle("GET /metrics", promhttp.HandlerFor(cfg.Metrics.Registry, promhttp.HandlerOpts{
		ErrorHandling: promhttp.ContinueOnError, ErrorLog: promLogger{cfg.Logger}}))
	h.mux.HandleFunc("GET /healthz", h.serveHealth)
	h.mux.HandleFunc("GET /jobs", h.serveJobsPage)
	h.mux.HandleFunc("GET /jobs.json", h.serveJobsJSON)
	h.mux.HandleFunc("GET /{$}", h.serveIndex)
	return h, nil
}

// withDefaults returns c with the defaults of empty fields filled in; the
// caller's Config is never changed.
func (c Config) withDefaults() Config {
	c.Prefix = cmp.Or(c.Prefix, keys.DefaultPrefix)
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Metrics == nil {
		c.Metrics = NewMetrics()
	}
	if c.Redis != nil {
		if c.Sources.Jobs == nil {
			c.Sources.Jobs = &jobs.Store{Redis: c.Redis, Prefix: c.Prefix}
		}
		if c.Sources.Inspector == nil {
			c.Sources.Inspector = asynq.NewInspectorFromRedisClient(c.Redis)
		}
	}
	return c
}

// validate names the first field NewHandler cannot work with.
func (c Config) validate() error {
	if c.Redis == nil {
		return errors.New("ops: Config.Redis is nil; pass the fleet's Redis client (REDIS_URL)")
	}
	return nil
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// Close closes the Redis connections asynqmon opened.
func (h *Handler) Close() error { return h.mon.Close() }

// RedisConnOpt converts a go-redis client into the asynq connection options
// asynqmon needs (it opens its own connections with them): *redis.Client (as
// redis.NewClient or redis.ParseURL make it) and *redis.ClusterClient are
// supported; a Sentinel failover client is not.
func RedisConnOpt(rdb redis.UniversalClient) (asynq.RedisConnOpt, error) {
	switch c := rdb.(type) {
	case *redis.Client:
		o := c.Options()
		return asynq.RedisClientOpt{Network: o.Network, Addr: o.Addr, Username: o.Username, Password: o.Password,
			DB: o.DB, TLSConfig: o.TLSConfig}, nil
	case *redis.ClusterClient:
		o := c.Options()
		return asynq.RedisClusterClientOpt{Addrs: o.Addrs, Username: o.Username, Password: o.Password,
			MaxRedirects: o.MaxRedirects, TLSConfig: o.TLSConfig}, nil
	}
	return nil, fmt.Errorf("ops: Redis client %T is not supported by asynqmon; use redis.NewClient or redis.NewClusterClient", rdb)
}

func (h *Handler) serveIndex(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	fmt.Fprint(w, `<!doctype html><html><head><meta charset="utf-8"><title>shfleet worker</title>
<style>body{font:15px/1.5 system-ui,sans-serif;margin:2em}</style></head><body>
<h1>shfleet worker</h1><ul>
<li><a href="jobs">jobs</a>: progress, PU and ETA of every job (<a href="jobs.json">JSON</a>)</li>
<li><a href="monitoring/">monitoring</a>: asynqmon, the queues and their tasks</li>
<li><a href="metrics">metrics</a>: Prometheus</li>
<li><a href="healthz">healthz</a>: Redis and shared-token state</li>
</ul></body></html>`)
}

// Serve serves h on addr until ctx is done, then shuts down gracefully (letting
// requests finish for ShutdownTimeout). It returns nil after a shutdown caused
// by ctx, or the error that stopped the server.
func Serve(ctx context.Context, addr string, h http.Handler) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("ops: listen on %s: %w; choose a free address (--ops-addr)", addr, err)
	}
	return serve(ctx, ln, h)
}

func serve(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: ReadHeaderTimeout,
		BaseContext: func(net.Listener) context.Context { return context.WithoutCancel(ctx) }}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("ops: serve on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
		return fmt.Errorf("ops: shutdown of %s: %w", ln.Addr(), err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// promLogger routes promhttp's errors (failed collectors) into zerolog.
type promLogger struct{ l zerolog.Logger }

func (p promLogger) Println(v ...any) {
	p.l.Warn().Str("component", "metrics").Msg(fmt.Sprint(v...))
}
