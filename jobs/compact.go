package jobs

import (
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"iter"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Flags of a packed tile record (see lua/common.lua for the layout).
const (
	recUniform  = 1 // one estimate for every item of the tile
	recExplicit = 2 // explicit from/to times per item
)

// recHeader is the size of a tile record's fixed part: flags, base, count.
const recHeader = 7

// epochDay is the number of days from 1970-01-01 to t's UTC date.
func epochDay(t time.Time) int64 {
	return int64(math.Floor(float64(t.UTC().Unix()) / 86400))
}

// packTile encodes the items of one tile (sorted by date, duplicates of an id
// dropped) as a tile record with a zero base ordinal, and returns it with the
// sum of the items' estimates. from and to are the job's time range; day0 is
// epochDay(from).
func packTile(tile string, items []Item, from, to time.Time) ([]byte, int64, error) {
	day0 := epochDay(from)
	type entry struct {
		off      uint16
		est      uint32
		from, to time.Time
	}
	seen := map[uint16]bool{}
	var es []entry
	for _, it := range items {
		date := it.Date
		if date == "" {
			date = it.From.UTC().Format(time.DateOnly)
		}
		d, err := time.Parse(time.DateOnly, date)
		if err != nil {
			return nil, 0, fmt.Errorf("item %s: date %q is not YYYY-MM-DD", it.ID, date)
		}
		if it.ID != ItemID(tile, d) {
			return nil, 0, fmt.Errorf("item id %q is not %q (<tile>_<YYYY-MM-DD>, see jobs.ItemID)", it.ID, ItemID(tile, d))
		}
		off := epochDay(d) - day0
		if off < 0 || off > math.MaxUint16 {
			return nil, 0, fmt.Errorf("item %s: date %s is not within %d days from the job's first day %s", it.ID, date, math.MaxUint16, from.UTC().Format(time.DateOnly))
		}
		if it.EstimatedMilliPU < 0 || it.EstimatedMilliPU > math.MaxUint32 {
			return nil, 0, fmt.Errorf("item %s: estimate %d milli-PU is out of range 0..%d", it.ID, it.EstimatedMilliPU, uint32(math.MaxUint32))
		}
		if seen[uint16(off)] {
			continue
		}
		seen[uint16(off)] = true
		es = append(es, entry{off: uint16(off), est: uint32(it.EstimatedMilliPU), from: it.From, to: it.To})
	}
	if len(es) > math.MaxUint16 {
		return nil, 0, fmt.Errorf("tile %s: %d items, at most %d per tile", tile, len(es), math.MaxUint16)
	}
	slices.SortFunc(es, func(a, b entry) int { return cmp.Compare(a.off, b.off) })
	var flags byte = recUniform
	var sum int64
	for _, e := range es {
		sum += int64(e.est)
		if e.est != es[0].est {
			flags &^= recUniform
		}
		df, dt := defaultRange(day0+int64(e.off), from, to)
		if !e.from.Equal(df) || !e.to.Equal(dt) {
			flags |= recExplicit
		}
	}
	b := make([]byte, recHeader, recHeader+2*len(es)+4+16*len(es))
	b[0] = flags
	binary.BigEndian.PutUint16(b[5:], uint16(len(es)))
	for _, e := range es {
		b = binary.BigEndian.AppendUint16(b, e.off)
	}
	if flags&recUniform != 0 && len(es) > 0 {
		b = binary.BigEndian.AppendUint32(b, es[0].est)
	} else {
		for _, e := range es {
			b = binary.BigEndian.AppendUint32(b, e.est)
		}
	}
	if flags&recExplicit != 0 {
		for _, e := range es {
			b = binary.BigEndian.AppendUint64(b, uint64(e.from.UnixNano()))
			b = binary.BigEndian.AppendUint64(b, uint64(e.to.UnixNano()))
		}
	}
	return b, sum, nil
}

// defaultRange is an acquisition item's time range: its day, cut to the job's.
func defaultRange(day int64, from, to time.Time) (time.Time, time.Time) {
	start := time.Unix(day*86400, 0).UTC()
	f, t := start, start.Add(24*time.Hour)
	if from.After(f) {
		f = from
	}
	if to.Before(t) {
		t = to
	}
	return f, t
}

// jobTimes is what decoding items needs besides the tile records.
type jobTimes struct {
	day0     int64
	from, to time.Time
}

func parseTimes(v any) jobTimes {
	vs, _ := v.([]any)
	str := func(i int) string {
		if i < len(vs) {
			s, _ := vs[i].(string)
			return s
		}
		return ""
	}
	var jt jobTimes
	jt.day0, _ = strconv.ParseInt(str(0), 10, 64)
	jt.from, _ = time.Parse(time.RFC3339Nano, str(1))
	jt.to, _ = time.Parse(time.RFC3339Nano, str(2))
	return jt
}

// itemAt rebuilds item ord of tile from its record and status byte.
func itemAt(tile string, rec []byte, ord uint64, st byte, lastErr string, jt jobTimes) (Item, error) {
	if len(rec) < recHeader {
		return Item{}, fmt.Errorf("tile %s: record of %d bytes is too short", tile, len(rec))
	}
	flags, base, n := rec[0], uint64(binary.BigEndian.Uint32(rec[1:])), int(binary.BigEndian.Uint16(rec[5:]))
	i := int(ord - base)
	if ord < base || i >= n {
		return Item{}, fmt.Errorf("tile %s: ordinal %d is not in %d..%d", tile, ord, base, base+uint64(n))
	}
	want := recHeader + 2*n + 4
	if flags&recUniform == 0 {
		want = recHeader + 6*n
	}
	estAt := recHeader + 2*n
	if flags&recUniform == 0 {
		estAt += 4 * i
	}
	if flags&recExplicit != 0 {
		want += 16 * n
	}
	if len(rec) < want {
		return Item{}, fmt.Errorf("tile %s: record of %d bytes, want %d", tile, len(rec), want)
	}
	day := jt.day0 + int64(binary.BigEndian.Uint16(rec[recHeader+2*i:]))
	it := Item{Tile: tile, Ordinal: ord, EstimatedMilliPU: int64(binary.BigEndian.Uint32(rec[estAt:])),
		Status: itemStatusOf(st), Returns: int(st>>3) & 3, Attempts: int(st >> 5), LastError: lastErr}
	d := time.Unix(day*86400, 0).UTC()
	it.Date = d.Format(time.DateOnly)
	it.ID = ItemID(tile, d)
	if flags&recExplicit != 0 {
		at := want - 16*n + 16*i
		it.From = time.Unix(0, int64(binary.BigEndian.Uint64(rec[at:]))).UTC()
		it.To = time.Unix(0, int64(binary.BigEndian.Uint64(rec[at+8:]))).UTC()
	} else {
		it.From, it.To = defaultRange(day, jt.from, jt.to)
	}
	return it, nil
}

func itemStatusOf(b byte) ItemStatus {
	if i := int(b & 7); i < len(ItemStatuses) {
		return ItemStatuses[i]
	}
	return ItemStatus(fmt.Sprintf("UNKNOWN(%d)", b&7))
}

// decodeItems turns a script's item descriptions (ordinal, tile, status byte,
// last error quadruples), tile records (name/record pairs) and job times into
// items.
func decodeItems(id string, descs, recs, times any) ([]Item, error) {
	d, _ := descs.([]any)
	r := stringsOf(recs)
	byTile := make(map[string][]byte, len(r)/2)
	for i := 0; i+1 < len(r); i += 2 {
		byTile[r[i]] = []byte(r[i+1])
	}
	jt := parseTimes(times)
	out := make([]Item, 0, len(d)/4)
	for i := 0; i+3 < len(d); i += 4 {
		ord, _ := d[i].(int64)
		tile, _ := d[i+1].(string)
		st, _ := d[i+2].(int64)
		lastErr, _ := d[i+3].(string)
		it, err := itemAt(tile, byTile[tile], uint64(ord), byte(st), lastErr, jt)
		if err != nil {
			return nil, fmt.Errorf("job %s: %w", id, err)
		}
		out = append(out, it)
	}
	return out, nil
}

// DefaultPageSize is the page size [Store.AllItems] and [Store.AllRecords] use.
const DefaultPageSize = 1000

// pageBudget bounds the ordinals one page call looks at, so a call on a job of
// millions of items that holds few of the status asked for stays short.
const pageBudget = 65536

// Items returns a page of a job's items in ordinal order, at most n (default
// [DefaultPageSize]) of them, only those in status when it is not empty,
// starting at cursor (0 for the first page), and the cursor of the next page:
// 0 when there is none. A page may hold fewer than n items (even none) and
// still have a next page: it looks at a bounded run of ordinals, so it never
// blocks Redis. FAILED items are read from their own index. A job changing
// meanwhile may be seen half old, half new.
func (s *Store) Items(ctx context.Context, id string, status ItemStatus, cursor uint64, n int) ([]Item, uint64, error) {
	if err := s.check(id); err != nil {
		return nil, 0, err
	}
	code := -1
	if status != "" {
		code = slices.Index(ItemStatuses, status)
		if code < 0 {
			return nil, 0, fmt.Errorf("job %s: items: unknown item status %q; use one of %v", id, status, ItemStatuses)
		}
	}
	if n <= 0 {
		n = DefaultPageSize
	}
	res, err := scriptPage.Run(ctx, s.Redis, s.keys(id), code, cursor, n, pageBudget).Slice()
	if err != nil {
		return nil, 0, scriptErr(err, id, "items")
	}
	if len(res) != 4 {
		return nil, 0, fmt.Errorf("job %s: items: script answered %d values, want 4", id, len(res))
	}
	items, err := decodeItems(id, res[1], res[2], res[3])
	if err != nil {
		return nil, 0, err
	}
	next, _ := res[0].(int64)
	if next < 0 {
		next = 0
	}
	return items, uint64(next), nil
}

// AllItems iterates over a job's items (in status when not empty) in ordinal
// order, page by page through [Store.Items]: it holds one page at a time. The
// iteration stops at the first error, which it yields with a zero Item.
func (s *Store) AllItems(ctx context.Context, id string, status ItemStatus) iter.Seq2[Item, error] {
	return func(yield func(Item, error) bool) {
		var cursor uint64
		for {
			items, next, err := s.Items(ctx, id, status, cursor, DefaultPageSize)
			if err != nil {
				yield(Item{}, err)
				return
			}
			for _, it := range items {
				if !yield(it, nil) {
					return
				}
			}
			if next == 0 {
				return
			}
			cursor = next
		}
	}
}

// CollectItems gathers what seq yields into a slice, stopping at the first
// error. It holds every item: for tests and listings known to be small.
func CollectItems(seq iter.Seq2[Item, error]) ([]Item, error) {
	var out []Item
	for it, err := range seq {
		if err != nil {
			return nil, err
		}
		out = append(out, it)
	}
	return out, nil
}

// Item returns one item of a job.
func (s *Store) Item(ctx context.Context, id, itemID string) (Item, error) {
	if err := s.check(id); err != nil {
		return Item{}, err
	}
	res, err := scriptItem.Run(ctx, s.Redis, s.keys(id), itemID).Slice()
	if err != nil {
		return Item{}, scriptErr(err, id, "item "+itemID)
	}
	if len(res) != 3 {
		return Item{}, fmt.Errorf("job %s: item %s: script answered %d values, want 3", id, itemID, len(res))
	}
	items, err := decodeItems(id, res[0], res[1], res[2])
	if err != nil {
		return Item{}, err
	}
	if len(items) != 1 {
		return Item{}, &NotFoundError{Job: id, Item: itemID}
	}
	return items[0], nil
}

// Records returns up to n (default [DefaultPageSize]) records of a job's DONE
// items from its records stream, oldest first, starting after the record whose
// Cursor is after ("" for the first page), and the cursor to pass for the next
// page ("" when this page is the last one). Records trimmed with
// [Store.TrimRecords] are gone from Redis (the caller stored them elsewhere).
func (s *Store) Records(ctx context.Context, id, after string, n int) ([]Record, string, error) {
	if err := s.check(id); err != nil {
		return nil, "", err
	}
	if n <= 0 {
		n = DefaultPageSize
	}
	start := "-"
	if after != "" {
		start = "(" + after
	}
	msgs, err := s.Redis.XRangeN(ctx, s.keys(id)[keyRecords], start, "+", int64(n)).Result()
	if err != nil {
		return nil, "", fmt.Errorf("job %s: records: %w", id, err)
	}
	out := make([]Record, 0, len(msgs))
	for _, m := range msgs {
		r, err := recordOf(m)
		if err != nil {
			return nil, "", fmt.Errorf("job %s: %w", id, err)
		}
		out = append(out, r)
	}
	next := ""
	if len(msgs) == n {
		next = msgs[len(msgs)-1].ID
	}
	return out, next, nil
}

func recordOf(m redis.XMessage) (Record, error) {
	str := func(k string) string { v, _ := m.Values[k].(string); return v }
	r := Record{Cursor: m.ID, Item: str("i")}
	if len(r.Item) < 12 || r.Item[len(r.Item)-11] != '_' {
		return Record{}, fmt.Errorf("record %s: item id %q is not <tile>_<YYYY-MM-DD>", m.ID, r.Item)
	}
	r.Tile, r.Date = r.Item[:len(r.Item)-11], r.Item[len(r.Item)-10:]
	r.SpentMilliPU, _ = strconv.ParseInt(str("s"), 10, 64)
	if o := str("o"); o != "" {
		if err := json.Unmarshal([]byte(o), &r.Outputs); err != nil {
			return Record{}, fmt.Errorf("record %s of item %s: outputs do not decode: %w", m.ID, r.Item, err)
		}
	}
	return r, nil
}

// AllRecords iterates over the records of a job still in Redis, page by page
// through [Store.Records]. The iteration stops at the first error, which it
// yields with a zero Record.
func (s *Store) AllRecords(ctx context.Context, id string) iter.Seq2[Record, error] {
	return func(yield func(Record, error) bool) {
		after := ""
		for {
			recs, next, err := s.Records(ctx, id, after, DefaultPageSize)
			if err != nil {
				yield(Record{}, err)
				return
			}
			for _, r := range recs {
				if !yield(r, nil) {
					return
				}
			}
			if next == "" {
				return
			}
			after = next
		}
	}
}

// RecordsBacklog is the number of records of a job still in Redis.
func (s *Store) RecordsBacklog(ctx context.Context, id string) (int64, error) {
	if err := s.check(id); err != nil {
		return 0, err
	}
	n, err := s.Redis.XLen(ctx, s.keys(id)[keyRecords]).Result()
	if err != nil {
		return 0, fmt.Errorf("job %s: records: %w", id, err)
	}
	return n, nil
}

// CommitRecords records that the job's records up to and including the one
// whose Cursor is upTo are stored as manifest part number part, with d's
// totals (d.Parts is ignored): they leave Redis and count in Job.Drained. part
// must be Job.Drained.Parts as the caller read it before storing the part; when
// another caller committed that part meanwhile nothing changes and
// CommitRecords returns false (hold the lock of [Store.LockRecords] to avoid
// that).
func (s *Store) CommitRecords(ctx context.Context, id, upTo string, part int, d Drained) (bool, error) {
	if err := s.check(id); err != nil {
		return false, err
	}
	minID, err := afterID(upTo)
	if err != nil {
		return false, fmt.Errorf("job %s: commit records: %w", id, err)
	}
	n, err := scriptCommit.Run(ctx, s.Redis, s.keys(id), part, minID, d.Outputs, d.Bytes, d.MilliPU).Int64()
	if err != nil {
		return false, scriptErr(err, id, "commit records")
	}
	return n == 1, nil
}

// TrimRecords drops a job's records up to and including the one whose Cursor is
// upTo, without counting them anywhere.
func (s *Store) TrimRecords(ctx context.Context, id, upTo string) error {
	if err := s.check(id); err != nil {
		return err
	}
	minID, err := afterID(upTo)
	if err != nil {
		return fmt.Errorf("job %s: trim records: %w", id, err)
	}
	if err := s.Redis.XTrimMinID(ctx, s.keys(id)[keyRecords], minID).Err(); err != nil {
		return fmt.Errorf("job %s: trim records: %w", id, err)
	}
	return nil
}

// afterID is the stream id just after id.
func afterID(id string) (string, error) {
	ms, seq, ok := strings.Cut(id, "-")
	q, err := strconv.ParseUint(seq, 10, 64)
	if _, merr := strconv.ParseUint(ms, 10, 64); !ok || err != nil || merr != nil {
		return "", fmt.Errorf("%q is not a record cursor (a stream entry id)", id)
	}
	return ms + "-" + strconv.FormatUint(q+1, 10), nil
}

// LockRecords takes the lock on draining a job's records for ttl, for owner (a
// unique name); false when someone else holds it. [Store.UnlockRecords]
// releases it early.
func (s *Store) LockRecords(ctx context.Context, id, owner string, ttl time.Duration) (bool, error) {
	if err := s.check(id); err != nil {
		return false, err
	}
	ok, err := s.Redis.SetNX(ctx, s.keys(id)[0]+":records:lock", owner, ttl).Result()
	if err != nil {
		return false, fmt.Errorf("job %s: lock records: %w", id, err)
	}
	return ok, nil
}

var unlockScript = redis.NewScript(`if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`)

// UnlockRecords releases the drain lock if owner holds it.
func (s *Store) UnlockRecords(ctx context.Context, id, owner string) error {
	if err := s.check(id); err != nil {
		return err
	}
	if err := unlockScript.Run(ctx, s.Redis, []string{s.keys(id)[0] + ":records:lock"}, owner).Err(); err != nil {
		return fmt.Errorf("job %s: unlock records: %w", id, err)
	}
	return nil
}

// feedBudget bounds the ordinals one Feed call looks at past its cursor.
const feedBudget = 65536

// Feed takes up to n PENDING items of a PROCESSING job and makes them SCHEDULED,
// in one script call, for the feeder to queue one task each. Items that were
// returned (stuck), restarted or handed back ([Store.Unfeed]) come first, then
// items in ordinal order from the job's feed cursor, which only moves forward:
// each call costs O(n) (at most 65,536 ordinals are looked at past the cursor),
// however large the job. Fewer than n items (none) come back when no more are
// PENDING. A job that is not PROCESSING, or paused ([Store.Pause]), gives none.
// Concurrent calls never take the same item.
func (s *Store) Feed(ctx context.Context, id string, n int) ([]Item, error) {
	if err := s.check(id); err != nil {
		return nil, err
	}
	if n <= 0 {
		return nil, nil
	}
	res, err := scriptFeed.Run(ctx, s.Redis, s.keys(id), s.nowArg(), n, feedBudget).Slice()
	if err != nil {
		return nil, scriptErr(err, id, "feed")
	}
	if len(res) != 3 {
		return nil, fmt.Errorf("job %s: feed: script answered %d values, want 3", id, len(res))
	}
	return decodeItems(id, res[0], res[1], res[2])
}
