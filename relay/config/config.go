// Package config is the relay's configuration: the TOML file, the
// environment's overrides and secrets in files (Load), the defaults
// (Defaults) and every check (Validate). Only cmd/pult-relay reads files and
// the environment through it; the relay's parts receive a Config.
package config

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // time_zone works on hosts without a zone database
	"unicode"

	"github.com/BurntSushi/toml"

	"github.com/pult/pult/agent/phone"
	"github.com/pult/pult/agent/wire"
	"github.com/pult/pult/relay/calltouch"
	"github.com/pult/pult/relay/eventtrace"
	"github.com/pult/pult/relay/sockfile"
)

// Config is the relay's configuration, read from TOML. Every key is
// documented in README.md.
type Config struct {
	Listen string `toml:"listen"`
	// TLSCert and TLSKey (PEM files) make the listener HTTPS and WSS; the
	// files are read again when they change. Without them the relay speaks
	// plain HTTP and expects a TLS proxy in front.
	TLSCert string `toml:"tls_cert"`
	TLSKey  string `toml:"tls_key"`
	// AdminListen ("host:port") adds a TCP listener for the admin API, for
	// remote administration; the admin token is required there, and it
	// speaks TLS with tls_cert and tls_key. The admin API is always on the
	// unix socket admin.sock in data_dir (AdminSocket), whose file
	// permissions are its authentication.
	AdminListen string `toml:"admin_listen"`
	// MetricsListen ("host:port") serves /metrics and /debug/pprof/; off
	// when empty.
	MetricsListen string `toml:"metrics_listen"`
	// TraceEvents keeps the times of the last this many call events at
	// each step through the relay, served on metrics_listen at
	// /debug/pult/events (see relay/eventtrace; pult-relay bench --trace
	// reads them); 0, the default, keeps none.
	TraceEvents    int      `toml:"trace_events"`
	DataDir        string   `toml:"data_dir"`
	PublicURL      string   `toml:"public_url"`
	AdminToken     string   `toml:"admin_token"`
	AdminTokenFile string   `toml:"admin_token_file"`
	PhoneRegion    string   `toml:"phone_region"`
	MaxFrame       int      `toml:"max_frame"`
	EventRetention Duration `toml:"event_retention"`
	// TimeZone is where times written without a zone live: UIS's
	// notification times, dates of the call history sent to retailCRM (the
	// account's zone), stamps in pasted transcripts.
	TimeZone string `toml:"time_zone"`

	NATS      NATSConfig      `toml:"nats"`
	PBX       PBXConfig       `toml:"pbx"`
	RetailCRM RetailCRMConfig `toml:"retailcrm"`
	UIS       UISConfig       `toml:"uis"`
	Smartsupp SmartsuppConfig `toml:"smartsupp"`
	Qolio     QolioConfig     `toml:"qolio"`
	Calltouch CalltouchConfig `toml:"calltouch"`
	Outbox    OutboxConfig    `toml:"outbox"`
	Queue     QueueConfig     `toml:"queue"`
	Limits    LimitsConfig    `toml:"limits"`
}

// LimitsConfig holds the quotas that keep one operator's token from hurting
// the rest, and the storage budget (docs/relay.md, "Limits").
type LimitsConfig struct {
	// RequestsPerSecond and Burst bound the requests one agent session
	// sends over its websocket (pings and pongs are not requests); a
	// session over the limit is closed with wire.CloseRateLimited.
	RequestsPerSecond float64 `toml:"requests_per_second"`
	Burst             int     `toml:"burst"`
	// SessionsPerOperator caps an operator's concurrent sessions on this
	// node; one more is refused at the handshake (HTTP 429).
	SessionsPerOperator int `toml:"sessions_per_operator"`
	// TranscriptsPerMinute bounds an operator's transcript submissions
	// (HTTP 429 with Retry-After beyond it).
	TranscriptsPerMinute int `toml:"transcripts_per_minute"`
	// RequestIDsPerOperator is how many answered request ids are
	// remembered per operator (within 24 h) to answer a repeat the same.
	RequestIDsPerOperator int `toml:"request_ids_per_operator"`
	// MaxStoreBytes is JetStream's whole storage budget, split between the
	// streams and buckets in fixed shares (store.Budget).
	MaxStoreBytes ByteSize `toml:"max_store_bytes"`
	// DeadLetters is how many dead letters are kept; beyond it the oldest
	// are dropped (and the relay says so).
	DeadLetters int `toml:"dead_letters"`
}

// ByteSize is a size in bytes, written in TOML as an integer or as a string
// with a unit: "512MiB", "2GiB", "1.5GB".
type ByteSize int64

// UnmarshalTOML implements toml.Unmarshaler.
func (b *ByteSize) UnmarshalTOML(v any) error {
	switch v := v.(type) {
	case int64:
		*b = ByteSize(v)
		return nil
	case string:
		n, err := ParseByteSize(v)
		*b = n
		return err
	}
	return fmt.Errorf("want a size such as \"2GiB\" or a number of bytes, got %v", v)
}

// MarshalText implements encoding.TextMarshaler.
func (b ByteSize) MarshalText() ([]byte, error) { return []byte(b.String()), nil }

func (b ByteSize) String() string {
	for _, u := range []struct {
		name string
		n    int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if int64(b) >= u.n && int64(b)%u.n == 0 {
			return fmt.Sprintf("%d%s", int64(b)/u.n, u.name)
		}
	}
	return fmt.Sprintf("%dB", int64(b))
}

// ParseByteSize reads "123", "64KiB", "512MiB", "2GiB", "1TiB" (or KB,
// MB, GB, TB: powers of 1000).
func ParseByteSize(s string) (ByteSize, error) {
	t := strings.TrimSpace(s)
	i := strings.IndexFunc(t, func(r rune) bool { return !(r >= '0' && r <= '9' || r == '.') })
	num, unit := t, ""
	if i >= 0 {
		num, unit = t[:i], strings.TrimSpace(t[i:])
	}
	mult := map[string]float64{"": 1, "B": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12,
		"KIB": 1 << 10, "MIB": 1 << 20, "GIB": 1 << 30, "TIB": 1 << 40}[strings.ToUpper(unit)]
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || mult == 0 || f < 0 || f*mult > math.MaxInt64/2 {
		return 0, fmt.Errorf("want a size such as \"2GiB\" or \"500MB\", got %q", s)
	}
	return ByteSize(f * mult), nil
}

// MinStoreBytes is the smallest max_store_bytes: every stream and bucket
// must hold at least one message of the largest size (store.MaxPayload).
const MinStoreBytes = 128 << 20

// QueueConfig tunes the supervisors' queue board.
type QueueConfig struct {
	// ServiceLevel is the threshold of the service level: the share of
	// incoming calls answered within it.
	ServiceLevel Duration `toml:"service_level"`
	// LongBreak is how long a break may last before the wallboard shows it
	// in alarm colours.
	LongBreak Duration `toml:"long_break"`
}

// NATSConfig selects the NATS server.
type NATSConfig struct {
	URL string `toml:"url"` // "" embeds a server in data_dir
	// Sync is when the embedded server makes its writes durable on disk
	// (fsync): "always" (before every acknowledgement) or an interval;
	// DefaultSync when empty. Every write is handed to the operating
	// system before it is acknowledged in any case, so a killed relay
	// loses nothing; the setting decides what a power cut can take.
	Sync string `toml:"sync"`
	// Replicas is how many copies JetStream keeps of every stream and
	// bucket (1, 3 or 5; 0 means 1); at most the cluster's size. It is
	// applied at every start, to existing streams too: raising it is how a
	// single node's data becomes a cluster's (docs/cluster.md).
	Replicas int `toml:"replicas"`
	// CredsFile, TLSCA, TLSCert and TLSKey are for an external NATS
	// (url): a .creds file (JWT and NKey seed), the CA that signed the
	// servers' certificates, and a client certificate (PEM files).
	CredsFile string `toml:"creds_file"`
	TLSCA     string `toml:"tls_ca"`
	TLSCert   string `toml:"tls_cert"`
	TLSKey    string `toml:"tls_key"`
	// Cluster joins the embedded server to the other relays' into one
	// JetStream cluster; unset, it runs alone.
	Cluster NATSCluster `toml:"cluster"`
}

// NATSCluster is [nats.cluster]: the embedded server's cluster.
type NATSCluster struct {
	Name   string   `toml:"name"`   // the cluster's name, the same on every node
	Listen string   `toml:"listen"` // host:port the other nodes' routes reach
	Routes []string `toml:"routes"` // nats-route://host:port of the other nodes (this one's own may be in the list)
	// ServerName is this node's name in the cluster, unique and stable
	// (JetStream knows its peers by it); default ServerName().
	ServerName string `toml:"server_name"`
	// Secret is the cluster's shared secret, the same on every node: a
	// route that does not present it is refused. Without it (and without
	// TLS) anyone reaching listen can join the cluster: the relay warns
	// at start when listen is not a loopback address.
	Secret     string `toml:"secret"`
	SecretFile string `toml:"secret_file"` // or the secret in a file
	// TLSCA, TLSCert and TLSKey (PEM files) make the routes TLS, each
	// side verifying the other's certificate against tls_ca.
	TLSCA   string `toml:"tls_ca"`
	TLSCert string `toml:"tls_cert"`
	TLSKey  string `toml:"tls_key"`
}

// Enabled reports whether [nats.cluster] is set.
func (c NATSCluster) Enabled() bool {
	return c.Name != "" || c.Listen != "" || len(c.Routes) > 0 || c.ServerName != ""
}

// NodeName is the server's name: server_name, or one made from listen,
// "pult-<host>-<port>" (stable as long as listen is).
func (c NATSCluster) NodeName() string {
	if c.ServerName != "" {
		return c.ServerName
	}
	host, port, _ := net.SplitHostPort(c.Listen)
	name := "pult-" + host + "-" + port
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '-'
	}, name)
}

// StreamReplicas is replicas with its default: 1.
func (n NATSConfig) StreamReplicas() int { return max(n.Replicas, 1) }

// DefaultSync is the embedded server's sync interval when [nats] sync is
// not set: a power cut loses at most about a second of acknowledged writes.
const DefaultSync = time.Second

// SyncPolicy is [nats] sync decoded: always, or the interval (Validate has
// checked it).
func (n NATSConfig) SyncPolicy() (interval time.Duration, always bool) {
	switch n.Sync {
	case "":
		return DefaultSync, false
	case "always":
		return 0, true
	}
	d, _ := time.ParseDuration(n.Sync)
	return d, false
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

	// The integration module `pult-relay retailcrm register` sends.
	ModuleName     string          `toml:"module_name"`
	LogoURL        string          `toml:"logo_url"`
	AccountURL     string          `toml:"account_url"`
	ExternalPhones []ExternalPhone `toml:"external_phones"`

	// ForwardEvents sends every call event (in, out, hangup) to retailCRM's
	// telephony/call/event, so the CRM shows its own call card.
	ForwardEvents bool `toml:"forward_events"`
	// SyncStatus sets an operator's status in retailCRM too (users/{id}/status).
	SyncStatus bool `toml:"sync_status"`
	// UploadCalls sends the call history (every finished call, and what
	// PBXes upload to the relay) to telephony/calls/upload, in batches.
	UploadCalls *bool `toml:"upload_calls"`
	// UploadWait is the longest a finished call waits for its batch to fill.
	UploadWait Duration `toml:"upload_wait"`
}

// ExternalPhone maps a shop (site code) to a company number.
type ExternalPhone struct {
	Site  string `toml:"site"`
	Phone string `toml:"phone"`
}

// Uploading reports whether call history goes to retailCRM.
func (c RetailCRMConfig) Uploading() bool {
	return c.URL != "" && (c.UploadCalls == nil || *c.UploadCalls)
}

// UISConfig is the UIS (CoMagic) notifications' channel.
type UISConfig struct {
	// Token is the channel token the customer writes into UIS's templates
	// (ud_channel_token) or the notification URLs (?token=). Empty: the
	// UIS hooks are off.
	Token     string `toml:"token"`
	TokenFile string `toml:"token_file"`
	// RingUnassigned: an incoming call whose notification names no employee
	// rings every operator mapped to a UIS employee. Off, such a call is
	// only recorded, and its card appears when somebody answers it.
	RingUnassigned bool `toml:"ring_unassigned"`
}

// SmartsuppConfig is the Smartsupp chat export hook.
type SmartsuppConfig struct {
	// Token is the secret in the hook URL (?token=). Empty: the hook is off.
	Token     string `toml:"token"`
	TokenFile string `toml:"token_file"`
}

// QolioConfig is the Qolio text integration transcripts go to.
type QolioConfig struct {
	// URL is the integration's full text URL as Qolio gives it:
	// https://…/api/v1/integrations/<id>/text. Empty: transcripts are off.
	URL       string `toml:"url"`
	Token     string `toml:"token"`
	TokenFile string `toml:"token_file"`
	// DefaultOperator is the operator_id of chats whose agent is not mapped
	// to an operator; empty means "smartsupp:<agent id>".
	DefaultOperator string   `toml:"default_operator"`
	Timeout         Duration `toml:"timeout"`
}

// CalltouchConfig is the Calltouch project callbacks are ordered in.
type CalltouchConfig struct {
	URL       string `toml:"url"`
	Token     string `toml:"token"`
	TokenFile string `toml:"token_file"`
	RouteKey  string `toml:"route_key"`
	// Timeout bounds one callback request: the operator waits for it.
	Timeout Duration `toml:"timeout"`
}

// Configured reports whether callbacks can be ordered.
func (c CalltouchConfig) Configured() bool { return c.Token != "" && c.RouteKey != "" }

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

// AdminSocketName is the admin socket's file name in data_dir.
const AdminSocketName = "admin.sock"

// AdminSocket is the path of the admin API's unix socket.
func (c *Config) AdminSocket() string { return filepath.Join(c.DataDir, AdminSocketName) }

// Defaults returns a configuration with every default filled in.
func Defaults() Config {
	return Config{
		Listen:         "127.0.0.1:8700",
		DataDir:        "./data",
		PhoneRegion:    "RU",
		MaxFrame:       wire.DefaultMaxFrame,
		EventRetention: Duration{7 * 24 * time.Hour},
		TimeZone:       "Europe/Moscow",
		PBX:            PBXConfig{Timeout: Duration{10 * time.Second}},
		RetailCRM: RetailCRMConfig{
			Code:         "pult",
			ManagerCache: Duration{time.Minute},
			Timeout:      Duration{5 * time.Second},
			ModuleName:   "pult",
			UploadWait:   Duration{10 * time.Second},
		},
		Qolio:     QolioConfig{Timeout: Duration{20 * time.Second}},
		Calltouch: CalltouchConfig{URL: calltouch.DefaultBaseURL, Timeout: Duration{10 * time.Second}},
		Queue:     QueueConfig{ServiceLevel: Duration{20 * time.Second}, LongBreak: Duration{15 * time.Minute}},
		Outbox: OutboxConfig{
			MinBackoff: Duration{time.Second},
			MaxBackoff: Duration{5 * time.Minute},
			GiveUp:     Duration{24 * time.Hour},
			RateLimits: DefaultRateLimits(),
		},
		Limits: LimitsConfig{
			RequestsPerSecond:     5,
			Burst:                 20,
			SessionsPerOperator:   4,
			TranscriptsPerMinute:  10,
			RequestIDsPerOperator: 1024,
			MaxStoreBytes:         4 << 30,
			DeadLetters:           10000,
		},
	}
}

// Env names that override secrets in the file (read by cmd/, passed in).
var EnvOverrides = map[string]string{
	"PULT_ADMIN_TOKEN":         "admin_token",
	"PULT_PBX_CLIENT_ID":       "pbx.client_id",
	"PULT_PBX_API_KEY":         "pbx.api_key",
	"PULT_RETAILCRM_API_KEY":   "retailcrm.api_key",
	"PULT_NATS_URL":            "nats.url",
	"PULT_NATS_CLUSTER_SECRET": "nats.cluster.secret",
	"PULT_UIS_TOKEN":           "uis.token",
	"PULT_SMARTSUPP_TOKEN":     "smartsupp.token",
	"PULT_QOLIO_TOKEN":         "qolio.token",
	"PULT_CALLTOUCH_TOKEN":     "calltouch.token",
}

// maxConfigSize bounds the config file.
const maxConfigSize = 1 << 20

// Load reads a TOML file, applies env overrides (getenv may be nil),
// reads *_file secrets, and validates the result.
func Load(path string, getenv func(string) string) (Config, error) {
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
			"nats.url": &c.NATS.URL, "uis.token": &c.UIS.Token, "smartsupp.token": &c.Smartsupp.Token,
			"qolio.token": &c.Qolio.Token, "calltouch.token": &c.Calltouch.Token,
			"nats.cluster.secret": &c.NATS.Cluster.Secret,
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
		{"uis.token", &c.UIS.Token, &c.UIS.TokenFile},
		{"smartsupp.token", &c.Smartsupp.Token, &c.Smartsupp.TokenFile},
		{"qolio.token", &c.Qolio.Token, &c.Qolio.TokenFile},
		{"calltouch.token", &c.Calltouch.Token, &c.Calltouch.TokenFile},
		{"nats.cluster.secret", &c.NATS.Cluster.Secret, &c.NATS.Cluster.SecretFile},
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
	c.validateListeners(bad)
	if (c.TLSCert == "") != (c.TLSKey == "") {
		bad("tls_cert", "tls_cert and tls_key go together")
	}
	if c.DataDir == "" {
		bad("data_dir", "required: the admin socket (and the embedded NATS server's JetStream) live there")
	} else if err := sockfile.CheckPath(c.AdminSocket()); err != nil {
		bad("data_dir", "too long for the admin socket in it: %v; choose a shorter data_dir", err)
	}
	if c.NATS.Sync != "" {
		if c.NATS.URL != "" {
			bad("nats.sync", "applies to the embedded server only; an external server has its own (jetstream { sync_interval })")
		} else if d, err := time.ParseDuration(c.NATS.Sync); c.NATS.Sync != "always" && (err != nil || d < 10*time.Millisecond || d > 10*time.Minute) {
			bad("nats.sync", `want "always" or an interval between 10ms and 10m, got %q`, c.NATS.Sync)
		}
	}
	c.validateNATS(bad)
	if c.PublicURL != "" {
		if err := checkURL(c.PublicURL); err != nil {
			bad("public_url", "%v", err)
		}
	}
	switch {
	case c.AdminListen != "" && len(c.AdminToken) < 16:
		bad("admin_token", "required with admin_listen, at least 16 characters (or admin_token_file, or PULT_ADMIN_TOKEN)")
	case c.AdminToken != "" && len(c.AdminToken) < 16:
		bad("admin_token", "at least 16 characters")
	}
	if c.MaxFrame < 1024 || c.MaxFrame > 16<<20 {
		bad("max_frame", "must be between 1024 and 16777216 bytes")
	}
	if c.TraceEvents < 0 || c.TraceEvents > eventtrace.MaxEvents {
		bad("trace_events", fmt.Sprintf("must be between 0 and %d", eventtrace.MaxEvents))
	}
	if c.TraceEvents > 0 && c.MetricsListen == "" {
		bad("trace_events", "needs metrics_listen, where the events are served")
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
	if sl := c.Queue.ServiceLevel.Duration; sl < time.Second || sl > time.Hour || sl%time.Second != 0 {
		bad("queue.service_level", "must be whole seconds between 1s and 1h")
	}
	if lb := c.Queue.LongBreak.Duration; lb < time.Minute || lb > 24*time.Hour {
		bad("queue.long_break", "must be between 1m and 24h")
	}
	if len(c.PhoneRegion) != 2 {
		bad("phone_region", "want a two-letter country code such as RU")
	}
	if _, err := loadZone(c.TimeZone); err != nil {
		bad("time_zone", "%v", err)
	}
	c.validatePartners(bad)
	c.validateLimits(bad)
	return errors.Join(errs...)
}

// clusterName is what NATS takes as a cluster's or server's name.
var clusterName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// validateNATS checks [nats] but sync: replicas, the embedded server's
// cluster, and the external server's credentials and TLS.
func (c *Config) validateNATS(bad func(key, format string, a ...any)) {
	n := c.NATS
	if n.Replicas < 0 || n.Replicas > 5 {
		bad("nats.replicas", "must be between 1 and 5 (JetStream keeps at most 5 copies), got %d", n.Replicas)
	}
	if n.URL != "" {
		if n.Cluster.Enabled() {
			bad("nats.cluster", "applies to the embedded server only; an external NATS cluster is configured on its servers (list them in url)")
		}
		if (n.TLSCert == "") != (n.TLSKey == "") {
			bad("nats.tls_cert", "nats.tls_cert and nats.tls_key go together")
		}
		for _, f := range []struct{ key, path string }{
			{"nats.creds_file", n.CredsFile}, {"nats.tls_ca", n.TLSCA}, {"nats.tls_cert", n.TLSCert}, {"nats.tls_key", n.TLSKey},
		} {
			if f.path == "" {
				continue
			}
			if st, err := os.Stat(f.path); err != nil {
				bad(f.key, "%v", err)
			} else if st.IsDir() {
				bad(f.key, "%s is a folder, not a file", f.path)
			}
		}
		for u := range strings.SplitSeq(n.URL, ",") {
			if strings.TrimSpace(u) == "" {
				bad("nats.url", "an empty URL in the list %q", n.URL)
			}
		}
		return
	}
	for _, f := range []struct{ key, v string }{
		{"nats.creds_file", n.CredsFile}, {"nats.tls_ca", n.TLSCA}, {"nats.tls_cert", n.TLSCert}, {"nats.tls_key", n.TLSKey},
	} {
		if f.v != "" {
			bad(f.key, "applies to an external NATS (nats.url) only; the embedded server is reached in-process")
		}
	}
	cl := n.Cluster
	if !cl.Enabled() {
		if n.Replicas > 1 {
			bad("nats.replicas", "%d copies need a cluster: set [nats.cluster] (or an external NATS cluster in nats.url)", n.Replicas)
		}
		return
	}
	if !clusterName.MatchString(cl.Name) {
		bad("nats.cluster.name", "required with [nats.cluster], the same on every node: letters, digits, - and _ (at most 64), got %q", cl.Name)
	}
	if err := checkListen(cl.Listen); err != nil {
		bad("nats.cluster.listen", "%v", err)
	} else if _, port, _ := net.SplitHostPort(cl.Listen); port == "0" {
		bad("nats.cluster.listen", "needs a fixed port: the other nodes' routes name it")
	} else {
		for _, l := range []struct{ key, addr string }{{"listen", c.Listen}, {"admin_listen", c.AdminListen}, {"metrics_listen", c.MetricsListen}} {
			if l.addr == cl.Listen {
				bad("nats.cluster.listen", "the same address as %s", l.key)
			}
		}
	}
	if cl.Secret != "" && (len(cl.Secret) < 16 || len(cl.Secret) > 256 || strings.ContainsAny(cl.Secret, "@:/ \t\r\n")) {
		bad("nats.cluster.secret", "16 to 256 characters, none of @ : / or spaces")
	}
	if cl.TLSCert != "" || cl.TLSKey != "" || cl.TLSCA != "" {
		if cl.TLSCert == "" || cl.TLSKey == "" || cl.TLSCA == "" {
			bad("nats.cluster.tls_cert", "tls_ca, tls_cert and tls_key go together")
		}
		for _, f := range []struct{ key, path string }{{"nats.cluster.tls_ca", cl.TLSCA}, {"nats.cluster.tls_cert", cl.TLSCert}, {"nats.cluster.tls_key", cl.TLSKey}} {
			if f.path != "" {
				if _, err := os.Stat(f.path); err != nil {
					bad(f.key, "%v", err)
				}
			}
		}
	}
	if cl.ServerName != "" && !clusterName.MatchString(cl.ServerName) {
		bad("nats.cluster.server_name", "letters, digits, - and _ (at most 64), got %q", cl.ServerName)
	}
	if len(cl.Routes) == 0 {
		bad("nats.cluster.routes", "required with [nats.cluster]: the other nodes, as nats-route://host:port")
	}
	others := map[string]bool{}
	for i, r := range cl.Routes {
		u, err := url.Parse(r)
		if err != nil || u.Scheme != "nats-route" || u.Host == "" || u.Port() == "" || (u.Path != "" && u.Path != "/") {
			bad(fmt.Sprintf("nats.cluster.routes[%d]", i), "want nats-route://host:port, got %q", r)
			continue
		}
		if u.User != nil {
			bad(fmt.Sprintf("nats.cluster.routes[%d]", i), "must not hold credentials")
			continue
		}
		if u.Host != cl.Listen {
			others[u.Host] = true
		}
	}
	if size := len(others) + 1; n.Replicas > size {
		bad("nats.replicas", "%d copies, but the cluster has at most %d nodes (this one and nats.cluster.routes)", n.Replicas, size)
	}
}

// validateListeners checks listen, admin_listen and metrics_listen: each a
// host:port, no two the same (but for port 0, any free port).
func (c *Config) validateListeners(bad func(key, format string, a ...any)) {
	seen := map[string]string{}
	for _, l := range []struct{ key, addr string }{
		{"listen", c.Listen}, {"admin_listen", c.AdminListen}, {"metrics_listen", c.MetricsListen},
	} {
		if l.addr == "" && l.key != "listen" {
			continue
		}
		if err := checkListen(l.addr); err != nil {
			bad(l.key, "%v", err)
			continue
		}
		if _, port, _ := net.SplitHostPort(l.addr); port == "0" {
			continue
		}
		if other, ok := seen[l.addr]; ok {
			bad(l.key, "%s is %s's address already; each listener needs its own", l.addr, other)
		}
		seen[l.addr] = l.key
	}
}

// checkListen checks an address to listen on: host:port, the host empty
// (every interface), an IP or a name, the port a number.
func checkListen(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("want host:port, got %q", addr)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || (n == 0 && port != "0") {
		return fmt.Errorf("want a port number from 0 to 65535, got %q", addr)
	}
	if strings.ContainsAny(host, "/ ") {
		return fmt.Errorf("want host:port, got %q", addr)
	}
	return nil
}

// validateLimits checks [limits].
func (c *Config) validateLimits(bad func(key, format string, a ...any)) {
	l := c.Limits
	if !(l.RequestsPerSecond >= 0.1 && l.RequestsPerSecond <= 1000) {
		bad("limits.requests_per_second", "must be between 0.1 and 1000 requests per second")
	}
	if l.Burst < 1 || l.Burst > 10000 {
		bad("limits.burst", "must be between 1 and 10000 requests")
	}
	if l.SessionsPerOperator < 1 || l.SessionsPerOperator > 100 {
		bad("limits.sessions_per_operator", "must be between 1 and 100")
	}
	if l.TranscriptsPerMinute < 1 || l.TranscriptsPerMinute > 10000 {
		bad("limits.transcripts_per_minute", "must be between 1 and 10000")
	}
	if l.RequestIDsPerOperator < 16 || l.RequestIDsPerOperator > 1<<20 {
		bad("limits.request_ids_per_operator", "must be between 16 and 1048576")
	}
	if l.MaxStoreBytes < MinStoreBytes {
		bad("limits.max_store_bytes", "must be at least %s, got %s", ByteSize(MinStoreBytes), l.MaxStoreBytes)
	}
	if l.DeadLetters < 10 || l.DeadLetters > 10_000_000 {
		bad("limits.dead_letters", "must be between 10 and 10000000")
	}
}

// validatePartners checks the UIS, Smartsupp, Qolio, Calltouch and retailCRM
// integration keys.
func (c *Config) validatePartners(bad func(key, format string, a ...any)) {
	r := c.RetailCRM
	for key, on := range map[string]bool{"retailcrm.forward_events": r.ForwardEvents, "retailcrm.sync_status": r.SyncStatus} {
		if on && r.URL == "" {
			bad(key, "needs retailcrm.url")
		}
	}
	if r.UploadWait.Duration < 100*time.Millisecond || r.UploadWait.Duration > 5*time.Minute {
		bad("retailcrm.upload_wait", "must be between 100ms and 5m")
	}
	if strings.TrimSpace(r.ModuleName) == "" || len(r.ModuleName) > 255 {
		bad("retailcrm.module_name", "required, at most 255 characters")
	}
	for key, u := range map[string]string{"retailcrm.logo_url": r.LogoURL, "retailcrm.account_url": r.AccountURL} {
		if u != "" {
			if err := checkURL(u); err != nil {
				bad(key, "%v", err)
			}
		}
	}
	sites := map[string]bool{}
	for i, ep := range r.ExternalPhones {
		key := fmt.Sprintf("retailcrm.external_phones[%d]", i)
		if strings.TrimSpace(ep.Site) == "" || len(ep.Site) > 255 {
			bad(key+".site", "required: the shop's symbolic code, at most 255 characters")
		}
		n, err := phone.Parse(ep.Phone, c.PhoneRegion)
		switch {
		case err != nil:
			bad(key+".phone", "%v", err)
		case sites[n.E164]:
			bad(key+".phone", "%s is listed twice", n.National)
		default:
			sites[n.E164] = true
		}
	}
	if t := c.UIS.Token; t != "" && (len(t) < 8 || len(t) > 256) {
		bad("uis.token", "must be 8 to 256 characters")
	}
	if t := c.Smartsupp.Token; t != "" {
		if len(t) < 16 || len(t) > 256 || strings.ContainsAny(t, "&#?/ %+") {
			bad("smartsupp.token", "must be 16 to 256 characters that need no escaping in a URL")
		}
		if c.Qolio.URL == "" {
			bad("smartsupp.token", "the Smartsupp hook forwards chats to Qolio: set qolio.url too")
		}
	}
	if q := c.Qolio; q.URL != "" {
		if err := checkQolioURL(q.URL); err != nil {
			bad("qolio.url", "%v", err)
		}
		if q.Token == "" {
			bad("qolio.token", "required when qolio.url is set (or qolio.token_file, or PULT_QOLIO_TOKEN)")
		}
	}
	if len(c.Qolio.DefaultOperator) > 255 || strings.ContainsFunc(c.Qolio.DefaultOperator, unicode.IsControl) {
		bad("qolio.default_operator", "at most 255 characters, no control characters")
	}
	if c.Qolio.Timeout.Duration <= 0 || c.Qolio.Timeout.Duration > time.Minute {
		bad("qolio.timeout", "must be between 0 and 1m")
	}
	ct := c.Calltouch
	if err := checkURL(ct.URL); err != nil {
		bad("calltouch.url", "%v", err)
	}
	if (ct.Token == "") != (ct.RouteKey == "") {
		bad("calltouch", "token and route_key go together: set both to order callbacks, or neither")
	}
	if ct.RouteKey != "" {
		if err := calltouch.CheckRouteKey(ct.RouteKey); err != nil {
			bad("calltouch.route_key", "%v", err)
		}
	}
	if ct.Timeout.Duration <= 0 || ct.Timeout.Duration > 15*time.Second {
		bad("calltouch.timeout", "must be between 0 and 15s: the operator waits for it")
	}
}

var qolioTextPath = regexp.MustCompile(`^(/[^?#]*)?/api/v1/integrations/[^/?#]+/text$`)

func checkQolioURL(s string) error {
	if err := checkURL(s); err != nil {
		return err
	}
	u, _ := url.Parse(s)
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return errors.New("must not carry credentials, a query or a fragment")
	}
	if !qolioTextPath.MatchString(u.Path) {
		return fmt.Errorf("want the integration's text URL, https://…/api/v1/integrations/<id>/text, got %q", s)
	}
	return nil
}

// loadZone reads a time zone name; Moscow works even without a time zone
// database (it has been UTC+3 all year since 2014).
func loadZone(name string) (*time.Location, error) {
	if name == "" {
		return nil, errors.New("required, e.g. Europe/Moscow")
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		if name == "Europe/Moscow" {
			return time.FixedZone("MSK", 3*3600), nil
		}
		return nil, fmt.Errorf("unknown time zone %q", name)
	}
	return loc, nil
}

// Location is TimeZone loaded (UTC if it is not valid).
func (c *Config) Location() *time.Location {
	loc, err := loadZone(c.TimeZone)
	if err != nil {
		return time.UTC
	}
	return loc
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

// Open reports whether the cluster's routes take anyone who reaches
// listen: no secret, no TLS, and listen not a loopback address.
func (c NATSCluster) Open() bool {
	return c.Enabled() && c.Secret == "" && c.TLSCert == "" && !loopbackListen(c.Listen)
}

// loopbackListen reports whether a host:port listens on loopback only
// ("localhost" or a loopback IP; an empty host listens everywhere).
func loopbackListen(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
