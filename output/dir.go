package output

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// TempSuffix ends the name of the temp file a local store writes beside its
// target: ".<name>.shfleet-tmp" (hidden, and refused as a key by [ValidateKey]).
const TempSuffix = ".shfleet-tmp"

// staleAge is how old a temp file must be before a sweep removes it where
// advisory locks are not available (off Linux).
const staleAge = time.Hour

// lockRetry is the pause between attempts to take the lock of a key's temp file
// while another writer of the same key holds it.
const lockRetry = 50 * time.Millisecond

// dirStore is a local directory written with temp file -> fsync -> rename ->
// fsync of the directory. Metadata lives in user extended attributes of each
// file (where the file system keeps them), never in sidecar files.
type dirStore struct {
	root   string
	xattrs bool
}

func openDir(root string) (*dirStore, error) {
	fi, err := os.Stat(root)
	if err != nil {
		return nil, fmt.Errorf("output directory %s: %w; choose a writable directory", root, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("output directory %s is not a directory; choose a writable directory", root)
	}
	return &dirStore{root: root, xattrs: xattrsSupported(root)}, nil
}

func (d *dirStore) path(key string) string { return filepath.Join(d.root, filepath.FromSlash(key)) }

func tempPath(final string) string {
	return filepath.Join(filepath.Dir(final), "."+filepath.Base(final)+TempSuffix)
}

// put writes r under key: into the key's temp file (locked, so writers of one
// key take turns and a sweep can tell a dead writer's file), its metadata as
// extended attributes, fsync, the collision check under the lock, rename over
// the target, fsync of the directory.
func (d *dirStore) put(ctx context.Context, display, key string, r io.Reader, opts PutOptions) (Object, error) {
	fail := func(what string, err error) (Object, error) {
		return Object{}, fmt.Errorf("put %s/%s: %s: %w", display, key, what, err)
	}
	final := d.path(key)
	if err := mkdirAllSync(d.root, filepath.Dir(final)); err != nil {
		return fail("create directory", err)
	}
	tmp := tempPath(final)
	f, err := lockTemp(ctx, tmp)
	if err != nil {
		return fail("open temp file", err)
	}
	committed := false
	defer func() {
		if !committed {
			_ = os.Remove(tmp) // still ours: we hold its lock
		}
		_ = f.Close() // releases the lock
	}()
	if err := d.checkCollision(key, final, opts); err != nil {
		return Object{}, err
	}
	// A dead writer's leftover: start from empty.
	if err := f.Truncate(0); err != nil {
		return fail("truncate temp file", err)
	}
	h := sha256.New()
	n, err := io.Copy(f, io.TeeReader(r, h))
	if err != nil {
		return fail(fmt.Sprintf("read body after %d bytes", n), err)
	}
	if opts.ExpectedSize > 0 && n != opts.ExpectedSize {
		return fail("body size", fmt.Errorf("got %d bytes, expected %d; the download was cut short or the size is wrong", n, opts.ExpectedSize))
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if d.xattrs {
		attrs := [][2]string{{MetaSHA256, sum}, {MetaSize, strconv.FormatInt(n, 10)}}
		if !opts.Origin.IsZero() {
			attrs = append(attrs, [2]string{MetaOrigin, opts.Origin.meta()}, [2]string{MetaRequest, opts.Origin.Request})
		}
		for _, a := range attrs {
			if err := setXattr(f, a[0], a[1]); err != nil {
				return fail("set extended attribute "+a[0], err)
			}
		}
	}
	if err := f.Sync(); err != nil {
		return fail("fsync", err)
	}
	if err := ctx.Err(); err != nil {
		return fail("commit", err)
	}
	// Under the lock again: a writer of another item may have committed the key
	// since the first check.
	if err := d.checkCollision(key, final, opts); err != nil {
		return Object{}, err
	}
	if err := os.Rename(tmp, final); err != nil {
		return fail("rename into place", err)
	}
	committed = true
	if err := syncDir(filepath.Dir(final)); err != nil {
		return fail("fsync directory", err)
	}
	return Object{Key: key, Size: n, SHA256: sum, Origin: opts.Origin}, nil
}

// checkCollision refuses a write over another item's object (see
// [PutOptions.Origin]).
func (d *dirStore) checkCollision(key, final string, opts PutOptions) error {
	if opts.Origin.IsZero() || !d.xattrs {
		return nil
	}
	meta, err := getXattr(final, MetaOrigin)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("put %s: read the origin of the existing file: %w", key, err)
	}
	req, err := getXattr(final, MetaRequest)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("put %s: read the origin of the existing file: %w", key, err)
	}
	if e := parseOrigin(meta, req); Collides(e, opts.Origin, opts.ReplaceOtherJobs) {
		return &CollisionError{Key: key, Existing: e, New: opts.Origin}
	}
	return nil
}

// lockTemp opens (creating it) the temp file at tmp and takes its lock, waiting
// while another writer of the same key holds it. A file that was renamed or
// removed between the open and the lock is not the temp file any more: it
// opens again.
func lockTemp(ctx context.Context, tmp string) (*os.File, error) {
	for {
		f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return nil, err
		}
		ok, err := tryLock(f)
		if err != nil {
			_ = f.Close()
			return nil, err
		}
		if !ok {
			_ = f.Close()
			select {
			case <-ctx.Done():
				return nil, fmt.Errorf("another writer of this key holds %s: %w", filepath.Base(tmp), ctx.Err())
			case <-time.After(lockRetry):
			}
			continue
		}
		if same, err := sameFile(f, tmp); err != nil || !same {
			_ = f.Close()
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				return nil, err
			}
			continue
		}
		return f, nil
	}
}

func sameFile(f *os.File, p string) (bool, error) {
	a, err := f.Stat()
	if err != nil {
		return false, err
	}
	b, err := os.Lstat(p)
	if err != nil {
		return false, err
	}
	return os.SameFile(a, b), nil
}

// mkdirAllSync creates dir and its missing parents below root, fsyncing each new
// directory's parent so the new entries survive a crash.
func mkdirAllSync(root, dir string) error {
	if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
		return nil
	}
	parent := filepath.Dir(dir)
	if parent != dir && len(parent) >= len(root) {
		if err := mkdirAllSync(root, parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil
		}
		return err
	}
	return syncDir(parent)
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

func (d *dirStore) stat(key string) (Object, map[string]string, error) {
	p := d.path(key)
	fi, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return Object{}, nil, ErrNotExist
	}
	if err != nil {
		return Object{}, nil, err
	}
	if !fi.Mode().IsRegular() {
		return Object{}, nil, fmt.Errorf("%s is not a regular file", p)
	}
	meta := map[string]string{}
	if d.xattrs {
		for _, k := range []string{MetaSHA256, MetaSize, MetaOrigin, MetaRequest} {
			v, err := getXattr(p, k)
			if err != nil {
				return Object{}, nil, fmt.Errorf("read extended attribute %s: %w", k, err)
			}
			meta[k] = v
		}
	}
	return Object{Key: key, Size: fi.Size(), ModTime: fi.ModTime()}, meta, nil
}

func (d *dirStore) hash(ctx context.Context, key string) (string, error) {
	f, err := os.Open(d.path(key))
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, ctxReader{ctx, f}); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func (d *dirStore) open(key string) (io.ReadCloser, error) {
	f, err := os.Open(d.path(key))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNotExist
	}
	return f, err
}

func (d *dirStore) delete(key string) error {
	p := d.path(key)
	err := os.Remove(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return syncDir(filepath.Dir(p))
}

// removeStale walks the root and removes every temp file nobody holds locked.
func (d *dirStore) removeStale(ctx context.Context) (int, error) {
	n := 0
	err := filepath.WalkDir(d.root, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed while we walk
			}
			return err
		}
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		if e.IsDir() || !strings.HasSuffix(e.Name(), TempSuffix) || !strings.HasPrefix(e.Name(), ".") {
			return nil
		}
		removed, err := removeIfStale(p)
		if err != nil {
			return err
		}
		if removed {
			n++
		}
		return nil
	})
	if err != nil {
		return n, fmt.Errorf("remove stale temp files under %s: %w", d.root, err)
	}
	return n, nil
}

// removeIfStale removes the temp file at p when no live writer holds its lock.
func removeIfStale(p string) (bool, error) {
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	ok, err := tryLock(f)
	if err != nil || !ok {
		return false, err
	}
	if !locksReliable {
		if fi, err := f.Stat(); err != nil || time.Since(fi.ModTime()) < staleAge {
			return false, err
		}
	}
	if same, err := sameFile(f, p); err != nil || !same {
		return false, nil // renamed into place or replaced meanwhile
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	return true, nil
}

// removeStaleSpool removes the spool files that dead processes left in dir (best
// effort: a spool directory shared with other programs is only read).
func removeStaleSpool(dir string) {
	matches, _ := filepath.Glob(filepath.Join(dir, spoolPattern))
	for _, m := range matches {
		_, _ = removeIfStale(m)
	}
}
