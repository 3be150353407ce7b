package sentineltest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"shfleet/sentinel"
)

// These tests run the shfleet client against the simulator: the two must agree on
// the wire format.

func TestClientFetchTokenAndRateLimitHeaders(t *testing.T) {
	t.Parallel()
	clk := newClock()
	s := NewServer(Config{
		TokenRequestsPerMinute: 1,
		Policies:               []Policy{{Kind: KindPU, Capacity: 1.5, Period: time.Minute}},
		HeaderMode:             HeadersLegacy, // the 2019 headers the client still parses
		Now:                    clk.Now,
	})
	t.Cleanup(s.Close)
	ctx := context.Background()
	tok, err := sentinel.FetchToken(ctx, s.ClientConfig())
	if err != nil {
		t.Fatal(err)
	}
	// oauth2 computes Expiry from expires_in and the real clock.
	if d := time.Until(tok.Expiry); d < 59*time.Minute || d > 61*time.Minute {
		t.Errorf("token expires in %v, want about %v", d, DefaultTokenTTL)
	}
	_, err = sentinel.FetchToken(ctx, s.ClientConfig())
	var te *sentinel.TokenError
	if !errors.As(err, &te) || te.Status != 429 || te.RetryAfter != time.Minute {
		t.Fatalf("second token request: %v (%+v), want TokenError 429 retry 1m", err, te)
	}

	r := post(t, s, ProcessPath, tok.AccessToken, processReq())
	wantStatus(t, r, 200)
	if pu, ok := sentinel.ParsePUSpent(r.header); !ok || pu != 1 {
		t.Errorf("ParsePUSpent = %v, %v", pu, ok)
	}
	r = post(t, s, ProcessPath, tok.AccessToken, processReq())
	wantStatus(t, r, 429)
	rl := sentinel.ParseRateLimitHeaders(r.header)
	if rl.Policy == nil || rl.Policy.Kind() != "pu" || rl.Policy.Capacity != 1.5 || rl.Policy.Period() != time.Minute ||
		rl.Wait() != 20*time.Second || rl.PURemaining != 0.5 {
		t.Errorf("parsed 429 = %+v (policy %+v)", rl, rl.Policy)
	}
}

func TestClientProcessAndCatalog(t *testing.T) {
	t.Parallel()
	s := NewServer(Config{})
	t.Cleanup(s.Close)
	c := sentinel.NewClient(s.ClientConfig(), nil)
	ctx := context.Background()
	req := processReq()
	resp, err := c.Process.Do(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Close()
	if err != nil || !bytes.Equal(b, ProcessBody(req, "default")) || resp.PUSpent != 1 {
		t.Fatalf("process: err %v, %d bytes, PUSpent %v", err, len(b), resp.PUSpent)
	}
	q := search()
	q.Limit = 7
	n := 0
	for _, err := range c.Catalog.Search(ctx, q) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 24 {
		t.Errorf("catalog iterator gave %d items, want 24", n)
	}
}
