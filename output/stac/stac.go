// Package stac writes a job's results as a static STAC 1.0.0 catalog: one
// Catalog, one Collection (the AOI's extent and the time range, the evalscript
// and the job spec as fields), and one Item per tile and date with the
// projection and file extensions (proj:epsg, proj:bbox, proj:shape;
// file:size, file:checksum as a sha2-256 multihash) and one asset per output,
// every href relative. Items are written as they are added and their links
// are spooled to a temp file, so memory does not grow with the job; the
// catalog is written last (its presence means the whole tree is there), each
// file atomically through [output.Store.Put].
package stac

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"time"

	"shfleet/output"
)

// Version is the STAC version written.
const Version = "1.0.0"

// Extension schemas the items declare.
const (
	ExtProjection = "https://stac-extensions.github.io/projection/v1.1.0/schema.json"
	ExtFile       = "https://stac-extensions.github.io/file/v2.1.0/schema.json"
)

// Media types of assets.
const (
	MediaGeoTIFF = "image/tiff; application=geotiff"
	MediaCOG     = "image/tiff; application=geotiff; profile=cloud-optimized"
	MediaJSON    = "application/json"
)

// File names inside the writer's directory.
const (
	CatalogFile    = "catalog.json"
	CollectionFile = "collection.json"
	ItemsDir       = "items"
)

// Collection describes the job.
type Collection struct {
	// ID of the collection (the job id).
	ID string
	// Title and Description for people; Description defaults to one naming ID.
	Title, Description string
	// BBox is the AOIs' lon/lat bounding box (west, south, east, north).
	BBox [4]float64
	// Start and End bound the time range.
	Start, End time.Time
	// Fields are added to the collection as top-level fields (e.g.
	// "shfleet:evalscript", "shfleet:spec").
	Fields map[string]any
}

// Item is one tile and date.
type Item struct {
	// ID is unique in the collection and path-safe (the job's item id).
	ID string
	// Tile groups the item files (one directory per tile).
	Tile string
	// BBox is the tile's lon/lat bounding box; the geometry is that box.
	BBox [4]float64
	// Start and End bound the acquisition day or interval; datetime is Start.
	Start, End time.Time
	// EPSG, ProjBBox and Shape (rows, columns) are the projection extension's.
	EPSG     int
	ProjBBox [4]float64
	Shape    [2]int
	// Properties are added to the item's properties (e.g. "shfleet:pu").
	Properties map[string]any
	// Assets, one per output.
	Assets []Asset
}

// Asset is one stored output.
type Asset struct {
	// Name is the asset key (the output id).
	Name string
	// Key is the object key under the store's root.
	Key string
	// Type is the media type.
	Type string
	// Size in bytes and SHA256 (hex) as stored; without a SHA256 the asset has
	// no file:checksum.
	Size   int64
	SHA256 string
}

// Writer writes one catalog under a directory of a store.
type Writer struct {
	store *output.Store
	dir   string
	coll  Collection
	links *os.File
	buf   *bufio.Writer
	n     int
}

// NewWriter starts a catalog for c under dir (a key prefix, e.g. "<job>/stac").
func NewWriter(store *output.Store, dir string, c Collection) (*Writer, error) {
	if err := output.ValidateKey(dir + "/" + CatalogFile); err != nil {
		return nil, fmt.Errorf("stac: %w", err)
	}
	f, err := os.CreateTemp("", "shfleet-stac-links-*")
	if err != nil {
		return nil, fmt.Errorf("stac: spool file for the collection's links: %w", err)
	}
	return &Writer{store: store, dir: dir, coll: c, links: f, buf: bufio.NewWriter(f)}, nil
}

// Rel returns the relative href from the file at key from to the key to (both
// "/"-separated keys under one root).
func Rel(from, to string) string {
	a := strings.Split(path.Dir(from), "/")
	if path.Dir(from) == "." {
		a = nil
	}
	b := strings.Split(to, "/")
	i := 0
	for i < len(a) && i < len(b)-1 && a[i] == b[i] {
		i++
	}
	parts := make([]string, 0, len(a)-i+len(b)-i)
	for range a[i:] {
		parts = append(parts, "..")
	}
	parts = append(parts, b[i:]...)
	rel := strings.Join(parts, "/")
	if !strings.HasPrefix(rel, "..") {
		rel = "./" + rel
	}
	return rel
}

type link struct {
	Rel  string `json:"rel"`
	Href string `json:"href"`
	Type string `json:"type,omitempty"`
}

// SetBBox sets the collection's spatial extent (WGS84 west, south, east, north),
// e.g. once every item is added, before Close writes the collection.
func (w *Writer) SetBBox(box [4]float64) { w.coll.BBox = box }

// ItemKey is where item it is written.
func (w *Writer) ItemKey(it Item) string {
	return w.dir + "/" + ItemsDir + "/" + it.Tile + "/" + it.ID + ".json"
}

func ts(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// Add writes the item's file and records its link for the collection.
func (w *Writer) Add(ctx context.Context, it Item) error {
	key := w.ItemKey(it)
	if err := output.ValidateKey(key); err != nil {
		return fmt.Errorf("stac item %s: %w", it.ID, err)
	}
	catalog, collection := w.dir+"/"+CatalogFile, w.dir+"/"+CollectionFile
	props := map[string]any{
		"datetime":       ts(it.Start),
		"start_datetime": ts(it.Start),
		"end_datetime":   ts(it.End),
		"proj:epsg":      it.EPSG,
		"proj:bbox":      it.ProjBBox[:],
		"proj:shape":     it.Shape[:],
	}
	for k, v := range it.Properties {
		props[k] = v
	}
	assets := map[string]any{}
	for _, a := range it.Assets {
		asset := map[string]any{
			"href":      Rel(key, a.Key),
			"type":      a.Type,
			"roles":     []string{"data"},
			"file:size": a.Size,
		}
		if len(a.SHA256) == 64 { // unknown for outputs the batch service delivered
			asset["file:checksum"] = "1220" + a.SHA256 // multihash: sha2-256 (0x12), 32 bytes (0x20)
		}
		assets[a.Name] = asset
	}
	b := it.BBox
	doc := map[string]any{
		"type":            "Feature",
		"stac_version":    Version,
		"stac_extensions": []string{ExtProjection, ExtFile},
		"id":              it.ID,
		"collection":      w.coll.ID,
		"geometry": map[string]any{"type": "Polygon", "coordinates": [][][2]float64{{
			{b[0], b[1]}, {b[2], b[1]}, {b[2], b[3]}, {b[0], b[3]}, {b[0], b[1]}}}},
		"bbox":       b[:],
		"properties": props,
		"links": []link{
			{"root", Rel(key, catalog), MediaJSON},
			{"parent", Rel(key, collection), MediaJSON},
			{"collection", Rel(key, collection), MediaJSON},
		},
		"assets": assets,
	}
	if err := w.put(ctx, key, doc); err != nil {
		return err
	}
	l, _ := json.Marshal(link{"item", Rel(collection, key), "application/geo+json"})
	if w.n > 0 {
		_ = w.buf.WriteByte(',')
	}
	_, _ = w.buf.Write(l)
	w.n++
	return nil
}

func (w *Writer) put(ctx context.Context, key string, doc any) error {
	data, err := json.MarshalIndent(doc, "", " ")
	if err != nil {
		return fmt.Errorf("stac %s: %w", key, err)
	}
	data = append(data, '\n')
	if _, err := w.store.Put(ctx, key, bytes.NewReader(data), output.PutOptions{ContentType: MediaJSON, ExpectedSize: int64(len(data))}); err != nil {
		return fmt.Errorf("stac: %w", err)
	}
	return nil
}

// Close writes the collection (with a link to every item added) and then the
// catalog, and returns the catalog's key. The writer is done afterwards.
func (w *Writer) Close(ctx context.Context) (string, error) {
	defer w.Abort()
	if err := w.buf.Flush(); err != nil {
		return "", fmt.Errorf("stac: spool links: %w", err)
	}
	catalog, collection := w.dir+"/"+CatalogFile, w.dir+"/"+CollectionFile
	c := w.coll
	desc := c.Description
	if desc == "" {
		desc = "Outputs of shfleet job " + c.ID
	}
	doc := map[string]any{
		"type":            "Collection",
		"stac_version":    Version,
		"stac_extensions": []string{},
		"id":              c.ID,
		"description":     desc,
		"license":         "proprietary",
		"extent": map[string]any{
			"spatial":  map[string]any{"bbox": [][4]float64{c.BBox}},
			"temporal": map[string]any{"interval": [][2]string{{ts(c.Start), ts(c.End)}}},
		},
	}
	if c.Title != "" {
		doc["title"] = c.Title
	}
	for k, v := range c.Fields {
		doc[k] = v
	}
	head, err := json.Marshal(doc)
	if err != nil {
		return "", fmt.Errorf("stac collection: %w", err)
	}
	base, _ := json.Marshal([]link{{"root", Rel(collection, catalog), MediaJSON}, {"parent", Rel(collection, catalog), MediaJSON}})
	if _, err := w.links.Seek(0, io.SeekStart); err != nil {
		return "", fmt.Errorf("stac: rewind links: %w", err)
	}
	var sep []byte
	if w.n > 0 {
		sep = []byte(",")
	}
	body := io.MultiReader(
		bytes.NewReader(head[:len(head)-1]), strings.NewReader(`,"links":`),
		bytes.NewReader(base[:len(base)-1]), bytes.NewReader(sep), w.links, strings.NewReader("]}\n"))
	if _, err := w.store.Put(ctx, collection, body, output.PutOptions{ContentType: MediaJSON}); err != nil {
		return "", fmt.Errorf("stac: %w", err)
	}
	cat := map[string]any{
		"type":            "Catalog",
		"stac_version":    Version,
		"stac_extensions": []string{},
		"id":              c.ID + "-catalog",
		"description":     "STAC catalog of shfleet job " + c.ID,
		"links": []link{
			{"root", "./" + CatalogFile, MediaJSON},
			{"child", Rel(catalog, collection), MediaJSON},
		},
	}
	if err := w.put(ctx, catalog, cat); err != nil {
		return "", err
	}
	return catalog, nil
}

// Abort drops the writer's spool file (Close does it too).
func (w *Writer) Abort() {
	if w.links != nil {
		_ = w.links.Close()
		_ = os.Remove(w.links.Name())
		w.links = nil
	}
}
