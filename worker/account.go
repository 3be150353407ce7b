package worker

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"shfleet/quota"
	"shfleet/sentinel"
)

// accountAPI reads the account's published policies and counts through the
// Sentinel Hub client (and so through the fleet's shared token) for the limiter.
type accountAPI struct {
	rl *sentinel.RateLimitService
}

var _ quota.AccountAPI = accountAPI{}

// Contract returns the account's policies in quota's terms.
func (a accountAPI) Contract(ctx context.Context) ([]quota.Policy, error) {
	cps, err := a.rl.Contract(ctx)
	if err != nil {
		return nil, unavailable(err)
	}
	out := make([]quota.Policy, 0, len(cps))
	for _, cp := range cps {
		kind, ok := kindOf(cp.Type)
		if !ok {
			continue // a policy type the limiter does not meter
		}
		d, err := quota.ParsePeriod(cp.SamplingPeriod)
		if err != nil {
			return nil, fmt.Errorf("rate-limit contract: %s policy: %w", cp.Type, err)
		}
		out = append(out, quota.Policy{Kind: kind, Capacity: cp.Capacity, Period: d})
	}
	return out, nil
}

// Remaining returns the units the account has left now, per policy.
func (a accountAPI) Remaining(ctx context.Context) ([]quota.Level, error) {
	counts, err := a.rl.TokenCounts(ctx)
	if err != nil {
		return nil, unavailable(err)
	}
	var out []quota.Level
	for typ, periods := range counts {
		kind, ok := kindOf(typ)
		if !ok {
			continue
		}
		for name, units := range periods {
			d, err := quota.ParsePeriod(name)
			if err != nil {
				return nil, fmt.Errorf("rate-limit counts: %s %s: %w", typ, name, err)
			}
			out = append(out, quota.Level{Kind: kind, Period: d, Remaining: units})
		}
	}
	return out, nil
}

func kindOf(typ string) (quota.PolicyKind, bool) {
	switch typ {
	case sentinel.PolicyTypeRequests:
		return quota.Requests, true
	case sentinel.PolicyTypeProcessingUnits:
		return quota.PU, true
	}
	return "", false
}

// unavailable marks the answers of a deployment that does not publish the
// rate-limit API (404, 403) so the limiter falls back instead of retrying.
func unavailable(err error) error {
	var api *sentinel.APIError
	var fb *sentinel.ForbiddenError
	if (errors.As(err, &api) && (api.Status == http.StatusNotFound || api.Status == http.StatusMethodNotAllowed)) || errors.As(err, &fb) {
		return fmt.Errorf("%w: %w", quota.ErrAccountAPIUnavailable, err)
	}
	return err
}
