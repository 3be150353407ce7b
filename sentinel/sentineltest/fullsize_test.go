package sentineltest

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"strconv"
	"testing"
	"testing/iotest"

	"shfleet/sentinel"
)

const (
	evalFloat4 = `//VERSION=3
function setup() { return { input: ["B02", "B03", "B04", "B08"], output: { bands: 4, sampleType: "FLOAT32" } }; }
function evaluatePixel(s) { return [s.B02, s.B03, s.B04, s.B08]; }`
	evalTwoOutputs = `//VERSION=3
function setup() { return { input: ["B02", "B03", "B04"], output: [{ id: "rgb", bands: 3 }, { id: "ndvi", bands: 1, sampleType: "UINT16" }] }; }
function evaluatePixel(s) { return { rgb: [s.B04, s.B03, s.B02], ndvi: [1] }; }`
)

func TestFullSizeBodyLength(t *testing.T) {
	t.Parallel()
	req := processReq() // 512x512, 3 bands, 8-bit
	for _, tc := range []struct {
		name, eval, output string
		want               int64
	}{
		{"3-band 8-bit", req.Evalscript, "default", 512 * 512 * 3},
		{"4-band float32", evalFloat4, "default", 512 * 512 * 4 * 4},
		{"named 3-band 8-bit", evalTwoOutputs, "rgb", 512 * 512 * 3},
		{"named 1-band uint16", evalTwoOutputs, "ndvi", 512 * 512 * 2},
	} {
		r := req
		r.Evalscript = tc.eval
		if got := FullSizeBodyLength(r, tc.output); got != tc.want {
			t.Errorf("%s: %d bytes, want %d", tc.name, got, tc.want)
		}
	}
}

// TestFullSizeBodyDeterministic: the stream is the same whatever the read sizes,
// and differs between requests.
func TestFullSizeBodyDeterministic(t *testing.T) {
	t.Parallel()
	req := processReq()
	req.Output.Width, req.Output.Height = 101, 33 // 9999 bytes: not a multiple of 8
	whole, err := io.ReadAll(FullSizeBody(req, "default"))
	if err != nil || len(whole) != 101*33*3 {
		t.Fatalf("%d bytes, %v; want %d", len(whole), err, 101*33*3)
	}
	odd, err := io.ReadAll(iotest.OneByteReader(FullSizeBody(req, "default")))
	if err != nil || !bytes.Equal(odd, whole) {
		t.Fatalf("byte-by-byte read differs from the whole read (%v)", err)
	}
	if err := iotest.TestReader(FullSizeBody(req, "default"), whole); err != nil {
		t.Fatal(err)
	}
	other := req
	other.Output.Width = 100
	b, _ := io.ReadAll(FullSizeBody(other, "default"))
	if bytes.Equal(b[:64], whole[:64]) {
		t.Error("two different requests got the same bytes")
	}
}

func TestFullSizeBodiesServed(t *testing.T) {
	t.Parallel()
	s := NewServer(Config{FullSizeBodies: true})
	t.Cleanup(s.Close)
	c := sentinel.NewClient(s.ClientConfig(), nil)
	ctx := context.Background()

	req := processReq()
	req.Evalscript = evalFloat4
	req.Output.Width, req.Output.Height = 300, 200
	resp, err := c.Process.Do(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Close()
	want, _ := io.ReadAll(FullSizeBody(req, "default"))
	if err != nil || resp.ContentLength != 300*200*4*4 || !bytes.Equal(b, want) {
		t.Fatalf("err %v, Content-Length %d, %d bytes (equal %v); want %d", err, resp.ContentLength, len(b), bytes.Equal(b, want), 300*200*4*4)
	}

	// Several outputs: a tar of full-size parts, Content-Length exact.
	req.Evalscript = evalTwoOutputs
	req.Output.Responses = []sentinel.OutputResponse{{Identifier: "rgb"}, {Identifier: "ndvi"}}
	resp, err = c.Process.Do(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(resp.Body)
	resp.Close()
	if err != nil || int64(len(raw)) != resp.ContentLength || resp.ContentLength != fullSizeTarLength(req) {
		t.Fatalf("tar: err %v, %d bytes, Content-Length %d, want %d", err, len(raw), resp.ContentLength, fullSizeTarLength(req))
	}
	tr := tar.NewReader(bytes.NewReader(raw))
	for _, id := range []string{"rgb", "ndvi"} {
		h, err := tr.Next()
		if err != nil || h.Name != id+".tif" {
			t.Fatalf("tar entry %v: %v", h, err)
		}
		got, _ := io.ReadAll(tr)
		want, _ := io.ReadAll(FullSizeBody(req, id))
		if !bytes.Equal(got, want) || int64(len(got)) != FullSizeBodyLength(req, id) {
			t.Errorf("tar entry %s: %d bytes, want %d", id, len(got), FullSizeBodyLength(req, id))
		}
	}

	// The default stays the ProcessBody GeoTIFF.
	small := NewServer(Config{})
	t.Cleanup(small.Close)
	req = processReq()
	resp, err = sentinel.NewClient(small.ClientConfig(), nil).Process.Do(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Close()
	if !bytes.Equal(b, ProcessBody(req, "default")) {
		t.Errorf("default body: %d bytes, want ProcessBody's %d", len(b), len(ProcessBody(req, "default")))
	}
}

func TestFullSizeTruncated(t *testing.T) {
	t.Parallel()
	s := NewServer(Config{FullSizeBodies: true, Faults: Faults{TruncateRate: 1}})
	t.Cleanup(s.Close)
	tok := fetchToken(t, s)
	req := processReq()
	r := post(t, s, ProcessPath, tok, req)
	if r.status != 200 || !errors.Is(r.err, io.ErrUnexpectedEOF) || len(r.body) != 512*512*3/2 {
		t.Fatalf("HTTP %d, %d bytes, err %v; want 200, %d bytes then ErrUnexpectedEOF", r.status, len(r.body), r.err, 512*512*3/2)
	}
	if got := r.header.Get("Content-Length"); got != strconv.Itoa(512*512*3) {
		t.Errorf("Content-Length %s, want the full %d", got, 512*512*3)
	}
}
