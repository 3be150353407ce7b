package sentineltest

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"
)

// tokenError is the OAuth error body of the token endpoint.
type tokenError struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

// tokenResponse is the token endpoint's success body.
type tokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in"`
}

func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	now := s.cfg.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.TokenRequests++
	if b := s.tokenBucket; b != nil {
		b.refill(now)
		if !b.admits(1) {
			s.stats.TokenRateLimited++
			if s.cfg.HeaderMode != HeadersNone {
				w.Header().Set("Retry-After", ms(b.wait(1)))
			}
			writeJSON(w, http.StatusTooManyRequests, "application/json", tokenError{
				Error:       "too_many_requests",
				Description: "Too many token requests: reuse the access token until it expires",
			})
			return
		}
		b.charge(now, 1)
	}
	if err := r.ParseForm(); err != nil {
		writeJSON(w, http.StatusBadRequest, "application/json", tokenError{"invalid_request", "cannot parse the form body: " + err.Error()})
		return
	}
	if gt := r.PostForm.Get("grant_type"); gt != "client_credentials" {
		writeJSON(w, http.StatusBadRequest, "application/json", tokenError{"unsupported_grant_type",
			fmt.Sprintf("grant_type %q is not supported: use client_credentials", gt)})
		return
	}
	id, secret := r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	if bid, bsecret, ok := r.BasicAuth(); ok {
		id, secret = bid, bsecret
	}
	if subtle.ConstantTimeCompare([]byte(id), []byte(s.cfg.ClientID)) != 1 ||
		subtle.ConstantTimeCompare([]byte(secret), []byte(s.cfg.ClientSecret)) != 1 {
		writeJSON(w, http.StatusUnauthorized, "application/json", tokenError{"invalid_client", "Invalid client or Invalid client credentials"})
		return
	}
	s.jti++
	exp := now.Add(s.cfg.TokenTTL)
	tok := makeJWT(s.cfg.UserID, now, exp, s.jti)
	s.tokens[tok] = issuedToken{exp: exp, sub: s.cfg.UserID}
	s.stats.TokensIssued++
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, "application/json", tokenResponse{
		AccessToken: tok,
		TokenType:   "Bearer",
		ExpiresIn:   int64(math.Round(s.cfg.TokenTTL.Seconds())),
	})
}

// makeJWT builds an unsigned but well-formed JWT (three base64url parts; the
// "signature" is a hash, not a real signature) for user sub.
func makeJWT(sub string, iat, exp time.Time, jti uint64) string {
	enc := base64.RawURLEncoding
	header, _ := json.Marshal(map[string]string{"alg": "none", "typ": "JWT"})
	payload, _ := json.Marshal(map[string]any{
		"sub": sub,
		"iat": iat.Unix(),
		"exp": exp.Unix(),
		"jti": fmt.Sprintf("%016x-%d", uint64(iat.UnixNano()), jti),
		"iss": "sentineltest",
		"typ": "Bearer",
	})
	unsigned := enc.EncodeToString(header) + "." + enc.EncodeToString(payload)
	sig := sha256.Sum256([]byte(unsigned))
	return unsigned + "." + enc.EncodeToString(sig[:])
}

func itoa(n int) string { return strconv.Itoa(n) }

// strconvFloat1 formats a remaining-requests count like the documented example
// ("287.0"): whole units available now, with one decimal.
func strconvFloat1(v float64) string {
	return strconv.FormatFloat(math.Floor(v+eps), 'f', 1, 64)
}
