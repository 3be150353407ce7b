package jobs

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
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
// It reads item ids only (SSCAN of the per-status sets: an item id is
// "<tile>_<date>", see [ItemID]), never the item records; an item that changes
// status during the scan may be counted in its old and its new status, or
// neither, so the counts can be off by the few items moving meanwhile.
func (s *Store) TileStatuses(ctx context.Context, id, date string) (TileStatuses, error) {
	if date != "" {
		if _, err := time.Parse(time.DateOnly, date); err != nil {
			return TileStatuses{}, fmt.Errorf("job %s: tile statuses: date %q: give a day as YYYY-MM-DD, or none for all dates", id, date)
		}
	}
	if err := s.exists(ctx, id); err != nil {
		return TileStatuses{}, err
	}
	out := TileStatuses{Tiles: map[string]StatusCounts{}}
	dates := map[string]bool{}
	for _, st := range ItemStatuses {
		it := s.Redis.SScan(ctx, s.statusKey(id, st), 0, "", 1000).Iterator()
		for it.Next(ctx) {
			item := it.Val()
			i := strings.LastIndexByte(item, '_')
			if i < 0 {
				continue // not an ItemID; nothing this package writes
			}
			tile, d := item[:i], item[i+1:]
			dates[d] = true
			if date == "" || d == date {
				c := out.Tiles[tile]
				c.inc(st)
				out.Tiles[tile] = c
			}
		}
		if err := it.Err(); err != nil {
			return TileStatuses{}, fmt.Errorf("job %s: tile statuses: %w", id, err)
		}
	}
	for d := range dates {
		out.Dates = append(out.Dates, d)
	}
	slices.Sort(out.Dates)
	return out, nil
}
