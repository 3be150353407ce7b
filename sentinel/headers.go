package sentinel

import (
	"cmp"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"shfleet/internal/text"
)

// Response headers documented by Sentinel Hub's rate limiting.
const (
	HeaderRetryAfter        = "Retry-After"
	HeaderPURetryAfter      = "X-ProcessingUnits-Retry-After"
	HeaderRequestsRemaining = "X-RateLimit-Remaining"
	HeaderPURemaining       = "X-ProcessingUnits-Remaining"
	HeaderViolatedPolicy    = "X-RateLimit-ViolatedPolicy"
	HeaderPUSpent           = "X-ProcessingUnits-Spent"
)

const (
	// MaxErrorBody is the most [ErrorFromResponse] reads of an error body (64 KiB).
	MaxErrorBody = 64 << 10
	// MaxErrorMessage is the longest server message kept in an error (1 KiB).
	MaxErrorMessage = 1 << 10
	// MaxRetryAfter caps a parsed retry time (32 days, longer than the longest
	// policy period, P31D) so absurd header values cannot overflow a Duration.
	MaxRetryAfter = 32 * 24 * time.Hour
)

// ParseRetryAfterMillis parses a Sentinel Hub retry header: a non-negative number
// of MILLISECONDS, possibly fractional ("593", "593.0"). Values above
// [MaxRetryAfter] are capped. ok is false for an empty, negative, non-numeric, NaN
// or infinite value.
func ParseRetryAfterMillis(v string) (d time.Duration, ok bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	ms, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(ms) || math.IsInf(ms, 0) || ms < 0 {
		return 0, false
	}
	if ms >= float64(MaxRetryAfter/time.Millisecond) {
		return MaxRetryAfter, true
	}
	return time.Duration(math.Ceil(ms * float64(time.Millisecond))), true
}

// parseRemaining parses a "remaining" header: -1 when absent or malformed, and a
// negative count (a bucket overdrawn) as 0.
func parseRemaining(v string) float64 {
	v = strings.TrimSpace(v)
	if v == "" {
		return -1
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return -1
	}
	return max(f, 0)
}

// ParsePolicy parses X-RateLimit-ViolatedPolicy, e.g.
// {"samplingPeriod": "PT1M", "capacity": 1000}. The capacity may be a JSON number
// or a quoted number. It returns nil when the value is absent or malformed. Type is
// left empty (see [ParseRateLimitHeaders]).
func ParsePolicy(v string) *Policy {
	v = strings.TrimSpace(v)
	if v == "" {
		return nil
	}
	var raw struct {
		SamplingPeriod string          `json:"samplingPeriod"`
		Capacity       json.RawMessage `json:"capacity"`
	}
	if err := json.Unmarshal([]byte(v), &raw); err != nil {
		return nil
	}
	c := strings.Trim(strings.TrimSpace(string(raw.Capacity)), `"`)
	capacity, err := strconv.ParseFloat(c, 64)
	if err != nil || math.IsNaN(capacity) || math.IsInf(capacity, 0) || capacity < 0 {
		return nil
	}
	period := strings.TrimSpace(raw.SamplingPeriod)
	if period == "" {
		return nil
	}
	return &Policy{Capacity: capacity, SamplingPeriod: period}
}

// ParseRateLimitHeaders builds a [RateLimitError] from the headers of a 429 answer.
// Every header is optional and a malformed one counts as absent: it never fails.
// Policy.Type is [PolicyTypeProcessingUnits] when X-ProcessingUnits-Retry-After is
// positive and Retry-After is zero or absent, [PolicyTypeRequests] when
// Retry-After is positive and the PU retry is zero or absent, and "" otherwise.
func ParseRateLimitHeaders(h http.Header) *RateLimitError {
	e := &RateLimitError{}
	e.RetryAfter, e.HasRetryAfter = ParseRetryAfterMillis(h.Get(HeaderRetryAfter))
	e.PURetryAfter, e.HasPURetryAfter = ParseRetryAfterMillis(h.Get(HeaderPURetryAfter))
	e.RequestsRemaining = parseRemaining(h.Get(HeaderRequestsRemaining))
	e.PURemaining = parseRemaining(h.Get(HeaderPURemaining))
	if p := ParsePolicy(h.Get(HeaderViolatedPolicy)); p != nil {
		switch {
		case e.PURetryAfter > 0 && e.RetryAfter == 0:
			p.Type = PolicyTypeProcessingUnits
		case e.RetryAfter > 0 && e.PURetryAfter == 0:
			p.Type = PolicyTypeRequests
		}
		e.Policy = p
	}
	return e
}

// ParsePUSpent reads X-ProcessingUnits-Spent: the PU a successful request was
// charged. ok is false when the header is absent, malformed or negative.
func ParsePUSpent(h http.Header) (pu float64, ok bool) {
	v := strings.TrimSpace(h.Get(HeaderPUSpent))
	if v == "" {
		return 0, false
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
		return 0, false
	}
	return f, true
}

// ErrorFromResponse turns a non-2xx answer into a typed error: 429 is a
// [*RateLimitError] (from the rate-limit headers), 403 a [*ForbiddenError], 401
// an [*AuthError], anything else an [*APIError] with the server's message. It reads
// at most [MaxErrorBody] bytes of the body and closes it. It returns nil for a 2xx
// answer, leaving the body untouched.
func ErrorFromResponse(resp *http.Response) error {
	if resp == nil {
		return &APIError{Message: "no response"}
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	var body []byte
	if resp.Body != nil {
		body, _ = io.ReadAll(io.LimitReader(resp.Body, MaxErrorBody))
		_ = resp.Body.Close()
	}
	msg, code := errorMessage(body, resp.StatusCode)
	switch resp.StatusCode {
	case http.StatusTooManyRequests:
		e := ParseRateLimitHeaders(resp.Header)
		e.Body = msg
		return e
	case http.StatusForbidden:
		return &ForbiddenError{Code: code, Body: msg}
	case http.StatusUnauthorized:
		return &AuthError{Status: resp.StatusCode, Body: msg}
	}
	return &APIError{Status: resp.StatusCode, Message: msg, Code: code}
}

// errorMessage extracts the message (and code) of a Sentinel Hub error body:
// {"error":{"status":400,"reason":"Bad Request","message":"...","code":"..."}},
// or the same fields at the top level, or an OAuth error; it falls back to the raw
// body, and to the status text for an empty body.
func errorMessage(body []byte, status int) (msg, code string) {
	var doc struct {
		Error            json.RawMessage `json:"error"`
		Message          string          `json:"message"`
		Description      string          `json:"description"`
		ErrorDescription string          `json:"error_description"`
		Code             json.RawMessage `json:"code"`
		Reason           string          `json:"reason"`
	}
	trimmed := strings.TrimSpace(string(body))
	if err := json.Unmarshal(body, &doc); err == nil {
		var inner struct {
			Message string          `json:"message"`
			Reason  string          `json:"reason"`
			Code    json.RawMessage `json:"code"`
		}
		var errString string
		switch {
		case len(doc.Error) > 0 && json.Unmarshal(doc.Error, &inner) == nil && (inner.Message != "" || inner.Reason != ""):
			msg, code = cmp.Or(inner.Message, inner.Reason), text.JSONScalar(inner.Code)
		case doc.Message != "" || doc.Description != "" || doc.ErrorDescription != "":
			msg, code = cmp.Or(doc.Message, doc.Description, doc.ErrorDescription), text.JSONScalar(doc.Code)
		case len(doc.Error) > 0 && json.Unmarshal(doc.Error, &errString) == nil && errString != "":
			msg = errString
		case doc.Reason != "":
			msg = doc.Reason
		}
	}
	if msg == "" {
		msg = trimmed
	}
	if msg == "" {
		msg = http.StatusText(status)
	}
	return truncate(msg, MaxErrorMessage), truncate(code, 100)
}

// truncate cuts s to at most n bytes without splitting a character.
func truncate(s string, n int) string { return text.Truncate(s, n) }
