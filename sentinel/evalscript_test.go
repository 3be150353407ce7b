package sentinel

import (
	"reflect"
	"testing"
)

func TestInspectEvalscript(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want EvalscriptInfo
	}{
		{"true color uint8", `//VERSION=3
function setup() { return { input: ["B02", "B03", "B04", "dataMask"], output: { bands: 4 } }; }
function evaluatePixel(s) { return [s.B04, s.B03, s.B02, s.dataMask]; }`,
			EvalscriptInfo{Bands: 3, Mosaicking: "SIMPLE", Outputs: []string{"default"}}},
		{"float32 orbit two outputs", `//VERSION=3
function setup() {
  return {
    input: [{ bands: ["B04", "B08"], units: "REFLECTANCE" }],
    output: [{ id: "ndvi", bands: 1, sampleType: "FLOAT32" }, { id: "mask", bands: 1, sampleType: SampleType.UINT8 }],
    mosaicking: Mosaicking.ORBIT
  };
}`, EvalscriptInfo{Bands: 2, Float32: true, Mosaicking: "ORBIT", Outputs: []string{"ndvi", "mask"}}},
		{"unparseable falls back", `garbage`, EvalscriptInfo{Mosaicking: "SIMPLE", Outputs: []string{"default"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := InspectEvalscript(tt.src); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}
