package mosaic

import (
	"strings"
	"testing"
)

func TestBuild(t *testing.T) {
	r := Raster{EPSG: 32633, Bands: 2, DataType: "UInt16", NoData: "0"}
	// Two 10 x 10 px tiles of 10 m side by side (x 0-100 and 100-200), one
	// 5 px to the right and 10 m up (fractional: 105/10 = 10.5 px).
	tiles := []Tile{
		{Key: "J/A/2025-06-01/default.tif", BBox: [4]float64{0, 0, 100, 100}, Width: 10, Height: 10},
		{Key: "J/B/2025-06-01/default.tif", BBox: [4]float64{100, 0, 200, 100}, Width: 10, Height: 10},
	}
	b, err := Build("J/mosaic/2025-06-01/default_EPSG32633.vrt", r, tiles)
	if err != nil {
		t.Fatal(err)
	}
	x := string(b)
	for _, want := range []string{
		`<VRTDataset rasterXSize="20" rasterYSize="10">`, // 200 m / 10 m by 100 m / 10 m
		`<SRS dataAxisToSRSAxisMapping="1,2">EPSG:32633</SRS>`,
		`<GeoTransform>0, 10, 0, 100, 0, -10</GeoTransform>`,
		`<VRTRasterBand dataType="UInt16" band="2">`,
		`<NoDataValue>0</NoDataValue>`,
		`<SourceFilename relativeToVRT="1">../../A/2025-06-01/default.tif</SourceFilename>`,
		`<DstRect xOff="10" yOff="0" xSize="10" ySize="10">`,
	} {
		if !strings.Contains(x, want) {
			t.Errorf("VRT lacks %s:\n%s", want, x)
		}
	}
	if n := strings.Count(x, "<SimpleSource>"); n != 4 {
		t.Errorf("%d sources; want 2 tiles x 2 bands", n)
	}

	off := append(tiles, Tile{Key: "J/C/2025-06-01/default.tif", BBox: [4]float64{105, 10, 205, 110}, Width: 10, Height: 10})
	b, err = Build("m.vrt", Raster{EPSG: 4326, Bands: 1, DataType: "Byte"}, off)
	if err != nil {
		t.Fatal(err)
	}
	// Extent 0-205 x 0-110: ceil(20.5) = 21 by 11 px; C at 10.5 across, 0 down.
	for _, want := range []string{`rasterXSize="21" rasterYSize="11"`, `<DstRect xOff="10.5" yOff="0"`, `<DstRect xOff="0" yOff="1"`, `dataAxisToSRSAxisMapping="2,1">EPSG:4326`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("VRT lacks %s:\n%s", want, b)
		}
	}

	bad := append(tiles, Tile{Key: "J/D.tif", BBox: [4]float64{200, 0, 300, 100}, Width: 20, Height: 20})
	if _, err := Build("m.vrt", r, bad); err == nil || !strings.Contains(err.Error(), "J/D.tif") || !strings.Contains(err.Error(), "another pixel size") {
		t.Errorf("Build with a 5 m tile among 10 m ones = %v; want an error naming J/D.tif", err)
	}
	if DataType(8, 2) != "" || DataType(32, 3) != "Float32" {
		t.Error("DataType: int8 must have no name here, float32 is Float32")
	}
}
