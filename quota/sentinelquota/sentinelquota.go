// Package sentinelquota adapts package sentinel's client to package quota's
// own types, so that quota's budget never takes the HTTP client's errors: the
// account's published contract and counts (Account), one token request per
// call for the shared token source (Upstream), and a 429 as the limiter's
// observation (RateLimit).
package sentinelquota

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"golang.org/x/oauth2"

	"shfleet/quota"
	"shfleet/sentinel"
)

// Upstream returns a quota.TokenConfig.Upstream that sends one token request
// per call with sentinel.FetchToken (errors are *sentinel.TokenError). Unlike
// sentinel.NewTokenSource it does not cache, so an invalidated token is really
// replaced.
func Upstream(cfg sentinel.Config) oauth2.TokenSource { return upstream{cfg: cfg} }

type upstream struct{ cfg sentinel.Config }

func (u upstream) Token() (*oauth2.Token, error) {
	return sentinel.FetchToken(context.Background(), u.cfg)
}

func (u upstream) TokenContext(ctx context.Context) (*oauth2.Token, error) {
	return sentinel.FetchToken(ctx, u.cfg)
}

// RateLimit converts a 429 into the limiter's own observation type, for
// [quota.Limiter.Observe429].
func RateLimit(e *sentinel.RateLimitError) quota.RateLimit {
	r := quota.RateLimit{RetryAfter: e.RetryAfter, HasRetryAfter: e.HasRetryAfter,
		PURetryAfter: e.PURetryAfter, HasPURetryAfter: e.HasPURetryAfter}
	if p := e.Policy; p != nil {
		kind, _ := kindOf(p.Type)
		r.Policy = &quota.Policy{Kind: kind, Capacity: p.Capacity, Period: p.Period()}
	}
	return r
}

// Account returns the quota.AccountAPI of Sentinel Hub's published rate-limit
// contract and counts (GET /aux/ratelimit/...), read through rl (a client with
// the fleet's shared token). A deployment without them (404, 403) answers
// quota.quota.ErrAccountAPIUnavailable.
func Account(rl *sentinel.RateLimitService) quota.AccountAPI { return sentinelAccount{rl: rl} }

type sentinelAccount struct {
	rl *sentinel.RateLimitService
}

// Contract returns the account's policies in quota's terms.
func (a sentinelAccount) Contract(ctx context.Context) ([]quota.Policy, error) {
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
func (a sentinelAccount) Remaining(ctx context.Context) ([]quota.Level, error) {
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
