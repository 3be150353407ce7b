package sentinel

import (
	"errors"
	"fmt"
	"time"
)

// Policy is one rate-limiting policy as the service describes it: in the
// account's published contract (GET /aux/ratelimit/contract, every field) and
// in the legacy X-RateLimit-ViolatedPolicy header of a 429 (capacity and period;
// the type only when the retry headers tell it).
type Policy struct {
	// Type is [PolicyTypeRequests] or [PolicyTypeProcessingUnits], "" when
	// unknown (a violated policy whose retry headers do not tell).
	Type string
	// Capacity is the bucket size: requests or PU per SamplingPeriod.
	Capacity float64
	// SamplingPeriod is the ISO-8601 period: PT1S, PT1M, PT1H, PT24H (PT1D) or
	// PT744H (P31D, the month).
	SamplingPeriod string
	// NanosBetweenRefills is the refill interval of one unit (period /
	// capacity), as the contract states it; 0 from a header.
	NanosBetweenRefills int64
}

// Kind is the policy's type in the short words of messages and metrics:
// "requests", "pu", or "" when unknown.
func (p Policy) Kind() string {
	switch p.Type {
	case PolicyTypeRequests:
		return "requests"
	case PolicyTypeProcessingUnits:
		return "pu"
	}
	return ""
}

// Period returns SamplingPeriod as a duration (PT744H = P31D = 31 days), 0 if
// unknown.
func (p Policy) Period() time.Duration {
	switch p.SamplingPeriod {
	case "PT1S":
		return time.Second
	case "PT1M":
		return time.Minute
	case "PT1H":
		return time.Hour
	case "PT1D", "P1D", "PT24H":
		return 24 * time.Hour
	case "P31D", "PT744H":
		return 31 * 24 * time.Hour
	}
	return 0
}

// RateLimitError is an HTTP 429 answer from the Process or Catalog API. Every
// header is optional: newer servers send only Retry-After, or nothing; missing
// values are zero and the matching Has* flag is false.
type RateLimitError struct {
	// RetryAfter is Retry-After (sent in milliseconds): time until the next request
	// is available.
	RetryAfter time.Duration
	// HasRetryAfter is true when the Retry-After header was present and parsed.
	HasRetryAfter bool
	// PURetryAfter is X-ProcessingUnits-Retry-After (milliseconds): time until enough
	// PU are available for this request.
	PURetryAfter time.Duration
	// HasPURetryAfter is true when X-ProcessingUnits-Retry-After was present.
	HasPURetryAfter bool
	// RequestsRemaining is X-RateLimit-Remaining, -1 when absent.
	RequestsRemaining float64
	// PURemaining is X-ProcessingUnits-Remaining, -1 when absent.
	PURemaining float64
	// Policy is X-RateLimit-ViolatedPolicy, nil when absent or malformed.
	Policy *Policy
	// Body is the server's message, truncated.
	Body string
}

// Wait is how long the caller should hold off: the larger of RetryAfter and
// PURetryAfter; zero when the server sent neither (the caller picks a default).
func (e *RateLimitError) Wait() time.Duration {
	return max(e.RetryAfter, e.PURetryAfter)
}

func (e *RateLimitError) Error() string {
	msg := "rate limited (HTTP 429)"
	if e.Policy != nil {
		kind := e.Policy.Kind()
		if kind == "" {
			kind = "units"
		}
		msg += fmt.Sprintf(": violated policy %g %s per %s", e.Policy.Capacity, kind, e.Policy.SamplingPeriod)
	}
	if w := e.Wait(); w > 0 {
		msg += fmt.Sprintf("; retry after %s", w)
	} else {
		msg += "; server sent no retry time"
	}
	return msg
}

// ForbiddenError is an HTTP 403 answer. Sentinel Hub answers 403 when the account
// may not have what was asked (a collection it has no access to, commercial data,
// an expired account: COMMON_INSUFFICIENT_PERMISSIONS) and also when the month's
// processing units are spent. The status alone does not tell the two apart, and
// neither does a message meant for people: the caller decides with evidence (the
// account's monthly counts, its own ledger), as package tasks does.
type ForbiddenError struct {
	// Code is the server's error code, e.g. "COMMON_INSUFFICIENT_PERMISSIONS",
	// "" when the body had none.
	Code string
	// Body is the server's message, truncated.
	Body string
}

func (e *ForbiddenError) Error() string {
	if e.Code != "" {
		return fmt.Sprintf("forbidden (HTTP 403, %s): %s", e.Code, e.Body)
	}
	return "forbidden (HTTP 403): " + e.Body
}

// AuthError is an HTTP 401 answer: the token is missing, invalid or expired.
type AuthError struct {
	// Status is the HTTP status (401).
	Status int
	// Body is the server's message, truncated.
	Body string
}

func (e *AuthError) Error() string {
	return fmt.Sprintf("unauthorized (HTTP %d): token missing, invalid or expired: %s", e.Status, e.Body)
}

// APIError is any other non-2xx answer (400 and other 4xx, 5xx) with the server's
// message.
type APIError struct {
	// Status is the HTTP status code.
	Status int
	// Message is the server's error message (error.message in the JSON body, or the
	// raw body, truncated).
	Message string
	// Code is the server's error code (error.code in the JSON body, e.g.
	// "RENDERER_EXCEPTION"), "" when the body had none.
	Code string
}

func (e *APIError) Error() string {
	if e.Code != "" {
		return fmt.Sprintf("HTTP %d (%s): %s", e.Status, e.Code, e.Message)
	}
	return fmt.Sprintf("HTTP %d: %s", e.Status, e.Message)
}

// Temporary reports whether the request may succeed when retried (5xx).
func (e *APIError) Temporary() bool { return e.Status >= 500 }

// TokenError is a failed token request: it carries the token endpoint's real
// HTTP status, Retry-After and body, so a 429 reads as "token endpoint rate
// limited" rather than a disguised "missing token".
type TokenError struct {
	// Status is the token endpoint's HTTP status; 0 for a network error.
	Status int
	// RetryAfter is the parsed Retry-After header, zero when absent.
	RetryAfter time.Duration
	// Body is the endpoint's answer, truncated; it never contains the secret.
	Body string
	// Err is the underlying error, if any.
	Err error
}

func (e *TokenError) Unwrap() error { return e.Err }

func (e *TokenError) Error() string {
	switch {
	case e.Status == 429:
		s := "token endpoint answered 429 (too many token requests)"
		if e.RetryAfter > 0 {
			s += fmt.Sprintf("; retry after %s", e.RetryAfter)
		}
		return s + " — share one token across workers"
	case e.Status == 0 && e.Err != nil:
		return "token request failed: " + e.Err.Error()
	case e.Status == 400 || e.Status == 401:
		return fmt.Sprintf("token endpoint answered %d (client id or secret rejected): %s", e.Status, e.Body)
	default:
		return fmt.Sprintf("token endpoint answered %d: %s", e.Status, e.Body)
	}
}

// FieldError is an invalid value in a configuration or a request, found before
// anything is sent. Field is the path of the bad field as it appears in the JSON
// body or the Config ("output.width", "input.data[0].type", "limit", "BaseURL").
type FieldError struct {
	// Field is the path of the bad field.
	Field string
	// Message says what is wrong and what to do.
	Message string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

// ErrEmptyTar is returned by [SplitTar] when a tar response holds no file at all.
var ErrEmptyTar = errors.New("tar response has no parts; the server sent an empty archive")
