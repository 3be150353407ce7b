package sentineltest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"shfleet/sentinel"
)

// Batch Processing API v2 paths (each also under its alias /batch/v2/...).
const (
	// BatchProcessPath creates and lists batch requests; /{id}, /{id}/analyse,
	// /{id}/start and /{id}/stop below it.
	BatchProcessPath = "/api/v2/batch/process"
	// BatchTilingGridsPath lists the tiling grids; /{id} describes one.
	BatchTilingGridsPath = "/api/v2/batch/tilinggrids"
	// DefaultBatchStep is one step of the simulated batch service when
	// Config.BatchStep is 0: a request moves one status, a tile one status.
	DefaultBatchStep = 20 * time.Millisecond
	// BatchFactor is what a batch tile costs relative to the same Process API
	// request (the Batch API's 1/3).
	BatchFactor = 1.0 / 3
)

// BatchS3 is where the simulated batch service delivers tiles: an S3 endpoint
// (versitygw in tests) and the credentials the service would have from the
// bucket policy.
type BatchS3 struct {
	Endpoint, Region, AccessKey, SecretKey string
}

// Batch tile statuses, as the Batch API documentation names them.
const (
	TilePending    = "PENDING"
	TileScheduled  = "SCHEDULED"
	TileProcessing = "PROCESSING"
	TileDone       = "DONE"
	TileFailed     = "FAILED"
)

// maxStuck is how often a stuck tile goes back to PENDING before it FAILs.
const maxStuck = 2

// BatchTile is one tile of a simulated batch request, for tests.
type BatchTile struct {
	Name   string
	Status string
	// Stuck counts how often it got stuck in the current run.
	Stuck int
	// PU is what it was charged (1/3 of the Process API's price).
	PU float64
}

// batch wire types: the simulator's own reading of BatchV2ProcessRequest.
type batchWire struct {
	ProcessRequest sentinel.ProcessRequest `json:"processRequest"`
	Input          struct {
		Type       string  `json:"type"`
		ID         *int    `json:"id"`
		Resolution float64 `json:"resolution"`
	} `json:"input"`
	Output struct {
		Type     string `json:"type"`
		Delivery struct {
			S3 *struct {
				URL string `json:"url"`
			} `json:"s3"`
		} `json:"delivery"`
		CogOutput bool `json:"cogOutput"`
	} `json:"output"`
	Description string `json:"description"`
}

type batchTask struct {
	id         string
	raw        json.RawMessage
	req        batchWire
	dep        string
	status     string
	userAction string
	actionAt   time.Time
	created    time.Time
	updated    time.Time
	errMsg     string
	costPU     float64
	stopReason string
	bucket     string
	prefix     string
	tiles      []*simTile
	state      []*BatchTile
	analysed   bool
	wantStart  bool
	wantStop   bool
	running    bool
}

func (t *batchTask) view() map[string]any {
	v := map[string]any{
		"id": t.id, "request": t.raw, "status": t.status, "userAction": t.userAction,
		"created": t.created.UTC().Format(time.RFC3339), "lastUpdated": t.updated.UTC().Format(time.RFC3339),
		"costPU": t.costPU, "completionPercentage": t.completion(),
		"domainAccountId": DefaultUserID,
	}
	if !t.actionAt.IsZero() {
		v["userActionUpdated"] = t.actionAt.UTC().Format(time.RFC3339)
	}
	if t.errMsg != "" {
		v["error"] = t.errMsg
	}
	if t.stopReason != "" {
		v["stoppedStatusReason"] = t.stopReason
	}
	return v
}

func (t *batchTask) completion() float64 {
	if len(t.state) == 0 {
		return 0
	}
	n := 0
	for _, s := range t.state {
		if s.Status == TileDone || s.Status == TileFailed {
			n++
		}
	}
	return float64(100*n) / float64(len(t.state))
}

func (s *Server) registerBatch(prefix string, dep string) {
	for _, root := range []string{"/api/v2/batch", "/batch/v2"} {
		p := prefix + root
		s.mux.HandleFunc("POST "+p+"/process", func(w http.ResponseWriter, r *http.Request) { s.batchCreate(w, r, dep) })
		s.mux.HandleFunc("GET "+p+"/process", s.batchList)
		s.mux.HandleFunc("GET "+p+"/process/{id}", s.batchGet)
		s.mux.HandleFunc("POST "+p+"/process/{id}/{action}", s.batchAction)
		s.mux.HandleFunc("GET "+p+"/tilinggrids", s.batchGrids)
		s.mux.HandleFunc("GET "+p+"/tilinggrids/{id}", s.batchGrids)
	}
}

// batchGate checks the token and the enterprise flag and counts the request
// against the account's request policies (a batch call is one request, 0 PU).
// It writes the error itself and returns false. Call with mu held.
func (s *Server) batchGate(w http.ResponseWriter, r *http.Request, now time.Time) bool {
	s.stats.BatchRequests++
	if _, ok := s.authorized(r, now); !ok {
		s.unauthorized(w, shapeProcess, now, r.URL.Path)
		return false
	}
	if !s.cfg.Batch {
		s.stats.PermissionDenied++
		s.record(now, r.URL.Path, http.StatusForbidden, 0, "")
		writeError(w, http.StatusForbidden, "COMMON_INSUFFICIENT_PERMISSIONS",
			"Insufficient permissions: the Batch Processing API is only available for enterprise users; contact Sentinel Hub for an enterprise plan or use the Process API")
		return false
	}
	a := s.check(now, 0)
	if !a.ok {
		s.record(now, r.URL.Path, http.StatusTooManyRequests, 0, "")
		s.reject429(w, shapeProcess, a)
		return false
	}
	s.charge(now, 0)
	s.record(now, r.URL.Path, http.StatusOK, 0, "")
	return true
}

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

func (s *Server) batchCreate(w http.ResponseWriter, r *http.Request, dep string) {
	now := s.cfg.Now()
	var raw json.RawMessage
	decodeErr := json.NewDecoder(http.MaxBytesReader(w, r.Body, 8<<20)).Decode(&raw)
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.batchGate(w, r, now) {
		return
	}
	if decodeErr != nil {
		writeError(w, 400, "COMMON_BAD_PAYLOAD", "cannot parse the batch request as JSON: "+decodeErr.Error())
		return
	}
	t, msg := s.newBatchTask(raw, dep, now)
	if msg != "" {
		writeError(w, 400, "COMMON_BAD_PAYLOAD", msg)
		return
	}
	s.batches[t.id] = t
	s.batchOrder = append(s.batchOrder, t.id)
	s.stats.BatchCreated++
	writeJSON(w, http.StatusCreated, "application/json", t.view())
}

// newBatchTask validates a request like the service does at creation (inputs,
// grid, resolution, delivery; not the evalscript) and lists its tiles.
func (s *Server) newBatchTask(raw json.RawMessage, dep string, now time.Time) (*batchTask, string) {
	var req batchWire
	if err := json.Unmarshal(raw, &req); err != nil {
		return nil, "cannot parse the batch request: " + err.Error()
	}
	pr := req.ProcessRequest
	if strings.TrimSpace(pr.Evalscript) == "" {
		return nil, "processRequest.evalscript: must not be empty"
	}
	if len(pr.Input.Data) == 0 {
		return nil, "processRequest.input.data: at least one data collection is required"
	}
	for i, d := range pr.Input.Data {
		if msg := validateInput(i, d, dep); msg != "" {
			return nil, "processRequest." + msg
		}
		if f := s.forbiddenFailure(d.Type); f != nil {
			return nil, f.msg
		}
	}
	if req.Input.Type != "tiling-grid" || req.Input.ID == nil {
		return nil, `input: want {"type": "tiling-grid", "id": ..., "resolution": ...}`
	}
	g, ok := lookupSimGrid(*req.Input.ID)
	if !ok {
		return nil, fmt.Sprintf("input.id: tiling grid %d does not exist; GET /tilinggrids lists them", *req.Input.ID)
	}
	resOK := false
	for _, r := range g.resolutions {
		if r == req.Input.Resolution {
			resOK = true
		}
	}
	if !resOK {
		return nil, fmt.Sprintf("input.resolution: %g is not a resolution of grid %d (%s); use one of %v", req.Input.Resolution, g.id, g.name, g.resolutions)
	}
	if req.Output.Type != "raster" || req.Output.Delivery.S3 == nil {
		return nil, `output: want {"type": "raster", "delivery": {"s3": {"url": "s3://bucket/prefix"}}}`
	}
	u, err := url.Parse(req.Output.Delivery.S3.URL)
	if err != nil || u.Scheme != "s3" || u.Host == "" {
		return nil, fmt.Sprintf("output.delivery.s3.url: %q is not an s3://bucket/prefix URL", req.Output.Delivery.S3.URL)
	}
	rings, bmsg := boundsRings(pr.Input.Bounds)
	if bmsg != "" {
		return nil, "processRequest.input.bounds: " + bmsg
	}
	var tiles []simTile
	seen := map[string]bool{}
	for _, ring := range rings {
		ts, msg := tilesFor(g, ring, req.Input.Resolution)
		if msg != "" {
			return nil, msg
		}
		for _, tl := range ts {
			if !seen[tl.name] {
				seen[tl.name] = true
				tiles = append(tiles, tl)
			}
		}
	}
	slices.SortFunc(tiles, func(a, b simTile) int { return strings.Compare(a.name, b.name) })
	t := &batchTask{id: newUUID(), raw: raw, req: req, dep: dep, status: sentinel.BatchCreated, userAction: "NONE",
		created: now, updated: now, bucket: u.Host, prefix: strings.Trim(u.Path, "/")}
	for i := range tiles {
		t.tiles = append(t.tiles, &tiles[i])
	}
	return t, ""
}

// boundsRings are the outer rings of every polygon of the bounds (lon/lat), or
// the bbox's ring.
func boundsRings(b sentinel.Bounds) ([][][2]float64, string) {
	if !isWGS84(b.Properties.CRS) {
		return nil, "the simulator reads bounds in WGS84 only"
	}
	if len(b.Geometry) > 0 {
		var g struct {
			Type        string          `json:"type"`
			Coordinates json.RawMessage `json:"coordinates"`
		}
		if err := json.Unmarshal(b.Geometry, &g); err != nil {
			return nil, "geometry is not GeoJSON"
		}
		var polys [][][][2]float64
		switch g.Type {
		case "Polygon":
			var rings [][][2]float64
			if err := json.Unmarshal(g.Coordinates, &rings); err != nil || len(rings) == 0 {
				return nil, "polygon coordinates do not parse"
			}
			polys = [][][][2]float64{rings}
		case "MultiPolygon":
			if err := json.Unmarshal(g.Coordinates, &polys); err != nil || len(polys) == 0 {
				return nil, "multipolygon coordinates do not parse"
			}
		default:
			return nil, "geometry must be a Polygon or MultiPolygon"
		}
		var out [][][2]float64
		for _, p := range polys {
			if len(p) == 0 || len(p[0]) < 4 {
				return nil, "a polygon has no outer ring"
			}
			out = append(out, p[0])
		}
		return out, ""
	}
	if err := validBBox(b.BBox); err != nil {
		return nil, "bbox: " + err.Error()
	}
	x0, y0, x1, y1 := b.BBox[0], b.BBox[1], b.BBox[2], b.BBox[3]
	return [][][2]float64{{{x0, y0}, {x1, y0}, {x1, y1}, {x0, y1}, {x0, y0}}}, ""
}

func (s *Server) batchList(w http.ResponseWriter, r *http.Request) {
	now := s.cfg.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.batchGate(w, r, now) {
		return
	}
	q := r.URL.Query()
	count := batchListMax
	if c := q.Get("count"); c != "" {
		n, err := strconv.Atoi(c)
		if err != nil || n < 1 {
			writeError(w, 400, "COMMON_BAD_PAYLOAD", "count: "+c+" is not a positive integer")
			return
		}
		count = min(n, batchListMax)
	}
	order := slices.Clone(s.batchOrder) // by creation
	switch q.Get("sort") {
	case "", "created":
	case "created:desc":
		slices.Reverse(order)
	default:
		writeError(w, 400, "COMMON_BAD_PAYLOAD", "sort: "+q.Get("sort")+" is not supported by the simulator (created, created:desc)")
		return
	}
	from := 0
	if v := q.Get("viewtoken"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > len(order) {
			writeError(w, 400, "COMMON_BAD_PAYLOAD", "viewtoken: "+v+" is not a token this list gave")
			return
		}
		from = n
	}
	to := min(from+count, len(order))
	data := []map[string]any{}
	for _, id := range order[from:to] {
		data = append(data, s.batches[id].view())
	}
	links := map[string]any{"currentToken": strconv.Itoa(from)}
	if to < len(order) {
		next := *r.URL
		nq := next.Query()
		nq.Set("viewtoken", strconv.Itoa(to))
		next.RawQuery = nq.Encode()
		links["nextToken"] = strconv.Itoa(to)
		links["next"] = next.String()
	}
	writeJSON(w, 200, "application/json", map[string]any{"data": data, "links": links})
}

// batchListMax is the simulator's page limit of the batch request list.
const batchListMax = 100

func (s *Server) batchGet(w http.ResponseWriter, r *http.Request) {
	now := s.cfg.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.batchGate(w, r, now) {
		return
	}
	t, ok := s.batches[r.PathValue("id")]
	if !ok {
		writeError(w, 404, "COMMON_NOT_FOUND", "batch request "+r.PathValue("id")+" not found")
		return
	}
	writeJSON(w, 200, "application/json", t.view())
}

func (s *Server) batchGrids(w http.ResponseWriter, r *http.Request) {
	now := s.cfg.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.batchGate(w, r, now) {
		return
	}
	desc := func(g simGrid) map[string]any {
		return map[string]any{"id": g.id, "name": g.name, "properties": map[string]any{
			"tileWidth": g.size, "tileHeight": g.size, "resolutions": g.resolutions, "unit": g.unit}}
	}
	if idStr := r.PathValue("id"); idStr != "" {
		id, err := strconv.Atoi(idStr)
		g, ok := lookupSimGrid(id)
		if err != nil || !ok {
			writeError(w, 400, "COMMON_BAD_PAYLOAD", "tiling grid "+idStr+" does not exist")
			return
		}
		writeJSON(w, 200, "application/json", desc(g))
		return
	}
	data := []map[string]any{}
	for _, g := range simGrids {
		data = append(data, desc(g))
	}
	writeJSON(w, 200, "application/json", map[string]any{"data": data, "links": map[string]any{}})
}

// batchAction applies ANALYSE, START or STOP following the status diagram.
func (s *Server) batchAction(w http.ResponseWriter, r *http.Request) {
	now := s.cfg.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.batchGate(w, r, now) {
		return
	}
	t, ok := s.batches[r.PathValue("id")]
	if !ok {
		writeError(w, 404, "COMMON_NOT_FOUND", "batch request "+r.PathValue("id")+" not found")
		return
	}
	action := r.PathValue("action")
	bad := func() {
		writeError(w, 400, "COMMON_BAD_PAYLOAD", fmt.Sprintf("cannot %s a batch request with status %s", action, t.status))
	}
	switch action {
	case "analyse":
		if t.status != sentinel.BatchCreated {
			bad()
			return
		}
		t.userAction = "ANALYSE"
		t.status = sentinel.BatchAnalysing
	case "start":
		switch t.status {
		case sentinel.BatchCreated, sentinel.BatchAnalysing:
			t.status, t.wantStart = sentinel.BatchAnalysing, true
		case sentinel.BatchAnalysisDone, sentinel.BatchStopped:
			t.status, t.stopReason, t.wantStop = sentinel.BatchProcessing, "", false
		case sentinel.BatchDone, sentinel.BatchFailed:
			// Re-start: every FAILED tile goes back to PENDING.
			n := 0
			for _, st := range t.state {
				if st.Status == TileFailed {
					st.Status, st.Stuck = TilePending, 0
					n++
				}
			}
			if n == 0 {
				bad()
				return
			}
			t.status, t.errMsg = sentinel.BatchProcessing, ""
		default:
			bad()
			return
		}
		t.userAction = "START"
	case "stop":
		switch t.status {
		case sentinel.BatchAnalysing:
			t.wantStop = true // the analysis completes first
		case sentinel.BatchCreated, sentinel.BatchAnalysisDone, sentinel.BatchProcessing:
			t.status, t.stopReason = sentinel.BatchStopped, sentinel.BatchStoppedUserAction
		default:
			bad()
			return
		}
		t.userAction = "STOP"
		s.stats.BatchStops++
	default:
		writeError(w, 404, "COMMON_NOT_FOUND", "no action "+action)
		return
	}
	t.actionAt, t.updated = now, now
	if !t.running {
		t.running = true
		go s.runBatch(t)
	}
	w.WriteHeader(http.StatusNoContent)
}

// runBatch moves a request one step every Config.BatchStep until it needs a
// user action again.
func (s *Server) runBatch(t *batchTask) {
	step := s.cfg.BatchStep
	for {
		time.Sleep(step)
		upload, more := s.batchStep(t)
		for _, u := range upload {
			s.mu.Lock()
			stopped := t.status == sentinel.BatchStopped && t.stopReason == sentinel.BatchStoppedUserAction
			if stopped {
				// A user's stop drops the tiles not yet written: they are
				// processed again if the request is started again.
				u.state.Status = TilePending
			}
			s.mu.Unlock()
			if stopped {
				continue
			}
			err := s.deliver(t, u.tile, u.req)
			s.mu.Lock()
			if err != nil {
				u.state.Status = TileFailed
				s.stats.BatchDeliveryErrors++
			} else {
				u.state.Status = TileDone
				s.stats.BatchTilesDelivered++
			}
			s.finishBatch(t)
			s.mu.Unlock()
		}
		if !more {
			return
		}
	}
}

type batchUpload struct {
	tile  *simTile
	state *BatchTile
	req   sentinel.ProcessRequest
}

// batchStep advances t once; it returns the tiles to deliver now and whether
// the request still moves on its own.
func (s *Server) batchStep(t *batchTask) ([]batchUpload, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.Now()
	t.updated = now
	switch t.status {
	case sentinel.BatchAnalysing:
		if s.holdAnalyse {
			return nil, true // HoldBatchAnalysis: the analysis takes its time
		}
		if !t.analysed {
			t.analysed = true
			for _, tl := range t.tiles {
				t.state = append(t.state, &BatchTile{Name: tl.name, Status: TilePending})
			}
		}
		switch {
		case t.wantStop:
			t.status, t.stopReason, t.wantStop, t.wantStart = sentinel.BatchStopped, sentinel.BatchStoppedUserAction, false, false
		case t.wantStart:
			t.status, t.wantStart = sentinel.BatchProcessing, false
			return nil, true
		default:
			t.status = sentinel.BatchAnalysisDone
		}
		t.running = false
		return nil, false
	case sentinel.BatchProcessing:
	default:
		t.running = false
		return nil, false
	}
	var uploads []batchUpload
	for i, st := range t.state {
		switch st.Status {
		case TilePending:
			st.Status = TileScheduled
		case TileScheduled:
			st.Status = TileProcessing
		case TileProcessing:
			if s.batchHold[st.Name] {
				continue // SetBatchHold: a slow tile
			}
			if s.batchStuck[st.Name] > 0 {
				s.batchStuck[st.Name]--
				st.Stuck++
				if st.Stuck > maxStuck {
					st.Status = TileFailed
				} else {
					st.Status = TilePending
				}
				continue
			}
			req := tileRequest(t.req.ProcessRequest, t.tiles[i])
			pu := processPU(req, t.tiles[i].px, t.tiles[i].py, now) * BatchFactor
			s.rollMonth(now)
			if s.monthlyPU > 0 && s.monthSpent+pu > s.monthlyPU+eps {
				t.status, t.stopReason = sentinel.BatchStopped, sentinel.BatchStoppedOutOfPU
				t.running = false
				return uploads, false
			}
			for _, b := range s.buckets {
				if b.pol.Kind == KindPU {
					b.refill(now)
					b.charge(now, pu)
				}
			}
			s.monthSpent += pu
			s.stats.PUSpent += pu
			s.stats.BatchPU += pu
			st.PU += pu
			t.costPU += pu
			st.Status = "DELIVERING" // not a service status: between PROCESSING and DONE
			uploads = append(uploads, batchUpload{tile: t.tiles[i], state: st, req: req})
		}
	}
	s.finishBatch(t)
	more := t.status == sentinel.BatchProcessing
	if !more {
		t.running = false
	}
	return uploads, more
}

// finishBatch ends a processing request whose tiles are all DONE or FAILED:
// FAILED when none is DONE, else DONE (the v2 schema has no PARTIAL; its failed
// tiles can be re-started). Call with mu held.
func (s *Server) finishBatch(t *batchTask) {
	if t.status != sentinel.BatchProcessing {
		return
	}
	done, failed := 0, 0
	for _, st := range t.state {
		switch st.Status {
		case TileDone:
			done++
		case TileFailed:
			failed++
		default:
			return
		}
	}
	if done == 0 {
		t.status, t.errMsg = sentinel.BatchFailed, fmt.Sprintf("all %d tiles failed", failed)
	} else {
		t.status = sentinel.BatchDone
		if failed > 0 {
			t.errMsg = fmt.Sprintf("%d of %d tiles failed; start the request again to re-process them", failed, failed+done)
		}
	}
}

// tileRequest is the Process API request the service runs for one tile: the
// tile's bbox in its CRS and pixel size, the request's data and responses.
func tileRequest(pr sentinel.ProcessRequest, t *simTile) sentinel.ProcessRequest {
	crs := sentinel.CRSWGS84
	if t.epsg != 4326 {
		crs = sentinel.CRSEPSGPrefix + strconv.Itoa(t.epsg)
	}
	out := sentinel.ProcessRequest{Evalscript: pr.Evalscript}
	out.Input.Data = pr.Input.Data
	out.Input.Bounds = sentinel.Bounds{BBox: []float64{t.bbox[0], t.bbox[1], t.bbox[2], t.bbox[3]}, Properties: sentinel.BoundsProperties{CRS: crs}}
	out.Output = sentinel.ProcessOutput{Width: t.px, Height: t.py, Responses: pr.Output.Responses}
	return out
}

// deliver writes a tile's outputs to <prefix>/<requestId>/<tileName>/<outputId>.tif.
func (s *Server) deliver(t *batchTask, tile *simTile, req sentinel.ProcessRequest) error {
	c := s.cfg.BatchS3
	if c.Endpoint == "" {
		return fmt.Errorf("sentineltest: Config.BatchS3 is not set")
	}
	cl := s3.New(s3.Options{Region: c.Region, BaseEndpoint: aws.String(c.Endpoint), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(c.AccessKey, c.SecretKey, "")})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, id := range outputs(req) {
		key := t.id + "/" + tile.name + "/" + id + ".tif"
		if t.prefix != "" {
			key = t.prefix + "/" + key
		}
		body := ProcessBody(req, id)
		if _, err := cl.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(t.bucket), Key: aws.String(key),
			Body: bytes.NewReader(body), ContentLength: aws.Int64(int64(len(body)))}); err != nil {
			return err
		}
	}
	return nil
}

// BatchTiles returns the tiles of a batch request with their statuses, for tests.
func (s *Server) BatchTiles(id string) []BatchTile {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.batches[id]
	if !ok {
		return nil
	}
	out := make([]BatchTile, len(t.state))
	for i, st := range t.state {
		out[i] = *st
	}
	return out
}

// SetBatchStuck makes tile get stuck the next n times it is processed (any
// request); after [maxStuck] returns to PENDING the next one FAILs it.
func (s *Server) SetBatchStuck(tile string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.batchStuck[tile] = n
}

// SetBatchHold keeps tile PROCESSING (any request) while hold is true: a slow
// tile, so that tests can act while a request is under way.
func (s *Server) SetBatchHold(tile string, hold bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.batchHold[tile] = hold
}

// HoldBatchAnalysis keeps every ANALYSING request analysing while hold is
// true; a stop sent meanwhile takes effect once the analysis completes.
func (s *Server) HoldBatchAnalysis(hold bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.holdAnalyse = hold
}

// BatchInfo is what a test can read of a simulated batch request.
type BatchInfo struct {
	ID, Status, StoppedReason, Description string
	// COG is the request's output.cogOutput.
	COG bool
}

// Batches lists the batch requests in creation order, for tests.
func (s *Server) Batches() []BatchInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []BatchInfo
	for _, id := range s.batchOrder {
		t := s.batches[id]
		out = append(out, BatchInfo{ID: t.id, Status: t.status, StoppedReason: t.stopReason,
			Description: t.req.Description, COG: t.req.Output.CogOutput})
	}
	return out
}
