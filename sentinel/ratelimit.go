package sentinel

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strings"
)

// Paths of the account's rate-limit information (the endpoints Sentinel Hub's own
// rate-limiting-guard reads), relative to the main deployment's BaseURL.
const (
	// RateLimitContractPath lists the account's policies: ?userId=eq:<sub>.
	RateLimitContractPath = "/aux/ratelimit/contract"
	// RateLimitTokenCountsPath + <sub> gives the units remaining now per policy.
	RateLimitTokenCountsPath = "/aux/ratelimit/statistics/tokenCounts/"
)

// Policy types of the rate-limit contract.
const (
	// PolicyTypeRequests counts requests.
	PolicyTypeRequests = "REQUESTS"
	// PolicyTypeProcessingUnits counts processing units.
	PolicyTypeProcessingUnits = "PROCESSING_UNITS"
)

// TokenCounts are the units remaining now: policy type -> sampling period ->
// units, e.g. counts["PROCESSING_UNITS"]["PT744H"].
type TokenCounts map[string]map[string]float64

// RateLimitService reads the account's published rate-limit contract and the
// units it has left, for the user of the client's token (the JWT sub claim).
type RateLimitService struct {
	client *Client
}

// Contract returns the account's policies. A deployment that does not publish
// them answers an [*APIError] with Status 404 (or a [*ForbiddenError]).
func (s *RateLimitService) Contract(ctx context.Context) ([]Policy, error) {
	sub, err := s.subject(ctx)
	if err != nil {
		return nil, fmt.Errorf("rate-limit contract: %w", err)
	}
	var doc struct {
		Data []struct {
			Type struct {
				Name string `json:"name"`
			} `json:"type"`
			Policies []struct {
				Capacity            json.Number `json:"capacity"`
				SamplingPeriod      string      `json:"samplingPeriod"`
				NanosBetweenRefills json.Number `json:"nanosBetweenRefills"`
			} `json:"policies"`
		} `json:"data"`
	}
	if err := s.get(ctx, RateLimitContractPath+"?userId="+url.QueryEscape("eq:"+sub), &doc); err != nil {
		return nil, fmt.Errorf("rate-limit contract: %w", err)
	}
	var out []Policy
	for i, d := range doc.Data {
		for j, p := range d.Policies {
			c, err := p.Capacity.Float64()
			if err != nil || math.IsNaN(c) || math.IsInf(c, 0) || c <= 0 {
				return nil, fmt.Errorf("rate-limit contract: data[%d].policies[%d].capacity %q is not a positive number", i, j, p.Capacity)
			}
			n, _ := p.NanosBetweenRefills.Int64()
			out = append(out, Policy{Type: d.Type.Name, Capacity: c, SamplingPeriod: p.SamplingPeriod, NanosBetweenRefills: n})
		}
	}
	return out, nil
}

// TokenCounts returns the units the account has left now in each policy.
func (s *RateLimitService) TokenCounts(ctx context.Context) (TokenCounts, error) {
	sub, err := s.subject(ctx)
	if err != nil {
		return nil, fmt.Errorf("rate-limit counts: %w", err)
	}
	var doc struct {
		Data map[string]map[string]json.Number `json:"data"`
	}
	if err := s.get(ctx, RateLimitTokenCountsPath+url.PathEscape(sub), &doc); err != nil {
		return nil, fmt.Errorf("rate-limit counts: %w", err)
	}
	out := TokenCounts{}
	for typ, periods := range doc.Data {
		out[typ] = map[string]float64{}
		for period, n := range periods {
			f, err := n.Float64()
			if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
				return nil, fmt.Errorf("rate-limit counts: data.%s.%s %q is not a number", typ, period, n)
			}
			out[typ][period] = f
		}
	}
	return out, nil
}

// subject is the JWT sub claim of the client's current token: the user the
// account's rate limits belong to.
func (s *RateLimitService) subject(ctx context.Context) (string, error) {
	tok, err := s.client.token(ctx)
	if err != nil {
		return "", err
	}
	sub, ok := JWTSubject(tok.AccessToken)
	if !ok {
		return "", errors.New("the access token is not a JWT with a sub claim; cannot name the account's user")
	}
	return sub, nil
}

func (s *RateLimitService) get(ctx context.Context, pathAndQuery string, v any) error {
	resp, err := s.client.send(ctx, http.MethodGet, DeploymentMain, pathAndQuery, nil, "application/json")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("decode answer: %w", err)
	}
	return nil
}

// JWTSubject reads the sub claim of a JWT access token WITHOUT verifying its
// signature. ok is false when the token is not a JWT or has no string sub.
func JWTSubject(accessToken string) (string, bool) {
	parts := strings.Split(accessToken, ".")
	if len(parts) != 3 {
		return "", false
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return "", false
	}
	var claims struct {
		Sub string `json:"sub"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil || claims.Sub == "" {
		return "", false
	}
	return claims.Sub, true
}
