// Package cli is the enqueue command: it submits AOI jobs to the shfleet queue
// and follows, lists, starts, restarts, cancels and resumes them. Every input is
// checked before anything is written to Redis; errors are one line on stderr.
//
// Exit codes: 0 success, 1 runtime error (a reason on stderr), 2 usage error
// (unknown command or flag, wrong number of arguments, missing required flag).
//
// Account policies (--policy, else SH_POLICIES) are used for time estimates only;
// the workers enforce their own. The default is a trial account's limits,
// requests:10:PT1M and pu:10:PT1M (see DefaultPolicies), the same default as the
// worker's, so estimates are pessimistic rather than optimistic for paid plans.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"

	"shfleet/config"
	"shfleet/jobs"
	"shfleet/keys"
	"shfleet/quota"
	"shfleet/tasks"
)

// Exit codes returned by Run.
const (
	ExitOK    = 0
	ExitError = 1
	ExitUsage = 2
)

// DefaultPollInterval is how often --watch and estimate read a job's status.
const DefaultPollInterval = time.Second

// DefaultPolicies are the account policies used for estimates when neither
// --policy nor SH_POLICIES names any: a trial account's 10 requests and 10 PU per
// minute.
var DefaultPolicies = quota.TrialPolicies

// usageError marks errors that come from a wrong command line (exit 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// app holds the global flags and the connections one command opens.
type app struct {
	stdout, stderr io.Writer

	redisURL string
	prefix   string
	json     bool
	sentinel config.SentinelFlags
	policies []string
	// policySource says where the policies of the current command came from
	// (set by fleetPolicies).
	policySource string
	poll         time.Duration

	rdb   redis.UniversalClient
	shown string // Redis URL without password
	// limiter reads the fleet's month ledger for the cost guard (set by
	// fleetPolicies when a client id names the account).
	limiter *quota.Limiter
}

// Run runs the enqueue command line args (without the program name) and returns
// the exit code. Output goes to stdout, progress and errors to stderr.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	a := &app{stdout: stdout, stderr: stderr}
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteContextC(ctx)
	defer a.close()
	if err == nil {
		return ExitOK
	}
	var ue usageError
	if errors.As(err, &ue) || !isRuntime(err) {
		name := "enqueue"
		if cmd != nil {
			name = cmd.CommandPath()
		}
		fmt.Fprintf(stderr, "enqueue: %s (see `%s --help`)\n", oneLine(err.Error()), name)
		return ExitUsage
	}
	fmt.Fprintf(stderr, "enqueue: %s\n", oneLine(err.Error()))
	return ExitError
}

// runtimeError marks errors returned by a command's RunE (exit 1).
type runtimeError struct{ err error }

func (e runtimeError) Error() string { return e.err.Error() }
func (e runtimeError) Unwrap() error { return e.err }

func isRuntime(err error) bool {
	var re runtimeError
	return errors.As(err, &re)
}

// oneLine joins a multi-line message (several problems of one input file,
// errors.Join) into one line.
func oneLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	var b strings.Builder
	for i, l := range lines {
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		if i > 0 && b.Len() > 0 {
			if strings.HasSuffix(b.String(), ":") {
				b.WriteString(" ")
			} else {
				b.WriteString("; ")
			}
		}
		b.WriteString(l)
	}
	return b.String()
}

// runE wraps a command's body so that its errors count as runtime errors.
func runE(f func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		if err := f(cmd, args); err != nil {
			var ue usageError
			if errors.As(err, &ue) {
				return err
			}
			return runtimeError{err}
		}
		return nil
	}
}

// args wraps a cobra positional-argument check into a usage error.
func args(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, a []string) error {
		if err := check(cmd, a); err != nil {
			return usageError{err}
		}
		return nil
	}
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "enqueue",
		Short: "Submit and follow shfleet jobs: AOIs x time range -> tiles -> Sentinel Hub downloads",
		Long: `enqueue submits areas of interest to the shfleet queue and follows the jobs.

A job goes CREATED -> ANALYSING -> ANALYSIS_DONE -> PROCESSING -> DONE | PARTIAL | FAILED,
like a Batch Processing API request; workers (cmd/worker) do the work.

Configuration: --redis-url or REDIS_URL (default ` + config.DefaultRedisURL + `);
Sentinel Hub credentials as in sentinelhub-py: SH_CLIENT_ID, SH_CLIENT_SECRET or
SH_CLIENT_SECRET_FILE, SH_BASE_URL, SH_TOKEN_URL, or a config.toml profile; account
policies for estimates: --policy or SH_POLICIES (default the trial's
requests:10:PT1M and pu:10:PT1M).

Exit codes: 0 ok, 1 error, 2 usage error.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cmd.Help()
		},
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	f := root.PersistentFlags()
	f.StringVar(&a.redisURL, "redis-url", "", "Redis URL (env REDIS_URL; default "+config.DefaultRedisURL+"); password and TLS (rediss://) in the URL")
	f.StringVar(&a.prefix, "prefix", "", "Redis key prefix (default "+keys.DefaultPrefix+")")
	f.BoolVar(&a.json, "json", false, "machine-readable JSON output")
	a.sentinel.Register(f)
	f.StringArrayVar(&a.policies, "policy", nil, "account policy kind:capacity:period for estimates, repeatable (env SH_POLICIES; default requests:10:PT1M and pu:10:PT1M)")
	f.DurationVar(&a.poll, "poll-interval", DefaultPollInterval, "how often --watch and estimate read the job")
	_ = f.MarkHidden("poll-interval")

	root.AddCommand(a.submitCommand(true), a.submitCommand(false), a.startCommand(), a.statusCommand(),
		a.listCommand(), a.restartCommand(), a.cancelCommand(), a.resumeCommand())
	return root
}

// redis opens the Redis client once. checkWritable also refuses an evicting
// maxmemory-policy (for commands that write).
func (a *app) redis(ctx context.Context, checkWritable bool) (redis.UniversalClient, error) {
	if a.rdb == nil {
		if err := config.CheckTLS(ctx, a.redisURL); err != nil {
			return nil, err
		}
		rdb, shown, err := config.Redis(a.redisURL)
		if err != nil {
			return nil, err
		}
		a.rdb, a.shown = rdb, shown
	}
	if checkWritable {
		if err := config.CheckRedis(ctx, a.rdb); err != nil {
			return nil, fmt.Errorf("%s: %w", a.shown, err)
		}
	} else if err := a.rdb.Ping(ctx).Err(); err != nil {
		return nil, fmt.Errorf("%s: redis unreachable: %w; check --redis-url or REDIS_URL (rediss:// when the server requires TLS) and that the server runs", a.shown, err)
	}
	return a.rdb, nil
}

func (a *app) close() {
	if a.rdb != nil {
		_ = a.rdb.Close()
	}
}

func (a *app) store(rdb redis.UniversalClient) *jobs.Store {
	return &jobs.Store{Redis: rdb, Prefix: a.prefix}
}

// controller builds the job controller; the asynq client and inspector share
// the Redis client (closing them leaves it open).
func (a *app) controller(rdb redis.UniversalClient) tasks.Controller {
	return tasks.Controller{Jobs: a.store(rdb), Queue: asynq.NewClientFromRedisClient(rdb),
		Inspector: asynq.NewInspectorFromRedisClient(rdb)}
}

// resolvePolicies checks --policy / SH_POLICIES and returns them (nil when none
// is given); fleetPolicies then reads what the fleet enforces.
func (a *app) resolvePolicies() ([]quota.Policy, error) {
	ps, err := config.Policies(a.policies, nil)
	if err != nil {
		return nil, fmt.Errorf("--policy: %w", err)
	}
	return ps, nil
}

// fleetPolicies returns the policies for estimates and sets a.policySource: the
// override when given, else what the fleet enforces (the account's contract the
// workers cached in Redis, with policies learned from 429s), else the trial's
// DefaultPolicies when no worker has read the contract yet.
func (a *app) fleetPolicies(ctx context.Context, rdb redis.UniversalClient, override []quota.Policy) []quota.Policy {
	if len(override) > 0 {
		a.policySource = "configured (--policy / " + quota.PoliciesEnv + ")"
		if cfg, err := config.Sentinel(a.sentinel); err == nil && cfg.ClientID != "" {
			// The cost guard reads the month's ledger against the configured
			// monthly policy.
			a.limiter, _ = quota.NewLimiter(quota.Config{Redis: rdb, Account: cfg.ClientID, Prefix: a.prefix, Policies: override})
		}
		return override
	}
	a.policySource = "trial default: no client id to look up the account's policies"
	cfg, err := config.Sentinel(a.sentinel)
	if err != nil || cfg.ClientID == "" {
		return DefaultPolicies
	}
	lim, err := quota.NewLimiter(quota.Config{Redis: rdb, Account: cfg.ClientID, Prefix: a.prefix, Fallback: DefaultPolicies})
	if err != nil {
		return DefaultPolicies
	}
	src, err := lim.PolicySource(ctx)
	a.limiter = lim
	if err != nil {
		a.policySource = "trial default: " + err.Error()
		return DefaultPolicies
	}
	ps, err := lim.Policies(ctx)
	if err != nil || len(ps) == 0 {
		ps = src.Policies
	}
	all := make([]string, len(src.Policies))
	for i, p := range src.Policies {
		all[i] = p.String()
	}
	// The month (PT744H) is a budget, not a rate: listed here, left out of ETAs.
	a.policySource = fmt.Sprintf("%s (%s): %s", src.Kind, strings.Join(all, ", "), src.Detail)
	return ps
}
