package ops_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"

	"shfleet/internal/redistest"
	"shfleet/ops"
)

// A worker process serves its operations endpoints next to the queue; here
// without a worker, so the token state comes from Redis only.
func ExampleNewHandler() {
	rs, err := redistest.StartServer(redistest.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer rs.Stop()
	rdb := rs.Client()
	defer rdb.Close()

	m := ops.NewMetrics() // pass m.Hooks() in worker.Config.Hooks
	h, err := ops.NewHandler(ops.Config{Redis: rdb, Metrics: m, Account: "my-client-id"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer h.Close()
	srv := httptest.NewServer(h) // ops.Serve(ctx, ":8080", h) in a real process
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/healthz")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	var health ops.Health
	_ = json.NewDecoder(resp.Body).Decode(&health)
	fmt.Println(resp.StatusCode, health.Redis, health.Token.State)
	// Output: 200 ok missing
}
