package sentineltest

import (
	"archive/tar"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"shfleet/sentinel"
)

func TestTokenEndpoint(t *testing.T) {
	t.Parallel()
	clk := newClock()
	s := NewServer(Config{TokenRequestsPerMinute: 3, Now: clk.Now})
	t.Cleanup(s.Close)
	good := url.Values{"grant_type": {"client_credentials"}, "client_id": {DefaultClientID}, "client_secret": {DefaultClientSecret}}
	bad := url.Values{"grant_type": {"client_credentials"}, "client_id": {DefaultClientID}, "client_secret": {"wrong"}}

	r := tokenRequest(t, s, bad)
	wantStatus(t, r, http.StatusUnauthorized)
	wantContains(t, r, `"error":"invalid_client"`)
	if strings.Contains(string(r.body), "wrong") {
		t.Errorf("the answer echoes the secret: %s", r.body)
	}
	tok1, tok2 := fetchToken(t, s), fetchToken(t, s)
	if tok1 == tok2 {
		t.Error("two token requests gave the same token")
	}
	r = tokenRequest(t, s, good)
	wantStatus(t, r, http.StatusTooManyRequests)
	wantHeader(t, r, "Retry-After", "20000") // 3 per minute: one every 20 s
	if strings.Contains(string(r.body), "access_token") {
		t.Errorf("429 carries a token: %s", r.body)
	}
	st := s.Stats()
	if st.TokenRequests != 4 || st.TokensIssued != 2 || st.TokenRateLimited != 1 {
		t.Errorf("stats = %+v; want 4 requests, 2 tokens, 1 limited", st)
	}
	clk.Advance(20 * time.Second)

	// HTTP Basic credentials work too, on the alias path.
	req, _ := http.NewRequest(http.MethodPost, s.URL()+"/oauth/token", strings.NewReader("grant_type=client_credentials"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(DefaultClientID, DefaultClientSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r = readReply(resp)
	wantStatus(t, r, http.StatusOK)
	var tr tokenResponse
	if err := json.Unmarshal(r.body, &tr); err != nil || tr.TokenType != "Bearer" || tr.ExpiresIn != 3600 {
		t.Fatalf("token body %s: %v", r.body, err)
	}
	parts := strings.Split(tr.AccessToken, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q is not a JWT", tr.AccessToken)
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims struct {
		Exp, Iat int64
		Sub, Jti string
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	// sub is the user, not the OAuth client.
	if claims.Sub != DefaultUserID || claims.Sub == DefaultClientID || claims.Exp != clk.Now().Add(time.Hour).Unix() || claims.Iat != clk.Now().Unix() || claims.Jti == "" {
		t.Errorf("claims = %+v", claims)
	}
}

func TestExpiredAndRevokedTokens(t *testing.T) {
	t.Parallel()
	s, clk, tok := start(t, Config{TokenTTL: time.Minute})
	wantStatus(t, post(t, s, CatalogSearchPath, tok, search()), http.StatusOK)
	clk.Advance(61 * time.Second)
	r := post(t, s, CatalogSearchPath, tok, search())
	wantStatus(t, r, http.StatusUnauthorized)
	// The catalog answers in its own error shape (CatalogException).
	wantBody(t, r, `{"code":401,"description":"Token is missing, invalid, expired or revoked: get a new one from the token endpoint"}`)
	tok = fetchToken(t, s)
	wantStatus(t, post(t, s, ProcessPath, tok, processReq()), http.StatusOK)
	s.ExpireTokens()
	r = post(t, s, ProcessPath, tok, processReq())
	wantStatus(t, r, http.StatusUnauthorized)
	wantContains(t, r, `"code":"COMMON_UNAUTHORIZED"`)
	wantStatus(t, post(t, s, ProcessPath, "", processReq()), http.StatusUnauthorized)
	wantStatus(t, post(t, s, ProcessPath, "forged.token.x", processReq()), http.StatusUnauthorized)
	if st := s.Stats(); st.Unauthorized != 4 || st.RequestsByStatus[401] != 4 {
		t.Errorf("stats = %+v", st)
	}
}

func searchAll(t *testing.T, s *Server, tok string, q sentinel.CatalogSearchRequest) (pages [][]sentinel.CatalogItem) {
	t.Helper()
	for range 100 {
		r := post(t, s, CatalogSearchPath, tok, q)
		wantStatus(t, r, http.StatusOK)
		wantHeader(t, r, "Content-Type", "application/geo+json")
		var page sentinel.CatalogSearchResponse
		if err := json.Unmarshal(r.body, &page); err != nil {
			t.Fatal(err)
		}
		if page.Context.Returned != len(page.Features) {
			t.Fatalf("context.returned = %d, features %d", page.Context.Returned, len(page.Features))
		}
		pages = append(pages, page.Features)
		if page.Context.Next == nil {
			return pages
		}
		q.Next = page.Context.Next
	}
	t.Fatal("more than 100 pages")
	return nil
}

func TestCatalogSearch(t *testing.T) {
	t.Parallel()
	s, _, tok := start(t, Config{})
	q := search()
	q.Limit = 10
	pages := searchAll(t, s, tok, q)
	// 4 cells, one acquisition every 5 days over 30 days: 6 each.
	if len(pages) != 3 || len(pages[0]) != 10 || len(pages[1]) != 10 || len(pages[2]) != 4 {
		t.Fatalf("page sizes: %d pages %v", len(pages), func() (n []int) {
			for _, p := range pages {
				n = append(n, len(p))
			}
			return
		}())
	}
	var all []sentinel.CatalogItem
	for _, p := range pages {
		all = append(all, p...)
	}
	ids := map[string]bool{}
	from, to := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC), time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC)
	for i, it := range all {
		if ids[it.ID] {
			t.Errorf("duplicate item %s", it.ID)
		}
		ids[it.ID] = true
		d := it.Properties.Datetime
		if d.Before(from) || !d.Before(to) || it.Properties.CloudCover == nil || len(it.BBox) != 4 || len(it.Geometry) == 0 {
			t.Errorf("item %d = %+v", i, it)
		}
		if i > 0 && (d.Before(all[i-1].Properties.Datetime) || d.Equal(all[i-1].Properties.Datetime) && it.ID < all[i-1].ID) {
			t.Errorf("items %d and %d are out of order", i-1, i)
		}
	}
	again := searchAll(t, s, tok, q)
	a, _ := json.Marshal(pages)
	b, _ := json.Marshal(again)
	if !bytes.Equal(a, b) {
		t.Error("the same search gave different results")
	}

	q.Filter = "eo:cloud_cover < 40"
	q.Limit = 100
	filtered := searchAll(t, s, tok, q)[0]
	want := 0
	for _, it := range all {
		if *it.Properties.CloudCover < 40 {
			want++
		}
	}
	if len(filtered) != want || want == 0 || want == len(all) {
		t.Errorf("filter kept %d of %d items, want %d", len(filtered), len(all), want)
	}
	for _, it := range filtered {
		if *it.Properties.CloudCover >= 40 {
			t.Errorf("item %s has cloud cover %v", it.ID, *it.Properties.CloudCover)
		}
	}

	// intersects uses the geometry's bbox: same items as the bbox.
	q2 := search()
	q2.BBox = nil
	q2.Intersects = json.RawMessage(`{"type":"Polygon","coordinates":[[[10.2,45.1],[11.8,45.1],[11.8,46.9],[10.2,46.9],[10.2,45.1]]]}`)
	q2.Limit = 100
	if got := searchAll(t, s, tok, q2)[0]; len(got) != len(all) {
		t.Errorf("intersects found %d items, want %d", len(got), len(all))
	}
}

func TestCatalogBadRequests(t *testing.T) {
	t.Parallel()
	s, _, tok := start(t, Config{})
	for name, tc := range map[string]struct {
		mod  func(*sentinel.CatalogSearchRequest)
		want string
	}{
		"limit":    {func(q *sentinel.CatalogSearchRequest) { q.Limit = 101 }, "limit"},
		"bbox":     {func(q *sentinel.CatalogSearchRequest) { q.BBox = []float64{1, 2, 0, 3} }, "bbox"},
		"none":     {func(q *sentinel.CatalogSearchRequest) { q.BBox = nil }, "bbox or intersects"},
		"datetime": {func(q *sentinel.CatalogSearchRequest) { q.Datetime = "yesterday/today" }, "datetime"},
		"filter":   {func(q *sentinel.CatalogSearchRequest) { q.Filter = "platform = 'S2A'" }, "filter"},
	} {
		q := search()
		tc.mod(&q)
		r := post(t, s, CatalogSearchPath, tok, q)
		if r.status != http.StatusBadRequest || !strings.Contains(string(r.body), tc.want) {
			t.Errorf("%s: HTTP %d %s; want 400 naming %q", name, r.status, r.body, tc.want)
		}
	}
}

// tiffSize decodes a little-endian TIFF (checking its strips) and returns
// ImageWidth and ImageLength.
func tiffSize(t *testing.T, b []byte) (w, h uint32) {
	t.Helper()
	d := mustDecodeTIFF(t, b)
	return uint32(d.int(256)), uint32(d.int(257))
}

func TestProcessBody(t *testing.T) {
	t.Parallel()
	s, _, tok := start(t, Config{})
	req := processReq()
	r := post(t, s, ProcessPath, tok, req)
	wantStatus(t, r, http.StatusOK)
	wantHeader(t, r, "Content-Type", "image/tiff")
	if !bytes.Equal(r.body, ProcessBody(req, "default")) {
		t.Fatal("served bytes differ from ProcessBody")
	}
	if w, h := tiffSize(t, r.body); w != 512 || h != 512 { // processReq asks 512x512
		t.Errorf("image is %dx%d, want 512x512", w, h)
	}
	r2 := post(t, s, "/process/v1", tok, req)
	if !bytes.Equal(r.body, r2.body) {
		t.Error("the same request gave different bytes")
	}
	other := processReq()
	other.Input.Bounds.BBox = []float64{13.1, 45.0, 13.2, 45.1}
	if bytes.Equal(ProcessBody(other, "default"), r.body) {
		t.Error("different requests gave the same bytes")
	}
	small := processReq()
	small.Output = sentinel.ProcessOutput{Width: 5, Height: 3}
	if w, h := tiffSize(t, ProcessBody(small, "default")); w != 5 || h != 3 {
		t.Errorf("5x3 request gave %dx%d", w, h)
	}
	if st := s.Stats(); st.Served[RequestKey(req)] != 2 || st.ProcessRequests != 2 {
		t.Errorf("stats = %+v", st)
	}
}

func TestProcessTar(t *testing.T) {
	t.Parallel()
	s, _, tok := start(t, Config{})
	req := processReq()
	req.Output.Responses = []sentinel.OutputResponse{
		{Identifier: "default", Format: sentinel.ResponseFormat{Type: "image/tiff"}},
		{Identifier: "mask", Format: sentinel.ResponseFormat{Type: "image/tiff"}},
	}
	r := post(t, s, ProcessPath, tok, req, "Accept", "application/tar")
	wantStatus(t, r, http.StatusOK)
	wantHeader(t, r, "Content-Type", "application/x-tar")
	// Accept: application/x-tar asks for the same, even for a single output.
	single := processReq()
	r1 := post(t, s, ProcessPath, tok, single, "Accept", "application/x-tar")
	wantStatus(t, r1, http.StatusOK)
	wantHeader(t, r1, "Content-Type", "application/x-tar")
	if h, err := tar.NewReader(bytes.NewReader(r1.body)).Next(); err != nil || h.Name != "default.tif" {
		t.Errorf("single-output tar: first entry %v, %v", h, err)
	}
	tr := tar.NewReader(bytes.NewReader(r.body))
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		id := strings.TrimSuffix(h.Name, ".tif")
		if !bytes.Equal(b, ProcessBody(req, id)) {
			t.Errorf("entry %s differs from ProcessBody", h.Name)
		}
		names = append(names, h.Name)
	}
	sort.Strings(names)
	if strings.Join(names, ",") != "default.tif,mask.tif" {
		t.Errorf("entries = %v", names)
	}
	if bytes.Equal(ProcessBody(req, "default"), ProcessBody(req, "mask")) {
		t.Error("two outputs have the same bytes")
	}
}

func TestProcessValidation(t *testing.T) {
	t.Parallel()
	s, _, tok := start(t, Config{Policies: []Policy{{Kind: KindRequests, Capacity: 100, Period: time.Minute}}})
	for name, tc := range map[string]struct {
		mod  func(*sentinel.ProcessRequest)
		want string
	}{
		"evalscript": {func(r *sentinel.ProcessRequest) { r.Evalscript = " " }, "evalscript"},
		"width":      {func(r *sentinel.ProcessRequest) { r.Output.Width = 2501 }, "output.width"},
		"height":     {func(r *sentinel.ProcessRequest) { r.Output.Height = 0 }, "output.height"},
		"both":       {func(r *sentinel.ProcessRequest) { r.Output.ResX = 10 }, "not both"},
		"size":       {func(r *sentinel.ProcessRequest) { r.Output = sentinel.ProcessOutput{} }, "output"},
		"resx":       {func(r *sentinel.ProcessRequest) { r.Output = sentinel.ProcessOutput{ResX: 1e-5, ResY: 1e-5} }, "output.resx"},
		"bbox":       {func(r *sentinel.ProcessRequest) { r.Input.Bounds.BBox = []float64{1, 2, 3} }, "input.bounds.bbox"},
		"minmax":     {func(r *sentinel.ProcessRequest) { r.Input.Bounds.BBox = []float64{3, 2, 1, 4} }, "input.bounds.bbox"},
		"data":       {func(r *sentinel.ProcessRequest) { r.Input.Data = nil }, "input.data"},
		"format": {func(r *sentinel.ProcessRequest) {
			r.Output.Responses = []sentinel.OutputResponse{{Identifier: "default", Format: sentinel.ResponseFormat{Type: "image/png"}}}
		}, "format.type"},
	} {
		req := processReq()
		tc.mod(&req)
		r := post(t, s, ProcessPath, tok, req)
		if r.status != http.StatusBadRequest || !strings.Contains(string(r.body), tc.want) {
			t.Errorf("%s: HTTP %d %s; want 400 naming %q", name, r.status, r.body, tc.want)
		}
	}
	ok := processReq()
	ok.Output = sentinel.ProcessOutput{ResX: 0.001, ResY: 0.001} // 100x100 px
	r := post(t, s, ProcessPath, tok, ok)
	wantStatus(t, r, http.StatusOK)
	wantHeader(t, r, "X-ProcessingUnits-Spent", "0.038147") // 100*100/262144
}

func TestProcessOrbitMosaickingCountsAcquisitions(t *testing.T) {
	t.Parallel()
	s, _, tok := start(t, Config{})
	req := processReq()
	req.Input.Bounds.BBox = []float64{10.2, 45.1, 10.4, 45.3} // one cell
	req.Evalscript = `//VERSION=3
function setup() { return { input: ["B04"], output: { bands: 1 }, mosaicking: "ORBIT" }; }
function evaluatePixel(samples) { return [samples[0].B04]; }`
	q := search()
	q.BBox = req.Input.Bounds.BBox
	q.Datetime = "2025-06-01T00:00:00Z/2025-06-30T00:00:00Z"
	q.Limit = 100
	n := len(searchAll(t, s, tok, q)[0])
	if n < 5 || n > 6 {
		t.Fatalf("catalog has %d acquisitions in 29 days, want 5 or 6", n)
	}
	if n != 6 {
		t.Fatalf("catalog has %d acquisitions of cell E010N45 in June 1-30 2025, want 6 (June 4, 9, 14, 19, 24, 29)", n)
	}
	r := post(t, s, ProcessPath, tok, req)
	wantStatus(t, r, http.StatusOK)
	wantHeader(t, r, "X-ProcessingUnits-Spent", "2") // 512x512: 1 area x 1/3 band x 6 samples
}

func TestFaults(t *testing.T) {
	t.Parallel()
	t.Run("503 not charged", func(t *testing.T) {
		t.Parallel()
		s, _, tok := start(t, Config{
			Policies:   []Policy{{Kind: KindRequests, Capacity: 10, Period: time.Minute}},
			Faults:     Faults{Error5xxRate: 1, Latency: time.Millisecond, LatencyJitter: time.Millisecond},
			HeaderMode: HeadersLegacy,
		})
		for range 3 {
			wantStatus(t, post(t, s, ProcessPath, tok, processReq()), http.StatusServiceUnavailable)
		}
		s.SetFaults(Faults{})
		r := post(t, s, ProcessPath, tok, processReq())
		wantStatus(t, r, http.StatusOK)
		wantHeader(t, r, "X-RateLimit-Remaining", "9.0")
		if st := s.Stats(); st.Faults5xx != 3 || st.PUSpent != 1 || st.RequestsByStatus[503] != 3 {
			t.Errorf("stats = %+v", st)
		}
	})
	t.Run("truncation", func(t *testing.T) {
		t.Parallel()
		s, _, tok := start(t, Config{Faults: Faults{TruncateRate: 1, Seed: 7}})
		for _, path := range []string{ProcessPath, CatalogSearchPath} {
			var body any = processReq()
			if path == CatalogSearchPath {
				body = search()
			}
			r := post(t, s, path, tok, body)
			wantStatus(t, r, http.StatusOK)
			if !errors.Is(r.err, io.ErrUnexpectedEOF) {
				t.Errorf("%s: read error %v, want io.ErrUnexpectedEOF", path, r.err)
			}
			if cl := r.header.Get("Content-Length"); cl == "" || cl == itoa(len(r.body)) {
				t.Errorf("%s: Content-Length %q with %d bytes read", path, cl, len(r.body))
			}
		}
		if st := s.Stats(); st.Truncated != 2 || st.PUSpent != 1 {
			t.Errorf("stats = %+v", st)
		}
	})
}

func TestNewHandlerServesWithoutStarting(t *testing.T) {
	t.Parallel()
	h := NewHandler(Config{})
	if h.URL() != "" {
		t.Errorf("URL = %q for an unstarted handler", h.URL())
	}
	h.Close()
	if st := h.Stats(); st.TokenRequests != 0 || st.Served == nil {
		t.Errorf("stats = %+v", st)
	}
}

func TestProcessUTMAndRecordedRequests(t *testing.T) {
	t.Parallel()
	s, _, tok := start(t, Config{MaxRecordedRequests: 2})
	req := processReq()
	req.Input.Bounds = sentinel.Bounds{
		BBox:       []float64{500000, 5000000, 505000, 5005000},
		Properties: sentinel.BoundsProperties{CRS: sentinel.CRSEPSGPrefix + "32633"},
	}
	req.Output = sentinel.ProcessOutput{ResX: 10, ResY: 10} // 500x500 px
	r := post(t, s, ProcessPath, tok, req)
	wantStatus(t, r, http.StatusOK)
	// 500*500/262144 area x 3/3 bands.
	wantHeader(t, r, "X-ProcessingUnits-Spent", "0.953674")
	if !bytes.Contains(r.body, []byte{0xaf, 0x87}) { // GeoKeyDirectory tag 34735
		t.Error("no GeoKeyDirectory tag in the GeoTIFF")
	}
	if !bytes.Contains(r.body, shorts(3072, 0, 1, 32633)) {
		t.Error("GeoKeyDirectory does not name EPSG:32633")
	}
	wantStatus(t, post(t, s, CatalogSearchPath, tok, search()), http.StatusOK)
	wantStatus(t, post(t, s, CatalogSearchPath, "", search()), http.StatusUnauthorized)
	rec := s.Requests()
	if len(rec) != 2 || rec[0].Path != CatalogSearchPath || rec[0].Status != 200 || rec[1].Status != 401 {
		t.Errorf("recorded = %+v, want the newest 2", rec)
	}
}
