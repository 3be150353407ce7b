package sentineltest

import (
	"archive/tar"
	"bytes"
	"encoding/binary"
	"io"
	"math"
	"net/http"
	"slices"
	"testing"
	"time"

	"shfleet/sentinel"
)

// answerCase is one request shape and what each of its answers must be. The
// expected values are worked out by hand in the comments of tiffCases.
type answerCase struct {
	name string
	req  sentinel.ProcessRequest
	tar  bool
	want map[string]wantRaster // by output id
}

type wantRaster struct {
	w, h, bands int
	bits        uint64 // BitsPerSample of every band
	format      uint64 // SampleFormat: 1 unsigned, 2 signed, 3 float
	gdalType    string // GDAL's name of the data type
	lo, hi      float64
	epsg        int
	geoKeys     []uint64
	// gt is GDAL's geotransform: originX, pixelW, 0, originY, 0, -pixelH.
	gt [6]float64
}

// shapeReq is processReq with other bounds, output and evalscript.
func shapeReq(bbox []float64, crs string, out sentinel.ProcessOutput, evalscript string) sentinel.ProcessRequest {
	req := processReq()
	req.Input.Bounds = sentinel.Bounds{BBox: bbox, Properties: sentinel.BoundsProperties{CRS: crs}}
	req.Output = out
	req.Evalscript = evalscript
	return req
}

// GeoKey directories: version 1, revision 1.0, 3 keys, then {id, 0, 1, value}
// for GTModelType (1 projected, 2 geographic), GTRasterType (1 PixelIsArea) and
// ProjectedCSType (3072) or GeographicType (2048).
var (
	keys32633 = []uint64{1, 1, 0, 3, 1024, 0, 1, 1, 1025, 0, 1, 1, 3072, 0, 1, 32633}
	keys32634 = []uint64{1, 1, 0, 3, 1024, 0, 1, 1, 1025, 0, 1, 1, 3072, 0, 1, 32634}
	keys4326  = []uint64{1, 1, 0, 3, 1024, 0, 1, 2, 1025, 0, 1, 1, 2048, 0, 1, 4326}
)

func tiffCases() []answerCase {
	return []answerCase{{
		// (a) A 10 km UTM tile at 60 m: (510020-500000)/167 = 10020/167 = 60 m per
		// pixel both ways; origin is the top left corner (minX, maxY).
		name: "167x167 UINT8x3 EPSG:32633",
		req: shapeReq([]float64{500000, 5100000, 510020, 5110020}, sentinel.CRSEPSGPrefix+"32633",
			sentinel.ProcessOutput{Width: 167, Height: 167},
			`//VERSION=3
function setup() { return { input: ["B02", "B03", "B04"], output: { bands: 3, sampleType: "UINT8" } }; }
function evaluatePixel(s) { return [255 * s.B04, 255 * s.B03, 255 * s.B02]; }`),
		want: map[string]wantRaster{"default": {w: 167, h: 167, bands: 3, bits: 8, format: 1, gdalType: "Byte",
			lo: 16, hi: 247, epsg: 32633, geoKeys: keys32633,
			gt: [6]float64{500000, 60, 0, 5110020, 0, -60}}},
	}, {
		// (b) WGS84 degrees: (14-13)/256 = 1/256 = 0.00390625 deg across and
		// (45.5-45)/128 = 0.5/128 = 0.00390625 deg down; origin (13, 45.5).
		name: "256x128 FLOAT32x1 EPSG:4326",
		req: shapeReq([]float64{13, 45, 14, 45.5}, sentinel.CRSEPSGPrefix+"4326",
			sentinel.ProcessOutput{Width: 256, Height: 128},
			`//VERSION=3
function setup() { return { input: ["B08"], output: { bands: 1, sampleType: SampleType.FLOAT32 } }; }
function evaluatePixel(s) { return [s.B08]; }`),
		want: map[string]wantRaster{"default": {w: 256, h: 128, bands: 1, bits: 32, format: 3, gdalType: "Float32",
			lo: 0.05, hi: 0.8, epsg: 4326, geoKeys: keys4326,
			gt: [6]float64{13, 0.00390625, 0, 45.5, 0, -0.00390625}}},
	}, {
		// (c) resx/resy 20 m over 2000 m x 1000 m: 2000/20 = 100 by 1000/20 = 50
		// px, pixel 20 m; origin (400000, 5001000). Two outputs, so a tar.
		name: "resx 20 m 100x50 UINT16x2 + UINT8x1 EPSG:32634 tar",
		req: func() sentinel.ProcessRequest {
			r := shapeReq([]float64{400000, 5000000, 402000, 5001000}, sentinel.CRSEPSGPrefix+"32634",
				sentinel.ProcessOutput{ResX: 20, ResY: 20},
				`//VERSION=3
function setup() {
  return {
    input: ["B04", "B08", "dataMask"],
    output: [{ id: "default", bands: 2, sampleType: "UINT16" }, { id: "mask", bands: 1, sampleType: "UINT8" }]
  };
}
function evaluatePixel(s) { return { default: [s.B04 * 10000, s.B08 * 10000], mask: [s.dataMask] }; }`)
			r.Output.Responses = []sentinel.OutputResponse{
				{Identifier: "default", Format: sentinel.ResponseFormat{Type: "image/tiff"}},
				{Identifier: "mask", Format: sentinel.ResponseFormat{Type: "image/tiff"}},
			}
			return r
		}(),
		tar: true,
		want: map[string]wantRaster{
			"default": {w: 100, h: 50, bands: 2, bits: 16, format: 1, gdalType: "UInt16",
				lo: 300, hi: 9806, epsg: 32634, geoKeys: keys32634,
				gt: [6]float64{400000, 20, 0, 5001000, 0, -20}},
			"mask": {w: 100, h: 50, bands: 1, bits: 8, format: 1, gdalType: "Byte",
				lo: 16, hi: 247, epsg: 32634, geoKeys: keys32634,
				gt: [6]float64{400000, 20, 0, 5001000, 0, -20}},
		},
	}}
}

// serve posts c.req to a simulator and returns its answers by output id (the tar
// entries "<id>.tif", or the one body as "default"), checking each equals
// ProcessBody.
func serve(t *testing.T, c answerCase) map[string][]byte {
	t.Helper()
	s, _, tok := start(t, Config{})
	r := post(t, s, ProcessPath, tok, c.req)
	wantStatus(t, r, http.StatusOK)
	got := map[string][]byte{}
	if !c.tar {
		wantHeader(t, r, "Content-Type", "image/tiff")
		got["default"] = r.body
	} else {
		wantHeader(t, r, "Content-Type", TarContentType)
		tr := tar.NewReader(bytes.NewReader(r.body))
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			got[h.Name[:len(h.Name)-len(".tif")]] = b
		}
	}
	if len(got) != len(c.want) {
		t.Fatalf("%d answers, want %d", len(got), len(c.want))
	}
	for id, b := range got {
		if !bytes.Equal(b, ProcessBody(c.req, id)) {
			t.Fatalf("answer %q differs from ProcessBody", id)
		}
	}
	return got
}

// TestProcessAnswerTags decodes the served GeoTIFFs with the test's own TIFF
// reader and checks every tag that makes them valid and georeferenced, and the
// pixels.
func TestProcessAnswerTags(t *testing.T) {
	t.Parallel()
	for _, c := range tiffCases() {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			for id, b := range serve(t, c) {
				want := c.want[id]
				d := mustDecodeTIFF(t, b)
				ints := func(tag uint16) []uint64 { return d.tags[tag].ints }
				rep := func(v uint64, n int) []uint64 { return slices.Repeat([]uint64{v}, n) }
				for _, x := range []struct {
					name string
					tag  uint16
					want []uint64
				}{
					{"ImageWidth", 256, []uint64{uint64(want.w)}},
					{"ImageLength", 257, []uint64{uint64(want.h)}},
					{"BitsPerSample", 258, rep(want.bits, want.bands)},
					{"Compression (8 Deflate)", 259, []uint64{8}},
					{"Photometric (1 BlackIsZero)", 262, []uint64{1}},
					{"SamplesPerPixel", 277, []uint64{uint64(want.bands)}},
					{"PlanarConfiguration (1 contiguous)", 284, []uint64{1}},
					{"ExtraSamples (0 unspecified)", 338, rep(0, want.bands-1)},
					{"SampleFormat", 339, rep(want.format, want.bands)},
					{"GeoKeyDirectory", 34735, want.geoKeys},
				} {
					if got := ints(x.tag); !slices.Equal(got, x.want) && !(len(got) == 0 && len(x.want) == 0) {
						t.Errorf("%s: %s = %v, want %v", id, x.name, got, x.want)
					}
				}
				// ModelPixelScale is (pixelW, pixelH, 0); ModelTiepoint maps raster
				// (0, 0, 0) to (originX, originY, 0).
				scale := []float64{want.gt[1], -want.gt[5], 0}
				tie := []float64{0, 0, 0, want.gt[0], want.gt[3], 0}
				if got := d.tags[33550].floats; !slices.Equal(got, scale) {
					t.Errorf("%s: ModelPixelScale = %v, want %v", id, got, scale)
				}
				if got := d.tags[33922].floats; !slices.Equal(got, tie) {
					t.Errorf("%s: ModelTiepoint = %v, want %v", id, got, tie)
				}
				if desc := d.tags[270].str; desc != "sentineltest: request "+RequestKey(c.req)+`, output "`+id+`"` {
					t.Errorf("%s: ImageDescription = %q", id, desc)
				}
				// The decoder checked each strip inflates to its rows; all of them
				// are width x height x bands x bytes, what a full-size body is.
				if n := int64(len(d.pixels)); n != FullSizeBodyLength(c.req, id) {
					t.Errorf("%s: %d pixel bytes, want %d", id, n, FullSizeBodyLength(c.req, id))
				}
				lo, hi := sampleRange(d.pixels, want)
				if lo < want.lo || hi > want.hi || !(hi > lo) {
					t.Errorf("%s: samples in [%g, %g], want a pattern inside [%g, %g]", id, lo, hi, want.lo, want.hi)
				}
			}
		})
	}
}

// sampleRange is the least and greatest sample of little-endian pixels.
func sampleRange(pix []byte, w wantRaster) (lo, hi float64) {
	lo, hi = math.Inf(1), math.Inf(-1)
	step := int(w.bits / 8)
	for i := 0; i+step <= len(pix); i += step {
		var v float64
		switch {
		case step == 1:
			v = float64(pix[i])
		case step == 2:
			v = float64(binary.LittleEndian.Uint16(pix[i:]))
		case w.format == 3:
			v = float64(math.Float32frombits(binary.LittleEndian.Uint32(pix[i:])))
		}
		lo, hi = min(lo, v), max(hi, v)
	}
	return lo, hi
}

func TestProcessBodySampleTypes(t *testing.T) {
	t.Parallel()
	// Signed types and AUTO, 2x2 px: SampleFormat 2 for INT8/INT16, AUTO is UINT8.
	for _, c := range []struct {
		sampleType   string
		bits, format uint64
	}{{"INT8", 8, 2}, {"INT16", 16, 2}, {"AUTO", 8, 1}, {"UINT16", 16, 1}} {
		req := shapeReq([]float64{0, 0, 20, 20}, sentinel.CRSEPSGPrefix+"32631", sentinel.ProcessOutput{Width: 2, Height: 2},
			`function setup() { return { input: ["B01"], output: { bands: 5, sampleType: "`+c.sampleType+`" } }; }`)
		d := mustDecodeTIFF(t, ProcessBody(req, "default"))
		if got := d.tags[258].ints; !slices.Equal(got, []uint64{c.bits, c.bits, c.bits, c.bits, c.bits}) {
			t.Errorf("%s: BitsPerSample = %v", c.sampleType, got)
		}
		if got := d.tags[339].ints; !slices.Equal(got, []uint64{c.format, c.format, c.format, c.format, c.format}) {
			t.Errorf("%s: SampleFormat = %v", c.sampleType, got)
		}
		// 2 x 2 px x 5 bands x bits/8 bytes.
		if n := len(d.pixels); n != 20*int(c.bits/8) {
			t.Errorf("%s: %d pixel bytes, want %d", c.sampleType, n, 20*int(c.bits/8))
		}
	}
	// More bands than the simulator makes: capped at 256.
	req := shapeReq([]float64{0, 0, 20, 20}, sentinel.CRSEPSGPrefix+"32631", sentinel.ProcessOutput{Width: 1, Height: 1},
		`function setup() { return { input: ["B01"], output: { bands: 100000000 } }; }`)
	if spp := mustDecodeTIFF(t, ProcessBody(req, "default")).int(277); spp != 256 {
		t.Errorf("bands: 100000000 gave SamplesPerPixel %d, want the cap 256", spp)
	}
	// An unreadable setup(): DefaultOutputBands (3) UINT8 bands.
	req = shapeReq([]float64{0, 0, 20, 20}, sentinel.CRSEPSGPrefix+"32631", sentinel.ProcessOutput{Width: 2, Height: 2}, `garbage`)
	if d := mustDecodeTIFF(t, ProcessBody(req, "default")); !slices.Equal(d.tags[258].ints, []uint64{8, 8, 8}) {
		t.Errorf("unreadable setup(): BitsPerSample = %v, want [8 8 8]", d.tags[258].ints)
	}
}

func TestProcessBodyDeterministic(t *testing.T) {
	t.Parallel()
	base := tiffCases()[0].req
	a, again := ProcessBody(base, "default"), ProcessBody(base, "default")
	if !bytes.Equal(a, again) {
		t.Fatal("the same request gave different bytes")
	}
	// Same size, bbox and format, another time range: only the pattern (and the
	// description) can tell them apart, and the pixels must differ too.
	later := tiffCases()[0].req
	later.Input.Data[0].DataFilter.TimeRange.From = time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC)
	b := ProcessBody(later, "default")
	if bytes.Equal(a, b) {
		t.Fatal("different requests gave the same bytes")
	}
	if bytes.Equal(mustDecodeTIFF(t, a).pixels, mustDecodeTIFF(t, b).pixels) {
		t.Error("different requests gave the same pixels")
	}
	if bytes.Equal(a, ProcessBody(base, "other")) {
		t.Error("different outputs of one request gave the same bytes")
	}
}

// BenchmarkProcessBodyLarge is the largest answer the simulator gives in one
// band set: 2500 x 2500 px, 4 FLOAT32 bands (100 MB of samples).
func BenchmarkProcessBodyLarge(b *testing.B) {
	req := shapeReq([]float64{500000, 5075000, 525000, 5100000}, sentinel.CRSEPSGPrefix+"32633",
		sentinel.ProcessOutput{Width: 2500, Height: 2500},
		`function setup() { return { input: ["B02", "B03", "B04", "B08"], output: { bands: 4, sampleType: "FLOAT32" } }; }`)
	b.ReportAllocs()
	var n int
	for b.Loop() {
		n = len(ProcessBody(req, "default"))
	}
	b.ReportMetric(float64(n), "bytes/answer")
}
