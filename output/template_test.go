package output

import (
	"strings"
	"testing"
)

func TestTemplateRender(t *testing.T) {
	vars := PathVars{RequestID: "job-42", TileName: "T33UVP_3_7", Date: "2024-01-31", OutputID: "default", Format: "tif"}
	tests := []struct {
		name, tmpl string
		vars       PathVars
		want       string
	}{
		{"default", DefaultPathTemplate, vars, "job-42/T33UVP_3_7/2024-01-31/default.tif"},
		{"empty means default", "", vars, "job-42/T33UVP_3_7/2024-01-31/default.tif"},
		{"flat with literals", "out/<requestId>_<tileName>_<date>_<outputId>.<format>", vars, "out/job-42_T33UVP_3_7_2024-01-31_default.tif"},
		{"hive style", "date=<date>/tile=<tileName>/<outputId>.<format>", vars, "date=2024-01-31/tile=T33UVP_3_7/default.tif"},
		{"repeated placeholder", "<tileName>/<tileName>.<format>", vars, "T33UVP_3_7/T33UVP_3_7.tif"},
		{"traversal in tile name", DefaultPathTemplate, with(vars, func(v *PathVars) { v.TileName = "../../etc" }), "job-42/____etc/2024-01-31/default.tif"},
		{"separator in tile name", DefaultPathTemplate, with(vars, func(v *PathVars) { v.TileName = "a/b" }), "job-42/a_b/2024-01-31/default.tif"},
		{"dot-dot as whole value", DefaultPathTemplate, with(vars, func(v *PathVars) { v.OutputID = ".." }), "job-42/T33UVP_3_7/2024-01-31/_.tif"},
		{"single dot value", "<requestId>/<outputId>/x", with(vars, func(v *PathVars) { v.OutputID = "." }), "job-42/_/x"},
		{"backslash and absolute", DefaultPathTemplate, with(vars, func(v *PathVars) { v.RequestID = `/abs\..\x` }), "_abs___x/T33UVP_3_7/2024-01-31/default.tif"},
		{"non-ascii and spaces", DefaultPathTemplate, with(vars, func(v *PathVars) { v.TileName = "Žiri tile" }), "job-42/__iri_tile/2024-01-31/default.tif"},
		{"leading dot hidden file", "<outputId>", with(vars, func(v *PathVars) { v.OutputID = ".hidden" }), "_hidden"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmpl, err := ParseTemplate(tt.tmpl)
			if err != nil {
				t.Fatalf("ParseTemplate(%q): %v", tt.tmpl, err)
			}
			got, err := tmpl.Render(tt.vars)
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			if got != tt.want {
				t.Errorf("Render = %q; want %q", got, tt.want)
			}
			if err := ValidateKey(got); err != nil {
				t.Errorf("rendered key is not valid: %v", err)
			}
		})
	}
}

func with(v PathVars, f func(*PathVars)) PathVars {
	f(&v)
	return v
}

func TestZeroTemplateRendersDefault(t *testing.T) {
	var tmpl Template
	got, err := tmpl.Render(PathVars{RequestID: "r", TileName: "t", Date: "d", OutputID: "o", Format: "png"})
	if err != nil || got != "r/t/d/o.png" {
		t.Errorf("zero Template Render = %q, %v; want r/t/d/o.png", got, err)
	}
	if tmpl.String() != DefaultPathTemplate {
		t.Errorf("zero Template String = %q", tmpl.String())
	}
}

func TestRenderEmptyValueIsError(t *testing.T) {
	tmpl, err := ParseTemplate(DefaultPathTemplate)
	if err != nil {
		t.Fatal(err)
	}
	_, err = tmpl.Render(PathVars{RequestID: "r", TileName: "t", OutputID: "o", Format: "tif"})
	if err == nil || !strings.Contains(err.Error(), "<date>") || !strings.Contains(err.Error(), "empty") {
		t.Errorf("Render with empty date error = %v; want one naming <date> as empty", err)
	}
	// An unused placeholder may be empty.
	tmpl, err = ParseTemplate("<tileName>.<format>")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := tmpl.Render(PathVars{TileName: "t", Format: "tif"}); err != nil || got != "t.tif" {
		t.Errorf("Render = %q, %v; want t.tif", got, err)
	}
}

func TestParseTemplateRejects(t *testing.T) {
	tests := []struct{ tmpl, want string }{
		{"<requestId>/<tile>/<date>.<format>", "unknown placeholder <tile>"},
		{"<requestId>/<TileName>.<format>", "unknown placeholder <TileName>"},
		{"/abs/<tileName>.<format>", "must be relative"},
		{"../<tileName>.<format>", `".." path segment`},
		{"a/../<tileName>", `".." path segment`},
		{"./<tileName>", `"." path segment`},
		{"a//<tileName>", "empty path segment"},
		{"<tileName>/", "empty path segment"},
		{"<tileName", "unclosed placeholder"},
		{"tile>name", "unexpected '>'"},
		{`a\<tileName>`, "not allowed"},
		{"a b/<tileName>", "not allowed"},
		{"c:/<tileName>", "not allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.tmpl, func(t *testing.T) {
			_, err := ParseTemplate(tt.tmpl)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ParseTemplate(%q) error = %v; want it to contain %q", tt.tmpl, err, tt.want)
			}
		})
	}
}

func TestValidateKey(t *testing.T) {
	for _, ok := range []string{"a", "a/b/c.tif", "job/T1/2024-01-01/default.tif", "a..b/c", ".x/y"} {
		if err := ValidateKey(ok); err != nil {
			t.Errorf("ValidateKey(%q) = %v; want nil", ok, err)
		}
	}
}

func FuzzRenderNeverEscapes(f *testing.F) {
	f.Add("../../etc", "a/b", "..", `\x`)
	f.Add("", ".", "/", "ok")
	tmpl, err := ParseTemplate(DefaultPathTemplate)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, req, tile, date, out string) {
		key, err := tmpl.Render(PathVars{RequestID: req, TileName: tile, Date: date, OutputID: out, Format: "tif"})
		if err != nil {
			if req != "" && tile != "" && date != "" && out != "" {
				t.Fatalf("Render failed for non-empty values: %v", err)
			}
			return
		}
		if err := ValidateKey(key); err != nil {
			t.Fatalf("rendered key %q invalid: %v", key, err)
		}
		if n := strings.Count(key, "/"); n != 3 {
			t.Fatalf("rendered key %q has %d separators; values added segments", key, n)
		}
	})
}
