package output

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"shfleet/internal/s3test"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

const (
	s3TestAccess = s3test.AccessKey
	s3TestSecret = s3test.SecretKey
	s3TestBucket = "shfleet-output-test"
)

// setupS3 starts a gateway (internal/s3test) and creates the test bucket.
func setupS3(t *testing.T) s3test.Gateway {
	gw := s3test.Start(t)
	gw.CreateBucket(t, s3TestBucket)
	return gw
}

func TestS3Store(t *testing.T) {
	gw := setupS3(t)
	ctx := context.Background()
	spool := t.TempDir()
	store, err := Config{SpoolDir: spool}.Open(ctx, gw.URL(s3TestBucket))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer store.Close()
	ts := testStore{name: "s3", store: store, spool: spool}

	t.Run("put stat read", func(t *testing.T) {
		// 6 MiB: above the 5 MiB part size, so the upload is multipart.
		for _, n := range []int{300_000, 6 << 20} {
			data := payload(n)
			key := fmt.Sprintf("job/T33UVP/2024-01-31/default-%d.tif", n)
			obj, err := store.Put(ctx, key, bytes.NewReader(data), PutOptions{ExpectedSize: int64(n)})
			if err != nil {
				t.Fatalf("Put %d bytes: %v", n, err)
			}
			if obj.Size != int64(n) || obj.SHA256 != sum(data) {
				t.Errorf("Put = %+v; want size %d sha %s", obj, n, sum(data))
			}
			if got := readAll(t, store, key); !bytes.Equal(got, data) {
				t.Errorf("read back %d bytes that differ from the %d written", len(got), n)
			}
			st, ok, err := store.Exists(ctx, key)
			if err != nil || !ok || st.SHA256 != sum(data) || st.Size != int64(n) {
				t.Errorf("Exists = %+v, %v, %v; want complete, size %d, sha %s from metadata", st, ok, err, n, sum(data))
			}
			// versitygw's posix backend maps the object to a file.
			onDisk, err := os.ReadFile(filepath.Join(gw.Root, s3TestBucket, filepath.FromSlash(key)))
			if err != nil || !bytes.Equal(onDisk, data) {
				t.Errorf("backend file: %d bytes, %v; want the %d bytes written", len(onDisk), err, n)
			}
		}
	})

	t.Run("failing reader stores nothing", func(t *testing.T) {
		key := "job/T1/2024-01-31/failed.tif"
		_, err := store.Put(ctx, key, &failingReader{n: 200_000, err: errors.New("body cut")}, PutOptions{})
		if err == nil {
			t.Fatal("Put with a failing reader succeeded")
		}
		assertNothingStored(t, ts, key)
	})

	t.Run("cancelled upload stores nothing", func(t *testing.T) {
		for _, n := range []int{1000, 6<<20 + 1000} {
			cctx, cancel := context.WithCancel(ctx)
			store.uploadHook = cancelDuring(n-500, cancel)
			key := fmt.Sprintf("job/T1/2024-01-31/cancelled-%d.tif", n)
			_, err := store.Put(cctx, key, bytes.NewReader(payload(n)), PutOptions{})
			store.uploadHook = nil
			cancel()
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("Put error = %v; want context.Canceled", err)
			}
			assertNothingStored(t, ts, key)
			if _, err := os.Stat(filepath.Join(gw.Root, s3TestBucket, filepath.FromSlash(key))); !os.IsNotExist(err) {
				t.Errorf("backend file for %s exists (%v)", key, err)
			}
		}
		assertNoMultipartUploads(t, gw)
	})

	t.Run("upload error stores nothing", func(t *testing.T) {
		for _, n := range []int{1000, 6<<20 + 1000} {
			boom := errors.New("spool read failed")
			store.uploadHook = failDuring(n-500, func() error { return boom })
			key := fmt.Sprintf("job/T1/2024-01-31/upload-error-%d.tif", n)
			_, err := store.Put(ctx, key, bytes.NewReader(payload(n)), PutOptions{})
			store.uploadHook = nil
			if !errors.Is(err, boom) {
				t.Fatalf("Put error = %v; want %v", err, boom)
			}
			assertNothingStored(t, ts, key)
		}
		assertNoMultipartUploads(t, gw)
	})

	t.Run("expected size mismatch stores nothing", func(t *testing.T) {
		key := "job/T1/2024-01-31/short.tif"
		if _, err := store.Put(ctx, key, bytes.NewReader(payload(100)), PutOptions{ExpectedSize: 101}); err == nil {
			t.Fatal("Put with a short body succeeded")
		}
		assertNothingStored(t, ts, key)
	})

	t.Run("manifest and resume", func(t *testing.T) {
		entries := []ManifestEntry{{Tile: "T1", Date: "2024-01-31", OutputID: "default", Key: "k", Size: 1, SHA256: "00", PU: 1}}
		if err := WriteManifest(ctx, store, "job/manifest.json", entries); err != nil {
			t.Fatal(err)
		}
		got, err := ReadManifest(ctx, store, "job/manifest.json")
		if err != nil || len(got) != 1 || got[0] != entries[0] {
			t.Errorf("ReadManifest = %+v, %v; want %+v", got, err, entries)
		}
		_, written, err := store.PutIfAbsent(ctx, "job/manifest.json", &failingReader{err: errors.New("read on resume")}, PutOptions{})
		if err != nil || written {
			t.Errorf("PutIfAbsent on an existing object = %v, %v; want skipped", written, err)
		}
	})
}

func TestS3OpenErrors(t *testing.T) {
	gw := setupS3(t)
	ctx := context.Background()

	_, err := Open(ctx, gw.URL("no-such-bucket"))
	if err == nil || !strings.Contains(err.Error(), "not accessible") || !strings.Contains(err.Error(), "s3://no-such-bucket") {
		t.Errorf("Open(missing bucket) error = %v; want 'not accessible' naming the URL", err)
	}

	// Without the access check Open succeeds and the first Put reports the problem.
	s, err := Config{SkipAccessCheck: true}.Open(ctx, gw.URL("no-such-bucket"))
	if err != nil {
		t.Fatalf("Open with SkipAccessCheck: %v", err)
	}
	defer s.Close()
	if _, err := s.Put(ctx, "a/b.tif", strings.NewReader("x"), PutOptions{}); err == nil || !strings.Contains(err.Error(), "a/b.tif") {
		t.Errorf("Put into a missing bucket error = %v; want one naming the key", err)
	}

	t.Setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret-value")
	_, err = Open(ctx, gw.URL(s3TestBucket))
	if err == nil || !strings.Contains(err.Error(), "credentials") {
		t.Errorf("Open(wrong secret) error = %v; want a hint about credentials", err)
	}
	if err != nil && strings.Contains(err.Error(), "wrong-secret-value") {
		t.Errorf("error leaks the secret: %v", err)
	}
}

// assertNoMultipartUploads checks that no aborted upload is left in the gateway.
func assertNoMultipartUploads(t *testing.T, gw s3test.Gateway) {
	t.Helper()
	client := s3.New(s3.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(gw.Endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(s3TestAccess, s3TestSecret, ""),
	})
	mu, err := client.ListMultipartUploads(context.Background(), &s3.ListMultipartUploadsInput{Bucket: aws.String(s3TestBucket)})
	if err != nil {
		t.Fatalf("list multipart uploads: %v", err)
	}
	for _, u := range mu.Uploads {
		t.Errorf("multipart upload left behind: key %s id %s", aws.ToString(u.Key), aws.ToString(u.UploadId))
	}
}
