//VERSION=3
// True colour (B04, B03, B02) from Sentinel-2 L2A as 4 UINT8 bands; the 4th band
// is dataMask, so pixels without data are transparent.
function setup() {
  return {
    input: [{ bands: ["B02", "B03", "B04", "dataMask"] }],
    output: { bands: 4, sampleType: "UINT8" }
  };
}

function evaluatePixel(sample) {
  const gain = 2.5 * 255;
  return [
    Math.min(255, sample.B04 * gain),
    Math.min(255, sample.B03 * gain),
    Math.min(255, sample.B02 * gain),
    sample.dataMask * 255
  ];
}
