package main

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
)

// TestScaleSmall runs the scale benchmark on a 20,000-item job against its own
// redis-server and checks the counts of its row.
func TestScaleSmall(t *testing.T) {
	o, err := parseScaleFlags([]string{"-items", "20000", "-sample", "200"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	r, err := runScaleRow(context.Background(), o, 20000, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	// 20,000 items at 70 per tile: 285 full tiles and one of 50, 286 tiles.
	if r.Items != 20000 || r.Tiles != 286 {
		t.Errorf("row %+v, want 20000 items on 286 tiles", r)
	}
	// The bound is 200 B per item; a job this small carries the fixed
	// costs (~200 kB: the scripts, the job hash) over few items, and still
	// stays under it.
	if r.BytesAnalysed <= 0 || r.BytesAnalysed > 200 || r.BytesStarted < r.BytesAnalysed {
		t.Errorf("%.1f B/item after the analysis, %.1f after start; want 0 < analysed <= 200 <= started", r.BytesAnalysed, r.BytesStarted)
	}
	// BeginItem is 7 commands (EVALSHA, HMGET status/day0, HGET record,
	// GETRANGE, 2 HINCRBY, SETRANGE), CompleteItem 12 (the same 7 + XADD,
	// HINCRBY spent, HSET, HMGET, XLEN), a Feed of 200 some 30: ~19.15 per item.
	if r.ProcessCmds < 19 || r.ProcessCmds > 20 {
		t.Errorf("%.2f commands per processed item, want 19..20", r.ProcessCmds)
	}
	var buf bytes.Buffer
	if err := WriteScaleTable(&buf, []ScaleResult{r}); err != nil || !strings.Contains(buf.String(), "| 20000 | 286 |") {
		t.Errorf("table %q, %v", buf.String(), err)
	}
	for _, bad := range [][]string{{"-items", "0"}, {"-items", "x"}, {"-per-tile", "80"}, {"extra"}} {
		if _, err := parseScaleFlags(bad, io.Discard); err == nil {
			t.Errorf("flags %v accepted", bad)
		}
	}
}
