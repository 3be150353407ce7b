package userfile_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"shfleet/internal/userfile"
)

func write(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Read refuses what is not a small regular UTF-8 file, names the problem, and
// keeps a secret's bytes out of the message.
func TestReadRefuses(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	fifo := filepath.Join(dir, "aoi.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	small := userfile.Kind{Name: "AOI file", MaxBytes: 8, Text: true}
	secret := userfile.Kind{Name: "secret file", MaxBytes: 64, Text: true, Sensitive: true}
	cases := []struct {
		name, path string
		kind       userfile.Kind
		is         error
		want       string
	}{
		{"fifo", fifo, userfile.AOI, userfile.ErrNotRegular, "named pipe (FIFO)"},
		{"directory", dir, userfile.AOI, userfile.ErrNotRegular, "is a directory"},
		{"device", "/dev/zero", userfile.Secret, userfile.ErrNotRegular, "character device"},
		{"too large", write(t, "big.geojson", []byte("123456789")), small, userfile.ErrTooLarge, "9 bytes, larger than the limit of 8 bytes"},
		{"missing", filepath.Join(dir, "nope.geojson"), userfile.AOI, os.ErrNotExist, "no such file"},
		{"utf-16 le", write(t, "u16.geojson", []byte{0xFF, 0xFE, '{', 0}), userfile.AOI, userfile.ErrEncoding, "UTF-16"},
		{"latin-1", write(t, "l1.geojson", []byte("caf\xe9")), userfile.AOI, userfile.ErrEncoding, "0xE9 at offset 3"},
		{"binary secret", write(t, "s", []byte("top\x00secret")), secret, userfile.ErrEncoding, "not plain UTF-8 text"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := userfile.Read(ctx, "--aoi", c.path, c.kind)
			if !errors.Is(err, c.is) {
				t.Fatalf("Read(%s) = %v; want %v", c.path, err, c.is)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("message %q does not say %q", err, c.want)
			}
			if strings.Contains(err.Error(), "secret") && c.kind.Sensitive && strings.Contains(err.Error(), "top") {
				t.Fatalf("message %q shows the secret's bytes", err)
			}
		})
	}
}

// A UTF-8 byte-order mark is dropped; the content is returned unchanged otherwise.
func TestReadText(t *testing.T) {
	p := write(t, "aoi.geojson", []byte("\xEF\xBB\xBF{\"type\":\"Point\"}"))
	got, err := userfile.Read(context.Background(), "AOI_FILE", p, userfile.AOI)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != `{"type":"Point"}` {
		t.Fatalf("Read = %q, want the JSON without the BOM", got)
	}
}
