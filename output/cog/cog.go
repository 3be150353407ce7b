// Package cog rewrites a GeoTIFF as a Cloud Optimized GeoTIFF: internally tiled
// (256 x 256, Deflate), with internal overviews halving the size down to one
// tile, the IFDs first (the main image's at byte 8) and the tile data after them
// from the smallest overview to the full resolution, as GDAL's COG validator
// expects. Every tag of the source image other than its layout (GeoTIFF keys,
// no-data, GDAL metadata, sample format, photometric, extra samples, ...) is
// carried over to the main image.
//
// It reads what Sentinel Hub's Process API sends: little- or big-endian classic
// TIFFs, strips or tiles, uncompressed or Deflate, horizontal predictor or
// none, contiguous or planar samples of 8, 16, 32 or 64 bits (unsigned, signed
// or floating point). The image is decoded whole into memory (width x height x
// bands x sample size, plus a third for the overviews).
package cog

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
)

// TileSize is the side of the COG's internal tiles in pixels.
const TileSize = 256

// MaxSourceBytes bounds the decoded size of an image that Convert accepts.
const MaxSourceBytes = 1 << 30

// TIFF tags that Convert reads or writes.
const (
	tagNewSubfileType      = 254
	tagImageWidth          = 256
	tagImageLength         = 257
	tagBitsPerSample       = 258
	tagCompression         = 259
	tagPhotometric         = 262
	tagStripOffsets        = 273
	tagSamplesPerPixel     = 277
	tagRowsPerStrip        = 278
	tagStripByteCounts     = 279
	tagPlanarConfiguration = 284
	tagPredictor           = 317
	tagTileWidth           = 322
	tagTileLength          = 323
	tagTileOffsets         = 324
	tagTileByteCounts      = 325
	tagSubIFDs             = 330
	tagExtraSamples        = 338
	tagSampleFormat        = 339
	tagGDALNoData          = 42113
)

// layoutTags are rewritten by Convert, not copied from the source.
var layoutTags = map[uint16]bool{
	tagNewSubfileType: true, tagImageWidth: true, tagImageLength: true, tagCompression: true,
	tagStripOffsets: true, tagRowsPerStrip: true, tagStripByteCounts: true,
	tagPlanarConfiguration: true, tagPredictor: true, tagTileWidth: true, tagTileLength: true,
	tagTileOffsets: true, tagTileByteCounts: true, tagSubIFDs: true,
}

// TIFF field types and their sizes in bytes.
var typeSize = map[uint16]int{1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 16: 8, 17: 8, 18: 8}

// entry is one IFD entry, its value bytes in little-endian order.
type entry struct {
	tag, typ uint16
	count    uint32
	data     []byte
}

// image is a decoded raster: contiguous samples, row-major.
type image struct {
	w, h, spp, bps int // bps: bytes per sample
	format         int // SampleFormat: 1 uint, 2 int, 3 float
	pix            []byte
}

// ErrUnreadable is wrapped by Convert's errors about a source it cannot read
// (not a TIFF, an unsupported layout, truncated): retrying does not help.
var ErrUnreadable = errors.New("cog: cannot convert the source")

// IsTIFF reports whether b starts like a classic or BigTIFF file.
func IsTIFF(b []byte) bool {
	return len(b) >= 4 && (string(b[:4]) == "II*\x00" || string(b[:4]) == "MM\x00*" ||
		string(b[:4]) == "II+\x00" || string(b[:4]) == "MM\x00+")
}

// Convert reads the GeoTIFF src (size bytes) and writes it to dst as a Cloud
// Optimized GeoTIFF. A source it cannot read is an error naming what is
// unsupported; nothing useful has been written to dst then.
func Convert(dst io.Writer, src io.ReaderAt, size int64) error {
	img, tags, err := decode(src, size)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUnreadable, err)
	}
	noData, hasNoData := noDataOf(tags)
	levels := []*image{img}
	for l := img; l.w > TileSize || l.h > TileSize; {
		l = halve(l, noData, hasNoData)
		levels = append(levels, l)
	}
	return encode(dst, levels, tags)
}

func noDataOf(tags []entry) (float64, bool) {
	for _, e := range tags {
		if e.tag == tagGDALNoData {
			s := strings.TrimSpace(strings.TrimRight(string(e.data), "\x00"))
			v, err := strconv.ParseFloat(s, 64)
			return v, err == nil
		}
	}
	return 0, false
}

// reader reads TIFF values in the file's byte order.
type reader struct {
	src  io.ReaderAt
	size int64
	bo   binary.ByteOrder
}

func (r *reader) read(off int64, n int) ([]byte, error) {
	if off < 0 || n < 0 || off+int64(n) > r.size {
		return nil, fmt.Errorf("offset %d + %d bytes is outside the %d-byte file (truncated?)", off, n, r.size)
	}
	b := make([]byte, n)
	if _, err := r.src.ReadAt(b, off); err != nil && !(errors.Is(err, io.EOF) && n > 0) {
		return nil, err
	}
	return b, nil
}

// Info describes a TIFF's first image, read from its header alone.
type Info struct {
	// Width and Height in pixels.
	Width, Height int
	// Bands is SamplesPerPixel.
	Bands int
	// Bits per sample (8, 16, 32 or 64).
	Bits int
	// SampleFormat: 1 unsigned integer, 2 signed integer, 3 floating point.
	SampleFormat int
	// NoData is the GDAL_NODATA tag's text ("" without one).
	NoData string
}

// Describe reads the first image's header of the TIFF src (size bytes).
func Describe(src io.ReaderAt, size int64) (Info, error) {
	_, all, vals, err := parseIFD(src, size)
	if err != nil {
		return Info{}, fmt.Errorf("%w: %w", ErrUnreadable, err)
	}
	one := func(tag uint16, def uint64) int {
		if v := vals[tag]; len(v) > 0 {
			return int(v[0])
		}
		return int(def)
	}
	info := Info{Width: one(tagImageWidth, 0), Height: one(tagImageLength, 0), Bands: one(tagSamplesPerPixel, 1),
		Bits: one(tagBitsPerSample, 1), SampleFormat: one(tagSampleFormat, 1)}
	for _, e := range all {
		if e.tag == tagGDALNoData {
			info.NoData = strings.TrimSpace(strings.TrimRight(string(e.data), "\x00"))
		}
	}
	return info, nil
}

// parseIFD reads the header and the first IFD: every entry (values in
// little-endian order) and the SHORT/LONG ones as numbers.
func parseIFD(src io.ReaderAt, size int64) (*reader, []entry, map[uint16][]uint64, error) {
	r := &reader{src: src, size: size}
	head, err := r.read(0, 8)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("not a TIFF file: %w", err)
	}
	switch string(head[:2]) {
	case "II":
		r.bo = binary.LittleEndian
	case "MM":
		r.bo = binary.BigEndian
	default:
		return nil, nil, nil, errors.New("not a TIFF file (no II/MM byte order mark)")
	}
	if v := r.bo.Uint16(head[2:]); v != 42 {
		if v == 43 {
			return nil, nil, nil, errors.New("BigTIFF sources are not supported")
		}
		return nil, nil, nil, fmt.Errorf("not a TIFF file (version %d)", v)
	}
	ifd := int64(r.bo.Uint32(head[4:]))
	nb, err := r.read(ifd, 2)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("IFD: %w", err)
	}
	n := int(r.bo.Uint16(nb))
	raw, err := r.read(ifd+2, 12*n)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("IFD: %w", err)
	}
	var all []entry
	vals := map[uint16][]uint64{}
	for i := range n {
		e := raw[12*i : 12*i+12]
		ent := entry{tag: r.bo.Uint16(e), typ: r.bo.Uint16(e[2:]), count: r.bo.Uint32(e[4:])}
		sz, ok := typeSize[ent.typ]
		if !ok {
			continue // unknown field type: dropped
		}
		total := sz * int(ent.count)
		var data []byte
		if total <= 4 {
			data = slices.Clone(e[8 : 8+total])
		} else if data, err = r.read(int64(r.bo.Uint32(e[8:])), total); err != nil {
			return nil, nil, nil, fmt.Errorf("tag %d: %w", ent.tag, err)
		}
		ent.data = toLittle(data, ent.typ, r.bo)
		all = append(all, ent)
		if ent.typ == 3 || ent.typ == 4 {
			vals[ent.tag] = uints(ent)
		}
	}
	return r, all, vals, nil
}

func decode(src io.ReaderAt, size int64) (*image, []entry, error) {
	r, all, vals, err := parseIFD(src, size)
	if err != nil {
		return nil, nil, err
	}
	one := func(tag uint16, def uint64) uint64 {
		if v := vals[tag]; len(v) > 0 {
			return v[0]
		}
		return def
	}
	img := &image{w: int(one(tagImageWidth, 0)), h: int(one(tagImageLength, 0)), spp: int(one(tagSamplesPerPixel, 1)),
		format: int(one(tagSampleFormat, 1))}
	bits := int(one(tagBitsPerSample, 1))
	for _, b := range vals[tagBitsPerSample] {
		if int(b) != bits {
			return nil, nil, errors.New("bands of different bit depths are not supported")
		}
	}
	switch bits {
	case 8, 16, 32, 64:
		img.bps = bits / 8
	default:
		return nil, nil, fmt.Errorf("%d bits per sample is not supported (8, 16, 32 or 64)", bits)
	}
	if img.w <= 0 || img.h <= 0 || img.spp <= 0 {
		return nil, nil, fmt.Errorf("image of %d x %d pixels, %d samples: nothing to convert", img.w, img.h, img.spp)
	}
	if int64(img.w)*int64(img.h)*int64(img.spp*img.bps) > MaxSourceBytes {
		return nil, nil, fmt.Errorf("image of %d x %d x %d samples is over the %d-byte limit", img.w, img.h, img.spp, MaxSourceBytes)
	}
	comp := one(tagCompression, 1)
	if comp != 1 && comp != 8 && comp != 32946 {
		return nil, nil, fmt.Errorf("compression %d is not supported (none or Deflate)", comp)
	}
	pred := one(tagPredictor, 1)
	if pred != 1 && !(pred == 2 && img.format != 3) {
		return nil, nil, fmt.Errorf("predictor %d is not supported for sample format %d", pred, img.format)
	}
	planar := one(tagPlanarConfiguration, 1)
	img.pix = make([]byte, img.w*img.h*img.spp*img.bps)

	// Blocks: strips are tiles as wide as the image.
	bw, bh := img.w, int(one(tagRowsPerStrip, uint64(img.h)))
	offs, counts := vals[tagStripOffsets], vals[tagStripByteCounts]
	if _, tiled := vals[tagTileWidth]; tiled {
		bw, bh = int(one(tagTileWidth, 0)), int(one(tagTileLength, 0))
		offs, counts = vals[tagTileOffsets], vals[tagTileByteCounts]
	}
	bh = max(bh, 1)
	if bw <= 0 || bh <= 0 || len(offs) == 0 || len(offs) != len(counts) {
		return nil, nil, errors.New("no image data (missing or inconsistent strip/tile offsets)")
	}
	across, down := (img.w+bw-1)/bw, (img.h+bh-1)/bh
	planes := 1
	chunkSpp := img.spp
	if planar == 2 {
		planes, chunkSpp = img.spp, 1
	}
	if len(offs) < across*down*planes {
		return nil, nil, fmt.Errorf("%d blocks for an image that needs %d", len(offs), across*down*planes)
	}
	for p := range planes {
		for by := range down {
			for bx := range across {
				i := p*across*down + by*across + bx
				data, err := r.read(int64(offs[i]), int(counts[i]))
				if err != nil {
					return nil, nil, fmt.Errorf("block %d: %w", i, err)
				}
				if comp != 1 {
					zr, err := zlib.NewReader(bytes.NewReader(data))
					if err != nil {
						return nil, nil, fmt.Errorf("block %d: %w", i, err)
					}
					if data, err = io.ReadAll(io.LimitReader(zr, int64(bw*bh*chunkSpp*img.bps)+1)); err != nil {
						return nil, nil, fmt.Errorf("block %d: %w", i, err)
					}
				}
				rowBytes := bw * chunkSpp * img.bps
				rows := bh
				if _, tiled := vals[tagTileWidth]; !tiled {
					rows = min(bh, img.h-by*bh)
				}
				if len(data) < rows*rowBytes {
					return nil, nil, fmt.Errorf("block %d holds %d bytes, needs %d", i, len(data), rows*rowBytes)
				}
				if pred == 2 {
					undoPredictor(data[:rows*rowBytes], rowBytes, chunkSpp, img.bps, r.bo)
				}
				for y := range rows {
					iy := by*bh + y
					if iy >= img.h {
						break
					}
					for x := range bw {
						ix := bx*bw + x
						if ix >= img.w {
							break
						}
						srcOff := y*rowBytes + x*chunkSpp*img.bps
						dstOff := (iy*img.w+ix)*img.spp*img.bps + p*img.bps
						for s := range chunkSpp {
							swapInto(img.pix[dstOff+s*img.bps:dstOff+(s+1)*img.bps], data[srcOff+s*img.bps:srcOff+(s+1)*img.bps], r.bo)
						}
					}
				}
			}
		}
	}
	var keep []entry
	for _, e := range all {
		if !layoutTags[e.tag] {
			keep = append(keep, e)
		}
	}
	return img, keep, nil
}

// swapInto copies one sample into little-endian order.
func swapInto(dst, src []byte, bo binary.ByteOrder) {
	if bo == binary.LittleEndian {
		copy(dst, src)
		return
	}
	for i := range src {
		dst[i] = src[len(src)-1-i]
	}
}

// undoPredictor reverses the horizontal differencing predictor of integer
// samples, row by row, in the file's byte order.
func undoPredictor(data []byte, rowBytes, spp, bps int, bo binary.ByteOrder) {
	for row := 0; row+rowBytes <= len(data); row += rowBytes {
		r := data[row : row+rowBytes]
		for i := spp * bps; i < len(r); i += bps {
			switch bps {
			case 1:
				r[i] += r[i-spp]
			case 2:
				bo.PutUint16(r[i:], bo.Uint16(r[i:])+bo.Uint16(r[i-spp*2:]))
			case 4:
				bo.PutUint32(r[i:], bo.Uint32(r[i:])+bo.Uint32(r[i-spp*4:]))
			case 8:
				bo.PutUint64(r[i:], bo.Uint64(r[i:])+bo.Uint64(r[i-spp*8:]))
			}
		}
	}
}

// toLittle converts a field's value bytes to little-endian.
func toLittle(b []byte, typ uint16, bo binary.ByteOrder) []byte {
	if bo == binary.LittleEndian {
		return b
	}
	w := typeSize[typ]
	if typ == 5 || typ == 10 {
		w = 4 // rationals are two LONGs
	}
	out := slices.Clone(b)
	if w > 1 {
		for i := 0; i+w <= len(out); i += w {
			slices.Reverse(out[i : i+w])
		}
	}
	return out
}

func uints(e entry) []uint64 {
	var out []uint64
	for i := 0; i < int(e.count); i++ {
		if e.typ == 3 {
			out = append(out, uint64(binary.LittleEndian.Uint16(e.data[2*i:])))
		} else {
			out = append(out, uint64(binary.LittleEndian.Uint32(e.data[4*i:])))
		}
	}
	return out
}

// sample reads sample s of pixel (x, y) as a float64.
func (m *image) sample(x, y, s int) float64 {
	b := m.pix[((y*m.w+x)*m.spp+s)*m.bps:]
	le := binary.LittleEndian
	switch {
	case m.format == 3 && m.bps == 4:
		return float64(math.Float32frombits(le.Uint32(b)))
	case m.format == 3 && m.bps == 8:
		return math.Float64frombits(le.Uint64(b))
	case m.format == 2:
		switch m.bps {
		case 1:
			return float64(int8(b[0]))
		case 2:
			return float64(int16(le.Uint16(b)))
		case 4:
			return float64(int32(le.Uint32(b)))
		default:
			return float64(int64(le.Uint64(b)))
		}
	}
	switch m.bps {
	case 1:
		return float64(b[0])
	case 2:
		return float64(le.Uint16(b))
	case 4:
		return float64(le.Uint32(b))
	default:
		return float64(le.Uint64(b))
	}
}

// set writes v (rounded for integer types) as sample s of pixel (x, y).
func (m *image) set(x, y, s int, v float64) {
	b := m.pix[((y*m.w+x)*m.spp+s)*m.bps:]
	le := binary.LittleEndian
	if m.format == 3 {
		if m.bps == 4 {
			le.PutUint32(b, math.Float32bits(float32(v)))
		} else {
			le.PutUint64(b, math.Float64bits(v))
		}
		return
	}
	v = math.Round(v)
	switch m.bps {
	case 1:
		b[0] = byte(int64(v))
	case 2:
		le.PutUint16(b, uint16(int64(v)))
	case 4:
		le.PutUint32(b, uint32(int64(v)))
	default:
		le.PutUint64(b, uint64(int64(v)))
	}
}

// halve makes the next overview: half the size (rounded up), each pixel the
// mean of the (up to) 2 x 2 source pixels it covers that are not no-data
// (no-data when all are).
func halve(src *image, noData float64, hasNoData bool) *image {
	dst := &image{w: (src.w + 1) / 2, h: (src.h + 1) / 2, spp: src.spp, bps: src.bps, format: src.format}
	dst.pix = make([]byte, dst.w*dst.h*dst.spp*dst.bps)
	for y := range dst.h {
		for x := range dst.w {
			for s := range src.spp {
				sum, n := 0.0, 0
				for dy := range 2 {
					for dx := range 2 {
						sx, sy := 2*x+dx, 2*y+dy
						if sx >= src.w || sy >= src.h {
							continue
						}
						v := src.sample(sx, sy, s)
						if hasNoData && (v == noData || (math.IsNaN(noData) && math.IsNaN(v))) {
							continue
						}
						sum += v
						n++
					}
				}
				if n == 0 {
					dst.set(x, y, s, noData)
				} else {
					dst.set(x, y, s, sum/float64(n))
				}
			}
		}
	}
	return dst
}

// tiles cuts m into TileSize x TileSize Deflate-compressed tiles, row-major,
// edge tiles padded with zeros.
func tiles(m *image) ([][]byte, error) {
	across, down := (m.w+TileSize-1)/TileSize, (m.h+TileSize-1)/TileSize
	px := m.spp * m.bps
	raw := make([]byte, TileSize*TileSize*px)
	var out [][]byte
	for ty := range down {
		for tx := range across {
			clear(raw)
			for y := range TileSize {
				iy := ty*TileSize + y
				if iy >= m.h {
					break
				}
				x0 := tx * TileSize
				n := min(TileSize, m.w-x0)
				copy(raw[y*TileSize*px:], m.pix[(iy*m.w+x0)*px:(iy*m.w+x0+n)*px])
			}
			var b bytes.Buffer
			zw, err := zlib.NewWriterLevel(&b, 6)
			if err != nil {
				return nil, err
			}
			if _, err := zw.Write(raw); err != nil {
				return nil, err
			}
			if err := zw.Close(); err != nil {
				return nil, err
			}
			out = append(out, b.Bytes())
		}
	}
	return out, nil
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

// encode writes the levels (full resolution first) as a COG: header, every
// IFD with its values, then the tiles from the smallest level to the largest.
func encode(dst io.Writer, levels []*image, tags []entry) error {
	tileData := make([][][]byte, len(levels))
	for i, l := range levels {
		t, err := tiles(l)
		if err != nil {
			return fmt.Errorf("cog: compress level %d: %w", i, err)
		}
		tileData[i] = t
	}
	main := levels[0]
	var sampleFormat, bitsPerSample, photometric, extra []byte
	for _, e := range tags {
		switch e.tag {
		case tagSampleFormat:
			sampleFormat = e.data
		case tagBitsPerSample:
			bitsPerSample = e.data
		case tagPhotometric:
			photometric = e.data
		case tagExtraSamples:
			extra = e.data
		}
	}
	if bitsPerSample == nil {
		bitsPerSample = shorts(slices.Repeat([]uint16{uint16(8 * main.bps)}, main.spp)...)
	}
	ifds := make([][]entry, len(levels))
	for i, l := range levels {
		n := len(tileData[i])
		es := []entry{
			{tag: tagImageWidth, typ: 4, count: 1, data: longs(uint32(l.w))},
			{tag: tagImageLength, typ: 4, count: 1, data: longs(uint32(l.h))},
			{tag: tagCompression, typ: 3, count: 1, data: shorts(8)},
			{tag: tagPlanarConfiguration, typ: 3, count: 1, data: shorts(1)},
			{tag: tagTileWidth, typ: 3, count: 1, data: shorts(TileSize)},
			{tag: tagTileLength, typ: 3, count: 1, data: shorts(TileSize)},
			{tag: tagTileOffsets, typ: 4, count: uint32(n), data: make([]byte, 4*n)},
			{tag: tagTileByteCounts, typ: 4, count: uint32(n), data: make([]byte, 4*n)},
		}
		if i == 0 {
			es = append(es, tags...)
		} else {
			es = append(es,
				entry{tag: tagNewSubfileType, typ: 4, count: 1, data: longs(1)}, // reduced-resolution image
				entry{tag: tagBitsPerSample, typ: 3, count: uint32(main.spp), data: bitsPerSample},
				entry{tag: tagSamplesPerPixel, typ: 3, count: 1, data: shorts(uint16(main.spp))})
			if sampleFormat != nil {
				es = append(es, entry{tag: tagSampleFormat, typ: 3, count: uint32(main.spp), data: sampleFormat})
			}
			if photometric != nil {
				es = append(es, entry{tag: tagPhotometric, typ: 3, count: 1, data: photometric})
			}
			if extra != nil {
				es = append(es, entry{tag: tagExtraSamples, typ: 3, count: uint32(len(extra) / 2), data: extra})
			}
		}
		slices.SortFunc(es, func(a, b entry) int { return int(a.tag) - int(b.tag) })
		ifds[i] = es
	}
	// Sizes: each IFD is 2 + 12n + 4 bytes, then its out-of-line values.
	ifdSize := func(es []entry) int64 {
		s := int64(2 + 12*len(es) + 4)
		for _, e := range es {
			if len(e.data) > 4 {
				s += int64(len(e.data) + len(e.data)%2)
			}
		}
		return s
	}
	ifdOff := make([]int64, len(levels))
	off := int64(8)
	for i, es := range ifds {
		ifdOff[i] = off
		off += ifdSize(es)
	}
	// Tile data: smallest level first.
	for i := len(levels) - 1; i >= 0; i-- {
		offs, counts := make([]uint32, len(tileData[i])), make([]uint32, len(tileData[i]))
		for j, t := range tileData[i] {
			offs[j], counts[j] = uint32(off), uint32(len(t))
			off += int64(len(t))
		}
		for k := range ifds[i] {
			switch ifds[i][k].tag {
			case tagTileOffsets:
				ifds[i][k].data = longs(offs...)
			case tagTileByteCounts:
				ifds[i][k].data = longs(counts...)
			}
		}
	}
	if off > math.MaxUint32 {
		return fmt.Errorf("cog: %d bytes do not fit a classic TIFF (4 GiB)", off)
	}
	var head bytes.Buffer
	head.WriteString("II*\x00")
	head.Write(longs(8))
	for i, es := range ifds {
		values := ifdOff[i] + int64(2+12*len(es)+4)
		var vb bytes.Buffer
		head.Write(shorts(uint16(len(es))))
		for _, e := range es {
			head.Write(shorts(e.tag, e.typ))
			head.Write(longs(e.count))
			if len(e.data) <= 4 {
				var v [4]byte
				copy(v[:], e.data)
				head.Write(v[:])
				continue
			}
			head.Write(longs(uint32(values + int64(vb.Len()))))
			vb.Write(e.data)
			if len(e.data)%2 == 1 {
				vb.WriteByte(0)
			}
		}
		next := uint32(0)
		if i+1 < len(ifds) {
			next = uint32(ifdOff[i+1])
		}
		head.Write(longs(next))
		head.Write(vb.Bytes())
	}
	if _, err := dst.Write(head.Bytes()); err != nil {
		return err
	}
	for i := len(levels) - 1; i >= 0; i-- {
		for _, t := range tileData[i] {
			if _, err := dst.Write(t); err != nil {
				return err
			}
		}
	}
	return nil
}
