package sentinel

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

func TestLookupCollection(t *testing.T) {
	t.Parallel()
	cases := []struct {
		id                      string
		ok                      bool
		catalog, deployment     string
		cloud, timeless         bool
		orders                  string
		acceptsLeastCC, timeRng bool
	}{
		{"sentinel-2-l2a", true, "sentinel-2-l2a", DeploymentMain, true, false, "mostRecent,leastRecent,leastCC", true, true},
		{"sentinel-1-grd", true, "sentinel-1-grd", DeploymentMain, false, false, "mostRecent,leastRecent", false, true},
		{"dem", true, "", DeploymentMain, false, true, "", false, false},
		{"landsat-ot-l2", true, "landsat-ot-l2", DeploymentUSWest, true, false, "mostRecent,leastRecent,leastCC", true, true},
		{"modis", true, "modis", DeploymentUSWest, false, false, "mostRecent,leastRecent", false, true},
		{"byoc-1a2b", true, "byoc-1a2b", DeploymentMain, false, false, "mostRecent,leastRecent", false, true},
		{"batch-x", true, "batch-x", DeploymentMain, false, false, "mostRecent,leastRecent", false, true},
		{"byoc-", false, "", "", false, false, "", false, false},
		{"byoc-../x", false, "", "", false, false, "", false, false},
		{"sentinel-9", false, "", "", false, false, "", false, false},
	}
	for _, c := range cases {
		got, ok := LookupCollection(c.id)
		if ok != c.ok {
			t.Errorf("%s: ok %v, want %v", c.id, ok, c.ok)
			continue
		}
		if !ok {
			continue
		}
		if got.CatalogID != c.catalog || got.Deployment != c.deployment || got.CloudCover != c.cloud || got.Timeless() != c.timeless ||
			strings.Join(got.MosaickingOrders(), ",") != c.orders || got.AcceptsOrder(MosaickingLeastCC) != c.acceptsLeastCC || got.TimeRange != c.timeRng {
			t.Errorf("%s: got %+v (orders %v)", c.id, got, got.MosaickingOrders())
		}
	}
}

func TestCheckFiltersNamesTheFlag(t *testing.T) {
	t.Parallel()
	s1, _ := LookupCollection("sentinel-1-grd")
	if err := s1.CheckFilters(true, ""); err == nil || !strings.Contains(err.Error(), "--max-cloud") {
		t.Errorf("S1 with a cloud limit: %v", err)
	}
	if err := s1.CheckFilters(false, MosaickingLeastCC); err == nil || !strings.Contains(err.Error(), "--mosaicking") {
		t.Errorf("S1 with leastCC: %v", err)
	}
	s2, _ := LookupCollection("sentinel-2-l2a")
	if err := s2.CheckFilters(true, MosaickingLeastCC); err != nil {
		t.Errorf("S2 with both: %v", err)
	}
}

func TestValidateProcessRequestPerCollection(t *testing.T) {
	t.Parallel()
	cloud := 20.0
	req := func(typ string, f *DataFilter) ProcessRequest {
		return ProcessRequest{
			Input:      ProcessInput{Bounds: Bounds{BBox: []float64{13, 45, 13.1, 45.1}}, Data: []InputData{{Type: typ, DataFilter: f}}},
			Output:     ProcessOutput{Width: 10, Height: 10},
			Evalscript: "//VERSION=3\nfunction setup(){return {input:['B02'],output:{bands:1}}}\nfunction evaluatePixel(s){return [s.B02]}",
		}
	}
	tr := &TimeRange{From: time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2025, 6, 2, 0, 0, 0, 0, time.UTC)}
	cases := []struct {
		name, field string
		req         ProcessRequest
	}{
		{"S1 cloud", "input.data[0].dataFilter.maxCloudCoverage", req("sentinel-1-grd", &DataFilter{TimeRange: tr, MaxCloudCoverage: &cloud})},
		{"BYOC leastCC", "input.data[0].dataFilter.mosaickingOrder", req("byoc-abc", &DataFilter{TimeRange: tr, MosaickingOrder: MosaickingLeastCC})},
		{"DEM time range", "input.data[0].dataFilter.timeRange", req("dem", &DataFilter{TimeRange: tr})},
		{"S2 fine", "", req("sentinel-2-l2a", &DataFilter{TimeRange: tr, MaxCloudCoverage: &cloud, MosaickingOrder: MosaickingLeastCC})},
		{"DEM fine", "", req("dem", nil)},
	}
	for _, c := range cases {
		err := ValidateProcessRequest(c.req)
		if c.field == "" {
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.field) {
			t.Errorf("%s: got %v, want an error naming %s", c.name, err, c.field)
		}
	}
}

// TestDeploymentRouting sends a Landsat and a Sentinel-2 request and checks
// each reaches its own deployment (two real HTTP servers).
func TestDeploymentRouting(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	hits := map[string][]string{}
	serve := func(name string) *httptest.Server {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			hits[name] = append(hits[name], r.URL.Path)
			mu.Unlock()
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"type":"FeatureCollection","features":[],"context":{}}`))
		}))
		t.Cleanup(srv.Close)
		return srv
	}
	main, west := serve("main"), serve("uswest")
	c := NewClient(Config{BaseURL: main.URL, Deployments: map[string]string{DeploymentUSWest: west.URL + "/west"}}, staticToken("t"))
	ctx := context.Background()
	for _, coll := range []string{"landsat-ot-l2", "sentinel-2-l2a", "hls"} {
		if _, err := c.Catalog.SearchPage(ctx, CatalogSearchRequest{Collections: []string{coll}, BBox: []float64{13, 45, 14, 46}, Datetime: "2025-06-01T00:00:00Z/2025-06-02T00:00:00Z"}); err != nil {
			t.Fatalf("%s: %v", coll, err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(hits["uswest"], ",") != "/west/api/v1/catalog/1.0.0/search,/west/api/v1/catalog/1.0.0/search" || strings.Join(hits["main"], ",") != "/api/v1/catalog/1.0.0/search" {
		t.Fatalf("hits %v", hits)
	}
}

func TestDeploymentURL(t *testing.T) {
	t.Parallel()
	if u, err := (Config{}).DeploymentURL(DeploymentUSWest); err != nil || u != "https://services-uswest2.sentinel-hub.com" {
		t.Errorf("Sentinel Hub's uswest: %q %v", u, err)
	}
	_, err := (Config{BaseURL: CDSEBaseURL}).DeploymentURL(DeploymentUSWest)
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "Deployments" || !strings.Contains(err.Error(), "SH_USWEST_URL") {
		t.Errorf("CDSE has no uswest: %v", err)
	}
	if u, err := (Config{BaseURL: "http://x"}).DeploymentURL(""); err != nil || u != "http://x" {
		t.Errorf("main: %q %v", u, err)
	}
}

func TestJWTSubject(t *testing.T) {
	t.Parallel()
	enc := base64.RawURLEncoding
	tok := enc.EncodeToString([]byte(`{"alg":"none"}`)) + "." + enc.EncodeToString([]byte(`{"sub":"6f1c-user","exp":1}`)) + ".sig"
	if sub, ok := JWTSubject(tok); !ok || sub != "6f1c-user" {
		t.Errorf("got %q %v", sub, ok)
	}
	for _, bad := range []string{"", "opaque-token", "a.b.c", enc.EncodeToString([]byte(`{}`)) + "." + enc.EncodeToString([]byte(`{"sub":7}`)) + ".s"} {
		if sub, ok := JWTSubject(bad); ok {
			t.Errorf("%q: got %q", bad, sub)
		}
	}
}

// blockingSource is a token source whose Token never returns until released.
type blockingSource struct{ release chan struct{} }

func (b blockingSource) Token() (*oauth2.Token, error) {
	<-b.release
	return &oauth2.Token{AccessToken: "late"}, nil
}

// TestTokenFetchHonoursContext: a call whose context ends while the token source
// is still fetching returns at once with the context's error.
func TestTokenFetchHonoursContext(t *testing.T) {
	t.Parallel()
	src := blockingSource{release: make(chan struct{})}
	defer close(src.release)
	c := NewClient(Config{BaseURL: "http://127.0.0.1:1"}, src)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := c.Catalog.SearchPage(ctx, CatalogSearchRequest{Collections: []string{"sentinel-2-l2a"}, BBox: []float64{13, 45, 14, 46}, Datetime: "2025-06-01T00:00:00Z/2025-06-02T00:00:00Z"})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}
