// Package mosaic writes GDAL VRT mosaics: one virtual raster over the tiles of
// one date and output in one CRS, each tile placed by its georeferenced bounds
// and referenced by a path relative to the VRT, so the directory can be moved
// or synced as a whole.
package mosaic

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"math"
	"strconv"

	"shfleet/output"
	"shfleet/output/stac"
)

// Tile is one GeoTIFF of the mosaic.
type Tile struct {
	// Key is the object key under the store's root.
	Key string
	// BBox is minX, minY, maxX, maxY in the mosaic's CRS.
	BBox [4]float64
	// Width and Height in pixels.
	Width, Height int
}

// Raster describes the tiles' common pixel layout (read from one of them).
type Raster struct {
	// EPSG is the CRS of every tile.
	EPSG int
	// Bands per tile.
	Bands int
	// DataType is GDAL's name of the sample type ("Byte", "UInt16", "Float32", ...).
	DataType string
	// NoData, when not "", is each band's no-data value.
	NoData string
}

// DataType maps TIFF bits and SampleFormat (1 unsigned, 2 signed, 3 float) to
// GDAL's type name; "" when GDAL 3.6 has none (signed bytes).
func DataType(bits, sampleFormat int) string {
	switch [2]int{bits, sampleFormat} {
	case [2]int{8, 1}:
		return "Byte"
	case [2]int{16, 1}:
		return "UInt16"
	case [2]int{16, 2}:
		return "Int16"
	case [2]int{32, 1}:
		return "UInt32"
	case [2]int{32, 2}:
		return "Int32"
	case [2]int{32, 3}:
		return "Float32"
	case [2]int{64, 3}:
		return "Float64"
	}
	return ""
}

// geographic reports whether code is a lon/lat CRS whose EPSG axis order is
// lat, lon (the VRT maps the data's x to the second axis).
func geographic(code int) bool { return code == 4326 || code == 4258 || code == 4269 }

type vrtDataset struct {
	XMLName      xml.Name  `xml:"VRTDataset"`
	RasterXSize  int       `xml:"rasterXSize,attr"`
	RasterYSize  int       `xml:"rasterYSize,attr"`
	SRS          vrtSRS    `xml:"SRS"`
	GeoTransform string    `xml:"GeoTransform"`
	Bands        []vrtBand `xml:"VRTRasterBand"`
}

type vrtSRS struct {
	Mapping string `xml:"dataAxisToSRSAxisMapping,attr"`
	Value   string `xml:",chardata"`
}

type vrtBand struct {
	DataType string      `xml:"dataType,attr"`
	Band     int         `xml:"band,attr"`
	NoData   string      `xml:"NoDataValue,omitempty"`
	Sources  []vrtSource `xml:"SimpleSource"`
}

type vrtSource struct {
	File vrtFile `xml:"SourceFilename"`
	Band int     `xml:"SourceBand"`
	Src  vrtRect `xml:"SrcRect"`
	Dst  dstRect `xml:"DstRect"`
}

type vrtFile struct {
	Relative int    `xml:"relativeToVRT,attr"`
	Value    string `xml:",chardata"`
}

type vrtRect struct {
	XOff  int `xml:"xOff,attr"`
	YOff  int `xml:"yOff,attr"`
	XSize int `xml:"xSize,attr"`
	YSize int `xml:"ySize,attr"`
}

// dstRect places a tile; offsets may be fractional where tiles overlap by
// less than a pixel (a 10 km grid at 60 m: 167 px cover 10,020 m).
type dstRect struct {
	XOff  string `xml:"xOff,attr"`
	YOff  string `xml:"yOff,attr"`
	XSize int    `xml:"xSize,attr"`
	YSize int    `xml:"ySize,attr"`
}

func g(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

// Build returns the VRT (XML) at key over tiles. Every tile must have the same
// pixel size (the first tile's); a tile of another pixel size is an error
// naming it. Tiles are placed at their bounds (later tiles over earlier ones
// where they overlap); a tile off the first tile's pixel grid lands at a
// fractional offset, which GDAL resamples (nearest).
func Build(key string, r Raster, tiles []Tile) ([]byte, error) {
	if len(tiles) == 0 {
		return nil, fmt.Errorf("vrt %s: no tiles", key)
	}
	if r.DataType == "" || r.Bands < 1 {
		return nil, fmt.Errorf("vrt %s: unknown sample type or no bands", key)
	}
	t0 := tiles[0]
	px := (t0.BBox[2] - t0.BBox[0]) / float64(t0.Width)
	py := (t0.BBox[3] - t0.BBox[1]) / float64(t0.Height)
	ext := t0.BBox
	for _, t := range tiles[1:] {
		ext = [4]float64{min(ext[0], t.BBox[0]), min(ext[1], t.BBox[1]), max(ext[2], t.BBox[2]), max(ext[3], t.BBox[3])}
	}
	onGrid := func(v, step float64) (int, bool) {
		n := math.Round(v / step)
		return int(n), math.Abs(v-n*step) <= step*1e-6
	}
	w := int(math.Ceil((ext[2]-ext[0])/px - 1e-6))
	h := int(math.Ceil((ext[3]-ext[1])/py - 1e-6))
	ds := vrtDataset{RasterXSize: w, RasterYSize: h,
		SRS:          vrtSRS{Mapping: "1,2", Value: "EPSG:" + strconv.Itoa(r.EPSG)},
		GeoTransform: fmt.Sprintf("%s, %s, 0, %s, 0, %s", g(ext[0]), g(px), g(ext[3]), g(-py))}
	if geographic(r.EPSG) {
		ds.SRS.Mapping = "2,1"
	}
	for b := 1; b <= r.Bands; b++ {
		band := vrtBand{DataType: r.DataType, Band: b, NoData: r.NoData}
		for _, t := range tiles {
			tw, okw := onGrid(t.BBox[2]-t.BBox[0], px)
			th, okh := onGrid(t.BBox[3]-t.BBox[1], py)
			if !okw || !okh || tw != t.Width || th != t.Height {
				return nil, fmt.Errorf("vrt %s: tile %s has another pixel size than %s (%g x %g)", key, t.Key, t0.Key, px, py)
			}
			x, y := snap((t.BBox[0]-ext[0])/px), snap((ext[3]-t.BBox[3])/py)
			href := stac.Rel(key, t.Key)
			if len(href) > 2 && href[:2] == "./" {
				href = href[2:]
			}
			band.Sources = append(band.Sources, vrtSource{File: vrtFile{Relative: 1, Value: href}, Band: b,
				Src: vrtRect{0, 0, t.Width, t.Height}, Dst: dstRect{g(x), g(y), t.Width, t.Height}})
		}
		ds.Bands = append(ds.Bands, band)
	}
	out, err := xml.MarshalIndent(ds, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("vrt %s: %w", key, err)
	}
	return append(out, '\n'), nil
}

// snap rounds v to a whole pixel when it is one but for floating-point noise.
func snap(v float64) float64 {
	if r := math.Round(v); math.Abs(v-r) < 1e-6 {
		return r
	}
	return v
}

// Write builds the VRT and stores it under key, atomically.
func Write(ctx context.Context, store *output.Store, key string, r Raster, tiles []Tile) error {
	data, err := Build(key, r, tiles)
	if err != nil {
		return err
	}
	if _, err := store.Put(ctx, key, bytes.NewReader(data), output.PutOptions{ContentType: "application/xml", ExpectedSize: int64(len(data))}); err != nil {
		return fmt.Errorf("vrt: %w", err)
	}
	return nil
}
