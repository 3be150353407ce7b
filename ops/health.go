package ops

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/redis/go-redis/v9"

	"shfleet/quota"
)

// HealthTimeout bounds the Redis calls of one health check.
const HealthTimeout = 2 * time.Second

// Token states reported by /healthz.
const (
	// TokenValid: the fleet's shared token is in Redis and not expired.
	TokenValid = "valid"
	// TokenRefreshing: a process holds the refresh lock (a token may also be valid).
	TokenRefreshing = "refreshing"
	// TokenMissing: no shared token; the next request fetches one.
	TokenMissing = "missing"
	// TokenFailing: no token and the last refresh failed (see error_status).
	TokenFailing = "failing"
	// TokenUnknown: Config.Account is not set, or Redis is unreachable.
	TokenUnknown = "unknown"
)

// Health is the body of /healthz. It never contains the token.
type Health struct {
	// Status is "ok" or "error" (HTTP 200 or 503).
	Status string `json:"status"`
	// Redis is "ok" or the error of a PING.
	Redis string `json:"redis"`
	// Token is the state of the fleet's shared Sentinel Hub token.
	Token TokenHealth `json:"token"`
}

// TokenHealth is the shared token's state.
type TokenHealth struct {
	// State is one of TokenValid, TokenRefreshing, TokenMissing, TokenFailing,
	// TokenUnknown.
	State string `json:"state"`
	// ExpiresIn is the token's remaining lifetime ("59m12s"), when there is one.
	ExpiresIn string `json:"expires_in,omitempty"`
	// ExpiresInSeconds is the same in seconds.
	ExpiresInSeconds float64 `json:"expires_in_seconds,omitempty"`
	// ErrorStatus is the HTTP status of the last failed refresh (TokenFailing),
	// 0 when it was not an HTTP answer.
	ErrorStatus int `json:"error_status,omitempty"`
}

// checkHealth pings Redis and reads the shared token's status
// (quota.ReadTokenStatus: key metadata only, never the token).
func checkHealth(ctx context.Context, rdb redis.UniversalClient, prefix, account string) Health {
	ctx, cancel := context.WithTimeout(ctx, HealthTimeout)
	defer cancel()
	h := Health{Status: "ok", Redis: "ok", Token: TokenHealth{State: TokenUnknown}}
	if err := rdb.Ping(ctx).Err(); err != nil {
		h.Status, h.Redis = "error", "unreachable: "+err.Error()
		return h
	}
	if account == "" {
		return h
	}
	st, err := quota.ReadTokenStatus(ctx, rdb, prefix, account)
	if err != nil {
		h.Status, h.Redis = "error", "token check failed: "+err.Error()
		return h
	}
	switch {
	case st.Present:
		h.Token.State = TokenValid
		h.Token.ExpiresIn = st.ExpiresIn.Round(time.Second).String()
		h.Token.ExpiresInSeconds = st.ExpiresIn.Round(time.Millisecond).Seconds()
	case st.Failing:
		h.Token.State, h.Token.ErrorStatus = TokenFailing, st.FailedStatus
	default:
		h.Token.State = TokenMissing
	}
	if st.Refreshing {
		h.Token.State = TokenRefreshing
	}
	return h
}

func (h *Handler) serveHealth(w http.ResponseWriter, r *http.Request) {
	hl := checkHealth(r.Context(), h.cfg.Redis, h.cfg.Prefix, h.cfg.Account)
	code := http.StatusOK
	if hl.Status != "ok" {
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, hl)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
