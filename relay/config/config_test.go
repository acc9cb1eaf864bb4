package config

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
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

func TestLoad(t *testing.T) {
	cfg, err := Load(writeConfig(t, minimal), nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:8700" || cfg.MaxFrame != 65536 || cfg.RetailCRM.Code != "pult" || cfg.PBX.Timeout.Seconds() != 10 {
		t.Errorf("defaults not applied: %+v", cfg)
	}
}

// The admin socket needs no admin token: without admin_listen it may be
// left out; the admin and metrics listeners are off by default.
func TestLoadAdminSides(t *testing.T) {
	noToken := strings.Replace(minimal, `admin_token = "0123456789abcdef0123"`, "", 1)
	cfg, err := Load(writeConfig(t, "data_dir = \"/var/lib/pult\"\n"+noToken), nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.AdminListen != "" || cfg.MetricsListen != "" || cfg.AdminSocket() != "/var/lib/pult/admin.sock" {
		t.Errorf("defaults: admin_listen %q, metrics_listen %q, socket %q", cfg.AdminListen, cfg.MetricsListen, cfg.AdminSocket())
	}
	cfg, err = Load(writeConfig(t, "admin_listen = \"0.0.0.0:8701\"\nmetrics_listen = \"[::1]:9100\"\n"+minimal), nil)
	if err != nil || cfg.AdminListen != "0.0.0.0:8701" || cfg.MetricsListen != "[::1]:9100" {
		t.Errorf("admin_listen, metrics_listen: %+v %v", cfg, err)
	}
	// Port 0 (any free port) may repeat.
	cfg = Defaults()
	cfg.Listen, cfg.AdminListen, cfg.MetricsListen = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.AdminToken, cfg.PBX.ClientID, cfg.PBX.APIKey = "0123456789abcdef0123", "cid", "pbx-key-123"
	if err := cfg.Validate(); err != nil {
		t.Errorf("three listeners on port 0: %v", err)
	}
}

func TestLoadConfigQueue(t *testing.T) {
	cfg, err := Load(writeConfig(t, minimal), nil)
	if err != nil || cfg.Queue.ServiceLevel.Duration != 20*time.Second || cfg.Queue.LongBreak.Duration != 15*time.Minute {
		t.Fatalf("defaults: %+v %v", cfg.Queue, err)
	}
	cfg, err = Load(writeConfig(t, minimal+"[queue]\nservice_level = \"30s\"\nlong_break = \"20m\"\n"), nil)
	if err != nil || cfg.Queue.ServiceLevel.Duration != 30*time.Second || cfg.Queue.LongBreak.Duration != 20*time.Minute {
		t.Fatalf("[queue]: %+v %v", cfg.Queue, err)
	}
}

func TestLoadConfigOutbox(t *testing.T) {
	cfg, err := Load(writeConfig(t, minimal+`
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
	cfg, err := Load(p, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if cfg.RetailCRM.APIKey != "crm-secret" || cfg.PBX.APIKey != "from-env-key" || cfg.NATS.URL != "nats://127.0.0.1:4222" {
		t.Errorf("secrets: crm=%q pbx=%q nats=%q", cfg.RetailCRM.APIKey, cfg.PBX.APIKey, cfg.NATS.URL)
	}
}

func TestLoadConfigPartners(t *testing.T) {
	dir := t.TempDir()
	qolioFile := filepath.Join(dir, "qolio.token")
	os.WriteFile(qolioFile, []byte("qolio-secret\n"), 0o600)
	p := writeConfig(t, `time_zone = "Asia/Yekaterinburg"
public_url = "https://pult.example.com"
`+minimal+`
[retailcrm]
url = "https://example.retailcrm.ru"
api_key = "crm-key"
forward_events = true
sync_status = true
upload_calls = false
upload_wait = "3s"
module_name = "pult telephony"
logo_url = "https://pult.example.com/logo.svg"
external_phones = [{site = "shop1", phone = "+7 (499) 999-99-99"}]

[uis]
token = "uis-channel-token"
ring_unassigned = true

[smartsupp]
token = "0123456789abcdef"

[qolio]
url = "https://api.qolio.ru/api/v1/integrations/9e5af994/text"
token_file = "`+qolioFile+`"
default_operator = "support@example.com"

[calltouch]
route_key = "routekey_1"
`)
	env := map[string]string{"PULT_CALLTOUCH_TOKEN": "ct-from-env", "PULT_UIS_TOKEN": "uis-from-env"}
	cfg, err := Load(p, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	r := cfg.RetailCRM
	if !r.ForwardEvents || !r.SyncStatus || r.Uploading() || r.UploadWait.Seconds() != 3 || r.ModuleName != "pult telephony" ||
		len(r.ExternalPhones) != 1 || r.ExternalPhones[0] != (ExternalPhone{Site: "shop1", Phone: "+7 (499) 999-99-99"}) {
		t.Errorf("retailcrm: %+v", r)
	}
	if cfg.UIS.Token != "uis-from-env" || !cfg.UIS.RingUnassigned || cfg.Smartsupp.Token != "0123456789abcdef" {
		t.Errorf("uis, smartsupp: %+v %+v", cfg.UIS, cfg.Smartsupp)
	}
	if cfg.Qolio.Token != "qolio-secret" || cfg.Qolio.DefaultOperator != "support@example.com" || cfg.Qolio.Timeout.Seconds() != 20 {
		t.Errorf("qolio: %+v", cfg.Qolio)
	}
	if c := cfg.Calltouch; c.Token != "ct-from-env" || c.RouteKey != "routekey_1" || c.URL != "https://api.calltouch.ru" || !c.Configured() || c.Timeout.Seconds() != 10 {
		t.Errorf("calltouch: %+v", c)
	}
	if _, off := time.Date(2024, 1, 1, 0, 0, 0, 0, cfg.Location()).Zone(); off != 5*3600 {
		t.Errorf("time zone: %v", cfg.Location())
	}
	d, _ := Load(writeConfig(t, minimal), nil)
	if d.TimeZone != "Europe/Moscow" || d.RetailCRM.Uploading() || d.Calltouch.Configured() {
		t.Errorf("defaults: %+v", d)
	}
	d.RetailCRM.URL = "https://x.retailcrm.ru"
	if !d.RetailCRM.Uploading() {
		t.Error("upload_calls is not on by default")
	}
}

func TestLoadConfigRefuses(t *testing.T) {
	for _, tc := range []struct{ name, body, want string }{
		{"unknown key", minimal + "\nlisten_addr = \"x\"\n", "unknown keys: pbx.listen_addr"},
		{"certificate without key", "tls_cert = \"/etc/pult/cert.pem\"\n" + minimal, "tls_cert and tls_key go together"},
		{"short admin token", strings.Replace(minimal, "0123456789abcdef0123", "short", 1), "admin_token"},
		{"no client id", strings.Replace(minimal, `client_id = "cid"`, "", 1), "pbx.client_id"},
		{"bad URL", minimal + "make_call_url = \"ftp://pbx\"\n", "pbx.make_call_url"},
		{"crm without key", minimal + "[retailcrm]\nurl = \"https://x.retailcrm.ru\"\n", "retailcrm.api_key"},
		{"bad duration", minimal + "[outbox]\nmin_backoff = \"soon\"\n", "min_backoff"},
		{"service level not whole seconds", minimal + "[queue]\nservice_level = \"1500ms\"\n", "queue.service_level: must be whole seconds between 1s and 1h"},
		{"long break too short", minimal + "[queue]\nlong_break = \"10s\"\n", "queue.long_break: must be between 1m and 24h"},
		{"unknown queue key", minimal + "[queue]\nbreak_warning = \"10m\"\n", "unknown keys: queue.break_warning"},
		{"unknown rate limit", minimal + "[outbox.rate_limits]\nqolio = 3\n", "outbox.rate_limits.qolio: unknown; want one of calltouch, retailcrm, retailcrm_telephony"},
		{"zero rate limit", minimal + "[outbox.rate_limits]\ncalltouch = 0\n", "outbox.rate_limits.calltouch"},
		{"long max_backoff", minimal + "[outbox]\nmax_backoff = \"2h\"\n", "outbox.max_backoff"},
		{"not TOML", "admin_token = ", "relay.toml"},
		{"unknown UIS key", minimal + "[uis]\ntoken = \"uis-token-1\"\nsecret = \"x\"\n", "unknown keys: uis.secret"},
		{"short UIS token", minimal + "[uis]\ntoken = \"x\"\n", "uis.token"},
		{"Smartsupp without Qolio", minimal + "[smartsupp]\ntoken = \"0123456789abcdef\"\n", "set qolio.url too"},
		{"Smartsupp token needing escapes", minimal + "[smartsupp]\ntoken = \"0123456789 abcdef&\"\n[qolio]\nurl = \"https://api.qolio.ru/api/v1/integrations/x/text\"\ntoken = \"t\"\n", "smartsupp.token"},
		{"Qolio URL not the text URL", minimal + "[qolio]\nurl = \"https://api.qolio.ru/api/v1/calls\"\ntoken = \"t\"\n", "qolio.url: want the integration's text URL"},
		{"Qolio without token", minimal + "[qolio]\nurl = \"https://api.qolio.ru/api/v1/integrations/x/text\"\n", "qolio.token"},
		{"Calltouch token without route key", minimal + "[calltouch]\ntoken = \"t\"\n", "token and route_key go together"},
		{"slow Calltouch", minimal + "[calltouch]\ntimeout = \"1m\"\n", "calltouch.timeout"},
		{"forward_events without retailCRM", minimal + "[retailcrm]\nforward_events = true\n", "retailcrm.forward_events: needs retailcrm.url"},
		{"sync_status without retailCRM", minimal + "[retailcrm]\nsync_status = true\n", "retailcrm.sync_status: needs retailcrm.url"},
		{"bad external phone", minimal + "[[retailcrm.external_phones]]\nsite = \"shop1\"\nphone = \"call us\"\n", "retailcrm.external_phones[0].phone"},
		{"external phone twice", minimal + "[[retailcrm.external_phones]]\nsite = \"a\"\nphone = \"+74999999999\"\n[[retailcrm.external_phones]]\nsite = \"b\"\nphone = \"8 499 999-99-99\"\n", "listed twice"},
		{"external phone without site", minimal + "[[retailcrm.external_phones]]\nphone = \"+74999999999\"\n", "retailcrm.external_phones[0].site"},
		{"unknown external phone key", minimal + "[[retailcrm.external_phones]]\nsite = \"a\"\nphone = \"+74999999999\"\nshop = \"a\"\n", "unknown keys"},
		{"upload_wait too long", minimal + "[retailcrm]\nupload_wait = \"1h\"\n", "retailcrm.upload_wait"},
		{"sync not a duration", minimal + "[nats]\nsync = \"often\"\n", `nats.sync: want "always" or an interval`},
		{"sync too long", minimal + "[nats]\nsync = \"1h\"\n", "nats.sync"},
		{"sync with an external server", minimal + "[nats]\nurl = \"nats://127.0.0.1:4222\"\nsync = \"always\"\n", "nats.sync: applies to the embedded server only"},
		{"replicas without a cluster", minimal + "[nats]\nreplicas = 3\n", "nats.replicas: 3 copies need a cluster"},
		{"replicas over 5", minimal + "[nats]\nurl = \"nats://a:4222\"\nreplicas = 7\n", "nats.replicas: must be between 1 and 5"},
		{"replicas over the cluster", minimal + "[nats]\nreplicas = 3\n[nats.cluster]\nname = \"p\"\nlisten = \"127.0.0.1:6222\"\nroutes = [\"nats-route://127.0.0.1:6222\", \"nats-route://127.0.0.1:6223\"]\n", "nats.replicas: 3 copies, but the cluster has at most 2 nodes"},
		{"cluster without a name", minimal + "[nats.cluster]\nlisten = \"127.0.0.1:6222\"\nroutes = [\"nats-route://127.0.0.1:6223\"]\n", "nats.cluster.name: required"},
		{"cluster listen port 0", minimal + "[nats.cluster]\nname = \"p\"\nlisten = \"127.0.0.1:0\"\nroutes = [\"nats-route://127.0.0.1:6223\"]\n", "nats.cluster.listen: needs a fixed port"},
		{"cluster without routes", minimal + "[nats.cluster]\nname = \"p\"\nlisten = \"127.0.0.1:6222\"\n", "nats.cluster.routes: required"},
		{"cluster route not nats-route", minimal + "[nats.cluster]\nname = \"p\"\nlisten = \"127.0.0.1:6222\"\nroutes = [\"nats://127.0.0.1:6223\"]\n", "nats.cluster.routes[0]: want nats-route://host:port"},
		{"cluster bad server name", minimal + "[nats.cluster]\nname = \"p\"\nserver_name = \"a b\"\nlisten = \"127.0.0.1:6222\"\nroutes = [\"nats-route://127.0.0.1:6223\"]\n", "nats.cluster.server_name"},
		{"cluster with an external server", minimal + "[nats]\nurl = \"nats://a:4222\"\n[nats.cluster]\nname = \"p\"\n", "nats.cluster: applies to the embedded server only"},
		{"creds without an external server", minimal + "[nats]\ncreds_file = \"/etc/pult/nats.creds\"\n", "nats.creds_file: applies to an external NATS"},
		{"creds file missing", minimal + "[nats]\nurl = \"nats://a:4222\"\ncreds_file = \"/nonexistent/nats.creds\"\n", "nats.creds_file:"},
		{"tls_cert without tls_key", minimal + "[nats]\nurl = \"nats://a:4222\"\ntls_cert = \"/nonexistent/c.pem\"\n", "nats.tls_cert: nats.tls_cert and nats.tls_key go together"},
		{"an empty url in the list", minimal + "[nats]\nurl = \"nats://a:4222,,nats://b:4222\"\n", "nats.url: an empty URL"},
		{"unknown time zone", "time_zone = \"Mars/Olympus\"\n" + minimal, "time_zone"},
		{"admin_listen without a port", "admin_listen = \"8701\"\n" + minimal, "admin_listen: want host:port"},
		{"admin_listen with a bad port", "admin_listen = \"127.0.0.1:99999\"\n" + minimal, "admin_listen: want a port number"},
		{"metrics_listen not an address", "metrics_listen = \"http://127.0.0.1:9100\"\n" + minimal, "metrics_listen"},
		{"admin_listen on the public address", "admin_listen = \"127.0.0.1:8700\"\n" + minimal, "admin_listen: 127.0.0.1:8700 is listen's address already"},
		{"metrics on the admin address", "admin_listen = \"127.0.0.1:8701\"\nmetrics_listen = \"127.0.0.1:8701\"\n" + minimal, "metrics_listen: 127.0.0.1:8701 is admin_listen's"},
		{"admin_listen without admin token", "admin_listen = \"127.0.0.1:8701\"\n" + strings.Replace(minimal, `admin_token = "0123456789abcdef0123"`, "", 1), "admin_token: required with admin_listen"},
		{"no data_dir", "data_dir = \"\"\n" + minimal, "data_dir: required"},
		{"trace_events without metrics_listen", "trace_events = 100\n" + minimal, "trace_events: needs metrics_listen"},
		{"trace_events too many", "trace_events = 100001\nmetrics_listen = \"127.0.0.1:9100\"\n" + minimal, "trace_events: must be between 0 and 100000"},
		{"trace_events negative", "trace_events = -1\n" + minimal, "trace_events: must be between 0 and"},
		{"data_dir too long for the socket", "data_dir = \"/var/lib/" + strings.Repeat("p", 100) + "\"\n" + minimal, "data_dir: too long for the admin socket"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(writeConfig(t, tc.body), nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.toml"), nil); err == nil {
		t.Fatal("a missing file was accepted")
	}
}

func TestLoadConfigLimits(t *testing.T) {
	cfg, err := Load(writeConfig(t, minimal), nil)
	if err != nil {
		t.Fatal(err)
	}
	if l := cfg.Limits; l.RequestsPerSecond != 5 || l.Burst != 20 || l.SessionsPerOperator != 4 || l.TranscriptsPerMinute != 10 ||
		l.RequestIDsPerOperator != 1024 || l.MaxStoreBytes != 4<<30 || l.DeadLetters != 10000 {
		t.Errorf("defaults: %+v", l)
	}
	cfg, err = Load(writeConfig(t, minimal+`
[limits]
requests_per_second = 2.5
burst = 5
sessions_per_operator = 2
transcripts_per_minute = 3
request_ids_per_operator = 100
max_store_bytes = "512MiB"
dead_letters = 50
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	if l := cfg.Limits; l.RequestsPerSecond != 2.5 || l.Burst != 5 || l.SessionsPerOperator != 2 || l.TranscriptsPerMinute != 3 ||
		l.RequestIDsPerOperator != 100 || l.MaxStoreBytes != 512<<20 || l.DeadLetters != 50 {
		t.Errorf("[limits]: %+v", l)
	}
	cfg, err = Load(writeConfig(t, minimal+"[limits]\nmax_store_bytes = 1073741824\n"), nil)
	if err != nil || cfg.Limits.MaxStoreBytes != 1<<30 {
		t.Errorf("max_store_bytes as an integer: %v %v", cfg.Limits.MaxStoreBytes, err)
	}
	for _, tc := range []struct{ body, want string }{
		{"requests_per_second = 0", "limits.requests_per_second"},
		{"burst = 0", "limits.burst"},
		{"sessions_per_operator = 0", "limits.sessions_per_operator"},
		{"transcripts_per_minute = -1", "limits.transcripts_per_minute"},
		{"request_ids_per_operator = 1", "limits.request_ids_per_operator"},
		{"max_store_bytes = \"1MiB\"", "limits.max_store_bytes: must be at least 128MiB"},
		{"max_store_bytes = \"lots\"", "max_store_bytes"},
		{"dead_letters = 0", "limits.dead_letters"},
	} {
		_, err := Load(writeConfig(t, minimal+"[limits]\n"+tc.body+"\n"), nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error naming %q", tc.body, err, tc.want)
		}
	}
}

func TestParseByteSize(t *testing.T) {
	for in, want := range map[string]ByteSize{"0": 0, "123": 123, "64KiB": 64 << 10, "2GiB": 2 << 30, "1.5 GB": 1.5e9, "500mb": 500e6} {
		if got, err := ParseByteSize(in); err != nil || got != want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "x", "-1", "1PB", "1e30"} {
		if _, err := ParseByteSize(in); err == nil {
			t.Errorf("ParseByteSize(%q) accepted", in)
		}
	}
}

func TestLoadConfigCluster(t *testing.T) {
	cfg, err := Load(writeConfig(t, minimal+`[nats]
replicas = 3
[nats.cluster]
name = "pult"
listen = "10.0.0.1:6222"
routes = ["nats-route://10.0.0.1:6222", "nats-route://10.0.0.2:6222", "nats-route://10.0.0.3:6222"]
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	n := cfg.NATS
	if n.StreamReplicas() != 3 || !n.Cluster.Enabled() || n.Cluster.NodeName() != "pult-10-0-0-1-6222" || len(n.Cluster.Routes) != 3 {
		t.Errorf("cluster: %+v, node %q", n, n.Cluster.NodeName())
	}
	n.Cluster.ServerName = "pult-a"
	if n.Cluster.NodeName() != "pult-a" {
		t.Errorf("server_name: %q", n.Cluster.NodeName())
	}
	d, _ := Load(writeConfig(t, minimal), nil)
	if d.NATS.StreamReplicas() != 1 || d.NATS.Cluster.Enabled() {
		t.Errorf("defaults: %+v", d.NATS)
	}
}

// [nats.cluster]'s secret (inline, in a file or from the environment) and
// TLS files: an open cluster is reported, a weak secret or half the TLS
// files refused.
func TestLoadConfigClusterSecret(t *testing.T) {
	const cluster = minimal + `[nats]
replicas = 3
[nats.cluster]
name = "pult"
listen = "10.0.0.1:6222"
routes = ["nats-route://10.0.0.2:6222", "nats-route://10.0.0.3:6222"]
`
	open, err := Load(writeConfig(t, cluster), nil)
	if err != nil || !open.NATS.Cluster.Open() {
		t.Fatalf("no secret on 10.0.0.1: open %v, %v", open.NATS.Cluster.Open(), err)
	}
	secretFile := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(secretFile, []byte("a-secret-from-a-file-0123\n"), 0o600)
	fromFile, err := Load(writeConfig(t, cluster+"secret_file = "+strconv.Quote(secretFile)+"\n"), nil)
	if err != nil || fromFile.NATS.Cluster.Secret != "a-secret-from-a-file-0123" || fromFile.NATS.Cluster.Open() {
		t.Errorf("secret_file: %q %v", fromFile.NATS.Cluster.Secret, err)
	}
	env := map[string]string{"PULT_NATS_CLUSTER_SECRET": "a-secret-from-the-env-0123"}
	fromEnv, err := Load(writeConfig(t, cluster), func(k string) string { return env[k] })
	if err != nil || fromEnv.NATS.Cluster.Secret != "a-secret-from-the-env-0123" {
		t.Errorf("PULT_NATS_CLUSTER_SECRET: %q %v", fromEnv.NATS.Cluster.Secret, err)
	}
	for _, bad := range []string{
		`secret = "short"`,
		`secret = "has:a-colon-0123456789"`,
		`tls_cert = "/nonexistent/cert.pem"`,
	} {
		if _, err := Load(writeConfig(t, cluster+bad+"\n"), nil); err == nil || !strings.Contains(err.Error(), "nats.cluster.") {
			t.Errorf("%s: %v", bad, err)
		}
	}
}
