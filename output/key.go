package output

import (
	"errors"
	"fmt"
	"strings"
)

// ErrInvalidKey is wrapped by every error about a key that could escape the store's
// root or is otherwise unusable.
var ErrInvalidKey = errors.New("invalid output key")

// ValidateKey reports whether key is a safe relative object key: not empty, "/"
// separated, not absolute, no backslashes or control characters, no empty, "." or
// ".." segments, and no segment ending in [TempSuffix] (the local store's temp
// files). Such a key can never address anything outside the store's root.
func ValidateKey(key string) error {
	bad := func(why string) error {
		return fmt.Errorf("%w %q: %s; keys are relative paths like \"req/tile/2024-01-31/default.tif\"", ErrInvalidKey, key, why)
	}
	switch {
	case key == "":
		return bad("empty")
	case strings.HasPrefix(key, "/"):
		return bad("absolute")
	case strings.Contains(key, `\`):
		return bad("contains a backslash")
	}
	for _, r := range key {
		if r < 0x20 || r == 0x7f {
			return bad("contains a control character")
		}
	}
	for _, seg := range strings.Split(key, "/") {
		switch seg {
		case "":
			return bad("has an empty path segment")
		case ".", "..":
			return bad(fmt.Sprintf("has a %q path segment", seg))
		}
		if strings.HasSuffix(seg, TempSuffix) {
			return bad(fmt.Sprintf("a segment ends in %q, which the local store reserves for its temp files", TempSuffix))
		}
	}
	return nil
}

// CheckUnique proves from its placeholders that t gives every item output of a
// job its own key, so no result overwrites or hides another: the template must
// hold <tileName> and <date> (the date or interval start that tells a tile's
// items apart), and <outputId> when the job writes more than one output
// (<format> does not tell outputs apart, two may share one); and no two
// placeholders may touch, so that one value cannot run into the next. The
// caller checks the rendered keys of the job's real tiles and outputs too
// (values are free text).
func (t Template) CheckUnique(outputs int) error {
	if t.parts == nil {
		var err error
		if t, err = ParseTemplate(DefaultPathTemplate); err != nil {
			return err
		}
	}
	has := map[string]bool{}
	for i, p := range t.parts {
		if p.placeholder == "" {
			continue
		}
		has[p.placeholder] = true
		if i > 0 && t.parts[i-1].placeholder != "" {
			return fmt.Errorf("output path template %q: <%s> directly follows <%s>; put a separator such as / or _ between placeholders so their values cannot run into each other", t.raw, p.placeholder, t.parts[i-1].placeholder)
		}
	}
	var missing []string
	for _, need := range []string{PlaceholderTileName, PlaceholderDate} {
		if !has[need] {
			missing = append(missing, "<"+need+">")
		}
	}
	if outputs > 1 && !has[PlaceholderOutputID] {
		missing = append(missing, "<outputId>")
	}
	if len(missing) > 0 {
		why := "each tile, date and output needs its own file"
		if outputs > 1 && !has[PlaceholderOutputID] {
			why = fmt.Sprintf("each tile, date and output needs its own file (this job writes %d outputs)", outputs)
		}
		return fmt.Errorf("output path template %q has no %s: several items would map to one key and overwrite or skip each other; %s (default %s)",
			t.raw, strings.Join(missing, " or "), why, DefaultPathTemplate)
	}
	return nil
}
