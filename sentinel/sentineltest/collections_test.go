package sentineltest

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"shfleet/sentinel"
)

func ptr[T any](v T) *T { return &v }

func TestProcessCollectionRules(t *testing.T) {
	t.Parallel()
	s, _, tok := start(t, Config{Policies: []Policy{{Kind: KindRequests, Capacity: 100, Period: time.Minute}}})
	inputs := func(typ string, f *sentinel.DataFilter) func(*sentinel.ProcessRequest) {
		return func(r *sentinel.ProcessRequest) { r.Input.Data = []sentinel.InputData{{Type: typ, DataFilter: f}} }
	}
	cloud := &sentinel.DataFilter{MaxCloudCoverage: ptr(20.0)}
	leastCC := &sentinel.DataFilter{MosaickingOrder: sentinel.MosaickingLeastCC}
	for _, tc := range []struct {
		name, path string
		mod        func(*sentinel.ProcessRequest)
		status     int
		want       string // in the message
	}{
		{"S2 cloud filter and leastCC", ProcessPath, inputs("sentinel-2-l2a", &sentinel.DataFilter{MaxCloudCoverage: ptr(20.0), MosaickingOrder: "leastCC"}), 200, ""},
		{"S1 maxCloudCoverage", ProcessPath, inputs("sentinel-1-grd", cloud), 400, "input.data[0].dataFilter.maxCloudCoverage: "},
		{"S1 leastCC", ProcessPath, inputs("sentinel-1-grd", leastCC), 400, "input.data[0].dataFilter.mosaickingOrder: leastCC"},
		{"S1 mostRecent", ProcessPath, inputs("sentinel-1-grd", &sentinel.DataFilter{MosaickingOrder: "mostRecent"}), 200, ""},
		{"BYOC maxCloudCoverage", ProcessPath, inputs("byoc-8f1e6c2a-0b7d-4a35-9c11-2d4e5f6a7b8c", cloud), 400, "maxCloudCoverage"},
		{"batch leastCC", ProcessPath, inputs("batch-9688cd56-6c70-4221-add8-a5821d0256a9", leastCC), 400, "leastCC"},
		{"BYOC plain", ProcessPath, inputs("byoc-8f1e6c2a-0b7d-4a35-9c11-2d4e5f6a7b8c", nil), 200, ""},
		{"DEM maxCloudCoverage", ProcessPath, inputs("dem", cloud), 400, "maxCloudCoverage"},
		{"DEM without time range", ProcessPath, inputs("dem", nil), 200, ""},
		{"DEM with any time range", ProcessPath, inputs("dem", &sentinel.DataFilter{TimeRange: &sentinel.TimeRange{
			From: time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC), To: time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC)}}), 200, ""},
		{"unknown collection", ProcessPath, inputs("sentinel-9", nil), 400, `input.data[0].type: unknown data collection "sentinel-9"`},
		{"bare byoc-", ProcessPath, inputs("byoc-", nil), 400, "input.data[0].type"},
		{"second input", ProcessPath, func(r *sentinel.ProcessRequest) {
			r.Input.Data = append(r.Input.Data, sentinel.InputData{Type: "sentinel-1-grd", DataFilter: cloud})
		}, 400, "input.data[1].dataFilter.maxCloudCoverage"},
		{"bad mosaickingOrder", ProcessPath, inputs("sentinel-2-l1c", &sentinel.DataFilter{MosaickingOrder: "newest"}), 400, "mosaickingOrder"},
		{"maxCloudCoverage above 100", ProcessPath, inputs("sentinel-2-l1c", &sentinel.DataFilter{MaxCloudCoverage: ptr(101.0)}), 400, "maxCloudCoverage"},
		// Deployments.
		{"Landsat on main", ProcessPath, inputs("landsat-ot-l2", nil), 400, `input.data[0].type: collection "landsat-ot-l2" is not available on this deployment`},
		{"Landsat on US West", USWestPrefix + ProcessPath, inputs("landsat-ot-l2", cloud), 200, ""},
		{"HLS on US West, alias path", USWestPrefix + "/process/v1", inputs("hls", leastCC), 200, ""},
		{"MODIS maxCloudCoverage", USWestPrefix + ProcessPath, inputs("modis", cloud), 400, "maxCloudCoverage"},
		{"MODIS on main", ProcessPath, inputs("modis", nil), 400, "not available on this deployment"},
		{"S2 on US West", USWestPrefix + ProcessPath, inputs("sentinel-2-l2a", nil), 400, "not available on this deployment"},
		{"DEM on US West", USWestPrefix + ProcessPath, inputs("dem", nil), 400, "not available on this deployment"},
	} {
		req := processReq()
		tc.mod(&req)
		r := post(t, s, tc.path, tok, req)
		var e apiError
		if r.status != 200 {
			if err := json.Unmarshal(r.body, &e); err != nil || e.Error.Code != "COMMON_BAD_PAYLOAD" {
				t.Errorf("%s: body %s is not the Process API's 400 (%v)", tc.name, r.body, err)
			}
		}
		if r.status != tc.status || !strings.Contains(e.Error.Message, tc.want) {
			t.Errorf("%s: HTTP %d %s; want %d with %q", tc.name, r.status, r.body, tc.status, tc.want)
		}
	}
	// Only the 200s were charged: 1 PU each (512x512, 3 bands).
	if st := s.Stats(); st.PUSpent != 7 || st.MaxWindowLoad["requests:PT1M"] != 7 {
		t.Errorf("PUSpent %v, requests admitted %v; want 7 and 7", st.PUSpent, st.MaxWindowLoad["requests:PT1M"])
	}
}

func TestCatalogCollectionRules(t *testing.T) {
	t.Parallel()
	s, _, tok := start(t, Config{})
	q := func(path string, mod func(*sentinel.CatalogSearchRequest)) reply {
		c := search()
		c.Limit = 100
		mod(&c)
		return post(t, s, path, tok, c)
	}
	// DEM has no catalog collection; unknown ones neither; Landsat is not on main.
	for name, tc := range map[string]struct {
		path, collection, body string
	}{
		"dem":            {CatalogSearchPath, "dem", `{"code":404,"description":"Collection not found: \"dem\" does not exist in the catalog (it is timeless: process it without searching)"}`},
		"unknown":        {CatalogSearchPath, "sentinel-9", ""},
		"Landsat, main":  {CatalogSearchPath, "landsat-ot-l1", `{"code":404,"description":"Collection not found: collection \"landsat-ot-l1\" is not available on this deployment, the main deployment (services.sentinel-hub.com); it is served on the US West deployment (/uswest, services-uswest2.sentinel-hub.com)"}`},
		"S2, US West":    {USWestPrefix + CatalogSearchPath, "sentinel-2-l2a", ""},
		"S1, US West":    {USWestPrefix + "/catalog/v1/search", "sentinel-1-grd", ""},
		"dem on US West": {USWestPrefix + CatalogSearchPath, "dem", ""},
	} {
		r := q(tc.path, func(c *sentinel.CatalogSearchRequest) { c.Collections = []string{tc.collection} })
		wantStatus(t, r, http.StatusNotFound)
		if tc.body != "" {
			wantBody(t, r, tc.body)
		} else if !strings.HasPrefix(string(r.body), `{"code":404,"description":"Collection not found: `) {
			t.Errorf("%s: body %s", name, r.body)
		}
	}

	items := func(r reply) []sentinel.CatalogItem {
		t.Helper()
		wantStatus(t, r, http.StatusOK)
		var page sentinel.CatalogSearchResponse
		if err := json.Unmarshal(r.body, &page); err != nil {
			t.Fatal(err)
		}
		return page.Features
	}
	// Sentinel-1 items have no eo:cloud_cover, and a cloud filter is refused.
	s1 := items(q(CatalogSearchPath, func(c *sentinel.CatalogSearchRequest) { c.Collections = []string{"sentinel-1-grd"} }))
	if len(s1) != 24 { // 4 cells x 6 acquisitions in June
		t.Errorf("%d Sentinel-1 items, want 24", len(s1))
	}
	for _, it := range s1 {
		if it.Properties.CloudCover != nil || !strings.HasPrefix(it.ID, "S1SIM_") {
			t.Errorf("Sentinel-1 item %s: cloud cover %v, want none and an S1SIM_ id", it.ID, it.Properties.CloudCover)
		}
	}
	r := q(CatalogSearchPath, func(c *sentinel.CatalogSearchRequest) {
		c.Collections = []string{"sentinel-1-grd"}
		c.Filter = "eo:cloud_cover < 30"
	})
	wantStatus(t, r, http.StatusBadRequest)
	wantBody(t, r, `{"code":400,"description":"filter: property eo:cloud_cover is not a queryable of collection \"sentinel-1-grd\" (it has no cloud cover); remove the filter"}`)

	// Landsat on US West: items with cloud cover; BYOC on main: without.
	ls := items(q(USWestPrefix+CatalogSearchPath, func(c *sentinel.CatalogSearchRequest) { c.Collections = []string{"landsat-ot-l2"} }))
	if len(ls) != 24 || ls[0].Properties.CloudCover == nil || !strings.HasPrefix(ls[0].ID, "LOTL2SIM_") {
		t.Errorf("Landsat: %d items, first %+v", len(ls), ls[0])
	}
	byoc := items(q(CatalogSearchPath, func(c *sentinel.CatalogSearchRequest) {
		c.Collections = []string{"byoc-8f1e6c2a-0b7d-4a35-9c11-2d4e5f6a7b8c"}
	}))
	if len(byoc) != 24 || byoc[0].Properties.CloudCover != nil {
		t.Errorf("BYOC: %d items, first %+v", len(byoc), byoc[0])
	}

	// "<=" keeps an item whose cloud cover equals the bound, "<" drops it.
	s2 := items(q(CatalogSearchPath, func(*sentinel.CatalogSearchRequest) {}))
	bound := *s2[0].Properties.CloudCover
	count := func(op string) (n int, has bool) {
		f := items(q(CatalogSearchPath, func(c *sentinel.CatalogSearchRequest) {
			c.Filter = "eo:cloud_cover " + op + " " + strconv.FormatFloat(bound, 'f', -1, 64)
		}))
		for _, it := range f {
			has = has || it.ID == s2[0].ID
		}
		return len(f), has
	}
	le, leHas := count("<=")
	lt, ltHas := count("<")
	if !leHas || ltHas || le != lt+1 {
		t.Errorf("bound %v: <= kept %d (first item %v), < kept %d (first item %v)", bound, le, leHas, lt, ltHas)
	}
}

func TestForbiddenCollections(t *testing.T) {
	t.Parallel()
	const byoc = "byoc-8f1e6c2a-0b7d-4a35-9c11-2d4e5f6a7b8c"
	s, _, tok := start(t, Config{
		ForbiddenCollections: []string{byoc, "sentinel-1-grd"},
		Policies:             []Policy{{Kind: KindRequests, Capacity: 100, Period: time.Minute}},
		MonthlyPU:            1.5,
	})
	req := processReq()
	req.Input.Data = []sentinel.InputData{{Type: "sentinel-2-l2a"}, {Type: "sentinel-1-grd"}}
	r := post(t, s, ProcessPath, tok, req)
	wantStatus(t, r, http.StatusForbidden)
	wantBody(t, r, `{"error":{"status":403,"reason":"Forbidden","message":"Insufficient permissions: this account may not access collection \"sentinel-1-grd\"; ask the collection's owner to share it, or use another account","code":"COMMON_INSUFFICIENT_PERMISSIONS"}}`)

	c := search()
	c.Collections = []string{byoc}
	r = post(t, s, CatalogSearchPath, tok, c)
	wantStatus(t, r, http.StatusForbidden)
	wantBody(t, r, `{"code":403,"description":"Insufficient permissions: this account may not access collection \"`+byoc+`\"; ask the collection's owner to share it, or use another account"}`)

	// The monthly quota is a 403 too, with the same code but the quota's text.
	wantStatus(t, post(t, s, ProcessPath, tok, processReq()), http.StatusOK) // 1 of 1.5 PU
	r = post(t, s, ProcessPath, tok, processReq())
	wantStatus(t, r, http.StatusForbidden)
	wantBody(t, r, `{"error":{"status":403,"reason":"Forbidden","message":"Your monthly processing units quota exceeded: this request needs 1 PU, 0.5 of 1.5 PU are left until the 1st of next month (UTC)","code":"COMMON_INSUFFICIENT_PERMISSIONS"}}`)

	st := s.Stats()
	if st.PermissionDenied != 2 || st.QuotaExceeded != 1 || st.PUSpent != 1 || st.MaxWindowLoad["requests:PT1M"] != 1 || st.RequestsByStatus[403] != 3 {
		t.Errorf("stats = %+v; want 2 denied, 1 over quota, only one request charged", st)
	}
}

func TestCatalogErrorShapes(t *testing.T) {
	t.Parallel()
	s, _, tok := start(t, Config{Policies: []Policy{{Kind: KindRequests, Capacity: 1, Period: time.Minute}}})
	bad := search()
	bad.Limit = 101
	r := post(t, s, CatalogSearchPath, tok, bad)
	wantStatus(t, r, http.StatusBadRequest)
	wantBody(t, r, `{"code":400,"description":"limit: must be between 1 and 100, got 101"}`)
	none := search()
	none.Collections = nil
	r = post(t, s, CatalogSearchPath, tok, none)
	wantStatus(t, r, http.StatusBadRequest)
	wantBody(t, r, `{"code":400,"description":"collections: name at least one collection, e.g. [\"sentinel-2-l2a\"]"}`)
	req, _ := http.NewRequest(http.MethodPost, s.URL()+CatalogSearchPath, strings.NewReader("{"))
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r = readReply(resp)
	wantStatus(t, r, http.StatusBadRequest)
	wantContains(t, r, `{"code":400,"description":"cannot parse the search body as JSON: `)
	// Bad requests are not rate limited: the one request unit is still there.
	wantStatus(t, post(t, s, CatalogSearchPath, tok, search()), http.StatusOK)
	r = post(t, s, CatalogSearchPath, tok, search())
	wantStatus(t, r, http.StatusTooManyRequests)
	wantHeader(t, r, "Retry-After", "60000")
	wantBody(t, r, `{"code":429,"description":"You have exceeded your rate limit"}`)
	// The Process API keeps its own shape for the same 429.
	r = post(t, s, ProcessPath, tok, processReq())
	wantStatus(t, r, http.StatusTooManyRequests)
	wantBody(t, r, `{"error":{"status":429,"reason":"Too Many Requests","message":"You have exceeded your rate limit","code":"RATE_LIMIT_EXCEEDED"}}`)
}

func TestDeploymentsAndClientConfig(t *testing.T) {
	t.Parallel()
	s, _, tok := start(t, Config{})
	cfg := s.ClientConfig()
	if cfg.BaseURL != s.URL() || cfg.TokenURL != s.URL()+TokenPath || len(cfg.Deployments) != 1 ||
		cfg.Deployments[sentinel.DeploymentUSWest] != s.URL()+"/uswest" {
		t.Errorf("ClientConfig = %+v", cfg)
	}
	// The token endpoint is at the root only.
	r := tokenRequestAt(t, s, USWestPrefix+TokenPath)
	wantStatus(t, r, http.StatusNotFound)
	// A token from the root works on both deployments.
	req := processReq()
	req.Input.Data = []sentinel.InputData{{Type: "landsat-ot-l1"}}
	wantStatus(t, post(t, s, USWestPrefix+ProcessPath, tok, req), http.StatusOK)
	wantStatus(t, post(t, s, USWestPrefix+ProcessPath, "", req), http.StatusUnauthorized)
	if rec := s.Requests(); len(rec) != 2 || rec[0].Path != "/uswest/api/v1/process" {
		t.Errorf("recorded %+v", rec)
	}
}

func tokenRequestAt(t *testing.T, s *Server, path string) reply {
	t.Helper()
	resp, err := http.PostForm(s.URL()+path, map[string][]string{
		"grant_type": {"client_credentials"}, "client_id": {DefaultClientID}, "client_secret": {DefaultClientSecret},
	})
	if err != nil {
		t.Fatal(err)
	}
	return readReply(resp)
}
