package sentineltest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	"shfleet/sentinel"
)

// Defaults of [Config].
const (
	// DefaultClientID is the client id the simulator accepts when Config.ClientID is empty.
	DefaultClientID = "sentineltest-client"
	// DefaultClientSecret is the secret the simulator accepts when Config.ClientSecret is empty.
	DefaultClientSecret = "sentineltest-secret"
	// DefaultUserID is the account's user id (the tokens' JWT "sub" claim) when
	// Config.UserID is empty. It is deliberately not the client id: Sentinel Hub's
	// sub names the user, not the OAuth client.
	DefaultUserID = "5b2c0e44-7d1f-4c38-9a6e-2f81d3c9b7a0"
	// DefaultTokenTTL is the lifetime of issued tokens when Config.TokenTTL is 0.
	DefaultTokenTTL = time.Hour
	// DefaultMaxRecordedRequests is how many requests [Server.Requests] keeps when
	// Config.MaxRecordedRequests is 0.
	DefaultMaxRecordedRequests = 1000
)

// Endpoint paths served by the simulator (each also under the alias in its comment).
// Every path but the token endpoint's is served on both deployments: at the root
// (main) and under [USWestPrefix].
const (
	// TokenPath is the OAuth token endpoint (alias /oauth/token); root only.
	TokenPath = "/auth/realms/main/protocol/openid-connect/token"
	// ProcessPath is the Process API (alias /process/v1).
	ProcessPath = "/api/v1/process"
	// CatalogSearchPath is the Catalog API item search (alias /catalog/v1/search).
	CatalogSearchPath = "/api/v1/catalog/1.0.0/search"
	// RateLimitContractPath publishes the account's policies; query userId=eq:<sub>.
	RateLimitContractPath = "/aux/ratelimit/contract"
	// RateLimitStatisticsPath, followed by the user id, reports the units left now
	// in every policy's bucket.
	RateLimitStatisticsPath = "/aux/ratelimit/statistics/tokenCounts/"
	// USWestPrefix is the path prefix of the simulated US West deployment (Landsat,
	// HLS, MODIS): URL()+USWestPrefix+ProcessPath and so on.
	USWestPrefix = "/uswest"
)

// Deployment names, as the client's sentinel.Config.Deployments keys them.
const (
	deployMain   = sentinel.DeploymentMain
	deployUSWest = sentinel.DeploymentUSWest
)

// HeaderMode selects which rate-limit headers the simulator sends.
type HeaderMode int

const (
	// HeadersRetryAfterOnly sends only Retry-After on 429 (milliseconds, the larger
	// of the request and PU waits), as Sentinel Hub does today; successful process
	// answers carry X-ProcessingUnits-Spent. The default.
	HeadersRetryAfterOnly HeaderMode = iota
	// HeadersLegacy sends the 2019 headers: on 429 Retry-After (the request wait),
	// X-ProcessingUnits-Retry-After, X-RateLimit-Remaining,
	// X-ProcessingUnits-Remaining and X-RateLimit-ViolatedPolicy; on 2xx the
	// X-*-Remaining headers and X-ProcessingUnits-Spent.
	HeadersLegacy
	// HeadersNone sends no rate-limit header at all, not even Retry-After or
	// X-ProcessingUnits-Spent.
	HeadersNone
)

// Faults makes the simulator misbehave on purpose. The zero value injects nothing.
type Faults struct {
	// Error5xxRate is the probability (0..1) that an admitted API request is answered
	// 503 instead; it is not charged.
	Error5xxRate float64
	// TruncateRate is the probability (0..1) that a successful answer announces its
	// full Content-Length but the connection is closed midway through the body. It is
	// charged like a success: the server did the work.
	TruncateRate float64
	// Latency is added before every answer.
	Latency time.Duration
	// LatencyJitter adds a uniformly random extra 0..LatencyJitter.
	LatencyJitter time.Duration
	// Seed seeds the fault RNG; 0 means 1.
	Seed int64
}

// Config configures a simulated account. The zero value is an unlimited account
// with the default credentials that behaves like Sentinel Hub today.
type Config struct {
	// ClientID is the accepted OAuth client id; default [DefaultClientID].
	ClientID string
	// ClientSecret is the accepted OAuth client secret; default [DefaultClientSecret].
	ClientSecret string
	// UserID is the account's user id: the "sub" claim of every token and the id
	// the rate-limit endpoints answer for; default [DefaultUserID].
	UserID string
	// TokenTTL is the lifetime of issued tokens; default [DefaultTokenTTL].
	TokenTTL time.Duration
	// TokenRequestsPerMinute limits the token endpoint (a token bucket of that size
	// refilled over a minute); 0 means unlimited.
	TokenRequestsPerMinute int
	// Policies are the account's rate-limit policies; none means unlimited.
	Policies []Policy
	// MonthlyPU is the PU budget per calendar month (UTC); 0 means unlimited. A
	// process request that would exceed what is left gets 403. The rate-limit
	// contract publishes it as a PROCESSING_UNITS policy of period PT744H.
	MonthlyPU float64
	// ExternalLoad (0..1) is the share of every rate policy's refill that another
	// client of the same account takes, continuously and deterministically: each
	// bucket gains only (1-ExternalLoad) of its refill. The monthly budget is not
	// affected. Default 0 (no other client).
	ExternalLoad float64
	// ForbiddenCollections are collection ids the account may not read, e.g.
	// "sentinel-1-grd" or "byoc-<id>": process and catalog requests using one get
	// 403 and are not charged. Default none.
	ForbiddenCollections []string
	// NoRateLimitAPI makes the rate-limit endpoints ([RateLimitContractPath],
	// [RateLimitStatisticsPath]) answer 404, as a deployment without them would.
	// Default false (they are served).
	NoRateLimitAPI bool
	// HeaderMode selects the rate-limit headers; default [HeadersRetryAfterOnly].
	HeaderMode HeaderMode
	// Faults injects errors, truncation and latency; default none.
	Faults Faults
	// Now is the clock for buckets, token expiry and the month; default time.Now.
	// Latency faults sleep in real time regardless.
	Now func() time.Time
	// MaxRecordedRequests is how many API requests [Server.Requests] keeps (the
	// newest); default [DefaultMaxRecordedRequests]; negative keeps none.
	MaxRecordedRequests int
	// FullSizeBodies makes process answers the real size of the requested output
	// (width x height x output bands x bytes per sample, see [FullSizeBody]),
	// streamed as they are generated, instead of the [ProcessBody] GeoTIFF.
	// Default false.
	FullSizeBodies bool
	// Batch enables the Batch Processing API v2 (an enterprise account);
	// default false: every batch endpoint answers 403, as for other accounts.
	Batch bool
	// BatchS3 is where batch requests deliver their tiles.
	BatchS3 BatchS3
	// BatchStep is the pace of the simulated batch service; default
	// [DefaultBatchStep].
	BatchStep time.Duration
	// BatchStuck makes tiles (by name) get stuck that many times, as
	// [Server.SetBatchStuck] does; default none.
	BatchStuck map[string]int
}

// withDefaults returns c with every zero field that has a default set to it.
func (c Config) withDefaults() Config {
	if c.ClientID == "" {
		c.ClientID = DefaultClientID
	}
	if c.ClientSecret == "" {
		c.ClientSecret = DefaultClientSecret
	}
	if c.UserID == "" {
		c.UserID = DefaultUserID
	}
	if c.TokenTTL <= 0 {
		c.TokenTTL = DefaultTokenTTL
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.BatchStep <= 0 {
		c.BatchStep = DefaultBatchStep
	}
	if c.MaxRecordedRequests == 0 {
		c.MaxRecordedRequests = DefaultMaxRecordedRequests
	}
	c.ForbiddenCollections = append([]string(nil), c.ForbiddenCollections...)
	return c
}

// validate names the first bad field.
func (c Config) validate() error {
	for _, p := range c.Policies {
		if err := p.validate(); err != nil {
			return err
		}
	}
	if err := validShare(c.ExternalLoad); err != nil {
		return fmt.Errorf("sentineltest: Config.ExternalLoad: %w", err)
	}
	if c.MonthlyPU < 0 || math.IsNaN(c.MonthlyPU) {
		return fmt.Errorf("sentineltest: Config.MonthlyPU %g: want 0 (unlimited) or a positive budget", c.MonthlyPU)
	}
	return nil
}

func validShare(share float64) error {
	if !(share >= 0 && share <= 1) {
		return fmt.Errorf("share %g of the refill: want 0..1", share)
	}
	return nil
}

// Stats is a snapshot of what the simulator has seen.
type Stats struct {
	// RequestsByStatus counts process and catalog answers by HTTP status.
	RequestsByStatus map[int]int
	// ProcessRequests and CatalogRequests count every request to those endpoints.
	ProcessRequests, CatalogRequests int
	// RateLimited counts 429 answers of the process and catalog endpoints.
	RateLimited int
	// RateLimitedByPolicy counts 429s by the policy that refused them (the one
	// with the longest wait), keyed like "requests:PT1M" ([Policy.Key]), whatever
	// the [HeaderMode].
	RateLimitedByPolicy map[string]int
	// TokenRequests counts calls of the token endpoint; TokensIssued those that
	// returned a token; TokenRateLimited those answered 429.
	TokenRequests, TokensIssued, TokenRateLimited int
	// Unauthorized counts API requests answered 401 (the rate-limit endpoints'
	// included).
	Unauthorized int
	// QuotaExceeded counts process requests answered 403 (monthly budget).
	QuotaExceeded int
	// PermissionDenied counts process and catalog requests answered 403 because
	// they name one of Config.ForbiddenCollections.
	PermissionDenied int
	// AuxRequests counts requests to the rate-limit endpoints, whatever their
	// answer. They are neither rate limited nor charged, and are not in
	// RequestsByStatus or [Server.Requests].
	AuxRequests int
	// ExternalUnits is, per policy key, what the other client of Config.ExternalLoad
	// has taken from that policy's refill.
	ExternalUnits map[string]float64
	// Faults5xx and Truncated count injected faults.
	Faults5xx, Truncated int
	// PUSpent is the PU charged in total (2xx process answers, truncated included).
	PUSpent float64
	// MonthlyPUSpent is the PU charged in the current calendar month.
	MonthlyPUSpent float64
	// MaxWindowLoad is, per policy key, the most units admitted within any sliding
	// window of the policy's period.
	MaxWindowLoad map[string]float64
	// Served counts 2xx answers per distinct process request, keyed by [RequestKey].
	Served map[string]int
	// BatchRequests counts calls of the Batch API's endpoints; BatchPU is the PU
	// batch tiles were charged (in PUSpent too); BatchDeliveryErrors counts tiles
	// whose upload to the bucket failed.
	BatchRequests       int
	BatchPU             float64
	BatchDeliveryErrors int
	// BatchCreated counts batch requests created (201), BatchStops the stop
	// calls accepted (204), BatchTilesDelivered the tiles whose outputs were
	// written to the bucket.
	BatchCreated, BatchStops, BatchTilesDelivered int
}

// RecordedRequest is one API request as [Server.Requests] reports it.
type RecordedRequest struct {
	// Time is when it was answered (Config.Now).
	Time time.Time
	// Path is the URL path.
	Path string
	// Status is the HTTP status answered.
	Status int
	// PU is the PU charged (0 unless a process request succeeded).
	PU float64
	// Key is the [RequestKey] of a process request, "" otherwise.
	Key string
}

// Server is a simulated Sentinel Hub. It is an http.Handler; [NewServer] also runs
// it on a local port.
type Server struct {
	cfg Config
	ts  *httptest.Server

	forbidden map[string]bool // Config.ForbiddenCollections

	mu          sync.Mutex
	rng         *rand.Rand
	faults      Faults
	buckets     []*bucket
	tokenBucket *bucket
	tokens      map[string]issuedToken // access token -> what it grants
	jti         uint64
	share       float64 // external load
	monthlyPU   float64
	month       string // "2006-01" of monthSpent
	monthSpent  float64
	stats       Stats
	recorded    []RecordedRequest
	mux         *http.ServeMux
	batches     map[string]*batchTask
	batchOrder  []string
	batchStuck  map[string]int
	batchHold   map[string]bool // tiles kept PROCESSING (SetBatchHold)
	holdAnalyse bool            // requests kept ANALYSING (HoldBatchAnalysis)
}

var _ http.Handler = (*Server)(nil)

// issuedToken is what the simulator knows of an access token it issued.
type issuedToken struct {
	exp time.Time
	sub string
}

// NewServer starts a simulator on 127.0.0.1; Close stops it. It panics on an
// invalid Config: a policy of a kind other than "requests"/"pu" or with a capacity
// or period <= 0, an ExternalLoad outside 0..1, a negative MonthlyPU.
func NewServer(cfg Config) *Server {
	s := NewHandler(cfg)
	s.ts = httptest.NewServer(s)
	return s
}

// NewHandler returns a simulator that is not started: serve it with any
// http.Server (as cmd/shsim does). URL returns "" for it. It panics on an invalid
// Config, like [NewServer].
func NewHandler(cfg Config) *Server {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		panic(err)
	}
	s := &Server{
		cfg:        cfg,
		forbidden:  map[string]bool{},
		tokens:     map[string]issuedToken{},
		batches:    map[string]*batchTask{},
		batchStuck: map[string]int{},
		batchHold:  map[string]bool{},
		monthlyPU:  cfg.MonthlyPU,
		share:      cfg.ExternalLoad,
		stats: Stats{
			RequestsByStatus:    map[int]int{},
			RateLimitedByPolicy: map[string]int{},
			MaxWindowLoad:       map[string]float64{},
			ExternalUnits:       map[string]float64{},
			Served:              map[string]int{},
		},
	}
	maps.Copy(s.batchStuck, cfg.BatchStuck)
	for _, c := range cfg.ForbiddenCollections {
		s.forbidden[c] = true
	}
	now := cfg.Now()
	if cfg.TokenRequestsPerMinute > 0 {
		s.tokenBucket = newBucket(Policy{Kind: KindRequests, Capacity: float64(cfg.TokenRequestsPerMinute), Period: time.Minute}, now)
	}
	s.SetPolicies(cfg.Policies)
	s.SetFaults(cfg.Faults)
	s.mux = http.NewServeMux()
	s.mux.HandleFunc("POST "+TokenPath, s.handleToken)
	s.mux.HandleFunc("POST /oauth/token", s.handleToken)
	for dep, prefix := range map[string]string{deployMain: "", deployUSWest: USWestPrefix} {
		process, catalog := s.processHandler(dep), s.catalogHandler(dep)
		s.mux.HandleFunc("POST "+prefix+ProcessPath, process)
		s.mux.HandleFunc("POST "+prefix+"/process/v1", process)
		s.mux.HandleFunc("POST "+prefix+CatalogSearchPath, catalog)
		s.mux.HandleFunc("POST "+prefix+"/catalog/v1/search", catalog)
		s.mux.HandleFunc("GET "+prefix+RateLimitContractPath, s.handleContract)
		s.mux.HandleFunc("GET "+prefix+RateLimitStatisticsPath+"{user}", s.handleTokenCounts)
		s.registerBatch(prefix, dep)
	}
	return s
}

// ServeHTTP answers one request like Sentinel Hub would.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.sleep()
	s.mux.ServeHTTP(w, r)
}

// URL is the base URL of a server started by [NewServer], e.g.
// "http://127.0.0.1:41234"; "" for [NewHandler].
func (s *Server) URL() string {
	if s.ts == nil {
		return ""
	}
	return s.ts.URL
}

// Close stops a server started by [NewServer]; it is a no-op for [NewHandler].
func (s *Server) Close() {
	if s.ts != nil {
		s.ts.Close()
	}
}

// ClientConfig returns a sentinel.Config that talks to this server with its
// credentials: BaseURL = URL(), TokenURL = URL() + [TokenPath], and the US West
// deployment at URL() + [USWestPrefix].
func (s *Server) ClientConfig() sentinel.Config {
	return sentinel.Config{
		ClientID:     s.cfg.ClientID,
		ClientSecret: s.cfg.ClientSecret,
		BaseURL:      s.URL(),
		TokenURL:     s.URL() + TokenPath,
		Deployments:  map[string]string{sentinel.DeploymentUSWest: s.URL() + USWestPrefix},
	}
}

// UserID is the account's user id, the "sub" claim of its tokens.
func (s *Server) UserID() string { return s.cfg.UserID }

// Stats returns a snapshot of the counters; safe for concurrent use.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.RequestsByStatus = cloneMap(s.stats.RequestsByStatus)
	st.RateLimitedByPolicy = cloneMap(s.stats.RateLimitedByPolicy)
	st.Served = cloneMap(s.stats.Served)
	now := s.cfg.Now()
	st.MaxWindowLoad = map[string]float64{}
	st.ExternalUnits = map[string]float64{}
	for _, b := range s.buckets {
		b.refill(now)
		st.MaxWindowLoad[b.pol.Key()] = b.maxLoad
		st.ExternalUnits[b.pol.Key()] = b.external
	}
	for k, v := range s.stats.MaxWindowLoad { // policies removed by SetPolicies
		if _, ok := st.MaxWindowLoad[k]; !ok {
			st.MaxWindowLoad[k] = v
		}
	}
	for k, v := range s.stats.ExternalUnits {
		if _, ok := st.ExternalUnits[k]; !ok {
			st.ExternalUnits[k] = v
		}
	}
	s.rollMonth(now)
	st.MonthlyPUSpent = s.monthSpent
	return st
}

// Requests returns the newest recorded API requests, oldest first.
func (s *Server) Requests() []RecordedRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]RecordedRequest(nil), s.recorded...)
}

func cloneMap[K comparable, V any](m map[K]V) map[K]V {
	out := make(map[K]V, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// SetMonthlyPU changes the monthly PU budget (0 = unlimited); what was spent this
// month stays spent.
func (s *Server) SetMonthlyPU(pu float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.monthlyPU = pu
}

// SetPolicies replaces the rate-limit policies. A policy with the same key as an
// existing one keeps its bucket level (capped at the new capacity), its window
// record and what the other client took; new policies start full. It panics on an
// invalid policy.
func (s *Server) SetPolicies(ps []Policy) {
	now := s.cfg.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	old := map[string]*bucket{}
	for _, b := range s.buckets {
		b.refill(now)
		old[b.pol.Key()] = b
		s.stats.MaxWindowLoad[b.pol.Key()] = b.maxLoad
		s.stats.ExternalUnits[b.pol.Key()] = b.external
	}
	s.buckets = nil
	for _, p := range ps {
		if err := p.validate(); err != nil {
			panic(err)
		}
		if b, ok := old[p.Key()]; ok {
			b.pol = p
			b.tokens = min(b.tokens, p.Capacity)
			s.buckets = append(s.buckets, b)
			continue
		}
		b := newBucket(p, now)
		b.share = s.share
		s.buckets = append(s.buckets, b)
	}
}

// SetExternalLoad changes the share (0..1) of every rate policy's refill that
// another client of the account takes from now on (see Config.ExternalLoad). What
// it took so far stays taken. It panics on a share outside 0..1.
func (s *Server) SetExternalLoad(share float64) {
	if err := validShare(share); err != nil {
		panic(fmt.Errorf("sentineltest: SetExternalLoad: %w", err))
	}
	now := s.cfg.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.share = share
	for _, b := range s.buckets {
		b.setShare(now, share)
	}
}

// SetFaults replaces the fault settings and reseeds the fault RNG.
func (s *Server) SetFaults(f Faults) {
	s.mu.Lock()
	defer s.mu.Unlock()
	seed := uint64(f.Seed)
	if seed == 0 {
		seed = 1
	}
	s.faults = f
	s.rng = rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

// ExpireTokens revokes every token issued so far: API calls with them get 401.
func (s *Server) ExpireTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.tokens)
}

func (s *Server) sleep() {
	s.mu.Lock()
	d := s.faults.Latency
	if j := s.faults.LatencyJitter; j > 0 {
		d += time.Duration(s.rng.Int64N(int64(j) + 1))
	}
	s.mu.Unlock()
	if d > 0 {
		time.Sleep(d)
	}
}

// rollMonth resets the monthly spend when the calendar month (UTC) changed. Call with mu held.
func (s *Server) rollMonth(now time.Time) {
	m := now.UTC().Format("2006-01")
	if m != s.month {
		s.month = m
		s.monthSpent = 0
	}
}

// record counts one API answer. Call with mu held.
func (s *Server) record(now time.Time, path string, status int, pu float64, key string) {
	s.stats.RequestsByStatus[status]++
	if s.cfg.MaxRecordedRequests < 0 {
		return
	}
	s.recorded = append(s.recorded, RecordedRequest{Time: now, Path: path, Status: status, PU: pu, Key: key})
	if n := len(s.recorded) - s.cfg.MaxRecordedRequests; n > 0 {
		s.recorded = append(s.recorded[:0], s.recorded[n:]...)
	}
}

// apiError is the Process API's (and most services') JSON error body, schema
// RestErrorWrapper: {"error": Boom{status, reason, message, code}}.
type apiError struct {
	Error apiErrorBody `json:"error"`
}

type apiErrorBody struct {
	Status  int    `json:"status"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
	Code    string `json:"code"`
}

// catalogError is the Catalog API's error body, schema CatalogException:
// {"code", "description"}. The schema types code as a string; the service sends
// the HTTP status as a number ({"code": 404, "description": "Collection not
// found."} in public bug reports), and so does the simulator.
type catalogError struct {
	Code        int    `json:"code"`
	Description string `json:"description"`
}

// errorShape says which API's error body to write.
type errorShape int

const (
	shapeProcess errorShape = iota // RestErrorWrapper
	shapeCatalog                   // CatalogException
)

// failure is an error answer decided before the lock is taken.
type failure struct {
	status int
	code   string // the Process API code, e.g. COMMON_BAD_PAYLOAD
	msg    string
}

func badRequest(msg string) *failure {
	return &failure{http.StatusBadRequest, "COMMON_BAD_PAYLOAD", msg}
}

// writeFailure writes an error in the shape of the API.
func writeFailure(w http.ResponseWriter, shape errorShape, status int, code, msg string) {
	if shape == shapeCatalog {
		writeJSON(w, status, "application/json", catalogError{Code: status, Description: msg})
		return
	}
	writeError(w, status, code, msg)
}

// marshal is json.Marshal without HTML escaping (the service writes "<id>",
// not "\u003cid\u003e").
func marshal(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

func writeJSON(w http.ResponseWriter, status int, contentType string, v any) {
	b := marshal(v)
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, "application/json", apiError{Error: apiErrorBody{
		Status: status, Reason: http.StatusText(status), Message: msg, Code: code,
	}})
}

// admission is the outcome of checking one request against every policy.
type admission struct {
	ok bool
	// reqWait and puWait are the waits of the request and PU policies (0 if fine).
	reqWait, puWait time.Duration
	// reqRemaining and puRemaining are the levels of the tightest buckets of each
	// kind (-1 when there is no policy of that kind).
	reqRemaining, puRemaining float64
	violated                  *Policy
}

// check refills every bucket and says whether a request costing 1 request and pu
// PU passes all of them. It charges nothing. Call with mu held.
func (s *Server) check(now time.Time, pu float64) admission {
	a := admission{ok: true, reqRemaining: -1, puRemaining: -1}
	var worst time.Duration = -1
	for _, b := range s.buckets {
		b.refill(now)
		cost := 1.0
		if b.pol.Kind == KindPU {
			cost = pu
			if a.puRemaining < 0 || b.tokens < a.puRemaining {
				a.puRemaining = b.tokens
			}
		} else if a.reqRemaining < 0 || b.tokens < a.reqRemaining {
			a.reqRemaining = b.tokens
		}
		if b.admits(cost) {
			continue
		}
		a.ok = false
		wt := b.wait(cost)
		if b.pol.Kind == KindPU {
			a.puWait = max(a.puWait, wt)
		} else {
			a.reqWait = max(a.reqWait, wt)
		}
		if wt > worst {
			worst = wt
			p := b.pol
			a.violated = &p
		}
	}
	return a
}

// charge takes 1 request unit and pu PU from every bucket. Call with mu held after
// a successful check at the same now.
func (s *Server) charge(now time.Time, pu float64) {
	for _, b := range s.buckets {
		if b.pol.Kind == KindPU {
			b.charge(now, pu)
		} else {
			b.charge(now, 1)
		}
	}
}

// remainingHeaders sets the X-*-Remaining headers (HeadersLegacy only). Call with mu held.
func (s *Server) remainingHeaders(h http.Header, a admission) {
	if s.cfg.HeaderMode != HeadersLegacy {
		return
	}
	if a.reqRemaining >= 0 {
		h.Set("X-RateLimit-Remaining", strconvFloat1(a.reqRemaining))
	}
	if a.puRemaining >= 0 {
		h.Set("X-ProcessingUnits-Remaining", puString(a.puRemaining))
	}
}

// levels reports the current bucket levels for the success headers. Call with mu held.
func (s *Server) levels() admission {
	a := admission{reqRemaining: -1, puRemaining: -1}
	for _, b := range s.buckets {
		if b.pol.Kind == KindPU {
			if a.puRemaining < 0 || b.tokens < a.puRemaining {
				a.puRemaining = b.tokens
			}
		} else if a.reqRemaining < 0 || b.tokens < a.reqRemaining {
			a.reqRemaining = b.tokens
		}
	}
	return a
}

// reject429 writes a rate-limited answer with the headers of the mode. Call with mu held.
func (s *Server) reject429(w http.ResponseWriter, shape errorShape, a admission) {
	h := w.Header()
	switch s.cfg.HeaderMode {
	case HeadersLegacy:
		h.Set("Retry-After", ms(a.reqWait))
		h.Set("X-ProcessingUnits-Retry-After", ms(a.puWait))
		s.remainingHeaders(h, a)
		if a.violated != nil {
			vp, _ := json.Marshal(struct {
				SamplingPeriod string  `json:"samplingPeriod"`
				Capacity       float64 `json:"capacity"`
			}{ISOPeriod(a.violated.Period), a.violated.Capacity})
			h.Set("X-RateLimit-ViolatedPolicy", string(vp))
		}
	case HeadersRetryAfterOnly:
		h.Set("Retry-After", ms(max(a.reqWait, a.puWait)))
	}
	s.stats.RateLimited++
	if a.violated != nil {
		s.stats.RateLimitedByPolicy[a.violated.Key()]++
	}
	writeFailure(w, shape, http.StatusTooManyRequests, "RATE_LIMIT_EXCEEDED",
		"You have exceeded your rate limit")
}

// authorized checks the Bearer token and returns the user it was issued to. Call
// with mu held.
func (s *Server) authorized(r *http.Request, now time.Time) (sub string, ok bool) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || tok == "" {
		return "", false
	}
	it, ok := s.tokens[strings.TrimSpace(tok)]
	if !ok || !now.Before(it.exp) {
		return "", false
	}
	return it.sub, true
}

// unauthorizedMessage is the text of every 401.
const unauthorizedMessage = "Token is missing, invalid, expired or revoked: get a new one from the token endpoint"

func (s *Server) unauthorized(w http.ResponseWriter, shape errorShape, now time.Time, path string) {
	s.stats.Unauthorized++
	s.record(now, path, http.StatusUnauthorized, 0, "")
	writeFailure(w, shape, http.StatusUnauthorized, "COMMON_UNAUTHORIZED", unauthorizedMessage)
}

// denied counts and writes a 403 for a forbidden collection. Call with mu held.
func (s *Server) denied(w http.ResponseWriter, shape errorShape, now time.Time, path string, f *failure) {
	s.stats.PermissionDenied++
	s.record(now, path, f.status, 0, "")
	writeFailure(w, shape, f.status, f.code, f.msg)
}

// forbiddenFailure is the 403 for a collection the account may not read, nil if
// it may.
func (s *Server) forbiddenFailure(collection string) *failure {
	if !s.forbidden[collection] {
		return nil
	}
	return &failure{http.StatusForbidden, "COMMON_INSUFFICIENT_PERMISSIONS", fmt.Sprintf(
		"Insufficient permissions: this account may not access collection %q; ask the collection's owner to share it, or use another account", collection)}
}

// fault rolls the fault dice: it returns fail503, truncate. Call with mu held.
func (s *Server) fault() (fail503, truncate bool) {
	if s.faults.Error5xxRate > 0 && s.rng.Float64() < s.faults.Error5xxRate {
		return true, false
	}
	if s.faults.TruncateRate > 0 && s.rng.Float64() < s.faults.TruncateRate {
		return false, true
	}
	return false, false
}

// writeBody writes a successful answer: full Content-Length, and on truncate only
// half the body before the connection is dropped.
func writeBody(w http.ResponseWriter, contentType string, body []byte, truncate bool) {
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if !truncate {
		_, _ = w.Write(body)
		return
	}
	_, _ = w.Write(body[:len(body)/2])
	_ = http.NewResponseController(w).Flush()
	// Aborting the handler makes net/http close the connection without logging:
	// the client sees fewer bytes than Content-Length (io.ErrUnexpectedEOF).
	panic(http.ErrAbortHandler)
}
