package relay

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "relay.toml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const minimal = `
admin_token = "0123456789abcdef0123"
[pbx]
client_id = "cid"
api_key = "pbx-key-123"
`

func TestLoadConfig(t *testing.T) {
	cfg, err := LoadConfig(writeConfig(t, minimal), nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:8700" || cfg.MaxFrame != 65536 || cfg.RetailCRM.Code != "pult" || cfg.PBX.Timeout.Seconds() != 10 {
		t.Errorf("defaults not applied: %+v", cfg)
	}
}

func TestLoadConfigOutbox(t *testing.T) {
	cfg, err := LoadConfig(writeConfig(t, minimal+`
[outbox]
give_up_after = "2h"
[outbox.rate_limits]
retailcrm = 5
calltouch = 2.5
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{"retailcrm": 5, "retailcrm_telephony": 40, "calltouch": 2.5}
	if cfg.Outbox.GiveUp.Hours() != 2 || len(cfg.Outbox.RateLimits) != 3 {
		t.Fatalf("outbox: %+v", cfg.Outbox)
	}
	for k, v := range want {
		if cfg.Outbox.RateLimits[k] != v {
			t.Errorf("rate_limits.%s = %v, want %v", k, cfg.Outbox.RateLimits[k], v)
		}
	}
	if d := Defaults(); d.Outbox.RateLimits["retailcrm"] != 10 {
		t.Error("a config changed the defaults")
	}
}

func TestLoadConfigSecretsFromEnvAndFiles(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "crm.key")
	os.WriteFile(keyFile, []byte("  crm-secret\n"), 0o600)
	p := writeConfig(t, minimal+`
[retailcrm]
url = "https://example.retailcrm.ru"
api_key_file = "`+keyFile+`"
`)
	env := map[string]string{"PULT_PBX_API_KEY": "from-env-key", "PULT_NATS_URL": "nats://127.0.0.1:4222"}
	cfg, err := LoadConfig(p, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if cfg.RetailCRM.APIKey != "crm-secret" || cfg.PBX.APIKey != "from-env-key" || cfg.NATS.URL != "nats://127.0.0.1:4222" {
		t.Errorf("secrets: crm=%q pbx=%q nats=%q", cfg.RetailCRM.APIKey, cfg.PBX.APIKey, cfg.NATS.URL)
	}
}

func TestLoadConfigRefuses(t *testing.T) {
	for _, tc := range []struct{ name, body, want string }{
		{"unknown key", minimal + "\nlisten_addr = \"x\"\n", "unknown keys: pbx.listen_addr"},
		{"short admin token", strings.Replace(minimal, "0123456789abcdef0123", "short", 1), "admin_token"},
		{"no client id", strings.Replace(minimal, `client_id = "cid"`, "", 1), "pbx.client_id"},
		{"bad URL", minimal + "make_call_url = \"ftp://pbx\"\n", "pbx.make_call_url"},
		{"crm without key", minimal + "[retailcrm]\nurl = \"https://x.retailcrm.ru\"\n", "retailcrm.api_key"},
		{"bad duration", minimal + "[outbox]\nmin_backoff = \"soon\"\n", "min_backoff"},
		{"unknown rate limit", minimal + "[outbox.rate_limits]\nqolio = 3\n", "outbox.rate_limits.qolio: unknown; want one of calltouch, retailcrm, retailcrm_telephony"},
		{"zero rate limit", minimal + "[outbox.rate_limits]\ncalltouch = 0\n", "outbox.rate_limits.calltouch"},
		{"long max_backoff", minimal + "[outbox]\nmax_backoff = \"2h\"\n", "outbox.max_backoff"},
		{"not TOML", "admin_token = ", "relay.toml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadConfig(writeConfig(t, tc.body), nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
	if _, err := LoadConfig(filepath.Join(t.TempDir(), "missing.toml"), nil); err == nil {
		t.Fatal("a missing file was accepted")
	}
}
