package tasks

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path"
	"slices"
	"strconv"
	"strings"

	"shfleet/grid"
	"shfleet/jobs"
	"shfleet/output"
	"shfleet/output/cog"
	"shfleet/output/mosaic"
	"shfleet/output/stac"
)

// STACDir is where a job's STAC catalog goes, under the output root.
func STACDir(job string) string { return job + "/stac" }

// MosaicKey is where the VRT of one date, output and CRS goes.
func MosaicKey(job, date, outputID string, epsg int) string {
	return job + "/mosaic/" + date + "/" + outputID + "_EPSG" + strconv.Itoa(epsg) + ".vrt"
}

// tileBatch is how many tiles one lookup of the job's tile records reads.
const tileBatch = 500

// headerBytes is how much of a GeoTIFF is read to learn its bands and sample
// type for a mosaic (the IFD comes first in the service's answers and in COGs).
const headerBytes = 1 << 20

// WriteCatalogue writes the job's STAC catalog (<job>/stac/catalog.json, one
// collection, one item per DONE item) and one VRT mosaic per date, GeoTIFF
// output and CRS (<job>/mosaic/<date>/<outputId>_EPSG<code>.vrt) from the job's
// records, and returns the catalog's key and the VRTs' keys.
func (h *Handlers) WriteCatalogue(ctx context.Context, jobID string) (string, []string, error) {
	job, err := h.Jobs.Get(ctx, jobID)
	if err != nil {
		return "", nil, err
	}
	items, err := h.Jobs.Items(ctx, jobID, jobs.ItemDone)
	if err != nil {
		return "", nil, err
	}
	slices.SortFunc(items, func(a, b jobs.Item) int { return strings.Compare(a.ID, b.ID) })
	store, err := h.Outputs.Open(ctx, job.Spec.OutputURL)
	if err != nil {
		return "", nil, err
	}
	tiles := map[string]grid.Tile{}
	var names []string
	for _, it := range items {
		if _, ok := tiles[it.Tile]; !ok {
			tiles[it.Tile] = grid.Tile{}
			names = append(names, it.Tile)
		}
	}
	for i := 0; i < len(names); i += tileBatch {
		ts, err := h.Jobs.TilesByName(ctx, jobID, names[i:min(i+tileBatch, len(names))])
		if err != nil {
			return "", nil, err
		}
		for _, t := range ts {
			tiles[t.Name] = t
		}
	}
	bbox := [4]float64{180, 90, -180, -90}
	for _, t := range tiles {
		bbox = [4]float64{min(bbox[0], t.WGS84[0]), min(bbox[1], t.WGS84[1]), max(bbox[2], t.WGS84[2]), max(bbox[3], t.WGS84[3])}
	}
	if len(tiles) == 0 {
		bbox = [4]float64{-180, -90, 180, 90}
	}
	spec := job.Spec
	spec.Evalscript = "" // its own field
	specJSON, err := json.Marshal(spec)
	if err != nil {
		return "", nil, err
	}
	w, err := stac.NewWriter(store, STACDir(jobID), stac.Collection{ID: jobID, Title: job.Spec.Name,
		Description: fmt.Sprintf("Outputs of shfleet job %s: %s over %d tiles, %s to %s", jobID, job.Spec.Collection, len(tiles),
			job.Spec.From.Format("2006-01-02"), job.Spec.To.Format("2006-01-02")),
		BBox: bbox, Start: job.Spec.From, End: job.Spec.To,
		Fields: map[string]any{"shfleet:evalscript": job.Spec.Evalscript, "shfleet:spec": json.RawMessage(specJSON)}})
	if err != nil {
		return "", nil, err
	}
	defer w.Abort()
	type group struct {
		date, output string
		epsg         int
	}
	groups := map[group][]mosaic.Tile{}
	for _, it := range items {
		t := tiles[it.Tile]
		si := stac.Item{ID: it.ID, Tile: it.Tile, BBox: t.WGS84, Start: it.From, End: it.To, EPSG: t.EPSG,
			ProjBBox: t.BBox, Shape: [2]int{t.Height, t.Width},
			Properties: map[string]any{"shfleet:tile": it.Tile, "shfleet:pu": float64(it.SpentMilliPU) / 1000}}
		for _, o := range it.Outputs {
			id := strings.TrimSuffix(path.Base(o.Key), path.Ext(o.Key))
			typ := mediaType(o.Key, job.Spec.COG)
			si.Assets = append(si.Assets, stac.Asset{Name: id, Key: o.Key, Type: typ, Size: o.Size, SHA256: o.SHA256})
			if path.Ext(o.Key) == ".tif" {
				g := group{it.Date, id, t.EPSG}
				groups[g] = append(groups[g], mosaic.Tile{Key: o.Key, BBox: t.BBox, Width: t.Width, Height: t.Height})
			}
		}
		if err := w.Add(ctx, si); err != nil {
			return "", nil, err
		}
	}
	var vrts []string
	keys := make([]group, 0, len(groups))
	for g := range groups {
		keys = append(keys, g)
	}
	slices.SortFunc(keys, func(a, b group) int {
		return strings.Compare(fmt.Sprintf("%s/%s/%06d", a.date, a.output, a.epsg), fmt.Sprintf("%s/%s/%06d", b.date, b.output, b.epsg))
	})
	for _, g := range keys {
		ts := groups[g]
		r, err := describe(ctx, store, ts[0].Key)
		if err != nil {
			return "", nil, err
		}
		r.EPSG = g.epsg
		key := MosaicKey(jobID, g.date, g.output, g.epsg)
		if err := mosaic.Write(ctx, store, key, r, ts); err != nil {
			return "", nil, err
		}
		vrts = append(vrts, key)
	}
	catalog, err := w.Close(ctx)
	return catalog, vrts, err
}

// mediaType is the STAC media type of an output key.
func mediaType(key string, asCOG bool) string {
	switch path.Ext(key) {
	case ".tif":
		if asCOG {
			return stac.MediaCOG
		}
		return stac.MediaGeoTIFF
	case ".png":
		return "image/png"
	case ".jpg":
		return "image/jpeg"
	case ".json":
		return "application/json"
	}
	return "application/octet-stream"
}

// describe reads the bands and sample type of the GeoTIFF at key.
func describe(ctx context.Context, store *output.Store, key string) (mosaic.Raster, error) {
	r, err := store.NewReader(ctx, key)
	if err != nil {
		return mosaic.Raster{}, err
	}
	defer r.Close()
	head, err := io.ReadAll(io.LimitReader(r, headerBytes))
	if err != nil {
		return mosaic.Raster{}, fmt.Errorf("read %s: %w", key, err)
	}
	info, err := cog.Describe(bytes.NewReader(head), int64(len(head)))
	if err != nil {
		return mosaic.Raster{}, fmt.Errorf("mosaic over %s: %w", key, err)
	}
	dt := mosaic.DataType(info.Bits, info.SampleFormat)
	if dt == "" {
		return mosaic.Raster{}, fmt.Errorf("mosaic over %s: %d-bit samples of format %d have no VRT data type here", key, info.Bits, info.SampleFormat)
	}
	return mosaic.Raster{Bands: info.Bands, DataType: dt, NoData: info.NoData}, nil
}
