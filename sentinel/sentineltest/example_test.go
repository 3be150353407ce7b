package sentineltest_test

import (
	"fmt"
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
