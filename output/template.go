package output

import (
	"fmt"
	"mime"
	"strings"
)

// DefaultPathTemplate is the object key layout used when none is configured; it
// matches the Batch Processing API's default tile path.
const DefaultPathTemplate = "<requestId>/<tileName>/<date>/<outputId>.<format>"

// Placeholder names understood by [ParseTemplate].
const (
	PlaceholderRequestID = "requestId"
	PlaceholderTileName  = "tileName"
	PlaceholderDate      = "date"
	PlaceholderOutputID  = "outputId"
	PlaceholderFormat    = "format"
)

var placeholders = []string{PlaceholderRequestID, PlaceholderTileName, PlaceholderDate, PlaceholderOutputID, PlaceholderFormat}

// PathVars are the values substituted into a [Template]. Each value is sanitised to
// the characters [A-Za-z0-9._-] before substitution, so no value can add path
// segments or escape the store's root.
type PathVars struct {
	RequestID string // <requestId>: the job id
	TileName  string // <tileName>: the tile's name
	Date      string // <date>: the acquisition date, e.g. "2024-01-31"
	OutputID  string // <outputId>: the Process API response identifier, e.g. "default"
	Format    string // <format>: the file extension without dot, see [FormatExt]
}

func (v PathVars) get(name string) string {
	switch name {
	case PlaceholderRequestID:
		return v.RequestID
	case PlaceholderTileName:
		return v.TileName
	case PlaceholderDate:
		return v.Date
	case PlaceholderOutputID:
		return v.OutputID
	case PlaceholderFormat:
		return v.Format
	}
	return ""
}

// Template is a parsed object key template; build one with [ParseTemplate]. The zero
// Template renders [DefaultPathTemplate].
type Template struct {
	raw   string
	parts []tmplPart
}

type tmplPart struct {
	literal     string
	placeholder string // set when the part is a placeholder
}

// literalOK lists the characters allowed in a template's literal text besides
// letters and digits.
const literalOK = "._-/=+,@~"

// ParseTemplate parses an object key template such as [DefaultPathTemplate]. The
// empty string means DefaultPathTemplate. It rejects unknown or unclosed
// placeholders, absolute templates, "." and ".." segments, empty segments and
// literal characters outside letters, digits and "._-/=+,@~".
func ParseTemplate(s string) (Template, error) {
	if s == "" {
		s = DefaultPathTemplate
	}
	bad := func(format string, args ...any) (Template, error) {
		return Template{}, fmt.Errorf("output path template %q: %s (placeholders: <%s>)",
			s, fmt.Sprintf(format, args...), strings.Join(placeholders, ">, <"))
	}
	if strings.HasPrefix(s, "/") {
		return bad("must be relative, not start with /")
	}
	t := Template{raw: s}
	rest := s
	for rest != "" {
		i := strings.IndexAny(rest, "<>")
		if i < 0 {
			t.parts = append(t.parts, tmplPart{literal: rest})
			break
		}
		if rest[i] == '>' {
			return bad("unexpected '>' at %q", rest[i:])
		}
		if i > 0 {
			t.parts = append(t.parts, tmplPart{literal: rest[:i]})
		}
		end := strings.IndexByte(rest[i:], '>')
		if end < 0 {
			return bad("unclosed placeholder at %q", rest[i:])
		}
		name := rest[i+1 : i+end]
		if !isPlaceholder(name) {
			return bad("unknown placeholder <%s>", name)
		}
		t.parts = append(t.parts, tmplPart{placeholder: name})
		rest = rest[i+end+1:]
	}
	for _, p := range t.parts {
		for _, r := range p.literal {
			if !isAlnum(r) && !strings.ContainsRune(literalOK, r) {
				return bad("character %q is not allowed (use letters, digits and %q)", r, literalOK)
			}
		}
	}
	// Segments made of literals only must be valid key segments; segments with a
	// placeholder are checked again after rendering.
	for _, seg := range strings.Split(t.skeleton(), "/") {
		switch seg {
		case "":
			return bad("has an empty path segment")
		case ".", "..":
			return bad("has a %q path segment", seg)
		}
	}
	return t, nil
}

// skeleton is the template with each placeholder replaced by "x".
func (t Template) skeleton() string {
	var b strings.Builder
	for _, p := range t.parts {
		if p.placeholder != "" {
			b.WriteString("x")
		} else {
			b.WriteString(p.literal)
		}
	}
	return b.String()
}

// String returns the template's source text.
func (t Template) String() string {
	if t.parts == nil {
		return DefaultPathTemplate
	}
	return t.raw
}

// Render substitutes v into the template and returns a relative object key with
// "/" separators. Each value is sanitised with [SanitizeValue]; an empty value for a
// placeholder the template uses is an error.
func (t Template) Render(v PathVars) (string, error) {
	if t.parts == nil {
		def, err := ParseTemplate(DefaultPathTemplate)
		if err != nil {
			return "", err
		}
		t = def
	}
	var b strings.Builder
	for _, p := range t.parts {
		if p.placeholder == "" {
			b.WriteString(p.literal)
			continue
		}
		val, err := SanitizeValue(v.get(p.placeholder))
		if err != nil {
			return "", fmt.Errorf("output path template %q: <%s>: %w", t.raw, p.placeholder, err)
		}
		b.WriteString(val)
	}
	key := b.String()
	if err := ValidateKey(key); err != nil {
		return "", fmt.Errorf("output path template %q rendered an unusable key: %w", t.raw, err)
	}
	return key, nil
}

// SanitizeValue makes s safe as (part of) one path segment: characters outside
// [A-Za-z0-9._-] become "_", every ".." becomes "_" and a leading "." becomes "_",
// so the result never contains a separator, a ".." or a hidden-file name. An empty s
// is an error.
func SanitizeValue(s string) (string, error) {
	if s == "" {
		return "", fmt.Errorf("value is empty; set it before rendering the output path")
	}
	b := []byte(s)
	out := make([]byte, 0, len(b))
	for _, c := range b {
		if c < 0x80 && (isAlnum(rune(c)) || c == '.' || c == '_' || c == '-') {
			out = append(out, c)
		} else {
			out = append(out, '_')
		}
	}
	r := string(out)
	for strings.Contains(r, "..") {
		r = strings.ReplaceAll(r, "..", "_")
	}
	if strings.HasPrefix(r, ".") {
		r = "_" + r[1:]
	}
	return r, nil
}

func isPlaceholder(name string) bool {
	for _, p := range placeholders {
		if p == name {
			return true
		}
	}
	return false
}

func isAlnum(r rune) bool {
	return (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9')
}

// Content types with a file extension of their own; anything else is "bin".
var formatExts = map[string]string{
	"image/tiff":               "tif",
	"image/png":                "png",
	"image/jpeg":               "jpg",
	"application/json":         "json",
	"application/octet-stream": "bin",
	"application/tar":          "tar",
	"application/x-tar":        "tar",
}

// FormatExt returns the file extension (without dot) for a MIME type as used in the
// Process API's output formats: image/tiff -> tif, image/png -> png, image/jpeg ->
// jpg, application/json -> json, application/tar -> tar. Parameters such as
// "; charset=utf-8" are ignored; unknown types give "bin".
func FormatExt(mimeType string) string {
	mt, _, err := mime.ParseMediaType(mimeType)
	if err != nil {
		mt = strings.ToLower(strings.TrimSpace(mimeType))
	}
	if ext, ok := formatExts[mt]; ok {
		return ext
	}
	return "bin"
}
