package output

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"iter"
)

// ManifestIndexVersion is the version of a manifest that indexes parts
// ([WriteManifestIndex]); version [ManifestVersion] manifests list their
// entries inline.
const ManifestIndexVersion = 2

// ManifestIndex is a manifest that points to parts: newline-delimited JSON
// objects of [ManifestEntry], written as a job's outputs are recorded, so that
// neither the writer nor a reader holds every entry of a job of millions of
// items. Totals add up every part.
type ManifestIndex struct {
	Version int    `json:"version"`
	Job     string `json:"job"`
	// Parts are the keys of the parts in order, e.g. "<job>/manifest/part-00000.jsonl".
	Parts []string `json:"parts"`
	// Outputs, Bytes and PU total the entries of every part.
	Outputs int64   `json:"outputs"`
	Bytes   int64   `json:"bytes"`
	PU      float64 `json:"pu"`
}

// ManifestPartKey is the key of part n of a job's manifest.
func ManifestPartKey(job string, n int) string {
	return fmt.Sprintf("%s/manifest/part-%05d.jsonl", job, n)
}

// WriteManifestPart writes entries as one JSON object per line under key,
// atomically ([Store.Put]); writing the same part again replaces it.
func WriteManifestPart(ctx context.Context, store *Store, key string, entries []ManifestEntry) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	for _, e := range entries {
		if err := enc.Encode(e); err != nil {
			return fmt.Errorf("write manifest part %s: %w", key, err)
		}
	}
	if _, err := store.Put(ctx, key, bytes.NewReader(buf.Bytes()), PutOptions{ContentType: "application/x-ndjson", ExpectedSize: int64(buf.Len())}); err != nil {
		return fmt.Errorf("write manifest part: %w", err)
	}
	return nil
}

// WriteManifestIndex writes the index m (version set to
// [ManifestIndexVersion]) under key, atomically.
func WriteManifestIndex(ctx context.Context, store *Store, key string, m ManifestIndex) error {
	m.Version = ManifestIndexVersion
	if m.Parts == nil {
		m.Parts = []string{}
	}
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("write manifest %s: %w", key, err)
	}
	data = append(data, '\n')
	if _, err := store.Put(ctx, key, bytes.NewReader(data), PutOptions{ContentType: "application/json", ExpectedSize: int64(len(data))}); err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	return nil
}

// ReadManifestIndex reads the index of a version-2 manifest; a version-1
// manifest gives an index without parts (its entries are inline: read them
// with [ManifestEntries] or [ReadManifest]).
func ReadManifestIndex(ctx context.Context, store *Store, key string) (ManifestIndex, error) {
	data, err := readObject(ctx, store, key)
	if err != nil {
		return ManifestIndex{}, err
	}
	var m ManifestIndex
	if err := json.Unmarshal(data, &m); err != nil {
		return ManifestIndex{}, fmt.Errorf("read manifest %s: not a shfleet manifest: %w", key, err)
	}
	if m.Version != ManifestVersion && m.Version != ManifestIndexVersion {
		return ManifestIndex{}, fmt.Errorf("read manifest %s: version %d, this build reads versions %d and %d", key, m.Version, ManifestVersion, ManifestIndexVersion)
	}
	return m, nil
}

// ManifestEntries iterates over every entry of the manifest at key, whichever
// its version: a version-2 manifest is read part by part, holding one part at a
// time, in the order of its index (the order the job recorded its outputs). The
// iteration stops at the first error, which it yields with a zero entry. This
// is the reader for tools that walk a job's outputs (e.g. a STAC writer).
func ManifestEntries(ctx context.Context, store *Store, key string) iter.Seq2[ManifestEntry, error] {
	return func(yield func(ManifestEntry, error) bool) {
		m, err := ReadManifestIndex(ctx, store, key)
		if err != nil {
			yield(ManifestEntry{}, err)
			return
		}
		if m.Version != ManifestVersion {
			for e, err := range IndexEntries(ctx, store, m) {
				if !yield(e, err) || err != nil {
					return
				}
			}
			return
		}
		entries, err := ReadManifest(ctx, store, key)
		if err != nil {
			yield(ManifestEntry{}, err)
			return
		}
		for _, e := range entries {
			if !yield(e, nil) {
				return
			}
		}
	}
}

// IndexEntries iterates over the entries of the parts m lists, part by part.
func IndexEntries(ctx context.Context, store *Store, m ManifestIndex) iter.Seq2[ManifestEntry, error] {
	return func(yield func(ManifestEntry, error) bool) {
		for _, part := range m.Parts {
			if err := ValidateKey(part); err != nil {
				yield(ManifestEntry{}, fmt.Errorf("manifest of %s: part %q: %w", m.Job, part, err))
				return
			}
			r, err := store.NewReader(ctx, part)
			if err != nil {
				yield(ManifestEntry{}, fmt.Errorf("manifest of %s: part %s: %w", m.Job, part, err))
				return
			}
			ok := readPart(r, part, yield)
			r.Close()
			if !ok {
				return
			}
		}
	}
}

// readPart yields the entries of one part; false when the iteration is over
// (the consumer stopped, or an error was yielded).
func readPart(r io.Reader, part string, yield func(ManifestEntry, error) bool) bool {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var e ManifestEntry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			yield(ManifestEntry{}, fmt.Errorf("manifest part %s line %d: %w", part, line, err))
			return false
		}
		if !yield(e, nil) {
			return false
		}
	}
	if err := sc.Err(); err != nil {
		yield(ManifestEntry{}, fmt.Errorf("manifest part %s: %w", part, err))
		return false
	}
	return true
}

func readObject(ctx context.Context, store *Store, key string) ([]byte, error) {
	r, err := store.NewReader(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	defer r.Close()
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read manifest %s: %w", key, err)
	}
	return data, nil
}
