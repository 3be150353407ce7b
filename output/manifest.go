package output

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// ManifestVersion is the format version written into every manifest.
const ManifestVersion = 1

// ManifestEntry records one stored output of a job.
type ManifestEntry struct {
	Tile     string  `json:"tile"`
	Date     string  `json:"date"`
	OutputID string  `json:"outputId"`
	Key      string  `json:"key"`
	Size     int64   `json:"size"`
	SHA256   string  `json:"sha256"`
	PU       float64 `json:"pu"`
}

type manifestFile struct {
	Version int             `json:"version"`
	Entries []ManifestEntry `json:"entries"`
}

// WriteManifest writes entries as JSON under key, atomically (through
// [Store.Put]). Entries are sorted by tile, date, output id and key so the same
// job always gives the same bytes; the caller's slice is not modified.
func WriteManifest(ctx context.Context, store *Store, key string, entries []ManifestEntry) error {
	sorted := slices.Clone(entries)
	if sorted == nil {
		sorted = []ManifestEntry{}
	}
	slices.SortFunc(sorted, func(a, b ManifestEntry) int {
		for _, c := range [][2]string{{a.Tile, b.Tile}, {a.Date, b.Date}, {a.OutputID, b.OutputID}, {a.Key, b.Key}} {
			if d := strings.Compare(c[0], c[1]); d != 0 {
				return d
			}
		}
		return 0
	})
	data, err := json.MarshalIndent(manifestFile{Version: ManifestVersion, Entries: sorted}, "", "  ")
	if err != nil {
		return fmt.Errorf("write manifest %s: %w", key, err)
	}
	data = append(data, '\n')
	if _, err := store.Put(ctx, key, bytes.NewReader(data), PutOptions{ContentType: "application/json", ExpectedSize: int64(len(data))}); err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	return nil
}

// ReadManifest reads every entry of a manifest: one written by [WriteManifest]
// (version 1) or an index of parts ([WriteManifestIndex], version 2). It holds
// them all; [ManifestEntries] reads a large job's manifest part by part.
func ReadManifest(ctx context.Context, store *Store, key string) ([]ManifestEntry, error) {
	data, err := readObject(ctx, store, key)
	if err != nil {
		return nil, err
	}
	var m manifestFile
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("read manifest %s: not a shfleet manifest: %w", key, err)
	}
	switch m.Version {
	case ManifestVersion:
		return m.Entries, nil
	case ManifestIndexVersion:
		out := []ManifestEntry{}
		for e, err := range ManifestEntries(ctx, store, key) {
			if err != nil {
				return nil, err
			}
			out = append(out, e)
		}
		return out, nil
	}
	return nil, fmt.Errorf("read manifest %s: version %d, this build reads versions %d and %d", key, m.Version, ManifestVersion, ManifestIndexVersion)
}
