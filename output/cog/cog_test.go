package cog_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"shfleet/output/cog"
	"shfleet/sentinel"
	"shfleet/sentinel/sentineltest"
)

// validatorPython is Debian's interpreter, where python3-gdal installs
// osgeo_utils (a pyenv or venv python on PATH does not see it).
const validatorPython = "/usr/bin/python3"

func simTIFF(bbox []float64, crs string, w, h int, evalscript string) []byte {
	req := sentinel.ProcessRequest{
		Input: sentinel.ProcessInput{
			Bounds: sentinel.Bounds{BBox: bbox, Properties: sentinel.BoundsProperties{CRS: crs}},
			Data: []sentinel.InputData{{Type: "sentinel-2-l2a", DataFilter: &sentinel.DataFilter{
				TimeRange: &sentinel.TimeRange{From: time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2025, 6, 2, 0, 0, 0, 0, time.UTC)},
			}}},
		},
		Output:     sentinel.ProcessOutput{Width: w, Height: h},
		Evalscript: evalscript,
	}
	return sentineltest.ProcessBody(req, "default")
}

type gdalInfo struct {
	Size         []int     `json:"size"`
	GeoTransform []float64 `json:"geoTransform"`
	CRS          struct {
		WKT string `json:"wkt"`
	} `json:"coordinateSystem"`
	Bands []struct {
		Block     []int  `json:"block"`
		Type      string `json:"type"`
		Checksum  int    `json:"checksum"`
		Overviews []struct {
			Size     []int `json:"size"`
			Checksum int   `json:"checksum"`
		} `json:"overviews"`
	} `json:"bands"`
}

func gdalinfo(t *testing.T, path string) gdalInfo {
	t.Helper()
	out, err := exec.Command("gdalinfo", "-json", "-checksum", path).Output()
	if err != nil {
		t.Fatalf("gdalinfo %s: %v", path, err)
	}
	var info gdalInfo
	if err := json.Unmarshal(out, &info); err != nil {
		t.Fatal(err)
	}
	return info
}

// TestConvertIsValidCOG converts the simulator's GeoTIFF answers (Deflate
// strips) and checks with GDAL: its COG validator passes, the full-resolution
// pixels are the source's (same band checksums), georeferencing is kept, the
// tiles are 256 x 256 and the overviews halve the size (rounded up) until the
// image fits one tile.
func TestConvertIsValidCOG(t *testing.T) {
	if _, err := exec.LookPath("gdalinfo"); err != nil {
		t.Skip("gdalinfo not installed (Debian: gdal-bin)")
	}
	if err := exec.Command(validatorPython, "-c", "import osgeo_utils.samples.validate_cloud_optimized_geotiff").Run(); err != nil {
		t.Skip("GDAL's COG validator not installed (Debian: python3-gdal)")
	}
	cases := []struct {
		name      string
		src       []byte
		overviews [][]int
		bands     int
		typ       string
	}{
		// 1000 x 700 -> 500 x 350 -> 250 x 175 (fits 256).
		{"1000x700 UINT8x3 UTM", simTIFF([]float64{500000, 5100000, 510000, 5107000}, sentinel.CRSEPSGPrefix+"32633", 1000, 700,
			`//VERSION=3
function setup() { return { input: ["B02", "B03", "B04"], output: { bands: 3, sampleType: "UINT8" } }; }
function evaluatePixel(s) { return [255 * s.B04, 255 * s.B03, 255 * s.B02]; }`),
			[][]int{{500, 350}, {250, 175}}, 3, "Byte"},
		// 600 x 300 -> 300 x 150 -> 150 x 75.
		{"600x300 FLOAT32x1 WGS84", simTIFF([]float64{13, 45, 14, 45.5}, sentinel.CRSEPSGPrefix+"4326", 600, 300,
			`//VERSION=3
function setup() { return { input: ["B08"], output: { bands: 1, sampleType: SampleType.FLOAT32 } }; }
function evaluatePixel(s) { return [s.B08]; }`),
			[][]int{{300, 150}, {150, 75}}, 1, "Float32"},
		// 167 x 167 fits one tile: no overview.
		{"167x167 UINT16x2 UTM", simTIFF([]float64{500000, 5100000, 510020, 5110020}, sentinel.CRSEPSGPrefix+"32633", 167, 167,
			`//VERSION=3
function setup() { return { input: ["B04", "B08"], output: { bands: 2, sampleType: "UINT16" } }; }
function evaluatePixel(s) { return [10000 * s.B04, 10000 * s.B08]; }`),
			nil, 2, "UInt16"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			srcPath, dstPath := filepath.Join(dir, "src.tif"), filepath.Join(dir, "cog.tif")
			if err := os.WriteFile(srcPath, tc.src, 0o644); err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			if err := cog.Convert(&out, bytes.NewReader(tc.src), int64(len(tc.src))); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(dstPath, out.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			v, err := exec.Command(validatorPython, "-m", "osgeo_utils.samples.validate_cloud_optimized_geotiff", dstPath).CombinedOutput()
			if err != nil || !strings.Contains(string(v), "is a valid cloud optimized GeoTIFF") {
				t.Fatalf("validator: %v\n%s", err, v)
			}
			if strings.Contains(string(v), "WARNING") {
				t.Errorf("validator warnings:\n%s", v)
			}
			src, dst := gdalinfo(t, srcPath), gdalinfo(t, dstPath)
			if !slices.Equal(src.Size, dst.Size) || !slices.Equal(src.GeoTransform, dst.GeoTransform) || src.CRS.WKT != dst.CRS.WKT || src.CRS.WKT == "" {
				t.Errorf("georeferencing changed: size %v -> %v, geotransform %v -> %v", src.Size, dst.Size, src.GeoTransform, dst.GeoTransform)
			}
			if len(dst.Bands) != tc.bands {
				t.Fatalf("%d bands; want %d", len(dst.Bands), tc.bands)
			}
			for i, b := range dst.Bands {
				if b.Checksum != src.Bands[i].Checksum {
					t.Errorf("band %d checksum %d; the source's is %d", i+1, b.Checksum, src.Bands[i].Checksum)
				}
				if b.Type != tc.typ || !slices.Equal(b.Block, []int{256, 256}) {
					t.Errorf("band %d: type %s block %v; want %s in 256x256 tiles", i+1, b.Type, b.Block, tc.typ)
				}
				var sizes [][]int
				for _, o := range b.Overviews {
					sizes = append(sizes, o.Size)
				}
				if fmt.Sprint(sizes) != fmt.Sprint(tc.overviews) {
					t.Errorf("band %d overviews %v; want %v", i+1, sizes, tc.overviews)
				}
			}
		})
	}
}

func TestConvertRefusesWhatItCannotRead(t *testing.T) {
	tests := map[string][]byte{
		"not a TIFF":    []byte("PNG....."),
		"BigTIFF":       []byte("II+\x00\x08\x00\x00\x00"),
		"truncated IFD": []byte("II*\x00\xff\x00\x00\x00"),
	}
	want := map[string]string{"not a TIFF": "not a TIFF", "BigTIFF": "BigTIFF", "truncated IFD": "outside the 8-byte file"}
	for name, b := range tests {
		err := cog.Convert(&bytes.Buffer{}, bytes.NewReader(b), int64(len(b)))
		if err == nil || !strings.Contains(err.Error(), want[name]) {
			t.Errorf("%s: Convert error = %v; want one naming %q", name, err, want[name])
		}
	}
}
