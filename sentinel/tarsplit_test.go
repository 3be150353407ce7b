package sentinel

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

type tarEntry struct {
	name string
	typ  byte
	data string
}

func makeTar(t *testing.T, entries ...tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		hdr := &tar.Header{Name: e.name, Typeflag: typ, Mode: 0o644, Size: int64(len(e.data))}
		if typ == tar.TypeDir {
			hdr.Size = 0
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if typ == tar.TypeReg {
			if _, err := tw.Write([]byte(e.data)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestSplitTar(t *testing.T) {
	t.Parallel()
	archive := makeTar(t,
		tarEntry{name: "./", typ: tar.TypeDir},
		tarEntry{name: "./default.tif", data: "tiff-data"},
		tarEntry{name: "ndvi.tif", data: strings.Repeat("n", 100000)},
		tarEntry{name: "userdata.json", data: `{"a":1}`},
	)
	got := map[string]string{}
	var order []string
	err := SplitTar(bytes.NewReader(archive), func(name string, r io.Reader) error {
		if name == "ndvi.tif" {
			// A part need not be read to the end.
			b := make([]byte, 10)
			_, err := io.ReadFull(r, b)
			got[name] = string(b)
			order = append(order, name)
			return err
		}
		b, err := io.ReadAll(r)
		got[name] = string(b)
		order = append(order, name)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(order, ",") != "default.tif,ndvi.tif,userdata.json" || got["default.tif"] != "tiff-data" || got["ndvi.tif"] != "nnnnnnnnnn" || got["userdata.json"] != `{"a":1}` {
		t.Errorf("parts %v %v", order, got)
	}
}

func TestSplitTarStreams(t *testing.T) {
	t.Parallel()
	// Through a pipe: the first part arrives before the writer has finished.
	pr, pw := io.Pipe()
	firstSeen := make(chan struct{})
	go func() {
		tw := tar.NewWriter(pw)
		_ = tw.WriteHeader(&tar.Header{Name: "a.tif", Mode: 0o644, Size: 3, Typeflag: tar.TypeReg})
		_, _ = tw.Write([]byte("aaa"))
		_ = tw.Flush()
		<-firstSeen // the second part is written only after the first was handled
		_ = tw.WriteHeader(&tar.Header{Name: "b.tif", Mode: 0o644, Size: 3, Typeflag: tar.TypeReg})
		_, _ = tw.Write([]byte("bbb"))
		_ = tw.Close()
		_ = pw.Close()
	}()
	var names []string
	err := SplitTar(pr, func(name string, r io.Reader) error {
		if _, err := io.Copy(io.Discard, r); err != nil {
			return err
		}
		names = append(names, name)
		if name == "a.tif" {
			close(firstSeen)
		}
		return nil
	})
	if err != nil || strings.Join(names, ",") != "a.tif,b.tif" {
		t.Fatalf("names %v, err %v", names, err)
	}
}

func TestSplitTarErrors(t *testing.T) {
	t.Parallel()
	good := makeTar(t, tarEntry{name: "default.tif", data: strings.Repeat("x", 2048)}, tarEntry{name: "b.tif", data: "b"})
	boom := errors.New("disk full")
	tests := []struct {
		name  string
		data  []byte
		fn    func(string, io.Reader) error
		check func(error) bool
	}{
		{"callback error", good, func(name string, r io.Reader) error { return boom }, func(err error) bool {
			return errors.Is(err, boom) && strings.Contains(err.Error(), `"default.tif"`)
		}},
		{"empty archive", makeTar(t), nil, func(err error) bool { return errors.Is(err, ErrEmptyTar) }},
		{"only a directory", makeTar(t, tarEntry{name: "dir/", typ: tar.TypeDir}), nil, func(err error) bool { return errors.Is(err, ErrEmptyTar) }},
		{"absolute name", makeTar(t, tarEntry{name: "/etc/passwd", data: "x"}), nil, func(err error) bool { return err != nil && strings.Contains(err.Error(), "unsafe name") }},
		{"climbing name", makeTar(t, tarEntry{name: "a/../../x.tif", data: "x"}), nil, func(err error) bool { return err != nil && strings.Contains(err.Error(), "unsafe name") }},
		{"truncated archive", good[:1000], nil, func(err error) bool { return errors.Is(err, io.ErrUnexpectedEOF) }},
		{"not a tar", []byte(strings.Repeat("garbage!", 100)), nil, func(err error) bool { return err != nil && !errors.Is(err, ErrEmptyTar) }},
	}
	for _, tt := range tests {
		fn := tt.fn
		if fn == nil {
			fn = func(name string, r io.Reader) error { _, err := io.Copy(io.Discard, r); return err }
		}
		if err := SplitTar(bytes.NewReader(tt.data), fn); !tt.check(err) {
			t.Errorf("%s: unexpected error %v", tt.name, err)
		}
	}
}
