package sentinel

import (
	"regexp"
	"strings"
)

// EvalscriptInfo is what the PU rules need to know about an evalscript (V3):
// how many input bands it reads, its output sample type, its mosaicking and the
// ids of its outputs.
type EvalscriptInfo struct {
	// Bands is the number of distinct input bands, not counting dataMask.
	Bands int
	// Float32 is true when any output uses sampleType FLOAT32.
	Float32 bool
	// Mosaicking is "SIMPLE" (default), "ORBIT" or "TILE".
	Mosaicking string
	// Outputs are the output ids declared in setup(); ["default"] when none is named.
	Outputs []string
}

var (
	reInputArray  = regexp.MustCompile(`(?s)\binput\s*:\s*\[(.*?)\]\s*[,}]`)
	reBandsArray  = regexp.MustCompile(`(?s)\bbands\s*:\s*\[(.*?)\]`)
	reQuoted      = regexp.MustCompile(`["']([A-Za-z0-9_]+)["']`)
	reFloat32     = regexp.MustCompile(`\bsampleType\s*:\s*(?:["']FLOAT32["']|SampleType\.FLOAT32)`)
	reMosaicking  = regexp.MustCompile(`\bmosaicking\s*:\s*(?:["'](\w+)["']|Mosaicking\.(\w+))`)
	reOutputID    = regexp.MustCompile(`\bid\s*:\s*["']([^"']+)["']`)
	reOutputBlock = regexp.MustCompile(`(?s)\boutput\s*:\s*(\[.*?\]|\{.*?\})`)
)

// InspectEvalscript reads the setup() of a V3 evalscript with pattern matching
// (no JavaScript is run). It is deliberately forgiving: unknown constructs fall back
// to the PU rules' defaults (3 bands, 8/16-bit output, SIMPLE mosaicking).
func InspectEvalscript(src string) EvalscriptInfo {
	info := EvalscriptInfo{Mosaicking: "SIMPLE"}
	bands := map[string]bool{}
	if m := reInputArray.FindStringSubmatch(src); m != nil {
		body := m[1]
		if b := reBandsArray.FindAllStringSubmatch(body, -1); b != nil {
			body = ""
			for _, x := range b {
				body += x[1] + ","
			}
		}
		for _, q := range reQuoted.FindAllStringSubmatch(body, -1) {
			if q[1] != "dataMask" && !strings.EqualFold(q[1], "bands") {
				bands[q[1]] = true
			}
		}
	}
	info.Bands = len(bands)
	info.Float32 = reFloat32.MatchString(src)
	if m := reMosaicking.FindStringSubmatch(src); m != nil {
		info.Mosaicking = strings.ToUpper(m[1] + m[2])
	}
	if m := reOutputBlock.FindStringSubmatch(src); m != nil {
		for _, id := range reOutputID.FindAllStringSubmatch(m[1], -1) {
			info.Outputs = append(info.Outputs, id[1])
		}
	}
	if len(info.Outputs) == 0 {
		info.Outputs = []string{"default"}
	}
	return info
}
