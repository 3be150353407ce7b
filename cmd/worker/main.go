// Command worker runs one shfleet worker process: it takes catalog and process
// tasks from Redis and downloads imagery while the whole fleet shares one token
// and stays inside the account's limits. Run as many as you like, anywhere, against
// one Redis. See `worker --help`.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(1)
	}
}
