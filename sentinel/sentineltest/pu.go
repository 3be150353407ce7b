package sentineltest

// The simulator's own processing-unit rules, from Sentinel Hub's "Processing Unit
// definition" page: 1 PU is 512 x 512 output px of 3 input bands, one data
// sample, an output of at most 16 bits per sample. The multiplication factors:
//
//   - area: output px / (512*512), at least 0.01;
//   - bands: input bands / 3, dataMask not counted;
//   - output: x2 when an output's sampleType is FLOAT32;
//   - data samples: the number of acquisitions used (ORBIT/TILE mosaicking), 1
//     for SIMPLE;
//
// and a Process API request costs at least 0.005 PU.
const (
	// puPixels is the output area of one PU.
	puPixels = 512 * 512
	// minAreaFactor is the smallest area factor.
	minAreaFactor = 0.01
	// minRequestPU is the smallest charge of a process request.
	minRequestPU = 0.005
)

// chargePU applies the rules to a w x h output of an evalscript described by info
// with samples data samples (values below 1 count as 1).
func chargePU(w, h int, info setupInfo, samples int) float64 {
	pu := max(float64(w)*float64(h)/puPixels, minAreaFactor)
	pu *= float64(info.chargedBands()) / 3
	if info.float32() {
		pu *= 2
	}
	pu *= float64(max(samples, 1))
	return max(pu, minRequestPU)
}
