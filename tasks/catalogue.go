package tasks

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

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
// manifest (written before it, [Handlers.WriteManifest]), and returns the
// catalog's key and the VRTs' keys. It reads the manifest part by part and the
// tile records a page at a time; what it keeps for the mosaics is one small
// entry per GeoTIFF.
func (h *Handlers) WriteCatalogue(ctx context.Context, jobID string) (string, []string, error) {
	job, err := h.Jobs.Get(ctx, jobID)
	if err != nil {
		return "", nil, err
	}
	store, err := h.Outputs.Open(ctx, job.Spec.OutputURL)
	if err != nil {
		return "", nil, err
	}
	spec := job.Spec
	spec.Evalscript = "" // its own field
	specJSON, err := json.Marshal(spec)
	if err != nil {
		return "", nil, err
	}
	w, err := stac.NewWriter(store, STACDir(jobID), stac.Collection{ID: jobID, Title: job.Spec.Name,
		Description: fmt.Sprintf("Outputs of shfleet job %s: %s over %d tiles, %s to %s", jobID, job.Spec.Collection, job.Progress.Tiles,
			job.Spec.From.Format("2006-01-02"), job.Spec.To.Format("2006-01-02")),
		Start: job.Spec.From, End: job.Spec.To,
		Fields: map[string]any{"shfleet:evalscript": job.Spec.Evalscript, "shfleet:spec": json.RawMessage(specJSON)}})
	if err != nil {
		return "", nil, err
	}
	defer w.Abort()
	windows := itemWindows(job.Spec)
	type group struct {
		date, output string
		epsg         int
	}
	groups := map[group][]mosaic.Tile{}
	tiles := map[string]grid.Tile{}
	bbox := [4]float64{180, 90, -180, -90}
	// An item's outputs are consecutive entries of the manifest (one record
	// each): they become one STAC item, whose PU is their sum.
	var cur *stac.Item
	var curDate string
	var curPU float64
	flush := func() error {
		if cur == nil {
			return nil
		}
		cur.Properties["shfleet:pu"] = curPU
		err := w.Add(ctx, *cur)
		cur = nil
		return err
	}
	// page holds at most tileBatch entries, so its unknown tiles take one lookup.
	var page []output.ManifestEntry
	process := func() error {
		var missing []string
		seen := map[string]bool{}
		for _, e := range page {
			if _, ok := tiles[e.Tile]; !ok && !seen[e.Tile] {
				seen[e.Tile] = true
				missing = append(missing, e.Tile)
			}
		}
		if len(missing) > 0 {
			ts, err := h.Jobs.TilesByName(ctx, jobID, missing)
			if err != nil {
				return err
			}
			for _, t := range ts {
				tiles[t.Name] = t
				bbox = [4]float64{min(bbox[0], t.WGS84[0]), min(bbox[1], t.WGS84[1]), max(bbox[2], t.WGS84[2]), max(bbox[3], t.WGS84[3])}
			}
		}
		for _, e := range page {
			t := tiles[e.Tile]
			id := e.Tile + "_" + e.Date // jobs.ItemID of the item
			if cur == nil || cur.ID != id {
				if err := flush(); err != nil {
					return err
				}
				win := windows(e.Date)
				cur = &stac.Item{ID: id, Tile: e.Tile, BBox: t.WGS84, Start: win.From, End: win.To, EPSG: t.EPSG,
					ProjBBox: t.BBox, Shape: [2]int{t.Height, t.Width},
					Properties: map[string]any{"shfleet:tile": e.Tile}}
				curDate, curPU = e.Date, 0
			}
			curPU += e.PU
			outID := cmp.Or(e.OutputID, strings.TrimSuffix(path.Base(e.Key), path.Ext(e.Key)))
			cur.Assets = append(cur.Assets, stac.Asset{Name: outID, Key: e.Key, Type: mediaType(e.Key, job.Spec.COG), Size: e.Size, SHA256: e.SHA256})
			if path.Ext(e.Key) == ".tif" {
				g := group{curDate, outID, t.EPSG}
				groups[g] = append(groups[g], mosaic.Tile{Key: e.Key, BBox: t.BBox, Width: t.Width, Height: t.Height})
			}
		}
		page = page[:0]
		return nil
	}
	for e, err := range output.ManifestEntries(ctx, store, ManifestKey(jobID)) {
		if err != nil {
			return "", nil, err
		}
		page = append(page, e)
		if len(page) == tileBatch {
			if err := process(); err != nil {
				return "", nil, err
			}
		}
	}
	if err := process(); err != nil {
		return "", nil, err
	}
	if err := flush(); err != nil {
		return "", nil, err
	}
	if len(tiles) == 0 {
		bbox = [4]float64{-180, -90, 180, 90}
	}
	if box, ok := job.Spec.AOIOutline.BBox(); ok {
		bbox = box // the AOI's own extent, as the user drew it
	}
	w.SetBBox(bbox)
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

// itemWindows returns, for an item's date as the manifest gives it, the time
// range the item covers: its interval in ModeInterval, else the day, both cut
// to the job's range.
func itemWindows(spec jobs.Spec) func(date string) jobs.Window {
	byStart := map[string]jobs.Window{}
	if spec.Mode == jobs.ModeInterval {
		if iv, err := jobs.ParseInterval(spec.Interval); err == nil {
			for _, w := range iv.Split(spec.From, spec.To) {
				byStart[w.From.UTC().Format(time.DateOnly)] = w
			}
		}
	}
	return func(date string) jobs.Window {
		if w, ok := byStart[date]; ok {
			return w
		}
		d, err := time.Parse(time.DateOnly, date)
		if err != nil {
			return jobs.Window{From: spec.From, To: spec.To}
		}
		from, to := d, d.AddDate(0, 0, 1)
		if from.Before(spec.From) {
			from = spec.From
		}
		if to.After(spec.To) {
			to = spec.To
		}
		return jobs.Window{From: from, To: to}
	}
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
