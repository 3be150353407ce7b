package sentinel_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"

	"golang.org/x/oauth2"

	"shfleet/sentinel"
)

func ExampleCloudCoverFilter() {
	req := sentinel.CatalogSearchRequest{
		Collections: []string{"sentinel-2-l2a"},
		Datetime:    "2024-06-01T00:00:00Z/2024-06-30T23:59:59Z",
		Filter:      sentinel.CloudCoverFilter(30),
		FilterLang:  sentinel.FilterLangCQL2Text,
	}
	fmt.Println(req.Filter)
	// Output: eo:cloud_cover <= 30
}

func ExampleEstimateRequestPU() {
	req := sentinel.ProcessRequest{
		Input: sentinel.ProcessInput{
			Bounds: sentinel.Bounds{BBox: []float64{13.0, 45.0, 13.1, 45.1}},
			Data:   []sentinel.InputData{{Type: "sentinel-2-l2a"}},
		},
		Output: sentinel.ProcessOutput{Width: 2000, Height: 2000},
		Evalscript: `//VERSION=3
function setup() {
  return { input: ["B04", "B08", "dataMask"], output: { bands: 1, sampleType: "FLOAT32" } };
}`,
	}
	if err := sentinel.ValidateProcessRequest(req); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%.3f PU\n", sentinel.EstimateRequestPU(req, 1))
	// Output: 20.345 PU
}

func ExampleValidateProcessRequest() {
	req := sentinel.ProcessRequest{
		Input: sentinel.ProcessInput{
			Bounds: sentinel.Bounds{BBox: []float64{13.0, 45.0, 13.1, 45.1}},
			Data:   []sentinel.InputData{{Type: "sentinel-2-l2a"}},
		},
		Output:     sentinel.ProcessOutput{Width: 3000, Height: 2000},
		Evalscript: "//VERSION=3 ...",
	}
	err := sentinel.ValidateProcessRequest(req)
	var fe *sentinel.FieldError
	if errors.As(err, &fe) {
		fmt.Println(fe.Field)
	}
	fmt.Println(err)
	// Output:
	// output.width
	// output.width: 3000 exceeds the Process API limit of 2500 px; lower the resolution or split the tile
}

func ExampleParseRateLimitHeaders() {
	h := http.Header{}
	h.Set("Retry-After", "0")
	h.Set("X-ProcessingUnits-Retry-After", "593")
	h.Set("X-RateLimit-ViolatedPolicy", `{"samplingPeriod": "PT1M", "capacity": 1000}`)
	e := sentinel.ParseRateLimitHeaders(h)
	fmt.Println(e.Policy.Kind(), e.Wait())
	fmt.Println(e)
	// Output:
	// pu 593ms
	// rate limited (HTTP 429): violated policy 1000 pu per PT1M; retry after 593ms
}

// A catalog search ranges over every matching item; pages are fetched as the loop
// needs them.
func ExampleCatalogService_Search() {
	// A stand-in for Sentinel Hub serving two pages.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req sentinel.CatalogSearchRequest
		_ = json.NewDecoder(r.Body).Decode(&req)
		if req.Next == nil {
			fmt.Fprint(w, `{"type":"FeatureCollection","features":[{"id":"S2A_1"},{"id":"S2B_2"}],"context":{"next":2,"limit":2,"returned":2}}`)
			return
		}
		fmt.Fprint(w, `{"type":"FeatureCollection","features":[{"id":"S2A_3"}],"context":{"limit":2,"returned":1}}`)
	}))
	defer srv.Close()

	client := sentinel.NewClient(sentinel.Config{BaseURL: srv.URL}, oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "token"}))
	req := sentinel.CatalogSearchRequest{
		Collections: []string{"sentinel-2-l2a"},
		BBox:        []float64{13, 45, 14, 46},
		Datetime:    "2024-06-01T00:00:00Z/2024-06-30T23:59:59Z",
		Filter:      sentinel.CloudCoverFilter(30),
		Limit:       2,
	}
	for item, err := range client.Catalog.Search(context.Background(), req) {
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(item.ID)
	}
	// Output:
	// S2A_1
	// S2B_2
	// S2A_3
}

// A process request streams its answer: copy the body where it belongs, then
// settle the PU the server charged.
func ExampleProcessService_Do() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", r.Header.Get("Accept"))
		w.Header().Set("X-ProcessingUnits-Spent", "1.0")
		fmt.Fprint(w, "II*\x00 pretend GeoTIFF")
	}))
	defer srv.Close()

	client := sentinel.NewClient(sentinel.Config{BaseURL: srv.URL}, oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "token"}))
	req := sentinel.ProcessRequest{
		Input: sentinel.ProcessInput{
			Bounds: sentinel.Bounds{BBox: []float64{13.0, 45.0, 13.1, 45.1}},
			Data:   []sentinel.InputData{{Type: "sentinel-2-l2a"}},
		},
		Output: sentinel.ProcessOutput{Width: 512, Height: 512, Responses: []sentinel.OutputResponse{
			{Identifier: "default", Format: sentinel.ResponseFormat{Type: "image/tiff"}},
		}},
		Evalscript: `//VERSION=3
function setup() { return { input: ["B04", "B03", "B02"], output: { bands: 3 } }; }`,
	}
	resp, err := client.Process.Do(context.Background(), req)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Close()
	n, err := io.Copy(io.Discard, resp.Body) // a file or blob writer in real use
	if err != nil {
		fmt.Println(err) // a cut-short body is io.ErrUnexpectedEOF, never a silent success
		return
	}
	fmt.Printf("%s, %d bytes, %.1f PU (estimated %.1f)\n", resp.ContentType, n, resp.PUSpent, sentinel.EstimateRequestPU(req, 1))
	// Output: image/tiff, 20 bytes, 1.0 PU (estimated 1.0)
}
