package cli

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/paulmach/orb"
	"github.com/paulmach/orb/geo"

	"shfleet/grid"
	"shfleet/jobs"
	"shfleet/keys"
	"shfleet/output"
	"shfleet/sentinel"
	"shfleet/tasks"
)

// Cost guard defaults (see costGuard).
const (
	// DefaultMonthShare is the largest share of the account's remaining monthly
	// PU one job may be estimated at without --accept-cost.
	DefaultMonthShare = 0.5
	// DefaultAreaMultiple is the largest ratio of the tiles' area to the AOIs'
	// own area accepted without --accept-cost, for jobs estimated above
	// MinGuardedPU.
	DefaultAreaMultiple = 1000.0
	// MinGuardedPU is the estimate below which the area guard never refuses.
	MinGuardedPU = 100.0
)

// revisitDays is a collection's nominal revisit for the local estimate; others
// count one acquisition a day (an upper bound).
var revisitDays = map[string]float64{"sentinel-2": 5, "sentinel-1": 6, "landsat": 8, "hls": 3}

// estimate is the local cost estimate made at submit, before any catalog
// search: tiles x expected items per tile x PU per request.
type estimate struct {
	Tiles        int
	ItemsPerTile float64
	Basis        string // how ItemsPerTile was counted
	PUPerRequest float64
	TotalPU      float64
	TileKm2      float64 // the tiles' area
	AOIKm2       float64 // the AOIs' own area
}

func (e estimate) String() string {
	return fmt.Sprintf("estimate %s PU: %d tiles x %s items each (%s) x %s PU per request; the analysis counts the real acquisitions",
		fmtPU(e.TotalPU), e.Tiles, fmtPU(e.ItemsPerTile), e.Basis, fmtPU(e.PUPerRequest))
}

// estimateCost makes the local estimate of a checked spec.
func estimateCost(spec jobs.Spec, tiles []grid.Tile, aois []grid.AOI) estimate {
	e := estimate{Tiles: len(tiles)}
	coll, _ := sentinel.LookupCollection(spec.Collection)
	days := spec.To.Sub(spec.From).Hours() / 24
	switch {
	case spec.Mode == jobs.ModeInterval:
		iv, _ := jobs.ParseInterval(spec.Interval)
		e.ItemsPerTile = float64(len(iv.Split(spec.From, spec.To)))
		e.Basis = "one per " + spec.Interval
	case coll.Timeless():
		e.ItemsPerTile, e.Basis = 1, "a timeless collection"
	default:
		revisit := 1.0
		for prefix, d := range revisitDays {
			if strings.HasPrefix(spec.Collection, prefix) {
				revisit = d
			}
		}
		e.ItemsPerTile = math.Max(1, math.Ceil(days/revisit))
		e.Basis = fmt.Sprintf("%g days at a revisit of %g days", math.Round(days*10)/10, revisit)
	}
	item := jobs.Item{ID: jobs.ItemID(tiles[0].Name, spec.From), Tile: tiles[0].Name, From: spec.From, To: spec.To}
	e.PUPerRequest = sentinel.EstimateRequestPU(tasks.BuildProcessRequest(spec, tiles[0], item), 1)
	e.TotalPU = float64(e.Tiles) * e.ItemsPerTile * e.PUPerRequest
	for _, t := range tiles {
		if t.EPSG == 4326 {
			b := orb.Bound{Min: orb.Point{t.BBox[0], t.BBox[1]}, Max: orb.Point{t.BBox[2], t.BBox[3]}}
			e.TileKm2 += geo.Area(b.ToPolygon()) / 1e6
		} else {
			e.TileKm2 += (t.BBox[2] - t.BBox[0]) * (t.BBox[3] - t.BBox[1]) / 1e6
		}
	}
	for _, a := range aois {
		e.AOIKm2 += geo.Area(a.Geometry) / 1e6
	}
	return e
}

// costGuard refuses a job whose estimate exceeds --max-pu, or — unless
// --accept-cost — DefaultMonthShare of the account's remaining monthly PU, or
// tiles DefaultAreaMultiple times the AOIs' own area. Messages give the numbers.
func (a *app) costGuard(ctx context.Context, e estimate, o submitOptions) error {
	if o.maxPU > 0 && e.TotalPU > o.maxPU {
		return fmt.Errorf("cost guard: %s, more than --max-pu %s; raise --max-pu, use a smaller AOI, a shorter time range or a coarser --resolution; nothing was submitted", e, fmtPU(o.maxPU))
	}
	if o.acceptCost {
		return nil
	}
	if e.TotalPU > MinGuardedPU && e.AOIKm2 > 0 && e.TileKm2 > DefaultAreaMultiple*e.AOIKm2 {
		return fmt.Errorf("cost guard: the %d tiles cover %s km², %s times the AOIs' own %s km² (%s); check the AOI (a swapped lon/lat, a sliver) or pass --accept-cost; nothing was submitted",
			e.Tiles, fmtPU(e.TileKm2), fmtPU(e.TileKm2/e.AOIKm2), fmtPU(e.AOIKm2), e)
	}
	if a.limiter != nil && e.TotalPU > 0 {
		u, err := a.limiter.Usage(ctx)
		if err == nil && u.BudgetPU > 0 {
			left := u.BudgetPU - float64(u.SpentMilliPU+u.ReservedMilliPU)/1000
			if e.TotalPU > DefaultMonthShare*left {
				return fmt.Errorf("cost guard: %s, more than %g%% of the %s PU left of the account's %s PU for %s; pass --accept-cost (or --max-pu) to start it anyway; nothing was submitted",
					e, DefaultMonthShare*100, fmtPU(math.Max(left, 0)), fmtPU(u.BudgetPU), u.Month)
			}
		}
	}
	return nil
}

// checkKeys renders the keys of every tile and output for two dates and
// refuses the template when two of them collide (values are free text, so
// Template.CheckUnique alone does not prove it).
func checkKeys(tmpl output.Template, tiles []grid.Tile, responses []jobs.Response, from time.Time) error {
	seen := make(map[string]string, 2*len(tiles)*len(responses))
	for _, d := range []time.Time{from, from.AddDate(0, 0, 1)} {
		date := d.UTC().Format(time.DateOnly)
		for _, t := range tiles {
			for _, r := range responses {
				id := r.Identifier
				if id == "" {
					id = "default"
				}
				k, err := tmpl.Render(output.PathVars{RequestID: "JOB", TileName: t.Name, Date: date, OutputID: id, Format: output.FormatExt(r.Format.Type)})
				if err != nil {
					return err
				}
				who := fmt.Sprintf("tile %s date %s output %s", t.Name, date, id)
				if other, dup := seen[k]; dup {
					return fmt.Errorf("output path template %q maps %s and %s to the same key %s; add placeholders or separators so every tile, date and output has its own key", tmpl, other, who, k)
				}
				seen[k] = who
			}
		}
	}
	return nil
}

// precheckOutput checks the output location without creating anything:
// mem:// is refused (fleet workers are other processes), and a plain
// directory must exist or be creatable under a writable existing parent.
func precheckOutput(raw string) error {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return errors.New("--output is empty; give a directory, file:///abs/path or s3://bucket?region=...")
	}
	dir := raw
	if strings.Contains(raw, "://") {
		u, err := url.Parse(raw)
		if err != nil {
			return fmt.Errorf("--output: not a valid URL; give a directory, file:///abs/path or s3://bucket?region=...")
		}
		switch u.Scheme {
		case "mem":
			return errors.New("--output mem:// keeps results in the memory of one process, and fleet workers are other processes: every result would be lost; give a directory, file:///abs/path or s3://bucket?region=... (mem:// is for the embedded demo and tests only)")
		case "file":
			dir = filepath.FromSlash(u.Path)
		case "s3":
			return nil // bucket and access are checked when the store is opened
		default:
			return fmt.Errorf("--output: output store %s: scheme %q is not supported; use a directory, file:///abs/path or s3://bucket?region=...", u.Redacted(), u.Scheme)
		}
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("--output %s: %v", raw, err)
	}
	for p := abs; ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err == nil {
			if !fi.IsDir() {
				return fmt.Errorf("--output %s: %s is a file, not a directory; choose a directory", raw, p)
			}
			if syscall.Access(p, 2|1) != nil { // W_OK|X_OK
				return fmt.Errorf("--output %s: directory %s is not writable by this user; choose a writable directory", raw, p)
			}
			return nil
		}
		if !errors.Is(err, os.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
			return fmt.Errorf("--output %s: %v", raw, err)
		}
		if filepath.Dir(p) == p {
			return nil
		}
	}
}

// warnUnserved warns on stderr when no live worker serves the job's process
// queue or the catalog queue (asynq's server list): the job would wait.
func (a *app) warnUnserved(ctl tasks.Controller, spec jobs.Spec) {
	servers, err := ctl.Inspector.Servers()
	if err != nil {
		return
	}
	for _, q := range []string{tasks.QueueName(a.prefix, tasks.QueueCatalog), tasks.QueueName(a.prefix, tasks.ProcessQueue(spec))} {
		served := false
		for _, s := range servers {
			if _, ok := s.Queues[q]; ok {
				served = true
			}
		}
		if !served {
			fmt.Fprintf(a.stderr, "enqueue: warning: no live worker serves queue %q (%d workers seen); the job waits until one starts with -queues including %s and -prefix %s\n",
				q, len(servers), userQueue(a.prefix, q), prefixOrDefault(a.prefix))
		}
	}
}

func userQueue(prefix, q string) string {
	return strings.TrimPrefix(q, prefixOrDefault(prefix)+":")
}

func prefixOrDefault(p string) string {
	if p == "" {
		return keys.DefaultPrefix
	}
	return p
}
