package output

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"gocloud.dev/blob"
	_ "gocloud.dev/blob/fileblob" // registers file://
	_ "gocloud.dev/blob/memblob"  // registers mem://
	_ "gocloud.dev/blob/s3blob"   // registers s3://
	"gocloud.dev/gcerrors"
)

// Metadata keys written by [Store.Put] on every object (gocloud lower-cases keys).
const (
	MetaSHA256 = "sha256" // hex SHA-256 of the content
	MetaSize   = "size"   // content length in bytes, decimal
)

// ErrNotExist is wrapped by [Store.Stat] when the key has no object.
var ErrNotExist = errors.New("output object does not exist")

// Config configures a [Store]. The zero value works.
type Config struct {
	// SpoolDir is the directory where Put buffers a body while it computes the
	// body's size and SHA-256, before the upload (the checksum must be known before
	// the upload starts because it is stored as metadata). Default: os.TempDir().
	SpoolDir string

	// SkipAccessCheck skips Open's check that the bucket exists and is reachable
	// (an S3 HeadBucket, which needs s3:ListBucket). Default false: Open fails
	// early with a clear message instead of the first Put.
	SkipAccessCheck bool
}

// Store is a result store behind a gocloud.dev/blob bucket. It is safe for
// concurrent use.
type Store struct {
	bucket   *blob.Bucket
	display  string // URL without credentials, for messages
	spoolDir string

	// uploadHook, when set (tests only), wraps the spooled body on its way into
	// the bucket, so tests can interrupt an upload midway.
	uploadHook func(io.Reader) io.Reader
}

// Object describes a stored output.
type Object struct {
	Key     string    // object key relative to the store's root
	Size    int64     // bytes
	SHA256  string    // hex SHA-256; empty when the object was not written by Put
	ModTime time.Time // last modification, as reported by the backend (zero from Put)
}

// PutOptions are per-call options for [Store.Put].
type PutOptions struct {
	// ContentType of the object. Default: derived from the key's extension
	// (".tif" -> image/tiff, ...), else sniffed from the content.
	ContentType string
	// ExpectedSize, when > 0, is the exact body length; a body of any other length
	// is an error and nothing is stored.
	ExpectedSize int64
}

// Open opens the result store at rawURL with a zero [Config]; see [Config.Open].
func Open(ctx context.Context, rawURL string) (*Store, error) {
	return Config{}.Open(ctx, rawURL)
}

// Open opens the result store at rawURL:
//
//   - a plain path ("./out", "/data/out"): a directory, created if missing;
//   - file:///abs/path: the same, as a URL (fileblob options such as dir_file_mode
//     are passed through; temp files are always written next to their target);
//   - s3://bucket?region=...&endpoint=http://host:port&use_path_style=true: S3 or an
//     S3-compatible server (aws-sdk-go-v2 credentials from the environment,
//     AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, or the shared config files);
//     gocloud also accepts disable_https, profile, anonymous, hostname_immutable and
//     request_checksum_calculation;
//   - mem://: an in-memory store (tests, dry runs).
//
// Open checks that the bucket is reachable before returning.
func (c Config) Open(ctx context.Context, rawURL string) (*Store, error) {
	u, display, err := normalizeURL(rawURL)
	if err != nil {
		return nil, err
	}
	bucket, err := blob.OpenBucket(ctx, u)
	if err != nil {
		// gocloud's messages repeat the URL; show the display form instead.
		msg := strings.ReplaceAll(err.Error(), u, display)
		return nil, fmt.Errorf("open output store %s: %s; %s", display, msg, hint(u))
	}
	if !c.SkipAccessCheck {
		ok, err := bucket.IsAccessible(ctx)
		if err != nil || !ok {
			_ = bucket.Close()
			why := "bucket does not exist"
			if err != nil {
				why = strings.ReplaceAll(err.Error(), u, display)
			}
			return nil, fmt.Errorf("open output store %s: not accessible (%s); %s", display, why, hint(u))
		}
	}
	spool := c.SpoolDir
	if spool == "" {
		spool = os.TempDir()
	}
	return &Store{bucket: bucket, display: display, spoolDir: spool}, nil
}

func hint(u string) string {
	switch {
	case strings.HasPrefix(u, "s3://"):
		return "check the bucket name, region and credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY); for S3-compatible servers add endpoint=http://host:port&use_path_style=true"
	case strings.HasPrefix(u, "file://"):
		return "check that the directory exists or can be created and is writable"
	}
	return "use a directory path, file:///abs/path, s3://bucket?region=... or mem://"
}

// normalizeURL turns a user's output location into a gocloud URL and a display
// form without credentials.
func normalizeURL(raw string) (gcURL, display string, err error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return "", "", errors.New("output store URL is empty; give a directory, file:///abs/path, s3://bucket?region=... or mem://")
	}
	if !strings.Contains(raw, "://") {
		return fileURL(raw, nil)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", "", fmt.Errorf("output store URL is not a valid URL (%v); use a directory, file:///abs/path, s3://bucket?region=... or mem://", redactErr(err))
	}
	switch u.Scheme {
	case "file":
		p := u.Path
		switch u.Host {
		case "", "localhost":
		case ".":
			p = "." + p
		default:
			return "", "", fmt.Errorf("output store %s: file URLs must not name a host; use file:///abs/path or a plain path", u.Redacted())
		}
		if p == "" {
			return "", "", fmt.Errorf("output store %s: no directory given; use file:///abs/path", u.Redacted())
		}
		q := u.Query()
		if q.Get("metadata") == "skip" {
			return "", "", fmt.Errorf("output store %s: metadata=skip is not supported: resume needs the SHA-256 stored as metadata; remove it", u.Redacted())
		}
		return fileURL(filepath.FromSlash(p), q)
	case "s3":
		if u.Host == "" {
			return "", "", fmt.Errorf("output store %s: no bucket name; use s3://bucket?region=...", u.Redacted())
		}
		if u.User != nil {
			return "", "", fmt.Errorf("output store %s: credentials in the URL are not supported; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) instead", u.Redacted())
		}
		return u.String(), u.Redacted(), nil
	case "mem":
		return u.String(), u.Redacted(), nil
	default:
		return "", "", fmt.Errorf("output store %s: scheme %q is not supported; use a directory, file:///abs/path, s3://bucket?region=... or mem://", u.Redacted(), u.Scheme)
	}
}

// fileURL makes a file:// URL for the absolute form of dir, creating the directory.
func fileURL(dir string, q url.Values) (string, string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", "", fmt.Errorf("output directory %q: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return "", "", fmt.Errorf("output directory %s: %w; choose a writable directory", abs, err)
	}
	if q == nil {
		q = url.Values{}
	}
	// Temp files next to their target: the rename is then on one file system, and
	// fileblob removes them when a write fails or is cancelled.
	q.Set("no_tmp_dir", "true")
	q.Set("create_dir", "true")
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(abs), RawQuery: q.Encode()}
	return u.String(), "file://" + u.Path, nil
}

// redactErr drops the URL text from a url.Error, which may hold credentials.
func redactErr(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// URL returns the store's URL without credentials.
func (s *Store) URL() string { return s.display }

// Close releases the store's resources.
func (s *Store) Close() error {
	if err := s.bucket.Close(); err != nil {
		return fmt.Errorf("close output store %s: %w", s.display, err)
	}
	return nil
}

// Put stores the content of r under key, atomically: readers see either the
// previous object or the complete new one, never a part. The body is streamed into
// a spool file in Config.SpoolDir while its size and SHA-256 are computed, then
// uploaded with both as metadata. When reading r fails, ctx ends, or the size
// differs from opts.ExpectedSize, nothing is stored and no temp file remains. An
// existing object under key is replaced.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, opts PutOptions) (Object, error) {
	if err := ValidateKey(key); err != nil {
		return Object{}, fmt.Errorf("put %s: %w", s.display, err)
	}
	fail := func(what string, err error) (Object, error) {
		return Object{}, fmt.Errorf("put %s/%s: %s: %w", s.display, key, what, err)
	}
	spool, err := os.CreateTemp(s.spoolDir, "shfleet-output-*.part")
	if err != nil {
		return fail("create spool file (set output.Config.SpoolDir to a writable directory)", err)
	}
	defer func() {
		_ = spool.Close()
		_ = os.Remove(spool.Name())
	}()

	h := sha256.New()
	n, err := io.Copy(spool, io.TeeReader(ctxReader{ctx, r}, h))
	if err != nil {
		return fail(fmt.Sprintf("read body after %d bytes", n), err)
	}
	if opts.ExpectedSize > 0 && n != opts.ExpectedSize {
		return fail("body size", fmt.Errorf("got %d bytes, expected %d; the download was cut short or the size is wrong", n, opts.ExpectedSize))
	}
	if _, err := spool.Seek(0, io.SeekStart); err != nil {
		return fail("rewind spool file", err)
	}
	sum := hex.EncodeToString(h.Sum(nil))

	ct := opts.ContentType
	if ct == "" {
		ct = contentTypeFor(key)
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := s.bucket.NewWriter(wctx, key, &blob.WriterOptions{
		ContentType: ct,
		Metadata:    map[string]string{MetaSHA256: sum, MetaSize: strconv.FormatInt(n, 10)},
	})
	if err != nil {
		return fail("open writer", err)
	}
	var body io.Reader = spool
	if s.uploadHook != nil {
		body = s.uploadHook(body)
	}
	if _, err := io.Copy(w, ctxReader{wctx, body}); err != nil {
		cancel() // makes the driver discard the upload instead of committing it
		_ = w.Close()
		return fail("upload", err)
	}
	if err := w.Close(); err != nil {
		return fail("commit", err)
	}
	return Object{Key: key, Size: n, SHA256: sum}, nil
}

// PutIfAbsent is Put unless a complete object (see [Store.Exists]) is already
// stored under key: then it returns that object and written == false without
// reading r. It is how a resumed run skips finished outputs; callers that want to
// overwrite call Put. The check and the write are not one atomic step; two writers
// of the same key both succeed and the last one wins.
func (s *Store) PutIfAbsent(ctx context.Context, key string, r io.Reader, opts PutOptions) (obj Object, written bool, err error) {
	obj, ok, err := s.Exists(ctx, key)
	if err != nil {
		return Object{}, false, err
	}
	if ok {
		return obj, false, nil
	}
	obj, err = s.Put(ctx, key, r, opts)
	return obj, err == nil, err
}

// Stat returns the object stored under key, with the SHA-256 from its metadata
// (empty when it was not written by Put). A missing key gives an error wrapping
// [ErrNotExist].
func (s *Store) Stat(ctx context.Context, key string) (Object, error) {
	if err := ValidateKey(key); err != nil {
		return Object{}, fmt.Errorf("stat %s: %w", s.display, err)
	}
	attrs, err := s.bucket.Attributes(ctx, key)
	if err != nil {
		if gcerrors.Code(err) == gcerrors.NotFound {
			return Object{}, fmt.Errorf("stat %s/%s: %w", s.display, key, ErrNotExist)
		}
		return Object{}, fmt.Errorf("stat %s/%s: %w", s.display, key, err)
	}
	obj := Object{Key: key, Size: attrs.Size, ModTime: attrs.ModTime}
	sum := attrs.Metadata[MetaSHA256]
	size, serr := strconv.ParseInt(attrs.Metadata[MetaSize], 10, 64)
	if len(sum) == 64 && serr == nil && size == attrs.Size {
		obj.SHA256 = sum
	}
	return obj, nil
}

// Exists reports whether a complete object is stored under key: one written by Put
// whose size matches the size recorded in its metadata. An object that exists but
// is not complete (written by something else, or truncated) is returned with
// ok == false, so the caller rewrites it.
func (s *Store) Exists(ctx context.Context, key string) (obj Object, ok bool, err error) {
	obj, err = s.Stat(ctx, key)
	if errors.Is(err, ErrNotExist) {
		return Object{}, false, nil
	}
	if err != nil {
		return Object{}, false, err
	}
	return obj, obj.SHA256 != "", nil
}

// NewReader opens the object under key for reading; the caller closes it.
func (s *Store) NewReader(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := ValidateKey(key); err != nil {
		return nil, fmt.Errorf("read %s: %w", s.display, err)
	}
	r, err := s.bucket.NewReader(ctx, key, nil)
	if err != nil {
		if gcerrors.Code(err) == gcerrors.NotFound {
			return nil, fmt.Errorf("read %s/%s: %w", s.display, key, ErrNotExist)
		}
		return nil, fmt.Errorf("read %s/%s: %w", s.display, key, err)
	}
	return r, nil
}

// Delete removes the object under key; a missing key is not an error.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := ValidateKey(key); err != nil {
		return fmt.Errorf("delete %s: %w", s.display, err)
	}
	err := s.bucket.Delete(ctx, key)
	if err != nil && gcerrors.Code(err) != gcerrors.NotFound {
		return fmt.Errorf("delete %s/%s: %w", s.display, key, err)
	}
	return nil
}

// contentTypeFor maps a key's extension back to the MIME types of [FormatExt];
// unknown extensions give "" (the backend sniffs the content).
func contentTypeFor(key string) string {
	ext := strings.TrimPrefix(path.Ext(key), ".")
	switch ext {
	case "tif", "tiff":
		return "image/tiff"
	case "png":
		return "image/png"
	case "jpg", "jpeg":
		return "image/jpeg"
	case "json":
		return "application/json"
	case "tar":
		return "application/x-tar"
	case "bin":
		return "application/octet-stream"
	}
	return ""
}

// ctxReader fails reads once ctx is done, so a copy stops at cancellation even
// when the underlying reader does not watch ctx.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
