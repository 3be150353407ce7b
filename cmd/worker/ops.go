package main

import (
	"context"
	"net"
	"net/http"

	"github.com/rs/zerolog"

	"shfleet/ops"
	"shfleet/worker"
)

// serveOps serves /monitoring (asynqmon), /metrics, /healthz and /jobs until ctx
// ends.
func serveOps(ctx context.Context, ln net.Listener, w *worker.Worker, m *ops.Metrics, account string, log zerolog.Logger) {
	h, err := ops.NewHandler(ops.Config{Redis: w.Handlers.Redis, Metrics: m,
		Sources: ops.Sources{Limiter: w.Limiter, Tokens: w.Tokens, Jobs: w.Jobs, Inspector: w.Inspector}, Account: account, Logger: log})
	if err != nil {
		log.Error().Err(err).Msg("ops server not started")
		return
	}
	defer h.Close()
	srv := &http.Server{Handler: h, ReadHeaderTimeout: ops.ReadHeaderTimeout}
	go func() { <-ctx.Done(); srv.Close() }()
	if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
		log.Error().Err(err).Msg("ops server stopped")
	}
}
