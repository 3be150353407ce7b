package output

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// Metadata keys written by [Store.Put] on every object: S3/mem object metadata
// (gocloud lower-cases keys) and, on local directories, user extended
// attributes named "user.shfleet.<key>".
const (
	MetaSHA256  = "sha256"  // hex SHA-256 of the content
	MetaSize    = "size"    // content length in bytes, decimal
	MetaOrigin  = "origin"  // "<job>/<item>" that wrote the object ([Origin])
	MetaRequest = "request" // hash of the request whose answer the object is ([Origin])
)

// xattrPrefix prefixes the extended attribute names of local files.
const xattrPrefix = "user.shfleet."

// ErrNotExist is wrapped by [Store.Stat] when the key has no object.
var ErrNotExist = errors.New("output object does not exist")

// Config configures a [Store]. The zero value works.
type Config struct {
	// SpoolDir is the directory where Put buffers a body for s3:// and mem://
	// while it computes the body's size and SHA-256, before the upload (S3 needs
	// the metadata before the body). Local directories need no spool: the body
	// goes straight into a temp file beside its target. Default: os.TempDir().
	SpoolDir string

	// SkipAccessCheck skips Open's check that the bucket exists and is reachable
	// (an S3 HeadBucket, which needs s3:ListBucket). Default false: Open fails
	// early with a clear message instead of the first Put.
	SkipAccessCheck bool
}

// Store is a result store: a local directory written by shfleet's own durable
// writer, or a gocloud.dev/blob bucket (s3://, mem://). It is safe for
// concurrent use.
type Store struct {
	display  string // URL without credentials, for messages
	spoolDir string
	dir      *dirStore  // local directories
	blob     *blobStore // s3:// and mem://

	// uploadHook, when set (tests only), wraps the body on its way into the
	// object (the temp file of a directory, the upload of a bucket), so tests can
	// interrupt a write midway.
	uploadHook func(io.Reader) io.Reader
}

// Origin says which job item wrote an object, so a later write can tell its own
// earlier output (a re-run: skip or rewrite) from another item's (a collision:
// the path template maps two items to one key).
type Origin struct {
	// Job is the job id.
	Job string
	// Item is the item id within the job.
	Item string
	// Request identifies the request whose answer the object holds (a hash of
	// the Process API request): another job sending the same request writes the
	// same content, which is no collision.
	Request string
}

// IsZero reports whether o names nothing (an object written without one).
func (o Origin) IsZero() bool { return o == Origin{} }

func (o Origin) String() string { return "item " + o.Item + " of job " + o.Job }

func (o Origin) meta() string { return o.Job + "/" + o.Item }

func parseOrigin(meta, request string) Origin {
	job, item, ok := strings.Cut(meta, "/")
	if !ok {
		return Origin{}
	}
	return Origin{Job: job, Item: item, Request: request}
}

// CollisionError is returned by [Store.Put] when the key already holds an object
// written for another item: two items of a job map to one key (the path
// template is not injective for them), or the key holds another job's output
// and overwriting was not asked for. Nothing is written.
type CollisionError struct {
	// Key is the object key both want.
	Key string
	// Existing wrote the object under Key.
	Existing Origin
	// New is the item whose write was refused.
	New Origin
}

func (e *CollisionError) Error() string {
	if e.Existing.Job == e.New.Job {
		return fmt.Sprintf("output key %q already holds the output of %s; %s maps to the same key: the path template gives two items one file (use a --path-template with <tileName>, <date> and <outputId>)",
			e.Key, e.Existing, e.New)
	}
	return fmt.Sprintf("output key %q already holds the output of %s (another request); %s maps to the same key: use another --output or a --path-template with <requestId>, or --overwrite to replace it",
		e.Key, e.Existing, e.New)
}

// Object describes a stored output.
type Object struct {
	Key     string    // object key relative to the store's root
	Size    int64     // bytes
	SHA256  string    // hex SHA-256; empty when the object was not written by Put
	ModTime time.Time // last modification, as reported by the backend (zero from Put)
	Origin  Origin    // who wrote it; zero when unknown (not written by Put with one)
}

// PutOptions are per-call options for [Store.Put].
type PutOptions struct {
	// ContentType of the object. Default: derived from the key's extension
	// (".tif" -> image/tiff, ...), else sniffed from the content.
	ContentType string
	// ExpectedSize, when > 0, is the exact body length; a body of any other length
	// is an error and nothing is stored.
	ExpectedSize int64
	// Origin, when set, is recorded with the object and checked against the
	// object the key already holds: Put refuses with a [*CollisionError] when
	// that object names another item of the same job, or another job and
	// ReplaceOtherJobs is false (the same Request is never a collision).
	// Default: none recorded, nothing checked.
	Origin Origin
	// ReplaceOtherJobs lets Put replace another job's object (--overwrite).
	// Default false.
	ReplaceOtherJobs bool
}

// Collides reports whether writing for origin n over an object written for
// origin e is a collision (see [PutOptions.Origin]).
func Collides(e, n Origin, replaceOtherJobs bool) bool {
	switch {
	case e.IsZero() || n.IsZero():
		return false
	case e.Job == n.Job && e.Item == n.Item:
		return false
	case e.Request != "" && e.Request == n.Request:
		return false
	case e.Job != n.Job && replaceOtherJobs:
		return false
	}
	return true
}

// Open opens the result store at rawURL with a zero [Config]; see [Config.Open].
func Open(ctx context.Context, rawURL string) (*Store, error) {
	return Config{}.Open(ctx, rawURL)
}

// Open opens the result store at rawURL:
//
//   - a plain path ("./out", "/data/out") or file:///abs/path: a directory,
//     created if missing, written by shfleet's durable writer (temp file beside
//     the target, fsync, rename, fsync of the directory; no sidecar files; see
//     [Store.RemoveStale] for temp files that dead writers leave);
//   - s3://bucket?region=...&endpoint=http://host:port&use_path_style=true: S3 or an
//     S3-compatible server (aws-sdk-go-v2 credentials from the environment,
//     AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, or the shared config files);
//     gocloud also accepts disable_https, profile, anonymous, hostname_immutable and
//     request_checksum_calculation;
//   - mem://: an in-memory store (tests, the embedded demo).
//
// Open checks that the store is reachable before returning.
func (c Config) Open(ctx context.Context, rawURL string) (*Store, error) {
	loc, err := parseLocation(rawURL)
	if err != nil {
		return nil, err
	}
	spool := c.SpoolDir
	if spool == "" {
		spool = os.TempDir()
	}
	s := &Store{display: loc.display, spoolDir: spool}
	if loc.dir != "" {
		d, err := openDir(loc.dir)
		if err != nil {
			return nil, err
		}
		s.dir = d
		return s, nil
	}
	b, err := openBlob(ctx, loc.gcURL, loc.display, c.SkipAccessCheck)
	if err != nil {
		return nil, err
	}
	s.blob = b
	removeStaleSpool(spool)
	return s, nil
}

// location is a parsed output URL: a local directory or a gocloud URL.
type location struct {
	dir     string // absolute directory for local stores
	gcURL   string // gocloud URL for the others
	display string // without credentials
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

// parseLocation turns a user's output location into a directory or a gocloud
// URL, and a display form without credentials.
func parseLocation(raw string) (location, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return location{}, errors.New("output store URL is empty; give a directory, file:///abs/path, s3://bucket?region=... or mem://")
	}
	if !strings.Contains(raw, "://") {
		return dirLocation(raw)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return location{}, fmt.Errorf("output store URL is not a valid URL (%v); use a directory, file:///abs/path, s3://bucket?region=... or mem://", redactErr(err))
	}
	switch u.Scheme {
	case "file":
		p := u.Path
		switch u.Host {
		case "", "localhost":
		case ".":
			p = "." + p
		default:
			return location{}, fmt.Errorf("output store %s: file URLs must not name a host; use file:///abs/path or a plain path", u.Redacted())
		}
		if p == "" {
			return location{}, fmt.Errorf("output store %s: no directory given; use file:///abs/path", u.Redacted())
		}
		if u.Query().Get("metadata") == "skip" {
			return location{}, fmt.Errorf("output store %s: metadata=skip is not supported: resume needs the SHA-256 stored as metadata; remove it", u.Redacted())
		}
		if u.RawQuery != "" {
			return location{}, fmt.Errorf("output store %s: file:// stores take no options; remove %q", u.Redacted(), "?"+u.RawQuery)
		}
		return dirLocation(filepath.FromSlash(p))
	case "s3":
		if u.Host == "" {
			return location{}, fmt.Errorf("output store %s: no bucket name; use s3://bucket?region=...", u.Redacted())
		}
		if u.User != nil {
			return location{}, fmt.Errorf("output store %s: credentials in the URL are not supported; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) instead", u.Redacted())
		}
		return location{gcURL: u.String(), display: u.Redacted()}, nil
	case "mem":
		return location{gcURL: u.String(), display: u.Redacted()}, nil
	default:
		return location{}, fmt.Errorf("output store %s: scheme %q is not supported; use a directory, file:///abs/path, s3://bucket?region=... or mem://", u.Redacted(), u.Scheme)
	}
}

// dirLocation makes the absolute form of dir, creating the directory.
func dirLocation(dir string) (location, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return location{}, fmt.Errorf("output directory %q: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return location{}, fmt.Errorf("output directory %s: %w; choose a writable directory", abs, err)
	}
	return location{dir: abs, display: "file://" + filepath.ToSlash(abs)}, nil
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

// Dir returns the store's local directory, or "" for s3:// and mem:// stores.
func (s *Store) Dir() string {
	if s.dir == nil {
		return ""
	}
	return s.dir.root
}

// Close releases the store's resources.
func (s *Store) Close() error {
	if s.blob == nil {
		return nil
	}
	if err := s.blob.bucket.Close(); err != nil {
		return fmt.Errorf("close output store %s: %w", s.display, err)
	}
	return nil
}

// Put stores the content of r under key, atomically: readers see either the
// previous object or the complete new one, never a part. Size and SHA-256 are
// computed on the way and stored with the object (extended attributes on local
// directories where the file system has them, object metadata on S3), with
// opts.Origin. On a local directory the object is durable when Put returns
// (file and directory fsynced). When reading r fails, ctx ends, or the size
// differs from opts.ExpectedSize, nothing is stored and no temp file remains. An
// existing object under key is replaced unless opts.Origin says it belongs to
// another item ([*CollisionError]).
func (s *Store) Put(ctx context.Context, key string, r io.Reader, opts PutOptions) (Object, error) {
	if err := ValidateKey(key); err != nil {
		return Object{}, fmt.Errorf("put %s: %w", s.display, err)
	}
	r = ctxReader{ctx, r}
	if s.uploadHook != nil && s.dir != nil {
		r = s.uploadHook(r)
	}
	if s.dir != nil {
		return s.dir.put(ctx, s.display, key, r, opts)
	}
	return s.blob.put(ctx, s, key, r, opts)
}

// PutIfAbsent is Put unless a complete object (see [Store.Exists]) is already
// stored under key: then it returns that object and written == false without
// reading r. It is how a resumed run skips finished outputs; callers that want to
// overwrite call Put. An object of another origin (see [PutOptions.Origin]) is a
// [*CollisionError], not skipped.
func (s *Store) PutIfAbsent(ctx context.Context, key string, r io.Reader, opts PutOptions) (obj Object, written bool, err error) {
	obj, ok, err := s.Exists(ctx, key)
	if err != nil {
		return Object{}, false, err
	}
	if ok {
		if Collides(obj.Origin, opts.Origin, opts.ReplaceOtherJobs) {
			return Object{}, false, &CollisionError{Key: key, Existing: obj.Origin, New: opts.Origin}
		}
		if !opts.ReplaceOtherJobs || obj.Origin.Job == opts.Origin.Job {
			return obj, false, nil
		}
	}
	obj, err = s.Put(ctx, key, r, opts)
	return obj, err == nil, err
}

// Stat returns the object stored under key, with the SHA-256 and origin from its
// metadata (empty when it was not written by Put, or the file system keeps no
// extended attributes). A missing key gives an error wrapping [ErrNotExist].
func (s *Store) Stat(ctx context.Context, key string) (Object, error) {
	if err := ValidateKey(key); err != nil {
		return Object{}, fmt.Errorf("stat %s: %w", s.display, err)
	}
	var (
		obj  Object
		meta map[string]string
		err  error
	)
	if s.dir != nil {
		obj, meta, err = s.dir.stat(key)
	} else {
		obj, meta, err = s.blob.stat(ctx, key)
	}
	if err != nil {
		if errors.Is(err, ErrNotExist) {
			return Object{}, fmt.Errorf("stat %s/%s: %w", s.display, key, ErrNotExist)
		}
		return Object{}, fmt.Errorf("stat %s/%s: %w", s.display, key, err)
	}
	sum := meta[MetaSHA256]
	if len(sum) == 64 && meta[MetaSize] == fmt.Sprint(obj.Size) {
		obj.SHA256 = sum
	}
	obj.Origin = parseOrigin(meta[MetaOrigin], meta[MetaRequest])
	return obj, nil
}

// Exists reports whether a complete object is stored under key: one written by Put
// whose size matches the size recorded in its metadata. An object that exists but
// is not complete (written by something else, or truncated) is returned with
// ok == false, so the caller rewrites it. On a local file system without
// extended attributes every file is taken as complete (the writer makes a file
// visible only once it is whole and on disk) and its SHA-256 is computed by
// reading it.
func (s *Store) Exists(ctx context.Context, key string) (obj Object, ok bool, err error) {
	obj, err = s.Stat(ctx, key)
	if errors.Is(err, ErrNotExist) {
		return Object{}, false, nil
	}
	if err != nil {
		return Object{}, false, err
	}
	if obj.SHA256 == "" && s.dir != nil && !s.dir.xattrs {
		if obj.SHA256, err = s.dir.hash(ctx, key); err != nil {
			return Object{}, false, fmt.Errorf("stat %s/%s: %w", s.display, key, err)
		}
	}
	return obj, obj.SHA256 != "", nil
}

// NewReader opens the object under key for reading; the caller closes it.
func (s *Store) NewReader(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := ValidateKey(key); err != nil {
		return nil, fmt.Errorf("read %s: %w", s.display, err)
	}
	var (
		r   io.ReadCloser
		err error
	)
	if s.dir != nil {
		r, err = s.dir.open(key)
	} else {
		r, err = s.blob.open(ctx, key)
	}
	if err != nil {
		if errors.Is(err, ErrNotExist) {
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
	var err error
	if s.dir != nil {
		err = s.dir.delete(key)
	} else {
		err = s.blob.delete(ctx, key)
	}
	if err != nil {
		return fmt.Errorf("delete %s/%s: %w", s.display, key, err)
	}
	return nil
}

// RemoveStale removes the temp files that dead writers left under a local
// store's root (a writer killed mid-file) and returns how many it removed; a
// live writer's temp file is never touched (each writer holds a lock on its
// own). The next Put of the same key reuses (and so removes) its dead
// writer's temp file; workers run RemoveStale when they first open a store.
// It walks the whole root. s3:// and mem:// stores have no temp objects
// (0, nil).
func (s *Store) RemoveStale(ctx context.Context) (int, error) {
	if s.dir == nil {
		return 0, nil
	}
	return s.dir.removeStale(ctx)
}

func isNotExist(err error) bool { return errors.Is(err, ErrNotExist) }

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
	case "vrt":
		return "application/xml"
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
