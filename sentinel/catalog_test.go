package sentinel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// catalogPages serves items item-0..item-(n-1) in pages of the requested limit,
// with next = the offset of the following page (a number, as Sentinel Hub does),
// and records every request body.
type catalogPages struct {
	n      int
	mu     sync.Mutex
	bodies []CatalogSearchRequest
}

func (c *catalogPages) handle(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != ClassicCatalogSearchPath || r.Method != http.MethodPost {
		http.Error(w, "wrong path "+r.URL.Path, http.StatusNotFound)
		return
	}
	var req CatalogSearchRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	c.mu.Lock()
	c.bodies = append(c.bodies, req)
	c.mu.Unlock()
	offset := 0
	if req.Next != nil {
		offset = int(req.Next.(float64))
	}
	page := CatalogSearchResponse{Type: "FeatureCollection", Context: CatalogContext{Limit: req.Limit}}
	for i := offset; i < min(offset+req.Limit, c.n); i++ {
		cc := float64(i % 100)
		page.Features = append(page.Features, CatalogItem{Type: "Feature", ID: fmt.Sprintf("item-%d", i),
			Properties: CatalogProperties{Datetime: time.Date(2024, 6, 1+i%28, 10, 0, 0, 0, time.UTC), CloudCover: &cc}})
	}
	page.Context.Returned = len(page.Features)
	if offset+req.Limit < c.n {
		page.Context.Next = offset + req.Limit
	}
	w.Header().Set("Content-Type", "application/geo+json")
	_ = json.NewEncoder(w).Encode(page)
}

func (c *catalogPages) requests() []CatalogSearchRequest {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]CatalogSearchRequest(nil), c.bodies...)
}

func searchRequest(limit int) CatalogSearchRequest {
	return CatalogSearchRequest{
		Collections: []string{"sentinel-2-l2a"},
		BBox:        []float64{13, 45, 14, 46},
		Datetime:    "2024-06-01T00:00:00Z/2024-06-30T23:59:59Z",
		Filter:      CloudCoverFilter(30),
		Limit:       limit,
	}
}

func TestCatalogSearchPaginatesLazily(t *testing.T) {
	t.Parallel()
	pages := &catalogPages{n: 25}
	f, cfg := newFakeSH(t, pages.handle)
	c := NewClient(cfg, nil)
	ctx := context.Background()

	// Consume only the first page: exactly one request.
	seen := 0
	for item, err := range c.Catalog.Search(ctx, searchRequest(10)) {
		if err != nil {
			t.Fatal(err)
		}
		if item.ID != fmt.Sprintf("item-%d", seen) {
			t.Fatalf("item %d is %s", seen, item.ID)
		}
		seen++
		if seen == 10 {
			break
		}
	}
	if n := f.apiRequests.Load(); n != 1 {
		t.Fatalf("after consuming the first page: %d requests, want 1", n)
	}

	// The whole search: 3 pages (10 + 10 + 5).
	var ids []string
	for item, err := range c.Catalog.Search(ctx, searchRequest(10)) {
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, item.ID)
	}
	if len(ids) != 25 || ids[24] != "item-24" {
		t.Fatalf("got %d items, last %v", len(ids), ids[len(ids)-1:])
	}
	reqs := pages.requests()[1:]
	if len(reqs) != 3 {
		t.Fatalf("full search made %d requests, want 3", len(reqs))
	}
	for i, r := range reqs {
		wantNext := any(nil)
		if i > 0 {
			wantNext = float64(10 * i)
		}
		if r.Next != wantNext {
			t.Errorf("request %d next = %v, want %v", i, r.Next, wantNext)
		}
		if r.Limit != 10 || r.Filter != "eo:cloud_cover <= 30" || r.FilterLang != FilterLangCQL2Text || r.Datetime != reqs[0].Datetime || len(r.BBox) != 4 {
			t.Errorf("request %d body changed: %+v", i, r)
		}
	}
}

func TestCatalogSearchPage(t *testing.T) {
	t.Parallel()
	pages := &catalogPages{n: 150}
	_, cfg := newFakeSH(t, pages.handle)
	c := NewClient(cfg, nil)
	page, err := c.Catalog.SearchPage(context.Background(), searchRequest(0))
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Features) != DefaultCatalogLimit || page.Context.Next != float64(100) || page.Context.Returned != 100 {
		t.Fatalf("page: %d features, next %v", len(page.Features), page.Context.Next)
	}
	if got := pages.requests()[0].Limit; got != DefaultCatalogLimit {
		t.Errorf("limit 0 sent as %d, want %d", got, DefaultCatalogLimit)
	}
	if page.Features[3].Properties.CloudCover == nil || *page.Features[3].Properties.CloudCover != 3 {
		t.Errorf("cloud cover not decoded: %+v", page.Features[3].Properties)
	}
}

func TestCatalogSearchValidation(t *testing.T) {
	t.Parallel()
	f, cfg := newFakeSH(t, func(w http.ResponseWriter, r *http.Request) { t.Error("invalid request was sent") })
	c := NewClient(cfg, nil)
	tests := []struct {
		name  string
		mod   func(*CatalogSearchRequest)
		field string
	}{
		{"limit too big", func(r *CatalogSearchRequest) { r.Limit = 101 }, "limit"},
		{"limit negative", func(r *CatalogSearchRequest) { r.Limit = -1 }, "limit"},
		{"no collections", func(r *CatalogSearchRequest) { r.Collections = nil }, "collections"},
		{"empty collection", func(r *CatalogSearchRequest) { r.Collections = []string{""} }, "collections[0]"},
		{"bbox and intersects", func(r *CatalogSearchRequest) { r.Intersects = json.RawMessage(`{"type":"Point","coordinates":[1,2]}`) }, "bbox"},
		{"bbox inverted", func(r *CatalogSearchRequest) { r.BBox = []float64{14, 45, 13, 46} }, "bbox"},
		{"no datetime", func(r *CatalogSearchRequest) { r.Datetime = "" }, "datetime"},
		{"filter lang", func(r *CatalogSearchRequest) { r.FilterLang = "cql1" }, "filter-lang"},
	}
	for _, tt := range tests {
		req := searchRequest(10)
		tt.mod(&req)
		var err error
		for _, e := range c.Catalog.Search(context.Background(), req) {
			err = e
		}
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != tt.field {
			t.Errorf("%s: got %v, want a FieldError on %s", tt.name, err, tt.field)
		}
		if _, err := c.Catalog.SearchPage(context.Background(), req); !errors.As(err, &fe) || fe.Field != tt.field {
			t.Errorf("%s: SearchPage got %v", tt.name, err)
		}
	}
	if n := f.apiRequests.Load(); n != 0 {
		t.Errorf("%d requests sent", n)
	}
}

func TestCatalogSearchStopsOnRepeatedNext(t *testing.T) {
	t.Parallel()
	f, cfg := newFakeSH(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"type":"FeatureCollection","features":[{"type":"Feature","id":"a"}],"context":{"next":"same","limit":1,"returned":1}}`))
	})
	c := NewClient(cfg, nil)
	var items int
	var err error
	for _, e := range c.Catalog.Search(context.Background(), searchRequest(1)) {
		if e != nil {
			err = e
			break
		}
		items++
	}
	if err == nil || items != 2 || f.apiRequests.Load() != 2 {
		t.Fatalf("items %d, requests %d, err %v; want a loop error after 2 pages", items, f.apiRequests.Load(), err)
	}
}

// Pages with the caller's own fetch (as the catalog handler wraps every page in
// a quota admission): every page goes through it, and the repeated-token guard
// still stops the loop. By hand: the server always answers next "same", so
// page 1 sets the token, page 2 repeats it: 2 fetches, 2 requests, then the
// loop error.
func TestCatalogPagesThroughFetchStopsOnRepeatedNext(t *testing.T) {
	t.Parallel()
	f, cfg := newFakeSH(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"type":"FeatureCollection","features":[{"type":"Feature","id":"a"}],"context":{"next":"same","limit":1,"returned":1}}`))
	})
	c := NewClient(cfg, nil)
	fetches := 0
	fetch := func(ctx context.Context, req CatalogSearchRequest) (*CatalogSearchResponse, error) {
		fetches++
		return c.Catalog.SearchPage(ctx, req)
	}
	var pages int
	var err error
	for page, e := range c.Catalog.Pages(context.Background(), searchRequest(1), fetch) {
		if e != nil {
			err = e
			break
		}
		if len(page.Features) != 1 {
			t.Fatalf("page %d has %d features", pages, len(page.Features))
		}
		pages++
	}
	if err == nil || !strings.Contains(err.Error(), "repeated the pagination token") || pages != 2 || fetches != 2 || f.apiRequests.Load() != 2 {
		t.Fatalf("pages %d, fetches %d, requests %d, err %v; want a loop error after 2 pages", pages, fetches, f.apiRequests.Load(), err)
	}
}

func TestCatalogSearchCurrentPaths(t *testing.T) {
	t.Parallel()
	var path string
	_, cfg := newFakeSH(t, func(w http.ResponseWriter, r *http.Request) {
		path = r.URL.Path
		_, _ = w.Write([]byte(`{"type":"FeatureCollection","features":[],"context":{"limit":1,"returned":0}}`))
	})
	cfg.APIPaths = CurrentAPIPaths
	c := NewClient(cfg, nil)
	if _, err := c.Catalog.SearchPage(context.Background(), searchRequest(1)); err != nil {
		t.Fatal(err)
	}
	if path != CurrentCatalogSearchPath {
		t.Errorf("path %q", path)
	}
}

func TestCatalogSearchMalformedPage(t *testing.T) {
	t.Parallel()
	_, cfg := newFakeSH(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"type":"FeatureCollection","features":[`))
	})
	c := NewClient(cfg, nil)
	_, err := c.Catalog.SearchPage(context.Background(), searchRequest(1))
	if err == nil {
		t.Fatal("malformed page accepted")
	}
}

func TestCloudCoverFilter(t *testing.T) {
	t.Parallel()
	for in, want := range map[float64]string{30: "eo:cloud_cover <= 30", 12.5: "eo:cloud_cover <= 12.5", 0: "eo:cloud_cover <= 0", 100: "eo:cloud_cover <= 100"} {
		if got := CloudCoverFilter(in); got != want {
			t.Errorf("CloudCoverFilter(%g) = %q, want %q", in, got, want)
		}
	}
}
