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
// the remote request has seen), round (the current poll round); and the lock.
func (h *Handlers) batchKey(job string) string { return batchKey(h.Prefix, job) }

func batchKey(prefix, job string) string {
	prefix = strings.TrimSuffix(prefix, ":")
	if prefix == "" {
		prefix = jobs.DefaultPrefix
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
}

func (h *Handlers) loadBatch(ctx context.Context, job string) (batchState, error) {
	m, err := h.Redis.HGetAll(ctx, h.batchKey(job)).Result()
	if err != nil {
		return batchState{}, err
	}
	n := func(k string) int64 { v, _ := strconv.ParseInt(m[k], 10, 64); return v }
	return batchState{Request: m["request"], Deployment: m["deployment"], SettledMPU: n("settled_mpu"),
		AssignedMPU: n("assigned_mpu"), Restarts: int(n("restarts")), Round: n("round")}, nil
}

// HandleBatch runs one poll round of a batch job.
func (h *Handlers) HandleBatch(ctx context.Context, t *asynq.Task) error {
	h.init()
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
		return &WaitError{After: DefaultBatchPoll, Reason: "another worker polls this batch job"}
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
		if job.Status == jobs.StatusCanceled {
			return false, nil
		}
		return true, h.batchCreate(ctx, job)
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
		if Classify(err) == ActionFail {
			return false, h.failBatch(ctx, job, "batch request "+st.Request+": "+err.Error())
		}
		return false, err
	}
	remoteFinal := task.Status == sentinel.BatchDone || task.Status == sentinel.BatchFailed || task.Status == sentinel.BatchStopped
	if job.Status == jobs.StatusCanceled {
		if task.Status == sentinel.BatchStopped || task.Status == sentinel.BatchDone || task.Status == sentinel.BatchFailed {
			return false, nil
		}
		return true, h.batchCall(ctx, id, func(ctx context.Context) (int64, error) {
			return 0, h.Client.Batch.Stop(ctx, st.Deployment, st.Request)
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
		return true, h.Jobs.Pause(ctx, id, jobs.ReasonOutOfPU, quota.MonthReset(time.Now()))
	}
	return true, h.batchCollect(ctx, job, st, remoteFinal)
}

// batchCreate sends the job's batch request and starts it (or only analyses
// it, for an estimate).
func (h *Handlers) batchCreate(ctx context.Context, job jobs.Job) error {
	req, err := BuildBatchRequest(job.Spec)
	if err != nil {
		return h.failBatch(ctx, job, err.Error())
	}
	dep := collectionOf(job.Spec).Deployment
	var task sentinel.BatchTask
	err = h.batchCall(ctx, job.ID, func(ctx context.Context) (int64, error) {
		var err error
		task, err = h.Client.Batch.Create(ctx, req)
		return 0, err
	})
	if err != nil {
		if Classify(err) == ActionFail {
			return h.failBatch(ctx, job, "batch request refused: "+err.Error())
		}
		return err
	}
	if err := h.Redis.HSet(ctx, h.batchKey(job.ID), "request", task.ID, "deployment", dep).Err(); err != nil {
		return err
	}
	if err := h.Jobs.BeginAnalysis(ctx, job.ID); err != nil {
		return err
	}
	h.Log.Info().Str("job", job.ID).Str("batch_request", task.ID).Msg("batch request created")
	return h.batchCall(ctx, job.ID, func(ctx context.Context) (int64, error) {
		if job.Spec.AutoStart {
			return 0, h.Client.Batch.Start(ctx, dep, task.ID)
		}
		return 0, h.Client.Batch.Analyse(ctx, dep, task.ID)
	})
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
		if h.Hooks.ItemFinished != nil {
			h.Hooks.ItemFinished(job.ID, jobs.ItemDone, float64(share)/1000)
		}
		if out.Finished != "" {
			h.Log.Info().Str("job", job.ID).Str("status", string(out.Finished)).Msg("batch job finished")
		}
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
		if out.Finished != "" {
			h.Log.Info().Str("job", job.ID).Str("status", string(out.Finished)).Msg("batch job finished")
		}
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
		Output: sentinel.BatchOutput{Type: sentinel.BatchOutputRaster, Overwrite: spec.Overwrite,
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
