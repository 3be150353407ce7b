package sentineltest

import (
	"encoding/binary"
	"math"
	"sort"
	"strconv"
	"strings"

	"shfleet/sentinel"
)

// TIFF field types.
const (
	tiffShort  = 3
	tiffLong   = 4
	tiffDouble = 12
)

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

// encodeTIFF writes a baseline little-endian TIFF with one strip of 8-bit grey
// pixels, plus GeoTIFF tags (pixel scale, tie point, key directory) when bb is
// known.
func encodeTIFF(w, h int, pix []byte, bb []float64, crs string) []byte {
	entries := []tiffEntry{
		{256, tiffLong, 1, longs(uint32(w))},
		{257, tiffLong, 1, longs(uint32(h))},
		{258, tiffShort, 1, shorts(8)},
		{259, tiffShort, 1, shorts(1)}, // no compression
		{262, tiffShort, 1, shorts(1)}, // BlackIsZero
		{273, tiffLong, 1, nil},        // StripOffsets, filled below
		{277, tiffShort, 1, shorts(1)},
		{278, tiffLong, 1, longs(uint32(h))},
		{279, tiffLong, 1, longs(uint32(len(pix)))},
		{284, tiffShort, 1, shorts(1)}, // chunky
		{339, tiffShort, 1, shorts(1)}, // unsigned integer samples
	}
	if bb != nil {
		entries = append(entries,
			tiffEntry{33550, tiffDouble, 3, doubles((bb[2]-bb[0])/float64(w), (bb[3]-bb[1])/float64(h), 0)},
			tiffEntry{33922, tiffDouble, 6, doubles(0, 0, 0, bb[0], bb[3], 0)},
		)
		if code := epsgCode(crs); code != 0 {
			keys := []uint16{1, 1, 0, 3}
			if code == 4326 {
				keys = append(keys, 1024, 0, 1, 2, 1025, 0, 1, 1, 2048, 0, 1, 4326)
			} else {
				keys = append(keys, 1024, 0, 1, 1, 1025, 0, 1, 1, 3072, 0, 1, uint16(code))
			}
			entries = append(entries, tiffEntry{34735, tiffShort, uint32(len(keys)), shorts(keys...)})
		}
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].tag < entries[j].tag })

	ifdLen := 2 + 12*len(entries) + 4
	extra := 8 + ifdLen // where out-of-line values start
	for _, e := range entries {
		if len(e.data) > 4 {
			extra += len(e.data) + len(e.data)%2
		}
	}
	stripOffset := extra
	for i := range entries {
		if entries[i].tag == 273 {
			entries[i].data = longs(uint32(stripOffset))
		}
	}

	out := make([]byte, 0, stripOffset+len(pix))
	out = append(out, 'I', 'I', 42, 0)
	out = append(out, longs(8)...)
	out = append(out, shorts(uint16(len(entries)))...)
	next := 8 + ifdLen
	var tail []byte
	for _, e := range entries {
		out = append(out, shorts(e.tag, e.typ)...)
		out = append(out, longs(e.count)...)
		if len(e.data) <= 4 {
			v := make([]byte, 4)
			copy(v, e.data)
			out = append(out, v...)
			continue
		}
		out = append(out, longs(uint32(next))...)
		tail = append(tail, e.data...)
		next += len(e.data)
		if len(e.data)%2 == 1 {
			tail = append(tail, 0)
			next++
		}
	}
	out = append(out, longs(0)...) // no next IFD
	out = append(out, tail...)
	return append(out, pix...)
}
