package sentineltest

import (
	"net/http"
	"reflect"
	"testing"
	"time"

	"shfleet/sentinel"
)

// TestProcessPUCharges checks the simulator's own PU rules on the wire, with
// charges worked out by hand from the documented factors: area = px/262144 (at
// least 0.01), bands/3 (dataMask free), x2 for FLOAT32, x data samples, at least
// 0.005 per request.
func TestProcessPUCharges(t *testing.T) {
	t.Parallel()
	const (
		rgb = `//VERSION=3
function setup() { return { input: ["B02", "B03", "B04"], output: { bands: 3 } }; }`
		float4 = `//VERSION=3
function setup() {
  return {
    input: [{ bands: ["B02", "B03", "B04", "B08"], units: "REFLECTANCE" }],
    output: { id: "default", bands: 4, sampleType: SampleType.FLOAT32 },
  };
}`
		oneBand = `//VERSION=3
function setup() { return { input: ["B04"], output: { bands: 1 } }; }`
		ndviMask = `//VERSION=3
// dataMask is not counted: 2 bands.
function setup() {
  return { input: ["B04", "B08", "dataMask"], output: { bands: 2, sampleType: "FLOAT32" } };
}`
		orbitRGB = `//VERSION=3
const setup = () => ({
  input: ["B02", "B03", "B04"],
  output: { bands: 3 },
  mosaicking: Mosaicking.ORBIT,
});`
		unreadable = `//VERSION=3
function setup() { return makeSetup(BANDS); }`
		demOrbit = `//VERSION=3
function setup() { return { input: ["DEM"], output: { bands: 1 }, mosaicking: "ORBIT" }; }`
	)
	june := func(from, to int) *sentinel.DataFilter {
		return &sentinel.DataFilter{TimeRange: &sentinel.TimeRange{
			From: time.Date(2025, 6, from, 0, 0, 0, 0, time.UTC),
			To:   time.Date(2025, 6, to, 23, 59, 59, 0, time.UTC),
		}}
	}
	for _, tc := range []struct {
		name        string
		eval        string
		w, h        int
		collection  string
		filter      *sentinel.DataFilter
		want        string
		wantSamples int // for ORBIT: the acquisition days the catalog must show
	}{
		// 512x512 is area 1; 3 bands is 1; 8-bit output: 1 PU.
		{"512x512 rgb uint8", rgb, 512, 512, "sentinel-2-l2a", nil, "1", 0},
		// 256x256 = 0.25 area x 4/3 bands x 2 (FLOAT32) = 0.666667.
		{"256x256 4 bands float32", float4, 256, 256, "sentinel-2-l2a", nil, "0.666667", 0},
		// 10x10: area 100/262144 = 0.00038 -> 0.01; x 1/3 band = 0.0033 -> the minimum 0.005.
		{"10x10 1 band: request minimum", oneBand, 10, 10, "sentinel-2-l2a", nil, "0.005", 0},
		// 20x20: area 0.0015 -> 0.01; x 3/3 = 0.01 (above the request minimum).
		{"20x20 rgb: area minimum", rgb, 20, 20, "sentinel-2-l2a", nil, "0.01", 0},
		// 512x512 x 2/3 bands x 2 (FLOAT32) = 1.333333.
		{"dataMask not counted", ndviMask, 512, 512, "sentinel-2-l2a", nil, "1.333333", 0},
		// Cell E013N45 has acquisitions on June 3, 8 and 13 2025 (5-day revisit):
		// 3 samples x 1 = 3 PU.
		{"ORBIT over 3 acquisition days", orbitRGB, 512, 512, "sentinel-2-l2a", june(1, 14), "3", 3},
		// setup() returns a call: charged as 3 bands, UINT8, SIMPLE: 1024x1024 = 4 area x 1 = 4.
		{"unreadable evalscript", unreadable, 1024, 1024, "sentinel-2-l2a", nil, "4", 0},
		// DEM is timeless: one sample whatever the mosaicking; 1/3 band = 0.333333.
		{"DEM ORBIT is one sample", demOrbit, 512, 512, "dem", nil, "0.333333", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, _, tok := start(t, Config{})
			req := processReq()
			req.Evalscript = tc.eval
			req.Output = sentinel.ProcessOutput{Width: tc.w, Height: tc.h}
			req.Input.Data = []sentinel.InputData{{Type: tc.collection, DataFilter: tc.filter}}
			if tc.wantSamples > 0 { // the literal rests on the catalog's acquisitions
				q := search()
				q.BBox = req.Input.Bounds.BBox
				q.Datetime = "2025-06-01T00:00:00Z/2025-06-14T23:59:59Z"
				q.Limit = 100
				if n := len(searchAll(t, s, tok, q)[0]); n != tc.wantSamples {
					t.Fatalf("catalog has %d acquisitions, want %d", n, tc.wantSamples)
				}
			}
			r := post(t, s, ProcessPath, tok, req)
			wantStatus(t, r, http.StatusOK)
			wantHeader(t, r, "X-ProcessingUnits-Spent", tc.want)
		})
	}
}

func TestParseSetup(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		src  string
		want setupInfo
	}{
		{"plain", `function setup() { return { input: ["B02", "B03", "B04"], output: { bands: 3 } }; }`,
			setupInfo{ok: true, inputBands: 3, outputs: []outputSpec{{"default", 3, ""}}, mosaicking: "SIMPLE"}},
		{"comments, quotes and trailing commas", `//VERSION=3
/* setup() below */
function setup() {
  // return { input: ["X"] } is not this one
  return {
    'input': [{ bands: ['B04', "B08", ` + "`dataMask`" + `], }],
    output: [{ id: "ndvi", bands: 1, sampleType: "FLOAT32", }, { id: "mask", bands: 1, sampleType: SampleType.UINT8 },],
    mosaicking: Mosaicking.TILE,
  };
}`,
			setupInfo{ok: true, inputBands: 2, outputs: []outputSpec{{"ndvi", 1, "FLOAT32"}, {"mask", 1, "UINT8"}}, mosaicking: "TILE"}},
		{"arrow with a block and duplicates", `var setup = () => { const x = 1; return { input: ["B04", "B04", "B08"], output: { bands: x + 1 } } }`,
			setupInfo{ok: true, inputBands: 2, outputs: []outputSpec{{"default", 0, ""}}, mosaicking: "SIMPLE"}},
		{"data fusion", `function setup() { return { input: [{ datasource: "l2a", bands: ["B04"] }, { datasource: "s1", bands: ["VV", "B04"] }], output: { bands: 1 } } }`,
			setupInfo{ok: true, inputBands: 3, outputs: []outputSpec{{"default", 1, ""}}, mosaicking: "SIMPLE"}},
		{"input from a variable", `const B = ["B01"]; function setup() { return { input: B, output: { bands: 1, sampleType: "float32" }, mosaicking: "orbit" } }`,
			setupInfo{ok: true, inputBands: -1, outputs: []outputSpec{{"default", 1, "FLOAT32"}}, mosaicking: "ORBIT"}},
		{"a nested function's return is not setup's", `function setup() { function helper() { return { input: ["A", "B", "C", "D"] } } return { input: ["B02"] } }`,
			setupInfo{ok: true, inputBands: 1, mosaicking: "SIMPLE"}},
		{"no setup", `function evaluatePixel(s) { return [s.B04]; }`,
			setupInfo{inputBands: -1, mosaicking: "SIMPLE"}},
		{"unterminated", `function setup() { return { input: ["B02", "B03"`,
			setupInfo{ok: true, inputBands: 2, mosaicking: "SIMPLE"}},
		{"unknown mosaicking", `function setup() { return { input: [], mosaicking: "WEEKLY" } }`,
			setupInfo{ok: true, inputBands: 0, mosaicking: "SIMPLE"}},
	} {
		if got := parseSetup(tc.src); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: parseSetup = %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

// FuzzParseSetup: the parser reads untrusted scripts; it must not panic or hang,
// and what it reports must be sane.
func FuzzParseSetup(f *testing.F) {
	for _, s := range []string{
		`function setup() { return { input: ["B02"], output: { bands: 1 } } }`,
		`setup = () => ({ input: [{ bands: ["B04", "dataMask"] }], output: [{ id: "a", sampleType: SampleType.FLOAT32 }] })`,
		`function setup() { return { input: [..., {]}, output: { bands: -1e999 }`,
		"function setup() { return { `", "/*", `"\`, `setup(`, `function setup(){return(((({`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		info := parseSetup(src)
		if info.inputBands < -1 || info.chargedBands() < 0 {
			t.Fatalf("bands %d", info.inputBands)
		}
		switch info.mosaicking {
		case "SIMPLE", "ORBIT", "TILE":
		default:
			t.Fatalf("mosaicking %q", info.mosaicking)
		}
		for _, o := range info.outputs {
			if o.bands < 0 || o.id == "" {
				t.Fatalf("output %+v", o)
			}
		}
		if pu := chargePU(100, 100, info, 1); !(pu >= minRequestPU) {
			t.Fatalf("charge %v", pu)
		}
	})
}
