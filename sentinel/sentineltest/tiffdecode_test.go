package sentineltest

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"testing"
)

// A small TIFF reader written from the TIFF 6.0 and GeoTIFF 1.0 specifications,
// independent of the encoder: it checks the format of the simulator's answers
// without GDAL.

// decodedTIFF is the first IFD of a little-endian TIFF.
type decodedTIFF struct {
	tags map[uint16]tiffValue
	// pixels is the decompressed, concatenated strip data.
	pixels []byte
}

// tiffValue is one IFD entry's values: ints for BYTE/SHORT/LONG, floats for
// DOUBLE, str for ASCII (without the NUL).
type tiffValue struct {
	typ    uint16
	ints   []uint64
	floats []float64
	str    string
}

// decodeTIFF parses b: header, first IFD (tags strictly ascending), every value,
// then the strips (Deflate or none), checking that they are inside b and
// decompress to exactly the image's bytes.
func decodeTIFF(b []byte) (*decodedTIFF, error) {
	if len(b) < 8 || string(b[:4]) != "II*\x00" {
		return nil, fmt.Errorf("not a little-endian TIFF: % x", b[:min(8, len(b))])
	}
	le := binary.LittleEndian
	ifd := int(le.Uint32(b[4:]))
	if ifd%2 != 0 || ifd+2 > len(b) {
		return nil, fmt.Errorf("IFD offset %d is odd or outside %d bytes", ifd, len(b))
	}
	n := int(le.Uint16(b[ifd:]))
	if ifd+2+12*n+4 > len(b) {
		return nil, fmt.Errorf("IFD of %d entries at %d overruns %d bytes", n, ifd, len(b))
	}
	d := &decodedTIFF{tags: map[uint16]tiffValue{}}
	var prev uint16
	for i := range n {
		e := b[ifd+2+12*i:]
		tag, typ, count := le.Uint16(e), le.Uint16(e[2:]), int(le.Uint32(e[4:]))
		if i > 0 && tag <= prev {
			return nil, fmt.Errorf("tag %d after %d: tags must ascend", tag, prev)
		}
		prev = tag
		size := map[uint16]int{1: 1, 2: 1, 3: 2, 4: 4, 12: 8}[typ]
		if size == 0 {
			return nil, fmt.Errorf("tag %d: unexpected field type %d", tag, typ)
		}
		data := e[8:12]
		if size*count > 4 {
			off := int(le.Uint32(e[8:]))
			if off%2 != 0 || off+size*count > len(b) {
				return nil, fmt.Errorf("tag %d: value at %d+%d is odd or outside %d bytes", tag, off, size*count, len(b))
			}
			data = b[off : off+size*count]
		}
		v := tiffValue{typ: typ}
		for k := range count {
			switch typ {
			case 1:
				v.ints = append(v.ints, uint64(data[k]))
			case 2:
				if k == count-1 {
					if data[k] != 0 {
						return nil, fmt.Errorf("tag %d: ASCII value not NUL-terminated", tag)
					}
					v.str = string(data[:k])
				}
			case 3:
				v.ints = append(v.ints, uint64(le.Uint16(data[2*k:])))
			case 4:
				v.ints = append(v.ints, uint64(le.Uint32(data[4*k:])))
			case 12:
				v.floats = append(v.floats, math.Float64frombits(le.Uint64(data[8*k:])))
			}
		}
		d.tags[tag] = v
	}
	if next := le.Uint32(b[ifd+2+12*n:]); next != 0 {
		return nil, fmt.Errorf("next IFD offset %d, want 0 (one image)", next)
	}
	// The strips.
	w, h, spp := d.int(256), d.int(257), d.int(277)
	bits := d.tags[258].ints
	if len(bits) != spp {
		return nil, fmt.Errorf("%d BitsPerSample values for %d samples per pixel", len(bits), spp)
	}
	rowBytes := 0
	for _, x := range bits {
		rowBytes += w * int(x) / 8
	}
	rps := d.int(278)
	offs, counts := d.tags[273].ints, d.tags[279].ints
	if rps < 1 || len(offs) != (h+rps-1)/rps || len(counts) != len(offs) {
		return nil, fmt.Errorf("%d strip offsets and %d counts for %d rows of %d per strip", len(offs), len(counts), h, rps)
	}
	for i, off := range offs {
		if off+counts[i] > uint64(len(b)) {
			return nil, fmt.Errorf("strip %d at %d+%d outside %d bytes", i, off, counts[i], len(b))
		}
		raw := b[off : off+counts[i]]
		want := rowBytes * (min(h, (i+1)*rps) - i*rps)
		switch c := d.int(259); c {
		case 1:
			d.pixels = append(d.pixels, raw...)
		case 8:
			zr, err := zlib.NewReader(bytes.NewReader(raw))
			if err != nil {
				return nil, fmt.Errorf("strip %d: %w", i, err)
			}
			got, err := io.ReadAll(zr)
			if err != nil {
				return nil, fmt.Errorf("strip %d: %w", i, err)
			}
			d.pixels = append(d.pixels, got...)
			raw = got
		default:
			return nil, fmt.Errorf("compression %d not expected", c)
		}
		if len(raw) != want {
			return nil, fmt.Errorf("strip %d holds %d bytes, want %d", i, len(raw), want)
		}
	}
	return d, nil
}

// int is the single integer value of tag, -1 if absent.
func (d *decodedTIFF) int(tag uint16) int {
	v, ok := d.tags[tag]
	if !ok || len(v.ints) != 1 {
		return -1
	}
	return int(v.ints[0])
}

func mustDecodeTIFF(t *testing.T, b []byte) *decodedTIFF {
	t.Helper()
	d, err := decodeTIFF(b)
	if err != nil {
		t.Fatal(err)
	}
	return d
}
