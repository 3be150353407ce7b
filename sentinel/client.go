package sentinel

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
	return c
}

// Config returns the client's configuration with defaults applied (String
// redacts its secret).
func (c *Client) Config() Config { return c.cfg }

// newRequest builds an authenticated JSON POST to path (relative to BaseURL).
func (c *Client) newRequest(ctx context.Context, path string, body any, accept string) (*http.Request, error) {
	u, err := c.endpoint(path)
	if err != nil {
		return nil, err
	}
	buf, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("encode request body: %w", err)
	}
	tok, err := c.ts.Token()
	if err != nil {
		return nil, err
	}
	if tok == nil || tok.AccessToken == "" {
		return nil, &TokenError{Err: fmt.Errorf("token source returned an empty access token")}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(buf))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", accept)
	req.Header.Set("User-Agent", c.cfg.UserAgent)
	return req, nil
}

// endpoint joins BaseURL and path.
func (c *Client) endpoint(path string) (string, error) {
	if err := checkURL(c.cfg.BaseURL); err != nil {
		return "", &FieldError{Field: "BaseURL", Message: err.Error()}
	}
	if !strings.HasPrefix(path, "/") {
		return "", &FieldError{Field: "APIPaths", Message: fmt.Sprintf("%q must start with /", path)}
	}
	base, _ := url.Parse(c.cfg.BaseURL)
	return strings.TrimSuffix(base.String(), "/") + path, nil
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
// JSON POST once, returning the 2xx response with its body open.
func (c *Client) send(ctx context.Context, path string, body any, accept string) (*http.Response, error) {
	for attempt := 0; ; attempt++ {
		req, err := c.newRequest(ctx, path, body, accept)
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
