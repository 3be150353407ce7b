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
//
// -batch makes the account an enterprise one with the Batch Processing API v2;
// its tiles go to the S3 bucket of the request's delivery at -batch-s3-endpoint
// (credentials from SHSIM_S3_ACCESS_KEY and SHSIM_S3_SECRET_KEY). -batch-step
// sets its pace and -batch-stuck TILE:N makes a tile get stuck N times (3 fails
// it, so the request ends with a failed tile for `enqueue restart`).
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
	"strconv"
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

// options are shsim's flags that are not simulator Config fields.
type options struct {
	addr, headers string
	pols          policies
	forbidden     list
	stuck         stuckTiles
}

// stuckTiles is the repeatable -batch-stuck TILE:N flag.
type stuckTiles map[string]int

func (s stuckTiles) String() string { return fmt.Sprint(map[string]int(s)) }

func (s stuckTiles) Set(v string) error {
	tile, n, ok := strings.Cut(v, ":")
	times, err := strconv.Atoi(n)
	if !ok || tile == "" || err != nil || times < 1 {
		return fmt.Errorf("%q: want TILE:N, e.g. UTM-33N-460000-5090000-10km:3 (N >= 1 stuck runs; 3 fails the tile)", v)
	}
	s[tile] = times
	return nil
}

// defineFlags registers shsim's flags on fs; parsing fills cfg and o.
func defineFlags(fs *flag.FlagSet, cfg *sentineltest.Config, o *options) {
	o.stuck = stuckTiles{}
	fs.StringVar(&o.addr, "addr", DefaultAddr, "listen address")
	fs.StringVar(&cfg.ClientID, "client-id", envOr("SH_CLIENT_ID", sentineltest.DefaultClientID), "accepted OAuth client id (env SH_CLIENT_ID)")
	fs.StringVar(&cfg.ClientSecret, "client-secret", envOr("SH_CLIENT_SECRET", sentineltest.DefaultClientSecret), "accepted OAuth client secret (env SH_CLIENT_SECRET)")
	fs.StringVar(&cfg.UserID, "user-id", sentineltest.DefaultUserID, "the account's user id: the tokens' sub claim and the id of the rate-limit endpoints")
	fs.DurationVar(&cfg.TokenTTL, "token-ttl", sentineltest.DefaultTokenTTL, "lifetime of issued tokens")
	fs.IntVar(&cfg.TokenRequestsPerMinute, "token-rpm", 0, "token requests per minute (0 = unlimited)")
	fs.Var(&o.pols, "policy", "rate-limit policy kind:capacity:period, e.g. requests:300:PT1M or pu:300:PT1M (repeatable)")
	fs.Float64Var(&cfg.MonthlyPU, "pu-month", 0, "monthly PU budget (0 = unlimited); a batch request that reaches it is STOPPED with OUT_OF_PU")
	fs.StringVar(&o.headers, "headers", "retry-after", "rate-limit headers: retry-after (today's service), legacy (the 2019 headers) or none")
	fs.Float64Var(&cfg.ExternalLoad, "external-load", 0, "share (0..1) of every rate policy's refill taken by another client of the account")
	fs.Var(&o.forbidden, "forbidden", "a collection the account may not read, e.g. sentinel-1-grd or byoc-<id> (repeatable, or comma separated)")
	fs.BoolVar(&cfg.NoRateLimitAPI, "no-ratelimit-api", false, "answer 404 on /aux/ratelimit/... as a deployment without the rate-limit endpoints")
	fs.Float64Var(&cfg.Faults.Error5xxRate, "error-rate", 0, "probability of an injected 503")
	fs.Float64Var(&cfg.Faults.TruncateRate, "truncate-rate", 0, "probability of a truncated body")
	fs.DurationVar(&cfg.Faults.Latency, "latency", 0, "latency added to every answer")
	fs.DurationVar(&cfg.Faults.LatencyJitter, "jitter", 0, "random extra latency, 0..jitter")
	fs.Int64Var(&cfg.Faults.Seed, "seed", 1, "seed of the fault RNG")
	fs.BoolVar(&cfg.FullSizeBodies, "full-size", false, "answer process requests with the real output size (width x height x bands x bytes per sample), streamed, instead of a small GeoTIFF")
	fs.BoolVar(&cfg.Batch, "batch", false, "an enterprise account: serve the Batch Processing API v2 (/api/v2/batch/..., /batch/v2/...); without it every batch endpoint answers 403")
	fs.DurationVar(&cfg.BatchStep, "batch-step", sentineltest.DefaultBatchStep, "pace of the batch service: a request or a tile moves one status per step")
	fs.Var(o.stuck, "batch-stuck", "TILE:N: the batch tile TILE gets stuck the next N times it is processed (back to PENDING twice, then FAILED: N=3 fails it); repeatable")
	fs.StringVar(&cfg.BatchS3.Endpoint, "batch-s3-endpoint", "", "S3 endpoint batch requests deliver their tiles to, e.g. http://127.0.0.1:7070 (versitygw); needed with -batch")
	fs.StringVar(&cfg.BatchS3.Region, "batch-s3-region", "us-east-1", "region of -batch-s3-endpoint")
	// The keys' defaults come from the env in finishConfig, so -help never prints them.
	fs.StringVar(&cfg.BatchS3.AccessKey, "batch-s3-access-key", "", "access key of -batch-s3-endpoint (default env SHSIM_S3_ACCESS_KEY)")
	fs.StringVar(&cfg.BatchS3.SecretKey, "batch-s3-secret-key", "", "secret key of -batch-s3-endpoint (default env SHSIM_S3_SECRET_KEY; prefer the env)")
}

// finishConfig checks the parsed flags and completes cfg.
func finishConfig(cfg *sentineltest.Config, o options) error {
	cfg.Policies = o.pols
	cfg.ForbiddenCollections = o.forbidden
	if len(o.stuck) > 0 {
		cfg.BatchStuck = o.stuck
	}
	mode, err := parseHeaderMode(o.headers)
	if err != nil {
		return err
	}
	cfg.HeaderMode = mode
	if !(cfg.ExternalLoad >= 0 && cfg.ExternalLoad <= 1) {
		return fmt.Errorf("-external-load %g: want a share between 0 and 1", cfg.ExternalLoad)
	}
	if cfg.BatchS3.AccessKey == "" {
		cfg.BatchS3.AccessKey = os.Getenv("SHSIM_S3_ACCESS_KEY")
	}
	if cfg.BatchS3.SecretKey == "" {
		cfg.BatchS3.SecretKey = os.Getenv("SHSIM_S3_SECRET_KEY")
	}
	if cfg.Batch && cfg.BatchS3.Endpoint == "" {
		return errors.New("-batch needs -batch-s3-endpoint: the batch service delivers its tiles to an S3 bucket (e.g. versitygw, see .ci/install-versitygw.sh)")
	}
	if cfg.BatchStep <= 0 {
		return fmt.Errorf("-batch-step %s: want a positive duration", cfg.BatchStep)
	}
	return nil
}

func main() {
	var cfg sentineltest.Config
	var o options
	defineFlags(flag.CommandLine, &cfg, &o)
	flag.Parse()
	if err := finishConfig(&cfg, o); err != nil {
		fmt.Fprintln(os.Stderr, "shsim:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "shsim: listen on %s: %v (pick another with -addr)\n", o.addr, err)
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
