package ops

import (
	"context"
	"embed"
	"fmt"
	"html"
	"html/template"
	"math"
	"net/http"
	"slices"
	"strings"
	"time"

	"shfleet/jobs"
	"shfleet/jobview"
	"shfleet/quota"
)

//go:embed templates/*.html
var templateFS embed.FS

var pageTmpl = template.Must(template.New("jobs.html").Funcs(template.FuncMap{
	"pct": func(n, total int) string {
		if total <= 0 {
			return "0"
		}
		return fmt.Sprintf("%.2f", 100*float64(n)/float64(total))
	},
	"pu": func(v float64) string { return fmt.Sprintf("%.2f", v) },
	"ts": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format("2006-01-02 15:04:05 UTC")
	},
}).ParseFS(templateFS, "templates/jobs.html"))

// Snapshot is what /jobs shows and /jobs.json returns.
type Snapshot struct {
	// GeneratedAt is when the snapshot was read.
	GeneratedAt time.Time `json:"generated_at"`
	// Policies are the account's limits used for ETAs and chart lines.
	Policies []PolicyView `json:"policies"`
	// PolicySource says where they came from: the account's contract, the
	// configuration (SH_POLICIES) or the trial fallback, with details.
	PolicySource string `json:"policy_source,omitempty"`
	// Month is the fleet's PU ledger for this month (nil without a limiter).
	Month *MonthView `json:"month,omitempty"`
	// Jobs are every job, newest first.
	Jobs []JobView `json:"jobs"`
	// Series are the requests admitted and PU spent per minute by the whole
	// fleet (every worker's Series, flushed to Redis: see FleetPoints), the
	// last SeriesMinutes minutes, oldest first. Every worker's page shows the
	// same numbers.
	Series []Point `json:"series"`
	// Errors are what could not be read (e.g. Redis unreachable).
	Errors []string `json:"errors,omitempty"`

	// Charts are the rendered SVG charts (HTML page only).
	Charts []template.HTML `json:"-"`
	// Map is the map of the job chosen with ?job= (default: the newest), HTML
	// page only.
	Map *MapView `json:"-"`
}

// MapView is the page's map of one job on one date (or all dates).
type MapView struct {
	// JobID and JobName name the job drawn; empty when there is no job.
	JobID, JobName string
	// Date is the date drawn (YYYY-MM-DD), empty for all dates.
	Date string
	// Dates are the dates that have items, for the selector.
	Dates []string
	// SVG is the map (see JobMap).
	SVG template.HTML
	// Tiles is the number of tiles; Note says when they are drawn as raster
	// cells.
	Tiles int
	Note  string
	// Error says what could not be read or what was asked wrongly.
	Error string
	// RefreshSeconds is how often the page redraws the map: MapRefresh, or
	// MapRefreshLarge for a job of more than MapTitledTiles tiles or
	// MapInlineItems items (each redraw reads every tile and item id).
	RefreshSeconds int
	// Deferred: the job has more than MapInlineItems items (Items), so the
	// page is sent without its map, and its script fetches the map at once.
	Deferred bool
	Items    int
}

// How often the page redraws a job's map (see MapView.RefreshSeconds), and
// how long one draw may read Redis: a draw scans every item id of the job
// (0.6-1.7 s per million items on today's job records).
const (
	MapRefresh      = 5 * time.Second
	MapRefreshLarge = 30 * time.Second
	MapTimeout      = 30 * time.Second
	// MapInlineItems is the most items of a job whose map is drawn into the
	// page itself; a larger job's page comes at once and fetches its map.
	MapInlineItems = 200_000
)

// PolicyView is one account policy.
type PolicyView struct {
	// Policy is its text form, "requests:600:PT1M".
	Policy string `json:"policy"`
	// Kind is "requests" or "pu".
	Kind string `json:"kind"`
	// Capacity is the requests or PU per period.
	Capacity float64 `json:"capacity"`
	// PeriodSeconds is the policy's period.
	PeriodSeconds float64 `json:"period_seconds"`
	// PerMinute is the capacity as an average rate per minute.
	PerMinute float64 `json:"per_minute"`
}

// MonthView is this month's PU ledger.
type MonthView struct {
	// Month is the UTC month, "2026-11".
	Month string `json:"month"`
	// SpentPU is settled, ReservedPU reserved and not settled yet.
	SpentPU    float64 `json:"spent_pu"`
	ReservedPU float64 `json:"reserved_pu"`
	// BudgetPU is the fleet's own monthly budget (0: none).
	BudgetPU float64 `json:"budget_pu,omitempty"`
	// Exhausted: Sentinel Hub answered 403 this month; nothing is admitted
	// until Reset.
	Exhausted bool      `json:"exhausted"`
	Reset     time.Time `json:"reset"`
}

// JobView is one job as the page shows it: the fleet's one view of a job, the
// same as `enqueue status --json` prints.
type JobView = jobview.View

// policies returns Config.Policies, else the limiter's.
func (h *Handler) policies(ctx context.Context) ([]quota.Policy, error) {
	if len(h.cfg.Policies) > 0 || h.cfg.Sources.Limiter == nil {
		return h.cfg.Policies, nil
	}
	return h.cfg.Sources.Limiter.Policies(ctx)
}

// snapshot reads everything the jobs page shows.
func (h *Handler) snapshot(ctx context.Context) Snapshot {
	ctx, cancel := context.WithTimeout(ctx, ScrapeTimeout)
	defer cancel()
	s := Snapshot{GeneratedAt: h.cfg.Now().UTC(), Jobs: []JobView{}}
	var err error
	if s.Series, err = FleetPoints(ctx, h.cfg.Redis, h.cfg.Prefix, s.GeneratedAt); err != nil {
		s.Errors = append(s.Errors, err.Error())
	}
	pols, err := h.policies(ctx)
	if err != nil {
		s.Errors = append(s.Errors, "policies: "+err.Error())
	}
	switch {
	case len(h.cfg.Policies) > 0:
		s.PolicySource = "configured for this page (ops.Config.Policies)"
	case h.cfg.Sources.Limiter != nil:
		if src, err := h.cfg.Sources.Limiter.PolicySource(ctx); err == nil {
			s.PolicySource = string(src.Kind) + ": " + src.Detail
		}
	}
	for _, p := range pols {
		s.Policies = append(s.Policies, PolicyView{Policy: p.String(), Kind: string(p.Kind), Capacity: p.Capacity,
			PeriodSeconds: p.Period.Seconds(), PerMinute: p.Capacity * float64(time.Minute) / float64(p.Period)})
	}
	if l := h.cfg.Sources.Limiter; l != nil {
		if u, err := l.Usage(ctx); err != nil {
			s.Errors = append(s.Errors, "PU ledger: "+err.Error())
		} else {
			s.Month = &MonthView{Month: u.Month, SpentPU: float64(u.SpentMilliPU) / 1000, ReservedPU: float64(u.ReservedMilliPU) / 1000,
				BudgetPU: u.BudgetPU, Exhausted: u.Exhausted, Reset: u.Reset}
		}
	}
	list, err := h.cfg.Sources.Jobs.List(ctx)
	if err != nil {
		s.Errors = append(s.Errors, "jobs: "+err.Error())
	}
	slices.SortStableFunc(list, func(a, b jobs.Job) int { return b.CreatedAt.Compare(a.CreatedAt) })
	for _, j := range list {
		s.Jobs = append(s.Jobs, jobview.New(j, pols, s.GeneratedAt))
	}
	return s
}

func (h *Handler) serveJobsJSON(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, h.snapshot(r.Context()))
}

// jobMap reads and draws the map of job id (empty: the newest job) on date
// (empty: all dates); for the page itself (inline) it leaves the map of a job
// of more than MapInlineItems items to the page's script.
func (h *Handler) jobMap(ctx context.Context, id, date string, inline bool) *MapView {
	ctx, cancel := context.WithTimeout(ctx, MapTimeout)
	defer cancel()
	st := h.cfg.Sources.Jobs
	v := &MapView{Date: date, RefreshSeconds: int(MapRefresh / time.Second)}
	if id == "" {
		list, err := st.List(ctx)
		if err != nil {
			v.Error = "jobs: " + err.Error()
			return v
		}
		if len(list) == 0 {
			return v
		}
		id = list[len(list)-1].ID // List is oldest first
	}
	job, err := st.Get(ctx, id)
	if err != nil {
		v.Error = err.Error()
		return v
	}
	v.JobID, v.JobName = job.ID, job.Spec.Name
	if inline && job.Progress.Total > MapInlineItems {
		v.Deferred, v.Items = true, job.Progress.Total
		v.RefreshSeconds = int(MapRefreshLarge / time.Second)
		return v
	}
	tiles, err := st.Tiles(ctx, id)
	if err != nil {
		v.Error = err.Error()
		return v
	}
	ts, err := st.TileStatuses(ctx, id, date)
	if err != nil {
		v.Error = err.Error()
		return v
	}
	v.Dates, v.Tiles = ts.Dates, len(tiles)
	if len(tiles) > MapTitledTiles || job.Progress.Total > MapInlineItems {
		v.RefreshSeconds = int(MapRefreshLarge / time.Second)
	}
	m := JobMap(MapInput{Tiles: tiles, Status: ts.Tiles, Outline: job.Spec.AOIOutline})
	v.SVG = m.SVG
	if m.Cells > 0 {
		v.Note = fmt.Sprintf("%d tiles are more than the %d drawn one by one: each square is a cell of a %dx%d raster (%d cells hold tiles) coloured by the tiles whose centre it holds.",
			len(tiles), MapMaxTiles, m.Cols, m.Rows, m.Cells)
	}
	if len(job.Spec.AOIOutline) == 0 {
		v.Note = strings.TrimSpace(v.Note + " The job was stored without its AOI outline; only its tiles are drawn.")
	}
	return v
}

// serveJobsPage renders the page, or with ?fragment=1 only its content (what the
// page's script swaps in every 2 s), or with ?fragment=map only the map of
// ?job= on ?date= (swapped in every MapView.RefreshSeconds).
func (h *Handler) serveJobsPage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if q.Get("fragment") == "map" {
		if err := pageTmpl.ExecuteTemplate(w, "mapsvg", h.jobMap(r.Context(), q.Get("job"), q.Get("date"), false)); err != nil {
			h.cfg.Logger.Error().Err(err).Msg("render job map")
		}
		return
	}
	s := h.snapshot(r.Context())
	s.Charts = []template.HTML{
		chartSVG("Requests per minute (fleet) and request limits", s.Series,
			func(p Point) float64 { return float64(p.Requests) }, s.Policies, string(quota.Requests)),
		chartSVG("PU per minute (fleet) and PU limits", s.Series,
			func(p Point) float64 { return p.PU }, s.Policies, string(quota.PU)),
	}
	name := "jobs.html"
	if q.Get("fragment") != "" {
		name = "content"
	} else {
		s.Map = h.jobMap(r.Context(), q.Get("job"), q.Get("date"), true)
	}
	if err := pageTmpl.ExecuteTemplate(w, name, s); err != nil {
		h.cfg.Logger.Error().Err(err).Msg("render jobs page")
	}
}

// Chart geometry, in SVG units.
const (
	chartW, chartH                   = 590, 190
	chartLeft, chartRight, chartTop  = 44, 110, 22
	chartBottom                      = 24
	chartPlotW, chartPlotH           = chartW - chartLeft - chartRight, chartH - chartTop - chartBottom
	chartLimitColor, chartValueColor = "#c0392b", "#2e86de"
)

// chartSVG draws one bar per minute of value(points) and a dashed line per
// policy of the given kind whose period is at most an hour, at its per-minute
// rate.
func chartSVG(title string, points []Point, value func(Point) float64, pols []PolicyView, kind string) template.HTML {
	var limits []PolicyView
	for _, p := range pols {
		if p.Kind == kind && p.PeriodSeconds <= 3600 {
			limits = append(limits, p)
		}
	}
	top := 1.0
	for _, p := range points {
		top = math.Max(top, value(p))
	}
	for _, l := range limits {
		top = math.Max(top, l.PerMinute)
	}
	top *= 1.1
	y := func(v float64) float64 { return chartTop + chartPlotH*(1-v/top) }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" data-kind="%s" viewBox="0 0 %d %d" width="%d" height="%d" role="img" aria-label="%s" xmlns="http://www.w3.org/2000/svg">`,
		kind, chartW, chartH, chartW, chartH, html.EscapeString(title))
	fmt.Fprintf(&b, `<text x="%d" y="14" class="title">%s</text>`, chartLeft, html.EscapeString(title))
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" class="plot"/>`, chartLeft, chartTop, chartPlotW, chartPlotH)
	for _, f := range []float64{0, 0.5, 1} {
		v := top / 1.1 * f
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" class="axis" text-anchor="end">%s</text>`, chartLeft-4, y(v)+4, shortNum(v))
	}
	n := len(points)
	bw := float64(chartPlotW) / float64(max(n, 1))
	for i, p := range points {
		v := value(p)
		if v <= 0 {
			continue
		}
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s: %s</title></rect>`,
			chartLeft+float64(i)*bw+0.5, y(v), math.Max(bw-1, 1), chartTop+chartPlotH-y(v), chartValueColor,
			p.Minute.Format("15:04"), shortNum(v))
	}
	for _, l := range limits {
		ly := y(l.PerMinute)
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="%s" stroke-dasharray="6 4" stroke-width="1.5"/>`,
			chartLeft, chartLeft+chartPlotW, ly, ly, chartLimitColor)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" class="limit">%s<tspan x="%d" dy="12">%s/min</tspan></text>`,
			chartLeft+chartPlotW+6, ly, html.EscapeString(l.Policy), chartLeft+chartPlotW+6, shortNum(l.PerMinute))
	}
	if n > 0 {
		fmt.Fprintf(&b, `<text x="%d" y="14" class="now" text-anchor="end">this minute: <tspan class="nowval">%s</tspan></text>`,
			chartW-8, shortNum(value(points[n-1])))
		fmt.Fprintf(&b, `<text x="%d" y="%d" class="axis">%s</text>`, chartLeft, chartH-6, points[0].Minute.Format("15:04"))
		fmt.Fprintf(&b, `<text x="%d" y="%d" class="axis" text-anchor="end">%s UTC</text>`, chartLeft+chartPlotW, chartH-6, points[n-1].Minute.Format("15:04"))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) // every interpolated string is escaped above
}

// shortNum formats a chart number: integers plain, small values with decimals.
func shortNum(v float64) string {
	switch {
	case v == math.Trunc(v) || v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}
