package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"shfleet/config"
	"shfleet/jobs"
	"shfleet/quota"
	"shfleet/quota/sentinelquota"
	"shfleet/sentinel"
)

func (a *app) statusCommand() *cobra.Command {
	var watch bool
	cmd := &cobra.Command{
		Use:   "status [JOB]",
		Short: "Show a job's status, counters and PU (the newest job when JOB is omitted)",
		Args:  args(cobra.MaximumNArgs(1)),
	}
	cmd.Flags().BoolVar(&watch, "watch", false, "follow the job with a progress bar until it is final, then print a summary")
	cmd.RunE = runE(func(cmd *cobra.Command, args []string) error {
		ctx := cmd.Context()
		rdb, policies, err := a.readFleet(ctx)
		if err != nil {
			return err
		}
		store := a.store(rdb)
		var job jobs.Job
		if len(args) == 1 {
			job, err = store.Get(ctx, args[0])
		} else {
			job, err = newest(ctx, store)
		}
		if err != nil {
			return err
		}
		if watch {
			return a.watch(ctx, store, job.ID, policies)
		}
		if a.json {
			return a.writeJSON(a.jobView(job, policies))
		}
		a.printStatus(job, policies)
		return nil
	})
	return cmd
}

func newest(ctx context.Context, store *jobs.Store) (jobs.Job, error) {
	all, err := store.List(ctx)
	if err != nil {
		return jobs.Job{}, err
	}
	if len(all) == 0 {
		return jobs.Job{}, errors.New("no jobs yet; submit one with `enqueue submit`")
	}
	return all[len(all)-1], nil
}

func (a *app) listCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List jobs, oldest first",
		Args:  args(cobra.NoArgs),
	}
	cmd.RunE = runE(func(cmd *cobra.Command, _ []string) error {
		ctx := cmd.Context()
		rdb, policies, err := a.readFleet(ctx)
		if err != nil {
			return err
		}
		all, err := a.store(rdb).List(ctx)
		if err != nil {
			return err
		}
		if a.json {
			views := make([]JobView, 0, len(all))
			for _, j := range all {
				views = append(views, a.jobView(j, policies))
			}
			return a.writeJSON(views)
		}
		if len(all) == 0 {
			fmt.Fprintln(a.stdout, "no jobs yet; submit one with `enqueue submit`")
			return nil
		}
		tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tSTATUS\tDONE/TOTAL\tFAILED\tPU SPENT/EST\tCREATED")
		for _, j := range all {
			p := j.Progress
			status := string(j.Status)
			if j.StoppedReason != "" {
				status += " (" + j.StoppedReason + ")"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%d\t%s/%s\t%s\n", j.ID, j.Spec.Name, status, p.Done, p.Total, p.Failed,
				fmtPU(milliToPU(p.SpentMilliPU)), fmtPU(milliToPU(p.EstimatedMilliPU)), j.CreatedAt.UTC().Format("2006-01-02 15:04"))
		}
		return tw.Flush()
	})
	return cmd
}

// jobCommand builds a command that takes one JOB and needs a writable Redis.
func (a *app) jobCommand(use, short string, do func(ctx context.Context, job jobs.Job) error) *cobra.Command {
	cmd := &cobra.Command{Use: use + " JOB", Short: short, Args: args(cobra.ExactArgs(1))}
	cmd.RunE = runE(func(cmd *cobra.Command, args []string) error {
		ctx := cmd.Context()
		rdb, err := a.redis(ctx, true)
		if err != nil {
			return err
		}
		job, err := a.store(rdb).Get(ctx, args[0])
		if err != nil {
			return err
		}
		return do(ctx, job)
	})
	return cmd
}

func (a *app) startCommand() *cobra.Command {
	return a.jobCommand("start", "Start processing an analysed job (or as soon as its analysis is done)", func(ctx context.Context, job jobs.Job) error {
		policies, err := a.resolvePolicies()
		if err != nil {
			return err
		}
		policies = a.fleetPolicies(ctx, a.rdb, policies)
		ctl := a.controller(a.rdb)
		defer ctl.Queue.Close()
		job, err = ctl.Start(ctx, job.ID)
		if err != nil {
			return err
		}
		if job, err = ctl.Jobs.Get(ctx, job.ID); err != nil {
			return err
		}
		if a.json {
			return a.writeJSON(a.jobView(job, policies))
		}
		switch job.Status {
		case jobs.StatusCreated, jobs.StatusAnalysing:
			fmt.Fprintf(a.stdout, "job %s: %s; processing starts as soon as the analysis is done\n", job.ID, job.Status)
		default:
			fmt.Fprintf(a.stdout, "job %s: %s, %d items queued; follow it with `enqueue status %s --watch`\n", job.ID, job.Status, job.Progress.Total, job.ID)
		}
		return nil
	})
}

// ActionView is what restart, cancel and resume print with --json.
type ActionView struct {
	ID     string      `json:"id"`
	Action string      `json:"action"`
	Status jobs.Status `json:"status"`
	// Requeued is the number of failed items restart re-queued.
	Requeued int `json:"requeued,omitempty"`
}

func (a *app) restartCommand() *cobra.Command {
	return a.jobCommand("restart", "Re-queue the failed items of a PARTIAL or FAILED job", func(ctx context.Context, job jobs.Job) error {
		ctl := a.controller(a.rdb)
		defer ctl.Queue.Close()
		n, err := ctl.Restart(ctx, job.ID)
		if err != nil {
			return err
		}
		if job, err = ctl.Jobs.Get(ctx, job.ID); err != nil {
			return err
		}
		if a.json {
			return a.writeJSON(ActionView{ID: job.ID, Action: "restart", Status: job.Status, Requeued: n})
		}
		fmt.Fprintf(a.stdout, "job %s: re-queued %d failed items, %s; follow it with `enqueue status %s --watch`\n", job.ID, n, job.Status, job.ID)
		return nil
	})
}

func (a *app) cancelCommand() *cobra.Command {
	return a.jobCommand("cancel", "Cancel a job: its queued tasks are deleted, running ones stopped", func(ctx context.Context, job jobs.Job) error {
		ctl := a.controller(a.rdb)
		defer ctl.Queue.Close()
		if err := ctl.Cancel(ctx, job.ID); err != nil {
			return err
		}
		job, err := ctl.Jobs.Get(ctx, job.ID)
		if err != nil {
			return err
		}
		if a.json {
			return a.writeJSON(ActionView{ID: job.ID, Action: "cancel", Status: job.Status})
		}
		fmt.Fprintf(a.stdout, "job %s: %s with %d/%d items done\n", job.ID, job.Status, job.Progress.Done, job.Progress.Total)
		return nil
	})
}

func (a *app) resumeCommand() *cobra.Command {
	return a.jobCommand("resume", "Resume a job stopped by the monthly PU quota (OUT_OF_PU) after the budget was raised", func(ctx context.Context, job jobs.Job) error {
		if job.StoppedReason != jobs.ReasonOutOfPU {
			why := "it is not paused"
			if job.StoppedReason != "" {
				why = "it is paused for " + job.StoppedReason
			}
			return fmt.Errorf("job %s is %s and %s, not stopped for %s: resume lifts only a monthly-quota stop (and clears the account's month flag); nothing was changed", job.ID, job.Status, why, jobs.ReasonOutOfPU)
		}
		policies, err := a.resolvePolicies()
		if err != nil {
			return err
		}
		cfg, err := config.Sentinel(a.sentinel)
		if err != nil {
			return err
		}
		if cfg.ClientID == "" {
			return errors.New("resume: no Sentinel Hub client id, so no account whose monthly quota flag to clear: set SH_CLIENT_ID or --client-id")
		}
		// With the fleet's shared token the limiter re-reads the account's
		// contract at once: a raised plan counts before the tasks run again.
		var account quota.AccountAPI
		if secret, err := cfg.Secret(); err == nil && secret != "" {
			tokens, err := quota.NewSharedTokenSource(quota.TokenConfig{Redis: a.rdb, ClientID: cfg.ClientID, ClientSecret: secret,
				Upstream: sentinelquota.Upstream(cfg), Prefix: a.prefix})
			if err != nil {
				return err
			}
			account = sentinelquota.Account(sentinel.NewClient(cfg, tokens).RateLimit)
		}
		lim, err := quota.NewLimiter(quota.Config{Redis: a.rdb, Account: cfg.ClientID, Prefix: a.prefix, Policies: policies, AccountAPI: account})
		if err != nil {
			return err
		}
		if err := lim.ResumeMonth(ctx); err != nil {
			return err
		}
		ctl := a.controller(a.rdb)
		defer ctl.Queue.Close()
		if err := ctl.Resume(ctx, job.ID); err != nil {
			return err
		}
		if job, err = ctl.Jobs.Get(ctx, job.ID); err != nil {
			return err
		}
		if a.json {
			return a.writeJSON(ActionView{ID: job.ID, Action: "resume", Status: job.Status})
		}
		fmt.Fprintf(a.stdout, "job %s: resumed (%s); the account's monthly quota flag is cleared\n", job.ID, job.Status)
		return nil
	})
}

// policyReread is how often --watch re-reads the policies the fleet enforces.
const policyReread = 5 * time.Second

// watch follows a job until it is final: a progress bar on stderr (JSON lines on
// stdout with --json), then a summary line. A job that ends other than DONE is
// an error.
func (a *app) watch(ctx context.Context, store *jobs.Store, id string, policies []quota.Policy) error {
	var bar *progressBar
	var lastKey string
	tick := time.NewTicker(a.pollInterval())
	defer tick.Stop()
	override, err := a.resolvePolicies()
	if err != nil {
		return err
	}
	reread := time.Now().Add(policyReread)
	for {
		job, err := store.Get(ctx, id)
		if err != nil {
			return err
		}
		if len(override) == 0 && time.Now().After(reread) {
			// The workers may have read the account's contract since the watch
			// began (a fleet that just started), or learned a stricter policy.
			policies = a.fleetPolicies(ctx, store.Redis, nil)
			reread = time.Now().Add(policyReread)
		}
		if a.json {
			key := fmt.Sprint(job.Status, job.StoppedReason, job.Progress)
			if key != lastKey || job.Status.Final() {
				lastKey = key
				if err := a.writeJSON(a.jobView(job, policies)); err != nil {
					return err
				}
			}
		} else {
			bar = a.updateBar(bar, job, policies)
		}
		if job.Status.Final() {
			bar.finish(a.stderr)
			if !a.json {
				fmt.Fprintln(a.stdout, summary(job))
			}
			return finalError(job)
		}
		select {
		case <-ctx.Done():
			if bar != nil {
				fmt.Fprintln(a.stderr)
			}
			return fmt.Errorf("stopped watching job %s (%s); it goes on: `enqueue status %s --watch`", id, job.Status, id)
		case <-tick.C:
		}
	}
}

func (a *app) pollInterval() time.Duration {
	if a.poll <= 0 {
		return DefaultPollInterval
	}
	return a.poll
}

// updateBar draws the job's progress: a spinner while the job is analysed, a
// bar of items (done + failed of total) with rate and ETA afterwards.
func (a *app) updateBar(pb *progressBar, job jobs.Job, policies []quota.Policy) *progressBar {
	p := job.Progress
	analysing := job.Status == jobs.StatusCreated || job.Status == jobs.StatusAnalysing
	desc := fmt.Sprintf("%s %s/%s PU", job.Status, fmtPU(milliToPU(p.SpentMilliPU)), fmtPU(milliToPU(p.EstimatedMilliPU)))
	if p.Failed > 0 {
		desc += fmt.Sprintf(", %d failed", p.Failed)
	}
	if job.StoppedReason != "" {
		desc += " " + job.StoppedReason
		if !job.ResumeAt.IsZero() {
			desc += " until " + job.ResumeAt.UTC().Format(time.DateOnly)
		}
	}
	if analysing {
		desc = fmt.Sprintf("%s %d/%d tiles", job.Status, p.TilesAnalysed, p.Tiles)
	} else if d, name := binding(job.Remaining(), policies); d > 0 {
		desc += fmt.Sprintf(", ~%s left at %s", fmtDuration(d), name)
	}
	wantMax := int64(-1)
	if !analysing {
		wantMax = int64(max(p.Total, 1))
	}
	if !isTerminal(a.stderr) {
		return a.plainProgress(pb, job, desc, analysing)
	}
	if pb == nil || pb.max != wantMax {
		pb.finish(a.stderr)
		opts := []progressbar.Option{progressbar.OptionSetWriter(a.stderr), progressbar.OptionSetWidth(30),
			progressbar.OptionThrottle(200 * time.Millisecond), progressbar.OptionSetDescription(desc)}
		if wantMax > 0 {
			opts = append(opts, progressbar.OptionShowCount(), progressbar.OptionShowIts(),
				progressbar.OptionSetItsString("items"), progressbar.OptionSetPredictTime(true))
		} else {
			opts = append(opts, progressbar.OptionSpinnerType(14))
		}
		pb = &progressBar{ProgressBar: progressbar.NewOptions64(wantMax, opts...), max: wantMax}
	}
	pb.Describe(desc)
	if wantMax > 0 {
		_ = pb.Set64(int64(p.Done + p.Failed))
	} else {
		_ = pb.Add(1)
	}
	return pb
}

// PlainProgressInterval is how often progress is printed as a plain line when
// stderr is not a terminal (a log file, a pipe), besides every status change.
const PlainProgressInterval = 5 * time.Second

// plainProgress prints one plain line (no carriage returns) when the status
// changed or PlainProgressInterval has passed since the last line.
func (a *app) plainProgress(pb *progressBar, job jobs.Job, desc string, analysing bool) *progressBar {
	if pb == nil {
		pb = &progressBar{plain: true}
	}
	key := string(job.Status) + job.StoppedReason
	now := time.Now()
	if key == pb.plainKey && now.Sub(pb.plainAt) < PlainProgressInterval {
		return pb
	}
	pb.plainKey, pb.plainAt = key, now
	p := job.Progress
	if analysing {
		fmt.Fprintf(a.stderr, "%s job %s: %s\n", now.UTC().Format(time.TimeOnly), job.ID, desc)
		return pb
	}
	fmt.Fprintf(a.stderr, "%s job %s: %d/%d items, %s\n", now.UTC().Format(time.TimeOnly), job.ID, p.Done+p.Failed, p.Total, desc)
	return pb
}

// isTerminal reports whether w is a terminal (a bar can redraw itself there).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// progressBar is a progress bar or spinner (max -1) on stderr, or the state of
// plain progress lines when stderr is not a terminal.
type progressBar struct {
	*progressbar.ProgressBar
	max int64

	plain    bool
	plainKey string
	plainAt  time.Time
}

// finish completes the bar's line; nil is fine.
func (b *progressBar) finish(w io.Writer) {
	if b == nil || b.plain {
		return
	}
	_ = b.Finish()
	fmt.Fprintln(w)
}

// waitAnalysed polls until the job's analysis is done (a spinner on stderr
// unless --json) and returns the job.
func (a *app) waitAnalysed(ctx context.Context, store *jobs.Store, id string) (jobs.Job, error) {
	var bar *progressBar
	tick := time.NewTicker(a.pollInterval())
	defer tick.Stop()
	done := func() { bar.finish(a.stderr) }
	for {
		job, err := store.Get(ctx, id)
		if err != nil {
			done()
			return job, err
		}
		switch job.Status {
		case jobs.StatusCanceled:
			done()
			return job, fmt.Errorf("job %s was canceled before its analysis ended", id)
		case jobs.StatusCreated, jobs.StatusAnalysing:
		default:
			done()
			return job, nil
		}
		if !a.json {
			bar = a.updateBar(bar, job, nil)
		}
		select {
		case <-ctx.Done():
			done()
			return job, fmt.Errorf("stopped waiting for the analysis of job %s (%s): it goes on; see the estimate later with `enqueue status %s`", id, job.Status, id)
		case <-tick.C:
		}
	}
}

// readFleet opens Redis for reading and resolves the policies the fleet
// enforces (the --policy override, else the fleet's cached contract).
func (a *app) readFleet(ctx context.Context) (redis.UniversalClient, []quota.Policy, error) {
	policies, err := a.resolvePolicies()
	if err != nil {
		return nil, nil, err
	}
	rdb, err := a.redis(ctx, false)
	if err != nil {
		return nil, nil, err
	}
	return rdb, a.fleetPolicies(ctx, rdb, policies), nil
}
