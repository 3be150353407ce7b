package quota

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"shfleet/sentinel"
)

// SentinelAccount returns the AccountAPI of Sentinel Hub's published rate-limit
// contract and counts (GET /aux/ratelimit/...), read through rl (a client with
// the fleet's shared token). A deployment without them (404, 403) answers
// ErrAccountAPIUnavailable. Like SentinelUpstream, it adapts the client to
// quota's own types.
func SentinelAccount(rl *sentinel.RateLimitService) AccountAPI { return sentinelAccount{rl: rl} }

type sentinelAccount struct {
	rl *sentinel.RateLimitService
}

// Contract returns the account's policies in quota's terms.
func (a sentinelAccount) Contract(ctx context.Context) ([]Policy, error) {
	cps, err := a.rl.Contract(ctx)
	if err != nil {
		return nil, unavailable(err)
	}
	out := make([]Policy, 0, len(cps))
	for _, cp := range cps {
		kind, ok := kindOf(cp.Type)
		if !ok {
			continue // a policy type the limiter does not meter
		}
		d, err := ParsePeriod(cp.SamplingPeriod)
		if err != nil {
			return nil, fmt.Errorf("rate-limit contract: %s policy: %w", cp.Type, err)
		}
		out = append(out, Policy{Kind: kind, Capacity: cp.Capacity, Period: d})
	}
	return out, nil
}

// Remaining returns the units the account has left now, per policy.
func (a sentinelAccount) Remaining(ctx context.Context) ([]Level, error) {
	counts, err := a.rl.TokenCounts(ctx)
	if err != nil {
		return nil, unavailable(err)
	}
	var out []Level
	for typ, periods := range counts {
		kind, ok := kindOf(typ)
		if !ok {
			continue
		}
		for name, units := range periods {
			d, err := ParsePeriod(name)
			if err != nil {
				return nil, fmt.Errorf("rate-limit counts: %s %s: %w", typ, name, err)
			}
			out = append(out, Level{Kind: kind, Period: d, Remaining: units})
		}
	}
	return out, nil
}

func kindOf(typ string) (PolicyKind, bool) {
	switch typ {
	case sentinel.PolicyTypeRequests:
		return Requests, true
	case sentinel.PolicyTypeProcessingUnits:
		return PU, true
	}
	return "", false
}

// unavailable marks the answers of a deployment that does not publish the
// rate-limit API (404, 403) so the limiter falls back instead of retrying.
func unavailable(err error) error {
	var api *sentinel.APIError
	var fb *sentinel.ForbiddenError
	if (errors.As(err, &api) && (api.Status == http.StatusNotFound || api.Status == http.StatusMethodNotAllowed)) || errors.As(err, &fb) {
		return fmt.Errorf("%w: %w", ErrAccountAPIUnavailable, err)
	}
	return err
}
