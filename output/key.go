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
// ".." segments, and not ending in ".attrs" (reserved by the file:// store for
// metadata). Such a key can never address anything outside the store's root.
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
	case strings.HasSuffix(key, ".attrs"):
		return bad(`ends in ".attrs", which the file store reserves for metadata`)
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
	}
	return nil
}
