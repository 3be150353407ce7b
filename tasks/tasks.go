package tasks

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/hibiken/asynq"

	"shfleet/grid"
	"shfleet/jobs"
	"shfleet/keys"
	"shfleet/sentinel"
)

// Task types and queues.
const (
	// TypeCatalog searches the Catalog API for one group of neighbouring tiles.
	TypeCatalog = "shfleet:catalog"
	// TypeProcess downloads one work item with the Process API.
	TypeProcess = "shfleet:process"
	// TypeFinish ends a job whose last item is final but whose end was not
	// completed by the worker that finished that item (see Handlers.FinishJob).
	TypeFinish = "shfleet:finish"
	// QueueCatalog is the queue of catalog tasks (analysis).
	QueueCatalog = "catalog"
	// DefaultGroupSize is the most tiles one catalog search covers.
	DefaultGroupSize = 64
	// DefaultGroupDegrees is the side of the lon/lat cell that groups neighbouring
	// tiles for one catalog search.
	DefaultGroupDegrees = 1.0
	// DefaultCollection is the collection of a Spec that names none.
	DefaultCollection = "sentinel-2-l2a"
	// CatalogMaxRetry and ProcessMaxRetry bound the retries of failures (5xx,
	// network, truncated bodies); waits for the quota do not count.
	CatalogMaxRetry = 8
	ProcessMaxRetry = 8
	// TaskTimeout bounds one task's run.
	TaskTimeout = 15 * time.Minute
)

// CatalogPayload is the payload of a catalog task: a job id and the names of the
// tiles its search covers.
type CatalogPayload struct {
	Job   string   `json:"job"`
	Group int      `json:"group"`
	Tiles []string `json:"tiles"`
	// Restarts is the job's restart count when the task was enqueued (0 at
	// submit), part of the task id: see [CatalogTaskID].
	Restarts int `json:"restarts,omitempty"`
}

// ProcessPayload is the payload of a process task: a job id and an item id.
type ProcessPayload struct {
	Job  string `json:"job"`
	Item string `json:"item"`
}

// CatalogTaskID is the asynq task id of a job's catalog group:
// <job>:catalog:<group> at submit, <job>:catalog:<group>:r<restarts> when a
// restart searches a failed group again (asynq keeps the id of the archived task
// that failed, so the re-run needs a fresh one).
func CatalogTaskID(job string, group, restarts int) string {
	if restarts == 0 {
		return fmt.Sprintf("%s:catalog:%d", job, group)
	}
	return fmt.Sprintf("%s:catalog:%d:r%d", job, group, restarts)
}

// ProcessTaskID is the asynq task id of an item; restarts counts the job's
// restarts, so a restarted item gets a fresh id (asynq keeps ids taken while a task
// exists in any state, archive included).
func ProcessTaskID(job, item string, restarts int) string {
	return fmt.Sprintf("%s:item:%s:r%d", job, item, restarts)
}

// NewCatalogTask builds the catalog task of one group.
func NewCatalogTask(prefix string, p CatalogPayload) (*asynq.Task, error) {
	b, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	return asynq.NewTask(TypeCatalog, b, asynq.Queue(QueueName(prefix, QueueCatalog)), asynq.TaskID(CatalogTaskID(p.Job, p.Group, p.Restarts)),
		asynq.MaxRetry(CatalogMaxRetry), asynq.Timeout(TaskTimeout)), nil
}

// NewProcessTask builds the process task of one item on the job's queue.
func NewProcessTask(prefix string, job jobs.Job, item string) (*asynq.Task, error) {
	b, err := json.Marshal(ProcessPayload{Job: job.ID, Item: item})
	if err != nil {
		return nil, err
	}
	return asynq.NewTask(TypeProcess, b, asynq.Queue(QueueName(prefix, ProcessQueue(job.Spec))),
		asynq.TaskID(ProcessTaskID(job.ID, item, job.Restarts)),
		asynq.MaxRetry(ProcessMaxRetry), asynq.Timeout(TaskTimeout)), nil
}

// FinishPayload is the payload of a finish task: the job id only.
type FinishPayload struct {
	Job string `json:"job"`
}

// FinishMaxRetry is how often a finish task is retried (manifest writes that
// fail, e.g. an output store that is down for a while).
const FinishMaxRetry = 25

// FinishTaskID is the asynq task id of a job's finish task: one at a time.
func FinishTaskID(job string) string { return job + ":finish" }

// NewFinishTask builds the finish task of a job, on the job's process queue
// (the workers that serve the job's items also write its outputs).
func NewFinishTask(prefix string, job jobs.Job) (*asynq.Task, error) {
	b, err := json.Marshal(FinishPayload{Job: job.ID})
	if err != nil {
		return nil, err
	}
	return asynq.NewTask(TypeFinish, b, asynq.Queue(QueueName(prefix, ProcessQueue(job.Spec))),
		asynq.TaskID(FinishTaskID(job.ID)), asynq.MaxRetry(FinishMaxRetry), asynq.Timeout(TaskTimeout)), nil
}

// QueueName is the asynq queue of the named queue under a key prefix: the name
// itself under the default prefix (or none), "<prefix>:<name>" under any other,
// so that fleets with different prefixes on one Redis never take (and archive)
// each other's tasks.
func QueueName(prefix, name string) string {
	prefix = strings.TrimSuffix(prefix, ":")
	if prefix == "" || prefix == keys.DefaultPrefix {
		return name
	}
	return prefix + ":" + name
}

// ProcessQueue is the queue name of a job's process tasks, as the user gave it
// (asynq's queue is QueueName(prefix, ProcessQueue(spec))).
func ProcessQueue(spec jobs.Spec) string { return cmp.Or(spec.Queue, jobs.DefaultQueue) }

// GroupTiles groups tiles for catalog searches: tiles whose centres fall in the
// same degrees x degrees lon/lat cell share a search, at most size per group, so
// catalog requests grow with the number of scenes and pages, not with the number
// of tiles. The result is deterministic (sorted by cell, then tile name).
func GroupTiles(tiles []grid.Tile, size int, degrees float64) [][]grid.Tile {
	size = cmp.Or(size, DefaultGroupSize)
	if degrees <= 0 {
		degrees = DefaultGroupDegrees
	}
	type cell struct{ x, y int }
	cells := map[cell][]grid.Tile{}
	for _, t := range tiles {
		c := cell{int(math.Floor((t.WGS84[0] + t.WGS84[2]) / 2 / degrees)), int(math.Floor((t.WGS84[1] + t.WGS84[3]) / 2 / degrees))}
		cells[c] = append(cells[c], t)
	}
	keys := make([]cell, 0, len(cells))
	for c := range cells {
		keys = append(keys, c)
	}
	slices.SortFunc(keys, func(a, b cell) int { return cmp.Or(cmp.Compare(a.y, b.y), cmp.Compare(a.x, b.x)) })
	var groups [][]grid.Tile
	for _, c := range keys {
		ts := cells[c]
		slices.SortFunc(ts, func(a, b grid.Tile) int { return cmp.Compare(a.Name, b.Name) })
		for len(ts) > 0 {
			n := min(size, len(ts))
			groups = append(groups, ts[:n:n])
			ts = ts[n:]
		}
	}
	return groups
}

// collectionOf is the job's collection from the table; an id the table does not
// know (submit refuses those) is treated like a BYOC collection: main deployment,
// a catalog collection of the same name, no cloud cover.
func collectionOf(spec jobs.Spec) sentinel.Collection {
	id := cmp.Or(spec.Collection, DefaultCollection)
	if c, ok := sentinel.LookupCollection(id); ok {
		return c
	}
	return sentinel.Collection{ID: id, CatalogID: id, Deployment: sentinel.DeploymentMain, TimeRange: true}
}

// Responses returns the spec's responses as the Process API's, or one GeoTIFF
// "default" output when the spec names none.
func Responses(spec jobs.Spec) []sentinel.OutputResponse {
	if len(spec.Responses) == 0 {
		return []sentinel.OutputResponse{{Identifier: "default", Format: sentinel.ResponseFormat{Type: "image/tiff"}}}
	}
	out := make([]sentinel.OutputResponse, len(spec.Responses))
	for i, r := range spec.Responses {
		out[i] = sentinel.OutputResponse{Identifier: r.Identifier, Format: sentinel.ResponseFormat{Type: r.Format.Type}}
	}
	return out
}

// BuildProcessRequest is the Process API request of one item: the tile's bbox in
// its own CRS, the item's time range, the job's collection, filters, evalscript and
// responses, and the tile's pixel size.
func BuildProcessRequest(spec jobs.Spec, tile grid.Tile, item jobs.Item) sentinel.ProcessRequest {
	crs := sentinel.CRSWGS84
	if tile.EPSG != 0 && tile.EPSG != 4326 {
		crs = fmt.Sprintf("%s%d", sentinel.CRSEPSGPrefix, tile.EPSG)
	}
	coll := collectionOf(spec)
	var filter *sentinel.DataFilter
	if coll.TimeRange { // a timeless collection (DEM) has no time range, order or cloud filter
		filter = &sentinel.DataFilter{
			TimeRange:       &sentinel.TimeRange{From: item.From.UTC(), To: item.To.UTC()},
			MosaickingOrder: spec.MosaickingOrder,
		}
		if coll.CloudCover {
			filter.MaxCloudCoverage = spec.MaxCloudCover
		}
	}
	return sentinel.ProcessRequest{
		Input: sentinel.ProcessInput{
			Bounds: sentinel.Bounds{BBox: tile.BBox[:], Properties: sentinel.BoundsProperties{CRS: crs}},
			Data:   []sentinel.InputData{{Type: coll.ID, DataFilter: filter}},
		},
		Output:     sentinel.ProcessOutput{Width: tile.Width, Height: tile.Height, Responses: Responses(spec)},
		Evalscript: spec.Evalscript,
	}
}
