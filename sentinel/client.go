package sentinel

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"golang.org/x/oauth2"
)

// Version is shfleet's version, sent in the User-Agent ("shfleet/<Version>"). Set
// it at build time with -ldflags "-X shfleet/sentinel.Version=1.2.3".
var Version = "dev"

// Client calls the Sentinel Hub APIs. Its services group the endpoints per API,
// like go-github: client.Catalog.Search, client.Process.Do. A Client is safe for
// concurrent use.
type Client struct {
	// Catalog is the Catalog API (STAC item search).
	Catalog *CatalogService
	// Process is the Process API.
	Process *ProcessService
	// RateLimit reads the account's published rate-limit policies and counts.
	RateLimit *RateLimitService
	// Batch is the Batch Processing API v2 (enterprise accounts).
	Batch *BatchService

	cfg Config
	ts  oauth2.TokenSource
}

// NewClient returns a client for cfg (zero fields take their defaults) that
// authenticates with the tokens of ts. A nil ts means NewTokenSource with a
// background context: fine for one process, but a fleet should pass a shared token
// source so workers do not each fetch tokens. Configuration errors surface as
// [*FieldError] from the first call.
func NewClient(cfg Config, ts oauth2.TokenSource) *Client {
	cfg = cfg.withDefaults()
	if ts == nil {
		ts = NewTokenSource(context.Background(), cfg)
	}
	c := &Client{cfg: cfg, ts: ts}
	c.Catalog = &CatalogService{client: c}
	c.Process = &ProcessService{client: c}
	c.RateLimit = &RateLimitService{client: c}
	c.Batch = &BatchService{client: c}
	return c
}

// Config returns the client's configuration with defaults applied (String
// redacts its secret).
func (c *Client) Config() Config { return c.cfg }

// ContextTokenSource is a token source whose fetch honours the caller's context
// (quota.SharedTokenSource is one). The client prefers it over Token, so a
// cancelled call does not wait for a token refresh.
type ContextTokenSource interface {
	TokenContext(ctx context.Context) (*oauth2.Token, error)
}

// token returns a token for one call, giving up when ctx ends even if the token
// source itself cannot be cancelled.
func (c *Client) token(ctx context.Context) (*oauth2.Token, error) {
	if cts, ok := c.ts.(ContextTokenSource); ok {
		return cts.TokenContext(ctx)
	}
	type result struct {
		tok *oauth2.Token
		err error
	}
	ch := make(chan result, 1)
	go func() {
		tok, err := c.ts.Token()
		ch <- result{tok, err}
	}()
	select {
	case r := <-ch:
		return r.tok, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// newRequest builds an authenticated request to u: a JSON body when body is not
// nil.
func (c *Client) newRequest(ctx context.Context, method, u string, body any, accept string) (*http.Request, error) {
	var rd io.Reader
	if body != nil {
		buf, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("encode request body: %w", err)
		}
		rd = bytes.NewReader(buf)
	}
	tok, err := c.token(ctx)
	if err != nil {
		return nil, err
	}
	if tok == nil || tok.AccessToken == "" {
		return nil, &TokenError{Err: fmt.Errorf("token source returned an empty access token")}
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", accept)
	req.Header.Set("User-Agent", c.cfg.UserAgent)
	return req, nil
}

// endpoint joins the base URL of a deployment ("" or [DeploymentMain] for
// BaseURL) and path.
func (c *Client) endpoint(deployment, path string) (string, error) {
	base, err := c.baseURL(deployment)
	if err != nil {
		return "", err
	}
	if !strings.HasPrefix(path, "/") {
		return "", &FieldError{Field: "APIPaths", Message: fmt.Sprintf("%q must start with /", path)}
	}
	u, _ := url.Parse(base)
	return strings.TrimSuffix(u.String(), "/") + path, nil
}

// baseURL is the base URL of a deployment (see [Config.DeploymentURL]).
func (c *Client) baseURL(deployment string) (string, error) { return c.cfg.DeploymentURL(deployment) }

// deploymentOf is the deployment serving collection id (main for unknown ones).
func deploymentOf(id string) string {
	if c, ok := LookupCollection(id); ok {
		return c.Deployment
	}
	return DeploymentMain
}

// Invalidator is implemented by token sources that can drop a token the API
// rejected (quota.SharedTokenSource does, compare-and-delete in Redis). When the
// client's token source implements it, a 401 invalidates exactly the rejected token
// and the request is retried once with a fresh one; a second 401 is returned as
// [*AuthError].
type Invalidator interface {
	Invalidate(ctx context.Context, accessToken string) error
}

// send builds, sends and (on a 401 with an [Invalidator] token source) retries a
// request to path on a deployment once, returning the 2xx response with its body open.
func (c *Client) send(ctx context.Context, method, deployment, path string, body any, accept string) (*http.Response, error) {
	u, err := c.endpoint(deployment, path)
	if err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		req, err := c.newRequest(ctx, method, u, body, accept)
		if err != nil {
			return nil, err
		}
		resp, err := c.do(req)
		var auth *AuthError
		inv, ok := c.ts.(Invalidator)
		if err == nil || attempt > 0 || !ok || !errors.As(err, &auth) {
			return resp, err
		}
		rejected := strings.TrimPrefix(req.Header.Get("Authorization"), "Bearer ")
		if ierr := inv.Invalidate(ctx, rejected); ierr != nil {
			return nil, errors.Join(err, fmt.Errorf("invalidate rejected token: %w", ierr))
		}
	}
}

// do sends req and returns the response of a 2xx answer with its body open; any
// other answer is turned into a typed error by ErrorFromResponse.
func (c *Client) do(req *http.Request) (*http.Response, error) {
	resp, err := c.cfg.HTTPClient.Do(req)
	if err != nil {
		if ctxErr := req.Context().Err(); ctxErr != nil {
			return nil, ctxErr
		}
		return nil, err
	}
	if err := ErrorFromResponse(resp); err != nil {
		return nil, err
	}
	return resp, nil
}
