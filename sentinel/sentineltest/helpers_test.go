package sentineltest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"shfleet/sentinel"
)

// clock is a settable clock for Config.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// start runs a simulator on a fake clock and returns it with a valid token.
func start(t *testing.T, cfg Config) (*Server, *clock, string) {
	t.Helper()
	clk := newClock()
	cfg.Now = clk.Now
	s := NewServer(cfg)
	t.Cleanup(s.Close)
	return s, clk, fetchToken(t, s)
}

type reply struct {
	status int
	header http.Header
	body   []byte
	err    error // error reading the body
}

func fetchToken(t *testing.T, s *Server) string {
	t.Helper()
	r := tokenRequest(t, s, url.Values{
		"grant_type": {"client_credentials"}, "client_id": {DefaultClientID}, "client_secret": {DefaultClientSecret},
	})
	if r.status != http.StatusOK {
		t.Fatalf("token: HTTP %d %s", r.status, r.body)
	}
	var tr tokenResponse
	if err := json.Unmarshal(r.body, &tr); err != nil || tr.AccessToken == "" {
		t.Fatalf("token body %s: %v", r.body, err)
	}
	return tr.AccessToken
}

func tokenRequest(t *testing.T, s *Server, form url.Values) reply {
	t.Helper()
	resp, err := http.PostForm(s.URL()+TokenPath, form)
	if err != nil {
		t.Fatal(err)
	}
	return readReply(resp)
}

func readReply(resp *http.Response) reply {
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return reply{status: resp.StatusCode, header: resp.Header, body: b, err: err}
}

// post sends body as JSON with the token; extra headers as key, value pairs.
func post(t *testing.T, s *Server, path, token string, body any, kv ...string) reply {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, s.URL()+path, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(kv); i += 2 {
		req.Header.Set(kv[i], kv[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return readReply(resp)
}

// search is a catalog search over 2x2 cells and 30 days.
func search() sentinel.CatalogSearchRequest {
	return sentinel.CatalogSearchRequest{
		Collections: []string{"sentinel-2-l2a"},
		BBox:        []float64{10.2, 45.1, 11.8, 46.9},
		Datetime:    "2025-06-01T00:00:00Z/2025-06-30T23:59:59Z",
	}
}

// processReq is a 512x512, 3-band, 8-bit request: 1 PU.
func processReq() sentinel.ProcessRequest {
	return sentinel.ProcessRequest{
		Input: sentinel.ProcessInput{
			Bounds: sentinel.Bounds{BBox: []float64{13.0, 45.0, 13.1, 45.1}},
			Data: []sentinel.InputData{{Type: "sentinel-2-l2a", DataFilter: &sentinel.DataFilter{
				TimeRange: &sentinel.TimeRange{
					From: time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC),
					To:   time.Date(2025, 6, 30, 0, 0, 0, 0, time.UTC),
				},
			}}},
		},
		Output: sentinel.ProcessOutput{Width: 512, Height: 512},
		Evalscript: `//VERSION=3
function setup() { return { input: ["B02", "B03", "B04"], output: { bands: 3 } }; }
function evaluatePixel(s) { return [s.B04, s.B03, s.B02]; }`,
	}
}

func wantStatus(t *testing.T, r reply, status int) {
	t.Helper()
	if r.status != status {
		t.Fatalf("HTTP %d, want %d: %s", r.status, status, r.body)
	}
}

func wantHeader(t *testing.T, r reply, name, want string) {
	t.Helper()
	if got := r.header.Get(name); got != want {
		t.Errorf("%s = %q, want %q", name, got, want)
	}
}

func wantBody(t *testing.T, r reply, want string) {
	t.Helper()
	if got := strings.TrimSpace(string(r.body)); got != want {
		t.Errorf("body\n got %s\nwant %s", got, want)
	}
}

func wantContains(t *testing.T, r reply, sub string) {
	t.Helper()
	if !strings.Contains(string(r.body), sub) {
		t.Errorf("body %s does not contain %q", r.body, sub)
	}
}
