package output

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

const (
	s3TestAccess = "shfleettestaccess"
	s3TestSecret = "shfleettestsecret0123456789"
	s3TestBucket = "shfleet-output-test"
)

// s3Gateway is a versitygw process serving an S3 API on loopback from a temp dir.
type s3Gateway struct {
	endpoint string // http://127.0.0.1:port
	root     string // posix backend directory; buckets are its sub directories
}

// findVersitygw looks for the versitygw binary on PATH and in $(go env GOPATH)/bin.
func findVersitygw(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p
	}
	gopath, err := exec.Command("go", "env", "GOPATH").Output()
	if err == nil {
		for _, dir := range filepath.SplitList(strings.TrimSpace(string(gopath))) {
			p := filepath.Join(dir, "bin", "versitygw")
			if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
				return p
			}
		}
	}
	t.Fatal("versitygw not found on PATH or in $(go env GOPATH)/bin; the S3 tests need a real S3 server: run .ci/install-versitygw.sh")
	return ""
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startS3Gateway starts versitygw with the posix backend on a free loopback port
// and waits until it answers HTTP.
func startS3Gateway(t *testing.T) s3Gateway {
	t.Helper()
	bin := findVersitygw(t)
	root := t.TempDir()
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		lastErr = nil
		addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
		var logs bytes.Buffer
		cmd := exec.Command(bin, "--access", s3TestAccess, "--secret", s3TestSecret,
			"--port", addr, "--quiet", "posix", root)
		cmd.Stdout, cmd.Stderr = &logs, &logs
		if err := cmd.Start(); err != nil {
			t.Fatalf("start %s: %v", bin, err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			<-exited
		})
		endpoint := "http://" + addr
		deadline := time.Now().Add(15 * time.Second)
		for time.Now().Before(deadline) {
			select {
			case err := <-exited:
				exited <- err
				lastErr = fmt.Errorf("versitygw exited: %v; output:\n%s", err, logs.String())
			default:
			}
			if lastErr != nil {
				break
			}
			resp, err := http.Get(endpoint + "/")
			if err == nil {
				resp.Body.Close()
				return s3Gateway{endpoint: endpoint, root: root}
			}
			time.Sleep(50 * time.Millisecond)
		}
		if lastErr == nil {
			t.Fatalf("versitygw did not answer on %s within 15s; output:\n%s", addr, logs.String())
		}
	}
	t.Fatalf("versitygw failed to start: %v", lastErr)
	return s3Gateway{}
}

// setupS3 starts a gateway, points the AWS SDK's environment at it and creates the
// test bucket through the S3 API.
func setupS3(t *testing.T) s3Gateway {
	gw := startS3Gateway(t)
	dir := t.TempDir()
	t.Setenv("AWS_ACCESS_KEY_ID", s3TestAccess)
	t.Setenv("AWS_SECRET_ACCESS_KEY", s3TestSecret)
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "none"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")

	client := s3.New(s3.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(gw.endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(s3TestAccess, s3TestSecret, ""),
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(s3TestBucket)}); err != nil {
		t.Fatalf("create bucket %s on %s: %v", s3TestBucket, gw.endpoint, err)
	}
	return gw
}

func (gw s3Gateway) url(bucket string) string {
	return fmt.Sprintf("s3://%s?endpoint=%s&use_path_style=true&region=us-east-1", bucket, gw.endpoint)
}

func TestS3Store(t *testing.T) {
	gw := setupS3(t)
	ctx := context.Background()
	spool := t.TempDir()
	store, err := Config{SpoolDir: spool}.Open(ctx, gw.url(s3TestBucket))
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
			onDisk, err := os.ReadFile(filepath.Join(gw.root, s3TestBucket, filepath.FromSlash(key)))
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
			if _, err := os.Stat(filepath.Join(gw.root, s3TestBucket, filepath.FromSlash(key))); !os.IsNotExist(err) {
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

	_, err := Open(ctx, gw.url("no-such-bucket"))
	if err == nil || !strings.Contains(err.Error(), "not accessible") || !strings.Contains(err.Error(), "s3://no-such-bucket") {
		t.Errorf("Open(missing bucket) error = %v; want 'not accessible' naming the URL", err)
	}

	// Without the access check Open succeeds and the first Put reports the problem.
	s, err := Config{SkipAccessCheck: true}.Open(ctx, gw.url("no-such-bucket"))
	if err != nil {
		t.Fatalf("Open with SkipAccessCheck: %v", err)
	}
	defer s.Close()
	if _, err := s.Put(ctx, "a/b.tif", strings.NewReader("x"), PutOptions{}); err == nil || !strings.Contains(err.Error(), "a/b.tif") {
		t.Errorf("Put into a missing bucket error = %v; want one naming the key", err)
	}

	t.Setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret-value")
	_, err = Open(ctx, gw.url(s3TestBucket))
	if err == nil || !strings.Contains(err.Error(), "credentials") {
		t.Errorf("Open(wrong secret) error = %v; want a hint about credentials", err)
	}
	if err != nil && strings.Contains(err.Error(), "wrong-secret-value") {
		t.Errorf("error leaks the secret: %v", err)
	}
}

// assertNoMultipartUploads checks that no aborted upload is left in the gateway.
func assertNoMultipartUploads(t *testing.T, gw s3Gateway) {
	t.Helper()
	client := s3.New(s3.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(gw.endpoint),
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
