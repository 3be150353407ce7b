package sentinel

import (
	"encoding/json"
	"time"
)

// CRS identifiers as the Process API accepts them.
const (
	// CRSWGS84 is longitude/latitude in degrees (OGC CRS84 axis order).
	CRSWGS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
	// CRSEPSGPrefix prefixes an EPSG code, e.g. CRSEPSGPrefix+"32633" for UTM 33N.
	CRSEPSGPrefix = "http://www.opengis.net/def/crs/EPSG/0/"
)

// Mosaicking orders accepted in [DataFilter.MosaickingOrder].
const (
	MosaickingMostRecent  = "mostRecent"
	MosaickingLeastRecent = "leastRecent"
	MosaickingLeastCC     = "leastCC"
)

// ProcessRequest is the body of POST /api/v1/process (schema ProcessRequest).
type ProcessRequest struct {
	Input      ProcessInput  `json:"input"`
	Output     ProcessOutput `json:"output"`
	Evalscript string        `json:"evalscript"`
}

// ProcessInput says where and what data to process.
type ProcessInput struct {
	Bounds Bounds      `json:"bounds"`
	Data   []InputData `json:"data"`
}

// Bounds is a bbox and/or a GeoJSON geometry in the CRS named by Properties.CRS.
type Bounds struct {
	// BBox is minX, minY, maxX, maxY in the CRS's units.
	BBox []float64 `json:"bbox,omitempty"`
	// Geometry is a GeoJSON geometry object (Polygon or MultiPolygon).
	Geometry json.RawMessage `json:"geometry,omitempty"`
	// Properties carries the CRS.
	Properties BoundsProperties `json:"properties"`
}

// BoundsProperties names the CRS of Bounds. Empty means [CRSWGS84].
type BoundsProperties struct {
	CRS string `json:"crs,omitempty"`
}

// InputData is one data collection of a process request.
type InputData struct {
	// Type is the collection type, e.g. "sentinel-2-l2a" or "byoc-<id>".
	Type       string      `json:"type"`
	DataFilter *DataFilter `json:"dataFilter,omitempty"`
	// Processing holds collection-specific processing options, passed through as is.
	Processing map[string]any `json:"processing,omitempty"`
}

// DataFilter restricts which acquisitions are used.
type DataFilter struct {
	TimeRange        *TimeRange `json:"timeRange,omitempty"`
	MaxCloudCoverage *float64   `json:"maxCloudCoverage,omitempty"`
	MosaickingOrder  string     `json:"mosaickingOrder,omitempty"`
}

// TimeRange is an inclusive [From, To] interval, serialized as RFC 3339.
type TimeRange struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
}

// ProcessOutput is the output size (width/height OR resx/resy, never both) and the
// list of responses.
type ProcessOutput struct {
	Width     int              `json:"width,omitempty"`
	Height    int              `json:"height,omitempty"`
	ResX      float64          `json:"resx,omitempty"`
	ResY      float64          `json:"resy,omitempty"`
	Responses []OutputResponse `json:"responses,omitempty"`
}

// OutputResponse names one output of the evalscript and its format.
type OutputResponse struct {
	// Identifier matches an output id in the evalscript's setup(); "default" if empty.
	Identifier string         `json:"identifier"`
	Format     ResponseFormat `json:"format"`
}

// ResponseFormat is the MIME type of one output, e.g. "image/tiff".
type ResponseFormat struct {
	Type string `json:"type"`
}

// CatalogSearchRequest is the body of POST /api/v1/catalog/1.0.0/search (a STAC
// item search with the fields and filter extensions).
type CatalogSearchRequest struct {
	Collections []string `json:"collections"`
	// BBox is minLon, minLat, maxLon, maxLat in WGS84. Mutually exclusive with Intersects.
	BBox []float64 `json:"bbox,omitempty"`
	// Intersects is a GeoJSON geometry in WGS84.
	Intersects json.RawMessage `json:"intersects,omitempty"`
	// Datetime is an RFC 3339 interval "from/to".
	Datetime string `json:"datetime"`
	// Filter is a CQL2 expression, e.g. "eo:cloud_cover < 30".
	Filter string `json:"filter,omitempty"`
	// FilterLang is "cql2-text" (default when Filter is set) or "cql2-json".
	FilterLang string `json:"filter-lang,omitempty"`
	// Limit is the page size, 1..100 (default 10 on the server).
	Limit int `json:"limit,omitempty"`
	// Fields selects returned properties.
	Fields *CatalogFields `json:"fields,omitempty"`
	// Next is the pagination token from the previous page's context.next.
	Next any `json:"next,omitempty"`
}

// CatalogFields is the STAC fields extension (include/exclude lists).
type CatalogFields struct {
	Include []string `json:"include,omitempty"`
	Exclude []string `json:"exclude,omitempty"`
}

// CatalogSearchResponse is one page of a catalog search (a GeoJSON FeatureCollection
// with a context object).
type CatalogSearchResponse struct {
	Type     string         `json:"type"`
	Features []CatalogItem  `json:"features"`
	Context  CatalogContext `json:"context"`
}

// CatalogContext carries pagination: Next is absent on the last page.
type CatalogContext struct {
	Next     any `json:"next,omitempty"`
	Limit    int `json:"limit"`
	Returned int `json:"returned"`
}

// CatalogItem is one STAC item (one scene / acquisition).
type CatalogItem struct {
	Type       string            `json:"type"`
	ID         string            `json:"id"`
	BBox       []float64         `json:"bbox,omitempty"`
	Geometry   json.RawMessage   `json:"geometry,omitempty"`
	Properties CatalogProperties `json:"properties"`
}

// CatalogProperties are the item properties shfleet uses.
type CatalogProperties struct {
	Datetime   time.Time `json:"datetime"`
	CloudCover *float64  `json:"eo:cloud_cover,omitempty"`
}
