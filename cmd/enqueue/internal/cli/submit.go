package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"shfleet/config"
	"shfleet/grid"
	"shfleet/internal/text"
	"shfleet/internal/userfile"
	"shfleet/jobs"
	"shfleet/output"
	"shfleet/quota"
	"shfleet/sentinel"
	"shfleet/tasks"
)

// Defaults of the submit and estimate flags.
const (
	DefaultGrid       = "utm-10km"
	DefaultResolution = 10.0
	DefaultCollection = "sentinel-2-l2a"
	// DefaultCredentialTimeout bounds the one token request that checks the
	// credentials.
	DefaultCredentialTimeout = 30 * time.Second
)

// KnownCollections are the data collections submit accepts besides
// "byoc-<id>" and "batch-<id>" (sentinel.Collections).
var KnownCollections = sentinel.CollectionIDs()

// KnownMimeTypes are the response formats the Process API writes.
var KnownMimeTypes = []string{"image/tiff", "image/png", "image/jpeg", "application/json"}

var mosaickingOrders = []string{sentinel.MosaickingLeastCC, sentinel.MosaickingMostRecent, sentinel.MosaickingLeastRecent}

// submitOptions are the flags of submit and estimate.
type submitOptions struct {
	from, to          string
	evalscript        string
	outputURL         string
	gridName          string
	resolution        float64
	subdivide         bool
	buffer            float64
	collection        string
	maxCloud          float64
	mosaicking        string
	mode              string
	interval          string
	responses         []string
	pathTemplate      string
	overwrite         bool
	cog               bool
	queue             string
	name              string
	noStart           bool
	watch             bool
	noWait            bool
	skipCredentials   bool
	maxAreaKm2        float64
	credentialTimeout time.Duration
	maxCloudSet       bool
	maxPU             float64
	acceptCost        bool
	maxTiles          int
	engine            string
	modeSet           bool
	estimate          bool
}

// engineBoth is estimate's --engine value that prints both engines' estimates.
const engineBoth = "both"

func (a *app) submitCommand(autoStart bool) *cobra.Command {
	var o submitOptions
	cmd := &cobra.Command{
		Use:   "submit AOI_FILE --from DATE --to DATE --evalscript FILE --output URL_OR_PATH",
		Short: "Validate, split and submit a job (analysis, then processing)",
		Long: `submit checks every input before anything is written to Redis — the AOI file
(GeoJSON or a bbox CSV), dates, evalscript, grid and resolution (the 2500 px limit),
collection, output location, Redis (reachable, maxmemory-policy noeviction) and the
Sentinel Hub credentials (one token request; --skip-credential-check for offline
use) — then splits the AOIs into tiles and submits the job, all or nothing.`,
		Args: args(cobra.ExactArgs(1)),
	}
	if !autoStart {
		cmd.Use = "estimate AOI_FILE --from DATE --to DATE --evalscript FILE --output URL_OR_PATH"
		cmd.Short = "Submit a job that stops after the analysis and print its cost estimate"
		cmd.Long = `estimate submits like submit, but the job stops at ANALYSIS_DONE: it waits for the
workers to analyse it and prints tiles, items, catalog and process requests, PU and
the time at the binding account policy. ` + "`enqueue start JOB`" + ` then processes it.`
	}
	cmd.RunE = runE(func(cmd *cobra.Command, args []string) error {
		o.maxCloudSet = cmd.Flags().Changed("max-cloud")
		o.modeSet = cmd.Flags().Changed("mode") || cmd.Flags().Changed("interval")
		o.estimate = !autoStart
		return a.runSubmit(cmd.Context(), args[0], o, autoStart && !o.noStart, !autoStart)
	})
	f := cmd.Flags()
	f.StringVar(&o.from, "from", "", "start of the time range, inclusive: YYYY-MM-DD (UTC) or RFC 3339")
	f.StringVar(&o.to, "to", "", "end of the time range, exclusive: YYYY-MM-DD (UTC) or RFC 3339")
	f.StringVar(&o.evalscript, "evalscript", "", "evalscript file (V3)")
	f.StringVar(&o.outputURL, "output", "", "where results go: a directory, file:///abs/path or s3://bucket?region=... (mem:// is refused: workers are other processes)")
	f.StringVar(&o.gridName, "grid", DefaultGrid, "tiling grid: "+strings.Join(grid.GridNames, ", "))
	f.Float64Var(&o.resolution, "resolution", DefaultResolution, "output resolution in the grid's units (metres for utm grids, degrees for wgs84 grids)")
	f.BoolVar(&o.subdivide, "subdivide", false, "split grid cells larger than 2500 px into sub-tiles instead of failing")
	f.Float64Var(&o.buffer, "buffer", 0, "enlarge each tile on every side, in the grid's units")
	f.StringVar(&o.collection, "collection", DefaultCollection, "data collection: "+strings.Join(KnownCollections, ", ")+", byoc-<id> or batch-<id>")
	f.Float64Var(&o.maxCloud, "max-cloud", -1, "keep acquisitions with at most this cloud cover, percent 0..100 (default: no filter)")
	f.StringVar(&o.mosaicking, "mosaicking", "", "mosaicking order: "+strings.Join(mosaickingOrders, ", ")+" (default: the server's)")
	f.StringVar(&o.mode, "mode", string(jobs.ModeAcquisition), "acquisition (one item per tile and acquisition date) or interval (one per tile and --interval)")
	f.StringVar(&o.interval, "interval", "", "item length in interval mode, an ISO-8601 period such as P1M, P7D or P1D")
	f.StringArrayVar(&o.responses, "response", nil, "evalscript output to request as id:mime, e.g. default:image/tiff, repeatable (default: every output of the evalscript as image/tiff)")
	f.StringVar(&o.pathTemplate, "path-template", "", "output key layout (default "+output.DefaultPathTemplate+")")
	f.BoolVar(&o.overwrite, "overwrite", false, "rewrite existing outputs instead of skipping them")
	f.BoolVar(&o.cog, "cog", false, "store every GeoTIFF output as a Cloud Optimized GeoTIFF (256x256 Deflate tiles, internal overviews; --engine batch: the request's cogOutput)")
	f.StringVar(&o.queue, "queue", jobs.DefaultQueue, "queue of the job's process tasks")
	f.StringVar(&o.engine, "engine", jobs.EngineProcess, "process (the fleet's Process API requests) or batch (one Batch Processing API v2 request, enterprise accounts, s3:// output)")
	f.StringVar(&o.name, "name", "", "a label for the job")
	f.BoolVar(&o.skipCredentials, "skip-credential-check", false, "do not fetch a token to check the Sentinel Hub credentials (offline use)")
	f.Float64Var(&o.maxAreaKm2, "max-area-km2", grid.DefaultMaxAreaKm2, "largest area of one AOI, km²")
	f.DurationVar(&o.credentialTimeout, "credential-timeout", DefaultCredentialTimeout, "timeout of the credential check")
	f.Float64Var(&o.maxPU, "max-pu", 0, "refuse the job when its cost estimate exceeds this many PU (default: no fixed cap; the cost guard still applies)")
	f.BoolVar(&o.acceptCost, "accept-cost", false, "start the job even when the cost guard finds its estimate out of proportion (to the account's remaining monthly PU or to the AOI's area); --max-pu still applies")
	f.IntVar(&o.maxTiles, "max-tiles", grid.DefaultMaxTiles, "largest number of tiles one job may have")
	if autoStart {
		f.BoolVar(&o.noStart, "no-start", false, "stop after the analysis (ANALYSIS_DONE); run enqueue start JOB to process it")
		f.BoolVar(&o.watch, "watch", false, "follow the job with a progress bar until it is final")
	} else {
		f.BoolVar(&o.noWait, "no-wait", false, "do not wait for the analysis; `enqueue status JOB` shows the estimate later")
	}
	for _, name := range []string{"from", "to", "evalscript", "output"} {
		_ = cmd.MarkFlagRequired(name)
	}
	return cmd
}

// runSubmit validates everything, then submits; estimate waits for the analysis.
func (a *app) runSubmit(ctx context.Context, aoiFile string, o submitOptions, autoStart, estimate bool) error {
	spec, tiles, est, err := buildSubmission(ctx, aoiFile, o)
	if err != nil {
		return err
	}
	spec.AutoStart = autoStart
	if err := a.checkDeployment(spec.Collection); err != nil {
		return err
	}
	policies, err := a.resolvePolicies()
	if err != nil {
		return err
	}
	rdb, err := a.redis(ctx, true)
	if err != nil {
		return err
	}
	policies = a.fleetPolicies(ctx, rdb, policies)
	if err := a.costGuard(ctx, est, o); err != nil {
		return err
	}
	if !o.skipCredentials {
		if err := a.checkCredentials(ctx, o.credentialTimeout); err != nil {
			return err
		}
	}
	ctl := a.controller(rdb)
	defer ctl.Queue.Close()
	// The output location is opened (a plain directory created) only now that
	// every other check has passed.
	if spec.OutputURL, err = checkOutput(ctx, o.outputURL); err != nil {
		return err
	}
	a.warnUnserved(ctl, spec)
	if !a.json {
		fmt.Fprintf(a.stderr, "enqueue: %s\n", est)
	}
	job, err := ctl.Submit(ctx, spec, tiles)
	if err != nil {
		return fmt.Errorf("submit: %w", err)
	}
	switch {
	case estimate && !o.noWait:
		job, err = a.waitAnalysed(ctx, ctl.Jobs, job.ID)
		if err != nil {
			return err
		}
		var batch *BatchEstimateView
		if o.engine == engineBoth {
			b := batchEstimate(job, spec, tiles, policies)
			batch = &b
		}
		if err := a.printEstimate(job, policies, batch); err != nil {
			return err
		}
		if batch != nil && !a.json {
			a.printBatchEstimate(*batch)
		}
		return nil
	case o.watch:
		if !a.json {
			fmt.Fprintf(a.stdout, "submitted job %s: %d tiles, %s\n", job.ID, job.Progress.Tiles, job.Status)
		}
		return a.watch(ctx, ctl.Jobs, job.ID, policies)
	}
	if a.json {
		return a.writeJSON(a.jobView(job, policies))
	}
	fmt.Fprintf(a.stdout, "submitted job %s: %d tiles from %s, %s\n", job.ID, job.Progress.Tiles, aoiFile, job.Status)
	switch {
	case estimate:
		fmt.Fprintf(a.stdout, "the job stops after the analysis; see the estimate with `enqueue status %s`, then `enqueue start %s`\n", job.ID, job.ID)
	case !autoStart:
		fmt.Fprintf(a.stdout, "the job stops after the analysis; `enqueue start %s` processes it\n", job.ID)
	default:
		fmt.Fprintf(a.stdout, "follow it with `enqueue status %s --watch`\n", job.ID)
	}
	return nil
}

// buildSubmission checks every local input and returns the job spec, its tiles
// and the local cost estimate. It writes nothing: the output location is only
// checked (runSubmit opens it last).
func buildSubmission(ctx context.Context, aoiFile string, o submitOptions) (jobs.Spec, []grid.Tile, estimate, error) {
	spec, tiles, est, err := buildSpec(ctx, aoiFile, o)
	return spec, tiles, est, err
}

func buildSpec(ctx context.Context, aoiFile string, o submitOptions) (jobs.Spec, []grid.Tile, estimate, error) {
	var spec jobs.Spec
	var est estimate
	from, err := parseTime("--from", o.from)
	if err != nil {
		return spec, nil, est, err
	}
	to, err := parseTime("--to", o.to)
	if err != nil {
		return spec, nil, est, err
	}
	if !from.Before(to) {
		return spec, nil, est, fmt.Errorf("--from %s is not before --to %s: the time range is empty (--to is exclusive)", o.from, o.to)
	}
	coll, err := checkCollection(o.collection)
	if err != nil {
		return spec, nil, est, err
	}
	var maxCloud *float64
	if o.maxCloudSet {
		if math.IsNaN(o.maxCloud) || o.maxCloud < 0 || o.maxCloud > 100 {
			return spec, nil, est, fmt.Errorf("--max-cloud %g: give a cloud cover in percent, 0..100", o.maxCloud)
		}
		c := o.maxCloud
		maxCloud = &c
	}
	if o.mosaicking != "" && !slices.Contains(mosaickingOrders, o.mosaicking) {
		return spec, nil, est, fmt.Errorf("--mosaicking %q: use one of %s", o.mosaicking, strings.Join(mosaickingOrders, ", "))
	}
	if err := coll.CheckFilters(o.maxCloudSet, o.mosaicking); err != nil {
		return spec, nil, est, err
	}
	mode := jobs.Mode(o.mode)
	switch mode {
	case jobs.ModeAcquisition:
		if o.interval != "" {
			return spec, nil, est, fmt.Errorf("--interval %s needs --mode interval", o.interval)
		}
	case jobs.ModeInterval:
		if o.interval == "" {
			return spec, nil, est, errors.New("--mode interval needs --interval, e.g. P1M, P7D or P1D")
		}
		if _, err := jobs.ParseInterval(o.interval); err != nil {
			return spec, nil, est, fmt.Errorf("--interval: %w", err)
		}
	default:
		return spec, nil, est, fmt.Errorf("--mode %q: use acquisition or interval", o.mode)
	}
	tmpl, err := output.ParseTemplate(o.pathTemplate)
	if err != nil {
		return spec, nil, est, fmt.Errorf("--path-template: %w", err)
	}
	if math.IsNaN(o.maxPU) || o.maxPU < 0 {
		return spec, nil, est, fmt.Errorf("--max-pu %g: give a positive number of PU (0: no fixed cap)", o.maxPU)
	}
	if o.maxTiles <= 0 {
		return spec, nil, est, fmt.Errorf("--max-tiles %d: give a positive number of tiles", o.maxTiles)
	}
	if err := precheckOutput(o.outputURL); err != nil {
		return spec, nil, est, err
	}
	if strings.TrimSpace(o.queue) == "" {
		return spec, nil, est, errors.New("--queue is empty; name a queue the workers serve (default " + jobs.DefaultQueue + ")")
	}

	script, err := readEvalscript(ctx, o.evalscript)
	if err != nil {
		return spec, nil, est, err
	}
	responses, err := parseResponses(o.responses, sentinel.InspectEvalscript(script), o.evalscript)
	if err != nil {
		return spec, nil, est, err
	}
	if o.cog && !slices.ContainsFunc(responses, func(r jobs.Response) bool { return output.FormatExt(r.Format.Type) == "tif" }) {
		return spec, nil, est, errors.New("--cog: the job writes no GeoTIFF (every --response is another format); drop --cog or add an image/tiff response")
	}
	if err := tmpl.CheckUnique(len(responses)); err != nil {
		return spec, nil, est, fmt.Errorf("--path-template: %w", err)
	}

	g, err := grid.ParseGrid(o.gridName)
	if err != nil {
		return spec, nil, est, fmt.Errorf("--grid: %w", err)
	}
	aoiData, err := userfile.Read(ctx, "AOI file", aoiFile, userfile.AOI)
	if err != nil {
		return spec, nil, est, err
	}
	aois, err := grid.Parse(aoiFile, aoiData, grid.Limits{MaxAreaKm2: o.maxAreaKm2})
	if err != nil {
		return spec, nil, est, err
	}
	if len(aois) == 0 {
		return spec, nil, est, fmt.Errorf("%s: no AOI in the file; give at least one polygon or bbox", aoiFile)
	}
	tiles, err := grid.Split(aois, g, grid.SplitOptions{Resolution: o.resolution, Subdivide: o.subdivide, Buffer: o.buffer, MaxTiles: o.maxTiles})
	if err != nil {
		var pe *grid.PixelLimitError
		if errors.As(err, &pe) {
			return spec, nil, est, fmt.Errorf("--resolution %g: %w", o.resolution, err)
		}
		return spec, nil, est, fmt.Errorf("%s: %w", aoiFile, err)
	}
	if len(tiles) == 0 {
		return spec, nil, est, fmt.Errorf("%s: the AOIs intersect no tile of grid %s", aoiFile, g.Name)
	}

	if err := checkKeys(tmpl, tiles, responses, from); err != nil {
		return spec, nil, est, fmt.Errorf("--path-template: %w", err)
	}
	engine, geometry, err := checkEngine(o, g, aois, o.outputURL)
	if err != nil {
		return spec, nil, est, err
	}
	spec = jobs.Spec{Name: o.name, AOISource: aoiFile, Grid: g.Name, Resolution: o.resolution, Engine: engine, AOIGeometry: geometry, AOIOutline: jobs.OutlineOf(aois),
		From: from, To: to, Collection: o.collection, Evalscript: script, MaxCloudCover: maxCloud,
		MosaickingOrder: o.mosaicking, Mode: mode, Interval: o.interval, Responses: responses,
		OutputURL: o.outputURL, PathTemplate: o.pathTemplate, Overwrite: o.overwrite, COG: o.cog, Queue: o.queue}
	if err := spec.Validate(); err != nil {
		return spec, nil, est, err
	}
	// The request of the first tile as a worker will build it: the Process API's
	// own rules (size, bbox, time range, responses) checked before anything runs.
	item := jobs.Item{ID: jobs.ItemID(tiles[0].Name, from), Tile: tiles[0].Name, From: from, To: to}
	if err := sentinel.ValidateProcessRequest(tasks.BuildProcessRequest(spec, tiles[0], item)); err != nil {
		return spec, nil, est, fmt.Errorf("process request of tile %s: %w", tiles[0].Name, err)
	}
	est = estimateCost(spec, tiles, aois)
	return spec, tiles, est, nil
}

// parseTime reads YYYY-MM-DD (UTC midnight) or RFC 3339.
func parseTime(flag, s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UTC(), nil
	}
	return time.Time{}, fmt.Errorf("%s %q is not a date; use YYYY-MM-DD (UTC) or RFC 3339 such as 2025-06-01T00:00:00Z", flag, s)
}

func checkCollection(c string) (sentinel.Collection, error) {
	if coll, ok := sentinel.LookupCollection(c); ok {
		return coll, nil
	}
	return sentinel.Collection{}, fmt.Errorf("--collection %q is not a known collection; use one of %s, byoc-<id> or batch-<id>", c, strings.Join(KnownCollections, ", "))
}

// readEvalscript reads the evalscript through the bounded reader (regular file,
// at most userfile.Evalscript.MaxBytes: it is stored once in the job and sent
// with every request) and checks it is a V3 script.
func readEvalscript(ctx context.Context, path string) (string, error) {
	b, err := userfile.Read(ctx, "--evalscript", path, userfile.Evalscript)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("--evalscript %s: file does not exist; give the path of a V3 evalscript", path)
		}
		return "", err
	}
	s := string(b)
	if strings.TrimSpace(s) == "" {
		return "", fmt.Errorf("--evalscript %s: the file is empty; give a V3 evalscript (starting with //VERSION=3)", path)
	}
	first, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	if !strings.HasPrefix(strings.ReplaceAll(strings.TrimSpace(first), " ", ""), "//VERSION=3") {
		return "", fmt.Errorf("--evalscript %s: the first line is %q, not //VERSION=3; the Process API takes V3 evalscripts only (put //VERSION=3 on the first line)", path, text.Truncate(strings.TrimSpace(first), 40))
	}
	return s, nil
}

// parseResponses reads id:mime pairs, checks them against the evalscript's
// outputs, and defaults to every output as GeoTIFF.
func parseResponses(list []string, info sentinel.EvalscriptInfo, scriptPath string) ([]jobs.Response, error) {
	outputs := info.Outputs
	if len(outputs) == 0 {
		outputs = []string{"default"}
	}
	if len(list) == 0 {
		out := make([]jobs.Response, len(outputs))
		for i, id := range outputs {
			out[i] = jobs.Response{Identifier: id, Format: jobs.ResponseFormat{Type: "image/tiff"}}
		}
		return out, nil
	}
	var out []jobs.Response
	seen := map[string]bool{}
	for _, r := range list {
		id, mime, ok := strings.Cut(r, ":")
		if !ok || id == "" || mime == "" {
			return nil, fmt.Errorf("--response %q: want id:mime, e.g. default:image/tiff", r)
		}
		if !slices.Contains(KnownMimeTypes, mime) {
			return nil, fmt.Errorf("--response %q: format %q is not one of %s", r, mime, strings.Join(KnownMimeTypes, ", "))
		}
		if !slices.Contains(outputs, id) {
			return nil, fmt.Errorf("--response %q: the evalscript %s declares no output %q (it declares %s)", r, scriptPath, id, strings.Join(outputs, ", "))
		}
		if seen[id] {
			return nil, fmt.Errorf("--response %q: output %q is requested twice", r, id)
		}
		seen[id] = true
		out = append(out, jobs.Response{Identifier: id, Format: jobs.ResponseFormat{Type: mime}})
	}
	return out, nil
}

// checkOutput opens the output store once (a plain directory is created) and
// returns the URL to store in the job: plain paths become absolute file:// URLs,
// so workers started elsewhere do not resolve them against their own directory.
func checkOutput(ctx context.Context, raw string) (string, error) {
	st, err := output.Open(ctx, raw)
	if err != nil {
		return "", fmt.Errorf("--output: %w", err)
	}
	defer st.Close()
	if !strings.Contains(raw, "://") {
		return st.URL(), nil
	}
	return raw, nil
}

// checkCredentials fetches one token: wrong credentials are refused here rather
// than by every worker later.
// checkDeployment refuses a collection whose deployment the configured platform
// does not have (Landsat on CDSE), naming what to set.
func (a *app) checkDeployment(collection string) error {
	coll, _ := sentinel.LookupCollection(collection)
	cfg, err := config.Sentinel(a.sentinel)
	if err != nil {
		return err
	}
	if _, err := cfg.DeploymentURL(coll.Deployment); err != nil {
		return fmt.Errorf("--collection %s is served by the %s deployment: %v (--uswest-url); nothing was submitted", collection, coll.Deployment, err)
	}
	return nil
}

func (a *app) checkCredentials(ctx context.Context, timeout time.Duration) error {
	cfg, err := config.Sentinel(a.sentinel)
	if err != nil {
		return err
	}
	if strings.TrimSpace(cfg.ClientID) == "" {
		return errors.New("no Sentinel Hub client id: set SH_CLIENT_ID or --client-id (and SH_CLIENT_SECRET or SH_CLIENT_SECRET_FILE), use a config.toml profile, or pass --skip-credential-check")
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	_, err = sentinel.FetchToken(ctx, cfg)
	if err == nil {
		return nil
	}
	tokenURL := cfg.TokenURL
	if tokenURL == "" {
		tokenURL = sentinel.DefaultTokenURL
	}
	var te *sentinel.TokenError
	if errors.As(err, &te) && (te.Status == 400 || te.Status == 401) {
		return fmt.Errorf("wrong credentials: the token endpoint %s refused client id %q (HTTP %d); check SH_CLIENT_ID and SH_CLIENT_SECRET (or --client-id, --client-secret-file, the config.toml profile) and --preset/--token-url; nothing was submitted",
			tokenURL, cfg.ClientID, te.Status)
	}
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
		return fmt.Errorf("credential check: the token endpoint %s did not answer within --credential-timeout %s; raise --credential-timeout, check --token-url (SH_TOKEN_URL) or --preset, or pass --skip-credential-check; nothing was submitted", tokenURL, timeout)
	}
	return fmt.Errorf("credential check against %s failed: %w; nothing was submitted (--skip-credential-check skips this check)", tokenURL, err)
}

// checkEngine checks the --engine flag and, for the batch engine, what it
// needs: an S3 bucket, one of the Batch API's grids, the whole time range as
// one output per tile. It returns the engine and, for batch, the AOIs as one
// GeoJSON MultiPolygon.
func checkEngine(o submitOptions, g grid.Grid, aois []grid.AOI, outURL string) (string, json.RawMessage, error) {
	switch o.engine {
	case "", jobs.EngineProcess:
		// --cog: the workers convert each GeoTIFF answer (output/cog).
		return jobs.EngineProcess, nil, nil
	case engineBoth:
		if !o.estimate {
			return "", nil, errors.New("--engine both is for enqueue estimate; submit runs one engine: process or batch")
		}
		if _, ok := g.BatchGridID(); !ok {
			return "", nil, fmt.Errorf("--engine both: --grid %s is not one of the Batch API's tiling grids; use utm-10km, utm-20km, utm-100km, wgs84-1deg, laea-100km or laea-20km", g.Name)
		}
		return jobs.EngineProcess, nil, nil
	case jobs.EngineBatch:
	default:
		return "", nil, fmt.Errorf("--engine %q: use process or batch", o.engine)
	}
	if _, _, err := tasks.BatchBucket(outURL); err != nil {
		return "", nil, fmt.Errorf("--engine batch: %w", err)
	}
	if _, ok := g.BatchGridID(); !ok {
		return "", nil, fmt.Errorf("--engine batch: --grid %s is not one of the Batch API's tiling grids; use utm-10km, utm-20km, utm-100km, wgs84-1deg, laea-100km or laea-20km", g.Name)
	}
	if err := g.CheckBatchResolution(o.resolution); err != nil {
		return "", nil, fmt.Errorf("--engine batch --resolution %s: %w", strconv.FormatFloat(o.resolution, 'f', -1, 64), err)
	}
	if o.modeSet {
		return "", nil, errors.New("--engine batch makes one output per tile over the whole --from..--to (like --mode interval with one interval); remove --mode/--interval")
	}
	var coords [][][][2]float64
	for _, a := range aois {
		for _, p := range a.Geometry {
			var poly [][][2]float64
			for _, r := range p {
				ring := make([][2]float64, len(r))
				for i, pt := range r {
					ring[i] = [2]float64{pt[0], pt[1]}
				}
				poly = append(poly, ring)
			}
			coords = append(coords, poly)
		}
	}
	b, err := json.Marshal(struct {
		Type        string           `json:"type"`
		Coordinates [][][][2]float64 `json:"coordinates"`
	}{"MultiPolygon", coords})
	if err != nil {
		return "", nil, fmt.Errorf("--engine batch: encode the AOIs: %w", err)
	}
	return jobs.EngineBatch, b, nil
}

// BatchEstimateView is the Batch API's side of `estimate --engine both`
// (EstimateView.Batch with --json).
type BatchEstimateView struct {
	Tiles       int     `json:"tiles"`
	EstimatedPU float64 `json:"estimated_pu"`
	// DurationSeconds is the time its PU take at the binding policy (the batch
	// PU are charged on the same policies).
	DurationSeconds float64 `json:"duration_seconds"`
	BindingPolicy   string  `json:"binding_policy,omitempty"`
	// Cheaper is "batch", "process" or "same"; SavingPU what the cheaper saves.
	Cheaper  string  `json:"cheaper"`
	SavingPU float64 `json:"saving_pu"`
	// Resolutions are what the Batch API takes on the grid; ResolutionOK says
	// whether the job's --resolution is one (else submit --engine batch refuses it).
	Resolutions  []float64 `json:"resolutions"`
	ResolutionOK bool      `json:"resolution_ok"`
}

// batchEstimate is how the Batch API would estimate the job (one data sample
// per 3 days for ORBIT/TILE mosaicking, x 1/3) beside the fleet's estimate pj.
func batchEstimate(pj jobs.Job, spec jobs.Spec, tiles []grid.Tile, policies []quota.Policy) BatchEstimateView {
	var mpu int64
	for _, t := range tiles {
		mpu += sentinel.MilliPU(tasks.BatchEstimatePU(spec, t))
	}
	bj := pj
	bj.Progress = jobs.Progress{Tiles: len(tiles), TilesAnalysed: len(tiles), EstimatedMilliPU: mpu}
	v, pv := newEstimateView(bj, policies), newEstimateView(pj, policies)
	b := BatchEstimateView{Tiles: len(tiles), EstimatedPU: v.EstimatedPU, DurationSeconds: v.DurationSeconds, BindingPolicy: v.BindingPolicy}
	switch {
	case v.EstimatedPU < pv.EstimatedPU:
		b.Cheaper, b.SavingPU = "batch", pv.EstimatedPU-v.EstimatedPU
	case v.EstimatedPU > pv.EstimatedPU:
		b.Cheaper, b.SavingPU = "process", v.EstimatedPU-pv.EstimatedPU
	default:
		b.Cheaper = "same"
	}
	b.SavingPU = math.Round(b.SavingPU*1000) / 1000
	if g, err := grid.ParseGrid(spec.Grid); err == nil {
		b.Resolutions = g.BatchResolutions()
		b.ResolutionOK = g.CheckBatchResolution(spec.Resolution) == nil
	}
	return b
}

// printBatchEstimate prints, after the Process API fleet's estimate, the
// Batch API's estimate of the same job and which engine is cheaper.
func (a *app) printBatchEstimate(b BatchEstimateView) {
	w := a.stdout
	fmt.Fprintf(w, "batch engine (Batch Processing API v2, one request, the service's estimate):\n")
	fmt.Fprintf(w, "  tiles              %d\n", b.Tiles)
	fmt.Fprintf(w, "  processing units   %s PU (one sample per 3 days for ORBIT/TILE, x 1/3)\n", fmtPU(b.EstimatedPU))
	if b.BindingPolicy != "" {
		fmt.Fprintf(w, "  time               %s at %s (the batch PU are charged on the same policies)\n", fmtDuration(time.Duration(b.DurationSeconds*float64(time.Second))), b.BindingPolicy)
	}
	switch b.Cheaper {
	case "batch":
		fmt.Fprintf(w, "batch is cheaper by %s PU (%.0f%%); `enqueue submit --engine batch` runs it (enterprise accounts, s3:// output)\n", fmtPU(b.SavingPU), 100*b.SavingPU/(b.EstimatedPU+b.SavingPU))
	case "process":
		fmt.Fprintf(w, "the process engine is cheaper by %s PU: the catalog found under a third of the one sample per 3 days the Batch API assumes\n", fmtPU(b.SavingPU))
	default:
		fmt.Fprintf(w, "both engines cost the same\n")
	}
	if !b.ResolutionOK && len(b.Resolutions) > 0 {
		vals := make([]string, len(b.Resolutions))
		for i, r := range b.Resolutions {
			vals[i] = strconv.FormatFloat(r, 'f', -1, 64)
		}
		fmt.Fprintf(w, "note: the Batch API does not take this --resolution on this grid; `enqueue submit --engine batch` needs one of %s\n", strings.Join(vals, ", "))
	}
}
