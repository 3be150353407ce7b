package sentineltest

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"

	"shfleet/sentinel"
)

// The GeoTIFF answers. Each is a little-endian baseline TIFF with one image:
//
//   - the requested width x height; SamplesPerPixel the output's bands (at most
//     [maxAnswerBands]); BitsPerSample and SampleFormat of its sample type
//     (UINT8, INT8, UINT16, INT16 or FLOAT32; AUTO is UINT8); PlanarConfiguration
//     1 (contiguous); Photometric 1 (BlackIsZero) with ExtraSamples 0
//     (unspecified) for every band after the first;
//   - Deflate-compressed strips (Compression 8, zlib streams, no predictor) of
//     about [tiffStripBytes] uncompressed bytes each;
//   - when the request has a bbox: ModelPixelScale and ModelTiepoint mapping pixel
//     (0,0) to the bbox's (minX, maxY) with pixel size (maxX-minX)/width by
//     (maxY-minY)/height, and a GeoKeyDirectory naming the CRS's EPSG code
//     (geographic for 4326, 4258 and 4269, projected otherwise) as PixelIsArea;
//   - ImageDescription "sentineltest: request <RequestKey>, output <id>".
//
// The IFD and its values come first (offset 8), the strips after them. The pixels
// are blocks of a checker pattern over a per-band triangle-wave gradient whose
// direction, phase and block offset are drawn from a hash of the request and
// output id; pixels of one block are equal, so the strips compress well. The
// values are integer arithmetic (a FLOAT32 sample is one correctly rounded
// division of an integer), so the bytes are the same on every platform.

// TIFF field types.
const (
	tiffASCII  = 2
	tiffShort  = 3
	tiffLong   = 4
	tiffDouble = 12
)

// TIFF and GeoTIFF tags the answers carry.
const (
	tagImageWidth          = 256
	tagImageLength         = 257
	tagBitsPerSample       = 258
	tagCompression         = 259
	tagPhotometric         = 262
	tagImageDescription    = 270
	tagStripOffsets        = 273
	tagSamplesPerPixel     = 277
	tagRowsPerStrip        = 278
	tagStripByteCounts     = 279
	tagPlanarConfiguration = 284
	tagExtraSamples        = 338
	tagSampleFormat        = 339
	tagModelPixelScale     = 33550
	tagModelTiepoint       = 33922
	tagGeoKeyDirectory     = 34735
)

// maxAnswerBands caps the bands of an answer (an evalscript may declare any
// count): 256 bands of 2500 x 2500 FLOAT32 are 6.4 GB of samples to compress
// already. A request for more gets 256 bands.
const maxAnswerBands = 256

// tiffStripBytes is the target uncompressed size of one strip: RowsPerStrip is
// as many rows as fit (at least one).
const tiffStripBytes = 256 << 10

// sampleType is how one sample is stored.
type sampleType struct {
	bytes  int    // 1, 2 or 4
	format uint16 // SampleFormat: 1 unsigned, 2 signed, 3 IEEE float
}

// sampleTypeOf maps an evalscript sampleType (upper case) to its storage;
// AUTO, "" and anything unknown are UINT8.
func sampleTypeOf(name string) sampleType {
	switch name {
	case "INT8":
		return sampleType{1, 2}
	case "UINT16":
		return sampleType{2, 1}
	case "INT16":
		return sampleType{2, 2}
	case "FLOAT32":
		return sampleType{4, 3}
	}
	return sampleType{1, 1}
}

// rasterSpec is everything one GeoTIFF answer is made from.
type rasterSpec struct {
	width, height, bands int
	sample               sampleType
	bbox                 []float64 // minX, minY, maxX, maxY; nil: no georeferencing
	epsg                 int       // 0: no GeoKeys
	seed                 [32]byte  // drives the pattern
	description          string    // ImageDescription; "" for none
}

type tiffEntry struct {
	tag, typ uint16
	count    uint32
	data     []byte // little-endian values
}

func shorts(v ...uint16) []byte {
	b := make([]byte, 2*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint16(b[2*i:], x)
	}
	return b
}

func longs(v ...uint32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], x)
	}
	return b
}

func doubles(v ...float64) []byte {
	b := make([]byte, 8*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint64(b[8*i:], math.Float64bits(x))
	}
	return b
}

func repeatShort(v uint16, n int) []byte {
	s := make([]uint16, n)
	for i := range s {
		s[i] = v
	}
	return shorts(s...)
}

// epsgCode returns the EPSG code a CRS URL names (4326 for CRS84), 0 if none.
func epsgCode(crs string) int {
	if isWGS84(crs) {
		return 4326
	}
	s := strings.TrimPrefix(strings.TrimPrefix(crs, sentinel.CRSEPSGPrefix), "EPSG:")
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 || n > math.MaxUint16 {
		return 0
	}
	return n
}

// geographicEPSG reports whether code is a geographic (degrees) CRS: WGS 84,
// ETRS89 or NAD83. Every other code is written as a projected CRS.
func geographicEPSG(code int) bool {
	return code == 4326 || code == 4258 || code == 4269
}

// geoKeys is the GeoKeyDirectory of an EPSG code (keys sorted by id).
func geoKeys(code int) []uint16 {
	// Header: KeyDirectoryVersion 1, KeyRevision 1.0, 3 keys; then
	// {key, location 0 (the value is inline), count 1, value}.
	if geographicEPSG(code) {
		return []uint16{1, 1, 0, 3,
			1024, 0, 1, 2, // GTModelTypeGeoKey: ModelTypeGeographic
			1025, 0, 1, 1, // GTRasterTypeGeoKey: RasterPixelIsArea
			2048, 0, 1, uint16(code)} // GeographicTypeGeoKey
	}
	return []uint16{1, 1, 0, 3,
		1024, 0, 1, 1, // ModelTypeProjected
		1025, 0, 1, 1, // RasterPixelIsArea
		3072, 0, 1, uint16(code)} // ProjectedCSTypeGeoKey
}

// encodeGeoTIFF writes the GeoTIFF of s (see the layout above). Rows are
// generated one at a time into the compressor: besides the returned bytes it
// holds one row.
func encodeGeoTIFF(s rasterSpec) []byte {
	w, h, spp := s.width, s.height, s.bands
	rowBytes := w * spp * s.sample.bytes
	rps := clampInt(tiffStripBytes/rowBytes, 1, h)
	strips := (h + rps - 1) / rps

	entries := []tiffEntry{
		{tagImageWidth, tiffLong, 1, longs(uint32(w))},
		{tagImageLength, tiffLong, 1, longs(uint32(h))},
		{tagBitsPerSample, tiffShort, uint32(spp), repeatShort(uint16(8*s.sample.bytes), spp)},
		{tagCompression, tiffShort, 1, shorts(8)}, // Deflate (zlib)
		{tagPhotometric, tiffShort, 1, shorts(1)}, // BlackIsZero
		{tagStripOffsets, tiffLong, uint32(strips), make([]byte, 4*strips)},
		{tagSamplesPerPixel, tiffShort, 1, shorts(uint16(spp))},
		{tagRowsPerStrip, tiffLong, 1, longs(uint32(rps))},
		{tagStripByteCounts, tiffLong, uint32(strips), make([]byte, 4*strips)},
		{tagPlanarConfiguration, tiffShort, 1, shorts(1)}, // contiguous
		{tagSampleFormat, tiffShort, uint32(spp), repeatShort(s.sample.format, spp)},
	}
	if spp > 1 {
		entries = append(entries, tiffEntry{tagExtraSamples, tiffShort, uint32(spp - 1), repeatShort(0, spp-1)})
	}
	if s.description != "" {
		d := append([]byte(s.description), 0)
		entries = append(entries, tiffEntry{tagImageDescription, tiffASCII, uint32(len(d)), d})
	}
	if bb := s.bbox; bb != nil {
		entries = append(entries,
			tiffEntry{tagModelPixelScale, tiffDouble, 3, doubles((bb[2]-bb[0])/float64(w), (bb[3]-bb[1])/float64(h), 0)},
			tiffEntry{tagModelTiepoint, tiffDouble, 6, doubles(0, 0, 0, bb[0], bb[3], 0)},
		)
		if s.epsg != 0 {
			keys := geoKeys(s.epsg)
			entries = append(entries, tiffEntry{tagGeoKeyDirectory, tiffShort, uint32(len(keys)), shorts(keys...)})
		}
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].tag < entries[j].tag })

	// Layout: header, IFD, out-of-line values (each at an even offset), strips.
	ifdLen := 2 + 12*len(entries) + 4
	dataStart := 8 + ifdLen
	for _, e := range entries {
		if len(e.data) > 4 {
			dataStart += len(e.data) + len(e.data)%2
		}
	}
	var out bytes.Buffer
	out.Write(make([]byte, dataStart))

	offsets, counts := make([]uint32, strips), make([]uint32, strips)
	// Level 2 is both faster and smaller than BestSpeed on these blocky rows
	// (BenchmarkProcessBodyLarge).
	zw, _ := zlib.NewWriterLevel(&out, 2) // the level is valid
	pat := newPattern(s)
	for i := range strips {
		start := out.Len()
		zw.Reset(&out)
		for y := i * rps; y < min(h, (i+1)*rps); y++ {
			_, _ = zw.Write(pat.row(y)) // a bytes.Buffer does not fail
		}
		_ = zw.Close()
		offsets[i], counts[i] = uint32(start), uint32(out.Len()-start)
	}
	for i := range entries {
		switch entries[i].tag {
		case tagStripOffsets:
			entries[i].data = longs(offsets...)
		case tagStripByteCounts:
			entries[i].data = longs(counts...)
		}
	}

	// The IFD and its values go into the reserved start of the buffer: head and
	// tail share b's storage and their capacities end exactly where they must.
	b := out.Bytes()
	head := b[:0:dataStart]
	head = append(head, 'I', 'I', 42, 0)
	head = append(head, longs(8)...)
	head = append(head, shorts(uint16(len(entries)))...)
	next := 8 + ifdLen
	tail := b[next:next:dataStart]
	for _, e := range entries {
		head = append(head, shorts(e.tag, e.typ)...)
		head = append(head, longs(e.count)...)
		if len(e.data) <= 4 {
			var v [4]byte
			copy(v[:], e.data)
			head = append(head, v[:]...)
			continue
		}
		head = append(head, longs(uint32(next))...)
		tail = append(tail, e.data...)
		next += len(e.data)
		if len(e.data)%2 == 1 {
			tail = append(tail, 0)
			next++
		}
	}
	_ = append(head, longs(0)...) // no next IFD
	return b
}

// Pattern parameters: the gradient is a triangle wave of period 2*gradLevels
// levels; values are gradLevels levels plus a checker step.
const gradLevels = 1024

// pattern generates the rows of one answer. All rows of one block row are
// equal, so row builds a row only when the block row changes.
type pattern struct {
	s             rasterSpec
	cell          int // block side in px
	offX, offY    int // block offset in px
	ncx, ncy      int // blocks across and down
	ax, ay, phase []int
	buf, pix      []byte
	blockRow      int  // the block row buf holds
	built         bool // whether buf holds one
}

// directions of the per-band gradients.
var gradDirs = [8][2]int{{1, 0}, {0, 1}, {1, 1}, {1, -1}, {-1, 0}, {0, -1}, {-1, -1}, {-1, 1}}

func newPattern(s rasterSpec) *pattern {
	cell := max(4, min(s.width, s.height)/24)
	rng := rand.NewPCG(binary.LittleEndian.Uint64(s.seed[:8]), binary.LittleEndian.Uint64(s.seed[8:16]))
	p := &pattern{
		s: s, cell: cell,
		offX: int(rng.Uint64() % uint64(cell)), offY: int(rng.Uint64() % uint64(cell)),
		ncx: max(1, s.width/cell), ncy: max(1, s.height/cell),
		buf: make([]byte, s.width*s.bands*s.sample.bytes),
		pix: make([]byte, s.bands*s.sample.bytes),
	}
	for range s.bands {
		r := rng.Uint64()
		d := gradDirs[r%8]
		p.ax, p.ay = append(p.ax, d[0]), append(p.ay, d[1])
		p.phase = append(p.phase, int((r>>8)%(2*gradLevels)))
	}
	return p
}

// row returns row y (valid until the next call).
func (p *pattern) row(y int) []byte {
	cy := (y + p.offY) / p.cell
	if p.built && cy == p.blockRow {
		return p.buf
	}
	p.blockRow, p.built = cy, true
	n := len(p.pix)
	last := -1
	for x := range p.s.width {
		if cx := (x + p.offX) / p.cell; cx != last {
			last = cx
			p.block(cx, cy)
		}
		copy(p.buf[x*n:], p.pix)
	}
	return p.buf
}

// block fills p.pix with the pixel of block (cx, cy).
func (p *pattern) block(cx, cy int) {
	st := p.s.sample
	for b := range p.s.bands {
		t := p.ax[b]*cx*2*gradLevels/p.ncx + p.ay[b]*cy*2*gradLevels/p.ncy + p.phase[b]
		t = (t%(2*gradLevels) + 2*gradLevels) % (2 * gradLevels)
		g := t // 0..gradLevels-1, up then down
		if g >= gradLevels {
			g = 2*gradLevels - 1 - g
		}
		chk := (cx + cy + b) & 1
		o := p.pix[b*st.bytes:]
		switch {
		case st.bytes == 1 && st.format == 1: // UINT8: 16..247
			o[0] = uint8(16 + g*192/gradLevels + 40*chk)
		case st.bytes == 1: // INT8: -96..93
			o[0] = uint8(int8(-96 + g*160/gradLevels + 30*chk))
		case st.format == 1: // UINT16: 300..9806, like reflectance x 10000
			binary.LittleEndian.PutUint16(o, uint16(300+g*8000/gradLevels+1500*chk))
		case st.bytes == 2: // INT16: -8000..7987
			binary.LittleEndian.PutUint16(o, uint16(int16(-8000+g*14000/gradLevels+2000*chk)))
		default: // FLOAT32: 0.05..0.8 (reflectance); an exact integer over 10000
			v := float32(500+g*6000/gradLevels+1500*chk) / 10000
			binary.LittleEndian.PutUint32(o, math.Float32bits(v))
		}
	}
}
