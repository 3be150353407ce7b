package sentinel

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"
)

// heapSampler is an io.Writer that counts bytes and samples the heap every
// sampleEvery bytes, recording the largest HeapAlloc seen.
type heapSampler struct {
	n, nextSample, sampleEvery int64
	maxHeap                    uint64
}

func (s *heapSampler) Write(p []byte) (int, error) {
	s.n += int64(len(p))
	if s.n >= s.nextSample {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		s.maxHeap = max(s.maxHeap, ms.HeapAlloc)
		s.nextSample += s.sampleEvery
	}
	return len(p), nil
}

// TestProcessStreamsLargeBody serves a 40 MiB body from a generator and checks
// that Do returns while the server is still held back (so nothing is buffered
// before Do returns), that every byte arrives, and that the heap never grows
// anywhere near the body's size while it is read. Not parallel: it measures the
// heap.
func TestProcessStreamsLargeBody(t *testing.T) {
	const size = 40 << 20
	chunk := bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KiB
	release := make(chan struct{})
	_, cfg := newFakeSH(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/tiff")
		w.Header().Set("Content-Length", fmt.Sprint(size))
		w.Header().Set(HeaderPUSpent, "1.5")
		_, _ = w.Write(chunk)
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		for sent := len(chunk); sent < size; sent += len(chunk) {
			if _, err := w.Write(chunk[:min(len(chunk), size-sent)]); err != nil {
				return
			}
		}
	})
	c := NewClient(cfg, nil)
	// The timeout only guards against a hang if Do buffered the body.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	resp, err := c.Process.Do(ctx, validProcessRequest())
	if err != nil {
		t.Fatalf("Do did not return before the body was complete: %v", err)
	}
	defer resp.Close()
	if !resp.HasPUSpent || resp.PUSpent != 1.5 || resp.ContentType != "image/tiff" || resp.ContentLength != size {
		t.Errorf("response %+v", resp)
	}
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	close(release)
	s := &heapSampler{sampleEvery: 2 << 20}
	if _, err := io.Copy(s, resp.Body); err != nil {
		t.Fatal(err)
	}
	if s.n != size {
		t.Fatalf("read %d bytes, want %d", s.n, size)
	}
	growth := int64(s.maxHeap) - int64(base.HeapAlloc)
	t.Logf("heap growth while streaming: %d KiB", growth>>10)
	if growth > 8<<20 {
		t.Errorf("heap grew by %d MiB while streaming a %d MiB body", growth>>20, size>>20)
	}
}

func TestProcessTruncatedBodyIsAnError(t *testing.T) {
	t.Parallel()
	_, cfg := newFakeSH(t, func(w http.ResponseWriter, r *http.Request) {
		conn, buf, err := w.(http.Hijacker).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		_, _ = buf.WriteString("HTTP/1.1 200 OK\r\nContent-Type: image/tiff\r\nContent-Length: 1000\r\nX-ProcessingUnits-Spent: 1\r\n\r\n")
		_, _ = buf.Write(bytes.Repeat([]byte{'x'}, 500))
		_ = buf.Flush()
	})
	c := NewClient(cfg, nil)
	resp, err := c.Process.Do(context.Background(), validProcessRequest())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Close()
	b, err := io.ReadAll(resp.Body)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("read %d bytes, err %v; want io.ErrUnexpectedEOF", len(b), err)
	}
	if len(b) != 500 {
		t.Errorf("read %d bytes", len(b))
	}
}

func TestProcessMultipleResponsesAsTar(t *testing.T) {
	t.Parallel()
	parts := []struct {
		name string
		data []byte
	}{
		{"default.tif", bytes.Repeat([]byte("T"), 1<<20)},
		{"ndvi.tif", []byte("ndvi-bytes")},
		{"userdata.json", []byte(`{"scenes":2}`)},
	}
	var gotReq ProcessRequest
	var accept string
	_, cfg := newFakeSH(t, func(w http.ResponseWriter, r *http.Request) {
		accept = r.Header.Get("Accept")
		_ = json.NewDecoder(r.Body).Decode(&gotReq)
		w.Header().Set("Content-Type", "application/x-tar")
		w.Header().Set(HeaderPUSpent, "2.25")
		tw := tar.NewWriter(w)
		for _, p := range parts {
			_ = tw.WriteHeader(&tar.Header{Name: p.name, Mode: 0o644, Size: int64(len(p.data)), Typeflag: tar.TypeReg})
			_, _ = tw.Write(p.data)
		}
		_ = tw.Close()
	})
	req := validProcessRequest()
	req.Output.Responses = []OutputResponse{
		{Identifier: "default", Format: ResponseFormat{Type: "image/tiff"}},
		{Identifier: "ndvi", Format: ResponseFormat{Type: "image/tiff"}},
		{Identifier: "userdata", Format: ResponseFormat{Type: "application/json"}},
	}
	c := NewClient(cfg, nil)
	resp, err := c.Process.Do(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Close()
	if accept != MediaTypeTar {
		t.Errorf("Accept = %q, want %q", accept, MediaTypeTar)
	}
	if len(gotReq.Output.Responses) != 3 || gotReq.Output.Width != 512 || gotReq.Evalscript == "" {
		t.Errorf("server got %+v", gotReq)
	}
	i := 0
	err = SplitTar(resp.Body, func(name string, r io.Reader) error {
		b, err := io.ReadAll(r)
		if err != nil {
			return err
		}
		if name != parts[i].name || !bytes.Equal(b, parts[i].data) {
			t.Errorf("part %d: %s with %d bytes", i, name, len(b))
		}
		i++
		return nil
	})
	if err != nil || i != 3 {
		t.Fatalf("SplitTar: %d parts, %v", i, err)
	}
	if resp.PUSpent != 2.25 {
		t.Errorf("PU spent %g", resp.PUSpent)
	}
}

func TestProcessAcceptHeader(t *testing.T) {
	t.Parallel()
	tests := []struct {
		responses []OutputResponse
		want      string
	}{
		{nil, DefaultResponseFormat},
		{[]OutputResponse{{Identifier: "default"}}, DefaultResponseFormat},
		{[]OutputResponse{{Identifier: "default", Format: ResponseFormat{Type: "image/jpeg"}}}, "image/jpeg"},
		{[]OutputResponse{{Identifier: "a", Format: ResponseFormat{Type: "image/png"}}, {Identifier: "b", Format: ResponseFormat{Type: "image/png"}}}, MediaTypeTar},
	}
	for _, tt := range tests {
		req := validProcessRequest()
		req.Output.Responses = tt.responses
		if got := acceptFor(req); got != tt.want {
			t.Errorf("%+v: Accept %q, want %q", tt.responses, got, tt.want)
		}
	}
}

func TestProcessValidatesBeforeSending(t *testing.T) {
	t.Parallel()
	f, cfg := newFakeSH(t, func(w http.ResponseWriter, r *http.Request) { t.Error("invalid request was sent") })
	c := NewClient(cfg, nil)
	req := validProcessRequest()
	req.Output.Width = 3000
	_, err := c.Process.Do(context.Background(), req)
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "output.width" || !strings.Contains(err.Error(), "output.width: 3000 exceeds the Process API limit of 2500 px; lower the resolution or split the tile") {
		t.Fatalf("got %v", err)
	}
	if f.apiRequests.Load() != 0 || f.tokenRequests.Load() != 0 {
		t.Errorf("requests were sent: api %d token %d", f.apiRequests.Load(), f.tokenRequests.Load())
	}
}

func TestProcessWithoutPUHeader(t *testing.T) {
	t.Parallel()
	var path string
	_, cfg := newFakeSH(t, func(w http.ResponseWriter, r *http.Request) {
		path = r.URL.Path
		_, _ = w.Write([]byte("png"))
	})
	cfg.APIPaths = CurrentAPIPaths
	resp, err := NewClient(cfg, nil).Process.Do(context.Background(), validProcessRequest())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Close()
	if resp.HasPUSpent || resp.PUSpent != 0 || path != CurrentProcessPath {
		t.Errorf("PU %g %v, path %q", resp.PUSpent, resp.HasPUSpent, path)
	}
}
