package sentinel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"shfleet/internal/userfile"
)

// Endpoints of the Sentinel Hub deployment that a zero [Config] talks to.
const (
	// DefaultBaseURL is the Sentinel Hub services endpoint.
	DefaultBaseURL = "https://services.sentinel-hub.com"
	// DefaultTokenURL is Sentinel Hub's OAuth client-credentials token endpoint.
	DefaultTokenURL = "https://services.sentinel-hub.com/auth/realms/main/protocol/openid-connect/token"
	// CDSEBaseURL is the Copernicus Data Space Ecosystem's Sentinel Hub endpoint.
	CDSEBaseURL = "https://sh.dataspace.copernicus.eu"
	// CDSETokenURL is the Copernicus Data Space Ecosystem's token endpoint.
	CDSETokenURL = "https://identity.dataspace.copernicus.eu/auth/realms/CDSE/protocol/openid-connect/token"
	// USWestBaseURL is Sentinel Hub's US West deployment, which serves Landsat,
	// HLS and MODIS (the token endpoint is the main one).
	USWestBaseURL = "https://services-uswest2.sentinel-hub.com"
)

// Deployment names: the main deployment is BaseURL itself.
const (
	// DeploymentMain is the deployment at Config.BaseURL.
	DeploymentMain = "main"
	// DeploymentUSWest is the US West deployment (Landsat, HLS, MODIS).
	DeploymentUSWest = "uswest"
)

// API paths, relative to the base URL. The long-standing ones are the default; the
// current OpenAPI description names the newer ones.
const (
	// ClassicProcessPath is the long-standing Process API path (the default).
	ClassicProcessPath = "/api/v1/process"
	// ClassicCatalogSearchPath is the long-standing Catalog item-search path (the default).
	ClassicCatalogSearchPath = "/api/v1/catalog/1.0.0/search"
	// CurrentProcessPath is the Process API path of the current OpenAPI description.
	CurrentProcessPath = "/process/v1"
	// ClassicBatchPath is the Batch Processing API v2 root the service and
	// sentinelhub-py use (/api/v2/batch/process, /api/v2/batch/tilinggrids).
	ClassicBatchPath = "/api/v2/batch"
	// CurrentBatchPath is the same API's root in the OpenAPI description
	// (/batch/v2/process, /batch/v2/tilinggrids).
	CurrentBatchPath = "/batch/v2"
	// CurrentCatalogSearchPath is the Catalog item-search path of the current
	// OpenAPI description.
	CurrentCatalogSearchPath = "/catalog/v1/search"
)

// Timeouts of the default HTTP client. There is deliberately no overall
// http.Client.Timeout: a Process response body may take minutes to stream, so the
// caller bounds a whole call with its context.
const (
	// DefaultDialTimeout bounds establishing a TCP connection.
	DefaultDialTimeout = 10 * time.Second
	// DefaultTLSHandshakeTimeout bounds the TLS handshake.
	DefaultTLSHandshakeTimeout = 10 * time.Second
	// DefaultResponseHeaderTimeout bounds the wait for response headers after the
	// request was sent (the Process API renders before it answers).
	DefaultResponseHeaderTimeout = 5 * time.Minute
	// DefaultIdleConnTimeout is how long an idle keep-alive connection is kept.
	DefaultIdleConnTimeout = 90 * time.Second
)

// Environment variable names of the credentials and URLs (the same names as
// sentinelhub-py uses); package config reads them.
const (
	EnvClientID         = "SH_CLIENT_ID"
	EnvClientSecret     = "SH_CLIENT_SECRET"
	EnvClientSecretFile = "SH_CLIENT_SECRET_FILE"
	EnvBaseURL          = "SH_BASE_URL"
	EnvTokenURL         = "SH_TOKEN_URL"
	// EnvUSWestURL overrides the base URL of the US West deployment.
	EnvUSWestURL = "SH_USWEST_URL"
)

// APIPaths are the paths of the APIs relative to [Config.BaseURL].
type APIPaths struct {
	// Process is the Process API path. Default [ClassicProcessPath].
	Process string
	// CatalogSearch is the Catalog item-search path. Default [ClassicCatalogSearchPath].
	CatalogSearch string
	// Batch is the Batch Processing API v2 root (its /process and /tilinggrids
	// below it). Default [ClassicBatchPath].
	Batch string
}

var (
	// ClassicAPIPaths are the long-standing paths (/api/v1/...), used by default.
	ClassicAPIPaths = APIPaths{Process: ClassicProcessPath, CatalogSearch: ClassicCatalogSearchPath, Batch: ClassicBatchPath}
	// CurrentAPIPaths are the paths of the current OpenAPI description
	// (/process/v1, /catalog/v1/search).
	CurrentAPIPaths = APIPaths{Process: CurrentProcessPath, CatalogSearch: CurrentCatalogSearchPath, Batch: CurrentBatchPath}
)

// Preset names a deployment of the Sentinel Hub APIs: its base and token URLs.
type Preset struct {
	// Name is the short name used on command lines ("sentinel-hub", "cdse").
	Name string
	// BaseURL is the services endpoint.
	BaseURL string
	// TokenURL is the OAuth token endpoint.
	TokenURL string
}

var (
	// PresetSentinelHub is Sentinel Hub itself (the default of a zero Config).
	PresetSentinelHub = Preset{Name: "sentinel-hub", BaseURL: DefaultBaseURL, TokenURL: DefaultTokenURL}
	// PresetCDSE is the Copernicus Data Space Ecosystem, which serves the same APIs.
	PresetCDSE = Preset{Name: "cdse", BaseURL: CDSEBaseURL, TokenURL: CDSETokenURL}
)

// PresetByName returns the preset called name ("sentinel-hub" or "cdse",
// case-insensitive).
func PresetByName(name string) (Preset, bool) {
	for _, p := range []Preset{PresetSentinelHub, PresetCDSE} {
		if strings.EqualFold(name, p.Name) {
			return p, true
		}
	}
	return Preset{}, false
}

// Config says where the APIs are and how to authenticate. Its zero value talks to
// Sentinel Hub with default timeouts; only the credentials must be set.
type Config struct {
	// ClientID is the OAuth client id. Required to fetch tokens.
	ClientID string
	// ClientSecret is the OAuth client secret. Set it or ClientSecretFile, not both.
	// It is never printed: String redacts it.
	ClientSecret string
	// ClientSecretFile is a file holding the client secret (surrounding white space
	// is trimmed), e.g. a mounted Kubernetes or Docker secret.
	ClientSecretFile string
	// BaseURL is the services endpoint. Default [DefaultBaseURL].
	BaseURL string
	// TokenURL is the OAuth token endpoint. Default [DefaultTokenURL].
	TokenURL string
	// HTTPClient makes every request, the token requests included. Default: a client
	// with the Default*Timeout constants and no overall timeout (see [DefaultHTTPClient]).
	HTTPClient *http.Client
	// APIPaths are the API paths. Zero fields default to [ClassicAPIPaths].
	APIPaths APIPaths
	// UserAgent is sent with every API request. Default "shfleet/" + [Version].
	UserAgent string
	// Deployments overrides the base URL of a deployment other than the main one,
	// by name ([DeploymentUSWest]): collections served elsewhere (Landsat, HLS,
	// MODIS) are sent there. Default: the platform's own URLs ([USWestBaseURL] on
	// Sentinel Hub).
	Deployments map[string]string
}

// WithPreset returns c with the base and token URLs of p.
func (c Config) WithPreset(p Preset) Config {
	c.BaseURL = p.BaseURL
	c.TokenURL = p.TokenURL
	return c
}

// DefaultHTTPClient returns a new HTTP client with the Default*Timeout constants.
// It has no overall timeout, so long response bodies can stream; bound calls with a
// context.
func DefaultHTTPClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: DefaultDialTimeout, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   32,
		IdleConnTimeout:       DefaultIdleConnTimeout,
		TLSHandshakeTimeout:   DefaultTLSHandshakeTimeout,
		ResponseHeaderTimeout: DefaultResponseHeaderTimeout,
		ExpectContinueTimeout: time.Second,
	}}
}

// DeploymentURL is the base URL of a deployment: BaseURL for the main one ("" or
// [DeploymentMain]), else Config.Deployments, else the platform's own address of
// it (Sentinel Hub's US West deployment when BaseURL is Sentinel Hub's). A
// deployment the platform does not have (CDSE has no US West) is a [*FieldError]
// that says what to set.
func (c Config) DeploymentURL(deployment string) (string, error) {
	c = c.withDefaults()
	if deployment == "" || deployment == DeploymentMain {
		if err := checkURL(c.BaseURL); err != nil {
			return "", &FieldError{Field: "BaseURL", Message: err.Error()}
		}
		return c.BaseURL, nil
	}
	u, ok := c.Deployments[deployment]
	if !ok && deployment == DeploymentUSWest && strings.TrimSuffix(c.BaseURL, "/") == DefaultBaseURL {
		u, ok = USWestBaseURL, true
	}
	if !ok {
		return "", &FieldError{Field: "Deployments", Message: fmt.Sprintf(
			"base URL %s has no %s deployment, which serves Landsat, HLS and MODIS; set its URL (%s) or use Sentinel Hub's own base URL", c.BaseURL, deployment, EnvUSWestURL)}
	}
	if err := checkURL(u); err != nil {
		return "", &FieldError{Field: "Deployments[" + deployment + "]", Message: err.Error()}
	}
	return u, nil
}

// withDefaults fills the zero fields with their defaults.
func (c Config) withDefaults() Config {
	if c.BaseURL == "" {
		c.BaseURL = DefaultBaseURL
	}
	if c.TokenURL == "" {
		c.TokenURL = DefaultTokenURL
	}
	if c.HTTPClient == nil {
		c.HTTPClient = DefaultHTTPClient()
	}
	if c.APIPaths.Process == "" {
		c.APIPaths.Process = ClassicProcessPath
	}
	if c.APIPaths.CatalogSearch == "" {
		c.APIPaths.CatalogSearch = ClassicCatalogSearchPath
	}
	if c.APIPaths.Batch == "" {
		c.APIPaths.Batch = ClassicBatchPath
	}
	if c.UserAgent == "" {
		c.UserAgent = "shfleet/" + Version
	}
	return c
}

// Validate checks c (with defaults applied) and names the first bad field in a
// [*FieldError]. Credentials are required: a client id, and exactly one of
// ClientSecret and ClientSecretFile.
func (c Config) Validate() error {
	c = c.withDefaults()
	if strings.TrimSpace(c.ClientID) == "" {
		return &FieldError{Field: "ClientID", Message: "empty; set it or " + EnvClientID + " to the OAuth client id"}
	}
	switch {
	case c.ClientSecret == "" && c.ClientSecretFile == "":
		return &FieldError{Field: "ClientSecret", Message: "empty; set it (or " + EnvClientSecret + "), or ClientSecretFile (or " + EnvClientSecretFile + ")"}
	case c.ClientSecret != "" && c.ClientSecretFile != "":
		return &FieldError{Field: "ClientSecretFile", Message: "set together with ClientSecret; set only one of them"}
	}
	if err := checkURL(c.BaseURL); err != nil {
		return &FieldError{Field: "BaseURL", Message: err.Error()}
	}
	if err := checkURL(c.TokenURL); err != nil {
		return &FieldError{Field: "TokenURL", Message: err.Error()}
	}
	if !strings.HasPrefix(c.APIPaths.Process, "/") {
		return &FieldError{Field: "APIPaths.Process", Message: fmt.Sprintf("%q must start with /", c.APIPaths.Process)}
	}
	if !strings.HasPrefix(c.APIPaths.CatalogSearch, "/") {
		return &FieldError{Field: "APIPaths.CatalogSearch", Message: fmt.Sprintf("%q must start with /", c.APIPaths.CatalogSearch)}
	}
	return nil
}

// checkURL accepts an absolute http(s) URL without user info.
func checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%q is not a URL: %v", raw, errors.Unwrap(err))
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%q must be an absolute http:// or https:// URL", raw)
	}
	if u.Host == "" {
		return fmt.Errorf("%q has no host", raw)
	}
	if u.User != nil {
		return fmt.Errorf("must not carry credentials in the URL; use ClientID and ClientSecret")
	}
	return nil
}

// secret returns the client secret, reading ClientSecretFile when it is set.
// Secret returns the client secret: ClientSecret, or the trimmed content of
// ClientSecretFile when that is set. The error names the file, never the secret.
func (c Config) Secret() (string, error) { return c.secret() }

func (c Config) secret() (string, error) {
	if c.ClientSecretFile == "" {
		return c.ClientSecret, nil
	}
	return readSecretFile(c.ClientSecretFile)
}

func readSecretFile(path string) (string, error) {
	// One bounded reader: a FIFO or /dev/zero named as the secret file is
	// refused before it is opened, never read without end.
	b, err := userfile.Read(context.Background(), "", path, userfile.Secret)
	if err != nil {
		// The error names the file, never its content.
		return "", &FieldError{Field: "ClientSecretFile", Message: fmt.Sprintf("cannot read the secret (%s or --client-secret-file): %v", EnvClientSecretFile, err)}
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", &FieldError{Field: "ClientSecretFile", Message: fmt.Sprintf("%s is empty; put the OAuth client secret in it", path)}
	}
	return s, nil
}

// String describes c with the secret redacted, so a Config can be printed or
// logged safely.
func (c Config) String() string {
	secret := ""
	if c.ClientSecret != "" {
		secret = "[redacted]"
	}
	return fmt.Sprintf("sentinel.Config{ClientID: %q, ClientSecret: %q, ClientSecretFile: %q, BaseURL: %q, TokenURL: %q, APIPaths: {Process: %q, CatalogSearch: %q}}",
		c.ClientID, secret, c.ClientSecretFile, c.BaseURL, c.TokenURL, c.APIPaths.Process, c.APIPaths.CatalogSearch)
}

// GoString is String, so that %#v redacts the secret too.
func (c Config) GoString() string { return c.String() }

// MarshalJSON encodes the configuration without its secret, so a Config logged or
// dumped as JSON never carries it.
func (c Config) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		ClientID, ClientSecretFile, BaseURL, TokenURL, UserAgent string
		ClientSecret                                             string `json:",omitempty"`
		APIPaths                                                 APIPaths
	}{c.ClientID, c.ClientSecretFile, c.BaseURL, c.TokenURL, c.UserAgent, redacted(c.ClientSecret), c.APIPaths})
}

func redacted(s string) string {
	if s == "" {
		return ""
	}
	return "[redacted]"
}
