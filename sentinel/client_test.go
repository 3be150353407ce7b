package sentinel

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

const (
	testClientID = "test-client"
	testSecret   = "s3cr3t-value-never-printed"
	tokenPath    = "/oauth/token"
)

// fakeJWT returns an unsigned JWT whose exp claim is exp.
func fakeJWT(exp time.Time) string {
	enc := base64.RawURLEncoding
	head := enc.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))
	body := enc.EncodeToString(fmt.Appendf(nil, `{"exp":%d,"sub":"x"}`, exp.Unix()))
	return head + "." + body + ".sig"
}

// fakeSH is a minimal Sentinel Hub on a real socket: a token endpoint that checks
// the client credentials, and API paths answered by api.
type fakeSH struct {
	srv           *httptest.Server
	tokenRequests atomic.Int64
	apiRequests   atomic.Int64
	// tokenHandler, when set, answers token requests instead of the default.
	tokenHandler http.HandlerFunc
}

func newFakeSH(t *testing.T, api http.HandlerFunc) (*fakeSH, Config) {
	t.Helper()
	f := &fakeSH{}
	mux := http.NewServeMux()
	mux.HandleFunc(tokenPath, func(w http.ResponseWriter, r *http.Request) {
		f.tokenRequests.Add(1)
		if f.tokenHandler != nil {
			f.tokenHandler(w, r)
			return
		}
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if r.PostForm.Get("grant_type") != "client_credentials" || r.PostForm.Get("client_id") != testClientID || r.PostForm.Get("client_secret") != testSecret {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error":"unauthorized_client","error_description":"Invalid client secret"}`))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"access_token": fakeJWT(time.Now().Add(time.Hour)),
			"token_type":   "Bearer",
			"expires_in":   3600,
		})
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		f.apiRequests.Add(1)
		api(w, r)
	})
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	cfg := Config{
		ClientID:     testClientID,
		ClientSecret: testSecret,
		BaseURL:      f.srv.URL,
		TokenURL:     f.srv.URL + tokenPath,
		HTTPClient:   f.srv.Client(),
	}
	return f, cfg
}

// validProcessRequest is a request that passes ValidateProcessRequest.
func validProcessRequest() ProcessRequest {
	return ProcessRequest{
		Input: ProcessInput{
			Bounds: Bounds{BBox: []float64{13.0, 45.0, 13.1, 45.1}, Properties: BoundsProperties{CRS: CRSWGS84}},
			Data:   []InputData{{Type: "sentinel-2-l2a"}},
		},
		Output: ProcessOutput{Width: 512, Height: 512, Responses: []OutputResponse{
			{Identifier: "default", Format: ResponseFormat{Type: "image/tiff"}},
		}},
		Evalscript: `//VERSION=3
function setup() { return { input: ["B04", "B03", "B02"], output: { bands: 3 } }; }
function evaluatePixel(s) { return [s.B04, s.B03, s.B02]; }`,
	}
}

func TestClientSetsHeaders(t *testing.T) {
	t.Parallel()
	got := make(chan http.Header, 1)
	f, cfg := newFakeSH(t, func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Clone()
		w.Header().Set("Content-Type", "image/tiff")
		_, _ = w.Write([]byte("II*\x00"))
	})
	c := NewClient(cfg, nil)
	resp, err := c.Process.Do(context.Background(), validProcessRequest())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Close()
	h := <-got
	if a := h.Get("Authorization"); !strings.HasPrefix(a, "Bearer ") || len(a) < 20 {
		t.Errorf("Authorization = %q, want a bearer token", a)
	}
	if ct := h.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	if ua := h.Get("User-Agent"); ua != "shfleet/"+Version {
		t.Errorf("User-Agent = %q", ua)
	}
	if acc := h.Get("Accept"); acc != "image/tiff" {
		t.Errorf("Accept = %q, want image/tiff", acc)
	}
	if n := f.tokenRequests.Load(); n != 1 {
		t.Errorf("token requests = %d, want 1", n)
	}
}

func TestClientTypedErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		status int
		header map[string]string
		body   string
		check  func(t *testing.T, err error)
	}{
		{
			name: "429 full headers", status: 429,
			header: map[string]string{"Retry-After": "0", "X-RateLimit-Remaining": "287.0", "X-ProcessingUnits-Remaining": "14", "X-ProcessingUnits-Retry-After": "593", "X-RateLimit-ViolatedPolicy": `{"samplingPeriod": "PT1M", "capacity": 1000}`},
			check: func(t *testing.T, err error) {
				var e *RateLimitError
				if !errors.As(err, &e) {
					t.Fatalf("want *RateLimitError, got %T %v", err, err)
				}
				if e.PURetryAfter != 593*time.Millisecond || e.RetryAfter != 0 || !e.HasRetryAfter || e.RequestsRemaining != 287 || e.PURemaining != 14 {
					t.Errorf("got %+v", e)
				}
				if e.Policy == nil || e.Policy.Kind() != "pu" || e.Policy.Capacity != 1000 || e.Policy.Period() != time.Minute {
					t.Errorf("policy %+v", e.Policy)
				}
				if e.Wait() != 593*time.Millisecond {
					t.Errorf("Wait = %s", e.Wait())
				}
			},
		},
		{
			name: "429 only Retry-After", status: 429, header: map[string]string{"Retry-After": "1200"},
			check: func(t *testing.T, err error) {
				var e *RateLimitError
				if !errors.As(err, &e) || e.RetryAfter != 1200*time.Millisecond || e.HasPURetryAfter || e.Policy != nil || e.RequestsRemaining != -1 {
					t.Fatalf("got %T %+v", err, e)
				}
			},
		},
		{
			name: "429 no headers", status: 429,
			check: func(t *testing.T, err error) {
				var e *RateLimitError
				if !errors.As(err, &e) || e.HasRetryAfter || e.Wait() != 0 || !strings.Contains(e.Error(), "no retry time") {
					t.Fatalf("got %T %v", err, err)
				}
			},
		},
		{
			name: "401", status: 401, body: `{"error":{"status":401,"reason":"Unauthorized","message":"Token expired"}}`,
			check: func(t *testing.T, err error) {
				var e *AuthError
				if !errors.As(err, &e) || e.Status != 401 || e.Body != "Token expired" {
					t.Fatalf("got %T %v", err, err)
				}
			},
		},
		{
			name: "403", status: 403, body: `{"error":{"status":403,"reason":"Forbidden","message":"No access to collection byoc-x","code":"COMMON_INSUFFICIENT_PERMISSIONS"}}`,
			check: func(t *testing.T, err error) {
				var e *ForbiddenError
				if !errors.As(err, &e) || e.Body != "No access to collection byoc-x" || e.Code != "COMMON_INSUFFICIENT_PERMISSIONS" {
					t.Fatalf("got %T %v", err, err)
				}
			},
		},
		{
			name: "400 JSON message", status: 400, body: `{"error":{"status":400,"reason":"Bad Request","message":"Failed to evaluate script!","code":"RENDERER_EXCEPTION"}}`,
			check: func(t *testing.T, err error) {
				var e *APIError
				if !errors.As(err, &e) || e.Status != 400 || e.Message != "Failed to evaluate script!" || e.Code != "RENDERER_EXCEPTION" || e.Temporary() {
					t.Fatalf("got %T %+v", err, e)
				}
				if !strings.Contains(err.Error(), "HTTP 400 (RENDERER_EXCEPTION): Failed to evaluate script!") {
					t.Errorf("message %q", err)
				}
			},
		},
		{
			name: "503 raw body", status: 503, body: "upstream unavailable\n",
			check: func(t *testing.T, err error) {
				var e *APIError
				if !errors.As(err, &e) || e.Status != 503 || e.Message != "upstream unavailable" || !e.Temporary() {
					t.Fatalf("got %T %+v", err, e)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, cfg := newFakeSH(t, func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tt.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tt.status)
				_, _ = w.Write([]byte(tt.body))
			})
			c := NewClient(cfg, nil)
			_, err := c.Process.Do(context.Background(), validProcessRequest())
			if err == nil || !strings.HasPrefix(err.Error(), "process request: ") {
				t.Fatalf("error lacks the operation: %v", err)
			}
			tt.check(t, err)
			// The catalog maps the same answers to the same types.
			var page error
			for _, e := range c.Catalog.Search(context.Background(), CatalogSearchRequest{Collections: []string{"sentinel-2-l2a"}, Datetime: "2024-01-01T00:00:00Z/2024-02-01T00:00:00Z"}) {
				page = e
			}
			if page == nil || !strings.HasPrefix(page.Error(), "catalog search page 1: ") {
				t.Fatalf("catalog error lacks the operation: %v", page)
			}
			tt.check(t, page)
		})
	}
}

func TestClientTokenErrorSurfaces(t *testing.T) {
	t.Parallel()
	f, cfg := newFakeSH(t, func(w http.ResponseWriter, r *http.Request) {
		t.Error("API called without a token")
	})
	f.tokenHandler = func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "2000")
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = w.Write([]byte(`{"error":"too_many_requests"}`))
	}
	c := NewClient(cfg, nil)
	_, err := c.Process.Do(context.Background(), validProcessRequest())
	var te *TokenError
	if !errors.As(err, &te) {
		t.Fatalf("want *TokenError, got %T %v", err, err)
	}
	if te.Status != 429 || te.RetryAfter != 2*time.Second {
		t.Errorf("got status %d retry %s", te.Status, te.RetryAfter)
	}
	if !strings.Contains(err.Error(), "token endpoint answered 429") {
		t.Errorf("message %q", err)
	}
	if strings.Contains(strings.ToLower(err.Error()), "missing") {
		t.Errorf("disguised as a missing token: %q", err)
	}
}

func TestClientBadConfigFailsAtCall(t *testing.T) {
	t.Parallel()
	c := NewClient(Config{BaseURL: "ftp://example.com"}, staticToken("x"))
	_, err := c.Process.Do(context.Background(), validProcessRequest())
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "BaseURL" {
		t.Fatalf("got %T %v", err, err)
	}
}

func TestClientContextCanceled(t *testing.T) {
	t.Parallel()
	_, cfg := newFakeSH(t, func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	})
	c := NewClient(cfg, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := c.Process.Do(ctx, validProcessRequest())
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}
