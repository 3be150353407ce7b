package sentinel

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestParseRetryAfterMillis(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"", 0, false},
		{"   ", 0, false},
		{"593", 593 * time.Millisecond, true},
		{"593.0", 593 * time.Millisecond, true},
		{" 42 ", 42 * time.Millisecond, true},
		{"0", 0, true},
		{"0.5", 500 * time.Microsecond, true},
		{"1e3", time.Second, true},
		{"-5", 0, false},
		{"-0.1", 0, false},
		{"abc", 0, false},
		{"Wed, 21 Oct 2015 07:28:00 GMT", 0, false},
		{"NaN", 0, false},
		{"Inf", 0, false},
		{"1e300", MaxRetryAfter, true},
		{"99999999999999999999", MaxRetryAfter, true},
	}
	for _, tt := range tests {
		got, ok := ParseRetryAfterMillis(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("ParseRetryAfterMillis(%q) = %s %v, want %s %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestParseRateLimitHeaders(t *testing.T) {
	t.Parallel()
	policy := `{"samplingPeriod": "PT1M", "capacity": 1000}`
	tests := []struct {
		name       string
		h          map[string]string
		retry      time.Duration
		hasRetry   bool
		puRetry    time.Duration
		hasPURetry bool
		reqRem     float64
		puRem      float64
		policy     *Policy
	}{
		{name: "missing", reqRem: -1, puRem: -1},
		{name: "seed example (PU policy)", h: map[string]string{"Retry-After": "0", "X-RateLimit-Remaining": "287.0", "X-ProcessingUnits-Remaining": "14", "X-ProcessingUnits-Retry-After": "593", "X-RateLimit-ViolatedPolicy": policy},
			hasRetry: true, puRetry: 593 * time.Millisecond, hasPURetry: true, reqRem: 287, puRem: 14, policy: &Policy{Type: PolicyTypeProcessingUnits, Capacity: 1000, SamplingPeriod: "PT1M"}},
		{name: "PU policy without Retry-After", h: map[string]string{"X-ProcessingUnits-Retry-After": "10", "X-RateLimit-ViolatedPolicy": policy},
			puRetry: 10 * time.Millisecond, hasPURetry: true, reqRem: -1, puRem: -1, policy: &Policy{Type: PolicyTypeProcessingUnits, Capacity: 1000, SamplingPeriod: "PT1M"}},
		{name: "request policy", h: map[string]string{"Retry-After": "6000.0", "X-ProcessingUnits-Retry-After": "0", "X-RateLimit-ViolatedPolicy": `{"samplingPeriod":"PT1S","capacity":"20"}`},
			retry: 6 * time.Second, hasRetry: true, hasPURetry: true, reqRem: -1, puRem: -1, policy: &Policy{Type: PolicyTypeRequests, Capacity: 20, SamplingPeriod: "PT1S"}},
		{name: "request policy, PU retry absent", h: map[string]string{"Retry-After": "5", "X-RateLimit-ViolatedPolicy": policy},
			retry: 5 * time.Millisecond, hasRetry: true, reqRem: -1, puRem: -1, policy: &Policy{Type: PolicyTypeRequests, Capacity: 1000, SamplingPeriod: "PT1M"}},
		{name: "both positive: kind unknown", h: map[string]string{"Retry-After": "5", "X-ProcessingUnits-Retry-After": "7", "X-RateLimit-ViolatedPolicy": policy},
			retry: 5 * time.Millisecond, hasRetry: true, puRetry: 7 * time.Millisecond, hasPURetry: true, reqRem: -1, puRem: -1, policy: &Policy{Capacity: 1000, SamplingPeriod: "PT1M"}},
		{name: "malformed everything", h: map[string]string{"Retry-After": "soon", "X-ProcessingUnits-Retry-After": "-3", "X-RateLimit-Remaining": "many", "X-ProcessingUnits-Remaining": "NaN", "X-RateLimit-ViolatedPolicy": "{not json"},
			reqRem: -1, puRem: -1},
		{name: "policy without period", h: map[string]string{"X-RateLimit-ViolatedPolicy": `{"capacity":5}`}, reqRem: -1, puRem: -1},
		{name: "policy with negative capacity", h: map[string]string{"X-RateLimit-ViolatedPolicy": `{"capacity":-5,"samplingPeriod":"PT1M"}`}, reqRem: -1, puRem: -1},
		{name: "policy capacity not a number", h: map[string]string{"X-RateLimit-ViolatedPolicy": `{"capacity":{},"samplingPeriod":"PT1M"}`}, reqRem: -1, puRem: -1},
		{name: "negative remaining clamps to 0", h: map[string]string{"X-RateLimit-Remaining": "-2", "X-ProcessingUnits-Remaining": "-0.5"}, reqRem: 0, puRem: 0},
		{name: "huge values", h: map[string]string{"Retry-After": "1e308", "X-ProcessingUnits-Retry-After": "1e20", "X-RateLimit-Remaining": "1e300"},
			retry: MaxRetryAfter, hasRetry: true, puRetry: MaxRetryAfter, hasPURetry: true, reqRem: 1e300, puRem: -1},
		{name: "fractional ms", h: map[string]string{"Retry-After": "0.25", "X-ProcessingUnits-Retry-After": "1.5"},
			retry: 250 * time.Microsecond, hasRetry: true, puRetry: 1500 * time.Microsecond, hasPURetry: true, reqRem: -1, puRem: -1},
	}
	for _, tt := range tests {
		h := http.Header{}
		for k, v := range tt.h {
			h.Set(k, v)
		}
		e := ParseRateLimitHeaders(h)
		if e.RetryAfter != tt.retry || e.HasRetryAfter != tt.hasRetry || e.PURetryAfter != tt.puRetry || e.HasPURetryAfter != tt.hasPURetry || e.RequestsRemaining != tt.reqRem || e.PURemaining != tt.puRem {
			t.Errorf("%s: got %+v", tt.name, e)
		}
		switch {
		case tt.policy == nil && e.Policy != nil:
			t.Errorf("%s: policy %+v, want nil", tt.name, e.Policy)
		case tt.policy != nil && (e.Policy == nil || *e.Policy != *tt.policy):
			t.Errorf("%s: policy %+v, want %+v", tt.name, e.Policy, tt.policy)
		}
		if e.Error() == "" {
			t.Errorf("%s: empty message", tt.name)
		}
	}
}

func FuzzParseRateLimitHeaders(f *testing.F) {
	f.Add("0", "593", "287.0", "14", `{"samplingPeriod": "PT1M", "capacity": 1000}`)
	f.Add("", "", "", "", "")
	f.Add("593.0", "-1", "x", "NaN", `{"samplingPeriod":"P31D","capacity":"1e400"}`)
	f.Add("1e999", "0x10", "-5", "+Inf", `[]`)
	f.Fuzz(func(t *testing.T, ra, pura, rem, purem, pol string) {
		h := http.Header{}
		h.Set(HeaderRetryAfter, ra)
		h.Set(HeaderPURetryAfter, pura)
		h.Set(HeaderRequestsRemaining, rem)
		h.Set(HeaderPURemaining, purem)
		h.Set(HeaderViolatedPolicy, pol)
		e := ParseRateLimitHeaders(h)
		if e.RetryAfter < 0 || e.RetryAfter > MaxRetryAfter || e.PURetryAfter < 0 || e.PURetryAfter > MaxRetryAfter {
			t.Fatalf("retry out of range: %+v", e)
		}
		if !e.HasRetryAfter && e.RetryAfter != 0 || !e.HasPURetryAfter && e.PURetryAfter != 0 {
			t.Fatalf("value without Has flag: %+v", e)
		}
		if e.RequestsRemaining != -1 && e.RequestsRemaining < 0 || e.PURemaining != -1 && e.PURemaining < 0 {
			t.Fatalf("remaining out of range: %+v", e)
		}
		if p := e.Policy; p != nil {
			if p.Capacity < 0 || p.SamplingPeriod == "" || (p.Type != "" && p.Type != PolicyTypeProcessingUnits && p.Type != PolicyTypeRequests) {
				t.Fatalf("bad policy %+v", p)
			}
		}
		if e.Wait() < 0 || e.Error() == "" {
			t.Fatalf("bad wait or message: %+v", e)
		}
	})
}

// countingBody records how much was read and whether it was closed.
type countingBody struct {
	r      io.Reader
	read   int
	closed bool
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.read += n
	return n, err
}

func (b *countingBody) Close() error { b.closed = true; return nil }

func TestErrorFromResponseReadsBoundedBody(t *testing.T) {
	t.Parallel()
	body := &countingBody{r: strings.NewReader(strings.Repeat("e", 10<<20))}
	err := ErrorFromResponse(&http.Response{StatusCode: 502, Header: http.Header{}, Body: body})
	var api *APIError
	if !errors.As(err, &api) || api.Status != 502 {
		t.Fatalf("got %T %v", err, err)
	}
	if body.read > MaxErrorBody || !body.closed {
		t.Errorf("read %d bytes (max %d), closed %v", body.read, MaxErrorBody, body.closed)
	}
	if len(api.Message) > MaxErrorMessage+20 || !strings.HasSuffix(api.Message, "(truncated)") {
		t.Errorf("message of %d bytes not truncated", len(api.Message))
	}
}

func TestErrorFromResponseMessages(t *testing.T) {
	t.Parallel()
	tests := []struct {
		status   int
		body     string
		wantMsg  string
		wantCode string
	}{
		{400, `{"error":{"status":400,"reason":"Bad Request","message":"Invalid bbox","code":"COMMON_BAD_PAYLOAD"}}`, "Invalid bbox", "COMMON_BAD_PAYLOAD"},
		{400, `{"error":{"status":400,"reason":"Bad Request"}}`, "Bad Request", ""},
		{404, `{"code":404,"description":"Collection not found"}`, "Collection not found", "404"},
		{400, `{"message":"top-level message"}`, "top-level message", ""},
		{400, `{"error":"invalid_grant","error_description":"expired"}`, "expired", ""},
		{400, `{"error":"plain string"}`, "plain string", ""},
		{500, ``, "Internal Server Error", ""},
		{502, `<html>bad gateway</html>`, "<html>bad gateway</html>", ""},
		{400, `[1,2]`, "[1,2]", ""},
	}
	for _, tt := range tests {
		err := ErrorFromResponse(&http.Response{StatusCode: tt.status, Header: http.Header{}, Body: io.NopCloser(strings.NewReader(tt.body))})
		var api *APIError
		if !errors.As(err, &api) || api.Message != tt.wantMsg || api.Code != tt.wantCode {
			t.Errorf("%s: got %+v", tt.body, api)
		}
	}
	if err := ErrorFromResponse(&http.Response{StatusCode: 204, Body: http.NoBody}); err != nil {
		t.Errorf("2xx gave %v", err)
	}
}

func TestParsePUSpent(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]struct {
		pu float64
		ok bool
	}{"": {0, false}, "1.0": {1, true}, "0.005": {0.005, true}, "x": {0, false}, "-1": {0, false}, "NaN": {0, false}} {
		h := http.Header{}
		if in != "" {
			h.Set(HeaderPUSpent, in)
		}
		pu, ok := ParsePUSpent(h)
		if pu != want.pu || ok != want.ok {
			t.Errorf("ParsePUSpent(%q) = %g %v", in, pu, ok)
		}
	}
}
