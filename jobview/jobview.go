// Package jobview is the one view of a job that `enqueue status|list --json`
// and the ops page's /jobs.json print: the job's counters, processing units,
// times and the time left, under one set of JSON names.
package jobview

import (
	"time"

	"shfleet/jobs"
	"shfleet/quota"
)

// View is a job as people and scripts see it.
type View struct {
	ID     string      `json:"id"`
	Name   string      `json:"name,omitempty"`
	Status jobs.Status `json:"status"`
	// StoppedReason is set when a job not final is held back (OUT_OF_PU), with
	// ResumeAt when it may go on (for OUT_OF_PU: the quota reset).
	StoppedReason string    `json:"stopped_reason,omitempty"`
	ResumeAt      time.Time `json:"resume_at,omitzero"`

	Tiles         int `json:"tiles"`
	TilesAnalysed int `json:"tiles_analysed"`
	// TilesFailed counts tiles whose catalog search failed for good (restart
	// searches them again); Error is the latest reason.
	TilesFailed     int    `json:"tiles_failed,omitempty"`
	Error           string `json:"error,omitempty"`
	CatalogRequests int    `json:"catalog_requests"`
	// Total is the number of work items; Done, Failed and the rest count them
	// by status.
	Total      int `json:"total"`
	Done       int `json:"done"`
	Failed     int `json:"failed"`
	Pending    int `json:"pending"`
	Scheduled  int `json:"scheduled"`
	Processing int `json:"processing"`

	// EstimatedPU is the analysis' estimate, SpentPU what finished items cost.
	EstimatedPU float64 `json:"estimated_pu"`
	SpentPU     float64 `json:"spent_pu"`
	// RateLimited counts the 429 answers the job met.
	RateLimited int `json:"rate_limited"`

	// ETASeconds is how long the items not yet done take at the binding
	// policy (BindingPolicy) if the job had the account to itself, to the
	// second; 0 when the job is final or has no items yet. ETA is the same for
	// people ("1m30s"), empty when there is none.
	ETASeconds    float64 `json:"eta_seconds"`
	ETA           string  `json:"eta,omitempty"`
	BindingPolicy string  `json:"binding_policy,omitempty"`
	// PaceETASeconds is how long the items not yet done take at the pace the
	// job has kept since it started processing; 0 before any item finished.
	// PaceETA is the same for people.
	PaceETASeconds float64 `json:"pace_eta_seconds"`
	PaceETA        string  `json:"pace_eta,omitempty"`
	// PolicySource says where the policies behind ETASeconds came from: the
	// account's contract as the fleet read it, --policy/SH_POLICIES, or the
	// trial fallback. Set by the caller, which knows.
	PolicySource string `json:"policy_source,omitempty"`

	Restarts int `json:"restarts,omitempty"`
	// Output is the job's output URL (never with a password: jobs refuses one).
	Output string `json:"output"`

	CreatedAt  time.Time `json:"created_at"`
	AnalysedAt time.Time `json:"analysed_at,omitzero"`
	StartedAt  time.Time `json:"started_at,omitzero"`
	UpdatedAt  time.Time `json:"updated_at,omitzero"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
	// ElapsedSeconds runs from creation to the end (or now).
	ElapsedSeconds float64 `json:"elapsed_seconds"`
}

// New is the view of j at time now under the account's policies.
func New(j jobs.Job, policies []quota.Policy, now time.Time) View {
	p := j.Progress
	v := View{ID: j.ID, Name: j.Spec.Name, Status: j.Status, StoppedReason: j.StoppedReason, ResumeAt: j.ResumeAt,
		Tiles: p.Tiles, TilesAnalysed: p.TilesAnalysed, TilesFailed: p.TilesFailed, Error: j.Error,
		CatalogRequests: p.CatalogRequests, Total: p.Total, Done: p.Done, Failed: p.Failed, Pending: p.Pending,
		Scheduled: p.Scheduled, Processing: p.Processing, EstimatedPU: milliToPU(p.EstimatedMilliPU),
		SpentPU: milliToPU(p.SpentMilliPU), RateLimited: p.RateLimited, Restarts: j.Restarts, Output: j.Spec.OutputURL,
		CreatedAt: j.CreatedAt, AnalysedAt: j.AnalysedAt, StartedAt: j.StartedAt, UpdatedAt: j.UpdatedAt,
		FinishedAt: j.FinishedAt}
	if !j.Status.Final() && p.Total > 0 {
		r := j.Remaining()
		if d, pol := quota.TimeFor(int64(r.ProcessRequests), r.EstimatedMilliPU, policies...); d > 0 {
			d = d.Round(time.Second)
			v.ETASeconds, v.ETA, v.BindingPolicy = d.Seconds(), d.String(), pol.String()
		}
		if el := now.Sub(j.StartedAt); !j.StartedAt.IsZero() && el > 0 && p.Done+p.Failed > 0 {
			d := time.Duration(float64(el) * float64(p.Remaining()) / float64(p.Done+p.Failed)).Round(time.Second)
			v.PaceETASeconds, v.PaceETA = d.Seconds(), d.String()
		}
	}
	v.ElapsedSeconds = Elapsed(j, now).Seconds()
	return v
}

// Elapsed is the time from the job's creation to its end, or to now while it
// runs; 0 without a creation time.
func Elapsed(j jobs.Job, now time.Time) time.Duration {
	end := j.FinishedAt
	if end.IsZero() {
		end = now
	}
	if j.CreatedAt.IsZero() || end.Before(j.CreatedAt) {
		return 0
	}
	return end.Sub(j.CreatedAt)
}

func milliToPU(m int64) float64 { return float64(m) / 1000 }
