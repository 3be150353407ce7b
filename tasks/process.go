package tasks

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"

	"shfleet/grid"
	"shfleet/jobs"
	"shfleet/output"
	"shfleet/output/cog"
	"shfleet/quota"
	"shfleet/sentinel"
)

// Releasing an item back to the queue is retried this often, this far apart.
const (
	releaseAttempts = 20
	releaseBackoff  = 500 * time.Millisecond
)

// OutputKeys are the store keys of an item's outputs, by response identifier.
func OutputKeys(spec jobs.Spec, job string, tile grid.Tile, item jobs.Item) (map[string]string, error) {
	tmpl, err := output.ParseTemplate(spec.PathTemplate)
	if err != nil {
		return nil, err
	}
	keys := map[string]string{}
	for _, r := range Responses(spec) {
		k, err := tmpl.Render(output.PathVars{RequestID: job, TileName: tile.Name, Date: item.Date,
			OutputID: cmpOr(r.Identifier, "default"), Format: output.FormatExt(r.Format.Type)})
		if err != nil {
			return nil, err
		}
		keys[cmpOr(r.Identifier, "default")] = k
	}
	return keys, nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// HandleProcess runs a process task: quota admission (1 request + the item's PU
// estimate), the Process API with the shared token, the body streamed into the
// output store, PU settled from X-ProcessingUnits-Spent, the item DONE. A
// re-delivered task whose item is DONE does nothing (idempotent).
func (h *Handlers) HandleProcess(ctx context.Context, t *asynq.Task) error {
	p, err := decode[ProcessPayload](t)
	if err != nil {
		return err
	}
	job, err := h.job(ctx, p.Job)
	if err != nil {
		return err
	}
	if job.Status == jobs.StatusCanceled {
		return nil
	}
	item, err := h.Jobs.Item(ctx, job.ID, p.Item)
	if errors.Is(err, jobs.ErrNotFound) {
		return Final(err)
	} else if err != nil {
		return err
	}
	log := h.Log.With().Str("job", job.ID).Str("item", item.ID).Str("tile", item.Tile).Logger()
	if id, ok := asynq.GetTaskID(ctx); ok {
		log = log.With().Str("task_id", id).Logger()
	}
	switch item.Status {
	case jobs.ItemDone, jobs.ItemFailed:
		return nil
	case jobs.ItemProcessing:
		// Nobody releases an item and leaves it PROCESSING: its worker died or
		// timed out. It goes back to PENDING at most jobs.MaxReturns times.
		out, err := h.Jobs.FailItem(ctx, job.ID, item.ID, "worker stopped while processing (crash or timeout)", false)
		if err != nil {
			return err
		}
		if out.Item == jobs.ItemFailed {
			h.finished(ctx, log, job.ID, out, jobs.ItemFailed, 0)
			return nil
		}
	}
	ok, err := h.Jobs.BeginItem(ctx, job.ID, item.ID)
	if err != nil || !ok {
		return err
	}
	err = h.process(ctx, log, job, item)
	if err == nil {
		return nil
	}
	return h.settleFailure(ctx, log, job, item, err)
}

// settleFailure applies Classify to a failed run: the item goes back to the queue
// (wait or retry) or fails for good.
func (h *Handlers) settleFailure(ctx context.Context, log zerolog.Logger, job jobs.Job, item jobs.Item, err error) error {
	release := func() {
		// A fresh context: the run's may be cancelled (shutdown), the item must
		// still go back. Retried for a few seconds so a Redis restart does not
		// leave the item PROCESSING (which would count as a stuck return).
		var rerr error
		for attempt := 0; attempt < releaseAttempts; attempt++ {
			_, rerr = h.Jobs.ReleaseItem(context.WithoutCancel(ctx), job.ID, item.ID)
			if rerr == nil || errors.Is(rerr, jobs.ErrInvalidTransition) || errors.Is(rerr, jobs.ErrNotFound) {
				return // released, or nothing to release (canceled, finished)
			}
			time.Sleep(releaseBackoff)
		}
		log.Warn().Err(rerr).Msg("could not release the item; it returns when its task is recovered")
	}
	if ctx.Err() != nil {
		release()
		return ctx.Err()
	}
	switch Judge(ctx, err) {
	case Requeue:
		release()
		if countsRetry(err) {
			log.Warn().Err(err).Msg("item failed; retrying with backoff")
		}
		return err
	case PauseMonth:
		release()
		return h.monthSpent(ctx, job, err)
	}
	out, ferr := h.Jobs.FailItem(ctx, job.ID, item.ID, err.Error(), true)
	if ferr != nil {
		return errors.Join(err, ferr)
	}
	log.Error().Err(err).Str("action", Classify(err).String()).Msg("item FAILED")
	h.finished(ctx, log, job.ID, out, jobs.ItemFailed, 0)
	return Final(err)
}

// process sends the item's request (re-admitting after 429s) and stores its
// outputs.
func (h *Handlers) process(ctx context.Context, log zerolog.Logger, job jobs.Job, item jobs.Item) error {
	tiles, err := h.Jobs.TilesByName(ctx, job.ID, []string{item.Tile})
	if err != nil {
		return err
	}
	tile := tiles[0]
	store, err := h.Outputs.Open(ctx, job.Spec.OutputURL)
	if err != nil {
		return Final(err)
	}
	keys, err := OutputKeys(job.Spec, job.ID, tile, item)
	if err != nil {
		return Final(err)
	}
	req := BuildProcessRequest(job.Spec, tile, item)
	put := output.PutOptions{Origin: output.Origin{Job: job.ID, Item: item.ID, Request: RequestHash(req)},
		ReplaceOtherJobs: job.Spec.Overwrite}
	if !job.Spec.Overwrite {
		objs, ok, err := existing(ctx, store, keys, put)
		if err != nil {
			return err
		}
		if ok {
			log.Info().Msg("outputs exist already; skipped (resume)")
			return h.complete(ctx, log, job, item, objs, 0)
		}
	}
	cost := quota.Cost{Requests: 1, MilliPU: item.EstimatedMilliPU}
	for attempt := 0; ; attempt++ {
		res, err := h.admit(ctx, cost)
		if err != nil {
			return err
		}
		resp, err := h.Client.Process.Do(ctx, req)
		var rle *sentinel.RateLimitError
		if errors.As(err, &rle) {
			h.rateLimited(ctx, rle, job.ID)
			if attempt+1 >= h.RateLimitRetries {
				return rateLimitWait(rle)
			}
			continue
		}
		if err != nil {
			_ = h.Limiter.Settle(context.WithoutCancel(ctx), res, 0)
			return h.judgeForbidden(ctx, err, cost.MilliPU)
		}
		objs, werr := writeOutputs(ctx, store, keys, resp, put, job.Spec.COG)
		resp.Close()
		spent := item.EstimatedMilliPU
		if resp.HasPUSpent {
			spent = sentinel.MilliPU(resp.PUSpent)
		}
		if err := h.Limiter.Settle(context.WithoutCancel(ctx), res, spent); err != nil {
			log.Warn().Err(err).Msg("could not settle PU")
		}
		_ = h.Limiter.ObserveSuccess(ctx)
		if werr != nil {
			return werr
		}
		return h.complete(ctx, log, job, item, objs, spent)
	}
}

// complete marks the item DONE and, when that finished the job, writes its manifest.
func (h *Handlers) complete(ctx context.Context, log zerolog.Logger, job jobs.Job, item jobs.Item, objs []output.Object, spentMilli int64) error {
	rec := make([]jobs.OutputRecord, len(objs))
	for i, o := range objs {
		rec[i] = jobs.OutputRecord{Key: o.Key, Size: o.Size, SHA256: o.SHA256}
	}
	pu := float64(spentMilli) / 1000
	out, err := h.Jobs.CompleteItem(context.WithoutCancel(ctx), job.ID, item.ID, jobs.Result{Outputs: rec, PU: pu})
	if err != nil {
		return err
	}
	log.Info().Float64("pu", pu).Int("outputs", len(objs)).Msg("item DONE")
	if err := h.drainSoon(ctx, job.ID, out); err != nil {
		log.Warn().Err(err).Int64("records", out.Backlog).Msg("could not move the job's records to manifest parts; the next completion tries again")
	}
	h.finished(ctx, log, job.ID, out, jobs.ItemDone, pu)
	return nil
}

// finished counts a final item and, when it was the job's last, ends the job
// ([Handlers.FinishJob]). When that fails the job stays PROCESSING with its end
// recorded, and the feeder queues a finish task for it.
func (h *Handlers) finished(ctx context.Context, log zerolog.Logger, jobID string, out jobs.Outcome, st jobs.ItemStatus, pu float64) {
	if h.Hooks.ItemFinished != nil {
		h.Hooks.ItemFinished(jobID, st, pu)
	}
	if out.Finished == "" {
		return
	}
	if err := h.FinishJob(context.WithoutCancel(ctx), jobID); err != nil {
		log.Error().Err(err).Str("ending", string(out.Finished)).Msg("could not end the job (manifest, STAC, mosaics); a finish task will try again")
	}
}

// FinishJob ends a job whose every item is final (jobs.Job.Ending set): it writes
// the job's manifest, STAC catalog and VRT mosaics, then makes the status final
// ([jobs.Store.Finish]), so that whoever sees DONE finds them. A job that is not ending (still running,
// final already, canceled meanwhile) is left alone. Running it twice is harmless:
// the manifest is rewritten with the same content and Finish is idempotent.
func (h *Handlers) FinishJob(ctx context.Context, jobID string) error {
	job, err := h.Jobs.Get(ctx, jobID)
	if err != nil {
		return err
	}
	if job.Status != jobs.StatusProcessing || job.Ending == "" {
		return nil
	}
	if err := h.WriteManifest(ctx, jobID); err != nil {
		return fmt.Errorf("job %s: write the manifest: %w", jobID, err)
	}
	catalog, vrts, err := h.WriteCatalogue(ctx, jobID)
	if err != nil {
		return fmt.Errorf("job %s: write the STAC catalog and mosaics: %w", jobID, err)
	}
	h.Log.Info().Str("job", jobID).Str("stac", catalog).Int("mosaics", len(vrts)).Msg("STAC catalog and mosaics written")
	st, err := h.Jobs.Finish(ctx, jobID)
	if err != nil {
		return err
	}
	h.Log.Info().Str("job", jobID).Str("status", string(st)).Msg("job finished")
	return nil
}

// HandleFinish runs a finish task: [Handlers.FinishJob] for a job whose end the
// worker that finished its last item could not complete (it died, or the output
// store failed). An error is retried by asynq.
func (h *Handlers) HandleFinish(ctx context.Context, t *asynq.Task) error {
	p, err := decode[FinishPayload](t)
	if err != nil {
		return err
	}
	return h.FinishJob(ctx, p.Job)
}

// RequestHash identifies a Process API request (hex SHA-256 of its JSON, first
// 16 bytes): the origin of an object records it, so that another job sending the
// same request is recognised as writing the same content.
func RequestHash(req sentinel.ProcessRequest) string {
	b, err := json.Marshal(req)
	if err != nil {
		return ""
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:16])
}

// existing returns the objects when every output of an item is stored complete.
// An object written for another item under one of the keys is a
// *output.CollisionError: the item fails loudly instead of being skipped.
func existing(ctx context.Context, store *output.Store, keys map[string]string, put output.PutOptions) ([]output.Object, bool, error) {
	var objs []output.Object
	complete := true
	for _, k := range sortedValues(keys) {
		o, ok, err := store.Exists(ctx, k)
		if err != nil {
			return nil, false, nil // rewritten; Put reports a real store failure
		}
		if ok && output.Collides(o.Origin, put.Origin, put.ReplaceOtherJobs) {
			return nil, false, &output.CollisionError{Key: k, Existing: o.Origin, New: put.Origin}
		}
		complete = complete && ok
		objs = append(objs, o)
	}
	return objs, complete, nil
}

// writeOutputs streams the response into the store: the body itself for one
// output, each part of the tar for several. A body cut short fails the write and
// stores nothing under its key.
func writeOutputs(ctx context.Context, store *output.Store, keys map[string]string, resp *sentinel.ProcessResponse, put output.PutOptions, asCOG bool) ([]output.Object, error) {
	putOne := func(k string, r io.Reader, opts output.PutOptions) (output.Object, error) {
		if asCOG && path.Ext(k) == ".tif" {
			return putCOG(ctx, store, k, r, opts)
		}
		return store.Put(ctx, k, r, opts)
	}
	if len(keys) == 1 && !strings.Contains(resp.ContentType, "tar") {
		for _, k := range keys {
			opts := put
			opts.ExpectedSize = max(resp.ContentLength, 0)
			o, err := putOne(k, resp.Body, opts)
			if err != nil {
				return nil, fmt.Errorf("store %s: %w", k, err)
			}
			return []output.Object{o}, nil
		}
	}
	var objs []output.Object
	seen := map[string]bool{}
	err := sentinel.SplitTar(resp.Body, func(name string, r io.Reader) error {
		id := strings.TrimSuffix(path.Base(name), path.Ext(name))
		k, ok := keys[id]
		if !ok {
			_, err := io.Copy(io.Discard, r) // e.g. userdata.json when not requested
			return err
		}
		o, err := putOne(k, r, put)
		if err != nil {
			return fmt.Errorf("store %s: %w", k, err)
		}
		seen[id] = true
		objs = append(objs, o)
		return nil
	})
	if err != nil {
		return nil, err
	}
	for id := range keys {
		if !seen[id] {
			return nil, fmt.Errorf("response has no part for output %q", id)
		}
	}
	return objs, nil
}

func sortedValues(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	slices.Sort(out)
	return out
}

// cogSlots bounds the COG conversions running at once in a process: each
// decodes its image whole (see output/cog).
var cogSlots = make(chan struct{}, max(1, runtime.NumCPU()))

// putCOG spools a GeoTIFF body (checking opts.ExpectedSize), rewrites it as a
// Cloud Optimized GeoTIFF and stores that under key. A body that is not a TIFF
// or that the converter cannot read fails the item with the reason.
func putCOG(ctx context.Context, store *output.Store, key string, r io.Reader, opts output.PutOptions) (output.Object, error) {
	spool, err := os.CreateTemp("", "shfleet-cog-*.tif")
	if err != nil {
		return output.Object{}, fmt.Errorf("cog %s: spool file: %w", key, err)
	}
	defer func() {
		_ = spool.Close()
		_ = os.Remove(spool.Name())
	}()
	n, err := io.Copy(spool, r)
	if err != nil {
		return output.Object{}, fmt.Errorf("cog %s: read body after %d bytes: %w", key, n, err)
	}
	if opts.ExpectedSize > 0 && n != opts.ExpectedSize {
		return output.Object{}, fmt.Errorf("cog %s: got %d bytes, expected %d; the download was cut short", key, n, opts.ExpectedSize)
	}
	head := make([]byte, 4)
	if _, err := spool.ReadAt(head, 0); err != nil || !cog.IsTIFF(head) {
		return output.Object{}, Final(fmt.Errorf("cog %s: the answer is not a TIFF (%d bytes), so --cog cannot convert it", key, n))
	}
	select {
	case cogSlots <- struct{}{}:
	case <-ctx.Done():
		return output.Object{}, ctx.Err()
	}
	defer func() { <-cogSlots }()
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(cog.Convert(pw, spool, n)) }()
	opts.ExpectedSize = 0
	obj, err := store.Put(ctx, key, pr, opts)
	_ = pr.CloseWithError(io.ErrClosedPipe) // ends the converter if Put stopped early
	if errors.Is(err, cog.ErrUnreadable) {
		return obj, Final(err)
	}
	return obj, err
}
