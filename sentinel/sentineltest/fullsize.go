package sentineltest

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/binary"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	"shfleet/sentinel"
)

// Full-size bodies ([Config.FullSizeBodies]): the simulator answers the real size
// of the requested raster, width x height x output bands x bytes per sample, as a
// deterministic pseudo-random stream generated while it is written (never held in
// memory whole). The bytes are raw samples, not a GeoTIFF: they exist to load the
// client's download path (memory, disk, bandwidth) like real answers would.

// DefaultOutputBands is the band count assumed for an output whose evalscript
// declares none (and reads no input bands either).
const DefaultOutputBands = 3

// fullSizeChunk is the size of the buffer a full-size body is generated in.
const fullSizeChunk = 64 << 10

// outputFormat is the band count and bytes per sample of one evalscript output.
type outputFormat struct {
	bands, bytesPerSample int
}

// bytesPerSample of a sample type: FLOAT32 is 4 bytes, UINT16 and INT16 2,
// anything else (AUTO, UINT8, INT8) 1.
func bytesPerSample(sampleType string) int {
	switch sampleType {
	case "FLOAT32":
		return 4
	case "UINT16", "INT16":
		return 2
	}
	return 1
}

// fallbackBands is the band count of an output that declares none: as many as
// the script reads, or [DefaultOutputBands].
func (s setupInfo) fallbackBands() int {
	if s.inputBands > 0 {
		return s.inputBands
	}
	return DefaultOutputBands
}

// outputFormats reads the output bands and sample type of every output declared
// in the evalscript's setup(), by id ("default" for an unnamed one). An output
// without a bands count has [setupInfo.fallbackBands].
func outputFormats(info setupInfo) map[string]outputFormat {
	out := map[string]outputFormat{}
	for _, o := range info.outputs {
		f := outputFormat{bands: o.bands, bytesPerSample: bytesPerSample(o.sampleType)}
		if f.bands <= 0 {
			f.bands = info.fallbackBands()
		}
		out[o.id] = f
	}
	return out
}

// FullSizeBodyLength is the length in bytes of the full-size answer for output
// outputID of req: width x height x output bands x bytes per sample, the size
// taken from width/height or from resx/resy over the bounds.
func FullSizeBodyLength(req sentinel.ProcessRequest, outputID string) int64 {
	w, h := req.Output.Width, req.Output.Height
	if w <= 0 || h <= 0 {
		w, h = sizeFromRes(req, requestBBox(req))
	}
	info := parseSetup(req.Evalscript)
	f, ok := outputFormats(info)[outputID]
	if !ok { // an output setup() does not declare (or an unreadable script)
		f = outputFormat{bands: info.fallbackBands(), bytesPerSample: 1}
		if info.float32() {
			f.bytesPerSample = 4
		}
	}
	return int64(max(w, 0)) * int64(max(h, 0)) * int64(f.bands) * int64(f.bytesPerSample)
}

// FullSizeBody returns a reader of the exact bytes the simulator serves for output
// outputID of req when [Config.FullSizeBodies] is set: [FullSizeBodyLength] bytes
// of a pseudo-random stream seeded by the canonical request and outputID, generated
// as it is read.
func FullSizeBody(req sentinel.ProcessRequest, outputID string) io.Reader {
	seed := sha256.Sum256(append(canonical(req), append([]byte{0}, outputID...)...))
	src := rand.NewPCG(binary.LittleEndian.Uint64(seed[:8]), binary.LittleEndian.Uint64(seed[8:16]))
	return &streamReader{src: src, left: FullSizeBodyLength(req, outputID)}
}

// streamReader yields left bytes of src's output, eight bytes per draw; the same
// bytes whatever the sizes of the reads.
type streamReader struct {
	src     *rand.PCG
	left    int64
	buf     [8]byte
	pending []byte // the rest of a draw split by the previous read
}

func (r *streamReader) Read(p []byte) (int, error) {
	if r.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	n := copy(p, r.pending)
	r.pending = r.pending[n:]
	for ; len(p)-n >= 8; n += 8 {
		binary.LittleEndian.PutUint64(p[n:], r.src.Uint64())
	}
	if n < len(p) {
		binary.LittleEndian.PutUint64(r.buf[:], r.src.Uint64())
		c := copy(p[n:], r.buf[:])
		r.pending = r.buf[c:]
		n += c
	}
	r.left -= int64(n)
	return n, nil
}

// fullSizeTarLength is the length of the tar answer holding every output at full
// size (USTAR: a 512-byte header per entry, data padded to 512, two zero blocks).
func fullSizeTarLength(req sentinel.ProcessRequest) int64 {
	n := int64(1024)
	for _, id := range outputs(req) {
		n += 512 + (FullSizeBodyLength(req, id)+511)/512*512
	}
	return n
}

// writeFullSize streams the full-size answer: the single output's stream, or a
// tar of every output's. On truncate it stops after half the announced length and
// aborts the connection, like writeBody.
func writeFullSize(w http.ResponseWriter, req sentinel.ProcessRequest, asTar, truncate bool) {
	length := FullSizeBodyLength(req, outputs(req)[0])
	ct := "image/tiff"
	if asTar {
		length, ct = fullSizeTarLength(req), TarContentType
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Content-Length", strconv.FormatInt(length, 10))
	w.WriteHeader(http.StatusOK)
	var dst io.Writer = w
	if truncate {
		dst = &limitedWriter{w: w, left: length / 2}
	}
	buf := make([]byte, fullSizeChunk)
	var err error
	if asTar {
		tw := tar.NewWriter(dst)
		for _, id := range outputs(req) {
			if err = tw.WriteHeader(&tar.Header{Name: id + ".tif", Mode: 0o644, Size: FullSizeBodyLength(req, id),
				ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg, Format: tar.FormatUSTAR}); err != nil {
				break
			}
			if _, err = io.CopyBuffer(tw, FullSizeBody(req, id), buf); err != nil {
				break
			}
		}
		if err == nil {
			err = tw.Close()
		}
	} else {
		_, err = io.CopyBuffer(dst, FullSizeBody(req, outputs(req)[0]), buf)
	}
	if truncate {
		_ = http.NewResponseController(w).Flush()
		panic(http.ErrAbortHandler)
	}
	_ = err // the client went away: nothing to do
}

// limitedWriter writes at most left bytes, then fails.
type limitedWriter struct {
	w    io.Writer
	left int64
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if l.left <= 0 {
		return 0, io.ErrShortWrite
	}
	if int64(len(p)) > l.left {
		n, err := l.w.Write(p[:l.left])
		l.left -= int64(n)
		if err == nil {
			err = io.ErrShortWrite
		}
		return n, err
	}
	n, err := l.w.Write(p)
	l.left -= int64(n)
	return n, err
}
