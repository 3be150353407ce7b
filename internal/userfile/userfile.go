// Package userfile reads the files a user names (AOI, evalscript, secret,
// config.toml) through one bounded reader: regular files only — a FIFO, device,
// socket or directory is refused by stat before it is opened — at most a size
// limit per kind, and text checked to be UTF-8 (a UTF-16 or UTF-32 file, or a
// binary one, is named as such). Nothing a user names can block a command or
// grow it without bound.
package userfile

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
	"unicode/utf8"
)

// Kind is a kind of user file with its size limit.
type Kind struct {
	// Name says what the file is, e.g. "AOI file".
	Name string
	// MaxBytes is the largest file accepted.
	MaxBytes int64
	// Text requires UTF-8 text (a UTF-8 byte-order mark is dropped).
	Text bool
	// Sensitive keeps the content out of every message (no byte values).
	Sensitive bool
}

// The kinds of file shfleet reads, with their limits.
var (
	// AOI is a GeoJSON or bbox CSV file: up to 64 MiB.
	AOI = Kind{Name: "AOI file", MaxBytes: 64 << 20, Text: true}
	// Evalscript is a V3 evalscript: up to 512 KiB (it is sent with every
	// Process API request; real ones are a few KiB).
	Evalscript = Kind{Name: "evalscript", MaxBytes: 512 << 10, Text: true}
	// Secret is a file holding an OAuth client secret: up to 4 KiB.
	Secret = Kind{Name: "secret file", MaxBytes: 4 << 10, Text: true, Sensitive: true}
	// Config is a sentinelhub-py config.toml: up to 1 MiB.
	Config = Kind{Name: "config file", MaxBytes: 1 << 20, Text: true}
)

// ErrNotRegular is wrapped when the path is not a regular file.
var ErrNotRegular = errors.New("not a regular file")

// ErrTooLarge is wrapped when the file exceeds its kind's limit.
var ErrTooLarge = errors.New("file too large")

// ErrEncoding is wrapped when a text file is not UTF-8.
var ErrEncoding = errors.New("not UTF-8 text")

// Error is a file that could not be read; Label is how the user named it (a
// flag or variable, e.g. "--evalscript" or "SH_CLIENT_SECRET_FILE").
type Error struct {
	Label, Path string
	// Reason says what is wrong and what to do.
	Reason string
	// Err is the cause (os.ErrNotExist, ErrNotRegular, ErrTooLarge, ErrEncoding, ...).
	Err error
}

func (e *Error) Error() string {
	if e.Label == "" {
		return fmt.Sprintf("%s: %s", e.Path, e.Reason)
	}
	return fmt.Sprintf("%s %s: %s", e.Label, e.Path, e.Reason)
}

func (e *Error) Unwrap() error { return e.Err }

// chunk is how much one read takes before ctx is checked again.
const chunk = 1 << 20

// Read returns the content of path, a regular file of the given kind. label is
// how the user named it, used in errors. It never opens a FIFO, device or
// directory, never reads more than kind.MaxBytes+1 bytes, and returns ctx.Err()
// when ctx ends during the read.
func Read(ctx context.Context, label, path string, kind Kind) ([]byte, error) {
	fail := func(err error, format string, args ...any) ([]byte, error) {
		return nil, &Error{Label: label, Path: path, Reason: fmt.Sprintf(format, args...), Err: err}
	}
	if path == "" {
		return fail(os.ErrNotExist, "no file named; give the path of the %s", kind.Name)
	}
	fi, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fail(os.ErrNotExist, "no such file; give the path of the %s", kind.Name)
		}
		return fail(err, "cannot stat the %s: %v", kind.Name, unwrapPath(err))
	}
	if err := regular(fi); err != nil {
		return fail(ErrNotRegular, "%s; the %s must be a regular file", err, kind.Name)
	}
	if fi.Size() > kind.MaxBytes {
		return fail(ErrTooLarge, "%s is %s, larger than the limit of %s", kind.Name, human(fi.Size()), human(kind.MaxBytes))
	}
	// O_NONBLOCK: should the path be swapped for a FIFO after the stat, the
	// open does not wait for a writer; the fstat below then refuses it.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return fail(err, "cannot open the %s: %v", kind.Name, unwrapPath(err))
	}
	defer f.Close()
	fi2, err := f.Stat()
	if err != nil {
		return fail(err, "cannot stat the %s: %v", kind.Name, unwrapPath(err))
	}
	if err := regular(fi2); err != nil {
		return fail(ErrNotRegular, "%s; the %s must be a regular file", err, kind.Name)
	}
	var buf bytes.Buffer
	buf.Grow(int(min(fi2.Size(), kind.MaxBytes) + 1))
	lr := io.LimitReader(f, kind.MaxBytes+1)
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		n, err := io.CopyN(&buf, lr, chunk)
		if err == io.EOF || n < chunk && err == nil {
			break
		}
		if err != nil {
			return fail(err, "cannot read the %s: %v", kind.Name, unwrapPath(err))
		}
	}
	if int64(buf.Len()) > kind.MaxBytes {
		return fail(ErrTooLarge, "%s grew past the limit of %s while being read", kind.Name, human(kind.MaxBytes))
	}
	data := buf.Bytes()
	if kind.Text {
		var reason string
		data, reason = CheckText(data)
		if reason != "" && kind.Sensitive {
			reason = "the file is not plain UTF-8 text"
		}
		if reason != "" {
			return fail(ErrEncoding, "%s; save the %s as UTF-8", reason, kind.Name)
		}
	}
	return data, nil
}

// regular describes why fi is not a regular file, or returns nil.
func regular(fi fs.FileInfo) error {
	m := fi.Mode()
	switch {
	case m.IsRegular():
		return nil
	case m.IsDir():
		return errors.New("is a directory")
	case m&fs.ModeNamedPipe != 0:
		return errors.New("is a named pipe (FIFO)")
	case m&fs.ModeSocket != 0:
		return errors.New("is a socket")
	case m&fs.ModeCharDevice != 0:
		return errors.New("is a character device")
	case m&fs.ModeDevice != 0:
		return errors.New("is a block device")
	}
	return errors.New("is not a regular file")
}

// CheckText drops a UTF-8 byte-order mark and reports (as a reason, empty when
// the data is fine) a UTF-16 or UTF-32 file, NUL bytes or invalid UTF-8.
func CheckText(data []byte) ([]byte, string) {
	switch {
	case bytes.HasPrefix(data, []byte{0x00, 0x00, 0xFE, 0xFF}), bytes.HasPrefix(data, []byte{0xFF, 0xFE, 0x00, 0x00}):
		return data, "the file is UTF-32 encoded (it starts with a UTF-32 byte-order mark)"
	case bytes.HasPrefix(data, []byte{0xFF, 0xFE}):
		return data, "the file is UTF-16 encoded (little-endian byte-order mark FF FE)"
	case bytes.HasPrefix(data, []byte{0xFE, 0xFF}):
		return data, "the file is UTF-16 encoded (big-endian byte-order mark FE FF)"
	}
	data = bytes.TrimPrefix(data, []byte{0xEF, 0xBB, 0xBF})
	if i := bytes.IndexByte(data, 0); i >= 0 {
		if utf16Like(data) {
			return data, "the file looks UTF-16 encoded without a byte-order mark (every other byte is NUL)"
		}
		return data, fmt.Sprintf("the file holds a NUL byte at offset %d: it is binary, not text", i)
	}
	if !utf8.Valid(data) {
		off := 0
		for off < len(data) {
			r, size := utf8.DecodeRune(data[off:])
			if r == utf8.RuneError && size <= 1 {
				break
			}
			off += size
		}
		return data, fmt.Sprintf("the file is not UTF-8 (invalid byte 0x%02X at offset %d; Latin-1 or another legacy encoding?)", data[off], off)
	}
	return data, ""
}

// utf16Like reports whether nine in ten of the even or of the odd bytes are
// NUL, as in ASCII text saved as UTF-16.
func utf16Like(data []byte) bool {
	var nul [2]int
	for i, b := range data {
		if b == 0 {
			nul[i%2]++
		}
	}
	half := len(data) / 2
	return half >= 2 && (nul[0]*10 >= half*9 || nul[1]*10 >= half*9)
}

// unwrapPath drops the *PathError's repeat of the path.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func human(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}
