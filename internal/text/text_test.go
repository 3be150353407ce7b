package text

import "testing"

func TestTruncate(t *testing.T) {
	cases := []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"exactly10!", 10, "exactly10!"},
		{"abcdefghijk", 4, "abcd…(truncated)"},
		// "é" is 2 bytes (0xC3 0xA9) at bytes 2-3: a cut at 3 would split it,
		// so the cut moves back to 2.
		{"abé", 3, "ab…(truncated)"},
		// "€" is 3 bytes at 1-3: cuts at 2 and 3 both fall back to 1.
		{"a€b", 2, "a…(truncated)"},
		{"a€b", 4, "a€…(truncated)"},
		{"xyz", 0, "…(truncated)"},
	}
	for _, c := range cases {
		if got := Truncate(c.in, c.n); got != c.want {
			t.Errorf("Truncate(%q, %d) = %q, want %q", c.in, c.n, got, c.want)
		}
	}
}

func TestJSONScalar(t *testing.T) {
	for raw, want := range map[string]string{`"abc"`: "abc", `1000`: "1000", `1.5e3`: "1.5e3", `null`: "", `{}`: "", `[1]`: "", ``: ""} {
		if got := JSONScalar([]byte(raw)); got != want {
			t.Errorf("JSONScalar(%s) = %q, want %q", raw, got, want)
		}
	}
}
