package tasks_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"shfleet/jobs"
	"shfleet/tasks"
)

// TestBuildBatchRequestCOGAndDescription: --cog becomes output.cogOutput,
// absent without it; the description carries the job id (the key of the
// idempotent create); the grid and resolution go to the tiling-grid input.
func TestBuildBatchRequestCOGAndDescription(t *testing.T) {
	from := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	spec := jobs.Spec{ID: "01JOB", Grid: "utm-10km", Resolution: 20, Engine: jobs.EngineBatch, From: from, To: from.AddDate(0, 1, 0),
		Collection: "sentinel-2-l2a", Evalscript: "//VERSION=3\n", OutputURL: "s3://out?region=eu-central-1",
		Responses:   []jobs.Response{{Identifier: "default", Format: jobs.ResponseFormat{Type: "image/tiff"}}},
		AOIGeometry: json.RawMessage(`{"type":"Polygon","coordinates":[[[14.5,46],[14.52,46],[14.52,46.02],[14.5,46]]]}`)}
	for _, cog := range []bool{false, true} {
		spec.COG = cog
		req, err := tasks.BuildBatchRequest(spec)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(req)
		if got := strings.Contains(string(b), `"cogOutput":true`); got != cog {
			t.Errorf("COG %v: request %s; cogOutput true present %v", cog, b, got)
		}
		// utm-10km is Batch tiling grid 1.
		if req.Description != "shfleet job 01JOB" || req.Input.ID != 1 || req.Input.Resolution != 20 || req.Output.Delivery.S3.URL != "s3://out" {
			t.Errorf("request %s: want description \"shfleet job 01JOB\", grid 1 at 20 m, delivery s3://out", b)
		}
	}
}
