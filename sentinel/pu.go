package sentinel

import "math"

// PU rules, from Sentinel Hub's documentation on processing units.
const (
	// PUAreaPixels is the output area that costs one PU: 512 x 512 px.
	PUAreaPixels = 512 * 512
	// PUMinAreaFactor is the smallest area factor charged (0.01).
	PUMinAreaFactor = 0.01
	// PUMinCharge is the smallest charge of any request (0.005 PU).
	PUMinCharge = 0.005
	// PUBatchFactor is the discount of the Batch Processing API (1/3).
	PUBatchFactor = 1.0 / 3.0
)

// PUParams are the inputs of the PU rules for one request.
type PUParams struct {
	// Width and Height are the output size in pixels.
	Width, Height int
	// InputBands is the number of input bands the evalscript reads, not counting
	// dataMask. Zero counts as 3 bands (factor 1).
	InputBands int
	// Float32 is true when the output sample type is 32-bit float (factor 2).
	Float32 bool
	// DataSamples is the number of acquisitions processed (ORBIT/TILE mosaicking:
	// one per acquisition in the time range). Zero counts as one.
	DataSamples int
	// Batch applies the Batch API factor of 1/3.
	Batch bool
}

// EstimatePU returns the processing units a request with p costs, following the
// documented rules: area factor px/(512*512) with a minimum of 0.01, band factor
// bands/3, x2 for 32-bit float output, x number of data samples, x1/3 for batch,
// and a minimum charge of 0.005 PU.
func EstimatePU(p PUParams) float64 {
	area := float64(p.Width) * float64(p.Height) / PUAreaPixels
	area = math.Max(area, PUMinAreaFactor)
	bands := 1.0
	if p.InputBands > 0 {
		bands = float64(p.InputBands) / 3
	}
	format := 1.0
	if p.Float32 {
		format = 2
	}
	samples := 1.0
	if p.DataSamples > 1 {
		samples = float64(p.DataSamples)
	}
	pu := area * bands * format * samples
	if p.Batch {
		pu *= PUBatchFactor
	}
	return math.Max(pu, PUMinCharge)
}

// MilliPU converts PU to integer milli-PU, rounding up so an estimate is never
// smaller than the charge it stands for.
func MilliPU(pu float64) int64 {
	return int64(math.Ceil(pu*1000 - 1e-9))
}
