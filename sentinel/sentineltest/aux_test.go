package sentineltest

import (
	"net/http"
	"testing"
	"time"
)

// get sends a GET with the token ("" for none).
func get(t *testing.T, s *Server, path, token string) reply {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.URL()+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return readReply(resp)
}

// account is the example account of the rate-limit endpoints: 600 requests and
// 300 PU a minute, 30000 PU a month.
func account() Config {
	return Config{
		Policies: []Policy{
			{Kind: KindRequests, Capacity: 600, Period: time.Minute},
			{Kind: KindPU, Capacity: 300, Period: time.Minute},
		},
		MonthlyPU: 30000,
	}
}

func TestRateLimitContract(t *testing.T) {
	t.Parallel()
	s, _, tok := start(t, account())
	r := get(t, s, RateLimitContractPath+"?userId=eq:"+DefaultUserID, tok)
	wantStatus(t, r, http.StatusOK)
	wantHeader(t, r, "Content-Type", "application/json")
	// nanosBetweenRefills by hand: 60e9/600 = 1e8, 60e9/300 = 2e8,
	// 744 h = 2678400e9 ns / 30000 = 89280000000.
	wantBody(t, r, `{"data":[{"type":{"name":"REQUESTS"},"policies":[{"capacity":600,"samplingPeriod":"PT1M","nanosBetweenRefills":100000000}]},`+
		`{"type":{"name":"PROCESSING_UNITS"},"policies":[{"capacity":300,"samplingPeriod":"PT1M","nanosBetweenRefills":200000000},`+
		`{"capacity":30000,"samplingPeriod":"PT744H","nanosBetweenRefills":89280000000}]}]}`)

	// The same account on the US West deployment; another sampling period.
	s.SetPolicies([]Policy{{Kind: KindPU, Capacity: 7, Period: 24 * time.Hour}})
	s.SetMonthlyPU(0)
	r = get(t, s, USWestPrefix+RateLimitContractPath+"?userId=eq:"+DefaultUserID, tok)
	wantStatus(t, r, http.StatusOK)
	// 86400e9 / 7 = 12342857142857.14 -> 12342857142857.
	wantBody(t, r, `{"data":[{"type":{"name":"PROCESSING_UNITS"},"policies":[{"capacity":7,"samplingPeriod":"PT24H","nanosBetweenRefills":12342857142857}]}]}`)

	unlimited, _, tok2 := start(t, Config{})
	r = get(t, unlimited, RateLimitContractPath+"?userId=eq:"+DefaultUserID, tok2)
	wantStatus(t, r, http.StatusOK)
	wantBody(t, r, `{"data":[]}`)
}

func TestRateLimitTokenCounts(t *testing.T) {
	t.Parallel()
	cfg := account()
	cfg.HeaderMode = HeadersNone // the endpoint works whatever the headers
	s, clk, tok := start(t, cfg)
	path := RateLimitStatisticsPath + DefaultUserID
	r := get(t, s, path, tok)
	wantStatus(t, r, http.StatusOK)
	wantBody(t, r, `{"data":{"PROCESSING_UNITS":{"PT1M":300,"PT744H":30000},"REQUESTS":{"PT1M":600}}}`)

	// One 1-PU process request and one catalog search: 2 requests and 1 PU spent.
	wantStatus(t, post(t, s, ProcessPath, tok, processReq()), http.StatusOK)
	wantStatus(t, post(t, s, CatalogSearchPath, tok, search()), http.StatusOK)
	// A 256x256 one-band request: 0.25 x 1/3 = 0.083333 PU.
	small := processReq()
	small.Output.Width, small.Output.Height = 256, 256
	small.Evalscript = `//VERSION=3
function setup() { return { input: ["B04"], output: { bands: 1 } }; }`
	wantStatus(t, post(t, s, ProcessPath, tok, small), http.StatusOK)
	r = get(t, s, path, tok)
	wantStatus(t, r, http.StatusOK)
	// 600-3 = 597 requests; 300-1-1/12 = 298.916667 PU (6 decimals); the month
	// 30000-1.083333 = 29998.916667.
	wantBody(t, r, `{"data":{"PROCESSING_UNITS":{"PT1M":298.916667,"PT744H":29998.916667},"REQUESTS":{"PT1M":597}}}`)

	// 0.1 s later: +1 request (10 per second) and +0.5 PU (5 per second); the
	// month does not refill.
	clk.Advance(100 * time.Millisecond)
	r = get(t, s, path, tok)
	wantBody(t, r, `{"data":{"PROCESSING_UNITS":{"PT1M":299.416667,"PT744H":29998.916667},"REQUESTS":{"PT1M":598}}}`)
	// The aux calls were neither limited nor charged.
	st := s.Stats()
	if st.AuxRequests != 3 || st.ProcessRequests != 2 || st.CatalogRequests != 1 || st.MaxWindowLoad["requests:PT1M"] != 3 {
		t.Errorf("stats = %+v; want 3 aux requests and 3 admitted API requests", st)
	}
}

func TestRateLimitEndpointsAreFreeAndGuarded(t *testing.T) {
	t.Parallel()
	s, _, tok := start(t, Config{Policies: []Policy{{Kind: KindRequests, Capacity: 1, Period: time.Hour}}})
	wantStatus(t, post(t, s, CatalogSearchPath, tok, search()), http.StatusOK)
	wantStatus(t, post(t, s, CatalogSearchPath, tok, search()), http.StatusTooManyRequests)
	// The bucket is empty, yet the endpoints answer, and do not take from it.
	for range 3 {
		r := get(t, s, RateLimitStatisticsPath+DefaultUserID, tok)
		wantStatus(t, r, http.StatusOK)
		wantBody(t, r, `{"data":{"REQUESTS":{"PT1H":0}}}`)
	}
	contract := RateLimitContractPath + "?userId=eq:" + DefaultUserID
	for name, tc := range map[string]struct {
		path, token string
		status      int
		body        string
	}{
		"no token":       {contract, "", 401, `{"error":{"status":401,"reason":"Unauthorized","message":"Token is missing, invalid, expired or revoked: get a new one from the token endpoint","code":"COMMON_UNAUTHORIZED"}}`},
		"forged token":   {RateLimitStatisticsPath + DefaultUserID, "a.b.c", 401, ""},
		"other user":     {RateLimitStatisticsPath + "someone-else", tok, 403, `{"error":{"status":403,"reason":"Forbidden","message":"Insufficient permissions: user \"` + DefaultUserID + `\" may not read the rate limits of user \"someone-else\"; use the sub claim of your own access token","code":"COMMON_INSUFFICIENT_PERMISSIONS"}}`},
		"other user id":  {RateLimitContractPath + "?userId=eq:" + DefaultClientID, tok, 403, ""},
		"no userId":      {RateLimitContractPath, tok, 400, ""},
		"userId not eq:": {RateLimitContractPath + "?userId=" + DefaultUserID, tok, 400, ""},
	} {
		r := get(t, s, tc.path, tc.token)
		if r.status != tc.status {
			t.Errorf("%s: HTTP %d %s, want %d", name, r.status, r.body, tc.status)
		}
		if tc.body != "" {
			wantBody(t, r, tc.body)
		}
	}
	st := s.Stats()
	if st.AuxRequests != 9 || st.Unauthorized != 2 || st.RateLimited != 1 || st.RequestsByStatus[401] != 0 {
		t.Errorf("stats = %+v; want 9 aux requests, 2 of them 401, not in RequestsByStatus", st)
	}
}

func TestNoRateLimitAPI(t *testing.T) {
	t.Parallel()
	cfg := account()
	cfg.NoRateLimitAPI = true
	s, _, tok := start(t, cfg)
	for _, path := range []string{
		RateLimitContractPath + "?userId=eq:" + DefaultUserID,
		RateLimitStatisticsPath + DefaultUserID,
		USWestPrefix + RateLimitStatisticsPath + DefaultUserID,
	} {
		r := get(t, s, path, tok)
		wantStatus(t, r, http.StatusNotFound)
		wantContains(t, r, `"code":"COMMON_NOT_FOUND"`)
	}
	if st := s.Stats(); st.AuxRequests != 3 {
		t.Errorf("AuxRequests = %d, want 3", st.AuxRequests)
	}
}

func TestExternalLoad(t *testing.T) {
	t.Parallel()
	s, clk, tok := start(t, Config{
		Policies:     []Policy{{Kind: KindRequests, Capacity: 10, Period: time.Minute}, {Kind: KindPU, Capacity: 100, Period: time.Minute}},
		ExternalLoad: 0.5,
		TokenTTL:     24 * time.Hour,
	})
	if n := drain(t, s, tok, 50); n != 10 {
		t.Fatalf("a full bucket admitted %d, want 10 (it starts full)", n)
	}
	// Half a minute refills 5 requests; the other client takes half: 2.5 left for us.
	clk.Advance(30 * time.Second)
	if n := drain(t, s, tok, 50); n != 2 {
		t.Fatalf("after 30 s admitted %d, want 2 (2.5 units)", n)
	}
	// 0.5 unit left, 0.5 missing, at 10/min x (1-0.5) = 5/min: 6 s.
	r := post(t, s, CatalogSearchPath, tok, search())
	wantStatus(t, r, http.StatusTooManyRequests)
	wantHeader(t, r, "Retry-After", "6000")
	wantBody(t, get(t, s, RateLimitStatisticsPath+DefaultUserID, tok), `{"data":{"PROCESSING_UNITS":{"PT1M":100},"REQUESTS":{"PT1M":0.5}}}`)
	st := s.Stats()
	// In 30 s the other client took half of 5 requests and half of 50 PU.
	if st.ExternalUnits["requests:PT1M"] != 2.5 || st.ExternalUnits["pu:PT1M"] != 25 {
		t.Errorf("ExternalUnits = %v, want requests 2.5 and pu 25", st.ExternalUnits)
	}

	// The other client stops: 30 s refill 5 for us, on top of 0.5.
	s.SetExternalLoad(0)
	clk.Advance(30 * time.Second)
	if n := drain(t, s, tok, 50); n != 5 {
		t.Fatalf("without the other client admitted %d, want 5", n)
	}
	if got := s.Stats().ExternalUnits["requests:PT1M"]; got != 2.5 {
		t.Errorf("ExternalUnits after it stopped = %v, want still 2.5", got)
	}
	// It takes everything: nothing refills, and the wait is one period.
	s.SetExternalLoad(1)
	clk.Advance(time.Hour)
	r = post(t, s, CatalogSearchPath, tok, search())
	wantStatus(t, r, http.StatusTooManyRequests)
	wantHeader(t, r, "Retry-After", "60000")
	// 0.5 left before (5.5 - 5); an hour at 10/min all to the other client: 600 more.
	if got := s.Stats().ExternalUnits["requests:PT1M"]; got != 602.5 {
		t.Errorf("ExternalUnits = %v, want 602.5", got)
	}
}

func TestInvalidConfigPanics(t *testing.T) {
	t.Parallel()
	for name, cfg := range map[string]Config{
		"external load": {ExternalLoad: 1.5},
		"monthly":       {MonthlyPU: -1},
		"policy":        {Policies: []Policy{{Kind: "bytes", Capacity: 1, Period: time.Second}}},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: NewHandler did not panic", name)
				}
			}()
			NewHandler(cfg)
		}()
	}
	defer func() {
		if recover() == nil {
			t.Error("SetExternalLoad(-0.1) did not panic")
		}
	}()
	NewHandler(Config{}).SetExternalLoad(-0.1)
}
