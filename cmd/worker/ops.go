package main

import (
	"context"
	"net"
	"net/http"

	"github.com/rs/zerolog"

	"shfleet/quota"
	"shfleet/worker"
)

// serveOps serves the ops endpoints until ctx ends.
func serveOps(ctx context.Context, ln net.Listener, w *worker.Worker, policies []quota.Policy, log zerolog.Logger) {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(rw http.ResponseWriter, r *http.Request) {
		if err := worker.CheckRedis(r.Context(), w.Handlers.Redis); err != nil {
			http.Error(rw, "redis: unavailable", http.StatusServiceUnavailable)
			return
		}
		rw.Write([]byte("ok\n"))
	})
	srv := &http.Server{Handler: mux}
	go func() { <-ctx.Done(); srv.Close() }()
	if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
		log.Error().Err(err).Msg("ops server stopped")
	}
}
