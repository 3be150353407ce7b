package output

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// testStore is a store under test plus where its files live (file:// only).
type testStore struct {
	name  string
	store *Store
	root  string // "" for mem://
	spool string
}

// openStores opens a file:// store in a temp dir and a mem:// store, each with its
// own spool dir.
func openStores(t *testing.T) []testStore {
	t.Helper()
	ctx := context.Background()
	var out []testStore
	for _, kind := range []string{"file", "mem"} {
		spool := t.TempDir()
		var u, root string
		if kind == "file" {
			root = filepath.Join(t.TempDir(), "out")
			u = "file://" + filepath.ToSlash(root)
		} else {
			u = "mem://"
		}
		s, err := Config{SpoolDir: spool}.Open(ctx, u)
		if err != nil {
			t.Fatalf("open %s: %v", u, err)
		}
		t.Cleanup(func() { _ = s.Close() })
		out = append(out, testStore{name: kind, store: s, root: root, spool: spool})
	}
	return out
}

// regularFiles lists every regular file under dir (relative, "/" separated).
func regularFiles(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", dir, err)
	}
	return files
}

// assertNothingStored checks that key has no object, that the file store's tree
// holds no file at all (no object, no sidecar, no temp file) and the spool is empty.
func assertNothingStored(t *testing.T, ts testStore, key string) {
	t.Helper()
	if _, ok, err := ts.store.Exists(context.Background(), key); err != nil || ok {
		t.Errorf("Exists(%q) = %v, %v; want false, nil", key, ok, err)
	}
	if _, err := ts.store.Stat(context.Background(), key); !errors.Is(err, ErrNotExist) {
		t.Errorf("Stat(%q) error = %v; want ErrNotExist", key, err)
	}
	if ts.root != "" {
		if files := regularFiles(t, ts.root); len(files) != 0 {
			t.Errorf("files left in store root: %v", files)
		}
	}
	if files := regularFiles(t, ts.spool); len(files) != 0 {
		t.Errorf("files left in spool dir: %v", files)
	}
}

// failingReader returns n bytes of data, then err.
type failingReader struct {
	n   int
	err error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n == 0 {
		return 0, f.err
	}
	k := min(len(p), f.n)
	for i := range p[:k] {
		p[i] = byte(i)
	}
	f.n -= k
	return k, nil
}

func payload(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func readAll(t *testing.T, s *Store, key string) []byte {
	t.Helper()
	r, err := s.NewReader(context.Background(), key)
	if err != nil {
		t.Fatalf("NewReader(%q): %v", key, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("read %q: %v", key, err)
	}
	return b
}

func TestPutStoresContentSizeAndSHA256(t *testing.T) {
	ctx := context.Background()
	for _, ts := range openStores(t) {
		t.Run(ts.name, func(t *testing.T) {
			data := payload(300_000)
			key := "req1/T33UVP_0_0/2024-01-31/default.tif"
			obj, err := ts.store.Put(ctx, key, bytes.NewReader(data), PutOptions{ExpectedSize: int64(len(data))})
			if err != nil {
				t.Fatalf("Put: %v", err)
			}
			want := Object{Key: key, Size: int64(len(data)), SHA256: sum(data)}
			if obj != want {
				t.Errorf("Put = %+v; want %+v", obj, want)
			}
			if got := readAll(t, ts.store, key); !bytes.Equal(got, data) {
				t.Errorf("read back %d bytes, differ from the %d written", len(got), len(data))
			}
			st, ok, err := ts.store.Exists(ctx, key)
			if err != nil || !ok {
				t.Fatalf("Exists = %v, %v; want true", ok, err)
			}
			if st.SHA256 != want.SHA256 || st.Size != want.Size || st.ModTime.IsZero() {
				t.Errorf("Exists object = %+v; want size %d sha %s and a mod time", st, want.Size, want.SHA256)
			}
			if ts.root != "" {
				b, err := os.ReadFile(filepath.Join(ts.root, filepath.FromSlash(key)))
				if err != nil || !bytes.Equal(b, data) {
					t.Errorf("file on disk: %d bytes, err %v; want the %d bytes written", len(b), err, len(data))
				}
			}
			if files := regularFiles(t, ts.spool); len(files) != 0 {
				t.Errorf("spool not cleaned: %v", files)
			}
		})
	}
}

func TestPutFailingReaderStoresNothing(t *testing.T) {
	ctx := context.Background()
	boom := errors.New("connection reset by peer")
	for _, ts := range openStores(t) {
		t.Run(ts.name, func(t *testing.T) {
			key := "req/tile/2024-01-01/default.tif"
			_, err := ts.store.Put(ctx, key, &failingReader{n: 100_000, err: boom}, PutOptions{})
			if !errors.Is(err, boom) {
				t.Fatalf("Put error = %v; want it to wrap %v", err, boom)
			}
			if !strings.Contains(err.Error(), key) || !strings.Contains(err.Error(), "100000 bytes") {
				t.Errorf("error %q should name the key and how far it got", err)
			}
			assertNothingStored(t, ts, key)
		})
	}
}

func TestPutFailureKeepsPreviousObject(t *testing.T) {
	ctx := context.Background()
	for _, ts := range openStores(t) {
		t.Run(ts.name, func(t *testing.T) {
			key := "a/b.bin"
			old := []byte("complete old version")
			if _, err := ts.store.Put(ctx, key, bytes.NewReader(old), PutOptions{}); err != nil {
				t.Fatal(err)
			}
			if _, err := ts.store.Put(ctx, key, &failingReader{n: 10, err: io.ErrUnexpectedEOF}, PutOptions{}); err == nil {
				t.Fatal("Put with a failing reader succeeded")
			}
			if got := readAll(t, ts.store, key); !bytes.Equal(got, old) {
				t.Errorf("after failed overwrite read %q; want the old %q", got, old)
			}
			if obj, ok, _ := ts.store.Exists(ctx, key); !ok || obj.SHA256 != sum(old) {
				t.Errorf("Exists = %+v, %v; want the old object with sha %s", obj, ok, sum(old))
			}
		})
	}
}

// cancelAfter cancels its context once n bytes have been read, then keeps serving
// data (like a body that does not watch ctx).
type cancelAfter struct {
	n      int
	cancel context.CancelFunc
}

func (c *cancelAfter) Read(p []byte) (int, error) {
	if c.n <= 0 {
		c.cancel()
	}
	k := min(len(p), 4096)
	c.n -= k
	return k, nil
}

func TestPutContextCancelledWhileReadingStoresNothing(t *testing.T) {
	for _, ts := range openStores(t) {
		t.Run(ts.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			key := "req/tile/2024-01-01/default.tif"
			_, err := ts.store.Put(ctx, key, &cancelAfter{n: 50_000, cancel: cancel}, PutOptions{})
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("Put error = %v; want context.Canceled", err)
			}
			assertNothingStored(t, ts, key)
		})
	}
}

func TestPutContextCancelledWhileUploadingStoresNothing(t *testing.T) {
	for _, ts := range openStores(t) {
		t.Run(ts.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			ts.store.uploadHook = cancelDuring(100_000, cancel)
			key := "req/tile/2024-01-01/default.tif"
			_, err := ts.store.Put(ctx, key, bytes.NewReader(payload(200_000)), PutOptions{})
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("Put error = %v; want context.Canceled", err)
			}
			assertNothingStored(t, ts, key)
			if ts.root != "" {
				// The writer was opened (it created the key's directory next to
				// which its temp file lived), and the abort removed the temp file.
				if fi, err := os.Stat(filepath.Join(ts.root, "req", "tile", "2024-01-01")); err != nil || !fi.IsDir() {
					t.Errorf("writer's directory missing (%v): the upload phase was not reached", err)
				}
			}
		})
	}
}

func TestPutErrorWhileUploadingStoresNothing(t *testing.T) {
	ctx := context.Background()
	for _, ts := range openStores(t) {
		t.Run(ts.name, func(t *testing.T) {
			boom := errors.New("spool read failed")
			ts.store.uploadHook = failDuring(100_000, func() error { return boom })
			key := "req/tile/2024-01-01/default.tif"
			_, err := ts.store.Put(ctx, key, bytes.NewReader(payload(200_000)), PutOptions{})
			if !errors.Is(err, boom) {
				t.Fatalf("Put error = %v; want %v", err, boom)
			}
			assertNothingStored(t, ts, key)
		})
	}
}

func TestPutExpectedSizeMismatchStoresNothing(t *testing.T) {
	ctx := context.Background()
	for _, ts := range openStores(t) {
		for _, expected := range []int64{1001, 999} {
			t.Run(fmt.Sprintf("%s/expected%d", ts.name, expected), func(t *testing.T) {
				key := "x/y.png"
				_, err := ts.store.Put(ctx, key, bytes.NewReader(payload(1000)), PutOptions{ExpectedSize: expected})
				if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("got 1000 bytes, expected %d", expected)) {
					t.Fatalf("Put error = %v; want a size mismatch naming both sizes", err)
				}
				assertNothingStored(t, ts, key)
			})
		}
	}
}

func TestPutRejectsEscapingKeys(t *testing.T) {
	ctx := context.Background()
	keys := []string{"", "/etc/passwd", "../escape", "a/../../escape", "a/./b", "a//b", `a\..\b`, "a/", "./a", "a/.b.tif.shfleet-tmp", "a\x00b"}
	for _, ts := range openStores(t) {
		for _, key := range keys {
			t.Run(fmt.Sprintf("%s/%q", ts.name, key), func(t *testing.T) {
				_, err := ts.store.Put(ctx, key, strings.NewReader("data"), PutOptions{})
				if !errors.Is(err, ErrInvalidKey) {
					t.Fatalf("Put(%q) error = %v; want ErrInvalidKey", key, err)
				}
				if _, err := ts.store.Stat(ctx, key); !errors.Is(err, ErrInvalidKey) {
					t.Errorf("Stat(%q) error = %v; want ErrInvalidKey", key, err)
				}
				if ts.root != "" {
					if files := regularFiles(t, filepath.Dir(ts.root)); len(files) != 0 {
						t.Errorf("files written around the root: %v", files)
					}
				}
			})
		}
	}
}

func TestPutIfAbsentSkipsCompleteObjects(t *testing.T) {
	ctx := context.Background()
	for _, ts := range openStores(t) {
		t.Run(ts.name, func(t *testing.T) {
			key := "job/t1/2024-02-02/default.tif"
			first := payload(5000)
			obj, written, err := ts.store.PutIfAbsent(ctx, key, bytes.NewReader(first), PutOptions{})
			if err != nil || !written || obj.SHA256 != sum(first) {
				t.Fatalf("first PutIfAbsent = %+v, %v, %v; want written with sha %s", obj, written, err, sum(first))
			}
			// A resumed run: the body must not even be read.
			obj, written, err = ts.store.PutIfAbsent(ctx, key, &failingReader{err: errors.New("body read on resume")}, PutOptions{})
			if err != nil || written {
				t.Fatalf("second PutIfAbsent = %v, %v; want skipped", written, err)
			}
			if obj.SHA256 != sum(first) || obj.Size != int64(len(first)) {
				t.Errorf("skipped object = %+v; want the first one's size and sha", obj)
			}
			// Overwrite is an explicit Put.
			second := []byte("new content")
			if _, err := ts.store.Put(ctx, key, bytes.NewReader(second), PutOptions{}); err != nil {
				t.Fatal(err)
			}
			if got := readAll(t, ts.store, key); !bytes.Equal(got, second) {
				t.Errorf("after overwrite read %q; want %q", got, second)
			}
		})
	}
}

func TestResumeFromNewStoreReportsSHA256(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	s1, err := Open(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	data := payload(12345)
	if _, err := s1.Put(ctx, "r/t/d/o.tif", bytes.NewReader(data), PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}
	// A second process opens the same directory.
	s2, err := Open(ctx, "file://"+filepath.ToSlash(root))
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	obj, ok, err := s2.Exists(ctx, "r/t/d/o.tif")
	if err != nil || !ok {
		t.Fatalf("Exists after reopen = %v, %v", ok, err)
	}
	if obj.SHA256 != sum(data) || obj.Size != int64(len(data)) {
		t.Errorf("resumed object = %+v; want size %d sha %s", obj, len(data), sum(data))
	}
}

func TestExistsRejectsForeignAndTruncatedObjects(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	s, err := Open(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// Written by something else: no checksum metadata.
	if err := os.WriteFile(filepath.Join(root, "foreign.tif"), []byte("abc"), 0o644); err != nil {
		t.Fatal(err)
	}
	obj, ok, err := s.Exists(ctx, "foreign.tif")
	if err != nil || ok || obj.Size != 3 || obj.SHA256 != "" {
		t.Errorf("Exists(foreign) = %+v, %v, %v; want size 3, no sha, not complete", obj, ok, err)
	}
	// Written by Put, then truncated on disk (e.g. a crash before data hit the disk).
	if _, err := s.Put(ctx, "t.tif", bytes.NewReader(payload(1000)), PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(filepath.Join(root, "t.tif"), 10); err != nil {
		t.Fatal(err)
	}
	if obj, ok, err := s.Exists(ctx, "t.tif"); err != nil || ok {
		t.Errorf("Exists(truncated) = %+v, %v, %v; want not complete", obj, ok, err)
	}
}

func TestConcurrentPuts(t *testing.T) {
	ctx := context.Background()
	for _, ts := range openStores(t) {
		t.Run(ts.name, func(t *testing.T) {
			var wg sync.WaitGroup
			errs := make(chan error, 8)
			for i := range 8 {
				wg.Go(func() {
					data := payload(1000 + i)
					obj, err := ts.store.Put(ctx, fmt.Sprintf("k/%d.bin", i), bytes.NewReader(data), PutOptions{})
					if err == nil && obj.SHA256 != sum(data) {
						err = fmt.Errorf("key %d: sha %s, want %s", i, obj.SHA256, sum(data))
					}
					errs <- err
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Error(err)
				}
			}
			for i := range 8 {
				if got := readAll(t, ts.store, fmt.Sprintf("k/%d.bin", i)); !bytes.Equal(got, payload(1000+i)) {
					t.Errorf("key %d: content differs", i)
				}
			}
		})
	}
}

func TestOpenPlainPathCreatesDirectory(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	t.Chdir(dir)
	s, err := Open(ctx, "./out/nested")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	want := "file://" + filepath.ToSlash(filepath.Join(dir, "out", "nested"))
	if s.URL() != want {
		t.Errorf("URL() = %q; want %q", s.URL(), want)
	}
	if _, err := s.Put(ctx, "a/b.json", strings.NewReader("{}"), PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "out", "nested", "a", "b.json")); err != nil || string(b) != "{}" {
		t.Errorf("file = %q, %v; want {}", b, err)
	}

	// file://./rel is relative to the working directory too.
	s2, err := Open(ctx, "file://./rel")
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if want := "file://" + filepath.ToSlash(filepath.Join(dir, "rel")); s2.URL() != want {
		t.Errorf("URL() = %q; want %q", s2.URL(), want)
	}
	if fi, err := os.Stat(filepath.Join(dir, "rel")); err != nil || !fi.IsDir() {
		t.Errorf("file://./rel did not create the directory: %v", err)
	}
}

func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	notDir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notDir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		url, want string
	}{
		{"", "empty"},
		{"   ", "empty"},
		{"gs://bucket", `scheme "gs" is not supported`},
		{"file://host/dir", "must not name a host"},
		{"file:///tmp/x?metadata=skip", "metadata=skip is not supported"},
		{"s3://", "no bucket name"},
		{"s3://b?bogus=1", "open output store s3://b?bogus=1"},
		{notDir + "/sub", "choose a writable directory"},
		{"s3://user:hunter2@bucket?region=us-east-1", "credentials in the URL are not supported"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			s, err := Open(ctx, tt.url)
			if err == nil {
				s.Close()
				t.Fatalf("Open(%q) succeeded; want an error", tt.url)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Open(%q) error = %q; want it to contain %q", tt.url, err, tt.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error leaks the password: %q", err)
			}
		})
	}
}

func TestFormatExt(t *testing.T) {
	tests := map[string]string{
		"image/tiff":                      "tif",
		"image/png":                       "png",
		"image/jpeg":                      "jpg",
		"application/json":                "json",
		"application/json; charset=utf-8": "json",
		"IMAGE/PNG":                       "png",
		"application/octet-stream":        "bin",
		"application/x-tar":               "tar",
		"image/webp":                      "bin",
		"":                                "bin",
	}
	for mt, want := range tests {
		if got := FormatExt(mt); got != want {
			t.Errorf("FormatExt(%q) = %q; want %q", mt, got, want)
		}
	}
}

// cancelDuring returns an upload hook that passes n bytes through, then cancels.
func cancelDuring(n int, cancel context.CancelFunc) func(io.Reader) io.Reader {
	return failDuring(n, func() error { cancel(); return context.Canceled })
}

// failDuring returns an upload hook that passes n bytes through, then fails with
// the error fail returns.
func failDuring(n int, fail func() error) func(io.Reader) io.Reader {
	return func(r io.Reader) io.Reader {
		return io.MultiReader(io.LimitReader(r, int64(n)), readerFunc(func([]byte) (int, error) {
			return 0, fail()
		}))
	}
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }
