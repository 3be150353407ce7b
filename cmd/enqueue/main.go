// Command enqueue submits areas of interest to a shfleet worker fleet and follows
// the jobs: submit, estimate, start, status (--watch), list, restart, cancel,
// resume. See `enqueue --help`; the logic lives in package
// shfleet/cmd/enqueue/internal/cli.
package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/redis/go-redis/v9"

	"shfleet/cmd/enqueue/internal/cli"
)

// quiet drops go-redis's own log lines (dial retries); enqueue reports the
// error itself, on one line.
type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

func main() {
	redis.SetLogger(quiet{})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run runs the command line and returns the exit code (0 ok, 1 error, 2 usage).
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return cli.Run(ctx, args, stdout, stderr)
}
