package jobs

import (
	"time"

	"shfleet/grid"
)

// Job is a job as stored: its spec, status and counters.
type Job struct {
	ID     string `json:"id"`
	Spec   Spec   `json:"spec"`
	Status Status `json:"status"`
	// StoppedReason says why a job makes no progress although it is not final,
	// e.g. [ReasonOutOfPU]; empty when it is not paused. See [Store.Pause].
	StoppedReason string `json:"stopped_reason,omitempty"`
	// ResumeAt is when a paused job may go on (for OUT_OF_PU: the quota reset).
	ResumeAt time.Time `json:"resume_at,omitzero"`
	// Progress holds the counters.
	Progress Progress `json:"progress"`
	// Ending is the final status of a job whose every item is final but whose
	// manifest is not written yet: the job stays PROCESSING (so nobody reads a
	// manifest that is not there) until [Store.Finish] makes Ending its status.
	// Empty otherwise.
	Ending Status `json:"ending,omitempty"`
	// EndingAt is when Ending was set.
	EndingAt time.Time `json:"ending_at,omitzero"`
	// Restarts counts Restart calls.
	Restarts int `json:"restarts,omitempty"`
	// Drained is what of the job's records is stored as manifest parts
	// ([Store.CommitRecords]).
	Drained Drained `json:"drained,omitzero"`
	// Error is the latest reason a catalog group's search failed for good
	// ([Store.FailAnalysis]), at most [MaxErrorLen] bytes; Restart clears it.
	Error string `json:"error,omitempty"`

	CreatedAt         time.Time `json:"created_at"`
	UpdatedAt         time.Time `json:"updated_at"`
	AnalysisStartedAt time.Time `json:"analysis_started_at,omitzero"`
	AnalysedAt        time.Time `json:"analysed_at,omitzero"`
	StartedAt         time.Time `json:"started_at,omitzero"`
	// FinishedAt is when the job became DONE, PARTIAL, FAILED or CANCELED.
	FinishedAt time.Time `json:"finished_at,omitzero"`
}

// Paused reports whether the job is held back (StoppedReason set).
func (j Job) Paused() bool { return j.StoppedReason != "" }

// Progress are a job's counters, kept in the job hash by the same scripts that
// change items, so they are always consistent with the items.
type Progress struct {
	Tiles         int `json:"tiles"`
	TilesAnalysed int `json:"tiles_analysed"`
	// TilesFailed counts tiles whose catalog search failed for good; they have
	// no items until a restart searches them again.
	TilesFailed     int `json:"tiles_failed"`
	CatalogRequests int `json:"catalog_requests"`
	// Total is the number of work items.
	Total      int `json:"total"`
	Pending    int `json:"pending"`
	Scheduled  int `json:"scheduled"`
	Processing int `json:"processing"`
	Done       int `json:"done"`
	Failed     int `json:"failed"`
	// EstimatedMilliPU is the sum of the items' estimates; SpentMilliPU the sum of
	// what completed items actually cost.
	EstimatedMilliPU int64 `json:"estimated_mpu"`
	SpentMilliPU     int64 `json:"spent_mpu"`
	// RateLimited counts the 429 answers the job's requests met (0 when the
	// fleet's pacing held).
	RateLimited int `json:"rate_limited"`
}

// Remaining is the number of items not DONE or FAILED.
func (p Progress) Remaining() int { return p.Pending + p.Scheduled + p.Processing }

// Estimate is the cost of a job as the analysis found it.
type Estimate struct {
	Tiles           int `json:"tiles"`
	Items           int `json:"items"`
	CatalogRequests int `json:"catalog_requests"`
	// ProcessRequests is one Process API request per item.
	ProcessRequests  int   `json:"process_requests"`
	EstimatedMilliPU int64 `json:"estimated_mpu"`
}

// Estimate returns the job's cost estimate (final once the job is ANALYSIS_DONE).
func (j Job) Estimate() Estimate {
	p := j.Progress
	return Estimate{Tiles: p.Tiles, Items: p.Total, CatalogRequests: p.CatalogRequests,
		ProcessRequests: p.Total, EstimatedMilliPU: p.EstimatedMilliPU}
}

// Remaining estimates what is left: one request per item not yet DONE or FAILED
// and their share of the PU estimate (items are assumed to cost alike).
func (j Job) Remaining() Estimate {
	p := j.Progress
	e := Estimate{Tiles: p.Tiles, Items: p.Remaining(), ProcessRequests: p.Remaining()}
	if p.Total > 0 {
		e.EstimatedMilliPU = p.EstimatedMilliPU * int64(p.Remaining()) / int64(p.Total)
	}
	return e
}

// Item is one unit of work: one tile at one acquisition date (ModeAcquisition) or
// over one time interval (ModeInterval), one Process API request. The store keeps
// it in a few bytes (see the package doc); what a DONE item produced is a
// [Record] in the job's records stream, not part of the item.
type Item struct {
	// ID is deterministic and path-safe: <tile>_<Date>; see [ItemID].
	ID   string `json:"id"`
	Tile string `json:"tile"`
	// Date is the acquisition day or the interval's first day, YYYY-MM-DD.
	Date string `json:"date"`
	// From and To are the time range of the request: the interval, or the
	// acquisition day.
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	// EstimatedMilliPU is the analysis' estimate in milli-PU.
	EstimatedMilliPU int64      `json:"est_mpu"`
	Status           ItemStatus `json:"status"`
	// Attempts counts BeginItem calls since the item was created or restarted,
	// up to 7 (kept in 3 bits; more attempts still read 7).
	Attempts int `json:"attempts"`
	// Returns counts how often the item got stuck and went back to PENDING.
	Returns   int    `json:"returns"`
	LastError string `json:"last_error,omitempty"`
	// Ordinal is the item's number within the job (its tile's base ordinal
	// plus its index in the tile), set by the store.
	Ordinal uint64 `json:"ordinal"`
}

// Record is what a DONE item produced, as [Store.CompleteItem] appended it to
// the job's records stream (read with [Store.Records]).
type Record struct {
	// Cursor is the record's stream entry id; pass it to [Store.Records] to
	// read on after it.
	Cursor       string         `json:"-"`
	Item         string         `json:"item"`
	Tile         string         `json:"tile"`
	Date         string         `json:"date"`
	SpentMilliPU int64          `json:"spent_mpu"`
	Outputs      []OutputRecord `json:"outputs,omitempty"`
}

// OutputRecord is one object written for an item.
type OutputRecord struct {
	Key    string `json:"key"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256,omitempty"`
}

// Result is what processing an item produced.
type Result struct {
	Outputs []OutputRecord
	// PU is what the server charged (X-ProcessingUnits-Spent).
	PU float64
}

// Drained totals the manifest parts a job's records were moved to.
type Drained struct {
	// Parts is the number of parts stored; the next one is number Parts.
	Parts int `json:"parts"`
	// Outputs, Bytes and MilliPU total the parts' entries.
	Outputs int64 `json:"outputs"`
	Bytes   int64 `json:"bytes"`
	MilliPU int64 `json:"mpu"`
}

// Outcome is the effect of CompleteItem or FailItem.
type Outcome struct {
	// Backlog is the number of records in the job's stream after a
	// CompleteItem: when it is large the caller drains them into the output
	// store ([Store.Records], [Store.CommitRecords]).
	Backlog int64
	// Item is the item's status after the call.
	Item ItemStatus
	// Finished is the job's final status (DONE, PARTIAL or FAILED) when this call
	// finished the job's last item, empty otherwise. Exactly one call sees it per
	// run of a job. The job is then Ending, still PROCESSING: the caller writes
	// the manifest and calls [Store.Finish].
	Finished Status
}

// TileRecord is a job's tile and whether its catalog search is recorded, or
// failed for good (Failed, with the group's reason in Error).
type TileRecord struct {
	grid.Tile
	Analysed bool   `json:"analysed"`
	Failed   bool   `json:"failed,omitempty"`
	Error    string `json:"error,omitempty"`
}

// FailedGroup is a catalog group whose search failed for good
// ([Store.FailAnalysis]): the group's number (its catalog task's), the tiles it
// left without items, and why.
type FailedGroup struct {
	Group    int       `json:"group"`
	Tiles    []string  `json:"tiles"`
	Reason   string    `json:"reason"`
	FailedAt time.Time `json:"failed_at"`
}

// Restarted is what [Store.Restart] put back to work.
type Restarted struct {
	// Items counts the FAILED items that are PENDING again.
	Items int
	// Groups are the catalog groups to search again, sorted by group number;
	// when there are any the job is ANALYSING again.
	Groups []FailedGroup
}
