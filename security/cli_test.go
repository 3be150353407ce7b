package security_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"shfleet/internal/redistest"
	"shfleet/keys"
	"shfleet/quota"
	"shfleet/sentinel/sentineltest"
)

// The commands are built once per test binary, into binDir.
var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// buildCommands builds cmd/worker and cmd/enqueue (once) into a temporary
// directory.
func buildCommands(t *testing.T) (workerBin, enqueueBin string) {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "shfleet-security-")
		if buildErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", binDir+string(filepath.Separator), "./cmd/worker", "./cmd/enqueue")
		cmd.Dir = ".."
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/worker ./cmd/enqueue: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(binDir, "worker"), filepath.Join(binDir, "enqueue")
}

// flagLine matches a flag in the help of the flag package ("  -name type") and
// of cobra ("  -h, --name type"): the name, and the value's type, which boolean
// flags do not have.
var flagLine = regexp.MustCompile(`(?m)^\s+(?:-[a-zA-Z], )?--?([a-zA-Z0-9][a-zA-Z0-9-]*)(?: ([a-zA-Z]+))?`)

// helpFlag is one flag listed by --help.
type helpFlag struct{ name, typ string }

// helpFlags runs bin with args and --help and returns the flags it lists.
func helpFlags(t *testing.T, bin string, args ...string) (flags []helpFlag, help string) {
	t.Helper()
	cmd := exec.Command(bin, append(args, "--help")...)
	cmd.Env = []string{"HOME=" + t.TempDir(), "PATH=" + os.Getenv("PATH")}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s --help: %v\n%s", filepath.Base(bin), strings.Join(args, " "), err, out)
	}
	for _, m := range flagLine.FindAllStringSubmatch(string(out), -1) {
		flags = append(flags, helpFlag{m[1], m[2]})
	}
	return flags, string(out)
}

// allowedValueFlags are the flags that take a value and whose name sounds like a
// credential but that take none.
var allowedValueFlags = []string{"client-secret-file", "token-url"}

// credentialWord matches flag names that sound like they take a credential.
var credentialWord = regexp.MustCompile(`secret|pass|credential|token|key|auth|bearer`)

// TestCommandsTakeNoSecretFlags builds the worker and enqueue commands and checks
// every flag of every (sub)command: the only secret flag is --client-secret-file,
// and nothing takes a password, token or key as a value; passing a secret as a
// flag is refused.
func TestCommandsTakeNoSecretFlags(t *testing.T) {
	t.Parallel()
	workerBin, enqueueBin := buildCommands(t)
	all := map[string][]helpFlag{}
	all["worker"], _ = helpFlags(t, workerBin)
	rootFlags, rootHelp := helpFlags(t, enqueueBin)
	all["enqueue"] = rootFlags
	_, cmds, ok := strings.Cut(rootHelp, "Available Commands:")
	if !ok {
		t.Fatalf("enqueue --help lists no commands:\n%s", rootHelp)
	}
	cmds, _, _ = strings.Cut(cmds, "\n\n")
	sc := bufio.NewScanner(strings.NewReader(cmds))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) > 0 && f[0] != "help" {
			all["enqueue "+f[0]], _ = helpFlags(t, enqueueBin, f[0])
		}
	}
	if len(all) < 5 {
		t.Fatalf("found only %d commands: %v", len(all), all)
	}
	for cmd, flags := range all {
		var secretFile helpFlag
		for _, f := range flags {
			l := strings.ToLower(f.name)
			if l == "client-secret-file" {
				secretFile = f
			}
			// A flag without a value (a boolean) cannot carry a secret; a duration
			// or a number cannot either.
			if f.typ == "" || f.typ == "duration" || strings.HasPrefix(f.typ, "int") || strings.HasPrefix(f.typ, "float") {
				continue
			}
			if credentialWord.MatchString(l) && !slices.Contains(allowedValueFlags, l) {
				t.Errorf("%s --%s %s: a flag whose value may be a credential; credentials come from the environment or a file", cmd, f.name, f.typ)
			}
		}
		if len(flags) < 3 || secretFile.typ != "string" {
			t.Errorf("%s: flags %v lack --client-secret-file string (or the help did not parse)", cmd, flags)
		}
	}

	// A secret given as a flag is refused, and not echoed.
	secret := randomSecret("S3CR3T-")
	for _, args := range [][]string{
		{workerBin, "--client-secret=" + secret},
		{workerBin, "--client-secret", secret},
		{enqueueBin, "list", "--client-secret=" + secret},
		{enqueueBin, "--client-secret", secret, "list"},
	} {
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Env = []string{"HOME=" + t.TempDir(), "REDIS_URL=redis://127.0.0.1:1/0"}
		out, err := cmd.CombinedOutput()
		if err == nil {
			t.Errorf("%s %s: accepted a secret flag", filepath.Base(args[0]), args[1])
		}
		if !bytes.Contains(out, []byte("not defined")) && !bytes.Contains(out, []byte("unknown flag")) {
			t.Errorf("%s %s: %s; want an unknown-flag error", filepath.Base(args[0]), args[1], out)
		}
		assertClean(t, filepath.Base(args[0])+" unknown-flag output", out, secretNeedles("client secret", secret))
	}
}

// recordingProxy is a reverse proxy in front of the simulator that remembers
// every access token issued through it, so that tokens fetched by the built
// commands are known to the test.
func recordingProxy(t *testing.T, sim *sentineltest.Server) (*httptest.Server, *tokenRecorder) {
	t.Helper()
	target, err := url.Parse(sim.URL())
	if err != nil {
		t.Fatal(err)
	}
	rec := &tokenRecorder{base: http.DefaultTransport.(*http.Transport).Clone()}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport = rec
	srv := httptest.NewServer(rp)
	t.Cleanup(srv.Close)
	return srv, rec
}

// TestWorkerCommandDoesNotLeak runs the built worker command against a
// password-protected redis-server and the simulator, with the secret in a file,
// at debug level with JSON logs: its output and its ops endpoints hold neither
// the secret, the Redis password nor the token it obtained. With a wrong secret
// or a wrong Redis password it exits with an error that names the problem and
// not the value.
func TestWorkerCommandDoesNotLeak(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	workerBin, enqueueBin := buildCommands(t)
	pw := randomSecret("PW-")
	srv := redistest.Start(t, redistest.Options{Password: pw})
	secret, wrongSecret, wrongPW := randomSecret("S3CR3T-"), randomSecret("WR0NG-"), randomSecret("BADPW-")
	const clientID = "cli-client"
	sim := sentineltest.NewServer(sentineltest.Config{ClientID: clientID, ClientSecret: secret})
	defer sim.Close()
	proxy, recorder := recordingProxy(t, sim)
	secretFile := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	needles := slices.Concat(secretNeedles("client secret", secret), secretNeedles("wrong client secret", wrongSecret),
		secretNeedles("Redis password", pw), secretNeedles("wrong Redis password", wrongPW))
	env := func(redisPW string, extra ...string) []string {
		return append([]string{"HOME=" + t.TempDir(), "PATH=" + os.Getenv("PATH"),
			"REDIS_URL=" + fmt.Sprintf("redis://:%s@%s/0", redisPW, srv.Addr),
			"SH_CLIENT_ID=" + clientID, "SH_BASE_URL=" + proxy.URL, "SH_TOKEN_URL=" + proxy.URL + sentineltest.TokenPath,
			"SH_POLICIES=requests:600:PT1M,pu:600:PT1M"}, extra...)
	}

	// The happy path: start, serve ops, stop on SIGTERM.
	cmd := exec.Command(workerBin, "--client-secret-file", secretFile, "--log-level", "debug", "--log-format", "json",
		"--ops-addr", "127.0.0.1:0", "--concurrency", "2", "--shutdown-timeout", "2s")
	cmd.Env = env(pw)
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	stopped := false
	defer func() {
		if !stopped {
			_ = cmd.Process.Kill()
			<-done
		}
	}()
	opsAddr := regexp.MustCompile(`"addr":"([0-9.:]+)"[^\n]*"message":"ops server`)
	var addr string
	for deadline := time.Now().Add(20 * time.Second); addr == ""; {
		if m := opsAddr.FindSubmatch(out.Bytes()); m != nil {
			addr = string(m[1])
		}
		select {
		case err := <-done:
			stopped = true
			t.Fatalf("worker exited early: %v\n%s", err, out.Bytes())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("worker did not start its ops server in 20s:\n%s", out.Bytes())
		}
	}
	// A job submitted and followed with the enqueue command, the secret from
	// the environment this time.
	outDir := t.TempDir()
	var enqOut bytes.Buffer
	for _, args := range [][]string{
		{"submit", "../examples/aoi.geojson", "--from", "2025-06-01", "--to", "2025-06-08", "--evalscript", "../examples/evalscript-truecolor.js",
			"--output", outDir, "--grid", "utm-10km", "--resolution", "60", "--watch"},
		{"status", "--json"},
		{"list", "--json"},
	} {
		cctx, cancel := context.WithTimeout(ctx, 40*time.Second)
		cmd := exec.CommandContext(cctx, enqueueBin, args...)
		cmd.Env = env(pw, "SH_CLIENT_SECRET="+secret)
		out, err := cmd.CombinedOutput()
		cancel()
		if err != nil {
			t.Fatalf("enqueue %s: %v\n%s", args[0], err, out)
		}
		enqOut.Write(out)
	}
	if !bytes.Contains(enqOut.Bytes(), []byte("DONE")) {
		t.Errorf("the enqueue output does not show the job DONE:\n%s", enqOut.Bytes())
	}
	// Every token the commands obtained, and the one stored in Redis, read back
	// with the secret.
	rdb := srv.Client()
	defer rdb.Close()
	ts, err := quota.NewSharedTokenSource(quota.TokenConfig{Redis: rdb, ClientID: clientID, ClientSecret: secret,
		Upstream: oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "not-the-stored-one"}), Prefix: keys.DefaultPrefix})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := ts.TokenContext(ctx)
	issued := recorder.Tokens()
	if err != nil || !slices.Contains(issued, tok.AccessToken) {
		t.Fatalf("cannot read the worker's token back (err %v, %d issued)", err, len(issued))
	}
	for i, tok := range issued {
		needles = append(needles, tokenNeedles(fmt.Sprintf("access token #%d", i+1), tok)...)
	}
	assertClean(t, "enqueue output", enqOut.Bytes(), needles)
	t.Logf("%d tokens issued to the commands; enqueue printed %d bytes", len(issued), enqOut.Len())
	for _, p := range []string{"/healthz", "/metrics", "/jobs", "/monitoring/api/queues", "/monitoring/api/servers", "/monitoring/api/redis_info"} {
		resp, err := http.Get("http://" + addr + p)
		if err != nil {
			t.Fatalf("ops GET %s: %v", p, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		assertClean(t, "ops "+p, body, needles)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		stopped = true
		if err != nil {
			t.Errorf("worker exited with %v after SIGTERM", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("worker did not stop within 20s of SIGTERM")
	}
	logs := out.Bytes()
	if !bytes.Contains(logs, []byte("worker starting")) || !bytes.Contains(logs, []byte("xxxxx@")) {
		t.Errorf("worker output lacks the start line with the masked Redis URL:\n%s", logs)
	}
	assertClean(t, "worker command output", logs, needles)

	// Failures: wrong client secret (from the environment), wrong Redis
	// password; and the enqueue command with the wrong Redis password.
	for _, tc := range []struct {
		name string
		args []string
		env  []string
		want []string // any of these, case-insensitive
	}{
		{"wrong secret", []string{workerBin}, env(pw, "SH_CLIENT_SECRET="+wrongSecret), []string{"secret rejected"}},
		{"wrong Redis password", []string{workerBin}, env(wrongPW, "SH_CLIENT_SECRET="+secret), []string{"wrongpass", "auth"}},
		{"enqueue wrong Redis password", []string{enqueueBin, "list"}, env(wrongPW, "SH_CLIENT_SECRET="+secret), []string{"wrongpass", "auth"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(tc.args[0], tc.args[1:]...)
			cmd.Env = tc.env
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) {
				t.Fatalf("want a non-zero exit, got %v:\n%s", err, out)
			}
			l := strings.ToLower(string(out))
			if !slices.ContainsFunc(tc.want, func(w string) bool { return strings.Contains(l, w) }) {
				t.Errorf("output does not name the problem (%q):\n%s", tc.want, out)
			}
			assertClean(t, tc.name+" output", out, needles)
		})
	}
}
