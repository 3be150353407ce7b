// Package text holds the few string helpers several packages need, so that
// they exist once: cutting a message to a size without splitting a UTF-8
// character, and a JSON scalar as text.
package text

import (
	"encoding/json"
	"unicode/utf8"
)

// TruncatedMark ends a string Truncate cut.
const TruncatedMark = "…(truncated)"

// Truncate cuts s to at most n bytes, on a character boundary (a multi-byte
// UTF-8 character is never split), and appends TruncatedMark when it cut.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := max(n, 0)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + TruncatedMark
}

// JSONScalar renders a JSON string or number as text (a string unquoted, a
// number as written), "" for anything else.
func JSONScalar(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return n.String()
	}
	return ""
}
