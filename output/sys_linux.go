//go:build linux

package output

import (
	"errors"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// xattrsSupported reports whether the file system holding dir keeps user
// extended attributes: reading a missing one answers ENODATA there, ENOTSUP
// (or EOPNOTSUPP) where the file system has none.
func xattrsSupported(dir string) bool {
	_, err := unix.Getxattr(dir, xattrPrefix+"probe", nil)
	return err == nil || errors.Is(err, unix.ENODATA)
}

// setXattr sets the user extended attribute name on the open file f.
func setXattr(f *os.File, name, value string) error {
	return unix.Fsetxattr(int(f.Fd()), xattrPrefix+name, []byte(value), 0)
}

// getXattr reads the user extended attribute name of the file at path; a
// missing attribute gives "" and no error.
func getXattr(path, name string) (string, error) {
	buf := make([]byte, 256)
	for {
		n, err := unix.Getxattr(path, xattrPrefix+name, buf)
		switch {
		case errors.Is(err, unix.ENODATA), errors.Is(err, unix.ENOTSUP):
			return "", nil
		case errors.Is(err, unix.ERANGE):
			if len(buf) >= 1<<16 {
				return "", err
			}
			buf = make([]byte, 2*len(buf))
			continue
		case err != nil:
			return "", err
		}
		return string(buf[:n]), nil
	}
}

// locksReliable says that a temp file nobody holds locked belongs to a dead
// writer (flock locks end with their holder).
const locksReliable = true

// tryLock takes an exclusive advisory lock on f without waiting; false when
// another open file description holds it. The kernel drops the lock when its
// holder dies, which is how a sweep tells a dead writer's temp file from a
// live one's.
func tryLock(f *os.File) (bool, error) {
	err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return false, nil
	}
	return err == nil, err
}
