// Package redistest starts throwaway redis-server processes for tests, the way
// net/http/httptest starts throwaway HTTP servers: each on a free loopback port,
// with its own temporary directory, stopped when the test ends. The processes
// are package redisserver's; this package ties them to a test.
package redistest

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"shfleet/redisserver"
)

// InstallHint tells a developer how to get redis-server.
const InstallHint = redisserver.InstallHint

// Server is one running redis-server.
type Server = redisserver.Server

// Options configure a server; see [redisserver.Options].
type Options = redisserver.Options

// Start starts a redis-server for the test and stops it in t.Cleanup. It fails
// the test with an install hint when redis-server is missing.
func Start(t testing.TB, opts ...Options) *Server {
	t.Helper()
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	s, err := StartServer(o)
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

// StartServer starts a redis-server outside of a test's cleanup (TestMain).
// The caller must call Stop.
func StartServer(o Options) (*Server, error) { return redisserver.Start(o) }

// Prefix returns a key prefix unique to the test, so tests can share a server
// without FLUSHALL.
func Prefix(t testing.TB) string {
	return fmt.Sprintf("t%d:%s:", time.Now().UnixNano()%1e9, strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()))
}
