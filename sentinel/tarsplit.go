package sentinel

import (
	"archive/tar"
	"fmt"
	"io"
	"path"
	"strings"
)

// SplitTar streams the parts of a multi-response Process answer (a tar with names
// like "default.tif", "ndvi.tif", "userdata.json"), calling fn for each file with
// its cleaned name and a reader of its content; nothing is buffered. fn need not
// read its part to the end. Directories and other non-file entries are skipped. It
// stops at the first error from fn (returned wrapped with the part's name), fails
// on a name that is absolute or climbs out with "..", on a truncated archive, and
// with [ErrEmptyTar] when the archive holds no file.
func SplitTar(r io.Reader, fn func(name string, r io.Reader) error) error {
	tr := tar.NewReader(r)
	parts := 0
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			if parts == 0 {
				return ErrEmptyTar
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("read tar response after %d parts: %w", parts, err)
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		name := path.Clean(strings.ReplaceAll(hdr.Name, `\`, "/"))
		if path.IsAbs(name) || name == ".." || strings.HasPrefix(name, "../") || name == "." {
			return fmt.Errorf("tar response part %q: unsafe name; refusing to use it", hdr.Name)
		}
		parts++
		if err := fn(name, tr); err != nil {
			return fmt.Errorf("tar response part %q: %w", name, err)
		}
	}
}
