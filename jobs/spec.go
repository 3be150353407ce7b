package jobs

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"time"
)

// Mode says how a job's time range becomes work items.
type Mode string

// Modes.
const (
	// ModeAcquisition makes one item per tile and acquisition date found by the
	// catalog search (the default).
	ModeAcquisition Mode = "acquisition"
	// ModeInterval makes one item per tile and time interval (Spec.Interval),
	// each mosaicking the acquisitions inside it.
	ModeInterval Mode = "interval"
)

// Defaults applied by [Store.Create] to empty Spec fields.
const (
	// DefaultMode is the Mode of a Spec that names none.
	DefaultMode = ModeAcquisition
	// DefaultQueue is the asynq queue of a Spec that names none.
	DefaultQueue = "default"
)

// Engines a job can run on (Spec.Engine).
const (
	EngineProcess = "process"
	EngineBatch   = "batch"
)

// Spec is what a job was asked to do. It is stored once per job; task payloads
// carry only the job and item ids. It never holds credentials.
type Spec struct {
	// ID is the job id; [Store.Create] generates one (see [NewID]) when empty.
	ID string `json:"id"`
	// Name is a free label for people.
	Name string `json:"name,omitempty"`
	// AOISource is the file the AOIs were read from (its name, not its content).
	AOISource string `json:"aoi_source,omitempty"`
	// Grid names the tiling grid, e.g. "utm-20km" or "wgs84-1deg".
	Grid string `json:"grid,omitempty"`
	// Resolution is the output resolution in the grid's units (metres or degrees).
	Resolution float64 `json:"resolution,omitempty"`
	// From and To bound the time range (From inclusive, To exclusive).
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	// Collection is the data collection, e.g. "sentinel-2-l2a". Required.
	Collection string `json:"collection"`
	// Evalscript is the evalscript source. Required.
	Evalscript string `json:"evalscript"`
	// MaxCloudCover filters acquisitions by cloud cover in percent; nil: no filter.
	MaxCloudCover *float64 `json:"max_cloud_cover,omitempty"`
	// MosaickingOrder is the Process API's mosaicking order ("mostRecent",
	// "leastRecent", "leastCC"); empty: the server's default.
	MosaickingOrder string `json:"mosaicking_order,omitempty"`
	// Mode is ModeAcquisition or ModeInterval. Default: [DefaultMode].
	Mode Mode `json:"mode"`
	// Interval is the item length in ModeInterval as an ISO-8601 period of years,
	// months, weeks and days, e.g. "P1M", "P7D", "P1D" (see [ParseInterval]).
	Interval string `json:"interval,omitempty"`
	// Responses are the evalscript outputs to request; empty: one GeoTIFF
	// "default" output.
	Responses []Response `json:"responses,omitempty"`
	// OutputURL is where results go (file://, s3://, mem://). Required; must not
	// contain a password.
	OutputURL string `json:"output_url"`
	// PathTemplate lays out output keys; empty means the output package's default.
	PathTemplate string `json:"path_template,omitempty"`
	// Overwrite rewrites existing outputs instead of skipping them.
	Overwrite bool `json:"overwrite,omitempty"`
	// COG stores every GeoTIFF output as a Cloud Optimized GeoTIFF (internally
	// tiled, with overviews): the process engine converts each answer
	// (output/cog), the batch engine asks the service for them (cogOutput).
	// Default false: the GeoTIFFs as the service sends them.
	COG bool `json:"cog,omitempty"`
	// Queue is the asynq queue for the job's process tasks. Default: [DefaultQueue].
	Queue string `json:"queue,omitempty"`
	// AutoStart starts processing as soon as the analysis is done (enqueue submit);
	// false stops at ANALYSIS_DONE with the estimate (enqueue estimate / --no-start).
	// [Store.Get] reports true after [Store.Restart] re-ran failed catalog groups
	// (a restart always goes on to processing).
	AutoStart bool `json:"auto_start,omitempty"`
	// CatalogGroups is the number of catalog tasks the job's tiles were grouped
	// into (set by the submitter), so cancel can remove them by id.
	CatalogGroups int `json:"catalog_groups,omitempty"`
	// Engine is how the job runs: "" or [EngineProcess] (the fleet's Process API
	// requests) or [EngineBatch] (one Batch Processing API request the fleet
	// follows).
	Engine string `json:"engine,omitempty"`
	// AOIGeometry is the AOIs as one GeoJSON MultiPolygon (lon/lat), kept for
	// the batch engine, which sends the area rather than the tiles.
	AOIGeometry json.RawMessage `json:"aoi_geometry,omitempty"`
	// AOIOutline is a compact copy of the AOIs for the job page's map (see
	// [OutlineOf]); empty for jobs submitted before it existed, whose map then
	// shows the tiles alone.
	AOIOutline Outline `json:"aoi_outline,omitempty"`
	// CreatedAt is set by [Store.Create].
	CreatedAt time.Time `json:"created_at"`
}

// Response is one evalscript output a job requests: its identifier in the
// evalscript's setup() and its MIME type. It is stored with the same JSON as
// the Process API's output response, so stored specs read back unchanged;
// package tasks converts it into the request.
type Response struct {
	// Identifier matches an output id of the evalscript, e.g. "default".
	Identifier string `json:"identifier"`
	// Format is the output's MIME type.
	Format ResponseFormat `json:"format"`
}

// ResponseFormat is the MIME type of one output, e.g. "image/tiff".
type ResponseFormat struct {
	Type string `json:"type"`
}

var idPattern = regexp.MustCompile(`^[0-9A-Za-z][0-9A-Za-z._-]{0,63}$`)

// ValidID reports whether id can name a job: 1-64 characters of letters, digits,
// '.', '_' and '-', starting with a letter or digit (path-safe, no hash-tag braces).
func ValidID(id string) bool { return idPattern.MatchString(id) }

// Validate checks the fields the jobs package relies on and names the first bad one.
func (s *Spec) Validate() error {
	if s.ID != "" && !ValidID(s.ID) {
		return fmt.Errorf("job spec: ID %q: use 1-64 letters, digits, '.', '_' or '-'", s.ID)
	}
	if s.Collection == "" {
		return errors.New("job spec: Collection is empty; name a collection such as sentinel-2-l2a")
	}
	if s.Evalscript == "" {
		return errors.New("job spec: Evalscript is empty")
	}
	if s.From.IsZero() || s.To.IsZero() || !s.To.After(s.From) {
		return fmt.Errorf("job spec: time range %s/%s: To must be after From", s.From.Format(time.RFC3339), s.To.Format(time.RFC3339))
	}
	switch s.Mode {
	case "", ModeAcquisition:
	case ModeInterval:
		if _, err := ParseInterval(s.Interval); err != nil {
			return fmt.Errorf("job spec: Interval: %w", err)
		}
	default:
		return fmt.Errorf("job spec: Mode %q: use %q or %q", s.Mode, ModeAcquisition, ModeInterval)
	}
	switch s.Engine {
	case "", EngineProcess, EngineBatch:
	default:
		return fmt.Errorf("job spec: Engine %q: use %q or %q", s.Engine, EngineProcess, EngineBatch)
	}
	if s.OutputURL == "" {
		return errors.New("job spec: OutputURL is empty; give e.g. file:///data/out or s3://bucket/prefix")
	}
	u, err := url.Parse(s.OutputURL)
	if err != nil {
		return errors.New("job spec: OutputURL does not parse as a URL")
	}
	if _, has := u.User.Password(); has {
		return errors.New("job spec: OutputURL contains a password; pass credentials through the environment, never in the URL")
	}
	return nil
}

// Interval is an ISO-8601 period of whole years, months, weeks and days.
type Interval struct {
	Years, Months, Days int
}

var intervalPattern = regexp.MustCompile(`^P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?$`)

// ParseInterval parses "P1M", "P7D", "P1W", "P1Y2M" and the like.
func ParseInterval(s string) (Interval, error) {
	m := intervalPattern.FindStringSubmatch(s)
	if m == nil || s == "P" {
		return Interval{}, fmt.Errorf("interval %q: use an ISO-8601 period of years, months, weeks or days such as P1M, P7D or P1D", s)
	}
	n := func(x string) int {
		if x == "" {
			return 0
		}
		v, _ := strconv.Atoi(x)
		return v
	}
	iv := Interval{Years: n(m[1]), Months: n(m[2]), Days: n(m[3])*7 + n(m[4])}
	if iv == (Interval{}) {
		return Interval{}, fmt.Errorf("interval %q is empty; use a positive period such as P1D", s)
	}
	return iv, nil
}

// Window is a half-open time range [From, To).
type Window struct {
	From, To time.Time
}

// addClamped adds years and months keeping the day within the target month (Jan 31
// + 1 month = Feb 28/29, not Mar 3), then adds days.
func addClamped(t time.Time, years, months, days int) time.Time {
	y, m, d := t.Date()
	first := time.Date(y+years, m+time.Month(months), 1, t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), t.Location())
	last := first.AddDate(0, 1, -1).Day()
	return first.AddDate(0, 0, min(d, last)-1+days)
}

// Split cuts [from, to) into consecutive windows of the interval, the last one
// clipped at to.
func (iv Interval) Split(from, to time.Time) []Window {
	var out []Window
	if iv == (Interval{}) {
		return nil
	}
	for i := 0; ; i++ {
		start := addClamped(from, iv.Years*i, iv.Months*i, iv.Days*i)
		if !start.Before(to) {
			return out
		}
		end := addClamped(from, iv.Years*(i+1), iv.Months*(i+1), iv.Days*(i+1))
		if end.After(to) {
			end = to
		}
		out = append(out, Window{From: start, To: end})
	}
}

// ItemID is the deterministic, path-safe id of the item for tile starting on the
// (UTC) day of start: "<tile>_<YYYY-MM-DD>". A re-run maps to the same id.
func ItemID(tile string, start time.Time) string {
	return tile + "_" + start.UTC().Format(time.DateOnly)
}

const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// NewID returns a new job id: 26 characters of Crockford base32 like a ULID, 10
// for the millisecond time t (so ids sort by creation) and 16 random ones.
func NewID(t time.Time) string {
	var out [26]byte
	ms := uint64(t.UnixMilli())
	for i := 9; i >= 0; i-- {
		out[i] = crockford[ms&31]
		ms >>= 5
	}
	var r [16]byte
	_, _ = rand.Read(r[:]) // crypto/rand.Read never fails
	for i, b := range r {
		out[10+i] = crockford[b&31]
	}
	return string(out[:])
}
