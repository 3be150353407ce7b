package sentineltest_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"shfleet/sentinel/sentineltest"
)

// A simulated account with a token endpoint limit of 2 per minute: the third token
// request is refused with Retry-After in milliseconds.
func ExampleNewServer() {
	s := sentineltest.NewServer(sentineltest.Config{
		TokenRequestsPerMinute: 2,
		Policies:               []sentineltest.Policy{{Kind: sentineltest.KindRequests, Capacity: 300, Period: time.Minute}},
	})
	defer s.Close()
	cfg := s.ClientConfig()
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {cfg.ClientID}, "client_secret": {cfg.ClientSecret}}
	for range 3 {
		resp, err := http.PostForm(cfg.TokenURL, form)
		if err != nil {
			fmt.Println(err)
			return
		}
		resp.Body.Close()
		fmt.Println(resp.StatusCode, resp.Header.Get("Retry-After") != "")
	}
	st := s.Stats()
	fmt.Println("token requests:", st.TokenRequests, "issued:", st.TokensIssued)
	// Output:
	// 200 false
	// 200 false
	// 429 true
	// token requests: 3 issued: 2
}

// The account publishes its policies and what is left of them, as Sentinel Hub's
// rate-limit endpoints do; the user id is the token's sub claim.
func ExampleServer_rateLimitEndpoints() {
	s := sentineltest.NewServer(sentineltest.Config{
		Policies:  []sentineltest.Policy{{Kind: sentineltest.KindRequests, Capacity: 600, Period: time.Minute}},
		MonthlyPU: 30000,
	})
	defer s.Close()
	cfg := s.ClientConfig()
	resp, err := http.PostForm(cfg.TokenURL, url.Values{"grant_type": {"client_credentials"}, "client_id": {cfg.ClientID}, "client_secret": {cfg.ClientSecret}})
	if err != nil {
		fmt.Println(err)
		return
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	for _, path := range []string{
		sentineltest.RateLimitContractPath + "?userId=eq:" + s.UserID(),
		sentineltest.RateLimitStatisticsPath + s.UserID(),
	} {
		req, _ := http.NewRequest(http.MethodGet, s.URL()+path, nil)
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			fmt.Println(err)
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Println(resp.StatusCode, string(body))
	}
	// Output:
	// 200 {"data":[{"type":{"name":"REQUESTS"},"policies":[{"capacity":600,"samplingPeriod":"PT1M","nanosBetweenRefills":100000000}]},{"type":{"name":"PROCESSING_UNITS"},"policies":[{"capacity":30000,"samplingPeriod":"PT744H","nanosBetweenRefills":89280000000}]}]}
	// 200 {"data":{"PROCESSING_UNITS":{"PT744H":30000},"REQUESTS":{"PT1M":600}}}
}
