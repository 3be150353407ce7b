package cli

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"shfleet/jobs"
	"shfleet/jobview"
	"shfleet/quota"
)

// JobView is a job as status, list and --watch print it with --json: the
// fleet's one view of a job, the same as the ops page's /jobs.json.
type JobView = jobview.View

// EstimateView is what estimate prints with --json.
type EstimateView struct {
	ID              string      `json:"id"`
	Status          jobs.Status `json:"status"`
	Tiles           int         `json:"tiles"`
	Items           int         `json:"items"`
	CatalogRequests int         `json:"catalog_requests"`
	ProcessRequests int         `json:"process_requests"`
	EstimatedPU     float64     `json:"estimated_pu"`
	// DurationSeconds is the processing time at the binding policy.
	DurationSeconds float64  `json:"duration_seconds"`
	BindingPolicy   string   `json:"binding_policy,omitempty"`
	Policies        []string `json:"policies"`
	// PolicySource says where Policies came from (see JobView.PolicySource).
	PolicySource string `json:"policy_source,omitempty"`
	// Batch is the Batch API's estimate of the same job (estimate --engine both).
	Batch *BatchEstimateView `json:"batch,omitempty"`
}

func milliToPU(m int64) float64 { return float64(m) / 1000 }

// binding returns how long e takes at the slowest policy, and that policy.
func binding(e jobs.Estimate, policies []quota.Policy) (time.Duration, string) {
	d, p := quota.TimeFor(int64(e.ProcessRequests), e.EstimatedMilliPU, policies...)
	if d == 0 {
		return 0, ""
	}
	return d, p.String()
}

func newJobView(j jobs.Job, policies []quota.Policy) JobView {
	return jobview.New(j, policies, time.Now())
}

func elapsed(j jobs.Job) time.Duration { return jobview.Elapsed(j, time.Now()) }

// jobView is newJobView with the source of the policies.
func (a *app) jobView(j jobs.Job, policies []quota.Policy) JobView {
	v := newJobView(j, policies)
	v.PolicySource = a.policySource
	return v
}

func newEstimateView(j jobs.Job, policies []quota.Policy) EstimateView {
	e := j.Estimate()
	d, name := binding(e, policies)
	v := EstimateView{ID: j.ID, Status: j.Status, Tiles: e.Tiles, Items: e.Items, CatalogRequests: e.CatalogRequests,
		ProcessRequests: e.ProcessRequests, EstimatedPU: milliToPU(e.EstimatedMilliPU), DurationSeconds: d.Seconds(),
		BindingPolicy: name, Policies: []string{}}
	for _, p := range policies {
		v.Policies = append(v.Policies, p.String())
	}
	return v
}

func (a *app) writeJSON(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(a.stdout, "%s\n", b)
	return err
}

// fmtPU prints PU with up to three decimals.
func fmtPU(pu float64) string {
	return strconv.FormatFloat(math.Round(pu*1000)/1000, 'f', -1, 64)
}

// fmtDuration rounds a duration for people: to the second below an hour
// ("4m10s", "12s"), to the minute below 48 hours ("2h3m"), in days with one
// decimal beyond ("3.0 days").
func fmtDuration(d time.Duration) string {
	switch {
	case d <= 0:
		return "0s"
	case d < time.Hour:
		return d.Round(time.Second).String()
	case d < 48*time.Hour:
		return strings.TrimSuffix(d.Round(time.Minute).String(), "0s")
	default:
		return fmt.Sprintf("%.1f days", d.Hours()/24)
	}
}

// printEstimate prints an analysed job's cost and time.
func (a *app) printEstimate(j jobs.Job, policies []quota.Policy, batch *BatchEstimateView) error {
	v := newEstimateView(j, policies)
	v.PolicySource = a.policySource
	v.Batch = batch
	if a.json {
		return a.writeJSON(v)
	}
	w := a.stdout
	fmt.Fprintf(w, "job %s: %s\n", j.ID, j.Status)
	fmt.Fprintf(w, "  tiles              %d\n", v.Tiles)
	fmt.Fprintf(w, "  items              %d\n", v.Items)
	fmt.Fprintf(w, "  catalog requests   %d (made by the analysis)\n", v.CatalogRequests)
	fmt.Fprintf(w, "  process requests   %d\n", v.ProcessRequests)
	fmt.Fprintf(w, "  processing units   %s PU (estimate)\n", fmtPU(v.EstimatedPU))
	if v.BindingPolicy != "" {
		fmt.Fprintf(w, "  time               %s at %s (policies %s)\n", fmtDuration(time.Duration(v.DurationSeconds*float64(time.Second))), v.BindingPolicy, strings.Join(v.Policies, ", "))
	}
	if v.PolicySource != "" {
		fmt.Fprintf(w, "  policies from      %s\n", v.PolicySource)
	}
	if j.Status == jobs.StatusAnalysisDone {
		fmt.Fprintf(w, "start it with `enqueue start %s`\n", j.ID)
	}
	return nil
}

// printStatus prints one job for people.
func (a *app) printStatus(j jobs.Job, policies []quota.Policy) {
	v := a.jobView(j, policies)
	w := a.stdout
	name := ""
	if v.Name != "" {
		name = " (" + v.Name + ")"
	}
	fmt.Fprintf(w, "job %s%s: %s\n", j.ID, name, j.Status)
	failedTiles := ""
	if v.TilesFailed > 0 {
		failedTiles = fmt.Sprintf(", %d failed", v.TilesFailed)
	}
	fmt.Fprintf(w, "  tiles     %d, %d analysed%s, %d catalog requests\n", v.Tiles, v.TilesAnalysed, failedTiles, v.CatalogRequests)
	if v.Error != "" {
		fmt.Fprintf(w, "  error     %s\n", v.Error)
	}
	if v.TilesAnalysed+v.TilesFailed == v.Tiles || v.Total > 0 {
		fmt.Fprintf(w, "  items     %d/%d done, %d failed, %d pending, %d scheduled, %d processing\n",
			v.Done, v.Total, v.Failed, v.Pending, v.Scheduled, v.Processing)
		fmt.Fprintf(w, "  PU        %s spent of %s estimated\n", fmtPU(v.SpentPU), fmtPU(v.EstimatedPU))
		fmt.Fprintf(w, "  429s      %d\n", j.Progress.RateLimited)
	}
	if v.BindingPolicy != "" && v.ETASeconds > 0 {
		fmt.Fprintf(w, "  remaining ~%s at %s\n", fmtDuration(time.Duration(v.ETASeconds*float64(time.Second))), v.BindingPolicy)
	}
	if v.PolicySource != "" {
		fmt.Fprintf(w, "  policies  from %s\n", v.PolicySource)
	}
	if j.StoppedReason != "" {
		fmt.Fprintf(w, "  stopped   %s", j.StoppedReason)
		if !j.ResumeAt.IsZero() {
			fmt.Fprintf(w, " until %s", j.ResumeAt.UTC().Format("2006-01-02 15:04 UTC"))
		}
		if j.StoppedReason == jobs.ReasonOutOfPU {
			fmt.Fprintf(w, " (monthly processing units used up; raise the budget and run `enqueue resume %s` to go on earlier)", j.ID)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "  output    %s\n", v.Output)
	fmt.Fprintf(w, "  created   %s, elapsed %s\n", j.CreatedAt.UTC().Format(time.RFC3339), fmtDuration(elapsed(j)))
	switch j.Status {
	case jobs.StatusAnalysisDone:
		fmt.Fprintf(w, "start it with `enqueue start %s`\n", j.ID)
	case jobs.StatusPartial, jobs.StatusFailed:
		if v.TilesFailed > 0 {
			fmt.Fprintf(w, "`enqueue restart %s` re-queues its %d failed items and searches its %d failed tiles again\n", j.ID, v.Failed, v.TilesFailed)
		} else {
			fmt.Fprintf(w, "`enqueue restart %s` re-queues its %d failed items\n", j.ID, v.Failed)
		}
	}
}

// summary is the line printed when a watched job is final.
func summary(j jobs.Job) string {
	p := j.Progress
	return fmt.Sprintf("job %s %s: %d/%d items done, %d failed, %s PU spent (estimate %s), 429s: %d, elapsed %s",
		j.ID, j.Status, p.Done, p.Total, p.Failed, fmtPU(milliToPU(p.SpentMilliPU)), fmtPU(milliToPU(p.EstimatedMilliPU)), p.RateLimited, fmtDuration(elapsed(j)))
}

// finalError is the error of a watched job that did not end DONE.
func finalError(j jobs.Job) error {
	switch j.Status {
	case jobs.StatusPartial, jobs.StatusFailed:
		return fmt.Errorf("job %s ended %s: %d of %d items failed; `enqueue restart %s` re-queues them", j.ID, j.Status, j.Progress.Failed, j.Progress.Total, j.ID)
	case jobs.StatusCanceled:
		return fmt.Errorf("job %s was canceled", j.ID)
	}
	return nil
}
