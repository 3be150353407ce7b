// Command shsim serves the Sentinel Hub simulator of package sentineltest over
// HTTP, for demos and manual testing without a Sentinel Hub account:
//
//	shsim -addr 127.0.0.1:8090 -policy requests:300:PT1M -policy pu:300:PT1M -pu-month 30000
//
// Point a client at it with SH_BASE_URL=http://127.0.0.1:8090 and
// SH_TOKEN_URL=http://127.0.0.1:8090/auth/realms/main/protocol/openid-connect/token.
// GET /shsim/stats returns the simulator's counters as JSON.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"shfleet/sentinel/sentineltest"
)

// DefaultAddr is where shsim listens unless -addr says otherwise.
const DefaultAddr = "127.0.0.1:8090"

// StatsPath serves the simulator's Stats as JSON.
const StatsPath = "/shsim/stats"

// policies is a repeatable -policy flag.
type policies []sentineltest.Policy

func (p *policies) String() string { return fmt.Sprint(*p) }

func (p *policies) Set(s string) error {
	pol, err := sentineltest.ParsePolicy(s)
	if err != nil {
		return err
	}
	*p = append(*p, pol)
	return nil
}

func main() {
	var cfg sentineltest.Config
	var pols policies
	addr := flag.String("addr", DefaultAddr, "listen address")
	flag.StringVar(&cfg.ClientID, "client-id", envOr("SH_CLIENT_ID", sentineltest.DefaultClientID), "accepted OAuth client id (env SH_CLIENT_ID)")
	flag.StringVar(&cfg.ClientSecret, "client-secret", envOr("SH_CLIENT_SECRET", sentineltest.DefaultClientSecret), "accepted OAuth client secret (env SH_CLIENT_SECRET)")
	flag.DurationVar(&cfg.TokenTTL, "token-ttl", sentineltest.DefaultTokenTTL, "lifetime of issued tokens")
	flag.IntVar(&cfg.TokenRequestsPerMinute, "token-rpm", 0, "token requests per minute (0 = unlimited)")
	flag.Var(&pols, "policy", "rate-limit policy kind:capacity:period, e.g. requests:300:PT1M or pu:300:PT1M (repeatable)")
	flag.Float64Var(&cfg.MonthlyPU, "pu-month", 0, "monthly PU budget (0 = unlimited)")
	headers := flag.String("headers", "full", "rate-limit headers: full, retry-after or none")
	flag.Float64Var(&cfg.Faults.Error5xxRate, "error-rate", 0, "probability of an injected 503")
	flag.Float64Var(&cfg.Faults.TruncateRate, "truncate-rate", 0, "probability of a truncated body")
	flag.DurationVar(&cfg.Faults.Latency, "latency", 0, "latency added to every answer")
	flag.DurationVar(&cfg.Faults.LatencyJitter, "jitter", 0, "random extra latency, 0..jitter")
	flag.Int64Var(&cfg.Faults.Seed, "seed", 1, "seed of the fault RNG")
	flag.BoolVar(&cfg.FullSizeBodies, "full-size", false, "answer process requests with the real output size (width x height x bands x bytes per sample), streamed, instead of a small GeoTIFF")
	flag.Parse()
	cfg.Policies = pols
	switch strings.ToLower(*headers) {
	case "full":
		cfg.HeaderMode = sentineltest.HeadersFull
	case "retry-after":
		cfg.HeaderMode = sentineltest.HeadersRetryAfterOnly
	case "none":
		cfg.HeaderMode = sentineltest.HeadersNone
	default:
		fmt.Fprintf(os.Stderr, "shsim: -headers %q: want full, retry-after or none\n", *headers)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "shsim: listen on %s: %v (pick another with -addr)\n", *addr, err)
		os.Exit(1)
	}
	if err := run(ctx, ln, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "shsim:", err)
		os.Exit(1)
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// run serves the simulator on ln until ctx is done.
func run(ctx context.Context, ln net.Listener, cfg sentineltest.Config) error {
	sim := sentineltest.NewHandler(cfg)
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+StatsPath, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(sim.Stats())
	})
	mux.Handle("/", sim)
	base := "http://" + ln.Addr().String()
	fmt.Printf("shsim: Sentinel Hub simulator on %s\n  SH_BASE_URL=%s\n  SH_TOKEN_URL=%s%s\n  SH_CLIENT_ID=%s\n  stats: %s%s\n",
		base, base, base, sentineltest.TokenPath, cfg.ClientID, base, StatsPath)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}
