package tasks

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"shfleet/grid"
	"shfleet/jobs"
	"shfleet/quota"
	"shfleet/sentinel"
)

// Scene is one catalog item as the analysis keeps it (and caches it).
type Scene struct {
	ID         string     `json:"id"`
	BBox       [4]float64 `json:"bbox"`
	Datetime   time.Time  `json:"datetime"`
	CloudCover *float64   `json:"cloud,omitempty"`
}

// HandleCatalog runs a catalog task: one search (all pages) for a group of
// neighbouring tiles, scenes assigned to tiles by footprint, the resulting work
// items recorded. When this finishes the job's analysis and the job
// auto-starts, the recording script made it PROCESSING: the feeder queues its
// items, this handler enqueues none.
func (h *Handlers) HandleCatalog(ctx context.Context, t *asynq.Task) error {
	p, err := decode[CatalogPayload](t)
	if err != nil {
		return err
	}
	job, err := h.job(ctx, p.Job)
	if err != nil {
		return err
	}
	if job.Status == jobs.StatusCanceled || job.Status.Final() {
		return nil
	}
	tiles, err := h.Jobs.TilesByName(ctx, job.ID, p.Tiles)
	if err != nil {
		return err
	}
	log := h.Log.With().Str("job", job.ID).Int("group", p.Group).Logger()

	scenes, requests, err := h.search(ctx, job, SearchRequest(job.Spec, tiles))
	if err != nil {
		switch Judge(ctx, err) {
		case PauseMonth:
			return h.monthSpent(ctx, job, err)
		case FailNow:
			return h.failGroup(ctx, job, p, fmt.Sprintf("catalog group %d: %v", p.Group, err), err)
		}
		return fmt.Errorf("catalog search for job %s group %d: %w", job.ID, p.Group, err)
	}
	items, err := ItemsFor(job.Spec, tiles, scenes)
	if err != nil {
		return h.failGroup(ctx, job, p, fmt.Sprintf("catalog group %d: work items: %v", p.Group, err), err)
	}
	flipped, err := h.Jobs.RecordAnalysis(ctx, job.ID, p.Tiles, items, requests)
	if err != nil {
		if errors.Is(err, jobs.ErrCanceled) {
			return nil
		}
		return err
	}
	log.Debug().Int("tiles", len(tiles)).Int("scenes", len(scenes)).Int("items", len(items)).Int("requests", requests).Msg("catalog group analysed")
	if flipped {
		h.analysisDone(ctx, log, job.ID)
	}
	return nil
}

// analysisDone logs the end of a job's analysis. A job that auto-starts is
// PROCESSING already (the same script call flipped it) and in the index of
// active jobs: the feeder queues its items, nothing is enqueued here.
func (h *Handlers) analysisDone(ctx context.Context, log zerolog.Logger, id string) {
	job, err := h.Jobs.Get(ctx, id)
	if err != nil {
		return
	}
	log.Info().Int("items", job.Progress.Total).Float64("estimated_pu", float64(job.Progress.EstimatedMilliPU)/1000).
		Int("catalog_requests", job.Progress.CatalogRequests).Str("status", string(job.Status)).Msg("analysis done")
}

// failGroup ends a catalog task whose group cannot be analysed (a 400, a 403 on
// the collection, retries exhausted, items that cannot be made): the group is
// recorded as failed with reason, so the job goes on without its tiles (and
// ends PARTIAL or FAILED; `enqueue restart` searches it again) instead of
// waiting in ANALYSING forever, and the task is not retried. When this
// completed the analysis of an auto-started job, the job is PROCESSING, as on
// success.
func (h *Handlers) failGroup(ctx context.Context, job jobs.Job, p CatalogPayload, reason string, cause error) error {
	// The task's own context may be done (timeout on the last attempt); the
	// record must still be written.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	flipped, err := h.Jobs.FailAnalysis(rctx, job.ID, p.Group, p.Tiles, reason)
	if errors.Is(err, jobs.ErrCanceled) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("catalog group %d of job %s failed (%w) and recording it failed: %w", p.Group, job.ID, cause, err)
	}
	h.Log.Error().Str("job", job.ID).Int("group", p.Group).Int("tiles", len(p.Tiles)).Str("reason", jobs.TruncateError(reason)).
		Msg("catalog group failed for good; the job goes on without its tiles, `enqueue restart` searches them again")
	if flipped {
		h.analysisDone(rctx, h.Log.With().Str("job", job.ID).Int("group", p.Group).Logger(), job.ID)
	}
	return Final(fmt.Errorf("catalog search for job %s group %d: %w", job.ID, p.Group, cause))
}

// SearchRequest is the catalog search of a group of tiles: the union of their
// lon/lat boxes, the job's collection, time range and cloud filter, 100 per page,
// only the fields the analysis needs.
func SearchRequest(spec jobs.Spec, tiles []grid.Tile) sentinel.CatalogSearchRequest {
	bbox := []float64{180, 90, -180, -90}
	for _, t := range tiles {
		bbox[0] = min(bbox[0], t.WGS84[0])
		bbox[1] = min(bbox[1], t.WGS84[1])
		bbox[2] = max(bbox[2], t.WGS84[2])
		bbox[3] = max(bbox[3], t.WGS84[3])
	}
	coll := collectionOf(spec)
	req := sentinel.CatalogSearchRequest{
		Collections: []string{coll.CatalogID},
		BBox:        bbox,
		Datetime:    spec.From.UTC().Format(time.RFC3339) + "/" + spec.To.UTC().Format(time.RFC3339),
		Limit:       sentinel.MaxCatalogLimit,
		Fields: &sentinel.CatalogFields{
			Include: []string{"id", "bbox", "properties.datetime", "properties.eo:cloud_cover"},
			Exclude: []string{"geometry", "assets", "links"},
		},
	}
	if spec.MaxCloudCover != nil && coll.CloudCover {
		req.Filter = sentinel.CloudCoverFilter(*spec.MaxCloudCover)
		req.FilterLang = sentinel.FilterLangCQL2Text
	}
	return req
}

// search runs req page by page, each page admitted by the quota, and caches the
// complete result in Redis: identical searches cost no request. It returns the
// scenes and the number of requests made. A timeless collection (DEM) has no
// catalog: it costs no request and has no scenes (ItemsFor makes its items).
func (h *Handlers) search(ctx context.Context, job jobs.Job, req sentinel.CatalogSearchRequest) ([]Scene, int, error) {
	if collectionOf(job.Spec).Timeless() {
		return nil, 0, nil
	}
	body, _ := json.Marshal(req)
	sum := sha256.Sum256(body)
	key := h.Prefix + ":catalog:" + hex.EncodeToString(sum[:])
	if raw, err := h.Redis.Get(ctx, key).Bytes(); err == nil {
		var scenes []Scene
		if json.Unmarshal(raw, &scenes) == nil {
			if h.Hooks.CatalogRequest != nil {
				h.Hooks.CatalogRequest(true)
			}
			return scenes, 0, nil
		}
	} else if !errors.Is(err, redis.Nil) {
		return nil, 0, err
	}
	var scenes []Scene
	requests := 0
	fetch := func(ctx context.Context, req sentinel.CatalogSearchRequest) (*sentinel.CatalogSearchResponse, error) {
		requests++
		return h.catalogPage(ctx, job, req)
	}
	// The client's page iterator: it stops at the last page and at a repeated
	// pagination token, which would otherwise search for ever.
	for page, err := range h.Client.Catalog.Pages(ctx, req, fetch) {
		if err != nil {
			return nil, requests, err
		}
		if h.Hooks.CatalogRequest != nil {
			h.Hooks.CatalogRequest(false)
		}
		for _, it := range page.Features {
			s := Scene{ID: it.ID, Datetime: it.Properties.Datetime.UTC(), CloudCover: it.Properties.CloudCover}
			if len(it.BBox) >= 4 {
				s.BBox = [4]float64{it.BBox[0], it.BBox[1], it.BBox[2], it.BBox[3]}
			} else {
				s.BBox = [4]float64(req.BBox)
			}
			scenes = append(scenes, s)
		}
		if len(page.Features) == 0 {
			break // an empty page ends the search, whatever its next token
		}
	}
	raw, _ := json.Marshal(scenes)
	if err := h.Redis.Set(ctx, key, raw, h.CatalogCacheTTL).Err(); err != nil {
		return nil, requests, err
	}
	return scenes, requests, nil
}

// catalogPage fetches one page: one request of every request policy, no PU;
// a 429 holds the fleet and the page is re-admitted, up to RateLimitRetries
// times, then the task waits in the queue like a process task.
func (h *Handlers) catalogPage(ctx context.Context, job jobs.Job, req sentinel.CatalogSearchRequest) (*sentinel.CatalogSearchResponse, error) {
	for attempt := 0; ; attempt++ {
		res, err := h.admit(ctx, quota.Cost{Requests: 1})
		if err != nil {
			return nil, err
		}
		page, err := h.Client.Catalog.SearchPage(ctx, req)
		var rle *sentinel.RateLimitError
		if errors.As(err, &rle) {
			h.rateLimited(ctx, rle, job.ID)
			if attempt+1 >= h.RateLimitRetries {
				return nil, rateLimitWait(rle)
			}
			continue
		}
		if err != nil {
			_ = h.Limiter.Settle(ctx, res, 0)
			return nil, h.judgeForbidden(ctx, err, 0)
		}
		_ = h.Limiter.Settle(ctx, res, 0)
		_ = h.Limiter.ObserveSuccess(ctx)
		return page, nil
	}
}

// ItemsFor turns the scenes found for a group into work items: each scene is
// assigned to every tile its footprint intersects; ModeAcquisition makes one item
// per tile and acquisition day, ModeInterval one per tile and interval that has at
// least one acquisition (intervals without any are skipped). Every item carries
// its PU estimate by the documented rules. A timeless collection (DEM) has no
// scenes: every tile gets one item for the whole range (ModeAcquisition) or one
// per interval (ModeInterval), each a single data sample.
func ItemsFor(spec jobs.Spec, tiles []grid.Tile, scenes []Scene) ([]jobs.Item, error) {
	var windows []jobs.Window
	if spec.Mode == jobs.ModeInterval {
		iv, err := jobs.ParseInterval(spec.Interval)
		if err != nil {
			return nil, err
		}
		windows = iv.Split(spec.From, spec.To)
	}
	var items []jobs.Item
	if collectionOf(spec).Timeless() {
		if spec.Mode != jobs.ModeInterval {
			windows = []jobs.Window{{From: spec.From, To: spec.To}}
		}
		for _, tile := range tiles {
			for _, w := range windows {
				items = append(items, newItem(spec, tile, w.From, w.To, 1))
			}
		}
		return items, nil
	}
	for _, tile := range tiles {
		days := map[time.Time]int{}
		for _, s := range scenes {
			if !intersects(s.BBox, tile.WGS84) || s.Datetime.Before(spec.From) || !s.Datetime.Before(spec.To) {
				continue
			}
			y, m, d := s.Datetime.UTC().Date()
			days[time.Date(y, m, d, 0, 0, 0, 0, time.UTC)]++
		}
		if len(days) == 0 {
			continue
		}
		if spec.Mode == jobs.ModeInterval {
			for _, w := range windows {
				n := 0
				for day := range days {
					if !day.Before(w.From.Truncate(24*time.Hour)) && day.Before(w.To) {
						n++
					}
				}
				if n > 0 {
					items = append(items, newItem(spec, tile, w.From, w.To, n))
				}
			}
			continue
		}
		sorted := make([]time.Time, 0, len(days))
		for day := range days {
			sorted = append(sorted, day)
		}
		slices.SortFunc(sorted, func(a, b time.Time) int { return a.Compare(b) })
		for _, day := range sorted {
			from, to := maxTime(day, spec.From), minTime(day.Add(24*time.Hour), spec.To)
			items = append(items, newItem(spec, tile, from, to, 1))
		}
	}
	return items, nil
}

func newItem(spec jobs.Spec, tile grid.Tile, from, to time.Time, samples int) jobs.Item {
	it := jobs.Item{ID: jobs.ItemID(tile.Name, from), Tile: tile.Name, Date: from.UTC().Format(time.DateOnly), From: from, To: to}
	pu := sentinel.EstimateRequestPU(BuildProcessRequest(spec, tile, it), samples)
	it.EstimatedMilliPU = sentinel.MilliPU(pu)
	return it
}

func intersects(a, b [4]float64) bool {
	return a[0] <= b[2] && b[0] <= a[2] && a[1] <= b[3] && b[1] <= a[3]
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
