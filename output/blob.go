package output

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"gocloud.dev/blob"
	_ "gocloud.dev/blob/memblob" // registers mem://
	_ "gocloud.dev/blob/s3blob"  // registers s3://
	"gocloud.dev/gcerrors"
)

// spoolPattern names the spool files of bucket stores (os.CreateTemp pattern).
const spoolPattern = "shfleet-output-*.part"

// blobStore is a gocloud.dev/blob bucket (s3://, mem://). A body is spooled to a
// local file first: S3 needs the size and checksum metadata before the body.
type blobStore struct {
	bucket *blob.Bucket
}

func openBlob(ctx context.Context, u, display string, skipCheck bool) (*blobStore, error) {
	bucket, err := blob.OpenBucket(ctx, u)
	if err != nil {
		// gocloud's messages repeat the URL; show the display form instead.
		msg := strings.ReplaceAll(err.Error(), u, display)
		return nil, fmt.Errorf("open output store %s: %s; %s", display, msg, hint(u))
	}
	if !skipCheck {
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
	return &blobStore{bucket: bucket}, nil
}

// put spools r while hashing it, checks the key's current object for a
// collision, then uploads with the metadata. The check and the upload are two
// steps on S3: two writers of one key at the same instant both pass it.
func (b *blobStore) put(ctx context.Context, s *Store, key string, r io.Reader, opts PutOptions) (Object, error) {
	fail := func(what string, err error) (Object, error) {
		return Object{}, fmt.Errorf("put %s/%s: %s: %w", s.display, key, what, err)
	}
	spool, err := os.CreateTemp(s.spoolDir, spoolPattern)
	if err != nil {
		return fail("create spool file (set output.Config.SpoolDir to a writable directory)", err)
	}
	defer func() {
		_ = os.Remove(spool.Name())
		_ = spool.Close()
	}()
	if _, err := tryLock(spool); err != nil {
		return fail("lock spool file", err)
	}

	h := sha256.New()
	n, err := io.Copy(spool, io.TeeReader(r, h))
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

	if !opts.Origin.IsZero() {
		cur, err := s.Stat(ctx, key)
		switch {
		case err == nil:
			if Collides(cur.Origin, opts.Origin, opts.ReplaceOtherJobs) {
				return Object{}, &CollisionError{Key: key, Existing: cur.Origin, New: opts.Origin}
			}
		case !isNotExist(err):
			return fail("check the existing object", err)
		}
	}

	ct := opts.ContentType
	if ct == "" {
		ct = contentTypeFor(key)
	}
	meta := map[string]string{MetaSHA256: sum, MetaSize: strconv.FormatInt(n, 10)}
	if !opts.Origin.IsZero() {
		meta[MetaOrigin] = opts.Origin.meta()
		meta[MetaRequest] = opts.Origin.Request
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := b.bucket.NewWriter(wctx, key, &blob.WriterOptions{ContentType: ct, Metadata: meta})
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
	return Object{Key: key, Size: n, SHA256: sum, Origin: opts.Origin}, nil
}

func (b *blobStore) stat(ctx context.Context, key string) (Object, map[string]string, error) {
	attrs, err := b.bucket.Attributes(ctx, key)
	if err != nil {
		if gcerrors.Code(err) == gcerrors.NotFound {
			return Object{}, nil, ErrNotExist
		}
		return Object{}, nil, err
	}
	return Object{Key: key, Size: attrs.Size, ModTime: attrs.ModTime}, attrs.Metadata, nil
}

func (b *blobStore) open(ctx context.Context, key string) (io.ReadCloser, error) {
	r, err := b.bucket.NewReader(ctx, key, nil)
	if err != nil {
		if gcerrors.Code(err) == gcerrors.NotFound {
			return nil, ErrNotExist
		}
		return nil, err
	}
	return r, nil
}

func (b *blobStore) delete(ctx context.Context, key string) error {
	err := b.bucket.Delete(ctx, key)
	if err != nil && gcerrors.Code(err) != gcerrors.NotFound {
		return err
	}
	return nil
}
