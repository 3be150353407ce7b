package jobs

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"
)

// StatusCounts counts a tile's items by status.
type StatusCounts struct {
	Pending    int `json:"pending,omitempty"`
	Scheduled  int `json:"scheduled,omitempty"`
	Processing int `json:"processing,omitempty"`
	Done       int `json:"done,omitempty"`
	Failed     int `json:"failed,omitempty"`
}

// Total is the number of items counted.
func (c StatusCounts) Total() int { return c.Pending + c.Scheduled + c.Processing + c.Done + c.Failed }

// Add returns the sum of c and d.
func (c StatusCounts) Add(d StatusCounts) StatusCounts {
	return StatusCounts{Pending: c.Pending + d.Pending, Scheduled: c.Scheduled + d.Scheduled,
		Processing: c.Processing + d.Processing, Done: c.Done + d.Done, Failed: c.Failed + d.Failed}
}

func (c *StatusCounts) inc(st ItemStatus) {
	switch st {
	case ItemPending:
		c.Pending++
	case ItemScheduled:
		c.Scheduled++
	case ItemProcessing:
		c.Processing++
	case ItemDone:
		c.Done++
	case ItemFailed:
		c.Failed++
	}
}

// TileStatuses is where a job's items stand, tile by tile (what the job page's
// map draws).
type TileStatuses struct {
	// Dates are every date (YYYY-MM-DD, the items' Date) that has items, sorted.
	Dates []string `json:"dates"`
	// Tiles maps a tile name to the counts of its items on the date asked, or
	// of all its items when no date was asked. Tiles without such items are
	// absent (not analysed yet, no acquisition, or their catalog search failed:
	// see [Store.Tiles]).
	Tiles map[string]StatusCounts `json:"tiles"`
}

// TileStatuses counts a job's items per tile and status, on date (YYYY-MM-DD)
// or on every date when date is empty, and lists the dates that have items.
// It reads the tiles' packed records (HSCAN, a page of tiles at a time) and
// their runs of status bytes (one GETRANGE per tile, pipelined), never an item
// record: a 10-million-item job reads ~10 MB of status bytes. An item that
// changes status during the scan is counted in its old or its new status.
func (s *Store) TileStatuses(ctx context.Context, id, date string) (TileStatuses, error) {
	if date != "" {
		if _, err := time.Parse(time.DateOnly, date); err != nil {
			return TileStatuses{}, fmt.Errorf("job %s: tile statuses: date %q: give a day as YYYY-MM-DD, or none for all dates", id, date)
		}
	}
	if err := s.exists(ctx, id); err != nil {
		return TileStatuses{}, err
	}
	k := s.keys(id)
	times, err := s.Redis.HMGet(ctx, k[0], "day0", "from", "to").Result()
	if err != nil {
		return TileStatuses{}, fmt.Errorf("job %s: tile statuses: %w", id, err)
	}
	day0 := parseTimes(times).day0
	out := TileStatuses{Tiles: map[string]StatusCounts{}}
	dates := map[int64]bool{}
	var cursor uint64
	for {
		kv, next, err := s.Redis.HScan(ctx, k[3], cursor, "", 1000).Result()
		if err != nil {
			return TileStatuses{}, fmt.Errorf("job %s: tile statuses: %w", id, err)
		}
		type tileRec struct {
			name string
			rec  []byte
		}
		var recs []tileRec
		for i := 0; i+1 < len(kv); i += 2 {
			if len(kv[i+1]) >= recHeader {
				recs = append(recs, tileRec{kv[i], []byte(kv[i+1])})
			}
		}
		cmds := make([]*redis.StringCmd, len(recs))
		if _, err := s.Redis.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, r := range recs {
				base, n := int64(binary.BigEndian.Uint32(r.rec[1:])), int64(binary.BigEndian.Uint16(r.rec[5:]))
				cmds[i] = p.GetRange(ctx, k[5], base, base+n-1)
			}
			return nil
		}); err != nil {
			return TileStatuses{}, fmt.Errorf("job %s: tile statuses: %w", id, err)
		}
		for i, r := range recs {
			st := cmds[i].Val()
			n := int(binary.BigEndian.Uint16(r.rec[5:]))
			if len(r.rec) < recHeader+2*n {
				return TileStatuses{}, fmt.Errorf("job %s: tile %s: record of %d bytes is too short for %d items", id, r.name, len(r.rec), n)
			}
			c := out.Tiles[r.name]
			counted := false
			for j := range n {
				d := day0 + int64(binary.BigEndian.Uint16(r.rec[recHeader+2*j:]))
				dates[d] = true
				if date != "" && time.Unix(d*86400, 0).UTC().Format(time.DateOnly) != date {
					continue
				}
				var b byte // bytes past the string's end are 0: PENDING
				if j < len(st) {
					b = st[j]
				}
				c.inc(itemStatusOf(b))
				counted = true
			}
			if counted {
				out.Tiles[r.name] = c
			}
		}
		if next == 0 {
			break
		}
		cursor = next
	}
	for d := range dates {
		out.Dates = append(out.Dates, time.Unix(d*86400, 0).UTC().Format(time.DateOnly))
	}
	slices.Sort(out.Dates)
	return out, nil
}
