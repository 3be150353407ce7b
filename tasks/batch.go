package tasks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"

	"shfleet/grid"
	"shfleet/jobs"
	"shfleet/keys"
	"shfleet/output"
	"shfleet/quota"
	"shfleet/sentinel"
)

// The batch engine: a job with Spec.Engine == jobs.EngineBatch is one Batch
// Processing API v2 request. The job record is the desired state (CANCELED,
// restarted items, a start after the estimate); one poll task per job at a time
// reconciles the remote request with it, every call admitted by the fleet's
// limiter with the shared token, and moves the job's items (one per tile) as
// the tiles' outputs appear in the bucket.
const (
	// TypeBatch polls one batch job (one round).
	TypeBatch = "shfleet:batch"
	// DefaultBatchPoll is the pause between two polls of a batch request.
	DefaultBatchPoll = 5 * time.Second
	// batchLockTTL bounds a round: a worker that dies mid-round frees the job's
	// polling after this.
	batchLockTTL = time.Minute
)

// BatchPayload is the payload of a batch poll task.
type BatchPayload struct {
	Job string `json:"job"`
	// Round is the poll round; a task whose round is not the job's current one
	// is stale (a restart began a new chain) and does nothing.
	Round int64 `json:"round"`
}

// BatchTaskID is the asynq task id of a round of a job's polling.
func BatchTaskID(job string, round int64) string { return fmt.Sprintf("%s:batch:%d", job, round) }

// NewBatchTask builds the poll task of a round, run after delay.
func NewBatchTask(prefix string, p BatchPayload, delay time.Duration) (*asynq.Task, error) {
	b, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	return asynq.NewTask(TypeBatch, b, asynq.Queue(QueueName(prefix, QueueCatalog)), asynq.TaskID(BatchTaskID(p.Job, p.Round)),
		asynq.MaxRetry(ProcessMaxRetry), asynq.Timeout(batchLockTTL), asynq.ProcessIn(delay)), nil
}

// batchKey is the engine's own record of a job: hash fields request (the batch
// request id), deployment, settled_mpu (the request's costPU booked in the
// ledger), assigned_mpu (of it, what items carry), restarts (the job restarts
// the remote request has seen), round (the current poll round), create_attempt
// (unix ms of the first create sent), stop_sent (the cancel's stop was
// accepted), paused (the job was paused for the request's OUT_OF_PU stop); and
// the lock.
func (h *Handlers) batchKey(job string) string { return batchKey(h.Prefix, job) }

func batchKey(prefix, job string) string {
	prefix = strings.TrimSuffix(prefix, ":")
	if prefix == "" {
		prefix = keys.DefaultPrefix
	}
	return prefix + ":job:{" + job + "}:batch"
}

// startBatchPolling starts a new poll chain for a job: it bumps the job's
// round (stale tasks of an older chain then stop) and enqueues its first task.
func (c Controller) startBatchPolling(ctx context.Context, job string) error {
	round, err := c.Jobs.Redis.HIncrBy(ctx, batchKey(c.Jobs.Prefix, job), "round", 1).Result()
	if err != nil {
		return fmt.Errorf("batch job %s: new poll round: %w", job, err)
	}
	task, err := NewBatchTask(c.Jobs.Prefix, BatchPayload{Job: job, Round: round}, 0)
	if err != nil {
		return err
	}
	if _, err := c.Queue.EnqueueContext(ctx, task); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return fmt.Errorf("batch job %s: enqueue poll: %w", job, err)
	}
	return nil
}

// batchState is the engine's record of a job.
type batchState struct {
	Request, Deployment     string
	SettledMPU, AssignedMPU int64
	Restarts                int
	Round                   int64
	CreateAttempt           time.Time
	StopSent, Paused        bool
}

func (h *Handlers) loadBatch(ctx context.Context, job string) (batchState, error) {
	m, err := h.Redis.HGetAll(ctx, h.batchKey(job)).Result()
	if err != nil {
		return batchState{}, err
	}
	n := func(k string) int64 { v, _ := strconv.ParseInt(m[k], 10, 64); return v }
	st := batchState{Request: m["request"], Deployment: m["deployment"], SettledMPU: n("settled_mpu"),
		AssignedMPU: n("assigned_mpu"), Restarts: int(n("restarts")), Round: n("round"),
		StopSent: n("stop_sent") == 1, Paused: n("paused") == 1}
	if ms := n("create_attempt"); ms > 0 {
		st.CreateAttempt = time.UnixMilli(ms)
	}
	return st, nil
}

// HandleBatch runs one poll round of a batch job.
func (h *Handlers) HandleBatch(ctx context.Context, t *asynq.Task) error {
	p, err := decode[BatchPayload](t)
	if err != nil {
		return err
	}
	st, err := h.loadBatch(ctx, p.Job)
	if err != nil {
		return err
	}
	if p.Round != st.Round {
		return nil // a newer chain polls this job
	}
	lock := h.batchKey(p.Job) + ":lock"
	owner := BatchTaskID(p.Job, p.Round)
	ok, err := h.Redis.SetNX(ctx, lock, owner, batchLockTTL).Result()
	if err != nil {
		return err
	}
	if !ok {
		// Another worker runs this round (a re-delivered task): try again later.
		return waitFor(DefaultBatchPoll, "another worker polls this batch job")
	}
	defer h.Redis.Del(context.WithoutCancel(ctx), lock)
	more, err := h.batchRound(ctx, p.Job, st)
	if err != nil {
		return err
	}
	if !more {
		h.Log.Info().Str("job", p.Job).Str("batch_request", st.Request).Msg("batch job final; polling ends")
		return nil
	}
	next, err := h.Redis.HIncrBy(ctx, h.batchKey(p.Job), "round", 1).Result()
	if err != nil {
		return err
	}
	task, err := NewBatchTask(h.Prefix, BatchPayload{Job: p.Job, Round: next}, h.batchPoll())
	if err != nil {
		return err
	}
	if _, err := h.Queue.EnqueueContext(ctx, task); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		// Put the round back so this task's retry continues the chain.
		h.Redis.HIncrBy(context.WithoutCancel(ctx), h.batchKey(p.Job), "round", -1)
		return fmt.Errorf("batch job %s: enqueue next poll: %w", p.Job, err)
	}
	return nil
}

func (h *Handlers) batchPoll() time.Duration {
	if h.BatchPoll > 0 {
		return h.BatchPoll
	}
	return DefaultBatchPoll
}

// call admits one Batch API call (1 request, 0 PU) and runs it; the
// reservation is settled with extraMilliPU (what the request was charged since
// the last poll, booked in the month's ledger and the PU policies).
func (h *Handlers) batchCall(ctx context.Context, job string, fn func(ctx context.Context) (extraMilliPU int64, err error)) error {
	res, err := h.admit(ctx, quota.Cost{Requests: 1})
	if err != nil {
		return err
	}
	extra, err := fn(ctx)
	var rle *sentinel.RateLimitError
	if errors.As(err, &rle) {
		h.rateLimited(ctx, rle, job)
		return err
	}
	if serr := h.Limiter.Settle(context.WithoutCancel(ctx), res, max(extra, 0)); serr != nil {
		h.Log.Warn().Err(serr).Str("job", job).Msg("could not settle a batch call")
	}
	return err
}

// batchRound reconciles the remote request with the job once; it reports
// whether polling goes on.
func (h *Handlers) batchRound(ctx context.Context, id string, st batchState) (bool, error) {
	job, err := h.Jobs.Get(ctx, id)
	if errors.Is(err, jobs.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if st.Request == "" {
		if job.Status == jobs.StatusCanceled && st.CreateAttempt.IsZero() {
			return false, nil // canceled before anything was sent
		}
		if st.Request, err = h.batchEnsure(ctx, job, st); err != nil || st.Request == "" {
			return err != nil, err
		}
		st.Deployment = collectionOf(job.Spec).Deployment
	}
	var task sentinel.BatchTask
	err = h.batchCall(ctx, id, func(ctx context.Context) (int64, error) {
		var err error
		task, err = h.Client.Batch.Get(ctx, st.Deployment, st.Request)
		if err != nil {
			return 0, err
		}
		cost := sentinel.MilliPU(task.CostPU)
		if cost > st.SettledMPU {
			// Book first: a crash after this re-reads settled_mpu and books nothing twice.
			if err := h.Redis.HSet(ctx, h.batchKey(id), "settled_mpu", cost).Err(); err != nil {
				return 0, err
			}
			extra := cost - st.SettledMPU
			st.SettledMPU = cost
			return extra, nil
		}
		return 0, nil
	})
	if err != nil {
		if Permanent(err) {
			return false, h.failBatch(ctx, job, "batch request "+st.Request+": "+err.Error())
		}
		return false, err
	}
	remoteFinal := task.Status == sentinel.BatchDone || task.Status == sentinel.BatchFailed || task.Status == sentinel.BatchStopped
	if job.Status == jobs.StatusCanceled {
		if remoteFinal {
			h.Log.Info().Str("job", id).Str("batch_request", st.Request).Str("status", task.Status).Msg("canceled batch job: the request is final")
			return false, nil
		}
		if st.StopSent {
			return true, nil // an analysis under way completes before the stop
		}
		err := h.batchCall(ctx, id, func(ctx context.Context) (int64, error) {
			return 0, h.Client.Batch.Stop(ctx, st.Deployment, st.Request)
		})
		if err != nil && Permanent(err) {
			// The request moved on meanwhile (a 400 for a DONE request): the
			// next poll sees it final.
			h.Log.Warn().Err(err).Str("job", id).Str("batch_request", st.Request).Msg("batch stop refused")
			return true, nil
		}
		if err != nil {
			return false, err
		}
		return true, h.Redis.HSet(ctx, h.batchKey(id), "stop_sent", 1).Err()
	}
	if task.Status == sentinel.BatchCreated {
		// A new request, or one whose id was saved by a worker that died before
		// sending the analysis or the start.
		if err := h.Jobs.BeginAnalysis(ctx, id); err != nil {
			return false, err
		}
		return true, h.batchCall(ctx, id, func(ctx context.Context) (int64, error) {
			if job.Spec.AutoStart {
				return 0, h.Client.Batch.Start(ctx, st.Deployment, st.Request)
			}
			return 0, h.Client.Batch.Analyse(ctx, st.Deployment, st.Request)
		})
	}
	// The analysis is known once the remote request is past ANALYSING.
	if (job.Status == jobs.StatusCreated || job.Status == jobs.StatusAnalysing) && task.Status != sentinel.BatchCreated && task.Status != sentinel.BatchAnalysing {
		if err := h.batchAnalysed(ctx, job); err != nil {
			return false, err
		}
		if job, err = h.Jobs.Get(ctx, id); err != nil {
			return false, err
		}
	}
	switch {
	case job.Status == jobs.StatusAnalysisDone && task.Status != sentinel.BatchAnalysisDone:
		// Started remotely (auto-start): the job follows.
		if err := h.batchStartJob(ctx, job); err != nil {
			return false, err
		}
		job, _ = h.Jobs.Get(ctx, id)
	case job.Status == jobs.StatusAnalysisDone && job.Spec.AutoStart:
		// `enqueue start` while the analysis ran.
		return true, h.batchStartJob(ctx, job)
	case job.Status == jobs.StatusAnalysisDone:
		return false, nil // the estimate is ready; `enqueue start` begins a new chain
	case job.Status == jobs.StatusProcessing && task.Status == sentinel.BatchAnalysisDone:
		// `enqueue start` after the estimate.
		return true, h.batchCall(ctx, id, func(ctx context.Context) (int64, error) {
			return 0, h.Client.Batch.Start(ctx, st.Deployment, st.Request)
		})
	}
	if job.Status != jobs.StatusProcessing {
		return !remoteFinal, nil
	}
	if job.Restarts > st.Restarts && remoteFinal {
		// `enqueue restart`: the failed tiles go back to the service.
		err := h.batchCall(ctx, id, func(ctx context.Context) (int64, error) {
			return 0, h.Client.Batch.Start(ctx, st.Deployment, st.Request)
		})
		if err != nil {
			return false, err
		}
		return true, h.Redis.HSet(ctx, h.batchKey(id), "restarts", job.Restarts).Err()
	}
	if task.Status == sentinel.BatchStopped && task.StoppedStatusReason == sentinel.BatchStoppedOutOfPU {
		return true, h.batchOutOfPU(ctx, job, st)
	}
	return true, h.batchCollect(ctx, job, st, remoteFinal)
}

// batchOutOfPU follows a request the service stopped for the account's
// monthly quota: the tiles delivered before the stop complete their items, and
// the job is paused OUT_OF_PU until the month turns or `enqueue resume`
// clears the pause; then the request is started again (a STOPPED request
// resumes with its unfinished tiles).
func (h *Handlers) batchOutOfPU(ctx context.Context, job jobs.Job, st batchState) error {
	if err := h.batchCollect(ctx, job, st, false); err != nil {
		return err
	}
	now := h.now()
	resumed := job.StoppedReason == "" || (!job.ResumeAt.IsZero() && !now.Before(job.ResumeAt))
	switch {
	case st.Paused && resumed:
		if job.StoppedReason != "" {
			if err := h.Jobs.Resume(ctx, job.ID); err != nil {
				return err
			}
		}
		if err := h.batchCall(ctx, job.ID, func(ctx context.Context) (int64, error) {
			return 0, h.Client.Batch.Start(ctx, st.Deployment, st.Request)
		}); err != nil {
			return err
		}
		h.Log.Info().Str("job", job.ID).Str("batch_request", st.Request).Msg("batch job resumed after OUT_OF_PU")
		return h.Redis.HSet(ctx, h.batchKey(job.ID), "paused", 0).Err()
	case !st.Paused:
		if err := h.Jobs.Pause(ctx, job.ID, jobs.ReasonOutOfPU, quota.MonthReset(now)); err != nil {
			return err
		}
		h.Log.Warn().Str("job", job.ID).Str("batch_request", st.Request).Msg("batch request stopped: the account's monthly PU are spent; the job is paused until the month turns or `enqueue resume`")
		return h.Redis.HSet(ctx, h.batchKey(job.ID), "paused", 1).Err()
	}
	return nil
}

// batchEnsure returns the job's batch request, creating it if need be, and
// saves its id. Creation is idempotent: the request carries the job id in its
// description, and once a create was sent (create_attempt) a later round first
// looks for that request among the account's (newest first) before creating
// another, so a worker dying between the create and the save leaves one
// request. A canceled job only looks; "" means there is no request.
func (h *Handlers) batchEnsure(ctx context.Context, job jobs.Job, st batchState) (string, error) {
	req, err := BuildBatchRequest(job.Spec)
	if err != nil {
		return "", h.failBatch(ctx, job, err.Error())
	}
	dep := collectionOf(job.Spec).Deployment
	save := func(id string) error {
		return h.Redis.HSet(ctx, h.batchKey(job.ID), "request", id, "deployment", dep).Err()
	}
	if !st.CreateAttempt.IsZero() {
		task, found, err := h.findBatch(ctx, job.ID, dep, req.Description, st.CreateAttempt.Add(-batchClockSkew))
		if err != nil {
			return "", err
		}
		if found {
			h.Log.Info().Str("job", job.ID).Str("batch_request", task.ID).Msg("batch request of an earlier attempt found")
			return task.ID, save(task.ID)
		}
	}
	if job.Status == jobs.StatusCanceled {
		return "", nil
	}
	if err := h.Redis.HSetNX(ctx, h.batchKey(job.ID), "create_attempt", h.now().UnixMilli()).Err(); err != nil {
		return "", err
	}
	var task sentinel.BatchTask
	err = h.batchCall(ctx, job.ID, func(ctx context.Context) (int64, error) {
		var err error
		task, err = h.Client.Batch.Create(ctx, req)
		return 0, err
	})
	if err != nil {
		if Permanent(err) {
			return "", h.failBatch(ctx, job, "batch request refused: "+err.Error())
		}
		return "", err
	}
	if h.Hooks.BatchCreated != nil {
		if err := h.Hooks.BatchCreated(job.ID, task.ID); err != nil {
			return "", fmt.Errorf("batch job %s: save request %s: %w", job.ID, task.ID, err)
		}
	}
	if err := save(task.ID); err != nil {
		return "", err
	}
	h.Log.Info().Str("job", job.ID).Str("batch_request", task.ID).Msg("batch request created")
	return task.ID, nil
}

// batchClockSkew is how far the service's creation times may be behind ours
// when findBatch stops at requests older than the first create attempt.
const batchClockSkew = time.Hour

// findBatch pages through the account's batch requests, newest first, for the
// one with description desc, up to the first created before since.
func (h *Handlers) findBatch(ctx context.Context, job, dep, desc string, since time.Time) (sentinel.BatchTask, bool, error) {
	token := ""
	for {
		var page sentinel.BatchPage
		err := h.batchCall(ctx, job, func(ctx context.Context) (int64, error) {
			var err error
			page, err = h.Client.Batch.ListPage(ctx, dep, sentinel.BatchListOptions{Count: 100, Sort: "created:desc", ViewToken: token})
			return 0, err
		})
		if err != nil {
			return sentinel.BatchTask{}, false, fmt.Errorf("batch job %s: look for its request: %w", job, err)
		}
		for _, t := range page.Tasks {
			if t.Description() == desc {
				return t, true, nil
			}
			if !t.Created.IsZero() && t.Created.Before(since) {
				return sentinel.BatchTask{}, false, nil
			}
		}
		if page.NextToken == "" || page.NextToken == token {
			return sentinel.BatchTask{}, false, nil
		}
		token = page.NextToken
	}
}

// batchAnalysed records the analysis: one item per tile over the whole time
// range, estimated like the service estimates (see BatchEstimate).
func (h *Handlers) batchAnalysed(ctx context.Context, job jobs.Job) error {
	recs, err := h.Jobs.Tiles(ctx, job.ID)
	if err != nil {
		return err
	}
	names := make([]string, len(recs))
	items := make([]jobs.Item, len(recs))
	for i, r := range recs {
		names[i] = r.Name
		items[i] = jobs.Item{ID: jobs.ItemID(r.Name, job.Spec.From), Tile: r.Name, From: job.Spec.From, To: job.Spec.To,
			EstimatedMilliPU: sentinel.MilliPU(BatchEstimatePU(job.Spec, r.Tile))}
	}
	_, err = h.Jobs.RecordAnalysis(ctx, job.ID, names, items, 0)
	return err
}

// batchStartJob moves an analysed batch job to PROCESSING (its items SCHEDULED
// on the service).
func (h *Handlers) batchStartJob(ctx context.Context, job jobs.Job) error {
	st, err := h.Jobs.Start(ctx, job.ID)
	if err != nil || st != jobs.StatusProcessing {
		return err
	}
	return scheduleBatch(ctx, h.Jobs, job.ID)
}

// scheduleBatch makes a batch job's PENDING items SCHEDULED (the remote request
// processes them all), page by page: a batch job's items are never fed (the
// feeder skips batch jobs).
func scheduleBatch(ctx context.Context, store *jobs.Store, id string) error {
	var cursor uint64
	for {
		items, next, err := store.Items(ctx, id, jobs.ItemPending, cursor, jobs.DefaultPageSize)
		if err != nil {
			return err
		}
		ids := make([]string, len(items))
		for i, it := range items {
			ids[i] = it.ID
		}
		if len(ids) > 0 {
			if err := store.Schedule(ctx, id, ids...); err != nil {
				return err
			}
		}
		if next == 0 {
			return nil
		}
		cursor = next
	}
}

// openItems are a batch job's items not DONE or FAILED (one per tile).
func openItems(ctx context.Context, store *jobs.Store, id string) ([]jobs.Item, error) {
	var open []jobs.Item
	for it, err := range store.AllItems(ctx, id, "") {
		if err != nil {
			return nil, err
		}
		switch it.Status {
		case jobs.ItemPending, jobs.ItemScheduled, jobs.ItemProcessing:
			open = append(open, it)
		}
	}
	return open, nil
}

// batchCollect completes the items whose outputs are in the bucket; once the
// remote request is final, the others FAIL (the service's failed tiles).
func (h *Handlers) batchCollect(ctx context.Context, job jobs.Job, st batchState, remoteFinal bool) error {
	store, err := h.Outputs.Open(ctx, job.Spec.OutputURL)
	if err != nil {
		return err
	}
	log := h.Log.With().Str("job", job.ID).Str("batch_request", st.Request).Logger()
	open, err := openItems(ctx, h.Jobs, job.ID)
	if err != nil {
		return err
	}
	type done struct {
		item jobs.Item
		outs []jobs.OutputRecord
	}
	var finished []done
	var missing []jobs.Item
	for _, it := range open {
		var outs []jobs.OutputRecord
		complete := true
		for _, r := range Responses(job.Spec) {
			key := BatchOutputKey(st.Request, it.Tile, r.Identifier)
			obj, err := store.Stat(ctx, key)
			if errors.Is(err, output.ErrNotExist) {
				complete = false
				break
			}
			if err != nil {
				return err
			}
			outs = append(outs, jobs.OutputRecord{Key: key, Size: obj.Size})
		}
		if complete {
			finished = append(finished, done{it, outs})
		} else {
			missing = append(missing, it)
		}
	}
	unassigned := st.SettledMPU - st.AssignedMPU
	for i, d := range finished {
		share := unassigned / int64(len(finished)-i)
		unassigned -= share
		if _, err := h.Jobs.BeginItem(ctx, job.ID, d.item.ID); err != nil {
			return err
		}
		if err := h.Redis.HIncrBy(ctx, h.batchKey(job.ID), "assigned_mpu", share).Err(); err != nil {
			return err
		}
		out, err := h.Jobs.CompleteItem(ctx, job.ID, d.item.ID, jobs.Result{Outputs: d.outs, PU: float64(share) / 1000})
		if err != nil {
			return err
		}
		// As for process jobs: the hook, and the manifest once the job is over.
		h.finished(ctx, log, job.ID, out, jobs.ItemDone, float64(share)/1000)
	}
	if !remoteFinal {
		return nil
	}
	for _, it := range missing {
		if _, err := h.Jobs.BeginItem(ctx, job.ID, it.ID); err != nil {
			return err
		}
		out, err := h.Jobs.FailItem(ctx, job.ID, it.ID, "the batch service did not deliver tile "+it.Tile+" (a FAILED tile); `enqueue restart "+job.ID+"` re-starts the request's failed tiles", true)
		if err != nil {
			return err
		}
		h.finished(ctx, log, job.ID, out, jobs.ItemFailed, 0)
	}
	return nil
}

// failBatch ends a batch job that cannot run (the request was refused): its
// tiles are recorded as a failed analysis with the reason, so the job is FAILED
// and says why; an analysed job fails its open items.
func (h *Handlers) failBatch(ctx context.Context, job jobs.Job, reason string) error {
	h.Log.Error().Str("job", job.ID).Str("reason", reason).Msg("batch job failed")
	if job.Status == jobs.StatusCreated || job.Status == jobs.StatusAnalysing {
		recs, err := h.Jobs.Tiles(ctx, job.ID)
		if err != nil {
			return err
		}
		names := make([]string, len(recs))
		for i, r := range recs {
			names[i] = r.Name
		}
		_, err = h.Jobs.FailAnalysis(ctx, job.ID, 0, names, reason)
		return err
	}
	open, err := openItems(ctx, h.Jobs, job.ID)
	if err != nil {
		return err
	}
	for _, it := range open {
		_, _ = h.Jobs.BeginItem(ctx, job.ID, it.ID)
		if _, err := h.Jobs.FailItem(ctx, job.ID, it.ID, reason, true); err != nil {
			return err
		}
	}
	return nil
}

// BatchOutputKey is where the service's default tile path puts an output:
// <requestId>/<tileName>/<outputId>.tif.
func BatchOutputKey(request, tile, outputID string) string {
	return request + "/" + tile + "/" + outputID + ".tif"
}

// BuildBatchRequest is the Batch v2 request of a job: the AOIs, the job's
// collection, filters, evalscript and responses, the tiling grid's id and the
// resolution, and delivery to the bucket of the job's s3:// output with the
// default tile path.
func BuildBatchRequest(spec jobs.Spec) (sentinel.BatchRequest, error) {
	g, err := grid.ParseGrid(spec.Grid)
	if err != nil {
		return sentinel.BatchRequest{}, err
	}
	gid, ok := g.BatchGridID()
	if !ok {
		return sentinel.BatchRequest{}, fmt.Errorf("grid %s is not one of the Batch API's tiling grids; use utm-10km, utm-20km, utm-100km, wgs84-1deg, laea-100km or laea-20km", spec.Grid)
	}
	bucket, region, err := BatchBucket(spec.OutputURL)
	if err != nil {
		return sentinel.BatchRequest{}, err
	}
	if len(spec.AOIGeometry) == 0 {
		return sentinel.BatchRequest{}, errors.New("the job has no AOI geometry (submitted before the batch engine existed); submit it again")
	}
	// The item of the whole range, as the process engine builds it, gives the
	// same data filter; the bounds are the AOIs.
	pr := BuildProcessRequest(spec, grid.Tile{EPSG: 4326}, jobs.Item{From: spec.From, To: spec.To})
	pr.Input.Bounds = sentinel.Bounds{Geometry: spec.AOIGeometry}
	pr.Output = sentinel.ProcessOutput{Responses: Responses(spec)}
	return sentinel.BatchRequest{
		ProcessRequest: pr,
		Input:          sentinel.BatchInput{Type: sentinel.BatchInputTilingGrid, ID: gid, Resolution: spec.Resolution},
		Output: sentinel.BatchOutput{Type: sentinel.BatchOutputRaster, Overwrite: spec.Overwrite, CogOutput: spec.COG,
			Delivery: sentinel.BatchDelivery{S3: sentinel.BatchS3{URL: "s3://" + bucket, Region: region}}},
		Description: "shfleet job " + spec.ID,
	}, nil
}

// BatchBucket is the bucket (and region) of an s3:// output URL; the batch
// engine writes nowhere else.
func BatchBucket(outputURL string) (bucket, region string, err error) {
	u, err := url.Parse(outputURL)
	if err != nil || u.Scheme != "s3" || u.Host == "" {
		return "", "", fmt.Errorf("the batch engine delivers to an S3 bucket only: give --output s3://bucket?region=..., not %q", redactURL(outputURL))
	}
	if p := u.Query().Get("prefix"); p != "" {
		return "", "", errors.New("the batch engine writes <requestId>/<tileName>/<outputId>.tif at the bucket's root; remove prefix= from --output")
	}
	return u.Host, u.Query().Get("region"), nil
}

func redactURL(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		return u.Redacted()
	}
	return strings.SplitN(raw, "?", 2)[0]
}

// BatchEstimatePU is how the Batch API estimates a tile (seed: its cost
// estimate): the Process API's rules for the tile's output at one data sample
// every 3 days of the time range for ORBIT/TILE mosaicking (1 for SIMPLE),
// times the batch factor 1/3.
func BatchEstimatePU(spec jobs.Spec, t grid.Tile) float64 {
	info := sentinel.InspectEvalscript(spec.Evalscript)
	samples := 1
	if info.Mosaicking == "ORBIT" || info.Mosaicking == "TILE" {
		// 1.1.-31.1. (31 days) is 10 samples, as the documentation's example.
		samples = max(1, int(spec.To.Sub(spec.From).Hours()/24/3))
	}
	return sentinel.EstimatePU(sentinel.PUParams{Width: t.Width, Height: t.Height, InputBands: info.Bands,
		Float32: info.Float32, DataSamples: samples, Batch: true})
}

// submitBatch creates a batch job and starts its polling: the worker that
// polls it creates the remote request (all or nothing: a failed enqueue
// removes the job).
func (c Controller) submitBatch(ctx context.Context, spec jobs.Spec, tiles []grid.Tile) (jobs.Job, error) {
	if _, err := BuildBatchRequest(spec); err != nil {
		return jobs.Job{}, err
	}
	job, err := c.Jobs.Create(ctx, spec, tiles)
	if err != nil {
		return jobs.Job{}, err
	}
	if err := c.startBatchPolling(ctx, job.ID); err != nil {
		_, _ = c.Jobs.Cancel(context.WithoutCancel(ctx), job.ID)
		_ = c.Jobs.Delete(context.WithoutCancel(ctx), job.ID)
		_ = c.Jobs.Redis.Del(context.WithoutCancel(ctx), batchKey(c.Jobs.Prefix, job.ID)).Err()
		return jobs.Job{}, fmt.Errorf("%w; nothing was submitted", err)
	}
	return job, nil
}

// startBatch starts an analysed batch job (after `enqueue estimate`): the job
// is PROCESSING and the worker polling it starts the remote request.
func (c Controller) startBatch(ctx context.Context, job jobs.Job) (jobs.Job, error) {
	switch job.Status {
	case jobs.StatusAnalysisDone:
		st, err := c.Jobs.Start(ctx, job.ID)
		if err != nil {
			return job, err
		}
		if st == jobs.StatusProcessing {
			if err := scheduleBatch(ctx, c.Jobs, job.ID); err != nil {
				return job, err
			}
		}
	case jobs.StatusCreated, jobs.StatusAnalysing:
		if err := c.Jobs.SetAutoStart(ctx, job.ID); err != nil {
			return job, err
		}
	default:
		return job, &jobs.TransitionError{Job: job.ID, Op: "start", From: string(job.Status), To: string(jobs.StatusProcessing)}
	}
	if err := c.startBatchPolling(ctx, job.ID); err != nil {
		return job, err
	}
	return c.Jobs.Get(ctx, job.ID)
}
