package output

import (
	"context"
	"reflect"
	"strings"
	"testing"
)

func TestManifestPartsAndIndex(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, "mem://")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a := ManifestEntry{Tile: "T1", Date: "2024-01-02", OutputID: "default", Key: "j/T1/2024-01-02/default.tif", Size: 10, SHA256: "aa", PU: 2}
	b := ManifestEntry{Tile: "T2", Date: "2024-01-01", OutputID: "default", Key: "j/T2/2024-01-01/default.tif", Size: 20, PU: 0.5}
	c := ManifestEntry{Tile: "T0", Date: "2024-01-05", OutputID: "mask", Key: "j/T0/2024-01-05/mask.png", Size: 5}
	if k := ManifestPartKey("j", 1); k != "j/manifest/part-00001.jsonl" {
		t.Errorf("part key %q", k)
	}
	if err := WriteManifestPart(ctx, s, ManifestPartKey("j", 0), []ManifestEntry{a, b}); err != nil {
		t.Fatal(err)
	}
	if err := WriteManifestPart(ctx, s, ManifestPartKey("j", 1), []ManifestEntry{c}); err != nil {
		t.Fatal(err)
	}
	want0 := `{"tile":"T1","date":"2024-01-02","outputId":"default","key":"j/T1/2024-01-02/default.tif","size":10,"sha256":"aa","pu":2}` + "\n" +
		`{"tile":"T2","date":"2024-01-01","outputId":"default","key":"j/T2/2024-01-01/default.tif","size":20,"sha256":"","pu":0.5}` + "\n"
	if got := string(readAll(t, s, "j/manifest/part-00000.jsonl")); got != want0 {
		t.Errorf("part 0:\n%s\nwant\n%s", got, want0)
	}
	idx := ManifestIndex{Job: "j", Parts: []string{ManifestPartKey("j", 0), ManifestPartKey("j", 1)}, Outputs: 3, Bytes: 35, PU: 2.5}
	if err := WriteManifestIndex(ctx, s, "j/manifest.json", idx); err != nil {
		t.Fatal(err)
	}
	got, err := ReadManifestIndex(ctx, s, "j/manifest.json")
	idx.Version = 2
	if err != nil || !reflect.DeepEqual(got, idx) {
		t.Errorf("index = %+v, %v; want %+v", got, err, idx)
	}
	// In index order, part by part, as recorded (not sorted).
	var keys []string
	for e, err := range ManifestEntries(ctx, s, "j/manifest.json") {
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, e.Key)
	}
	if strings.Join(keys, " ") != a.Key+" "+b.Key+" "+c.Key {
		t.Errorf("entries %v", keys)
	}
	all, err := ReadManifest(ctx, s, "j/manifest.json")
	if err != nil || !reflect.DeepEqual(all, []ManifestEntry{a, b, c}) {
		t.Errorf("ReadManifest of an index = %+v, %v", all, err)
	}
	// A part that is missing, or an index pointing outside the root, is an error.
	bad := ManifestIndex{Job: "j", Parts: []string{"j/manifest/part-00009.jsonl"}}
	if err := WriteManifestIndex(ctx, s, "j/bad.json", bad); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadManifest(ctx, s, "j/bad.json"); err == nil || !strings.Contains(err.Error(), "part-00009") {
		t.Errorf("missing part: %v", err)
	}
	bad.Parts = []string{"../escape.jsonl"}
	if err := WriteManifestIndex(ctx, s, "j/bad.json", bad); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadManifest(ctx, s, "j/bad.json"); err == nil || !strings.Contains(err.Error(), "escape") {
		t.Errorf("escaping part: %v", err)
	}
}
