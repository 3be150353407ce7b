package jobs

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseInterval(t *testing.T) {
	cases := []struct {
		in   string
		want Interval
		ok   bool
	}{
		{"P1M", Interval{Months: 1}, true},
		{"P7D", Interval{Days: 7}, true},
		{"P1D", Interval{Days: 1}, true},
		{"P2W", Interval{Days: 14}, true},
		{"P1Y2M3D", Interval{Years: 1, Months: 2, Days: 3}, true},
		{"P", Interval{}, false},
		{"P0D", Interval{}, false},
		{"1M", Interval{}, false},
		{"PT1H", Interval{}, false},
		{"", Interval{}, false},
	}
	for _, c := range cases {
		got, err := ParseInterval(c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("ParseInterval(%q) = %+v, %v", c.in, got, err)
		}
	}
}

func TestIntervalSplit(t *testing.T) {
	from := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	to := time.Date(2024, 3, 15, 0, 0, 0, 0, time.UTC)
	ws := Interval{Months: 1}.Split(from, to)
	want := []Window{
		{from, time.Date(2024, 2, 1, 0, 0, 0, 0, time.UTC)},
		{time.Date(2024, 2, 1, 0, 0, 0, 0, time.UTC), time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)},
		{time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC), to},
	}
	if !slices.Equal(ws, want) {
		t.Errorf("monthly split = %v", ws)
	}
	if n := len(Interval{Days: 7}.Split(from, from.AddDate(0, 0, 28))); n != 4 {
		t.Errorf("weekly split of 28 days gave %d windows", n)
	}
	if ws := (Interval{}).Split(from, to); ws != nil {
		t.Errorf("empty interval split = %v", ws)
	}
}

func TestNewIDAndItemID(t *testing.T) {
	t0 := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	a, b, c := NewID(t0), NewID(t0), NewID(t0.Add(time.Millisecond))
	if len(a) != 26 || !ValidID(a) || a == b {
		t.Errorf("ids %s %s", a, b)
	}
	if !(a[:10] == b[:10] && a < c && b < c) {
		t.Errorf("ids do not sort by time: %s %s %s", a, b, c)
	}
	if got := ItemID("33T-0450000-5090000", time.Date(2024, 5, 3, 23, 0, 0, 0, time.FixedZone("x", -2*3600))); got != "33T-0450000-5090000_2024-05-04" {
		t.Errorf("ItemID = %s", got)
	}
	for _, bad := range []string{"", "a/b", "{x}", "-a", strings.Repeat("a", 65)} {
		if ValidID(bad) {
			t.Errorf("ValidID(%q) = true", bad)
		}
	}
}

func TestSpecValidate(t *testing.T) {
	mod := func(f func(*Spec)) Spec { s := testSpec(); f(&s); return s }
	cases := []struct {
		spec  Spec
		field string // "" means valid
	}{
		{testSpec(), ""},
		{mod(func(s *Spec) { s.Mode = ModeInterval; s.Interval = "P7D" }), ""},
		{mod(func(s *Spec) { s.Mode = ModeInterval }), "Interval"},
		{mod(func(s *Spec) { s.Mode = "daily" }), "Mode"},
		{mod(func(s *Spec) { s.Collection = "" }), "Collection"},
		{mod(func(s *Spec) { s.To = s.From }), "time range"},
		{mod(func(s *Spec) { s.OutputURL = "" }), "OutputURL"},
		{mod(func(s *Spec) { s.OutputURL = "s3://k:hunter2@b/p" }), "password"},
		{mod(func(s *Spec) { s.ID = "a b" }), "ID"},
	}
	for i, c := range cases {
		err := c.spec.Validate()
		if c.field == "" {
			if err != nil {
				t.Errorf("case %d: %v", i, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.field) || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("case %d: err = %v, want mention of %s", i, err, c.field)
		}
	}
}

func TestErrors(t *testing.T) {
	var err error = &TransitionError{Job: "J", Op: "start", From: "CANCELED", To: "PROCESSING"}
	if !errors.Is(err, ErrInvalidTransition) || !errors.Is(err, ErrCanceled) || errors.Is(err, ErrNotFound) {
		t.Errorf("errors.Is on %v", err)
	}
	err = fmt.Errorf("wrapped: %w", &TransitionError{Job: "J", Op: "restart", From: "DONE", To: "PROCESSING"})
	if errors.Is(err, ErrCanceled) || !strings.Contains(err.Error(), "DONE") || !strings.Contains(err.Error(), "PROCESSING") {
		t.Errorf("transition error %v", err)
	}
}

func TestIntervalSplitMonthEnds(t *testing.T) {
	iv, err := ParseInterval("P1M")
	if err != nil {
		t.Fatal(err)
	}
	d := func(m time.Month, day int) time.Time { return time.Date(2025, m, day, 0, 0, 0, 0, time.UTC) }
	ws := iv.Split(d(1, 31), d(5, 1))
	want := []time.Time{d(1, 31), d(2, 28), d(3, 31), d(4, 30)}
	if len(ws) != len(want) {
		t.Fatalf("%d windows, want %d: %v", len(ws), len(want), ws)
	}
	for i, w := range ws {
		if !w.From.Equal(want[i]) {
			t.Fatalf("window %d starts %s, want %s (month ends clamp, February is not skipped)", i, w.From, want[i])
		}
		if i > 0 && !ws[i-1].To.Equal(w.From) {
			t.Fatalf("windows %d and %d do not touch", i-1, i)
		}
	}
	if !ws[len(ws)-1].To.Equal(d(5, 1)) {
		t.Fatalf("last window ends %s, want the range end", ws[len(ws)-1].To)
	}
}
