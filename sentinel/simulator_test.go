package sentinel_test

import (
	"context"
	"errors"
	"io"
	"math"
	"strings"
	"testing"
	"time"

	"shfleet/sentinel"
	"shfleet/sentinel/sentineltest"
)

// These tests run the client against the simulator in sentinel/sentineltest.

func simSearch(limit int) sentinel.CatalogSearchRequest {
	return sentinel.CatalogSearchRequest{
		Collections: []string{"sentinel-2-l2a"},
		BBox:        []float64{10.2, 45.1, 11.8, 46.9},
		Datetime:    "2025-06-01T00:00:00Z/2025-06-30T23:59:59Z",
		Limit:       limit,
	}
}

func simProcess() sentinel.ProcessRequest {
	return sentinel.ProcessRequest{
		Input: sentinel.ProcessInput{
			Bounds: sentinel.Bounds{BBox: []float64{13.0, 45.0, 13.1, 45.1}, Properties: sentinel.BoundsProperties{CRS: sentinel.CRSWGS84}},
			Data: []sentinel.InputData{{Type: "sentinel-2-l2a", DataFilter: &sentinel.DataFilter{TimeRange: &sentinel.TimeRange{
				From: time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2025, 6, 30, 0, 0, 0, 0, time.UTC),
			}}}},
		},
		Output: sentinel.ProcessOutput{Width: 512, Height: 512},
		Evalscript: `//VERSION=3
function setup() { return { input: ["B02", "B03", "B04"], output: { bands: 3 } }; }
function evaluatePixel(s) { return [s.B04, s.B03, s.B02]; }`,
	}
}

func startSim(t *testing.T, cfg sentineltest.Config) (*sentineltest.Server, *sentinel.Client) {
	t.Helper()
	s := sentineltest.NewServer(cfg)
	t.Cleanup(s.Close)
	return s, sentinel.NewClient(s.ClientConfig(), nil)
}

func TestSimulatorCatalogAndProcess(t *testing.T) {
	t.Parallel()
	s, c := startSim(t, sentineltest.Config{})
	ctx := context.Background()

	// Lazy: the first page only.
	n := 0
	for _, err := range c.Catalog.Search(ctx, simSearch(7)) {
		if err != nil {
			t.Fatal(err)
		}
		if n++; n == 7 {
			break
		}
	}
	if got := s.Stats().CatalogRequests; got != 1 {
		t.Fatalf("first page only: %d catalog requests, want 1", got)
	}
	// The whole search, page by page.
	ids := map[string]bool{}
	for item, err := range c.Catalog.Search(ctx, simSearch(7)) {
		if err != nil {
			t.Fatal(err)
		}
		if ids[item.ID] {
			t.Fatalf("item %s twice", item.ID)
		}
		ids[item.ID] = true
	}
	pages := s.Stats().CatalogRequests - 1
	if len(ids) < 15 || pages != (len(ids)+6)/7 {
		t.Fatalf("%d items in %d pages", len(ids), pages)
	}

	req := simProcess()
	resp, err := c.Process.Do(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Close()
	if err != nil || len(b) == 0 {
		t.Fatalf("body: %d bytes, %v", len(b), err)
	}
	if want := sentinel.EstimateRequestPU(req, 1); !resp.HasPUSpent || math.Abs(resp.PUSpent-want) > 1e-9 {
		t.Errorf("PU spent %g (%v), estimate %g", resp.PUSpent, resp.HasPUSpent, want)
	}
	if st := s.Stats(); st.TokenRequests != 1 || st.ProcessRequests != 1 {
		t.Errorf("stats %+v: want one token request shared by every call", st)
	}
}

func TestSimulatorMultiResponseTar(t *testing.T) {
	t.Parallel()
	_, c := startSim(t, sentineltest.Config{})
	req := simProcess()
	req.Evalscript = `//VERSION=3
function setup() { return { input: ["B04", "B08"], output: [{ id: "default", bands: 1 }, { id: "ndvi", bands: 1, sampleType: "FLOAT32" }] }; }`
	req.Output.Responses = []sentinel.OutputResponse{
		{Identifier: "default", Format: sentinel.ResponseFormat{Type: "image/tiff"}},
		{Identifier: "ndvi", Format: sentinel.ResponseFormat{Type: "image/tiff"}},
	}
	resp, err := c.Process.Do(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Close()
	var names []string
	err = sentinel.SplitTar(resp.Body, func(name string, r io.Reader) error {
		names = append(names, name)
		_, err := io.Copy(io.Discard, r)
		return err
	})
	if err != nil || len(names) != 2 {
		t.Fatalf("parts %v, err %v", names, err)
	}
}

func TestSimulatorErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	oneReqPerMinute := []sentineltest.Policy{{Kind: sentineltest.KindRequests, Capacity: 1, Period: time.Minute}}

	t.Run("429 legacy headers", func(t *testing.T) {
		t.Parallel()
		_, c := startSim(t, sentineltest.Config{Policies: oneReqPerMinute, HeaderMode: sentineltest.HeadersLegacy})
		if _, err := c.Catalog.SearchPage(ctx, simSearch(1)); err != nil {
			t.Fatal(err)
		}
		_, err := c.Process.Do(ctx, simProcess())
		var rl *sentinel.RateLimitError
		if !errors.As(err, &rl) {
			t.Fatalf("got %T %v", err, err)
		}
		if !rl.HasRetryAfter || rl.Wait() <= 0 || rl.Wait() > time.Minute || rl.Policy == nil || rl.Policy.Kind() != "requests" || rl.Policy.Capacity != 1 || rl.Policy.Period() != time.Minute {
			t.Errorf("got %+v policy %+v", rl, rl.Policy)
		}
	})
	t.Run("429 Retry-After only", func(t *testing.T) {
		t.Parallel()
		_, c := startSim(t, sentineltest.Config{Policies: oneReqPerMinute, HeaderMode: sentineltest.HeadersRetryAfterOnly})
		_, _ = c.Catalog.SearchPage(ctx, simSearch(1))
		_, err := c.Catalog.SearchPage(ctx, simSearch(1))
		var rl *sentinel.RateLimitError
		if !errors.As(err, &rl) || !rl.HasRetryAfter || rl.RetryAfter <= 0 || rl.Policy != nil || rl.HasPURetryAfter || rl.RequestsRemaining != -1 {
			t.Fatalf("got %v %+v", err, rl)
		}
	})
	t.Run("429 no headers", func(t *testing.T) {
		t.Parallel()
		_, c := startSim(t, sentineltest.Config{Policies: oneReqPerMinute, HeaderMode: sentineltest.HeadersNone})
		_, _ = c.Catalog.SearchPage(ctx, simSearch(1))
		_, err := c.Catalog.SearchPage(ctx, simSearch(1))
		var rl *sentinel.RateLimitError
		if !errors.As(err, &rl) || rl.HasRetryAfter || rl.Wait() != 0 || rl.Policy != nil {
			t.Fatalf("got %v %+v", err, rl)
		}
	})
	t.Run("token 429", func(t *testing.T) {
		t.Parallel()
		s := sentineltest.NewServer(sentineltest.Config{TokenRequestsPerMinute: 1})
		t.Cleanup(s.Close)
		if _, err := sentinel.NewClient(s.ClientConfig(), nil).Catalog.SearchPage(ctx, simSearch(1)); err != nil {
			t.Fatal(err)
		}
		// A second client with its own token source: the token endpoint refuses.
		_, err := sentinel.NewClient(s.ClientConfig(), nil).Catalog.SearchPage(ctx, simSearch(1))
		var te *sentinel.TokenError
		if !errors.As(err, &te) || te.Status != 429 || te.RetryAfter <= 0 {
			t.Fatalf("got %T %v", err, err)
		}
	})
	t.Run("bad secret", func(t *testing.T) {
		t.Parallel()
		s := sentineltest.NewServer(sentineltest.Config{})
		t.Cleanup(s.Close)
		cfg := s.ClientConfig()
		cfg.ClientSecret = "wrong"
		_, err := sentinel.NewClient(cfg, nil).Catalog.SearchPage(ctx, simSearch(1))
		var te *sentinel.TokenError
		if !errors.As(err, &te) || (te.Status != 400 && te.Status != 401) {
			t.Fatalf("got %T %v", err, err)
		}
	})
	t.Run("401 expired token", func(t *testing.T) {
		t.Parallel()
		s, c := startSim(t, sentineltest.Config{})
		if _, err := c.Catalog.SearchPage(ctx, simSearch(1)); err != nil {
			t.Fatal(err)
		}
		s.ExpireTokens()
		_, err := c.Process.Do(ctx, simProcess())
		var ae *sentinel.AuthError
		if !errors.As(err, &ae) || ae.Status != 401 {
			t.Fatalf("got %T %v", err, err)
		}
	})
	t.Run("403 monthly quota", func(t *testing.T) {
		t.Parallel()
		_, c := startSim(t, sentineltest.Config{MonthlyPU: 0.5})
		_, err := c.Process.Do(ctx, simProcess())
		var fe *sentinel.ForbiddenError
		if !errors.As(err, &fe) || fe.Body == "" {
			t.Fatalf("got %T %v", err, err)
		}
	})
	t.Run("truncated body", func(t *testing.T) {
		t.Parallel()
		_, c := startSim(t, sentineltest.Config{Faults: sentineltest.Faults{TruncateRate: 1}})
		resp, err := c.Process.Do(ctx, simProcess())
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Close()
		if _, err := io.ReadAll(resp.Body); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("read error %v, want io.ErrUnexpectedEOF", err)
		}
	})
	t.Run("503", func(t *testing.T) {
		t.Parallel()
		_, c := startSim(t, sentineltest.Config{Faults: sentineltest.Faults{Error5xxRate: 1}})
		_, err := c.Process.Do(ctx, simProcess())
		var api *sentinel.APIError
		if !errors.As(err, &api) || api.Status != 503 || !api.Temporary() {
			t.Fatalf("got %T %v", err, err)
		}
	})
}

// TestEstimateMatchesWhatTheServiceCharges: the client's PU estimate must equal
// what the simulator charges (X-ProcessingUnits-Spent), computed by the
// simulator's own rules, for shapes worked out by hand. A deliberately wrong
// estimator (one that counts dataMask as a band) is caught by the same check.
func TestEstimateMatchesWhatTheServiceCharges(t *testing.T) {
	t.Parallel()
	_, c := startSim(t, sentineltest.Config{})
	script := func(bands, sampleType string) string {
		return "//VERSION=3\nfunction setup() { return { input: [" + bands + "], output: { bands: 1, sampleType: \"" + sampleType + "\" } }; }\nfunction evaluatePixel(s) { return [0]; }"
	}
	shape := func(w, h int, evalscript string) sentinel.ProcessRequest {
		r := simProcess()
		r.Output = sentinel.ProcessOutput{Width: w, Height: h}
		r.Evalscript = evalscript
		return r
	}
	cases := []struct {
		name string
		req  sentinel.ProcessRequest
		want float64 // PU, by hand
	}{
		// 512x512 = 262144 px: area 1; 3 bands: 1; UINT8: 1 -> 1.
		{"512px 3 bands", shape(512, 512, script(`"B02","B03","B04"`, "UINT8")), 1},
		// 256x256: area 0.25; 4 bands: 4/3; FLOAT32: 2 -> 0.666667 (rounded up to milli-PU: 0.667).
		{"256px 4 bands float", shape(256, 256, script(`"B02","B03","B04","B08"`, "FLOAT32")), 0.667},
		// 1024x512: area 2; 3 bands + dataMask (not counted): 1 -> 2.
		{"1024x512 with dataMask", shape(1024, 512, script(`"B02","B03","B04","dataMask"`, "UINT8")), 2},
		// 10x10: area 0.01 (the minimum); 1 band: 1/3 -> 0.00333, below the 0.005 minimum.
		{"10px 1 band", shape(10, 10, script(`"B04"`, "UINT8")), 0.005},
	}
	charged := map[string]int64{}
	for _, tc := range cases {
		resp, err := c.Process.Do(context.Background(), tc.req)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Close()
		if !resp.HasPUSpent || sentinel.MilliPU(resp.PUSpent) != sentinel.MilliPU(tc.want) {
			t.Fatalf("%s: the simulator charged %v PU, worked out by hand %v", tc.name, resp.PUSpent, tc.want)
		}
		charged[tc.name] = sentinel.MilliPU(resp.PUSpent)
	}
	mismatches := func(estimate func(sentinel.ProcessRequest) float64) []string {
		var out []string
		for _, tc := range cases {
			if got := sentinel.MilliPU(estimate(tc.req)); got != charged[tc.name] {
				out = append(out, tc.name)
			}
		}
		return out
	}
	if m := mismatches(func(r sentinel.ProcessRequest) float64 { return sentinel.EstimateRequestPU(r, 1) }); len(m) > 0 {
		t.Fatalf("the client's estimate differs from the charge for %v", m)
	}
	countsDataMask := func(r sentinel.ProcessRequest) float64 {
		pu := sentinel.EstimateRequestPU(r, 1)
		if strings.Contains(r.Evalscript, "dataMask") {
			pu = pu * 4 / 3
		}
		return pu
	}
	if m := mismatches(countsDataMask); len(m) != 1 || m[0] != "1024x512 with dataMask" {
		t.Fatalf("a deliberately wrong estimator went unnoticed: mismatches %v", m)
	}
}
