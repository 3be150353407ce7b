// Package grid reads areas of interest (GeoJSON, bbox lists) and splits them into
// tiles on a grid: UTM metre grids per zone like the Batch Processing API's, or a
// WGS84 degree grid, keeping only tiles that intersect the AOI geometry and that
// respect the Process API's 2500 px limit.
//
// Inputs: ParseGeoJSON (FeatureCollection, Feature, Polygon, MultiPolygon in
// WGS84 lon/lat), ParseBBoxCSV (lines minlon,minlat,maxlon,maxlat[,name]) and
// ParseFile, which picks one by extension. Every problem of a file is reported at
// once in an *InputError naming the file, the feature or line, and the field.
//
// Grids (ParseGrid): "utm-10km", "utm-20km" and "utm-100km" have the Batch API's
// tile sizes (10000, 20040 and 100080 m), snapped to multiples of the size in
// each UTM zone's easting and northing; "wgs84-<x>deg" has x-degree cells.
// Split tiles each part of an AOI in the UTM zone and hemisphere it lies in, and
// names tiles deterministically: "33N-0450000-5090000-10km" (zone, hemisphere,
// min easting, min northing, grid) or "wgs84-1deg-E013N45" (south-west corner),
// with "_r<row>c<col>" appended to sub-tiles when SplitOptions.Subdivide splits
// cells that exceed MaxPixels.
package grid
