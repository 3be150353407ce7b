package sentineltest

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
)

// gdalInfo is the part of `gdalinfo -json -stats` the test reads.
type gdalInfo struct {
	DriverShortName  string    `json:"driverShortName"`
	Size             []int     `json:"size"`
	GeoTransform     []float64 `json:"geoTransform"`
	CoordinateSystem struct {
		WKT string `json:"wkt"`
	} `json:"coordinateSystem"`
	Metadata map[string]map[string]string `json:"metadata"`
	Bands    []struct {
		Type    string   `json:"type"`
		Minimum *float64 `json:"minimum"`
		Maximum *float64 `json:"maximum"`
	} `json:"bands"`
}

// crsEPSG is the EPSG id WKT2 gives the whole CRS: its last ID["EPSG",n].
var crsEPSG = regexp.MustCompile(`ID\["EPSG",(\d+)\]\]\s*$`)

// TestProcessAnswersGDAL writes the simulator's answers to files and opens them
// with GDAL (Debian's gdal-bin, as QGIS would read them): size, bands, data type,
// CRS, geotransform, statistics over every pixel (so every strip is decoded),
// and no warning on stderr.
func TestProcessAnswersGDAL(t *testing.T) {
	t.Parallel()
	gdalinfo, err := exec.LookPath("gdalinfo")
	if err != nil {
		t.Fatalf("gdalinfo not found (%v): this test checks the GeoTIFF answers with GDAL; install it with `apt-get install -y gdal-bin`", err)
	}
	dir := t.TempDir()
	for i, c := range tiffCases() {
		t.Run(c.name, func(t *testing.T) {
			for id, body := range serve(t, c) {
				want := c.want[id]
				path := filepath.Join(dir, strconv.Itoa(i)+"-"+id+".tif")
				if err := os.WriteFile(path, body, 0o644); err != nil {
					t.Fatal(err)
				}
				cmd := exec.Command(gdalinfo, "-json", "-stats", path)
				cmd.Env = append(os.Environ(), "GDAL_PAM_ENABLED=NO") // no .aux.xml beside the file
				var stdout, stderr bytes.Buffer
				cmd.Stdout, cmd.Stderr = &stdout, &stderr
				if err := cmd.Run(); err != nil {
					t.Fatalf("%s: gdalinfo: %v: %s", id, err, stderr.String())
				}
				if stderr.Len() > 0 {
					t.Errorf("%s: gdalinfo warned: %s", id, stderr.String())
				}
				var info gdalInfo
				if err := json.Unmarshal(stdout.Bytes(), &info); err != nil {
					t.Fatalf("%s: gdalinfo -json: %v", id, err)
				}
				if info.DriverShortName != "GTiff" {
					t.Errorf("%s: driver %q, want GTiff", id, info.DriverShortName)
				}
				if len(info.Size) != 2 || info.Size[0] != want.w || info.Size[1] != want.h {
					t.Errorf("%s: size %v, want [%d %d]", id, info.Size, want.w, want.h)
				}
				if len(info.GeoTransform) != 6 || [6]float64(info.GeoTransform) != want.gt {
					t.Errorf("%s: geotransform %v, want %v", id, info.GeoTransform, want.gt)
				}
				m := crsEPSG.FindStringSubmatch(info.CoordinateSystem.WKT)
				if m == nil || m[1] != strconv.Itoa(want.epsg) {
					t.Errorf("%s: CRS is not EPSG:%d: %s", id, want.epsg, info.CoordinateSystem.WKT)
				}
				// GDAL calls one band's interleave BAND whatever PlanarConfiguration says.
				interleave := "PIXEL"
				if want.bands == 1 {
					interleave = "BAND"
				}
				if st := info.Metadata["IMAGE_STRUCTURE"]; st["COMPRESSION"] != "DEFLATE" || st["INTERLEAVE"] != interleave {
					t.Errorf("%s: image structure %v, want DEFLATE, %s", id, st, interleave)
				}
				if info.Metadata[""]["AREA_OR_POINT"] != "Area" {
					t.Errorf("%s: metadata %v, want AREA_OR_POINT=Area", id, info.Metadata[""])
				}
				if len(info.Bands) != want.bands {
					t.Fatalf("%s: %d bands, want %d", id, len(info.Bands), want.bands)
				}
				for i, b := range info.Bands {
					if b.Type != want.gdalType {
						t.Errorf("%s: band %d is %s, want %s", id, i+1, b.Type, want.gdalType)
					}
					if b.Minimum == nil || b.Maximum == nil || *b.Minimum < want.lo-1e-6 || *b.Maximum > want.hi+1e-6 || !(*b.Maximum > *b.Minimum) {
						t.Errorf("%s: band %d statistics %v..%v, want a pattern inside [%g, %g]", id, i+1, b.Minimum, b.Maximum, want.lo, want.hi)
					}
				}
			}
		})
	}
}
