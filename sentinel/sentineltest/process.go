package sentineltest

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"shfleet/sentinel"
)

// Process API limits the simulator enforces.
const (
	// MaxOutputPixels is the largest output width or height (px).
	MaxOutputPixels = 2500
)

// canonical is the JSON encoding of req that identifies it: encoding/json writes
// struct fields in order and map keys sorted, so equal requests give equal bytes.
func canonical(req sentinel.ProcessRequest) []byte {
	b, err := json.Marshal(req)
	if err != nil { // only a Processing value json cannot encode
		b = fmt.Appendf(nil, "%#v", req)
	}
	return b
}

// RequestKey identifies a process request in [Stats.Served]: the hex SHA-256 of
// its canonical JSON encoding (the first 16 bytes).
func RequestKey(req sentinel.ProcessRequest) string {
	sum := sha256.Sum256(canonical(req))
	return hex.EncodeToString(sum[:16])
}

// outputs returns the response identifiers of req ("default" when none is listed).
func outputs(req sentinel.ProcessRequest) []string {
	if len(req.Output.Responses) == 0 {
		return []string{"default"}
	}
	ids := make([]string, len(req.Output.Responses))
	for i, r := range req.Output.Responses {
		ids[i] = r.Identifier
		if ids[i] == "" {
			ids[i] = "default"
		}
	}
	return ids
}

// ProcessBody returns the exact bytes the simulator serves for output outputID of
// req: a valid GeoTIFF of the requested size (width x height, or resx/resy over
// the bbox; clamped to 1..[MaxOutputPixels]) with the bands (at most 256) and
// sample type that output declares in the evalscript's setup(), georeferenced to the request's bbox
// and CRS, its pixels a pattern drawn from a hash of the canonical request and
// outputID (see tiff.go for the tag layout). An output setup() does not declare
// has as many bands as the script reads (or [DefaultOutputBands]) and is FLOAT32
// if any declared output is, else UINT8, like [FullSizeBodyLength]. A request with
// one output and no Accept: application/tar gets exactly these bytes; a tar answer
// holds them as "<outputID>.tif".
func ProcessBody(req sentinel.ProcessRequest, outputID string) []byte {
	w, h := req.Output.Width, req.Output.Height
	bb := requestBBox(req)
	if w <= 0 || h <= 0 {
		w, h = sizeFromRes(req, bb)
	}
	bands, st := answerFormat(parseSetup(req.Evalscript), outputID)
	return encodeGeoTIFF(rasterSpec{
		width:       clampInt(w, 1, MaxOutputPixels),
		height:      clampInt(h, 1, MaxOutputPixels),
		bands:       clampInt(bands, 1, maxAnswerBands),
		sample:      sampleTypeOf(st),
		bbox:        bb,
		epsg:        epsgCode(req.Input.Bounds.Properties.CRS),
		seed:        sha256.Sum256(append(canonical(req), append([]byte{0}, outputID...)...)),
		description: "sentineltest: request " + RequestKey(req) + ", output " + strconv.QuoteToASCII(outputID),
	})
}

// answerFormat is the band count and sample type (upper case, "" for AUTO) of
// output id as setup() declares it (the last declaration of that id wins); an
// undeclared output has [setupInfo.fallbackBands] and is FLOAT32 if any declared
// output is.
func answerFormat(info setupInfo, id string) (bands int, sampleType string) {
	found := false
	for _, o := range info.outputs {
		if o.id == id {
			found, bands, sampleType = true, o.bands, o.sampleType
		}
	}
	if !found && info.float32() {
		sampleType = "FLOAT32"
	}
	if bands <= 0 {
		bands = info.fallbackBands()
	}
	return bands, sampleType
}

// processTar is the tar answer: one "<id>.tif" entry per output, in order.
func processTar(req sentinel.ProcessRequest) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, id := range outputs(req) {
		body := ProcessBody(req, id)
		_ = tw.WriteHeader(&tar.Header{
			Name:     id + ".tif",
			Mode:     0o644,
			Size:     int64(len(body)),
			ModTime:  time.Unix(0, 0),
			Typeflag: tar.TypeReg,
			Format:   tar.FormatUSTAR,
		})
		_, _ = tw.Write(body)
	}
	_ = tw.Close()
	return buf.Bytes()
}

// requestBBox is the bbox of the request's bounds (from the geometry when there is
// no bbox), nil if neither is usable.
func requestBBox(req sentinel.ProcessRequest) []float64 {
	if b := req.Input.Bounds.BBox; validBBox(b) == nil {
		return b
	}
	if len(req.Input.Bounds.Geometry) > 0 {
		if b, err := geometryBBox(req.Input.Bounds.Geometry); err == nil && validBBox(b) == nil {
			return b
		}
	}
	return nil
}

func sizeFromRes(req sentinel.ProcessRequest, bb []float64) (int, int) {
	if bb == nil || req.Output.ResX <= 0 || req.Output.ResY <= 0 {
		return 0, 0
	}
	return int(math.Round((bb[2] - bb[0]) / req.Output.ResX)), int(math.Round((bb[3] - bb[1]) / req.Output.ResY))
}

// isWGS84 reports whether crs names longitude/latitude degrees.
func isWGS84(crs string) bool {
	return crs == "" || crs == sentinel.CRSWGS84 || crs == sentinel.CRSEPSGPrefix+"4326" ||
		strings.EqualFold(crs, "EPSG:4326")
}

// validateProcess checks req like the Process API of deployment dep does and
// returns the output size, or a message naming the bad field.
func validateProcess(req sentinel.ProcessRequest, dep string) (w, h int, msg string) {
	if strings.TrimSpace(req.Evalscript) == "" {
		return 0, 0, "evalscript: must not be empty"
	}
	if len(req.Input.Data) == 0 {
		return 0, 0, "input.data: at least one data collection is required"
	}
	for i, d := range req.Input.Data {
		if msg := validateInput(i, d, dep); msg != "" {
			return 0, 0, msg
		}
	}
	b := req.Input.Bounds
	var bb []float64
	switch {
	case len(b.BBox) > 0:
		if err := validBBox(b.BBox); err != nil {
			return 0, 0, "input.bounds.bbox: " + err.Error()
		}
		bb = b.BBox
	case len(b.Geometry) > 0:
		g, err := geometryBBox(b.Geometry)
		if err != nil {
			return 0, 0, "input.bounds.geometry: " + err.Error()
		}
		if err := validBBox(g); err != nil {
			return 0, 0, "input.bounds.geometry: the geometry has no area: " + err.Error()
		}
		bb = g
	default:
		return 0, 0, "input.bounds: bbox or geometry is required"
	}
	o := req.Output
	hasSize, hasRes := o.Width != 0 || o.Height != 0, o.ResX != 0 || o.ResY != 0
	switch {
	case hasSize && hasRes:
		return 0, 0, "output: give width/height or resx/resy, not both"
	case hasSize:
		if o.Width < 1 || o.Width > MaxOutputPixels {
			return 0, 0, fmt.Sprintf("output.width: must be between 1 and %d, got %d", MaxOutputPixels, o.Width)
		}
		if o.Height < 1 || o.Height > MaxOutputPixels {
			return 0, 0, fmt.Sprintf("output.height: must be between 1 and %d, got %d", MaxOutputPixels, o.Height)
		}
		w, h = o.Width, o.Height
	case hasRes:
		if !(o.ResX > 0) || !(o.ResY > 0) {
			return 0, 0, "output.resx/resy: must both be positive"
		}
		w, h = sizeFromRes(req, bb)
		if w < 1 || w > MaxOutputPixels || h < 1 || h > MaxOutputPixels {
			return 0, 0, fmt.Sprintf("output.resx/resy: give an output of %dx%d px; each side must be between 1 and %d", w, h, MaxOutputPixels)
		}
	default:
		return 0, 0, "output: width/height or resx/resy is required"
	}
	for i, r := range req.Output.Responses {
		if t := r.Format.Type; t != "" && t != "image/tiff" {
			return 0, 0, fmt.Sprintf("output.responses[%d].format.type: %q is not simulated; use image/tiff", i, t)
		}
	}
	return w, h, ""
}

// validateInput checks input.data[i] against the collection table: a known type,
// served on this deployment, with only the filters the collection has.
func validateInput(i int, d sentinel.InputData, dep string) string {
	field := fmt.Sprintf("input.data[%d]", i)
	if d.Type == "" {
		return field + ".type: must not be empty"
	}
	c, ok := lookupCollection(d.Type)
	if !ok {
		return fmt.Sprintf("%s.type: unknown data collection %q; use one of %s", field, d.Type, knownCollections())
	}
	if c.deployment != dep {
		return field + ".type: " + wrongDeployment(c, dep)
	}
	f := d.DataFilter
	if f == nil {
		return ""
	}
	if f.MaxCloudCoverage != nil {
		if !c.cloudCover {
			return fmt.Sprintf("%s.dataFilter.maxCloudCoverage: collection %q has no cloud cover; remove the field", field, c.id)
		}
		if cc := *f.MaxCloudCoverage; !(cc >= 0 && cc <= 100) {
			return fmt.Sprintf("%s.dataFilter.maxCloudCoverage: must be between 0 and 100, got %g", field, cc)
		}
	}
	switch f.MosaickingOrder {
	case "", sentinel.MosaickingMostRecent, sentinel.MosaickingLeastRecent:
	case sentinel.MosaickingLeastCC:
		if !c.cloudCover {
			return fmt.Sprintf("%s.dataFilter.mosaickingOrder: leastCC needs cloud cover, which collection %q has not; use mostRecent or leastRecent", field, c.id)
		}
	default:
		return fmt.Sprintf("%s.dataFilter.mosaickingOrder: %q is not one of mostRecent, leastRecent, leastCC", field, f.MosaickingOrder)
	}
	if tr := f.TimeRange; tr != nil && !c.timeless && tr.To.Before(tr.From) {
		return fmt.Sprintf("%s.dataFilter.timeRange: to (%s) is before from (%s)", field, tr.To.Format(time.RFC3339), tr.From.Format(time.RFC3339))
	}
	return ""
}

// processPU is the PU cost of a valid request by the simulator's rules
// ([chargePU]): its output size, the bands and sample type of the evalscript's
// setup(), and the number of data samples. For ORBIT mosaicking that is the number
// of distinct acquisition dates of the synthetic catalog in the first input's time
// range (over the bbox's cells when the CRS is WGS84, else over one cell chosen by
// the bbox's hash); for TILE the number of (cell, date) acquisitions;
// maxCloudCoverage filters them. A timeless first input (DEM) has one sample.
func processPU(req sentinel.ProcessRequest, w, h int, now time.Time) float64 {
	info := parseSetup(req.Evalscript)
	samples := 1
	if c, _ := lookupCollection(req.Input.Data[0].Type); !c.timeless && (info.mosaicking == "ORBIT" || info.mosaicking == "TILE") {
		samples = dataSamples(req, info.mosaicking, now)
	}
	return chargePU(w, h, info, samples)
}

func dataSamples(req sentinel.ProcessRequest, mosaicking string, now time.Time) int {
	from, to := now.Add(-30*day), now
	var keep func(float64) bool
	if f := req.Input.Data[0].DataFilter; f != nil {
		if f.TimeRange != nil {
			from, to = f.TimeRange.From, f.TimeRange.To
		}
		if f.MaxCloudCoverage != nil {
			limit := *f.MaxCloudCoverage
			keep = func(cc float64) bool { return cc <= limit }
		}
	}
	bb := requestBBox(req)
	if !isWGS84(req.Input.Bounds.Properties.CRS) {
		sum := sha256.Sum256(fmt.Appendf(nil, "%v", bb))
		c := cell{int(sum[0])%360 - 180, int(sum[1])%180 - 90}
		bb = []float64{float64(c.Lon) + 0.5, float64(c.Lat) + 0.5, float64(c.Lon) + 0.6, float64(c.Lat) + 0.6}
	}
	sc, err := scenes(bb, from, to, keep)
	if err != nil {
		return MaxCatalogItems
	}
	if mosaicking == "TILE" {
		return len(sc)
	}
	days := map[string]bool{}
	for _, x := range sc {
		days[x.t.Format("2006-01-02")] = true
	}
	return len(days)
}

// TarContentType is the Content-Type of a multi-response process answer, as the
// OpenAPI schema lists it. Requests may ask for it with Accept: application/tar
// or application/x-tar.
const TarContentType = "application/x-tar"

// wantsTar reports whether the answer to a request is a tar.
func wantsTar(r *http.Request, req sentinel.ProcessRequest) bool {
	accept := r.Header.Get("Accept")
	return strings.Contains(accept, "application/tar") || strings.Contains(accept, "application/x-tar") ||
		len(req.Output.Responses) > 1
}

// processHandler serves the Process API of deployment dep.
func (s *Server) processHandler(dep string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { s.handleProcess(w, r, dep) }
}

func (s *Server) handleProcess(w http.ResponseWriter, r *http.Request, dep string) {
	now := s.cfg.Now()
	var req sentinel.ProcessRequest
	decodeErr := json.NewDecoder(http.MaxBytesReader(w, r.Body, 8<<20)).Decode(&req)
	asTar := wantsTar(r, req)
	var pu float64
	var fail *failure
	if decodeErr != nil {
		fail = badRequest("cannot parse the process request as JSON: " + decodeErr.Error())
	} else if width, height, msg := validateProcess(req, dep); msg != "" {
		fail = badRequest(msg)
	} else {
		for _, d := range req.Input.Data {
			if fail = s.forbiddenFailure(d.Type); fail != nil {
				break
			}
		}
		if fail == nil {
			pu = processPU(req, width, height, now) // outside the lock: may scan the catalog
		}
	}
	truncate, ok := s.processLocked(w, r, now, req, pu, fail)
	if ok { // the body is built and written outside the lock
		if s.cfg.FullSizeBodies {
			writeFullSize(w, req, asTar, truncate)
			return
		}
		if asTar {
			writeBody(w, TarContentType, processTar(req), truncate)
			return
		}
		writeBody(w, "image/tiff", ProcessBody(req, outputs(req)[0]), truncate)
	}
}

// processLocked answers errors itself; on success it charges, sets the headers and
// reports ok (and whether to truncate) so the caller writes the body unlocked.
func (s *Server) processLocked(w http.ResponseWriter, r *http.Request, now time.Time, req sentinel.ProcessRequest, pu float64, fail *failure) (truncate, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.ProcessRequests++
	path := r.URL.Path
	if _, ok := s.authorized(r, now); !ok {
		s.unauthorized(w, shapeProcess, now, path)
		return false, false
	}
	if fail != nil {
		if fail.status == http.StatusForbidden {
			s.denied(w, shapeProcess, now, path, fail)
			return false, false
		}
		s.record(now, path, fail.status, 0, "")
		writeError(w, fail.status, fail.code, fail.msg)
		return false, false
	}
	s.rollMonth(now)
	if s.monthlyPU > 0 && s.monthSpent+pu > s.monthlyPU+eps {
		s.stats.QuotaExceeded++
		s.record(now, path, http.StatusForbidden, 0, "")
		writeError(w, http.StatusForbidden, "COMMON_INSUFFICIENT_PERMISSIONS", fmt.Sprintf(
			"Your monthly processing units quota exceeded: this request needs %s PU, %s of %s PU are left until the 1st of next month (UTC)",
			puString(pu), puString(max(0, s.monthlyPU-s.monthSpent)), puString(s.monthlyPU)))
		return false, false
	}
	a := s.check(now, pu)
	if !a.ok {
		s.record(now, path, http.StatusTooManyRequests, 0, "")
		s.reject429(w, shapeProcess, a)
		return false, false
	}
	f5, truncate := s.fault()
	if f5 {
		s.stats.Faults5xx++
		s.record(now, path, http.StatusServiceUnavailable, 0, "")
		writeError(w, http.StatusServiceUnavailable, "COMMON_SERVICE_UNAVAILABLE", "Service temporarily unavailable (injected fault): retry later")
		return false, false
	}
	s.charge(now, pu)
	s.monthSpent += pu
	s.stats.PUSpent += pu
	key := RequestKey(req)
	s.stats.Served[key]++
	if truncate {
		s.stats.Truncated++
	}
	s.record(now, path, http.StatusOK, pu, key)
	if s.cfg.HeaderMode != HeadersNone {
		w.Header().Set("X-ProcessingUnits-Spent", puString(pu))
	}
	s.remainingHeaders(w.Header(), s.levels())
	return truncate, true
}
