package output

import (
	"bytes"
	"context"
	"reflect"
	"testing"
)

func TestManifestRoundTripIsSortedAndDeterministic(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, "mem://")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	entries := []ManifestEntry{
		{Tile: "T2", Date: "2024-01-02", OutputID: "default", Key: "j/T2/2024-01-02/default.tif", Size: 20, SHA256: "bb", PU: 1.5},
		{Tile: "T1", Date: "2024-01-03", OutputID: "default", Key: "j/T1/2024-01-03/default.tif", Size: 30, SHA256: "cc", PU: 0.005},
		{Tile: "T1", Date: "2024-01-02", OutputID: "mask", Key: "j/T1/2024-01-02/mask.png", Size: 11, SHA256: "ab", PU: 0},
		{Tile: "T1", Date: "2024-01-02", OutputID: "default", Key: "j/T1/2024-01-02/default.tif", Size: 10, SHA256: "aa", PU: 2},
	}
	input := append([]ManifestEntry(nil), entries...)
	if err := WriteManifest(ctx, s, "j/manifest.json", entries); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(entries, input) {
		t.Error("WriteManifest modified the caller's slice")
	}
	got, err := ReadManifest(ctx, s, "j/manifest.json")
	if err != nil {
		t.Fatal(err)
	}
	want := []ManifestEntry{entries[3], entries[2], entries[1], entries[0]}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ReadManifest = %+v\nwant %+v", got, want)
	}
	first := readAll(t, s, "j/manifest.json")

	// Same entries in another order give the same bytes.
	shuffled := []ManifestEntry{entries[1], entries[3], entries[0], entries[2]}
	if err := WriteManifest(ctx, s, "j/manifest2.json", shuffled); err != nil {
		t.Fatal(err)
	}
	if second := readAll(t, s, "j/manifest2.json"); !bytes.Equal(first, second) {
		t.Errorf("manifest bytes depend on input order:\n%s\n---\n%s", first, second)
	}
	if obj, ok, err := s.Exists(ctx, "j/manifest.json"); err != nil || !ok || obj.Size != int64(len(first)) {
		t.Errorf("manifest object = %+v, %v, %v; want complete with size %d", obj, ok, err, len(first))
	}
}

func TestManifestEmptyAndBad(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, "mem://")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := WriteManifest(ctx, s, "m.json", nil); err != nil {
		t.Fatal(err)
	}
	got, err := ReadManifest(ctx, s, "m.json")
	if err != nil || got == nil || len(got) != 0 {
		t.Errorf("empty manifest = %#v, %v; want an empty non-nil slice", got, err)
	}
	if _, err := s.Put(ctx, "bad.json", bytes.NewReader([]byte(`{"version":9,"entries":[]}`)), PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadManifest(ctx, s, "bad.json"); err == nil {
		t.Error("ReadManifest accepted version 9")
	}
	if err := WriteManifest(ctx, s, "../m.json", nil); err == nil {
		t.Error("WriteManifest accepted an escaping key")
	}
}
