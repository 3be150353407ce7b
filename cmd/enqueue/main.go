// Command enqueue submits areas of interest to a shfleet worker fleet and follows
// the jobs: submit, estimate, start, status (--watch), list, restart, cancel,
// resume. See `enqueue --help`; the logic lives in package
// shfleet/cmd/enqueue/internal/cli.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"shfleet/cmd/enqueue/internal/cli"
)

// quiet drops go-redis's own log lines (dial retries); enqueue reports the
// error itself, on one line.
type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

// exitGrace is how long a command may take to unwind after Ctrl-C or SIGTERM
// before the process exits anyway.
const exitGrace = time.Second

func main() {
	redis.SetLogger(quiet{})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// Ctrl-C and SIGTERM end the command within exitGrace, whatever it is
		// waiting for (a silent server, a slow disk).
		<-ctx.Done()
		time.Sleep(exitGrace)
		fmt.Fprintln(os.Stderr, "enqueue: interrupted")
		os.Exit(130)
	}()
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run runs the command line and returns the exit code (0 ok, 1 error, 2 usage).
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return cli.Run(ctx, args, stdout, stderr)
}
