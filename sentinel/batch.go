package sentinel

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"time"
)

// BatchService is the Batch Processing API v2 (enterprise accounts only): one
// asynchronous request processes a whole AOI on one of the service's tiling
// grids and delivers the tiles' GeoTIFFs to an S3 bucket. Every call is one HTTP
// request with the client's token; the caller admits it with the fleet's limiter.
type BatchService struct {
	client *Client
}

// Batch request statuses, as BatchV2ProcessTask.status names them.
const (
	BatchCreated      = "CREATED"
	BatchAnalysing    = "ANALYSING"
	BatchAnalysisDone = "ANALYSIS_DONE"
	BatchProcessing   = "PROCESSING"
	BatchDone         = "DONE"
	BatchFailed       = "FAILED"
	BatchStopped      = "STOPPED"
)

// Reasons of a STOPPED batch request (BatchV2ProcessTask.stoppedStatusReason).
const (
	BatchStoppedOutOfPU     = "OUT_OF_PU"
	BatchStoppedUserAction  = "USER_ACTION"
	BatchStoppedUnhealthy   = "UNHEALTHY"
	BatchInputTilingGrid    = "tiling-grid"
	BatchOutputRaster       = "raster"
	BatchDefaultTileSubpath = "<requestId>/<tileName>/<outputId>.tif"
)

// BatchRequest is the body of POST .../batch/v2/process (schema
// BatchV2ProcessRequest) with a tiling-grid input and a raster output.
type BatchRequest struct {
	ProcessRequest ProcessRequest `json:"processRequest"`
	Input          BatchInput     `json:"input"`
	Output         BatchOutput    `json:"output"`
	Description    string         `json:"description,omitempty"`
}

// BatchInput is a BatchV2TilingGridInput: the grid's id and the output
// resolution in the grid's units.
type BatchInput struct {
	// Type is [BatchInputTilingGrid].
	Type       string  `json:"type"`
	ID         int     `json:"id"`
	Resolution float64 `json:"resolution"`
	BufferX    int     `json:"bufferX,omitempty"`
	BufferY    int     `json:"bufferY,omitempty"`
}

// BatchOutput is a BatchV2RasterOutput.
type BatchOutput struct {
	// Type is [BatchOutputRaster].
	Type      string        `json:"type"`
	Delivery  BatchDelivery `json:"delivery"`
	Overwrite bool          `json:"overwrite,omitempty"`
	// SkipExisting skips tiles whose outputs all exist.
	SkipExisting bool `json:"skipExisting,omitempty"`
	// CogOutput writes Cloud Optimized GeoTIFFs.
	CogOutput bool `json:"cogOutput,omitempty"`
}

// BatchDelivery is an ObjectStorageInfoV2 with an S3 bucket. No credentials are
// ever sent: the bucket's policy grants Sentinel Hub access.
type BatchDelivery struct {
	S3 BatchS3 `json:"s3"`
}

// BatchS3 is an S3BucketInfo without credentials.
type BatchS3 struct {
	// URL is s3://bucket/prefix (results go to <prefix>/<requestId>/<tileName>/<outputId>.tif)
	// or a template with <tileName>.
	URL    string `json:"url"`
	Region string `json:"region,omitempty"`
}

// BatchTask is a batch request as the service reports it (BatchV2ProcessTask).
type BatchTask struct {
	ID                   string          `json:"id"`
	Request              json.RawMessage `json:"request,omitempty"`
	Status               string          `json:"status"`
	Error                string          `json:"error,omitempty"`
	UserAction           string          `json:"userAction,omitempty"`
	UserActionUpdated    time.Time       `json:"userActionUpdated,omitzero"`
	Created              time.Time       `json:"created,omitzero"`
	LastUpdated          time.Time       `json:"lastUpdated,omitzero"`
	CompletionPercentage float64         `json:"completionPercentage"`
	CostPU               float64         `json:"costPU"`
	StoppedStatusReason  string          `json:"stoppedStatusReason,omitempty"`
}

// Description is the description of the request the service echoes back
// ("" when it has none or the request is not readable).
func (t BatchTask) Description() string {
	var r struct {
		Description string `json:"description"`
	}
	_ = json.Unmarshal(t.Request, &r)
	return r.Description
}

// Final reports whether the request will not move without a user action.
func (t BatchTask) Final() bool {
	switch t.Status {
	case BatchDone, BatchFailed, BatchStopped, BatchAnalysisDone:
		return true
	}
	return false
}

// TilingGrid is one BatchV2TilingGridDescriptor.
type TilingGrid struct {
	ID         int                  `json:"id"`
	Name       string               `json:"name"`
	Properties TilingGridProperties `json:"properties"`
}

// TilingGridProperties are a grid's tile size, resolutions and unit.
type TilingGridProperties struct {
	TileWidth   float64   `json:"tileWidth"`
	TileHeight  float64   `json:"tileHeight"`
	Resolutions []float64 `json:"resolutions"`
	// Unit is "METRE" or "DEGREE".
	Unit string `json:"unit"`
}

var uuidPattern = regexp.MustCompile(`^[0-9a-fA-F-]{1,64}$`)

func (s *BatchService) path(suffix string) string { return s.client.cfg.APIPaths.Batch + suffix }

func (s *BatchService) taskPath(id, action string) (string, error) {
	if !uuidPattern.MatchString(id) {
		return "", fmt.Errorf("batch request id %q is not a UUID", id)
	}
	p := s.path("/process/" + url.PathEscape(id))
	if action != "" {
		p += "/" + action
	}
	return p, nil
}

// deploymentOfBatch is the deployment serving the request's first collection.
func deploymentOfBatch(req BatchRequest) string {
	if len(req.ProcessRequest.Input.Data) > 0 {
		return deploymentOf(req.ProcessRequest.Input.Data[0].Type)
	}
	return DeploymentMain
}

func decodeJSON[T any](resp *http.Response, what string) (T, error) {
	var v T
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return v, fmt.Errorf("%s: read answer: %w", what, err)
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return v, fmt.Errorf("%s: answer is not the expected JSON: %w", what, err)
	}
	return v, nil
}

// Create submits a new batch request (status CREATED) on the deployment of its
// first collection. A 403 is a [*ForbiddenError]: an account without Batch
// Processing gets one.
func (s *BatchService) Create(ctx context.Context, req BatchRequest) (BatchTask, error) {
	if req.Input.Type == "" {
		req.Input.Type = BatchInputTilingGrid
	}
	if req.Output.Type == "" {
		req.Output.Type = BatchOutputRaster
	}
	resp, err := s.client.send(ctx, http.MethodPost, deploymentOfBatch(req), s.path("/process"), req, "application/json")
	if err != nil {
		return BatchTask{}, fmt.Errorf("batch create: %w", err)
	}
	return decodeJSON[BatchTask](resp, "batch create")
}

// Get returns one batch request on a deployment ("" for the main one).
func (s *BatchService) Get(ctx context.Context, deployment, id string) (BatchTask, error) {
	p, err := s.taskPath(id, "")
	if err != nil {
		return BatchTask{}, err
	}
	resp, err := s.client.send(ctx, http.MethodGet, deployment, p, nil, "application/json")
	if err != nil {
		return BatchTask{}, fmt.Errorf("batch get %s: %w", id, err)
	}
	return decodeJSON[BatchTask](resp, "batch get "+id)
}

// List returns the account's batch requests (the first page of at most count;
// 0 = the service's limit).
func (s *BatchService) List(ctx context.Context, deployment string, count int) ([]BatchTask, error) {
	page, err := s.ListPage(ctx, deployment, BatchListOptions{Count: count})
	return page.Tasks, err
}

// BatchListOptions select one page of [BatchService.ListPage].
type BatchListOptions struct {
	// Count is the page size; 0 (default) is the service's limit.
	Count int
	// Sort is "created", "created:desc", "status" or "status:desc"; "" (default)
	// is the service's order.
	Sort string
	// ViewToken is the previous page's [BatchPage.NextToken]; "" (default) is
	// the first page.
	ViewToken string
}

// BatchPage is one page of the account's batch requests.
type BatchPage struct {
	Tasks []BatchTask
	// NextToken is the ViewToken of the next page, "" on the last one.
	NextToken string
}

// ListPage returns one page of the account's batch requests.
func (s *BatchService) ListPage(ctx context.Context, deployment string, opt BatchListOptions) (BatchPage, error) {
	q := url.Values{}
	if opt.Count > 0 {
		q.Set("count", strconv.Itoa(opt.Count))
	}
	if opt.Sort != "" {
		q.Set("sort", opt.Sort)
	}
	if opt.ViewToken != "" {
		q.Set("viewtoken", opt.ViewToken)
	}
	p := s.path("/process")
	if len(q) > 0 {
		p += "?" + q.Encode()
	}
	resp, err := s.client.send(ctx, http.MethodGet, deployment, p, nil, "application/json")
	if err != nil {
		return BatchPage{}, fmt.Errorf("batch list: %w", err)
	}
	page, err := decodeJSON[struct {
		Data  []BatchTask `json:"data"`
		Links struct {
			NextToken string `json:"nextToken"`
		} `json:"links"`
	}](resp, "batch list")
	return BatchPage{Tasks: page.Data, NextToken: page.Links.NextToken}, err
}

// Analyse asks for the analysis of a CREATED request (204).
func (s *BatchService) Analyse(ctx context.Context, deployment, id string) error {
	return s.action(ctx, deployment, id, "analyse")
}

// Start starts (or, for a request with FAILED tiles or a STOPPED one, resumes)
// processing (204).
func (s *BatchService) Start(ctx context.Context, deployment, id string) error {
	return s.action(ctx, deployment, id, "start")
}

// Stop stops a request (204); an analysis under way completes first.
func (s *BatchService) Stop(ctx context.Context, deployment, id string) error {
	return s.action(ctx, deployment, id, "stop")
}

func (s *BatchService) action(ctx context.Context, deployment, id, action string) error {
	p, err := s.taskPath(id, action)
	if err != nil {
		return err
	}
	resp, err := s.client.send(ctx, http.MethodPost, deployment, p, nil, "application/json")
	if err != nil {
		return fmt.Errorf("batch %s %s: %w", action, id, err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	return resp.Body.Close()
}

// TilingGrids lists the service's tiling grids.
func (s *BatchService) TilingGrids(ctx context.Context, deployment string) ([]TilingGrid, error) {
	resp, err := s.client.send(ctx, http.MethodGet, deployment, s.path("/tilinggrids"), nil, "application/json")
	if err != nil {
		return nil, fmt.Errorf("batch tiling grids: %w", err)
	}
	page, err := decodeJSON[struct {
		Data []TilingGrid `json:"data"`
	}](resp, "batch tiling grids")
	return page.Data, err
}
