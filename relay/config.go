package relay

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/pult/pult/agent/wire"
)

// Config is the relay's configuration, read from TOML. Every key is
// documented in README.md.
type Config struct {
	Listen         string   `toml:"listen"`
	DataDir        string   `toml:"data_dir"`
	PublicURL      string   `toml:"public_url"`
	AdminToken     string   `toml:"admin_token"`
	AdminTokenFile string   `toml:"admin_token_file"`
	PhoneRegion    string   `toml:"phone_region"`
	MaxFrame       int      `toml:"max_frame"`
	EventRetention Duration `toml:"event_retention"`

	NATS      NATSConfig      `toml:"nats"`
	PBX       PBXConfig       `toml:"pbx"`
	RetailCRM RetailCRMConfig `toml:"retailcrm"`
	Outbox    OutboxConfig    `toml:"outbox"`
}

// NATSConfig selects the NATS server.
type NATSConfig struct {
	URL string `toml:"url"` // "" embeds a server in data_dir
}

// PBXConfig is the PBX the relay speaks to as retailCRM would.
type PBXConfig struct {
	ClientID        string   `toml:"client_id"`
	ClientIDFile    string   `toml:"client_id_file"`
	MakeCallURL     string   `toml:"make_call_url"`
	ChangeStatusURL string   `toml:"change_status_url"`
	APIKey          string   `toml:"api_key"`
	APIKeyFile      string   `toml:"api_key_file"`
	Timeout         Duration `toml:"timeout"`
}

// RetailCRMConfig is the CRM account.
type RetailCRMConfig struct {
	URL          string   `toml:"url"`
	APIKey       string   `toml:"api_key"`
	APIKeyFile   string   `toml:"api_key_file"`
	Code         string   `toml:"code"`
	ManagerCache Duration `toml:"manager_cache"`
	Timeout      Duration `toml:"timeout"`
}

// OutboxConfig tunes retries of outbound partner calls.
type OutboxConfig struct {
	MinBackoff Duration `toml:"min_backoff"`
	MaxBackoff Duration `toml:"max_backoff"`
	GiveUp     Duration `toml:"give_up_after"`
	// RateLimits are requests per second by partner budget (see
	// RateLimitNames); keys left out keep their defaults.
	RateLimits map[string]float64 `toml:"rate_limits"`
}

// Partner request budgets, shared by every outbox job and direct call that
// spends them.
const (
	LimitRetailCRM          = "retailcrm"           // every call to retailCRM with our API key
	LimitRetailCRMTelephony = "retailcrm_telephony" // calls to retailCRM's /api/v5/telephony/*
	LimitCalltouch          = "calltouch"           // every call to Calltouch
)

// DefaultRateLimits are the partners' documented limits, requests per second.
func DefaultRateLimits() map[string]float64 {
	return map[string]float64{LimitRetailCRM: 10, LimitRetailCRMTelephony: 40, LimitCalltouch: 5}
}

// Duration is a time.Duration written as "10s" in TOML.
type Duration struct{ time.Duration }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// Defaults returns a configuration with every default filled in.
func Defaults() Config {
	return Config{
		Listen:         "127.0.0.1:8700",
		DataDir:        "./data",
		PhoneRegion:    "RU",
		MaxFrame:       wire.DefaultMaxFrame,
		EventRetention: Duration{7 * 24 * time.Hour},
		PBX:            PBXConfig{Timeout: Duration{10 * time.Second}},
		RetailCRM: RetailCRMConfig{
			Code:         "pult",
			ManagerCache: Duration{time.Minute},
			Timeout:      Duration{5 * time.Second},
		},
		Outbox: OutboxConfig{
			MinBackoff: Duration{time.Second},
			MaxBackoff: Duration{5 * time.Minute},
			GiveUp:     Duration{24 * time.Hour},
			RateLimits: DefaultRateLimits(),
		},
	}
}

// Env names that override secrets in the file (read by cmd/, passed in).
var EnvOverrides = map[string]string{
	"PULT_ADMIN_TOKEN":       "admin_token",
	"PULT_PBX_CLIENT_ID":     "pbx.client_id",
	"PULT_PBX_API_KEY":       "pbx.api_key",
	"PULT_RETAILCRM_API_KEY": "retailcrm.api_key",
	"PULT_NATS_URL":          "nats.url",
}

// maxConfigSize bounds the config file.
const maxConfigSize = 1 << 20

// LoadConfig reads a TOML file, applies env overrides (getenv may be nil),
// reads *_file secrets, and validates the result.
func LoadConfig(path string, getenv func(string) string) (Config, error) {
	cfg := Defaults()
	b, err := os.ReadFile(path)
	if err != nil {
		return cfg, fmt.Errorf("config: %w", err)
	}
	if len(b) > maxConfigSize {
		return cfg, fmt.Errorf("config: %s is larger than 1 MiB", path)
	}
	md, err := toml.Decode(string(b), &cfg)
	if err != nil {
		return cfg, fmt.Errorf("config %s: %w", path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		return cfg, fmt.Errorf("config %s: unknown keys: %s", path, strings.Join(keys, ", "))
	}
	if err := cfg.Resolve(getenv); err != nil {
		return cfg, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// Resolve applies env overrides and *_file secrets, then validates.
func (c *Config) Resolve(getenv func(string) string) error {
	if getenv != nil {
		set := map[string]*string{
			"admin_token": &c.AdminToken, "pbx.client_id": &c.PBX.ClientID,
			"pbx.api_key": &c.PBX.APIKey, "retailcrm.api_key": &c.RetailCRM.APIKey,
			"nats.url": &c.NATS.URL,
		}
		for env, key := range EnvOverrides {
			if v := getenv(env); v != "" {
				*set[key] = v
			}
		}
	}
	for _, f := range []struct {
		name        string
		value, file *string
	}{
		{"admin_token", &c.AdminToken, &c.AdminTokenFile},
		{"pbx.client_id", &c.PBX.ClientID, &c.PBX.ClientIDFile},
		{"pbx.api_key", &c.PBX.APIKey, &c.PBX.APIKeyFile},
		{"retailcrm.api_key", &c.RetailCRM.APIKey, &c.RetailCRM.APIKeyFile},
	} {
		if *f.file == "" || *f.value != "" {
			continue
		}
		b, err := os.ReadFile(*f.file)
		if err != nil {
			return fmt.Errorf("%s_file: %w", f.name, err)
		}
		if len(b) > 4096 {
			return fmt.Errorf("%s_file: %s is larger than 4 KiB", f.name, *f.file)
		}
		*f.value = strings.TrimSpace(string(b))
	}
	return c.Validate()
}

// Validate checks every field and names the first bad one.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{key}, a...)...))
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		bad("listen", "want host:port, got %q", c.Listen)
	}
	if c.NATS.URL == "" && c.DataDir == "" {
		bad("data_dir", "required with the embedded NATS server")
	}
	if c.PublicURL != "" {
		if err := checkURL(c.PublicURL); err != nil {
			bad("public_url", "%v", err)
		}
	}
	if len(c.AdminToken) < 16 {
		bad("admin_token", "required, at least 16 characters (or admin_token_file, or PULT_ADMIN_TOKEN)")
	}
	if c.MaxFrame < 1024 || c.MaxFrame > 16<<20 {
		bad("max_frame", "must be between 1024 and 16777216 bytes")
	}
	if c.EventRetention.Duration < time.Minute {
		bad("event_retention", "must be at least 1m")
	}
	if c.PBX.ClientID == "" || len(c.PBX.ClientID) > 255 {
		bad("pbx.client_id", "required, at most 255 characters")
	}
	if len(c.PBX.APIKey) < 8 {
		bad("pbx.api_key", "required, at least 8 characters: PBXes send it as X-API-KEY")
	}
	for key, u := range map[string]string{"pbx.make_call_url": c.PBX.MakeCallURL, "pbx.change_status_url": c.PBX.ChangeStatusURL, "retailcrm.url": c.RetailCRM.URL} {
		if u == "" {
			continue
		}
		if err := checkURL(u); err != nil {
			bad(key, "%v", err)
		}
	}
	if c.PBX.Timeout.Duration <= 0 || c.PBX.Timeout.Duration > time.Minute {
		bad("pbx.timeout", "must be between 0 and 1m")
	}
	if c.RetailCRM.URL != "" && c.RetailCRM.APIKey == "" {
		bad("retailcrm.api_key", "required when retailcrm.url is set")
	}
	if c.RetailCRM.Timeout.Duration <= 0 || c.RetailCRM.Timeout.Duration > time.Minute {
		bad("retailcrm.timeout", "must be between 0 and 1m")
	}
	if c.RetailCRM.ManagerCache.Duration < 0 {
		bad("retailcrm.manager_cache", "must not be negative")
	}
	if c.Outbox.MinBackoff.Duration <= 0 || c.Outbox.MaxBackoff.Duration < c.Outbox.MinBackoff.Duration {
		bad("outbox", "need 0 < min_backoff <= max_backoff")
	}
	if c.Outbox.MaxBackoff.Duration > time.Hour {
		bad("outbox.max_backoff", "must be at most 1h")
	}
	if c.Outbox.GiveUp.Duration < time.Minute {
		bad("outbox.give_up_after", "must be at least 1m")
	}
	known := DefaultRateLimits()
	for name, r := range c.Outbox.RateLimits {
		if _, ok := known[name]; !ok {
			bad("outbox.rate_limits."+name, "unknown; want one of %s", strings.Join(slices.Sorted(maps.Keys(known)), ", "))
		} else if !(r > 0 && r <= 1000) {
			bad("outbox.rate_limits."+name, "must be more than 0 and at most 1000 requests per second")
		}
	}
	if len(c.PhoneRegion) != 2 {
		bad("phone_region", "want a two-letter country code such as RU")
	}
	return errors.Join(errs...)
}

func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("want an http or https URL, got %q", s)
	}
	if u.Host == "" {
		return fmt.Errorf("no host in %q", s)
	}
	return nil
}
