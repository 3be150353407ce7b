package grid

// Tile is one cell of a grid that intersects an AOI: the unit of work of a job.
// Its name is deterministic and path-safe, so a re-run maps to the same outputs.
type Tile struct {
	// Name is deterministic and path-safe, e.g. "33N-0450000-5090000-10km" for a
	// UTM tile (zone, hemisphere, min easting, min northing, grid) or
	// "wgs84-1deg-E013N45" for a degree tile (south-west corner).
	Name string `json:"name"`
	// AOI is the name of the AOI the tile was made for.
	AOI string `json:"aoi"`
	// AOIs lists every AOI the tile intersects, in input order (AOIs[0] == AOI).
	AOIs []string `json:"aois,omitempty"`
	// EPSG is the tile's CRS as an EPSG code, e.g. 32633 (UTM 33N) or 4326.
	EPSG int `json:"epsg"`
	// BBox is minX, minY, maxX, maxY in the tile's CRS (metres for UTM, degrees
	// for WGS84).
	BBox [4]float64 `json:"bbox"`
	// WGS84 is the tile's bounding box in longitude/latitude, for catalog searches.
	WGS84 [4]float64 `json:"wgs84"`
	// Width and Height are the output size in pixels at the requested resolution.
	Width  int `json:"width"`
	Height int `json:"height"`
}
