package jobs

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestCompactLayoutByHand records a 3-tile job and checks the Redis bytes
// against values worked out by hand from the layout in lua/common.lua.
func TestCompactLayoutByHand(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	j, err := s.Create(ctx, testSpec(), testTiles(3))
	if err != nil {
		t.Fatal(err)
	}
	k := s.keys(j.ID)
	// 2024-01-01 is day 19723 since 1970-01-01; Jan 31 + Feb 29 + Mar 31 +
	// Apr 30 = 121 days later is 2024-05-01: day 19844.
	if d, _ := s.Redis.HGet(ctx, k[0], "day0").Result(); d != "19844" {
		t.Fatalf("day0 = %q, want 19844", d)
	}
	day := func(n int) time.Time { return day0.AddDate(0, 0, n) }
	mk := func(tile string, d int, mpu int64) Item {
		return Item{ID: ItemID(tile, day(d)), Tile: tile, From: day(d), To: day(d + 1), EstimatedMilliPU: mpu}
	}
	// T000: May 1 and 3 at 100 each; T001: May 2 at 7; T002: May 5, 6, 10 at
	// 10, 20, 30. T002's items are given out of order: the record sorts them.
	items := []Item{mk("T000", 0, 100), mk("T000", 2, 100), mk("T001", 1, 7),
		mk("T002", 9, 30), mk("T002", 4, 10), mk("T002", 5, 20), mk("T000", 0, 100)}
	flipped, err := s.RecordAnalysis(ctx, j.ID, []string{"T000", "T001", "T002"}, items, 2)
	if err != nil || !flipped {
		t.Fatalf("record: %v %v", flipped, err)
	}
	// Tiles get ordinals in the order their items come: T000 0-1, T001 2, T002 3-5.
	want := map[string]string{
		// flags 1 (one estimate), base 0, 2 items, days 0 and 2, 100 mPU.
		"T000": "\x01\x00\x00\x00\x00\x00\x02\x00\x00\x00\x02\x00\x00\x00\x64",
		// flags 1, base 2, 1 item, day 1, 7 mPU.
		"T001": "\x01\x00\x00\x00\x02\x00\x01\x00\x01\x00\x00\x00\x07",
		// flags 0, base 3, 3 items, days 4, 5, 9, estimates 10, 20, 30.
		"T002": "\x00\x00\x00\x00\x03\x00\x03\x00\x04\x00\x05\x00\x09\x00\x00\x00\x0a\x00\x00\x00\x14\x00\x00\x00\x1e",
	}
	for tile, w := range want {
		if got, _ := s.Redis.HGet(ctx, k[3], tile).Result(); got != w {
			t.Errorf("record of %s = %q, want %q", tile, got, w)
		}
	}
	if st, _ := s.Redis.Get(ctx, k[5]).Result(); st != "\x00\x00\x00\x00\x00\x00" {
		t.Errorf("status bytes after analysis = %q, want 6 zero bytes (PENDING)", st)
	}
	p := mustGet(t, s, j.ID).Progress
	// The repeated T000 May 1 item counts once: 100+100+7+10+20+30 = 267.
	if p.Total != 6 || p.Pending != 6 || p.EstimatedMilliPU != 267 {
		t.Errorf("progress %+v, want 6 items, 267 mPU", p)
	}

	if _, err := s.Start(ctx, j.ID); err != nil {
		t.Fatal(err)
	}
	id := func(tile string, d int) string { return ItemID(tile, day(d)) }
	steps := []func() error{
		func() error { return s.Schedule(ctx, j.ID, id("T000", 2)) },
		func() error { _, err := s.BeginItem(ctx, j.ID, id("T002", 5)); return err },
		func() error { _, err := s.FailItem(ctx, j.ID, id("T002", 5), "stuck", false); return err },
		func() error { _, err := s.BeginItem(ctx, j.ID, id("T002", 5)); return err },
		func() error { _, err := s.BeginItem(ctx, j.ID, id("T001", 1)); return err },
		func() error { _, err := s.CompleteItem(ctx, j.ID, id("T001", 1), Result{PU: 0.5}); return err },
		func() error { _, err := s.BeginItem(ctx, j.ID, id("T000", 0)); return err },
		func() error { _, err := s.FailItem(ctx, j.ID, id("T000", 0), "bad", true); return err },
	}
	for i, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	// Status byte = status + 8*returns + 32*attempts:
	// ord 0 FAILED after 1 attempt: 4+32 = 0x24; ord 1 SCHEDULED: 0x01;
	// ord 2 DONE after 1 attempt: 3+32 = 0x23; ord 3 PENDING: 0;
	// ord 4 PROCESSING, 1 return, 2 attempts: 2+8+64 = 0x4a; ord 5 PENDING: 0.
	if st, _ := s.Redis.Get(ctx, k[5]).Result(); st != "\x24\x01\x23\x00\x4a\x00" {
		t.Errorf("status bytes = %q, want \"$\\x01#\\x00J\\x00\"", st)
	}
	if errs, _ := s.Redis.HGetAll(ctx, k[6]).Result(); len(errs) != 2 || errs["0"] != "bad" || errs["4"] != "stuck" {
		t.Errorf("err hash = %v, want 0: bad, 4: stuck", errs)
	}
	if failed, _ := s.Redis.ZRange(ctx, k[7], 0, -1).Result(); len(failed) != 1 || failed[0] != "0" {
		t.Errorf("failed index = %v, want [0]", failed)
	}
	it, err := s.Item(ctx, j.ID, id("T002", 5))
	if err != nil {
		t.Fatal(err)
	}
	wantItem := Item{ID: "T002_2024-05-06", Tile: "T002", Date: "2024-05-06", From: day(5), To: day(6), EstimatedMilliPU: 20,
		Status: ItemProcessing, Attempts: 2, Returns: 1, LastError: "stuck", Ordinal: 4}
	if !it.From.Equal(wantItem.From) || !it.To.Equal(wantItem.To) {
		t.Errorf("item times %s..%s, want %s..%s", it.From, it.To, wantItem.From, wantItem.To)
	}
	it.From, it.To, wantItem.From, wantItem.To = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	if it != wantItem {
		t.Errorf("item = %+v\nwant   %+v", it, wantItem)
	}
	for _, bad := range []string{"T002_2024-05-07", "T009_2024-05-06", "T002-2024-05-06", "x"} {
		if _, err := s.Item(ctx, j.ID, bad); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), bad) {
			t.Errorf("item %q: %v, want not found naming it", bad, err)
		}
	}

	// Pages of 2 in ordinal order; the cursor is the next ordinal to look at.
	var got []string
	var cursors []uint64
	var cursor uint64
	for {
		page, next, err := s.Items(ctx, j.ID, "", cursor, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range page {
			got = append(got, fmt.Sprintf("%d:%s:%s", it.Ordinal, it.ID, it.Status))
		}
		cursors = append(cursors, next)
		if next == 0 {
			break
		}
		cursor = next
	}
	wantList := "0:T000_2024-05-01:FAILED 1:T000_2024-05-03:SCHEDULED 2:T001_2024-05-02:DONE " +
		"3:T002_2024-05-05:PENDING 4:T002_2024-05-06:PROCESSING 5:T002_2024-05-10:PENDING"
	if strings.Join(got, " ") != wantList || fmt.Sprint(cursors) != "[2 4 0]" {
		t.Errorf("pages %v cursors %v\nwant %s cursors [2 4 0]", got, cursors, wantList)
	}
	pending, next, err := s.Items(ctx, j.ID, ItemPending, 0, 10)
	if err != nil || next != 0 || len(pending) != 2 || pending[0].ID != "T002_2024-05-05" || pending[1].ID != "T002_2024-05-10" || pending[1].EstimatedMilliPU != 30 {
		t.Errorf("pending page %+v next %d %v", pending, next, err)
	}
	failed, _, err := s.Items(ctx, j.ID, ItemFailed, 0, 10)
	if err != nil || len(failed) != 1 || failed[0].ID != "T000_2024-05-01" || failed[0].LastError != "bad" {
		t.Errorf("failed page %+v %v", failed, err)
	}
	if _, _, err := s.Items(ctx, j.ID, "LOST", 0, 10); err == nil || !strings.Contains(err.Error(), "LOST") {
		t.Errorf("unknown status: %v", err)
	}
}

// TestPackTileExplicitTimes: an interval item (a week) does not fit the
// acquisition-day rule, so the record carries its times (flag 2).
func TestPackTileExplicitTimes(t *testing.T) {
	from, to := day0, day0.AddDate(0, 1, 0)
	week := Item{ID: "T_2024-05-08", Tile: "T", From: day0.AddDate(0, 0, 7), To: day0.AddDate(0, 0, 14), EstimatedMilliPU: 5}
	rec, est, err := packTile("T", []Item{week}, from, to)
	if err != nil {
		t.Fatal(err)
	}
	// flags 3, base 0, 1 item, day 7, 5 mPU, then from and to in unix ns:
	// 2024-05-08 is day 19851 = 1715126400 s = 0x17CD5A5FA8E50000 ns,
	// 2024-05-15 is day 19858 = 1715731200 s = 0x17CF806FA20E0000 ns.
	want := "\x03\x00\x00\x00\x00\x00\x01\x00\x07\x00\x00\x00\x05" +
		"\x17\xcd\x5a\x5f\xa8\xe5\x00\x00" + "\x17\xcf\x80\x6f\xa2\x0e\x00\x00"
	if string(rec) != want || est != 5 {
		t.Errorf("record %q est %d\nwant   %q est 5", rec, est, want)
	}
	it, err := itemAt("T", rec, 0, 0, "", jobTimes{day0: 19844, from: from, to: to})
	if err != nil || !it.From.Equal(week.From) || !it.To.Equal(week.To) || it.ID != week.ID || it.Date != "2024-05-08" {
		t.Errorf("decoded %+v %v", it, err)
	}
	for _, bad := range []Item{
		{ID: "T_2024-05-08", Tile: "T", From: day0.AddDate(0, 0, 8)},                       // id date is not From's
		{ID: "T_2024-04-30", Tile: "T", From: day0.AddDate(0, 0, -1)},                      // before the first day
		{ID: "T_2024-05-02", Tile: "T", From: day0.AddDate(0, 0, 1), EstimatedMilliPU: -1}, // negative estimate
	} {
		if _, _, err := packTile("T", []Item{bad}, from, to); err == nil || !strings.Contains(err.Error(), bad.ID) {
			t.Errorf("packTile(%+v): %v, want an error naming the item", bad, err)
		}
	}
}

// TestExactlyOnceConcurrent: 16 goroutines begin and complete every item of a
// job at once; each item is DONE once, has one record, its PU counts once, and
// one call sees the job end. Then 16 goroutines fail one stuck item at once:
// it returns exactly twice (MaxReturns) before it is FAILED.
func TestExactlyOnceConcurrent(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	j, items := processingJob(t, s, 5, 20)
	var finished, pendingOutcomes atomic.Int32
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range items {
				it := items[(i+w*7)%len(items)]
				if _, err := s.BeginItem(ctx, j.ID, it.ID); err != nil {
					t.Error(err)
					return
				}
				out, err := s.CompleteItem(ctx, j.ID, it.ID, Result{PU: 1})
				if err != nil {
					t.Error(err)
					return
				}
				if out.Finished != "" {
					finished.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	mustFinish(t, s, j.ID)
	got := mustGet(t, s, j.ID)
	// 100 items at 1 PU each, counted once: 100,000 milli-PU.
	if finished.Load() != 1 || got.Status != StatusDone || got.Progress.Done != 100 || got.Progress.SpentMilliPU != 100000 {
		t.Errorf("finished %d times, %s %+v", finished.Load(), got.Status, got.Progress)
	}
	if n, _ := s.RecordsBacklog(ctx, j.ID); n != 100 {
		t.Errorf("%d records, want 100 (one per item)", n)
	}

	j2, items2 := processingJob(t, s, 1, 1)
	var failedOutcomes atomic.Int32
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 3 {
				s.BeginItem(ctx, j2.ID, items2[0].ID)
				out, err := s.FailItem(ctx, j2.ID, items2[0].ID, "stuck", false)
				if err != nil {
					t.Error(err)
					return
				}
				switch {
				case out.Item == ItemPending:
					pendingOutcomes.Add(1)
				case out.Finished != "":
					failedOutcomes.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	it, _ := s.Item(ctx, j2.ID, items2[0].ID)
	if pendingOutcomes.Load() != 2 || failedOutcomes.Load() != 1 || it.Status != ItemFailed || it.Returns != 2 {
		t.Errorf("%d returns seen, %d job ends; item %s with %d returns; want 2, 1, FAILED, 2", pendingOutcomes.Load(), failedOutcomes.Load(), it.Status, it.Returns)
	}
}

// TestMemoryPerItem bounds what a 10,000-item job (100 tiles x 100 days) costs
// in Redis after the analysis, as MEMORY USAGE of its keys. By hand: per item a
// 2-byte day offset and a status byte; per tile a 13-byte record head and
// estimate, the tile's JSON (~130 bytes), its names in the analysed set and the
// ordinal index, and the hash and set entries' overhead (~60-100 bytes each):
// ~3 + 500/100 = ~8 bytes per item. The bound leaves room for allocator slack
// (the status string grows with headroom). The job's old layout took ~770.
func TestMemoryPerItem(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	spec := testSpec()
	spec.To = day0.AddDate(1, 0, 0) // 100 days fit: every item follows the day rule
	j, err := s.Create(ctx, spec, testTiles(100))
	if err != nil {
		t.Fatal(err)
	}
	analyse(t, s, j.ID, 100, 100)
	var total int64
	for _, k := range s.keys(j.ID) {
		n, err := s.Redis.MemoryUsage(ctx, k, 0).Result()
		if err != nil && err.Error() != "redis: nil" {
			t.Fatal(err)
		}
		total += n
	}
	perItem := float64(total) / 10000
	t.Logf("%d bytes for 10,000 items: %.1f B/item", total, perItem)
	if perItem > 12 {
		t.Errorf("%.1f bytes per item, want at most 12", perItem)
	}
}

// TestRecordsPagedAndTrimmed: records come in pages with a cursor, and a trim
// drops those stored elsewhere.
func TestRecordsPagedAndTrimmed(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	j, items := processingJob(t, s, 1, 5)
	for i, it := range items {
		s.BeginItem(ctx, j.ID, it.ID)
		if _, err := s.CompleteItem(ctx, j.ID, it.ID, Result{PU: float64(i), Outputs: []OutputRecord{{Key: it.ID + ".tif", Size: int64(i)}}}); err != nil {
			t.Fatal(err)
		}
	}
	page, next, err := s.Records(ctx, j.ID, "", 2)
	if err != nil || len(page) != 2 || next != page[1].Cursor || page[0].Item != "T000_2024-05-01" || page[1].SpentMilliPU != 1000 {
		t.Fatalf("first page %+v next %q %v", page, next, err)
	}
	if err := s.TrimRecords(ctx, j.ID, next); err != nil {
		t.Fatal(err)
	}
	rest, last, err := s.Records(ctx, j.ID, "", 10)
	if err != nil || last != "" || len(rest) != 3 || rest[0].Item != "T000_2024-05-03" || rest[2].Outputs[0].Key != "T000_2024-05-05.tif" {
		t.Fatalf("after trim %+v %q %v", rest, last, err)
	}
	if err := s.TrimRecords(ctx, j.ID, "nope"); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("bad trim cursor: %v", err)
	}
}

// TestFeedByHand: Feed hands out PENDING items in ordinal order from its
// cursor, returned items first, each once.
func TestFeedByHand(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	j, err := s.Create(ctx, testSpec(), testTiles(2))
	if err != nil {
		t.Fatal(err)
	}
	if fed, err := s.Feed(ctx, j.ID, 1); len(fed) != 0 || err != nil {
		t.Errorf("feed of a CREATED job: %d items, %v; want none", len(fed), err)
	}
	analyse(t, s, j.ID, 2, 3) // T000 ordinals 0-2, T001 3-5
	if _, err := s.Start(ctx, j.ID); err != nil {
		t.Fatal(err)
	}
	feed := func(n int) string {
		t.Helper()
		items, err := s.Feed(ctx, j.ID, n)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, it := range items {
			if it.Status != ItemScheduled {
				t.Errorf("fed item %s is %s, want SCHEDULED", it.ID, it.Status)
			}
			out = append(out, fmt.Sprint(it.Ordinal))
		}
		return strings.Join(out, ",")
	}
	if got := feed(2); got != "0,1" {
		t.Errorf("first feed %s, want 0,1", got)
	}
	first := ItemID("T000", day0)
	s.BeginItem(ctx, j.ID, first)
	if out, _ := s.FailItem(ctx, j.ID, first, "stuck", false); out.Item != ItemPending {
		t.Fatalf("stuck item is %s, want PENDING", out.Item)
	}
	if got := feed(3); got != "0,2,3" {
		t.Errorf("second feed %s, want 0,2,3 (the returned item first)", got)
	}
	if got := feed(5); got != "4,5" {
		t.Errorf("third feed %s, want 4,5", got)
	}
	if got := feed(1); got != "" {
		t.Errorf("feed of a job with nothing PENDING gave %s", got)
	}
	// ord 0: SCHEDULED (1) + 1 return (8) + 1 attempt (32) = 0x29; the rest SCHEDULED.
	if st, _ := s.Redis.Get(ctx, s.keys(j.ID)[5]).Result(); st != "\x29\x01\x01\x01\x01\x01" {
		t.Errorf("status bytes %q, want \")\\x01\\x01\\x01\\x01\\x01\"", st)
	}
	if p := mustGet(t, s, j.ID).Progress; p.Pending != 0 || p.Scheduled != 6 {
		t.Errorf("progress %+v, want 6 SCHEDULED", p)
	}
	// Ordinal 2 begun and released twice: SCHEDULED (1) + 2 attempts (64) =
	// 0x41, the letter 'A': the status scan still finds it among the SCHEDULED.
	third := ItemID("T000", day0.AddDate(0, 0, 2))
	for range 2 {
		s.BeginItem(ctx, j.ID, third)
		s.ReleaseItem(ctx, j.ID, third)
	}
	if b, _ := s.Redis.GetRange(ctx, s.keys(j.ID)[5], 2, 2).Result(); b != "A" {
		t.Errorf("status byte of ordinal 2 %q, want \"A\"", b)
	}
	var sched []string
	for _, it := range allItems(t, s, j.ID, ItemScheduled) {
		sched = append(sched, fmt.Sprint(it.Ordinal))
	}
	if got := strings.Join(sched, ","); got != "0,1,2,3,4,5" {
		t.Errorf("SCHEDULED items %s, want 0,1,2,3,4,5", got)
	}
	// Fail ordinal 4 for good, finish the rest: PARTIAL; a restart feeds it first.
	for _, it := range allItems(t, s, j.ID, "") {
		s.BeginItem(ctx, j.ID, it.ID)
		if it.Ordinal == 4 {
			s.FailItem(ctx, j.ID, it.ID, "bad", true)
		} else {
			s.CompleteItem(ctx, j.ID, it.ID, Result{})
		}
	}
	mustFinish(t, s, j.ID)
	if _, err := s.Restart(ctx, j.ID); err != nil {
		t.Fatal(err)
	}
	if got := feed(3); got != "4" {
		t.Errorf("feed after restart %s, want 4", got)
	}
}

// TestFeedConcurrent: 8 goroutines feed a 300-item job at once; every item is
// handed out exactly once.
func TestFeedConcurrent(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	j, err := s.Create(ctx, testSpec(), testTiles(10))
	if err != nil {
		t.Fatal(err)
	}
	analyse(t, s, j.ID, 10, 30)
	if _, err := s.Start(ctx, j.ID); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				items, err := s.Feed(ctx, j.ID, 7)
				if err != nil {
					t.Error(err)
					return
				}
				if len(items) == 0 {
					return
				}
				mu.Lock()
				for _, it := range items {
					seen[it.ID]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	twice := 0
	for _, n := range seen {
		if n != 1 {
			twice++
		}
	}
	if len(seen) != 300 || twice != 0 {
		t.Errorf("%d items fed, %d more than once; want 300, 0", len(seen), twice)
	}
}

// TestItemsPageBudget: a status listing looks at 65,536 ordinals per call at
// most, so a job of 70,000 items with one PROCESSING item at the end answers an
// empty first page with the cursor 65,536, then the item and cursor 0.
func TestItemsPageBudget(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	spec := testSpec()
	spec.To = day0.AddDate(1, 0, 0)
	j, err := s.Create(ctx, spec, testTiles(700))
	if err != nil {
		t.Fatal(err)
	}
	analyse(t, s, j.ID, 700, 100) // T699's last item is ordinal 69,999
	if _, err := s.Start(ctx, j.ID); err != nil {
		t.Fatal(err)
	}
	last := ItemID("T699", day0.AddDate(0, 0, 99))
	if ok, err := s.BeginItem(ctx, j.ID, last); !ok || err != nil {
		t.Fatalf("begin: %v %v", ok, err)
	}
	page, next, err := s.Items(ctx, j.ID, ItemProcessing, 0, 10)
	if err != nil || len(page) != 0 || next != 65536 {
		t.Fatalf("first page %d items, next %d, %v; want 0, 65536", len(page), next, err)
	}
	page, next, err = s.Items(ctx, j.ID, ItemProcessing, next, 10)
	if err != nil || len(page) != 1 || page[0].ID != last || page[0].Ordinal != 69999 || next != 0 {
		t.Fatalf("second page %+v, next %d, %v; want %s at 69999, 0", page, next, err, last)
	}
}
