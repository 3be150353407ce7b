package sentinel

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math"
	"net/url"
	"strings"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// MaxTokenErrorBody is the longest token-endpoint answer kept in a [TokenError].
const MaxTokenErrorBody = 512

// FetchToken makes ONE client-credentials token request with cfg (no caching).
// A failure is always a [*TokenError] carrying the endpoint's real HTTP status,
// Retry-After (read as milliseconds, like the rest of Sentinel Hub) and truncated
// body; a network failure has Status 0 and wraps the cause. The token's Expiry
// comes from expires_in, or from the JWT exp claim when expires_in is absent.
//
// Fleets should not call this per worker: token requests are rate limited. Share
// one token (see package quota).
func FetchToken(ctx context.Context, cfg Config) (*oauth2.Token, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, &TokenError{Err: err}
	}
	secret, err := cfg.secret()
	if err != nil {
		return nil, &TokenError{Err: err}
	}
	cc := &clientcredentials.Config{
		ClientID:     cfg.ClientID,
		ClientSecret: secret,
		TokenURL:     cfg.TokenURL,
		AuthStyle:    oauth2.AuthStyleInParams,
	}
	ctx = context.WithValue(ctx, oauth2.HTTPClient, cfg.HTTPClient)
	tok, err := cc.Token(ctx)
	if err != nil {
		return nil, TokenErrorOf(err, secret)
	}
	if tok.Expiry.IsZero() {
		if exp, ok := JWTExpiry(tok.AccessToken); ok {
			tok.Expiry = exp
		}
	}
	return tok, nil
}

// TokenErrorOf converts a failed token request (an *oauth2.RetrieveError or
// any other error of the grant) into a *TokenError: the endpoint's status,
// Retry-After (milliseconds, through [ParseRetryAfterMillis]) and truncated
// body, with the secret scrubbed from anything the endpoint echoed back. A
// *TokenError is returned as it is.
func TokenErrorOf(err error, secret string) *TokenError {
	if te, ok := err.(*TokenError); ok {
		return te
	}
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && re.Response != nil {
		te := &TokenError{Status: re.Response.StatusCode, Err: err}
		te.RetryAfter, _ = ParseRetryAfterMillis(re.Response.Header.Get(HeaderRetryAfter))
		body := ScrubSecret(strings.TrimSpace(string(re.Body)), secret)
		te.Body = truncate(body, MaxTokenErrorBody)
		if secret != "" && ScrubSecret(string(re.Body), secret) != string(re.Body) {
			// The wrapped RetrieveError prints what the endpoint sent: keep only a
			// scrubbed copy.
			scrub := func(s string) string { return ScrubSecret(s, secret) }
			scrubbed := *re
			scrubbed.Body = []byte(body)
			scrubbed.ErrorCode = scrub(re.ErrorCode)
			scrubbed.ErrorDescription = scrub(re.ErrorDescription)
			scrubbed.ErrorURI = scrub(re.ErrorURI)
			te.Err = &scrubbed
		}
		return te
	}
	msg := err.Error()
	if strings.Contains(msg, "missing access_token") {
		// oauth2 reaches this only for a 2xx answer without an access_token.
		return &TokenError{Status: 200, Body: "the answer has no access_token", Err: err}
	}
	if secret != "" && ScrubSecret(msg, secret) != msg {
		return &TokenError{Err: errors.New(ScrubSecret(msg, secret))}
	}
	return &TokenError{Err: err}
}

// ScrubSecret replaces secret in s, raw and in the encodings a request carries
// it in (form/query and path escaping), with "[redacted]".
func ScrubSecret(s, secret string) string {
	if secret == "" {
		return s
	}
	for _, v := range []string{secret, url.QueryEscape(secret), url.PathEscape(secret)} {
		s = strings.ReplaceAll(s, v, "[redacted]")
	}
	return s
}

// tokenFetcher is an uncached oauth2.TokenSource over FetchToken.
type tokenFetcher struct {
	ctx context.Context
	cfg Config
}

func (f tokenFetcher) Token() (*oauth2.Token, error) { return FetchToken(f.ctx, f.cfg) }

// NewTokenSource returns a token source for one process: it fetches a token with
// the client-credentials grant (credentials in the form body) and reuses it until
// shortly before it expires. ctx is used for every token request, so it should live
// as long as the source (context.Background() in most programs). Errors are
// [*TokenError].
func NewTokenSource(ctx context.Context, cfg Config) oauth2.TokenSource {
	return oauth2.ReuseTokenSource(nil, tokenFetcher{ctx: ctx, cfg: cfg.withDefaults()})
}

// JWTExpiry reads the exp claim of a JWT access token WITHOUT verifying its
// signature (the token is only ever sent back to its issuer). ok is false when the
// token is not a JWT or has no numeric exp.
func JWTExpiry(accessToken string) (time.Time, bool) {
	parts := strings.Split(accessToken, ".")
	if len(parts) != 3 {
		return time.Time{}, false
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return time.Time{}, false
	}
	var claims struct {
		Exp *json.Number `json:"exp"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil || claims.Exp == nil {
		return time.Time{}, false
	}
	f, err := claims.Exp.Float64()
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f <= 0 || f > 1e11 {
		return time.Time{}, false
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC(), true
}

var _ oauth2.TokenSource = tokenFetcher{}
