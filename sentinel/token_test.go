package sentinel

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

func staticToken(s string) oauth2.TokenSource {
	return oauth2.StaticTokenSource(&oauth2.Token{AccessToken: s})
}

func TestFetchTokenSendsCredentialsInForm(t *testing.T) {
	t.Parallel()
	f, cfg := newFakeSH(t, nil)
	var sawAuthHeader string
	f.tokenHandler = func(w http.ResponseWriter, r *http.Request) {
		sawAuthHeader = r.Header.Get("Authorization")
		_ = r.ParseForm()
		if r.PostForm.Get("client_secret") != testSecret || r.PostForm.Get("client_id") != testClientID || r.PostForm.Get("grant_type") != "client_credentials" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"access_token":"opaque","token_type":"Bearer","expires_in":3600}`))
	}
	before := time.Now()
	tok, err := FetchToken(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if sawAuthHeader != "" {
		t.Errorf("credentials sent in an Authorization header %q, want them in the form", sawAuthHeader)
	}
	if tok.AccessToken != "opaque" {
		t.Errorf("token %q", tok.AccessToken)
	}
	if d := tok.Expiry.Sub(before); d < 59*time.Minute || d > 61*time.Minute {
		t.Errorf("expiry in %s, want about an hour", d)
	}
}

func TestFetchTokenExpiryFromJWT(t *testing.T) {
	t.Parallel()
	exp := time.Now().Add(42 * time.Minute).Truncate(time.Second)
	f, cfg := newFakeSH(t, nil)
	f.tokenHandler = func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"access_token":"` + fakeJWT(exp) + `","token_type":"Bearer"}`))
	}
	tok, err := FetchToken(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !tok.Expiry.Equal(exp) {
		t.Errorf("expiry %s, want %s from the JWT exp claim", tok.Expiry, exp)
	}
}

func TestFetchTokenSecretFile(t *testing.T) {
	t.Parallel()
	_, cfg := newFakeSH(t, nil)
	file := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(file, []byte("  "+testSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.ClientSecret, cfg.ClientSecretFile = "", file
	if _, err := FetchToken(context.Background(), cfg); err != nil {
		t.Fatalf("token with secret file: %v", err)
	}
	cfg.ClientSecretFile = filepath.Join(t.TempDir(), "missing")
	_, err := FetchToken(context.Background(), cfg)
	var te *TokenError
	var fe *FieldError
	if !errors.As(err, &te) || !errors.As(err, &fe) || fe.Field != "ClientSecretFile" {
		t.Fatalf("got %T %v", err, err)
	}
}

func TestTokenErrors(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 5000)
	tests := []struct {
		name       string
		status     int
		header     map[string]string
		body       string
		wantStatus int
		wantRetry  time.Duration
		wantMsg    string
	}{
		{name: "429 with Retry-After", status: 429, header: map[string]string{"Retry-After": "1500"}, body: `{"error":"rate limited"}`, wantStatus: 429, wantRetry: 1500 * time.Millisecond, wantMsg: "token endpoint answered 429"},
		{name: "429 without Retry-After", status: 429, wantStatus: 429, wantMsg: "token endpoint answered 429 (too many token requests) — share one token"},
		{name: "401 bad secret", status: 401, body: `{"error":"unauthorized_client","error_description":"Invalid client secret"}`, wantStatus: 401, wantMsg: "client id or secret rejected"},
		{name: "500 long body", status: 500, body: long, wantStatus: 500, wantMsg: "token endpoint answered 500"},
		{name: "secret echoed", status: 400, body: `{"error":"invalid_request","error_description":"bad secret ` + testSecret + `"}`, wantStatus: 400, wantMsg: "[redacted]"},
		{name: "200 without token", status: 200, body: `{"token_type":"Bearer"}`, wantStatus: 200, wantMsg: "token endpoint answered 200: the answer has no access_token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, cfg := newFakeSH(t, nil)
			f.tokenHandler = func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tt.header {
					w.Header().Set(k, v)
				}
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tt.status)
				_, _ = w.Write([]byte(tt.body))
			}
			_, err := NewTokenSource(context.Background(), cfg).Token()
			var te *TokenError
			if !errors.As(err, &te) {
				t.Fatalf("want *TokenError, got %T %v", err, err)
			}
			if te.Status != tt.wantStatus || te.RetryAfter != tt.wantRetry {
				t.Errorf("status %d retry %s, want %d %s", te.Status, te.RetryAfter, tt.wantStatus, tt.wantRetry)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("message %q lacks %q", err, tt.wantMsg)
			}
			if len(te.Body) > MaxTokenErrorBody+20 {
				t.Errorf("body not truncated: %d bytes", len(te.Body))
			}
			for e := error(te); e != nil; e = errors.Unwrap(e) {
				if strings.Contains(e.Error(), testSecret) {
					t.Errorf("secret leaked in %T: %q", e, e)
				}
			}
		})
	}
}

func TestTokenNetworkError(t *testing.T) {
	t.Parallel()
	f, cfg := newFakeSH(t, nil)
	f.srv.Close()
	_, err := FetchToken(context.Background(), cfg)
	var te *TokenError
	if !errors.As(err, &te) || te.Status != 0 || te.Err == nil || !strings.HasPrefix(err.Error(), "token request failed: ") {
		t.Fatalf("got %T %v", err, err)
	}
}

func TestNewTokenSourceReusesToken(t *testing.T) {
	t.Parallel()
	f, cfg := newFakeSH(t, nil)
	ts := NewTokenSource(context.Background(), cfg)
	a, err := ts.Token()
	if err != nil {
		t.Fatal(err)
	}
	b, err := ts.Token()
	if err != nil {
		t.Fatal(err)
	}
	if a.AccessToken != b.AccessToken || f.tokenRequests.Load() != 1 {
		t.Errorf("token requests = %d, want 1 reused token", f.tokenRequests.Load())
	}
}

func TestJWTExpiry(t *testing.T) {
	t.Parallel()
	enc := func(payload string) string {
		return "e30." + base64.RawURLEncoding.EncodeToString([]byte(payload)) + ".sig"
	}
	tests := []struct {
		name  string
		token string
		want  time.Time
		ok    bool
	}{
		{"integer exp", enc(`{"exp":1700000000}`), time.Unix(1700000000, 0), true},
		{"fractional exp", enc(`{"exp":1700000000.5}`), time.Unix(1700000000, 5e8), true},
		{"padded payload", "e30." + base64.URLEncoding.EncodeToString([]byte(`{"exp":1700000001}`)) + ".sig", time.Unix(1700000001, 0), true},
		{"no exp", enc(`{"sub":"a"}`), time.Time{}, false},
		{"string exp", enc(`{"exp":"soon"}`), time.Time{}, false},
		{"negative exp", enc(`{"exp":-1}`), time.Time{}, false},
		{"not base64", "a.%%%.c", time.Time{}, false},
		{"opaque token", "abcdef", time.Time{}, false},
		{"payload not JSON", enc(`nope`), time.Time{}, false},
		{"empty", "", time.Time{}, false},
	}
	for _, tt := range tests {
		got, ok := JWTExpiry(tt.token)
		if ok != tt.ok || !got.Equal(tt.want) {
			t.Errorf("%s: got %s %v, want %s %v", tt.name, got, ok, tt.want, tt.ok)
		}
	}
}
