package grid_test

import (
	"fmt"
	"strings"

	"shfleet/grid"
)

func ExampleSplit() {
	aois, err := grid.ParseBBoxCSV("fields.csv", strings.NewReader("minlon,minlat,maxlon,maxlat,name\n14.499,45.999,14.501,46.001,plot\n"), grid.Limits{})
	if err != nil {
		fmt.Println(err)
		return
	}
	g, _ := grid.ParseGrid("utm-10km")
	tiles, err := grid.Split(aois, g, grid.SplitOptions{Resolution: 10})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, t := range tiles {
		fmt.Println(t.Name, t.EPSG, t.BBox, t.Width, t.Height, t.AOI)
	}
	// Output:
	// 33N-0460000-5090000-10km 32633 [460000 5.09e+06 470000 5.1e+06] 1000 1000 plot
}

func ExampleParseGeoJSON() {
	_, err := grid.ParseGeoJSON("aoi.geojson", strings.NewReader(`{"type":"FeatureCollection","features":[
		{"type":"Feature","properties":{"name":"road"},"geometry":{"type":"LineString","coordinates":[[14,46],[15,46]]}}]}`), grid.Limits{})
	fmt.Println(err)
	// Output:
	// aoi.geojson: feature 0: geometry.type: geometry type LineString is not supported; use Polygon or MultiPolygon
}
