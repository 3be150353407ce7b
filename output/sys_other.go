//go:build !linux

package output

import "os"

// xattrsSupported is false off Linux: checksums and provenance then live only in
// the manifest and the STAC items.
func xattrsSupported(string) bool { return false }

func setXattr(*os.File, string, string) error { return nil }

func getXattr(string, string) (string, error) { return "", nil }

// locksReliable is false off Linux: a sweep there removes only temp files older
// than staleAge.
const locksReliable = false

// tryLock always succeeds off Linux (no advisory locks here).
func tryLock(*os.File) (bool, error) { return true, nil }
