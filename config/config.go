// Package config resolves the settings both shfleet commands share — Redis,
// Sentinel Hub credentials and endpoints, account policies — with one precedence:
// flags > environment > sentinelhub-py's config.toml profile > defaults. Users of
// sentinelhub-py need nothing new: SH_CLIENT_ID, SH_CLIENT_SECRET, SH_BASE_URL,
// SH_TOKEN_URL, SH_PROFILE and ~/.config/sentinelhub/config.toml work as they do
// there.
package config

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"shfleet/internal/userfile"
	"shfleet/quota"
	"shfleet/sentinel"
)

// Environment variables read besides sentinel's SH_* ones.
const (
	// EnvRedisURL is the Redis URL: redis://[user:password@]host:port/db, rediss://
	// for TLS, several hosts (redis://h1:p1?addr=h2:p2&addr=h3:p3) for a Cluster.
	EnvRedisURL = "REDIS_URL"
	// EnvProfile selects a profile of sentinelhub-py's config.toml.
	EnvProfile = "SH_PROFILE"
	// EnvConfigFile overrides the config.toml location.
	EnvConfigFile = "SH_CONFIG_FILE"
	// EnvPreset names an endpoint preset: "sentinel-hub" or "cdse".
	EnvPreset = "SH_PRESET"
	// EnvMonthlyPU is the fleet's own monthly PU budget.
	EnvMonthlyPU = "SH_PU_MONTH"
	// DefaultRedisURL is used when neither flag nor env names a Redis.
	DefaultRedisURL = "redis://127.0.0.1:6379/0"
	// DefaultProfile is sentinelhub-py's default profile name.
	DefaultProfile = "default-profile"
)

// DefaultConfigFile is sentinelhub-py's config.toml location.
func DefaultConfigFile() string {
	home, err := os.UserHomeDir()
	if err != nil {
		return ""
	}
	return filepath.Join(home, ".config", "sentinelhub", "config.toml")
}

// SentinelFlags are the command-line values for Sentinel Hub; empty means unset.
type SentinelFlags struct {
	Profile, ConfigFile, Preset string
	ClientID, ClientSecretFile  string
	BaseURL, TokenURL           string
	// USWestURL is the base URL of the US West deployment (Landsat, HLS,
	// MODIS); env SH_USWEST_URL; default the platform's own.
	USWestURL string
}

// Sentinel resolves the Sentinel Hub configuration: config.toml profile, then a
// preset, then SH_* environment, then flags. The secret comes only from the
// environment (SH_CLIENT_SECRET / SH_CLIENT_SECRET_FILE), a secret file flag, or
// config.toml — never from a command-line value, which other users could read.
func Sentinel(f SentinelFlags) (sentinel.Config, error) {
	var cfg sentinel.Config
	profile := cmp.Or(f.Profile, os.Getenv(EnvProfile))
	path := cmp.Or(f.ConfigFile, os.Getenv(EnvConfigFile))
	explicit := path != "" || profile != ""
	if path == "" {
		path = DefaultConfigFile()
	}
	if profile == "" {
		profile = DefaultProfile
	}
	if path != "" {
		values, err := ReadProfile(path, profile)
		switch {
		case err == nil:
			cfg.ClientID = values["sh_client_id"]
			cfg.ClientSecret = values["sh_client_secret"]
			cfg.BaseURL = values["sh_base_url"]
			cfg.TokenURL = values["sh_token_url"]
		case errors.Is(err, os.ErrNotExist) && !explicit:
		default:
			return cfg, err
		}
	}
	if name := cmp.Or(f.Preset, os.Getenv(EnvPreset)); name != "" {
		p, ok := sentinel.PresetByName(name)
		if !ok {
			return cfg, fmt.Errorf("unknown preset %q: use sentinel-hub or cdse", name)
		}
		cfg = cfg.WithPreset(p)
	}
	cfg.ClientID = cmp.Or(f.ClientID, os.Getenv(sentinel.EnvClientID), cfg.ClientID)
	envSecret, envSecretFile := os.Getenv(sentinel.EnvClientSecret), os.Getenv(sentinel.EnvClientSecretFile)
	secretLabel := ""
	switch {
	case f.ClientSecretFile != "":
		cfg.ClientSecret, cfg.ClientSecretFile = "", f.ClientSecretFile
		secretLabel = "--client-secret-file"
	case envSecretFile != "":
		cfg.ClientSecret, cfg.ClientSecretFile = "", envSecretFile
		secretLabel = sentinel.EnvClientSecretFile
	case envSecret != "":
		cfg.ClientSecret, cfg.ClientSecretFile = envSecret, ""
	}
	if cfg.ClientSecretFile != "" {
		// Checked here, through the bounded reader, so that a FIFO or a device
		// named as the secret is refused with the name the user gave it; the
		// content is read again when a token is needed (a rotated secret counts).
		if _, err := userfile.Read(context.Background(), secretLabel, cfg.ClientSecretFile, userfile.Secret); err != nil {
			return cfg, err
		}
	}
	cfg.BaseURL = cmp.Or(f.BaseURL, os.Getenv(sentinel.EnvBaseURL), cfg.BaseURL)
	cfg.TokenURL = cmp.Or(f.TokenURL, os.Getenv(sentinel.EnvTokenURL), cfg.TokenURL)
	if u := cmp.Or(f.USWestURL, os.Getenv(sentinel.EnvUSWestURL)); u != "" {
		cfg.Deployments = map[string]string{sentinel.DeploymentUSWest: u}
	}
	return cfg, nil
}

// ReadProfile reads one [profile] table of a sentinelhub-py config.toml: simple

// StringFlagger is what both flag.FlagSet (cmd/worker) and pflag.FlagSet
// (cmd/enqueue) offer for string flags.
type StringFlagger interface {
	StringVar(p *string, name, value, usage string)
}

// Register defines the Sentinel Hub flags both commands share on fs, each named
// with its environment variable; the secret only ever as a file.
func (f *SentinelFlags) Register(fs StringFlagger) {
	fs.StringVar(&f.Profile, "profile", "", "sentinelhub-py config.toml profile (env "+EnvProfile+")")
	fs.StringVar(&f.ConfigFile, "config-file", "", "sentinelhub-py config.toml (env "+EnvConfigFile+"; default ~/.config/sentinelhub/config.toml)")
	fs.StringVar(&f.Preset, "preset", "", "endpoint preset: sentinel-hub or cdse (env "+EnvPreset+")")
	fs.StringVar(&f.ClientID, "client-id", "", "OAuth client id (env "+sentinel.EnvClientID+")")
	fs.StringVar(&f.ClientSecretFile, "client-secret-file", "", "file holding the OAuth client secret (env "+sentinel.EnvClientSecretFile+" or "+sentinel.EnvClientSecret+"; never a flag value)")
	fs.StringVar(&f.BaseURL, "base-url", "", "API base URL (env "+sentinel.EnvBaseURL+")")
	fs.StringVar(&f.TokenURL, "token-url", "", "OAuth token endpoint (env "+sentinel.EnvTokenURL+")")
	fs.StringVar(&f.USWestURL, "uswest-url", "", "base URL of the US West deployment for Landsat, HLS and MODIS (env "+sentinel.EnvUSWestURL+"; default Sentinel Hub's)")
}

// `key = "value"` lines (strings, numbers, booleans), which is all that file holds.
func ReadProfile(path, profile string) (map[string]string, error) {
	data, err := userfile.Read(context.Background(), "sentinelhub config (--config-file, "+EnvConfigFile+")", path, userfile.Config)
	if err != nil {
		return nil, err
	}
	values := map[string]string{}
	found := false
	current := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), len(data)+1)
	for line := 1; sc.Scan(); line++ {
		s := strings.TrimSpace(sc.Text())
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		if strings.HasPrefix(s, "[") {
			current = strings.Trim(strings.TrimSpace(strings.Trim(s, "[]")), `"'`)
			found = found || current == profile
			continue
		}
		if current != profile {
			continue
		}
		k, v, ok := strings.Cut(s, "=")
		if !ok {
			return nil, fmt.Errorf("sentinelhub config %s line %d: want key = value", path, line)
		}
		v = strings.TrimSpace(v)
		if i := strings.Index(v, " #"); i >= 0 && !strings.HasPrefix(v, `"`) {
			v = strings.TrimSpace(v[:i])
		}
		if uq, err := strconv.Unquote(v); err == nil {
			v = uq
		} else {
			v = strings.Trim(v, `'`)
		}
		values[strings.TrimSpace(k)] = v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("sentinelhub config %s: %w", path, err)
	}
	if !found {
		return nil, fmt.Errorf("sentinelhub config %s has no profile [%s]", path, profile)
	}
	return values, nil
}

// Redis opens a client for url (flag), REDIS_URL, or DefaultRedisURL. Password and
// TLS come from the URL (redis://:password@host, rediss://). Several hosts make a
// Cluster client. The URL is never echoed with its password in errors.
func Redis(url string) (redis.UniversalClient, string, error) {
	url = cmp.Or(url, os.Getenv(EnvRedisURL), DefaultRedisURL)
	shown := RedactURL(url)
	if strings.Contains(url, "addr=") {
		opt, err := redis.ParseClusterURL(url)
		if err != nil {
			return nil, shown, fmt.Errorf("redis URL %s: %v", shown, redactErr(err, url))
		}
		return redis.NewClusterClient(opt), shown, nil
	}
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, shown, fmt.Errorf("redis URL %s: %v; use redis://[:password@]host:port/db or rediss:// for TLS", shown, redactErr(err, url))
	}
	return redis.NewClient(opt), shown, nil
}

// RedactURL hides the password of a URL.
func RedactURL(url string) string {
	scheme, rest, ok := strings.Cut(url, "://")
	if !ok {
		return url
	}
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return url
	}
	user, _, _ := strings.Cut(rest[:at], ":")
	return scheme + "://" + user + ":xxxxx@" + rest[at+1:]
}

func redactErr(err error, url string) string {
	msg := err.Error()
	return strings.ReplaceAll(msg, url, RedactURL(url))
}

// Policies resolves the account policies: flags, else SH_POLICIES, else the
// given defaults.
func Policies(flags []string, defaults []quota.Policy) ([]quota.Policy, error) {
	if len(flags) > 0 {
		return quota.ParsePolicies(flags)
	}
	env, err := quota.PoliciesFromEnv()
	if err != nil || len(env) > 0 {
		return env, err
	}
	return defaults, nil
}

// MonthlyPU resolves the monthly budget: the flag when positive, else
// SH_PU_MONTH (a non-negative number), else 0 (none). A flag of 0 means "not
// set", so it cannot turn off a budget SH_PU_MONTH sets.
func MonthlyPU(flag float64) (float64, error) {
	if flag > 0 {
		return flag, nil
	}
	if v := os.Getenv(EnvMonthlyPU); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f < 0 {
			return 0, fmt.Errorf("%s=%q: want a non-negative number of PU", EnvMonthlyPU, v)
		}
		return f, nil
	}
	return 0, nil
}

// CheckRedis pings Redis and refuses an evicting maxmemory-policy.
func CheckRedis(ctx context.Context, rdb redis.UniversalClient) error {
	if err := rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis unreachable: %w; check REDIS_URL (redis://[:password@]host:port/db, rediss:// when the server requires TLS) and that the server runs", err)
	}
	res, err := rdb.ConfigGet(ctx, "maxmemory-policy").Result()
	if err != nil {
		if strings.Contains(strings.ToLower(err.Error()), "unknown command") {
			return nil // an embedded Redis without CONFIG: it never evicts
		}
		return fmt.Errorf("redis: CONFIG GET maxmemory-policy: %w", err)
	}
	if p, ok := res["maxmemory-policy"]; ok && p != "noeviction" {
		return fmt.Errorf("redis maxmemory-policy is %q: queue and job state would be evicted under memory pressure; run redis with --maxmemory-policy noeviction (CONFIG SET maxmemory-policy noeviction)", p)
	}
	return nil
}

// DefaultTLSProbeTimeout bounds CheckTLS's handshake.
const DefaultTLSProbeTimeout = 3 * time.Second

// CheckTLS makes one TLS handshake with the server of a rediss:// URL (flag, else
// REDIS_URL) and says so plainly when it gets no TLS answer — a plain Redis
// reads the handshake as a command and stays silent, which the client would
// otherwise only report as a deadline after its retries. Other URLs pass.
func CheckTLS(ctx context.Context, rawURL string) error {
	rawURL = cmp.Or(rawURL, os.Getenv(EnvRedisURL), DefaultRedisURL)
	if !strings.HasPrefix(rawURL, "rediss://") || strings.Contains(rawURL, "addr=") {
		return nil
	}
	opt, err := redis.ParseURL(rawURL)
	if err != nil {
		return nil // Redis reports the URL itself
	}
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: DefaultTLSProbeTimeout}, Config: opt.TLSConfig}
	ctx, cancel := context.WithTimeout(ctx, DefaultTLSProbeTimeout)
	defer cancel()
	conn, err := d.DialContext(ctx, "tcp", opt.Addr)
	if err == nil {
		return conn.Close()
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return nil // not reachable at all: the ping says so
	}
	shown := RedactURL(rawURL)
	var rh tls.RecordHeaderError
	if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &rh) || errors.Is(err, io.EOF) {
		return fmt.Errorf("%s: no TLS answer from %s within %s: the server seems to be a plain (non-TLS) Redis; use redis:// in --redis-url or REDIS_URL, or enable TLS on the server", shown, opt.Addr, DefaultTLSProbeTimeout)
	}
	return fmt.Errorf("%s: TLS handshake with %s failed: %v; check the server's certificate or use redis:// for a plain server", shown, opt.Addr, err)
}
