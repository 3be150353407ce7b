package stac

import (
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"shfleet/output"
)

func TestRel(t *testing.T) {
	tests := []struct{ from, to, want string }{
		{"j/stac/items/T1/i.json", "j/T1/2025-06-01/default.tif", "../../../T1/2025-06-01/default.tif"},
		{"j/stac/items/T1/i.json", "j/stac/catalog.json", "../../catalog.json"},
		{"j/stac/collection.json", "j/stac/items/T1/i.json", "./items/T1/i.json"},
		{"j/stac/catalog.json", "j/stac/collection.json", "./collection.json"},
		{"j/mosaic/2025-06-01/default_EPSG32633.vrt", "other/T1.tif", "../../../other/T1.tif"},
		{"top.json", "a/b.tif", "./a/b.tif"},
	}
	for _, tt := range tests {
		if got := Rel(tt.from, tt.to); got != tt.want {
			t.Errorf("Rel(%q, %q) = %q; want %q", tt.from, tt.to, got, tt.want)
		}
	}
}

func readJSON(t *testing.T, s *output.Store, key string) map[string]any {
	t.Helper()
	r, err := s.NewReader(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b, _ := io.ReadAll(r)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v\n%s", key, err, b)
	}
	return m
}

func TestWriterTree(t *testing.T) {
	ctx := context.Background()
	s, err := output.Open(ctx, "mem://")
	if err != nil {
		t.Fatal(err)
	}
	day := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	w, err := NewWriter(s, "J/stac", Collection{ID: "J", BBox: [4]float64{14, 46, 14.5, 46.2}, Start: day, End: day.AddDate(0, 1, 0),
		Fields: map[string]any{"shfleet:evalscript": "//VERSION=3"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"T1_2025-06-01", "T1_2025-06-02"} {
		err := w.Add(ctx, Item{ID: id, Tile: "T1", BBox: [4]float64{14, 46, 14.1, 46.1}, Start: day, End: day.AddDate(0, 0, 1),
			EPSG: 32633, ProjBBox: [4]float64{450000, 5090000, 460000, 5100000}, Shape: [2]int{200, 200},
			Properties: map[string]any{"shfleet:pu": 0.5},
			Assets:     []Asset{{Name: "default", Key: "J/T1/2025-06-01/default.tif", Type: MediaCOG, Size: 3, SHA256: "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"}}})
		if err != nil {
			t.Fatal(err)
		}
	}
	cat, err := w.Close(ctx)
	if err != nil || cat != "J/stac/catalog.json" {
		t.Fatalf("Close = %q, %v", cat, err)
	}
	it := readJSON(t, s, "J/stac/items/T1/T1_2025-06-01.json")
	props := it["properties"].(map[string]any)
	asset := it["assets"].(map[string]any)["default"].(map[string]any)
	checks := map[string][2]any{
		"type":          {it["type"], "Feature"},
		"stac_version":  {it["stac_version"], "1.0.0"},
		"datetime":      {props["datetime"], "2025-06-01T00:00:00Z"},
		"end_datetime":  {props["end_datetime"], "2025-06-02T00:00:00Z"},
		"proj:epsg":     {props["proj:epsg"], float64(32633)},
		"href":          {asset["href"], "../../../T1/2025-06-01/default.tif"},
		"file:checksum": {asset["file:checksum"], "1220ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
		"asset type":    {asset["type"], "image/tiff; application=geotiff; profile=cloud-optimized"},
	}
	for name, c := range checks {
		if c[0] != c[1] {
			t.Errorf("item %s = %v; want %v", name, c[0], c[1])
		}
	}
	coll := readJSON(t, s, "J/stac/collection.json")
	links := coll["links"].([]any)
	var hrefs []string
	for _, l := range links {
		m := l.(map[string]any)
		hrefs = append(hrefs, m["rel"].(string)+" "+m["href"].(string))
	}
	got := strings.Join(hrefs, ", ")
	if got != "root ./catalog.json, parent ./catalog.json, item ./items/T1/T1_2025-06-01.json, item ./items/T1/T1_2025-06-02.json" {
		t.Errorf("collection links = %s", got)
	}
	if coll["shfleet:evalscript"] != "//VERSION=3" || coll["type"] != "Collection" {
		t.Errorf("collection fields: %v", coll)
	}
	ext := coll["extent"].(map[string]any)["temporal"].(map[string]any)["interval"].([]any)[0].([]any)
	if ext[0] != "2025-06-01T00:00:00Z" || ext[1] != "2025-07-01T00:00:00Z" {
		t.Errorf("temporal extent %v", ext)
	}
	catalog := readJSON(t, s, "J/stac/catalog.json")
	if l := catalog["links"].([]any)[1].(map[string]any); l["rel"] != "child" || l["href"] != "./collection.json" {
		t.Errorf("catalog child link %v", l)
	}
}
