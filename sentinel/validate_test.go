package sentinel

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

// fieldsOf lists the fields named by the FieldErrors joined in err.
func fieldsOf(err error) []string {
	var out []string
	var walk func(error)
	walk = func(e error) {
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, x := range j.Unwrap() {
				walk(x)
			}
			return
		}
		var fe *FieldError
		if errors.As(e, &fe) {
			out = append(out, fe.Field)
		}
	}
	if err != nil {
		walk(err)
	}
	return out
}

func TestValidateProcessRequest(t *testing.T) {
	t.Parallel()
	cc := 120.0
	tests := []struct {
		name   string
		mod    func(*ProcessRequest)
		fields []string
		msg    string
	}{
		{name: "valid", mod: func(*ProcessRequest) {}},
		{name: "valid resx/resy in UTM", mod: func(r *ProcessRequest) {
			r.Input.Bounds = Bounds{BBox: []float64{500000, 4990000, 520000, 5010000}, Properties: BoundsProperties{CRS: CRSEPSGPrefix + "32633"}}
			r.Output.Width, r.Output.Height, r.Output.ResX, r.Output.ResY = 0, 0, 10, 10
		}},
		{name: "valid geometry only", mod: func(r *ProcessRequest) {
			r.Input.Bounds.BBox = nil
			r.Input.Bounds.Geometry = json.RawMessage(`{"type":"Polygon","coordinates":[[[13,45],[13.1,45],[13.1,45.1],[13,45]]]}`)
		}},
		{name: "valid width only", mod: func(r *ProcessRequest) { r.Output.Height = 0 }},
		{name: "valid default size", mod: func(r *ProcessRequest) { r.Output.Width, r.Output.Height = 0, 0 }},
		{name: "width too big", mod: func(r *ProcessRequest) { r.Output.Width = 3000 }, fields: []string{"output.width"},
			msg: "output.width: 3000 exceeds the Process API limit of 2500 px; lower the resolution or split the tile"},
		{name: "height zero with width negative", mod: func(r *ProcessRequest) { r.Output.Width, r.Output.Height = -1, 10 }, fields: []string{"output.width"}},
		{name: "both pairs", mod: func(r *ProcessRequest) { r.Output.ResX, r.Output.ResY = 10, 10 }, fields: []string{"output"}},
		{name: "resx zero", mod: func(r *ProcessRequest) {
			r.Output.Width, r.Output.Height, r.Output.ResX, r.Output.ResY = 0, 0, 0, 10
		}, fields: []string{"output.resx"}},
		{name: "resolution over 2500 px", mod: func(r *ProcessRequest) {
			r.Input.Bounds = Bounds{BBox: []float64{500000, 4990000, 530000, 5010000}, Properties: BoundsProperties{CRS: CRSEPSGPrefix + "32633"}}
			r.Output.Width, r.Output.Height, r.Output.ResX, r.Output.ResY = 0, 0, 10, 10
		}, fields: []string{"output.resx"}, msg: "3000 px"},
		{name: "bbox 3 numbers", mod: func(r *ProcessRequest) { r.Input.Bounds.BBox = []float64{1, 2, 3} }, fields: []string{"input.bounds.bbox"}},
		{name: "bbox min x >= max x", mod: func(r *ProcessRequest) { r.Input.Bounds.BBox = []float64{14, 45, 13, 46} }, fields: []string{"input.bounds.bbox"}, msg: "minX"},
		{name: "bbox min y >= max y", mod: func(r *ProcessRequest) { r.Input.Bounds.BBox = []float64{13, 46, 14, 46} }, fields: []string{"input.bounds.bbox"}, msg: "minY"},
		{name: "bbox NaN", mod: func(r *ProcessRequest) { r.Input.Bounds.BBox = []float64{13, math.NaN(), 14, 46} }, fields: []string{"input.bounds.bbox[1]"}},
		{name: "no bounds", mod: func(r *ProcessRequest) { r.Input.Bounds.BBox = nil }, fields: []string{"input.bounds"}},
		{name: "bad geometry", mod: func(r *ProcessRequest) { r.Input.Bounds.Geometry = json.RawMessage(`[1,2]`) }, fields: []string{"input.bounds.geometry"}},
		{name: "CRS short form", mod: func(r *ProcessRequest) { r.Input.Bounds.Properties.CRS = "EPSG:4326" }, fields: []string{"input.bounds.properties.crs"}},
		{name: "CRS non-numeric code", mod: func(r *ProcessRequest) { r.Input.Bounds.Properties.CRS = CRSEPSGPrefix + "abc" }, fields: []string{"input.bounds.properties.crs"}},
		{name: "no data", mod: func(r *ProcessRequest) { r.Input.Data = nil }, fields: []string{"input.data"}},
		{name: "data without type", mod: func(r *ProcessRequest) { r.Input.Data = append(r.Input.Data, InputData{}) }, fields: []string{"input.data[1].type"}},
		{name: "time range reversed", mod: func(r *ProcessRequest) {
			r.Input.Data[0].DataFilter = &DataFilter{TimeRange: &TimeRange{From: time.Date(2024, 7, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)}}
		}, fields: []string{"input.data[0].dataFilter.timeRange"}},
		{name: "cloud coverage over 100", mod: func(r *ProcessRequest) { r.Input.Data[0].DataFilter = &DataFilter{MaxCloudCoverage: &cc} }, fields: []string{"input.data[0].dataFilter.maxCloudCoverage"}},
		{name: "duplicate response ids", mod: func(r *ProcessRequest) {
			r.Output.Responses = append(r.Output.Responses, OutputResponse{Identifier: "default"})
		}, fields: []string{"output.responses[1].identifier"}},
		{name: "empty evalscript", mod: func(r *ProcessRequest) { r.Evalscript = "  \n" }, fields: []string{"evalscript"}},
		{name: "several problems at once", mod: func(r *ProcessRequest) {
			r.Evalscript = ""
			r.Output.Height = 2501
			r.Input.Data = nil
		}, fields: []string{"input.data", "output.height", "evalscript"}},
	}
	for _, tt := range tests {
		req := validProcessRequest()
		tt.mod(&req)
		err := ValidateProcessRequest(req)
		got := fieldsOf(err)
		if strings.Join(got, ",") != strings.Join(tt.fields, ",") {
			t.Errorf("%s: fields %v, want %v (err %v)", tt.name, got, tt.fields, err)
		}
		if tt.msg != "" && (err == nil || !strings.Contains(err.Error(), tt.msg)) {
			t.Errorf("%s: message %q lacks %q", tt.name, err, tt.msg)
		}
	}
}

func TestOutputSize(t *testing.T) {
	t.Parallel()
	bbox := []float64{0, 0, 2000, 1000}
	tests := []struct {
		name string
		out  ProcessOutput
		bbox []float64
		w, h int
		ok   bool
	}{
		{"explicit", ProcessOutput{Width: 300, Height: 200}, bbox, 300, 200, true},
		{"width only keeps aspect", ProcessOutput{Width: 400}, bbox, 400, 200, true},
		{"height only keeps aspect", ProcessOutput{Height: 100}, bbox, 200, 100, true},
		{"resolution", ProcessOutput{ResX: 10, ResY: 10}, bbox, 200, 100, true},
		{"resolution rounds up", ProcessOutput{ResX: 30, ResY: 30}, bbox, 67, 34, true},
		{"resolution without bbox", ProcessOutput{ResX: 10, ResY: 10}, nil, 0, 0, false},
		{"default", ProcessOutput{}, nil, 256, 256, true},
	}
	for _, tt := range tests {
		req := ProcessRequest{Output: tt.out, Input: ProcessInput{Bounds: Bounds{BBox: tt.bbox}}}
		w, h, ok := OutputSize(req)
		if w != tt.w || h != tt.h || ok != tt.ok {
			t.Errorf("%s: %dx%d %v, want %dx%d %v", tt.name, w, h, ok, tt.w, tt.h, tt.ok)
		}
	}
}

const (
	script3BandsUint8 = `//VERSION=3
function setup() { return { input: ["B04", "B03", "B02", "dataMask"], output: { bands: 4, sampleType: "UINT8" } }; }
function evaluatePixel(s) { return [s.B04, s.B03, s.B02, s.dataMask]; }`
	script2BandsFloat32 = `//VERSION=3
function setup() { return { input: [{ bands: ["B04", "B08"] }], output: { id: "ndvi", bands: 1, sampleType: "FLOAT32" } }; }
function evaluatePixel(s) { return [(s.B08 - s.B04) / (s.B08 + s.B04)]; }`
	script3BandsOrbit = `//VERSION=3
function setup() { return { input: ["B04", "B03", "B02"], output: { bands: 3 }, mosaicking: "ORBIT" }; }
function evaluatePixel(samples) { return [samples[0].B04, samples[0].B03, samples[0].B02]; }`
)

func TestEstimateRequestPU(t *testing.T) {
	t.Parallel()
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
	sized := func(script string, w, h int) ProcessRequest {
		r := validProcessRequest()
		r.Evalscript, r.Output.Width, r.Output.Height = script, w, h
		return r
	}
	tests := []struct {
		name    string
		req     ProcessRequest
		samples int
		want    float64
	}{
		{"512x512, 3 bands, uint8 = 1 PU", sized(script3BandsUint8, 512, 512), 1, 1},
		{"2000x2000, 2 bands, float32", sized(script2BandsFloat32, 2000, 2000), 1, 2000.0 * 2000 / 262144 * 2.0 / 3 * 2},
		{"10x10 uses the minimum area 0.01", sized(script3BandsUint8, 10, 10), 1, 0.01},
		{"SIMPLE mosaicking ignores samples", sized(script3BandsUint8, 512, 512), 5, 1},
		{"ORBIT mosaicking counts samples", sized(script3BandsOrbit, 512, 512), 4, 4},
		{"ORBIT with 0 samples counts one", sized(script3BandsOrbit, 512, 512), 0, 1},
		{"1x1, 1 band: minimum charge", sized(`//VERSION=3
function setup() { return { input: ["B04"], output: { bands: 1 } }; }`, 1, 1), 1, PUMinCharge},
	}
	resReq := validProcessRequest()
	resReq.Evalscript = script3BandsUint8
	resReq.Input.Bounds = Bounds{BBox: []float64{500000, 4990000, 505120, 4995120}, Properties: BoundsProperties{CRS: CRSEPSGPrefix + "32633"}}
	resReq.Output = ProcessOutput{ResX: 10, ResY: 10}
	tests = append(tests, struct {
		name    string
		req     ProcessRequest
		samples int
		want    float64
	}{"resx/resy 10 m over 5120 m = 512x512", resReq, 1, 1})
	for _, tt := range tests {
		if got := EstimateRequestPU(tt.req, tt.samples); !near(got, tt.want) {
			t.Errorf("%s: %.6f PU, want %.6f", tt.name, got, tt.want)
		}
	}
	if got := EstimateRequestPU(sized(script2BandsFloat32, 2000, 2000), 1); math.Abs(got-20.345) > 0.001 {
		t.Errorf("2000x2000 float32 2 bands = %.4f, want about 20.345", got)
	}
	// Batch discount and minimum charge, from the same rules.
	if got := EstimatePU(PUParams{Width: 512, Height: 512, Batch: true}); !near(got, 1.0/3) {
		t.Errorf("batch 512x512 = %g, want 1/3", got)
	}
	if got := EstimatePU(PUParams{Width: 1, Height: 1, InputBands: 1, Batch: true}); got != PUMinCharge {
		t.Errorf("tiny batch = %g, want the minimum charge %g", got, PUMinCharge)
	}
	// Unknown size (resolution without bbox) estimates the largest output.
	noBBox := resReq
	noBBox.Input.Bounds.BBox = nil
	if got, want := EstimateRequestPU(noBBox, 1), 2500.0*2500/262144; !near(got, want) {
		t.Errorf("unknown size: %g, want the 2500x2500 bound %g", got, want)
	}
}
