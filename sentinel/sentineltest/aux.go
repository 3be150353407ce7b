package sentineltest

import (
	"fmt"
	"math"
	"net/http"
	"strings"
	"time"
)

// The account's rate-limit endpoints, as Sentinel Hub's own rate-limiting guard
// reads them:
//
//	GET /aux/ratelimit/contract?userId=eq:<sub>
//	GET /aux/ratelimit/statistics/tokenCounts/<sub>
//
// <sub> is the access token's JWT sub claim. Both need a valid token, answer 403
// for another user's id, are neither rate limited nor charged, and answer 404
// when Config.NoRateLimitAPI is set.

// Policy type names of the contract.
const (
	contractRequests = "REQUESTS"
	contractPU       = "PROCESSING_UNITS"
)

// contractPolicy is one policy of the contract.
type contractPolicy struct {
	Capacity            float64 `json:"capacity"`
	SamplingPeriod      string  `json:"samplingPeriod"`
	NanosBetweenRefills int64   `json:"nanosBetweenRefills"`
}

// contractType is the policies of one kind.
type contractType struct {
	Type struct {
		Name string `json:"name"`
	} `json:"type"`
	Policies []contractPolicy `json:"policies"`
}

// contractBody is the contract endpoint's answer.
type contractBody struct {
	Data []contractType `json:"data"`
}

// tokenCountsBody is the statistics endpoint's answer: units left per type and
// sampling period.
type tokenCountsBody struct {
	Data map[string]map[string]float64 `json:"data"`
}

func contractPolicyOf(capacity float64, period time.Duration) contractPolicy {
	return contractPolicy{
		Capacity:            capacity,
		SamplingPeriod:      ISOPeriod(period),
		NanosBetweenRefills: int64(math.Round(float64(period) / capacity)),
	}
}

// contractTypeName is the contract's name of a policy kind.
func contractTypeName(kind string) string {
	if kind == KindPU {
		return contractPU
	}
	return contractRequests
}

// auxLocked does what both endpoints share: counting, the 404 of a deployment
// without them, the token check and the user check. It reports whether the
// caller may answer. Call with mu held.
func (s *Server) auxLocked(w http.ResponseWriter, r *http.Request, now time.Time, user string, userOK bool) bool {
	s.stats.AuxRequests++
	if s.cfg.NoRateLimitAPI {
		writeError(w, http.StatusNotFound, "COMMON_NOT_FOUND", "Not found: "+r.URL.Path+" is not served on this deployment")
		return false
	}
	sub, ok := s.authorized(r, now)
	if !ok {
		s.stats.Unauthorized++
		writeError(w, http.StatusUnauthorized, "COMMON_UNAUTHORIZED", unauthorizedMessage)
		return false
	}
	if !userOK {
		writeError(w, http.StatusBadRequest, "COMMON_BAD_PAYLOAD",
			"userId: want eq:<user id>, the sub claim of your access token")
		return false
	}
	if user != sub {
		writeError(w, http.StatusForbidden, "COMMON_INSUFFICIENT_PERMISSIONS", fmt.Sprintf(
			"Insufficient permissions: user %q may not read the rate limits of user %q; use the sub claim of your own access token", sub, user))
		return false
	}
	return true
}

func (s *Server) handleContract(w http.ResponseWriter, r *http.Request) {
	now := s.cfg.Now()
	user, userOK := strings.CutPrefix(r.URL.Query().Get("userId"), "eq:")
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.auxLocked(w, r, now, user, userOK && user != "") {
		return
	}
	body := contractBody{Data: []contractType{}}
	add := func(name string, p contractPolicy) {
		for i := range body.Data {
			if body.Data[i].Type.Name == name {
				body.Data[i].Policies = append(body.Data[i].Policies, p)
				return
			}
		}
		var t contractType
		t.Type.Name = name
		t.Policies = []contractPolicy{p}
		body.Data = append(body.Data, t)
	}
	for _, kind := range []string{KindRequests, KindPU} { // REQUESTS first, as the service lists them
		for _, b := range s.buckets {
			if b.pol.Kind == kind {
				add(contractTypeName(kind), contractPolicyOf(b.pol.Capacity, b.pol.Period))
			}
		}
	}
	if s.monthlyPU > 0 {
		add(contractPU, contractPolicyOf(s.monthlyPU, MonthPeriod))
	}
	writeJSON(w, http.StatusOK, "application/json", body)
}

func (s *Server) handleTokenCounts(w http.ResponseWriter, r *http.Request) {
	now := s.cfg.Now()
	user := r.PathValue("user")
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.auxLocked(w, r, now, user, user != "") {
		return
	}
	body := tokenCountsBody{Data: map[string]map[string]float64{}}
	put := func(name, period string, units float64) {
		if body.Data[name] == nil {
			body.Data[name] = map[string]float64{}
		}
		body.Data[name][period] = math.Round(units*1e6) / 1e6
	}
	for _, b := range s.buckets {
		b.refill(now)
		put(contractTypeName(b.pol.Kind), ISOPeriod(b.pol.Period), b.tokens)
	}
	if s.monthlyPU > 0 {
		s.rollMonth(now)
		put(contractPU, ISOPeriod(MonthPeriod), max(0, s.monthlyPU-s.monthSpent))
	}
	writeJSON(w, http.StatusOK, "application/json", body)
}
