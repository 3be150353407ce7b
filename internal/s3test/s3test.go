// Package s3test starts a real S3-compatible server (versitygw with its posix
// backend) on a free loopback port for tests, like internal/redistest does for
// Redis. Install the binary with .ci/install-versitygw.sh.
package s3test

import (
	"bytes"
	"context"
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

// Test credentials of every gateway.
const (
	AccessKey = "shfleettestaccess"
	SecretKey = "shfleettestsecret0123456789"
	Region    = "us-east-1"
)

// Gateway is a running versitygw process.
type Gateway struct {
	// Endpoint is http://127.0.0.1:port.
	Endpoint string
	// Root is the posix backend directory; each bucket is a sub directory.
	Root string
}

// Find looks for versitygw on PATH and in $(go env GOPATH)/bin and fails the test
// with the install hint when it is missing.
func Find(t testing.TB) string {
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

// Start starts a gateway, stopped in t.Cleanup, and points the AWS SDK's
// environment (t.Setenv) at its credentials.
func Start(t *testing.T) Gateway {
	t.Helper()
	bin := Find(t)
	root := t.TempDir()
	for attempt := 0; attempt < 3; attempt++ {
		addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
		var logs bytes.Buffer
		cmd := exec.Command(bin, "--access", AccessKey, "--secret", SecretKey, "--port", addr, "--quiet", "posix", root)
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
				deadline = time.Time{} // port taken or crash: try another port
				continue
			default:
			}
			resp, err := http.Get(endpoint + "/")
			if err == nil {
				resp.Body.Close()
				setEnv(t)
				return Gateway{Endpoint: endpoint, Root: root}
			}
			time.Sleep(50 * time.Millisecond)
		}
		if !deadline.IsZero() {
			t.Fatalf("versitygw did not answer on %s within 15s; output:\n%s", addr, logs.String())
		}
	}
	t.Fatal("versitygw failed to start three times")
	return Gateway{}
}

func setEnv(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("AWS_ACCESS_KEY_ID", AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", SecretKey)
	t.Setenv("AWS_REGION", Region)
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "none"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
}

// Client is an AWS SDK S3 client for the gateway.
func (g Gateway) Client() *s3.Client {
	return s3.New(s3.Options{
		Region:       Region,
		BaseEndpoint: aws.String(g.Endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(AccessKey, SecretKey, ""),
	})
}

// CreateBucket creates a bucket through the S3 API.
func (g Gateway) CreateBucket(t testing.TB, bucket string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := g.Client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatalf("create bucket %s on %s: %v", bucket, g.Endpoint, err)
	}
}

// URL is the gocloud s3:// URL of a bucket on the gateway.
func (g Gateway) URL(bucket string) string {
	return fmt.Sprintf("s3://%s?endpoint=%s&use_path_style=true&region=%s", bucket, g.Endpoint, Region)
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
