// Package grid reads areas of interest (GeoJSON, bbox lists) and splits them into
// tiles on a grid: UTM metre grids per zone like the Batch Processing API's, or a
// WGS84 degree grid, keeping only tiles that intersect the AOI geometry and that
// respect the Process API's 2500 px limit.
package grid
