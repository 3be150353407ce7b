package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"shfleet/quota"
	"shfleet/sentinel"
)

const sampleTOML = `# written by sentinelhub-py
[default-profile]
sh_client_id = "file-id"
sh_client_secret = "file-secret"
sh_base_url = "https://services.sentinel-hub.com"

[cdse]
sh_client_id = "cdse-id"
sh_client_secret = "cdse-secret"
sh_base_url = "https://sh.dataspace.copernicus.eu"
sh_token_url = "https://identity.dataspace.copernicus.eu/auth/realms/CDSE/protocol/openid-connect/token"
max_download_attempts = 4
`

func clearEnv(t *testing.T) {
	for _, k := range []string{sentinel.EnvClientID, sentinel.EnvClientSecret, sentinel.EnvClientSecretFile,
		sentinel.EnvBaseURL, sentinel.EnvTokenURL, EnvProfile, EnvConfigFile, EnvPreset, EnvRedisURL, quota.PoliciesEnv, EnvMonthlyPU} {
		t.Setenv(k, "")
	}
	t.Setenv("HOME", t.TempDir())
}

func writeTOML(t *testing.T) string {
	p := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(p, []byte(sampleTOML), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSentinelPrecedence(t *testing.T) {
	clearEnv(t)
	path := writeTOML(t)

	cfg, err := Sentinel(SentinelFlags{ConfigFile: path, Profile: "cdse"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ClientID != "cdse-id" || cfg.ClientSecret != "cdse-secret" || !strings.Contains(cfg.TokenURL, "CDSE") {
		t.Fatalf("profile not read: %v", cfg)
	}

	t.Setenv(EnvConfigFile, path)
	t.Setenv(sentinel.EnvClientID, "env-id")
	t.Setenv(sentinel.EnvClientSecret, "env-secret")
	cfg, err = Sentinel(SentinelFlags{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ClientID != "env-id" || cfg.ClientSecret != "env-secret" {
		t.Fatalf("env must override the file: %v", cfg)
	}
	cfg, err = Sentinel(SentinelFlags{ClientID: "flag-id", BaseURL: "http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ClientID != "flag-id" || cfg.BaseURL != "http://127.0.0.1:1" {
		t.Fatalf("flags must override env: %v", cfg)
	}
	if strings.Contains(cfg.String(), "env-secret") {
		t.Fatal("String() shows the secret")
	}
}

func TestSentinelPresetAndErrors(t *testing.T) {
	clearEnv(t)
	cfg, err := Sentinel(SentinelFlags{Preset: "cdse"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.BaseURL != sentinel.CDSEBaseURL || cfg.TokenURL != sentinel.CDSETokenURL {
		t.Fatalf("cdse preset: %v", cfg)
	}
	if _, err := Sentinel(SentinelFlags{Preset: "nope"}); err == nil || !strings.Contains(err.Error(), "cdse") {
		t.Fatalf("unknown preset: %v", err)
	}
	// An explicitly named profile that does not exist is an error; a missing
	// default file is not.
	if _, err := Sentinel(SentinelFlags{ConfigFile: writeTOML(t), Profile: "missing"}); err == nil || !strings.Contains(err.Error(), "[missing]") {
		t.Fatalf("missing profile: %v", err)
	}
	if _, err := Sentinel(SentinelFlags{}); err != nil {
		t.Fatalf("no config file at all must be fine: %v", err)
	}
	if _, err := Sentinel(SentinelFlags{ConfigFile: "/nonexistent/config.toml"}); err == nil {
		t.Fatal("an explicit missing file must be an error")
	}
}

func TestRedisURL(t *testing.T) {
	clearEnv(t)
	_, shown, err := Redis("redis://:hunter2@127.0.0.1:6390/2")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(shown, "hunter2") {
		t.Fatalf("shown URL leaks the password: %s", shown)
	}
	if _, _, err := Redis("http://:hunter2@host"); err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("bad scheme: %v (must fail without the password)", err)
	}
	t.Setenv(EnvRedisURL, "redis://127.0.0.1:6391/0")
	if _, shown, _ := Redis(""); shown != "redis://127.0.0.1:6391/0" {
		t.Fatalf("REDIS_URL not used: %s", shown)
	}
}

func TestPoliciesAndMonth(t *testing.T) {
	clearEnv(t)
	def := []quota.Policy{{Kind: quota.Requests, Capacity: 10, Period: 60e9}}
	got, err := Policies(nil, def)
	if err != nil || len(got) != 1 || got[0] != def[0] {
		t.Fatalf("defaults: %v %v", got, err)
	}
	t.Setenv(quota.PoliciesEnv, "requests:300:PT1M pu:300:PT1M")
	if got, _ := Policies(nil, def); len(got) != 2 {
		t.Fatalf("env: %v", got)
	}
	if got, _ := Policies([]string{"pu:5:PT1S"}, def); len(got) != 1 || got[0].Capacity != 5 {
		t.Fatalf("flags: %v", got)
	}
	t.Setenv(EnvMonthlyPU, "oops")
	if _, err := MonthlyPU(0); err == nil {
		t.Fatal("bad SH_PU_MONTH accepted")
	}
	t.Setenv(EnvMonthlyPU, "30000")
	if v, _ := MonthlyPU(0); v != 30000 {
		t.Fatalf("SH_PU_MONTH: %v", v)
	}
}
