package sentinel

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
)

// Process API output limits.
const (
	// MaxOutputPixels is the largest output width or height, in pixels (2500).
	MaxOutputPixels = 2500
	// DefaultOutputPixels is the width and height of an output that sets neither
	// width/height nor resx/resy (256).
	DefaultOutputPixels = 256
)

// ValidateProcessRequest checks req before it is sent and returns every problem
// found, each a [*FieldError] naming the field path (joined with errors.Join; use
// errors.As to get the first). It checks: output width/height in 1..2500 or
// resx/resy > 0 (never both pairs) and the resulting size within 2500 px; a bbox of
// 4 finite numbers with min < max on both axes, or a geometry; a CRS of a known
// form (CRS84 or http://www.opengis.net/def/crs/EPSG/0/<code>); at least one data
// entry, each with a type and a time range in order; distinct response
// identifiers; a non-empty evalscript.
func ValidateProcessRequest(req ProcessRequest) error {
	var errs []error
	add := func(field, format string, args ...any) {
		errs = append(errs, &FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
	}

	b := req.Input.Bounds
	crs := b.Properties.CRS
	if !knownCRS(crs) {
		add("input.bounds.properties.crs", "%q is not a known CRS form; use %s or %s<code>, e.g. %s32633", crs, CRSWGS84, CRSEPSGPrefix, CRSEPSGPrefix)
	}
	switch {
	case len(b.BBox) > 0:
		if err := checkBBox("input.bounds.bbox", b.BBox); err != nil {
			errs = append(errs, err)
		}
	case len(b.Geometry) == 0:
		add("input.bounds", "neither bbox nor geometry is set; give the area to process")
	}
	if len(b.Geometry) > 0 {
		var g struct {
			Type string `json:"type"`
		}
		if err := json.Unmarshal(b.Geometry, &g); err != nil || g.Type == "" {
			add("input.bounds.geometry", "not a GeoJSON geometry object with a type")
		}
	}

	if len(req.Input.Data) == 0 {
		add("input.data", "empty; give at least one data collection, e.g. {\"type\": \"sentinel-2-l2a\"}")
	}
	for i, d := range req.Input.Data {
		if strings.TrimSpace(d.Type) == "" {
			add(fmt.Sprintf("input.data[%d].type", i), "empty; name the collection, e.g. \"sentinel-2-l2a\" or \"byoc-<id>\"")
		}
		if d.DataFilter != nil && d.DataFilter.TimeRange != nil && d.DataFilter.TimeRange.To.Before(d.DataFilter.TimeRange.From) {
			add(fmt.Sprintf("input.data[%d].dataFilter.timeRange", i), "to %s is before from %s", d.DataFilter.TimeRange.To.Format("2006-01-02T15:04:05Z07:00"), d.DataFilter.TimeRange.From.Format("2006-01-02T15:04:05Z07:00"))
		}
		if d.DataFilter != nil && d.DataFilter.MaxCloudCoverage != nil {
			if c := *d.DataFilter.MaxCloudCoverage; math.IsNaN(c) || c < 0 || c > 100 {
				add(fmt.Sprintf("input.data[%d].dataFilter.maxCloudCoverage", i), "%g is outside 0..100 (percent)", c)
			}
		}
		if c, ok := LookupCollection(d.Type); ok && d.DataFilter != nil {
			f := d.DataFilter
			if f.MaxCloudCoverage != nil && !c.CloudCover {
				add(fmt.Sprintf("input.data[%d].dataFilter.maxCloudCoverage", i), "collection %s has no cloud cover; leave it out", c.ID)
			}
			if !c.AcceptsOrder(f.MosaickingOrder) {
				add(fmt.Sprintf("input.data[%d].dataFilter.mosaickingOrder", i), "%q is not accepted by collection %s (accepted: %s)", f.MosaickingOrder, c.ID, strings.Join(c.MosaickingOrders(), ", "))
			}
			if f.TimeRange != nil && !c.TimeRange {
				add(fmt.Sprintf("input.data[%d].dataFilter.timeRange", i), "collection %s is timeless; leave it out", c.ID)
			}
		}
	}

	errs = append(errs, validateOutput(req)...)

	seen := map[string]bool{}
	for i, r := range req.Output.Responses {
		id := r.Identifier
		if id == "" {
			id = "default"
		}
		if seen[id] {
			add(fmt.Sprintf("output.responses[%d].identifier", i), "%q is used twice; each response needs its own identifier", id)
		}
		seen[id] = true
	}

	if strings.TrimSpace(req.Evalscript) == "" {
		add("evalscript", "empty; give a V3 evalscript (starting with //VERSION=3)")
	}
	return errors.Join(errs...)
}

// validateOutput checks the output size settings.
func validateOutput(req ProcessRequest) []error {
	var errs []error
	o := req.Output
	hasSize := o.Width != 0 || o.Height != 0
	hasRes := o.ResX != 0 || o.ResY != 0
	if hasSize && hasRes {
		return append(errs, &FieldError{Field: "output", Message: "both width/height and resx/resy are set; set only one pair"})
	}
	checkPx := func(field string, v int) {
		switch {
		case v > MaxOutputPixels:
			errs = append(errs, &FieldError{Field: field, Message: fmt.Sprintf("%d exceeds the Process API limit of %d px; lower the resolution or split the tile", v, MaxOutputPixels)})
		case v < 1:
			errs = append(errs, &FieldError{Field: field, Message: fmt.Sprintf("%d is below 1 px; the Process API accepts 1..%d", v, MaxOutputPixels)})
		}
	}
	switch {
	case hasSize:
		if o.Width != 0 || o.Height == 0 {
			checkPx("output.width", o.Width)
		}
		if o.Height != 0 || o.Width == 0 {
			checkPx("output.height", o.Height)
		}
	case hasRes:
		for _, r := range []struct {
			field string
			v     float64
		}{{"output.resx", o.ResX}, {"output.resy", o.ResY}} {
			if !(r.v > 0) || math.IsInf(r.v, 0) {
				errs = append(errs, &FieldError{Field: r.field, Message: fmt.Sprintf("%g must be a positive size of a pixel in CRS units", r.v)})
			}
		}
		if len(errs) == 0 && len(req.Input.Bounds.BBox) == 4 && checkBBox("", req.Input.Bounds.BBox) == nil {
			w, h, _ := OutputSize(req)
			if w > MaxOutputPixels {
				errs = append(errs, &FieldError{Field: "output.resx", Message: fmt.Sprintf("%g gives %d px across the bbox, over the Process API limit of %d px; use a coarser resolution or split the tile", o.ResX, w, MaxOutputPixels)})
			}
			if h > MaxOutputPixels {
				errs = append(errs, &FieldError{Field: "output.resy", Message: fmt.Sprintf("%g gives %d px across the bbox, over the Process API limit of %d px; use a coarser resolution or split the tile", o.ResY, h, MaxOutputPixels)})
			}
		}
	}
	return errs
}

// knownCRS accepts "" (CRS84), the CRS84 URL and EPSG URLs with a numeric code.
func knownCRS(crs string) bool {
	if crs == "" || crs == CRSWGS84 {
		return true
	}
	code, ok := strings.CutPrefix(crs, CRSEPSGPrefix)
	if !ok || code == "" || len(code) > 6 {
		return false
	}
	for _, r := range code {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// OutputSize returns the output size in pixels of req: width/height when set (a
// missing one follows the bbox's aspect ratio), the bbox size divided by resx/resy
// (rounded up) when those are set, and 256x256 when neither is. ok is false when
// the size depends on a bbox that req does not have (or that is invalid).
func OutputSize(req ProcessRequest) (width, height int, ok bool) {
	o := req.Output
	bbox := req.Input.Bounds.BBox
	validBBox := len(bbox) == 4 && checkBBox("", bbox) == nil
	switch {
	case o.Width > 0 && o.Height > 0:
		return o.Width, o.Height, true
	case o.Width > 0 || o.Height > 0:
		if !validBBox {
			return o.Width, o.Height, false
		}
		dx, dy := bbox[2]-bbox[0], bbox[3]-bbox[1]
		if o.Width > 0 {
			return o.Width, max(1, int(math.Round(float64(o.Width)*dy/dx))), true
		}
		return max(1, int(math.Round(float64(o.Height)*dx/dy))), o.Height, true
	case o.ResX > 0 && o.ResY > 0:
		if !validBBox {
			return 0, 0, false
		}
		w := math.Ceil((bbox[2]-bbox[0])/o.ResX - 1e-9)
		h := math.Ceil((bbox[3]-bbox[1])/o.ResY - 1e-9)
		return int(min(w, math.MaxInt32)), int(min(h, math.MaxInt32)), true
	case o.Width == 0 && o.Height == 0 && o.ResX == 0 && o.ResY == 0:
		return DefaultOutputPixels, DefaultOutputPixels, true
	}
	return 0, 0, false
}

// EstimateRequestPU estimates the PU req costs with [EstimatePU]: the bands and
// sample type come from [InspectEvalscript], the size from [OutputSize]
// (resx/resy need the bbox, in CRS units), and dataSamples (the acquisitions in
// the time range) counts only for ORBIT or TILE mosaicking; SIMPLE mosaicking
// processes one sample. When the size cannot be told, it assumes the largest
// output (2500x2500) so the estimate stays an upper bound.
func EstimateRequestPU(req ProcessRequest, dataSamples int) float64 {
	info := InspectEvalscript(req.Evalscript)
	w, h, ok := OutputSize(req)
	if !ok {
		w, h = MaxOutputPixels, MaxOutputPixels
	}
	samples := 1
	if info.Mosaicking == "ORBIT" || info.Mosaicking == "TILE" {
		samples = max(dataSamples, 1)
	}
	return EstimatePU(PUParams{
		Width:       w,
		Height:      h,
		InputBands:  info.Bands,
		Float32:     info.Float32,
		DataSamples: samples,
	})
}
