// Command shsim serves the Sentinel Hub simulator of package sentineltest over
// HTTP, for demos and manual testing without a Sentinel Hub account:
//
//	shsim -addr 127.0.0.1:8090 -policy requests:300:PT1M -policy pu:300:PT1M -pu-month 30000
//
// Point a client at it with SH_BASE_URL=http://127.0.0.1:8090 and
// SH_TOKEN_URL=http://127.0.0.1:8090/auth/realms/main/protocol/openid-connect/token;
// the US West deployment (Landsat, HLS, MODIS) is http://127.0.0.1:8090/uswest.
// GET /shsim/stats returns the simulator's counters as JSON.
//
// By default it behaves like Sentinel Hub today: 429s carry only Retry-After
// (-headers legacy for the 2019 headers, none for no header at all), and the
// account's policies are published at /aux/ratelimit/contract and
// /aux/ratelimit/statistics/tokenCounts/<user> (-no-ratelimit-api answers 404
// there). -user-id sets the tokens' sub claim, -forbidden a collection the
// account may not read (repeatable), -external-load the share of every refill
// another client of the account takes.
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

// list is a repeatable flag of strings; a value may also list several, comma
// separated.
type list []string

func (l *list) String() string { return strings.Join(*l, ",") }

func (l *list) Set(s string) error {
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			*l = append(*l, v)
		}
	}
	return nil
}

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
	var forbidden list
	addr := flag.String("addr", DefaultAddr, "listen address")
	flag.StringVar(&cfg.ClientID, "client-id", envOr("SH_CLIENT_ID", sentineltest.DefaultClientID), "accepted OAuth client id (env SH_CLIENT_ID)")
	flag.StringVar(&cfg.ClientSecret, "client-secret", envOr("SH_CLIENT_SECRET", sentineltest.DefaultClientSecret), "accepted OAuth client secret (env SH_CLIENT_SECRET)")
	flag.StringVar(&cfg.UserID, "user-id", sentineltest.DefaultUserID, "the account's user id: the tokens' sub claim and the id of the rate-limit endpoints")
	flag.DurationVar(&cfg.TokenTTL, "token-ttl", sentineltest.DefaultTokenTTL, "lifetime of issued tokens")
	flag.IntVar(&cfg.TokenRequestsPerMinute, "token-rpm", 0, "token requests per minute (0 = unlimited)")
	flag.Var(&pols, "policy", "rate-limit policy kind:capacity:period, e.g. requests:300:PT1M or pu:300:PT1M (repeatable)")
	flag.Float64Var(&cfg.MonthlyPU, "pu-month", 0, "monthly PU budget (0 = unlimited)")
	headers := flag.String("headers", "retry-after", "rate-limit headers: retry-after (today's service), legacy (the 2019 headers) or none")
	flag.Float64Var(&cfg.ExternalLoad, "external-load", 0, "share (0..1) of every rate policy's refill taken by another client of the account")
	flag.Var(&forbidden, "forbidden", "a collection the account may not read, e.g. sentinel-1-grd or byoc-<id> (repeatable, or comma separated)")
	flag.BoolVar(&cfg.NoRateLimitAPI, "no-ratelimit-api", false, "answer 404 on /aux/ratelimit/... as a deployment without the rate-limit endpoints")
	flag.Float64Var(&cfg.Faults.Error5xxRate, "error-rate", 0, "probability of an injected 503")
	flag.Float64Var(&cfg.Faults.TruncateRate, "truncate-rate", 0, "probability of a truncated body")
	flag.DurationVar(&cfg.Faults.Latency, "latency", 0, "latency added to every answer")
	flag.DurationVar(&cfg.Faults.LatencyJitter, "jitter", 0, "random extra latency, 0..jitter")
	flag.Int64Var(&cfg.Faults.Seed, "seed", 1, "seed of the fault RNG")
	flag.BoolVar(&cfg.FullSizeBodies, "full-size", false, "answer process requests with the real output size (width x height x bands x bytes per sample), streamed, instead of a small GeoTIFF")
	flag.Parse()
	cfg.Policies = pols
	cfg.ForbiddenCollections = forbidden
	mode, err := parseHeaderMode(*headers)
	if err != nil {
		fmt.Fprintln(os.Stderr, "shsim:", err)
		os.Exit(2)
	}
	cfg.HeaderMode = mode
	if !(cfg.ExternalLoad >= 0 && cfg.ExternalLoad <= 1) {
		fmt.Fprintf(os.Stderr, "shsim: -external-load %g: want a share between 0 and 1\n", cfg.ExternalLoad)
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

// parseHeaderMode reads the -headers flag.
func parseHeaderMode(s string) (sentineltest.HeaderMode, error) {
	switch strings.ToLower(s) {
	case "retry-after":
		return sentineltest.HeadersRetryAfterOnly, nil
	case "legacy":
		return sentineltest.HeadersLegacy, nil
	case "none":
		return sentineltest.HeadersNone, nil
	}
	return 0, fmt.Errorf("-headers %q: want retry-after, legacy or none", s)
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
	fmt.Printf("shsim: Sentinel Hub simulator on %s\n  SH_BASE_URL=%s\n  SH_TOKEN_URL=%s%s\n  SH_CLIENT_ID=%s\n  US West deployment: %s%s\n  stats: %s%s\n",
		base, base, base, sentineltest.TokenPath, cfg.ClientID, base, sentineltest.USWestPrefix, base, StatsPath)
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
