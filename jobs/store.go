package jobs

import (
	"cmp"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"

	"shfleet/grid"
	"shfleet/keys"
)

// DefaultPrefix is [keys.DefaultPrefix], kept so that code written against it
// still builds.
//
// Deprecated: use keys.DefaultPrefix.
const DefaultPrefix = keys.DefaultPrefix

// batchSize bounds the arguments of one script call or HMGET.
const batchSize = 1000

var (
	//go:embed lua/common.lua
	luaCommon string
	//go:embed lua/create.lua
	luaCreate string
	//go:embed lua/job.lua
	luaJob string
	//go:embed lua/record_analysis.lua
	luaRecord string
	//go:embed lua/schedule.lua
	luaSchedule string
	//go:embed lua/begin_item.lua
	luaBegin string
	//go:embed lua/complete_item.lua
	luaComplete string
	//go:embed lua/fail_item.lua
	luaFail string
	//go:embed lua/release_item.lua
	luaRelease string
	//go:embed lua/restart.lua
	luaRestart string
	//go:embed lua/delete.lua
	luaDelete string
	//go:embed lua/fail_analysis.lua
	luaFailAnalysis string
	//go:embed lua/page.lua
	luaPage string
	//go:embed lua/item.lua
	luaItem string
	//go:embed lua/feed.lua
	luaFeed string
	//go:embed lua/unfeed.lua
	luaUnfeed string
	//go:embed lua/commit_records.lua
	luaCommitRecords string

	scriptCreate   = redis.NewScript(luaCommon + luaCreate)
	scriptJob      = redis.NewScript(luaCommon + luaJob)
	scriptRecord   = redis.NewScript(luaCommon + luaRecord)
	scriptSchedule = redis.NewScript(luaCommon + luaSchedule)
	scriptBegin    = redis.NewScript(luaCommon + luaBegin)
	scriptComplete = redis.NewScript(luaCommon + luaComplete)
	scriptFail     = redis.NewScript(luaCommon + luaFail)
	scriptRelease  = redis.NewScript(luaCommon + luaRelease)
	scriptRestart  = redis.NewScript(luaCommon + luaRestart)
	scriptDelete   = redis.NewScript(luaCommon + luaDelete)
	scriptFailAn   = redis.NewScript(luaCommon + luaFailAnalysis)
	scriptPage     = redis.NewScript(luaCommon + luaPage)
	scriptItem     = redis.NewScript(luaCommon + luaItem)
	scriptFeed     = redis.NewScript(luaCommon + luaFeed)
	scriptUnfeed   = redis.NewScript(luaCommon + luaUnfeed)
	scriptCommit   = redis.NewScript(luaCommon + luaCommitRecords)
)

// Store keeps jobs in Redis. The zero value with Redis set works.
type Store struct {
	// Redis is the client; required.
	Redis redis.UniversalClient
	// Prefix starts every key. Default: [DefaultPrefix]. A trailing ':' is dropped.
	Prefix string
	// Now is the clock. Default: time.Now.
	Now func() time.Time
}

func (s *Store) prefix() string {
	p := strings.TrimSuffix(s.Prefix, ":")
	if p == "" {
		return keys.DefaultPrefix
	}
	return p
}

func (s *Store) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

func (s *Store) nowArg() string { return s.now().Format(time.RFC3339Nano) }

func (s *Store) indexKey() string { return s.prefix() + ":jobs" }

// activeKey is the index of PROCESSING jobs the feeder looks at (see
// [Store.ActiveJobs]).
func (s *Store) activeKey() string { return s.prefix() + ":jobs:active" }

// keys are the twelve keys every script gets, in the order lua/common.lua names
// them: job, tiles, analysed, acq, ord, st, err, failed, records, failed tiles,
// failed groups, feed-first list.
func (s *Store) keys(id string) []string {
	base := s.prefix() + ":job:{" + id + "}"
	return []string{base, base + ":tiles", base + ":analysed", base + ":acq", base + ":ord", base + ":st",
		base + ":err", base + ":failed", base + ":records", base + ":failed:tiles", base + ":failed:groups", base + ":feed"}
}

// Indexes in keys().
const (
	keyRecords      = 8
	keyFailedGroups = 10
)

// scriptErr turns the scripts' error replies into typed errors.
func scriptErr(err error, id, op string) error {
	if err == nil {
		return nil
	}
	var re redis.Error
	if !errors.As(err, &re) {
		return fmt.Errorf("job %s: %s: %w", id, op, err)
	}
	// Redis prefixes "ERR " to an error reply without a space (no error code).
	f := strings.Fields(strings.TrimPrefix(re.Error(), "ERR "))
	if len(f) == 0 {
		return fmt.Errorf("job %s: %s: %w", id, op, err)
	}
	switch f[0] {
	case "NOTFOUND":
		return &NotFoundError{Job: id}
	case "ITEMNOTFOUND":
		if len(f) > 1 {
			return &NotFoundError{Job: id, Item: f[1]}
		}
	case "TRANSITION":
		if len(f) > 2 {
			return &TransitionError{Job: id, Op: op, From: f[1], To: f[2]}
		}
	case "UNKNOWNTILE":
		if len(f) > 1 {
			return fmt.Errorf("job %s: %s: tile %s is not one of the job's tiles", id, op, f[1])
		}
	case "EXISTS":
		return fmt.Errorf("job %s: %s: a job with this id exists already; leave the id empty to get a new one", id, op)
	}
	return fmt.Errorf("job %s: %s: %w", id, op, err)
}

func (s *Store) check(id string) error {
	if s.Redis == nil {
		return errors.New("jobs: Store.Redis is nil")
	}
	if !ValidID(id) {
		return fmt.Errorf("job %q: not a valid job id; list jobs with `enqueue list`", id)
	}
	return nil
}

// Create stores a new job in status CREATED with its tiles. The spec's defaults
// are filled in, its ID generated when empty. Create is all-or-nothing: the job
// hash and tiles are written by one script, and the job's entry in the index
// (written first) is ignored by List until the job exists.
func (s *Store) Create(ctx context.Context, spec Spec, tiles []grid.Tile) (Job, error) {
	if s.Redis == nil {
		return Job{}, errors.New("jobs: Store.Redis is nil")
	}
	if err := spec.Validate(); err != nil {
		return Job{}, err
	}
	if len(tiles) == 0 {
		return Job{}, errors.New("job spec: no tiles; the AOI does not intersect the grid")
	}
	now := s.now()
	if spec.ID == "" {
		spec.ID = NewID(now)
	}
	if spec.Mode == "" {
		spec.Mode = DefaultMode
	}
	if spec.Queue == "" {
		spec.Queue = DefaultQueue
	}
	spec.CreatedAt = now
	id := spec.ID
	specJSON, err := json.Marshal(spec)
	if err != nil {
		return Job{}, fmt.Errorf("job %s: encode spec: %w", id, err)
	}
	args := []any{now.Format(time.RFC3339Nano), specJSON, 0, epochDay(spec.From),
		spec.From.UTC().Format(time.RFC3339Nano), spec.To.UTC().Format(time.RFC3339Nano)}
	seen := make(map[string]bool, len(tiles))
	for _, t := range tiles {
		if t.Name == "" || seen[t.Name] {
			return Job{}, fmt.Errorf("job %s: tile name %q is empty or repeated; tile names must be unique", id, t.Name)
		}
		if strings.ContainsAny(t.Name, "/\\ ") || t.Name == "." || t.Name == ".." {
			return Job{}, fmt.Errorf("job %s: tile name %q is not path-safe (no /, \\, spaces, . or ..)", id, t.Name)
		}
		seen[t.Name] = true
		tj, err := json.Marshal(t)
		if err != nil {
			return Job{}, fmt.Errorf("job %s: encode tile %s: %w", id, t.Name, err)
		}
		args = append(args, t.Name, tj)
	}
	args[2] = len(seen)
	if err := s.Redis.ZAddNX(ctx, s.indexKey(), redis.Z{Score: float64(now.UnixMilli()), Member: id}).Err(); err != nil {
		return Job{}, fmt.Errorf("job %s: create: %w", id, err)
	}
	if err := scriptCreate.Run(ctx, s.Redis, s.keys(id), args...).Err(); err != nil {
		if !strings.HasPrefix(strings.TrimPrefix(err.Error(), "ERR "), "EXISTS") {
			// Nothing of the job may stay behind: drop the index entry and any tiles.
			bg := context.WithoutCancel(ctx)
			if n, _ := s.Redis.Exists(bg, s.keys(id)[0]).Result(); n == 0 {
				s.Redis.ZRem(bg, s.indexKey(), id)
				s.Redis.Del(bg, s.keys(id)[1])
			}
		}
		return Job{}, scriptErr(err, id, "create")
	}
	return s.Get(ctx, id)
}

// Get returns a job; O(1) in the number of items.
func (s *Store) Get(ctx context.Context, id string) (Job, error) {
	if err := s.check(id); err != nil {
		return Job{}, err
	}
	h, err := s.Redis.HGetAll(ctx, s.keys(id)[0]).Result()
	if err != nil {
		return Job{}, fmt.Errorf("job %s: get: %w", id, err)
	}
	if len(h) == 0 {
		return Job{}, &NotFoundError{Job: id}
	}
	return parseJob(id, h)
}

func parseJob(id string, h map[string]string) (Job, error) {
	j := Job{ID: id, Status: Status(h["status"]), StoppedReason: h["stopped_reason"], Error: h["error"], Ending: Status(h["ending"])}
	if err := json.Unmarshal([]byte(h["spec"]), &j.Spec); err != nil {
		return Job{}, fmt.Errorf("job %s: stored spec does not decode: %w", id, err)
	}
	// Restart of a job with failed catalog groups turns auto-start on (the
	// scripts never rewrite the spec JSON).
	if h["auto_start"] == "1" {
		j.Spec.AutoStart = true
	}
	n := func(k string) int64 { v, _ := strconv.ParseInt(h[k], 10, 64); return v }
	t := func(k string) time.Time { v, _ := time.Parse(time.RFC3339Nano, h[k]); return v }
	j.Progress = Progress{
		Tiles: int(n("tiles")), TilesAnalysed: int(n("tiles_analysed")), TilesFailed: int(n("tiles_failed")), CatalogRequests: int(n("catalog_requests")),
		Total: int(n("items")), Pending: int(n("n:PENDING")), Scheduled: int(n("n:SCHEDULED")),
		Processing: int(n("n:PROCESSING")), Done: int(n("n:DONE")), Failed: int(n("n:FAILED")),
		EstimatedMilliPU: n("est_mpu"), SpentMilliPU: n("spent_mpu"), RateLimited: int(n("rate_limited")),
	}
	j.Restarts = int(n("restarts"))
	j.Drained = Drained{Parts: int(n("manifest_parts")), Outputs: n("manifest_outputs"), Bytes: n("manifest_bytes"), MilliPU: n("manifest_mpu")}
	j.ResumeAt, j.EndingAt = t("resume_at"), t("ending_at")
	j.CreatedAt, j.UpdatedAt = t("created_at"), t("updated_at")
	j.AnalysisStartedAt, j.AnalysedAt = t("analysis_started_at"), t("analysed_at")
	j.StartedAt, j.FinishedAt = t("started_at"), t("finished_at")
	return j, nil
}

// List returns every job, oldest first.
func (s *Store) List(ctx context.Context) ([]Job, error) {
	if s.Redis == nil {
		return nil, errors.New("jobs: Store.Redis is nil")
	}
	ids, err := s.Redis.ZRange(ctx, s.indexKey(), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	var out []Job
	for chunk := range slices.Chunk(ids, 100) {
		cmds := make([]*redis.MapStringStringCmd, len(chunk))
		_, err := s.Redis.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, id := range chunk {
				cmds[i] = p.HGetAll(ctx, s.keys(id)[0])
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("list jobs: %w", err)
		}
		for i, c := range cmds {
			h := c.Val()
			if len(h) == 0 || h["spec"] == "" {
				continue // being created, or deleted
			}
			j, err := parseJob(chunk[i], h)
			if err != nil {
				return nil, err
			}
			out = append(out, j)
		}
	}
	return out, nil
}

// Tiles returns a job's tiles sorted by name, each with its analysed flag, and
// for a tile whose catalog search failed ([Store.FailAnalysis]) the failure.
func (s *Store) Tiles(ctx context.Context, id string) ([]TileRecord, error) {
	if err := s.exists(ctx, id); err != nil {
		return nil, err
	}
	k := s.keys(id)
	analysed := map[string]bool{}
	it := s.Redis.SScan(ctx, k[2], 0, "", 1000).Iterator()
	for it.Next(ctx) {
		analysed[it.Val()] = true
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("job %s: tiles: %w", id, err)
	}
	groups, err := s.FailedGroups(ctx, id)
	if err != nil {
		return nil, err
	}
	failed := map[string]FailedGroup{}
	for _, g := range groups {
		for _, name := range g.Tiles {
			failed[name] = g
		}
	}
	var out []TileRecord
	hit := s.Redis.HScan(ctx, k[1], 0, "", 1000).Iterator()
	for hit.Next(ctx) {
		name := hit.Val()
		if !hit.Next(ctx) {
			break
		}
		var tr TileRecord
		if err := json.Unmarshal([]byte(hit.Val()), &tr.Tile); err != nil {
			return nil, fmt.Errorf("job %s: tile %s does not decode: %w", id, name, err)
		}
		tr.Analysed = analysed[name]
		if g, ok := failed[name]; ok {
			tr.Failed, tr.Error = true, g.Reason
		}
		out = append(out, tr)
	}
	if err := hit.Err(); err != nil {
		return nil, fmt.Errorf("job %s: tiles: %w", id, err)
	}
	slices.SortFunc(out, func(a, b TileRecord) int { return cmp.Compare(a.Name, b.Name) })
	return out, nil
}

// TilesByName returns the named tiles of a job, in the order asked (one HMGET,
// so a catalog task of a 100,000-tile job reads only its own group).
func (s *Store) TilesByName(ctx context.Context, id string, names []string) ([]grid.Tile, error) {
	if err := s.exists(ctx, id); err != nil {
		return nil, err
	}
	if len(names) == 0 {
		return nil, nil
	}
	vals, err := s.Redis.HMGet(ctx, s.keys(id)[1], names...).Result()
	if err != nil {
		return nil, fmt.Errorf("job %s: tiles: %w", id, err)
	}
	out := make([]grid.Tile, 0, len(names))
	for i, v := range vals {
		str, ok := v.(string)
		if !ok {
			return nil, &NotFoundError{Job: id, Item: "tile " + names[i]}
		}
		var t grid.Tile
		if err := json.Unmarshal([]byte(str), &t); err != nil {
			return nil, fmt.Errorf("job %s: tile %s does not decode: %w", id, names[i], err)
		}
		out = append(out, t)
	}
	return out, nil
}

func (s *Store) exists(ctx context.Context, id string) error {
	if err := s.check(id); err != nil {
		return err
	}
	n, err := s.Redis.Exists(ctx, s.keys(id)[0]).Result()
	if err != nil {
		return fmt.Errorf("job %s: %w", id, err)
	}
	if n == 0 {
		return &NotFoundError{Job: id}
	}
	return nil
}

// Delete removes a job and all its records. An ANALYSING or PROCESSING job must
// be canceled first (ErrInvalidTransition).
func (s *Store) Delete(ctx context.Context, id string) error {
	if err := s.check(id); err != nil {
		return err
	}
	if err := scriptDelete.Run(ctx, s.Redis, s.keys(id)).Err(); err != nil {
		return scriptErr(err, id, "delete")
	}
	if err := s.Redis.ZRem(ctx, s.indexKey(), id).Err(); err != nil {
		return fmt.Errorf("job %s: delete from index: %w", id, err)
	}
	if err := s.Deactivate(ctx, id); err != nil {
		return err
	}
	return nil
}

func (s *Store) jobOp(ctx context.Context, id, op string, extra ...any) (Status, error) {
	if err := s.check(id); err != nil {
		return "", err
	}
	args := append([]any{op, s.nowArg()}, extra...)
	st, err := scriptJob.Run(ctx, s.Redis, s.keys(id), args...).Text()
	if err != nil {
		return "", scriptErr(err, id, op)
	}
	return Status(st), nil
}

// BeginAnalysis moves a job from CREATED to ANALYSING (no-op when ANALYSING).
// RecordAnalysis does the same on its first call, so calling it is optional.
func (s *Store) BeginAnalysis(ctx context.Context, id string) error {
	_, err := s.jobOp(ctx, id, "analyse")
	return err
}

// RecordAnalysis records the catalog search of a group of tiles: items (made
// PENDING, with their estimates) and how many catalog requests it took. It is
// idempotent per tile: tiles recorded before are skipped with their items and
// requests, so a re-run task adds nothing. Every item must belong to one of
// tiles. When the last tile is recorded the job becomes ANALYSIS_DONE, and
// exactly that call returns true; a job that auto-starts (Spec.AutoStart, or a
// restart that re-runs failed groups; never a batch job) becomes PROCESSING in
// the same call and enters the active index ([Store.ActiveJobs]), so the feeder
// queues its items: nothing is enqueued here. When tiles
// failed ([Store.FailAnalysis]) and no item was found at all, it becomes FAILED
// instead and the call returns false. Tiles that failed are not recorded until
// a restart.
func (s *Store) RecordAnalysis(ctx context.Context, id string, tiles []string, items []Item, catalogRequests int) (bool, error) {
	if err := s.check(id); err != nil {
		return false, err
	}
	if len(tiles) == 0 {
		return false, fmt.Errorf("job %s: record analysis: no tile names given", id)
	}
	inGroup := make(map[string]bool, len(tiles))
	args := []any{s.nowArg(), catalogRequests, len(tiles)}
	for _, t := range tiles {
		inGroup[t] = true
		args = append(args, t)
	}
	times, err := s.Redis.HMGet(ctx, s.keys(id)[0], "day0", "from", "to").Result()
	if err != nil {
		return false, fmt.Errorf("job %s: record analysis: %w", id, err)
	}
	if times[1] == nil {
		return false, &NotFoundError{Job: id}
	}
	jt := parseTimes(times)
	byTile := map[string][]Item{}
	var order []string
	for _, it := range items {
		if !inGroup[it.Tile] {
			return false, fmt.Errorf("job %s: record analysis: item %s is for tile %q, which is not in the group", id, it.ID, it.Tile)
		}
		if _, ok := byTile[it.Tile]; !ok {
			order = append(order, it.Tile)
		}
		byTile[it.Tile] = append(byTile[it.Tile], it)
	}
	for _, t := range order {
		rec, est, err := packTile(t, byTile[t], jt.from, jt.to)
		if err != nil {
			return false, fmt.Errorf("job %s: record analysis: %w", id, err)
		}
		args = append(args, t, rec, est)
	}
	res, err := scriptRecord.Run(ctx, s.Redis, s.keys(id), args...).Slice()
	if err != nil {
		return false, scriptErr(err, id, "record analysis")
	}
	return s.afterAnalysis(ctx, id, res)
}

// afterAnalysis reads the {flipped, status} reply of the analysis scripts and
// puts a PROCESSING job (just auto-started, or a re-run of the call that started
// it and may have failed to index it) into the active index.
func (s *Store) afterAnalysis(ctx context.Context, id string, res []any) (bool, error) {
	if len(res) != 2 {
		return false, fmt.Errorf("job %s: analysis script answered %d values, want 2", id, len(res))
	}
	flipped, _ := res[0].(int64)
	if st, _ := res[1].(string); Status(st) == StatusProcessing {
		if err := s.Activate(ctx, id); err != nil {
			return false, err
		}
	}
	return flipped == 1, nil
}

// MaxErrorLen bounds Job.Error and FailedGroup.Reason in bytes; longer reasons
// are cut on a rune boundary and end in "...".
const MaxErrorLen = 1024

// FailAnalysis records that the catalog search of a group of tiles failed for
// good (a 400, a 403 on the collection, retries exhausted), so the job does not
// wait for it forever. The group's tiles that are neither analysed nor failed
// yet count as failed (Progress.TilesFailed, TileRecord.Failed); the group is
// recorded with those tiles and reason (see [Store.FailedGroups]) so that
// [Store.Restart] can search it again; reason (the server's message, never a
// secret; cut to [MaxErrorLen]) becomes Job.Error. Repeating the call for the
// same group changes nothing.
//
// When this completes the analysis (every tile analysed or failed): a job
// without any item becomes FAILED at once (FinishedAt set); otherwise it becomes
// ANALYSIS_DONE (PROCESSING when it auto-starts) and exactly that call returns
// true, as with RecordAnalysis. Such a job ends PARTIAL even when every item
// is DONE (FAILED when none is). A CANCELED job gives an error matching
// ErrCanceled.
func (s *Store) FailAnalysis(ctx context.Context, id string, group int, tiles []string, reason string) (bool, error) {
	if err := s.check(id); err != nil {
		return false, err
	}
	if len(tiles) == 0 {
		return false, fmt.Errorf("job %s: fail analysis of group %d: no tile names given", id, group)
	}
	if group < 0 {
		return false, fmt.Errorf("job %s: fail analysis: group %d is negative; groups are numbered from 0", id, group)
	}
	reason = TruncateError(strings.TrimSpace(reason))
	if reason == "" {
		return false, fmt.Errorf("job %s: fail analysis of group %d: reason is empty; say why the search failed", id, group)
	}
	args := []any{s.nowArg(), group, reason, len(tiles)}
	for _, t := range tiles {
		args = append(args, t)
	}
	res, err := scriptFailAn.Run(ctx, s.Redis, s.keys(id), args...).Slice()
	if err != nil {
		return false, scriptErr(err, id, "fail analysis")
	}
	return s.afterAnalysis(ctx, id, res)
}

// TruncateError makes msg valid UTF-8 and at most [MaxErrorLen] bytes, cutting
// on a rune boundary and ending a cut message in "...".
func TruncateError(msg string) string {
	msg = strings.ToValidUTF8(msg, "\uFFFD")
	if len(msg) <= MaxErrorLen {
		return msg
	}
	cut := MaxErrorLen - len("...")
	for cut > 0 && !utf8.RuneStart(msg[cut]) {
		cut--
	}
	return msg[:cut] + "..."
}

// FailedGroups returns the job's catalog groups whose search failed for good
// since its last restart, sorted by group number; none for a job without.
func (s *Store) FailedGroups(ctx context.Context, id string) ([]FailedGroup, error) {
	if err := s.check(id); err != nil {
		return nil, err
	}
	h, err := s.Redis.HGetAll(ctx, s.keys(id)[keyFailedGroups]).Result()
	if err != nil {
		return nil, fmt.Errorf("job %s: failed groups: %w", id, err)
	}
	kv := make([]string, 0, 2*len(h))
	for k, v := range h {
		kv = append(kv, k, v)
	}
	return decodeGroups(id, kv)
}

// Start moves an ANALYSIS_DONE job to PROCESSING and puts it into the active
// index, where the feeder finds it; O(1) in the number of items. A job without
// items goes straight to DONE. It returns the status after the call.
func (s *Store) Start(ctx context.Context, id string) (Status, error) {
	st, err := s.jobOp(ctx, id, "start")
	if err != nil {
		return "", err
	}
	if st == StatusProcessing {
		return st, s.Activate(ctx, id)
	}
	return st, nil
}

// Activate puts a job into the index of active jobs that [Store.ActiveJobs]
// lists (idempotent). The Store does it whenever a job becomes PROCESSING;
// calling it again repairs a job whose indexing failed after its status
// changed. The feeder drops jobs that are no longer PROCESSING.
func (s *Store) Activate(ctx context.Context, id string) error {
	if err := s.check(id); err != nil {
		return err
	}
	if err := s.Redis.ZAddNX(ctx, s.activeKey(), redis.Z{Score: float64(s.now().UnixMilli()), Member: id}).Err(); err != nil {
		return fmt.Errorf("job %s: index as active: %w", id, err)
	}
	return nil
}

// Deactivate removes a job from the index of active jobs (idempotent).
func (s *Store) Deactivate(ctx context.Context, id string) error {
	if err := s.check(id); err != nil {
		return err
	}
	if err := s.Redis.ZRem(ctx, s.activeKey(), id).Err(); err != nil {
		return fmt.Errorf("job %s: drop from the active index: %w", id, err)
	}
	return nil
}

// ActiveJobs returns the ids in the index of active jobs, oldest start first:
// every PROCESSING job, plus jobs that ended or were canceled since and that the
// feeder has not dropped yet ([Store.Deactivate]). It reads one key, whatever
// the number of jobs and items.
func (s *Store) ActiveJobs(ctx context.Context) ([]string, error) {
	if s.Redis == nil {
		return nil, errors.New("jobs: Store.Redis is nil")
	}
	ids, err := s.Redis.ZRange(ctx, s.activeKey(), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("list active jobs: %w", err)
	}
	return ids, nil
}

// Unfeed hands items back that [Store.Feed] took but whose task could not be
// queued: SCHEDULED items become PENDING again, first in line for the next
// Feed, without counting a return; items in any other status (their task ran
// after all) are left alone. It returns how many went back.
func (s *Store) Unfeed(ctx context.Context, id string, itemIDs ...string) (int, error) {
	if err := s.check(id); err != nil {
		return 0, err
	}
	back := 0
	for chunk := range slices.Chunk(itemIDs, batchSize) {
		args := []any{s.nowArg()}
		for _, it := range chunk {
			args = append(args, it)
		}
		n, err := scriptUnfeed.Run(ctx, s.Redis, s.keys(id), args...).Int()
		if err != nil {
			return back, scriptErr(err, id, "unfeed")
		}
		back += n
	}
	return back, nil
}

// Schedule records that tasks are queued for items: PENDING items become
// SCHEDULED (the task ids are not stored: they are derived from the job and
// item ids). The job must be PROCESSING (a CANCELED job gives an error matching
// ErrCanceled).
func (s *Store) Schedule(ctx context.Context, id string, itemIDs ...string) error {
	if err := s.check(id); err != nil {
		return err
	}
	for chunk := range slices.Chunk(itemIDs, batchSize) {
		args := []any{s.nowArg()}
		for _, e := range chunk {
			args = append(args, e)
		}
		if err := scriptSchedule.Run(ctx, s.Redis, s.keys(id), args...).Err(); err != nil {
			return scriptErr(err, id, "schedule")
		}
	}
	return nil
}

// BeginItem is called by a worker before it processes an item. It returns true
// and makes the item PROCESSING (attempts+1) when the worker should go on; false
// when the job is CANCELED or the item is already DONE or FAILED (a duplicate or
// stale task: drop it).
func (s *Store) BeginItem(ctx context.Context, id, itemID string) (bool, error) {
	if err := s.check(id); err != nil {
		return false, err
	}
	n, err := scriptBegin.Run(ctx, s.Redis, s.keys(id), s.nowArg(), itemID).Int64()
	if err != nil {
		return false, scriptErr(err, id, "begin item "+itemID)
	}
	return n == 1, nil
}

// CompleteItem marks an item DONE, appends its [Record] (outputs, PU) to the
// job's records stream and adds the PU it cost to the job. Completing a DONE item again changes nothing. When this call leaves no
// item PENDING, SCHEDULED or PROCESSING, the job ends (DONE, PARTIAL or FAILED)
// and Outcome.Finished says so; exactly one caller sees that. Items of a
// CANCELED job can still complete (their work was done and charged).
func (s *Store) CompleteItem(ctx context.Context, id, itemID string, r Result) (Outcome, error) {
	if err := s.check(id); err != nil {
		return Outcome{}, err
	}
	var outputs []byte
	if len(r.Outputs) > 0 {
		var err error
		if outputs, err = json.Marshal(r.Outputs); err != nil {
			return Outcome{}, fmt.Errorf("job %s: item %s: encode outputs: %w", id, itemID, err)
		}
	}
	spent := int64(0)
	if r.PU > 0 && !math.IsInf(r.PU, 0) {
		spent = milliPU(r.PU)
	}
	res, err := scriptComplete.Run(ctx, s.Redis, s.keys(id), s.nowArg(), itemID, string(outputs), spent).StringSlice()
	if err != nil {
		return Outcome{}, scriptErr(err, id, "complete item "+itemID)
	}
	out := Outcome{Item: ItemStatus(res[0]), Finished: Status(res[1])}
	if len(res) > 2 {
		out.Backlog, _ = strconv.ParseInt(res[2], 10, 64)
	}
	return out, nil
}

// ReleaseItem hands a PROCESSING item back to the queue without counting a
// failure or a return: it becomes SCHEDULED again, for a task that is re-queued
// because, for example, the quota could not admit it soon enough. Items in other
// statuses are left alone. It returns the item's status after the call.
func (s *Store) ReleaseItem(ctx context.Context, id, itemID string) (ItemStatus, error) {
	if err := s.check(id); err != nil {
		return "", err
	}
	st, err := scriptRelease.Run(ctx, s.Redis, s.keys(id), s.nowArg(), itemID).Text()
	if err != nil {
		return "", scriptErr(err, id, "release item "+itemID)
	}
	return ItemStatus(st), nil
}

// milliPU rounds PU to the nearest milli-PU (a charge is a measurement, not an
// upper bound, so no rounding up).
func milliPU(pu float64) int64 { return int64(math.Round(pu * 1000)) }

// FailItem records that processing an item failed. A permanent failure makes it
// FAILED; otherwise (the item got stuck: worker died, timeout, transient error)
// it goes back to PENDING if it has been returned fewer than MaxReturns times,
// else it becomes FAILED. A DONE or FAILED item stays as it is. Job completion
// is detected as in CompleteItem.
func (s *Store) FailItem(ctx context.Context, id, itemID, errMsg string, permanent bool) (Outcome, error) {
	if err := s.check(id); err != nil {
		return Outcome{}, err
	}
	perm := "0"
	if permanent {
		perm = "1"
	}
	errMsg = TruncateError(errMsg)
	res, err := scriptFail.Run(ctx, s.Redis, s.keys(id), s.nowArg(), itemID, errMsg, perm, MaxReturns).StringSlice()
	if err != nil {
		return Outcome{}, scriptErr(err, id, "fail item "+itemID)
	}
	return Outcome{Item: ItemStatus(res[0]), Finished: Status(res[1])}, nil
}

// RestartPage is how many FAILED items one script call of [Store.Restart]
// moves back to PENDING.
const RestartPage = 1000

// Restart puts a PARTIAL or FAILED job back to work: all its FAILED items are
// PENDING again (attempts, returns and task id reset; first in line for the
// feeder) and its error is cleared. It works in pages of [RestartPage] items, one
// script call each, and the job keeps its final status until the last page, so
// a restart that is cut short is finished by the next call. Without failed
// catalog groups the job is then PROCESSING again and in the active index: the
// feeder queues its items under new task ids. With failed groups
// ([Store.FailAnalysis]) their tiles are un-analysed again, the record of failed
// groups is cleared, and the job is ANALYSING with auto-start on: the caller
// enqueues one catalog task per Restarted.Groups entry, and the analysis they
// complete starts processing every PENDING item. Restart counts in
// Job.Restarts either way.
func (s *Store) Restart(ctx context.Context, id string) (Restarted, error) {
	if err := s.check(id); err != nil {
		return Restarted{}, err
	}
	moved := 0
	for {
		res, err := scriptRestart.Run(ctx, s.Redis, s.keys(id), s.nowArg(), RestartPage).Slice()
		if err != nil {
			return Restarted{Items: moved}, scriptErr(err, id, "restart")
		}
		if len(res) != 3 {
			return Restarted{Items: moved}, fmt.Errorf("job %s: restart: script answered %d values, want 3", id, len(res))
		}
		n, _ := res[0].(int64)
		moved += int(n)
		if flipped, _ := res[1].(int64); flipped == 0 {
			continue
		}
		groups, err := decodeGroups(id, stringsOf(res[2]))
		if err != nil {
			return Restarted{Items: moved}, err
		}
		if len(groups) == 0 {
			if err := s.Activate(ctx, id); err != nil {
				return Restarted{Items: moved}, err
			}
		}
		return Restarted{Items: moved, Groups: groups}, nil
	}
}

// stringsOf converts a script's array reply to strings (non-strings skipped).
func stringsOf(v any) []string {
	vs, _ := v.([]any)
	out := make([]string, 0, len(vs))
	for _, x := range vs {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// decodeGroups decodes group number / JSON pairs of the failed-groups hash,
// sorted by group number.
func decodeGroups(id string, kv []string) ([]FailedGroup, error) {
	out := make([]FailedGroup, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		n, err := strconv.Atoi(kv[i])
		if err != nil {
			return nil, fmt.Errorf("job %s: failed group %q is not a number", id, kv[i])
		}
		var rec struct {
			Tiles    []string `json:"tiles"`
			Reason   string   `json:"reason"`
			FailedAt string   `json:"failed_at"`
		}
		if err := json.Unmarshal([]byte(kv[i+1]), &rec); err != nil {
			return nil, fmt.Errorf("job %s: failed group %d does not decode: %w", id, n, err)
		}
		at, _ := time.Parse(time.RFC3339Nano, rec.FailedAt)
		slices.Sort(rec.Tiles)
		out = append(out, FailedGroup{Group: n, Tiles: rec.Tiles, Reason: rec.Reason, FailedAt: at})
	}
	slices.SortFunc(out, func(a, b FailedGroup) int { return cmp.Compare(a.Group, b.Group) })
	return out, nil
}

// Finish ends a job whose every item is final (Job.Ending set by the call that
// finished its last item): the status becomes DONE, PARTIAL or FAILED and the job
// leaves the active index. Call it once the job's manifest is written, so that a
// job reads final only when its outputs are complete. It is idempotent: on a job
// already final, or not ending (CANCELED meanwhile, say), it changes nothing and
// returns the status as it is.
func (s *Store) Finish(ctx context.Context, id string) (Status, error) {
	st, err := s.jobOp(ctx, id, "finish")
	if err != nil {
		return "", err
	}
	if st.Final() {
		if err := s.Deactivate(ctx, id); err != nil {
			return st, err
		}
	}
	return st, nil
}

// Cancel moves a job that is not final to CANCELED (canceling a CANCELED job
// again is a no-op), drops it from the active index, and returns its items that
// are SCHEDULED or PROCESSING — the ones that may have a queued or running task,
// at most the feeder's window — so the caller can delete their tasks. They are
// found by paging through the status bytes ([Store.Items]); PENDING items have
// no task and are not returned. Later BeginItem calls return false.
func (s *Store) Cancel(ctx context.Context, id string) ([]Item, error) {
	if _, err := s.jobOp(ctx, id, "cancel"); err != nil {
		return nil, err
	}
	if err := s.Deactivate(ctx, id); err != nil {
		return nil, err
	}
	var out []Item
	for _, st := range []ItemStatus{ItemScheduled, ItemProcessing} {
		items, err := CollectItems(s.AllItems(ctx, id, st))
		if err != nil {
			return nil, err
		}
		out = append(out, items...)
	}
	return out, nil
}

// Pause records why a job that is not final makes no progress, e.g.
// ReasonOutOfPU until the monthly quota resets. The status does not change.
func (s *Store) Pause(ctx context.Context, id, reason string, until time.Time) error {
	if reason == "" {
		return fmt.Errorf("job %s: pause: reason is empty", id)
	}
	u := ""
	if !until.IsZero() {
		u = until.UTC().Format(time.RFC3339Nano)
	}
	_, err := s.jobOp(ctx, id, "pause", reason, u)
	return err
}

// Resume clears a job's StoppedReason and ResumeAt (no-op when not paused).
func (s *Store) Resume(ctx context.Context, id string) error {
	_, err := s.jobOp(ctx, id, "resume")
	return err
}

// SetAutoStart asks a job that is not analysed yet to start processing as soon
// as its analysis is done (enqueue start on a job submitted with --no-start).
// The spec is updated with an optimistic transaction.
func (s *Store) SetAutoStart(ctx context.Context, id string) error {
	if err := s.exists(ctx, id); err != nil {
		return err
	}
	key := s.keys(id)[0]
	return s.Redis.Watch(ctx, func(tx *redis.Tx) error {
		raw, err := tx.HGet(ctx, key, "spec").Result()
		if err != nil {
			return fmt.Errorf("job %s: read spec: %w", id, err)
		}
		var spec Spec
		if err := json.Unmarshal([]byte(raw), &spec); err != nil {
			return fmt.Errorf("job %s: spec does not decode: %w", id, err)
		}
		if spec.AutoStart {
			return nil
		}
		spec.AutoStart = true
		b, err := json.Marshal(spec)
		if err != nil {
			return err
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.HSet(ctx, key, "spec", string(b))
			return nil
		})
		return err
	}, key)
}

// CountRateLimited adds one 429 answer to a job's counters (shown by status and
// the job page). A missing job is ignored: the count is informational.
func (s *Store) CountRateLimited(ctx context.Context, id string) error {
	if err := s.check(id); err != nil {
		return err
	}
	k := s.keys(id)[0]
	if n, err := s.Redis.Exists(ctx, k).Result(); err != nil || n == 0 {
		return err
	}
	return s.Redis.HIncrBy(ctx, k, "rate_limited", 1).Err()
}
