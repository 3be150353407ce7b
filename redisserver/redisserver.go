// Package redisserver starts and stops local redis-server processes on free
// loopback ports, each with its own temporary directory: the throwaway Redis of
// the benchmarks (cmd/bench) and, through internal/redistest, of the tests. It
// imports no test package, so a shipped binary may use it.
package redisserver

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// InstallHint tells a developer how to get redis-server.
const InstallHint = "redis-server is not on PATH; install it (Debian/Ubuntu: apt-get install -y redis-server, macOS: brew install redis)"

// Server is one running redis-server.
type Server struct {
	// Addr is host:port of the server.
	Addr string
	// Password is the requirepass value, empty when none.
	Password string
	cmd      *exec.Cmd
	dir      string
	args     []string
	port     int
}

// Options configure a server. The zero value starts a plain server with
// maxmemory-policy noeviction and no persistence.
type Options struct {
	// Password sets requirepass. Default: none.
	Password string
	// AppendOnly turns AOF persistence on (for restart tests). Default: off.
	AppendOnly bool
	// Args are extra redis-server arguments, e.g. "--maxmemory-policy", "allkeys-lru".
	Args []string
}

// Start starts a redis-server on a free loopback port with its own temporary
// directory. The caller must call Stop.
func Start(o Options) (*Server, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("%s", InstallHint)
	}
	dir, err := os.MkdirTemp("", "redisserver-")
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	args := []string{
		"--bind", "127.0.0.1",
		"--dir", dir,
		"--save", "",
		"--maxmemory-policy", "noeviction",
		"--protected-mode", "no",
		"--daemonize", "no",
		"--logfile", filepath.Join(dir, "redis.log"),
	}
	if o.AppendOnly {
		args = append(args, "--appendonly", "yes", "--appendfsync", "always")
	} else {
		args = append(args, "--appendonly", "no")
	}
	if o.Password != "" {
		args = append(args, "--requirepass", o.Password)
	}
	args = append(args, o.Args...)
	s := &Server{Password: o.Password, dir: dir, args: args, port: port, cmd: nil}
	s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	if err := s.start(bin); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}

func (s *Server) start(bin string) error {
	args := append([]string{"--port", strconv.Itoa(s.port)}, s.args...)
	s.cmd = exec.Command(bin, args...)
	if err := s.cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c := redis.NewClient(&redis.Options{Addr: s.Addr, Password: s.Password, MaxRetries: -1})
		err := c.Ping(context.Background()).Err()
		c.Close()
		if err == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.kill()
	return fmt.Errorf("redis-server on %s did not answer PING within 10s; log: %s", s.Addr, s.logTail())
}

// URL is a redis:// URL for the server, with the password when one is set.
func (s *Server) URL() string {
	if s.Password != "" {
		return fmt.Sprintf("redis://:%s@%s/0", s.Password, s.Addr)
	}
	return fmt.Sprintf("redis://%s/0", s.Addr)
}

// Client returns a new go-redis client for the server; the caller closes it.
func (s *Server) Client() *redis.Client {
	return redis.NewClient(&redis.Options{Addr: s.Addr, Password: s.Password})
}

// Stop kills the server and removes its directory.
func (s *Server) Stop() {
	s.kill()
	os.RemoveAll(s.dir)
}

// Restart stops the server process and starts it again on the same port and data
// directory (with AppendOnly, data survives).
func (s *Server) Restart() error {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = s.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			s.kill()
		}
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return fmt.Errorf("%s", InstallHint)
	}
	return s.start(bin)
}

func (s *Server) kill() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
	}
}

func (s *Server) logTail() string {
	f, err := os.Open(filepath.Join(s.dir, "redis.log"))
	if err != nil {
		return "(no log)"
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > 5 {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, " | ")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
