package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestRunHelpAndUsage(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"--help"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "enqueue submits areas of interest") {
		t.Fatalf("--help: exit %d, stdout %q, stderr %q", code, out.String(), errb.String())
	}
	for _, sub := range []string{"submit", "estimate", "start", "status", "list", "restart", "cancel", "resume"} {
		if !strings.Contains(out.String(), "  "+sub+" ") {
			t.Errorf("--help does not list %s:\n%s", sub, out.String())
		}
	}
	out.Reset()
	errb.Reset()
	if code := run(context.Background(), []string{"status", "--no-such-flag"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "unknown flag: --no-such-flag") {
		t.Fatalf("bad flag: exit %d, stderr %q", code, errb.String())
	}
}
