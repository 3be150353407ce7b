package sentinel

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"math"
	"net/http"
	"strconv"
)

// Catalog search limits and filter languages.
const (
	// MaxCatalogLimit is the largest page size the Catalog API accepts.
	MaxCatalogLimit = 100
	// DefaultCatalogLimit is the page size used when CatalogSearchRequest.Limit is 0:
	// the largest, so a search needs as few requests as possible.
	DefaultCatalogLimit = MaxCatalogLimit
	// FilterLangCQL2Text is CQL2 text, e.g. "eo:cloud_cover < 30" (the default when
	// a Filter is set).
	FilterLangCQL2Text = "cql2-text"
	// FilterLangCQL2JSON is CQL2 JSON.
	FilterLangCQL2JSON = "cql2-json"
)

// CatalogService is the Catalog API (a STAC item search).
type CatalogService struct {
	client *Client
}

// CloudCoverFilter returns a CQL2-text filter keeping items whose cloud cover is
// at most maxPercent (like the Process API's maxCloudCoverage), e.g.
// CloudCoverFilter(30) = "eo:cloud_cover <= 30". Use
// it with FilterLang [FilterLangCQL2Text].
func CloudCoverFilter(maxPercent float64) string {
	return "eo:cloud_cover <= " + strconv.FormatFloat(maxPercent, 'f', -1, 64)
}

// prepareSearch validates req and fills its defaults (Limit, FilterLang).
func prepareSearch(req CatalogSearchRequest) (CatalogSearchRequest, error) {
	switch {
	case req.Limit == 0:
		req.Limit = DefaultCatalogLimit
	case req.Limit < 1 || req.Limit > MaxCatalogLimit:
		return req, &FieldError{Field: "limit", Message: fmt.Sprintf("%d is outside 1..%d, the Catalog API's page size range", req.Limit, MaxCatalogLimit)}
	}
	if len(req.Collections) == 0 {
		return req, &FieldError{Field: "collections", Message: `empty; name at least one collection, e.g. "sentinel-2-l2a"`}
	}
	for i, c := range req.Collections {
		if c == "" {
			return req, &FieldError{Field: fmt.Sprintf("collections[%d]", i), Message: "empty collection name"}
		}
	}
	if len(req.BBox) > 0 && len(req.Intersects) > 0 {
		return req, &FieldError{Field: "bbox", Message: "set together with intersects; set only one of them"}
	}
	if len(req.BBox) > 0 {
		if err := checkBBox("bbox", req.BBox); err != nil {
			return req, err
		}
	}
	if req.Datetime == "" {
		return req, &FieldError{Field: "datetime", Message: `empty; give an RFC 3339 interval "from/to", e.g. "2024-06-01T00:00:00Z/2024-06-30T23:59:59Z"`}
	}
	if req.Filter != "" && req.FilterLang == "" {
		req.FilterLang = FilterLangCQL2Text
	}
	if req.FilterLang != "" && req.FilterLang != FilterLangCQL2Text && req.FilterLang != FilterLangCQL2JSON {
		return req, &FieldError{Field: "filter-lang", Message: fmt.Sprintf("%q is not %q or %q", req.FilterLang, FilterLangCQL2Text, FilterLangCQL2JSON)}
	}
	return req, nil
}

// checkBBox accepts 4 finite numbers with min < max on both axes.
func checkBBox(field string, b []float64) error {
	if len(b) != 4 {
		return &FieldError{Field: field, Message: fmt.Sprintf("has %d numbers; give 4: minX, minY, maxX, maxY", len(b))}
	}
	for i, v := range b {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return &FieldError{Field: fmt.Sprintf("%s[%d]", field, i), Message: "not a finite number"}
		}
	}
	if b[0] >= b[2] {
		return &FieldError{Field: field, Message: fmt.Sprintf("minX %g is not below maxX %g; the order is minX, minY, maxX, maxY", b[0], b[2])}
	}
	if b[1] >= b[3] {
		return &FieldError{Field: field, Message: fmt.Sprintf("minY %g is not below maxY %g; the order is minX, minY, maxX, maxY", b[1], b[3])}
	}
	return nil
}

// SearchPage fetches one page of a catalog search. To get the next page, send the
// same request with Next set to the answer's Context.Next; the last page has no
// Context.Next. Limit 0 means [DefaultCatalogLimit]; outside 1..100 it is a
// [*FieldError] naming "limit".
func (s *CatalogService) SearchPage(ctx context.Context, req CatalogSearchRequest) (*CatalogSearchResponse, error) {
	req, err := prepareSearch(req)
	if err != nil {
		return nil, fmt.Errorf("catalog search: %w", err)
	}
	page, err := s.page(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("catalog search: %w", err)
	}
	return page, nil
}

func (s *CatalogService) page(ctx context.Context, req CatalogSearchRequest) (*CatalogSearchResponse, error) {
	dep := DeploymentMain
	if len(req.Collections) > 0 {
		dep = deploymentOf(req.Collections[0])
	}
	resp, err := s.client.send(ctx, http.MethodPost, dep, s.client.cfg.APIPaths.CatalogSearch, req, "application/geo+json, application/json")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var page CatalogSearchResponse
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil {
		return nil, fmt.Errorf("decode page: %w", err)
	}
	return &page, nil
}

// Search returns every item matching req, fetching pages lazily: a page is
// requested only when the loop needs its first item, and breaking out of the loop
// stops fetching. Each next page is the same body with next = the previous page's
// context.next. An error is yielded once, as the last pair, with a zero item.
//
//	for item, err := range client.Catalog.Search(ctx, req) {
//		if err != nil { return err }
//		...
//	}
func (s *CatalogService) Search(ctx context.Context, req CatalogSearchRequest) iter.Seq2[CatalogItem, error] {
	return func(yield func(CatalogItem, error) bool) {
		for page, err := range s.Pages(ctx, req, nil) {
			if err != nil {
				yield(CatalogItem{}, err)
				return
			}
			for _, item := range page.Features {
				if !yield(item, nil) {
					return
				}
			}
		}
	}
}

// PageFunc fetches one page of a catalog search; [CatalogService.SearchPage]
// is one. A caller wraps it to do something around every request (a quota
// admission, re-sending after a 429).
type PageFunc func(ctx context.Context, req CatalogSearchRequest) (*CatalogSearchResponse, error)

// Pages yields every page of req in order, each fetched with fetch (nil: one
// plain request), lazily like Search. It stops after the last page (no
// context.next), at the first error (yielded once, with a nil page), and when a
// page repeats the previous page's pagination token, which would otherwise
// loop for ever.
func (s *CatalogService) Pages(ctx context.Context, req CatalogSearchRequest, fetch PageFunc) iter.Seq2[*CatalogSearchResponse, error] {
	if fetch == nil {
		fetch = s.page // req is prepared below
	}
	return func(yield func(*CatalogSearchResponse, error) bool) {
		req, err := prepareSearch(req)
		if err != nil {
			yield(nil, fmt.Errorf("catalog search: %w", err))
			return
		}
		var prevNext []byte
		for pageNo := 1; ; pageNo++ {
			if err := ctx.Err(); err != nil {
				yield(nil, err)
				return
			}
			page, err := fetch(ctx, req)
			if err != nil {
				yield(nil, fmt.Errorf("catalog search page %d: %w", pageNo, err))
				return
			}
			if !yield(page, nil) || page.Context.Next == nil {
				return
			}
			next, _ := json.Marshal(page.Context.Next)
			if prevNext != nil && bytes.Equal(next, prevNext) {
				yield(nil, fmt.Errorf("catalog search: page %d repeated the pagination token %s; stopping to avoid an endless loop", pageNo, next))
				return
			}
			prevNext = next
			req.Next = page.Context.Next
		}
	}
}
