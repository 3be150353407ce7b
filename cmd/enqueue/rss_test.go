package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"shfleet/internal/redistest"
)

// buildEnqueue builds this command into a temporary directory.
func buildEnqueue(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "enqueue")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestUnboundedReadsPeakRSS runs the built enqueue on the inputs that used to
// grow it without bound (/dev/zero as AOI, evalscript and secret file, a FIFO
// as AOI): each exits 1 naming the file, and its peak RSS (the kernel's
// ru_maxrss, in KiB on Linux) stays under 100 MB.
func TestUnboundedReadsPeakRSS(t *testing.T) {
	bin := buildEnqueue(t)
	rs := redistest.Start(t)
	dir := t.TempDir()
	zeroAOI := filepath.Join(dir, "zero.geojson")
	if err := os.Symlink("/dev/zero", zeroAOI); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo.geojson")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	common := []string{"--from", "2025-06-01", "--to", "2025-07-01", "--output", filepath.Join(dir, "out"),
		"--redis-url", rs.URL(), "--skip-credential-check", "--client-id", "id"}
	for _, c := range []struct {
		name string
		args []string
		env  string
		want string
	}{
		{"AOI /dev/zero", append([]string{"submit", zeroAOI, "--evalscript", "../../examples/evalscript-truecolor.js"}, common...), "", "character device"},
		{"AOI FIFO", append([]string{"submit", fifo, "--evalscript", "../../examples/evalscript-truecolor.js"}, common...), "", "named pipe (FIFO)"},
		{"evalscript /dev/zero", append([]string{"submit", "../../examples/aoi.geojson", "--evalscript", "/dev/zero"}, common...), "", "--evalscript /dev/zero: is a character device"},
		{"SH_CLIENT_SECRET_FILE /dev/zero", append([]string{"submit", "../../examples/aoi.geojson", "--evalscript", "../../examples/evalscript-truecolor.js"}, common...), "SH_CLIENT_SECRET_FILE=/dev/zero", "SH_CLIENT_SECRET_FILE /dev/zero: is a character device"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cmd := exec.Command(bin, c.args...)
			cmd.Env = append(os.Environ(), "HOME="+dir)
			if c.env != "" {
				cmd.Env = append(cmd.Env, c.env)
			}
			out, _ := cmd.CombinedOutput()
			if code := cmd.ProcessState.ExitCode(); code != 1 || !strings.Contains(string(out), c.want) {
				t.Errorf("exit %d, output %q: want 1 and %q", code, out, c.want)
			}
			ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
			t.Logf("peak RSS %d KiB", ru.Maxrss)
			if ru.Maxrss > 100*1000 {
				t.Errorf("peak RSS %d KiB, want <= 100 MB", ru.Maxrss)
			}
		})
	}
}

// TestSIGTERMEndsWait: SIGTERM ends a submit that waits on a silent token
// endpoint (a --credential-timeout of an hour): the process exits non-zero
// instead of waiting.
func TestSIGTERMEndsWait(t *testing.T) {
	bin := buildEnqueue(t)
	rs := redistest.Start(t)
	asked := make(chan struct{}, 1)
	stop := make(chan struct{})
	silent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case asked <- struct{}{}:
		default:
		}
		select {
		case <-r.Context().Done():
		case <-stop:
		}
	}))
	defer func() { close(stop); silent.CloseClientConnections(); silent.Close() }()
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte("s"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "submit", "../../examples/aoi.geojson", "--evalscript", "../../examples/evalscript-truecolor.js",
		"--from", "2025-06-01", "--to", "2025-07-01", "--output", filepath.Join(dir, "out"), "--resolution", "60",
		"--redis-url", rs.URL(), "--client-id", "id", "--client-secret-file", secret, "--token-url", silent.URL,
		"--credential-timeout", "1h")
	cmd.Env = append(os.Environ(), "HOME="+dir)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	<-asked // the command now waits on the token endpoint
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); err == nil || code == 0 {
		t.Errorf("exit %d (%v), want non-zero after SIGTERM", code, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "out")); !os.IsNotExist(err) {
		t.Errorf("output root created by an interrupted submit (%v)", err)
	}
}
