package tasks

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"iter"
	"path"
	"strings"
	"time"

	"shfleet/jobs"
	"shfleet/output"
)

// The records of a job's DONE items (outputs, PU) are appended to a stream in
// Redis by jobs.Store.CompleteItem and moved from there into the output store
// as manifest parts (<job>/manifest/part-NNNNN.jsonl, one JSON object per
// output): by the worker whose completion finds a whole part (Handlers.PartSize
// records) waiting, and by the one that ends the job (the rest), which then
// writes <job>/manifest.json as the index of the parts with the job's totals.
// Redis so keeps about one part of records per job (two while one is being
// stored), however large the job.
const (
	// PartSize is the default number of records (items) per manifest part.
	PartSize = 10000
	// drainLockTTL bounds how long one drainer holds a job's records.
	drainLockTTL = 2 * time.Minute
)

// ManifestKey is where a job's manifest goes, under the output root.
func ManifestKey(job string) string { return job + "/manifest.json" }

// ManifestEntriesOf turns a record into manifest entries, one per output, the
// record's PU shared equally.
func ManifestEntriesOf(r jobs.Record) []output.ManifestEntry {
	out := make([]output.ManifestEntry, 0, len(r.Outputs))
	for _, o := range r.Outputs {
		id := strings.TrimSuffix(path.Base(o.Key), path.Ext(o.Key))
		out = append(out, output.ManifestEntry{Tile: r.Tile, Date: r.Date, OutputID: id, Key: o.Key,
			Size: o.Size, SHA256: o.SHA256, PU: float64(r.SpentMilliPU) / 1000 / float64(len(r.Outputs))})
	}
	return out
}

// DrainRecords moves the records of a job from Redis into manifest parts in the
// job's output store: whole parts of h.PartSize records only, or everything when
// all is set. It holds the job's drain lock while it works; when another worker
// holds it, DrainRecords returns at once (all: waits up to wait for it).
func (h *Handlers) DrainRecords(ctx context.Context, jobID string, all bool, wait time.Duration) error {
	owner := newOwner()
	deadline := time.Now().Add(wait)
	for {
		ok, err := h.Jobs.LockRecords(ctx, jobID, owner, drainLockTTL)
		if err != nil {
			return err
		}
		if ok {
			break
		}
		if !all || time.Now().After(deadline) {
			if all {
				return fmt.Errorf("job %s: another worker has been draining its records for over %s", jobID, wait)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	defer h.Jobs.UnlockRecords(context.WithoutCancel(ctx), jobID, owner)
	job, err := h.Jobs.Get(ctx, jobID)
	if err != nil {
		return err
	}
	store, err := h.Outputs.Open(ctx, job.Spec.OutputURL)
	if err != nil {
		return err
	}
	part := job.Drained.Parts
	for {
		recs, _, err := h.Jobs.Records(ctx, jobID, "", h.PartSize)
		if err != nil {
			return err
		}
		if len(recs) == 0 || (!all && len(recs) < h.PartSize) {
			return nil
		}
		var entries []output.ManifestEntry
		var d jobs.Drained
		for _, r := range recs {
			es := ManifestEntriesOf(r)
			entries = append(entries, es...)
			d.MilliPU += r.SpentMilliPU
			for _, e := range es {
				d.Bytes += e.Size
			}
		}
		d.Outputs = int64(len(entries))
		if err := output.WriteManifestPart(ctx, store, output.ManifestPartKey(jobID, part), entries); err != nil {
			return err
		}
		ok, err := h.Jobs.CommitRecords(ctx, jobID, recs[len(recs)-1].Cursor, part, d)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("job %s: manifest part %d was committed by another worker while this one held the lock", jobID, part)
		}
		part++
	}
}

// WriteManifest drains the rest of a job's records into manifest parts and
// writes <job>/manifest.json, the index of every part with the job's totals
// (see output.ManifestIndex; output.ManifestEntries reads it part by part).
func (h *Handlers) WriteManifest(ctx context.Context, jobID string) error {
	if err := h.DrainRecords(ctx, jobID, true, drainLockTTL); err != nil {
		return err
	}
	job, err := h.Jobs.Get(ctx, jobID)
	if err != nil {
		return err
	}
	store, err := h.Outputs.Open(ctx, job.Spec.OutputURL)
	if err != nil {
		return err
	}
	d := job.Drained
	idx := output.ManifestIndex{Job: jobID, Outputs: d.Outputs, Bytes: d.Bytes, PU: float64(d.MilliPU) / 1000}
	for i := range d.Parts {
		idx.Parts = append(idx.Parts, output.ManifestPartKey(jobID, i))
	}
	return output.WriteManifestIndex(ctx, store, ManifestKey(jobID), idx)
}

// drainSoon drains whole parts when a completion found many records waiting.
func (h *Handlers) drainSoon(ctx context.Context, jobID string, out jobs.Outcome) error {
	if out.Backlog < int64(h.PartSize) || out.Finished != "" {
		return nil
	}
	err := h.DrainRecords(context.WithoutCancel(ctx), jobID, false, 0)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

func newOwner() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// JobOutputs iterates over the manifest entries of every DONE item of a job,
// wherever its record is: the manifest parts already stored in the job's output
// store out (in part order), then the records still in Redis. It holds one part
// or one page of records at a time. A finished job's are all in its manifest
// (output.ManifestEntries reads it without Redis). The iteration stops at the
// first error, which it yields with a zero entry.
func JobOutputs(ctx context.Context, store *jobs.Store, out *output.Store, jobID string) iter.Seq2[output.ManifestEntry, error] {
	return func(yield func(output.ManifestEntry, error) bool) {
		job, err := store.Get(ctx, jobID)
		if err != nil {
			yield(output.ManifestEntry{}, err)
			return
		}
		// Parts first, then the stream: a drain committing meanwhile could make
		// records move from the stream to a part not read; call it when no
		// worker completes the job's items (tests, a finished job).
		idx := output.ManifestIndex{Version: output.ManifestIndexVersion, Job: jobID}
		for i := range job.Drained.Parts {
			idx.Parts = append(idx.Parts, output.ManifestPartKey(jobID, i))
		}
		for e, err := range output.IndexEntries(ctx, out, idx) {
			if !yield(e, err) || err != nil {
				return
			}
		}
		for r, err := range store.AllRecords(ctx, jobID) {
			if err != nil {
				yield(output.ManifestEntry{}, err)
				return
			}
			for _, e := range ManifestEntriesOf(r) {
				if !yield(e, nil) {
					return
				}
			}
		}
	}
}
