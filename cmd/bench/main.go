// Command bench runs shfleet's end-to-end benchmarks and prints their results as a
// Markdown table.
//
//	go run ./cmd/bench quota [-duration 60s] [-scenarios requests,pu,both,ttl,legacy,external] [-modes shfleet,shfleet-nosync,local,none] [-w 8,64] [-quick]
//
// "quota" is the proof benchmark of package quota: it starts a redis-server and the
// Sentinel Hub simulator of package sentineltest, then runs W concurrent clients
// that each behave like a separate worker process (their own Redis client, Limiter,
// SharedTokenSource and sentinel.Client) for a fixed duration, and reports the rate
// achieved against the binding policy, measured from the simulator's own record of
// the requests it answered. The simulator behaves as the service does today (429s
// carry only Retry-After; the account's contract and remaining units are
// published) except in the "legacy" scenario (the 2019 headers); "external" adds
// another client of the account taking 25% of the request policy. "shfleet"
// clients are set up as workers are by default (the account's contract, resynced
// every 2 s); "shfleet-nosync" ones are configured with the policies and never
// read the account. Baselines ("local": each client paces itself at capacity/W
// with its own token; "none": no pacing) run beside it. See BENCHMARKS.md.
//
// The pipeline benchmarks run the real binaries (go build of cmd/worker and
// cmd/shsim) against a redis-server:
//
//	go run ./cmd/bench fleet    [-scenarios requests,pu] [-workers 4] [-concurrency 16]
//	go run ./cmd/bench analysis [-bbox -8,38,38,66] [-days 10]
//	go run ./cmd/bench memory   [-rows 32x4,8x4,32x10]
//	go run ./cmd/bench scale    [-items 100000,1000000,10000000] [-redis URL]
//	go run ./cmd/bench start    [-tiles 200] [-days 100] [-window 5000]
//
// "fleet" submits a job of over a thousand items to 4 worker processes and reports
// the rate achieved against the simulator's binding policy; "analysis" splits and
// submits a country-sized AOI (~100,000 tiles), runs its catalog analysis, and
// reports times, Redis memory per item and the submitter's peak RSS; "memory"
// reports a worker's peak RSS while it streams 100 MB answers to disk; "scale"
// creates, analyses and starts jobs of 100 k to 10 M synthetic items straight
// through jobs.Store against a redis-server of its own and reports Redis memory,
// commands and CPU per item; "start" creates a job of synthetic items (no
// catalog), times `enqueue start` and reports Redis memory per item after the
// analysis, the start and the feeder's first top-up.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const usage = `usage: bench quota|fleet|analysis|memory|scale|start [flags]

Runs a benchmark and prints a Markdown table to stdout ("bench NAME -h" lists
NAME's flags).

quota flags:
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// run parses the command line and runs the chosen benchmark.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "fleet":
			o, err := parseFleetFlags(args[1:], stderr)
			if err != nil {
				return err
			}
			return RunFleet(ctx, o, stdout, stderr)
		case "analysis":
			o, err := parseAnalysisFlags(args[1:], stderr)
			if err != nil {
				return err
			}
			return RunAnalysis(ctx, o, stdout, stderr)
		case analysisChildCommand:
			return runAnalysisChild(ctx, args[1:], stdout, stderr)
		case "scale":
			o, err := parseScaleFlags(args[1:], stderr)
			if err != nil {
				return err
			}
			return RunScale(ctx, o, stdout, stderr)
		case "start":
			o, err := parseStartFlags(args[1:], stderr)
			if err != nil {
				return err
			}
			return RunStart(ctx, o, stdout)
		case "memory":
			o, err := parseMemoryFlags(args[1:], stderr)
			if err != nil {
				return err
			}
			return RunMemory(ctx, o, stdout, stderr)
		}
	}
	if len(args) == 0 || args[0] != "quota" {
		fmt.Fprint(stderr, usage)
		return errors.New(`the first argument must be the benchmark name: "quota", "fleet", "analysis", "memory", "scale" or "start"`)
	}
	opts, err := parseFlags(args[1:], stderr)
	if err != nil {
		return err
	}
	return RunQuota(ctx, opts, stdout, stderr)
}

// parseFlags reads the quota benchmark's flags into Options.
func parseFlags(args []string, stderr io.Writer) (Options, error) {
	fs := flag.NewFlagSet("bench quota", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	var o Options
	var scen, ws, modes string
	fs.DurationVar(&o.Duration, "duration", DefaultDuration, "how long each row runs (the first WarmupFraction, or until the initial burst is spent, is not measured)")
	fs.StringVar(&scen, "scenarios", "", "comma-separated scenarios to run: "+strings.Join(ScenarioNames(), ", ")+" (default all)")
	fs.StringVar(&ws, "w", "", "comma-separated client counts overriding every scenario's list, e.g. 8,64")
	fs.StringVar(&modes, "modes", "", "comma-separated modes to keep: "+modeList()+" (default all)")
	quick := fs.Bool("quick", false, "short runs for CI and development: -duration "+QuickDuration.String())
	fs.DurationVar(&o.Latency, "latency", DefaultLatency, "simulated server latency of every answer")
	fs.DurationVar(&o.Jitter, "jitter", DefaultJitter, "random extra latency, uniform in 0..jitter")
	fs.IntVar(&o.TokenRPM, "token-rpm", DefaultTokenRPM, "the simulator's token endpoint limit (token requests per minute)")
	fs.Float64Var(&o.Warmup, "warmup", DefaultWarmupFraction, "fraction of the duration that is never measured")
	if err := fs.Parse(args); err != nil {
		return Options{}, err
	}
	if fs.NArg() > 0 {
		return Options{}, fmt.Errorf("unexpected arguments %q; flags go after the benchmark name", fs.Args())
	}
	if *quick {
		set := false
		fs.Visit(func(f *flag.Flag) { set = set || f.Name == "duration" })
		if !set {
			o.Duration = QuickDuration
		}
	}
	if scen != "" {
		o.Scenarios = strings.Split(scen, ",")
	}
	if modes != "" {
		for _, m := range strings.Split(modes, ",") {
			o.Modes = append(o.Modes, Mode(strings.TrimSpace(m)))
		}
	}
	if ws != "" {
		for _, s := range strings.Split(ws, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil || n < 1 {
				return Options{}, fmt.Errorf("-w %q: %q is not a positive client count", ws, s)
			}
			o.Ws = append(o.Ws, n)
		}
	}
	if o.Duration < time.Second {
		return Options{}, fmt.Errorf("-duration %s is too short; use at least 1s (60s for a proof)", o.Duration)
	}
	return o, nil
}
