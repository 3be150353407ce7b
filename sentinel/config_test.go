package sentinel

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestConfigDefaults(t *testing.T) {
	t.Parallel()
	c := Config{}.withDefaults()
	if c.BaseURL != DefaultBaseURL || c.TokenURL != DefaultTokenURL || c.APIPaths != ClassicAPIPaths || c.HTTPClient == nil || c.UserAgent != "shfleet/"+Version {
		t.Errorf("defaults: %v ua=%q", c, c.UserAgent)
	}
	if c.HTTPClient.Timeout != 0 {
		t.Errorf("default client has an overall timeout %s; it would cut long bodies", c.HTTPClient.Timeout)
	}
	c = Config{APIPaths: CurrentAPIPaths}.withDefaults()
	if c.APIPaths.Process != "/process/v1" || c.APIPaths.CatalogSearch != "/catalog/v1/search" {
		t.Errorf("current paths: %+v", c.APIPaths)
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	ok := Config{ClientID: "id", ClientSecret: "secret"}
	tests := []struct {
		name  string
		cfg   Config
		field string
	}{
		{"valid", ok, ""},
		{"zero", Config{}, "ClientID"},
		{"no secret", Config{ClientID: "id"}, "ClientSecret"},
		{"secret and file", Config{ClientID: "id", ClientSecret: "s", ClientSecretFile: "/f"}, "ClientSecretFile"},
		{"base URL scheme", Config{ClientID: "id", ClientSecret: "s", BaseURL: "services.sentinel-hub.com"}, "BaseURL"},
		{"base URL credentials", Config{ClientID: "id", ClientSecret: "s", BaseURL: "https://u:p@example.com"}, "BaseURL"},
		{"token URL bad", Config{ClientID: "id", ClientSecret: "s", TokenURL: "http://%zz"}, "TokenURL"},
		{"process path", Config{ClientID: "id", ClientSecret: "s", APIPaths: APIPaths{Process: "process/v1"}}, "APIPaths.Process"},
		{"catalog path", Config{ClientID: "id", ClientSecret: "s", APIPaths: APIPaths{CatalogSearch: "x"}}, "APIPaths.CatalogSearch"},
	}
	for _, tt := range tests {
		err := tt.cfg.Validate()
		if tt.field == "" {
			if err != nil {
				t.Errorf("%s: %v", tt.name, err)
			}
			continue
		}
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != tt.field {
			t.Errorf("%s: got %v, want a FieldError on %s", tt.name, err, tt.field)
		}
	}
}

func TestConfigStringRedactsSecret(t *testing.T) {
	t.Parallel()
	c := Config{ClientID: "id", ClientSecret: testSecret}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		out := fmt.Sprintf(verb, c)
		if strings.Contains(out, testSecret) || !strings.Contains(out, "[redacted]") {
			t.Errorf("%s printed %q", verb, out)
		}
	}
	if out := fmt.Sprintf("%v", &c); strings.Contains(out, testSecret) {
		t.Errorf("pointer printed %q", out)
	}
}

func TestPresets(t *testing.T) {
	t.Parallel()
	p, ok := PresetByName("CDSE")
	if !ok || p != PresetCDSE {
		t.Fatalf("PresetByName(CDSE) = %+v %v", p, ok)
	}
	c := Config{ClientID: "id", ClientSecret: "s"}.WithPreset(PresetCDSE)
	if c.BaseURL != "https://sh.dataspace.copernicus.eu" || c.TokenURL != "https://identity.dataspace.copernicus.eu/auth/realms/CDSE/protocol/openid-connect/token" {
		t.Errorf("cdse: %v", c)
	}
	if err := c.Validate(); err != nil {
		t.Error(err)
	}
	if p, ok := PresetByName("sentinel-hub"); !ok || p.BaseURL != DefaultBaseURL {
		t.Errorf("sentinel-hub preset %+v", p)
	}
	if _, ok := PresetByName("nope"); ok {
		t.Error("unknown preset found")
	}
}

func TestConfigJSONRedactsSecret(t *testing.T) {
	b, err := json.Marshal(Config{ClientID: "id", ClientSecret: "hunter2-secret"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "hunter2") || !strings.Contains(string(b), `"ClientID":"id"`) {
		t.Fatalf("JSON %s must keep the id and hide the secret", b)
	}
}
