package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pult/pult/relay"
	"github.com/pult/pult/relay/config"
	"github.com/pult/pult/relay/outbox"
	"github.com/pult/pult/relay/retailcrm"
	"github.com/pult/pult/relay/retailcrm/sim"
)

func runCLI(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, func(k string) string { return env[k] }, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func TestUsage(t *testing.T) {
	if code, out, _ := runCLI(t, nil); code != 0 || !strings.Contains(out, "pult-relay serve") {
		t.Errorf("no args: %d %q", code, out)
	}
	if code, _, errs := runCLI(t, nil, "frobnicate"); code != 2 || !strings.Contains(errs, "unknown command") {
		t.Errorf("unknown command: %d %q", code, errs)
	}
	if code, _, errs := runCLI(t, nil, "operators", "add", "--relay", "http://127.0.0.1:1", "--name", "A"); code != 2 || !strings.Contains(errs, "PULT_ADMIN_TOKEN") {
		t.Errorf("no admin token: %d %q", code, errs)
	}
	env := map[string]string{"PULT_ADMIN_TOKEN": "x"}
	if code, _, errs := runCLI(t, env, "operators", "add", "--relay", "http://127.0.0.1:1", "--name", "A", "--code", "1x", "--user-id", "1"); code != 2 || !strings.Contains(errs, "code") {
		t.Errorf("bad code: %d %q", code, errs)
	}
	if code, _, errs := runCLI(t, nil, "serve", "--config", "/nonexistent/relay.toml"); code != 1 || !strings.Contains(errs, "relay.toml") {
		t.Errorf("missing config: %d %q", code, errs)
	}
	if code, _, errs := runCLI(t, env, "operators", "list", "--relay", "http://127.0.0.1:1", "--socket", "/run/pult/admin.sock"); code != 2 || !strings.Contains(errs, "give one") {
		t.Errorf("--relay and --socket: %d %q", code, errs)
	}
	if code, _, errs := runCLI(t, env, "operators", "list", "--relay", "127.0.0.1:8701"); code != 2 || !strings.Contains(errs, "http://") {
		t.Errorf("--relay without a scheme: %d %q", code, errs)
	}
	if code, _, errs := runCLI(t, nil, "bench", "--target", "nats"); code != 2 || !strings.Contains(errs, "centrifugo, both or all") {
		t.Errorf("bench --target nats: %d %q", code, errs)
	}
	if code, _, errs := runCLI(t, nil, "bench", "--target", "both", "--restart"); code != 2 || !strings.Contains(errs, "--restart") {
		t.Errorf("bench --target both --restart: %d %q", code, errs)
	}
	if code, _, errs := runCLI(t, nil, "bench", "--target", "both", "--rounds", "0"); code != 2 || !strings.Contains(errs, "--rounds: want 1 to 20") {
		t.Errorf("bench --rounds 0: %d %q", code, errs)
	}
	if code, _, errs := runCLI(t, nil, "bench", "--target", "centrifugo", "--trace"); code != 2 || !strings.Contains(errs, "--trace times the relay's steps") {
		t.Errorf("bench --trace without pult: %d %q", code, errs)
	}
	if code, _, errs := runCLI(t, nil, "bench", "--rounds", "3"); code != 2 || !strings.Contains(errs, "several targets") {
		t.Errorf("bench --rounds 3 with one target: %d %q", code, errs)
	}
	if code, _, errs := runCLI(t, nil, "bench", "--target", "centrifugo", "--centrifugo-bin", "/nonexistent/centrifugo"); code != 1 || !strings.Contains(errs, "/nonexistent/centrifugo") {
		t.Errorf("bench --centrifugo-bin missing: %d %q", code, errs)
	}
}

// writeRelayConfig writes a relay's config with data_dir in a temporary
// folder (no admin_token: the admin socket does without) and returns its
// path and the config as loaded.
func writeRelayConfig(t *testing.T, extra string) (string, config.Config) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "relay.toml")
	body := fmt.Sprintf("listen = \"127.0.0.1:0\"\ndata_dir = %q\n%s\n[pbx]\nclient_id = \"cid\"\napi_key = \"pbx-key-123\"\n",
		filepath.Join(dir, "data"), extra)
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return path, cfg
}

// The admin commands with --config reach the relay on its admin socket, in
// the config's data_dir, without any admin token.
func TestOperatorsAgainstRunningRelay(t *testing.T) {
	path, cfg := writeRelayConfig(t, "")
	// Before the relay runs: a message that says what is wrong.
	if code, _, errs := runCLI(t, nil, "operators", "list", "--config", path); code != 1 ||
		!strings.Contains(errs, "is the relay running? no admin socket at "+cfg.AdminSocket()) {
		t.Errorf("no relay: %d %q", code, errs)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv := relay.New(cfg, nil)
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	defer func() { cancel(); <-done }()
	select {
	case <-srv.Ready():
	case <-time.After(20 * time.Second):
		t.Fatal("relay did not start")
	}
	var env map[string]string
	code, out, errs := runCLI(t, env, "operators", "add", "--config", path, "--name", "Anna", "--user-id", "1", "--code", "100", "--role", "supervisor")
	if code != 0 || !strings.Contains(out, "pult_") || !strings.Contains(out, "supervisor") {
		t.Fatalf("add: %d %q %q", code, out, errs)
	}
	if code, _, errs := runCLI(t, env, "operators", "add", "--config", path, "--name", "Bob", "--user-id", "2", "--code", "100"); code != 1 || !strings.Contains(errs, "already taken") {
		t.Errorf("duplicate code: %d %q", code, errs)
	}
	code, out, _ = runCLI(t, env, "operators", "list", "--config", path)
	if code != 0 || !strings.Contains(out, "Anna") || !strings.Contains(out, "offline") {
		t.Errorf("list: %d %q", code, out)
	}
	if code, out, _ := runCLI(t, env, "operators", "revoke", "100", "--config", path); code != 0 || !strings.Contains(out, "Revoked Anna") {
		t.Errorf("revoke: %d %q", code, out)
	}
	// --relay at the public listener: not the admin API's place.
	if code, _, errs := runCLI(t, map[string]string{"PULT_ADMIN_TOKEN": "admin-token-0123456789"}, "operators", "list", "--relay", "http://"+srv.Addr()); code != 1 ||
		!strings.Contains(errs, "does not serve the admin API") {
		t.Errorf("--relay at the public listener: %d %q", code, errs)
	}
}

// The outbox commands against a real relay whose PBX is down (503), then
// refuses (400), then accepts.
func TestOutboxAgainstRunningRelay(t *testing.T) {
	var mode atomic.Value
	mode.Store("down")
	var accepted atomic.Int32
	pbx := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch mode.Load() {
		case "down":
			http.Error(w, "maintenance", http.StatusServiceUnavailable)
		case "refuse":
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, `{"success":false,"errorMsg":"Unknown extension 100"}`)
		default:
			accepted.Add(1)
			io.WriteString(w, `{"success":true}`)
		}
	}))
	defer pbx.Close()
	cfg := config.Defaults()
	cfg.Listen = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.PBX.ClientID, cfg.PBX.APIKey = "cid", "pbx-key-123"
	cfg.PBX.ChangeStatusURL = pbx.URL + "/status"
	cfg.Outbox.MinBackoff = config.Duration{Duration: 20 * time.Millisecond}
	cfg.Outbox.MaxBackoff = config.Duration{Duration: 100 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	srv := relay.New(cfg, nil)
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	defer func() { cancel(); <-done }()
	select {
	case <-srv.Ready():
	case <-time.After(20 * time.Second):
		t.Fatal("relay did not start")
	}
	base := "http://" + srv.Addr()
	sock := srv.AdminSocket()
	var env map[string]string
	if code, _, errs := runCLI(t, env, "operators", "add", "--socket", sock, "--name", "Anna", "--user-id", "1", "--code", "100"); code != 0 {
		t.Fatalf("add: %q", errs)
	}
	// The CRM changes Anna's status: a pbx.status job.
	setStatus := func(status string) {
		t.Helper()
		resp, err := http.Get(base + "/retailcrm/change-status?clientId=cid&userId=1&code=100&status=" + status)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("change-status: %v %v", resp, err)
		}
		resp.Body.Close()
	}
	list := func(args ...string) string {
		t.Helper()
		code, out, errs := runCLI(t, env, append([]string{"outbox", "list", "--socket", sock}, args...)...)
		if code != 0 {
			t.Fatalf("outbox list %v: %d %q", args, code, errs)
		}
		return out
	}
	eventually := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}

	if out := list(); !strings.Contains(out, "No pending jobs.") {
		t.Errorf("empty list: %q", out)
	}
	setStatus("busy")
	var pending []outbox.PendingJob
	eventually("a failed attempt", func() bool {
		if err := json.Unmarshal([]byte(list("--json")), &pending); err != nil {
			t.Fatal(err)
		}
		return len(pending) == 1 && pending[0].Attempts > 0
	})
	id := pending[0].ID
	t.Logf("outbox list:\n%s", list())
	if out := list(); !strings.Contains(out, id) || !strings.Contains(out, "pbx.status") || !strings.Contains(out, "HTTP 503") ||
		!strings.Contains(out, "LAST ERROR") {
		t.Errorf("pending table: %q", out)
	}
	if code, _, errs := runCLI(t, env, "outbox", "retry", id, "--socket", sock); code != 1 || !strings.Contains(errs, "pending") {
		t.Errorf("retry of a pending job: %d %q", code, errs)
	}
	if code, out, errs := runCLI(t, env, "outbox", "drop", "--socket", sock, id); code != 0 || !strings.Contains(out, "Dropped pending job "+id) {
		t.Fatalf("drop: %d %q %q", code, out, errs)
	}
	if out := list(); !strings.Contains(out, "No pending jobs.") {
		t.Errorf("after drop: %q", out)
	}

	mode.Store("refuse")
	setStatus("dinner")
	var dead []outbox.DeadJob
	eventually("a dead letter", func() bool {
		json.Unmarshal([]byte(list("--dead", "--json")), &dead)
		return len(dead) == 1
	})
	id = dead[0].Job.ID
	t.Logf("outbox list --dead:\n%s", list("--dead"))
	if out := list("--dead"); !strings.Contains(out, id) || !strings.Contains(out, "Unknown extension 100") || !strings.Contains(out, "rejected") {
		t.Errorf("dead table: %q", out)
	}
	mode.Store("accept")
	if code, out, errs := runCLI(t, env, "outbox", "retry", id, "--socket", sock); code != 0 || !strings.Contains(out, "back in the queue") {
		t.Fatalf("retry: %d %q %q", code, out, errs)
	}
	eventually("the retried status at the PBX", func() bool { return accepted.Load() == 1 })
	time.Sleep(200 * time.Millisecond)
	if n := accepted.Load(); n != 1 {
		t.Errorf("PBX accepted %d times", n)
	}
	if out := list("--dead"); !strings.Contains(out, "No dead letters.") {
		t.Errorf("dead letters after retry: %q", out)
	}

	for _, cmd := range []string{"retry", "drop"} {
		if code, _, errs := runCLI(t, env, "outbox", cmd, "no-such-id", "--socket", sock); code != 1 || !strings.Contains(errs, "no such job") {
			t.Errorf("%s of an unknown id: %d %q", cmd, code, errs)
		}
	}
	if code, _, errs := runCLI(t, env, "outbox", "retry", "--socket", sock); code != 2 || !strings.Contains(errs, "which job") {
		t.Errorf("retry without id: %d %q", code, errs)
	}
	if code, _, errs := runCLI(t, env, "outbox", "--socket", sock); code != 2 || !strings.Contains(errs, "unknown subcommand") {
		t.Errorf("outbox without subcommand: %d %q", code, errs)
	}
}

// operators add maps UIS employees and Smartsupp agents; retailcrm register
// and show talk to retailCRM (its strict simulator) through the relay.
func TestPartnerCommandsAgainstRunningRelay(t *testing.T) {
	crm := sim.NewCRM("crm-key-123")
	crmSrv := httptest.NewServer(crm)
	defer crmSrv.Close()
	cfg := config.Defaults()
	cfg.Listen = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.AdminToken = "admin-token-0123456789"
	cfg.AdminListen = "127.0.0.1:0" // remote administration, the admin token required
	cfg.PBX.ClientID, cfg.PBX.APIKey = "client-id-secret", "pbx-key-123"
	cfg.PublicURL = "https://pult.example.com"
	cfg.RetailCRM.URL, cfg.RetailCRM.APIKey = crmSrv.URL, "crm-key-123"
	cfg.RetailCRM.ExternalPhones = []config.ExternalPhone{{Site: "shop1", Phone: "+74999999999"}}
	ctx, cancel := context.WithCancel(context.Background())
	srv := relay.New(cfg, nil)
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	defer func() { cancel(); <-done }()
	select {
	case <-srv.Ready():
	case <-time.After(20 * time.Second):
		t.Fatal("relay did not start")
	}
	base := "http://" + srv.AdminAddr()
	env := map[string]string{"PULT_ADMIN_TOKEN": cfg.AdminToken}
	if code, _, errs := runCLI(t, map[string]string{"PULT_ADMIN_TOKEN": "wrong"}, "operators", "list", "--relay", base); code != 1 || !strings.Contains(errs, "admin token") {
		t.Errorf("wrong admin token: %d %q", code, errs)
	}

	code, out, errs := runCLI(t, env, "operators", "add", "--relay", base, "--name", "Anna", "--user-id", "1", "--code", "100",
		"--uis-employee-id", "12345", "--smartsupp-agent-id", "3")
	if code != 0 || !strings.Contains(out, "UIS employee 12345, Smartsupp agent 3") {
		t.Fatalf("add: %d %q %q", code, out, errs)
	}
	if code, _, errs := runCLI(t, env, "operators", "add", "--relay", base, "--name", "Bob", "--user-id", "2", "--code", "101",
		"--uis-employee-id", "12345"); code != 1 || !strings.Contains(errs, "uis-employee-id 12345: already taken") {
		t.Errorf("a UIS employee twice: %d %q", code, errs)
	}
	if code, _, errs := runCLI(t, env, "operators", "add", "--relay", base, "--name", "Bob", "--user-id", "2", "--code", "101",
		"--smartsupp-agent-id", "agent 3"); code != 2 || !strings.Contains(errs, "smartsupp-agent-id") {
		t.Errorf("a bad Smartsupp id: %d %q", code, errs)
	}
	code, out, _ = runCLI(t, env, "operators", "list", "--relay", base)
	if code != 0 || !strings.Contains(out, "UIS") || !strings.Contains(out, "SMARTSUPP") || !strings.Contains(out, "12345") {
		t.Errorf("list: %d %q", code, out)
	}

	if code, _, errs := runCLI(t, env, "retailcrm", "show", "--relay", base); code != 1 || !strings.Contains(errs, "retailcrm register") {
		t.Errorf("show before register: %d %q", code, errs)
	}
	code, out, errs = runCLI(t, env, "retailcrm", "register", "--relay", base)
	t.Logf("register:\n%s", out)
	if code != 0 || !strings.Contains(out, `Registered the telephony "pult"`) || !strings.Contains(out, "https://pult.example.com/retailcrm/make-call") ||
		!strings.Contains(out, "user 1") || !strings.Contains(out, "code 100") || !strings.Contains(out, "8 (499) 999-99-99") ||
		strings.Contains(out, "client-id-secret") || !strings.Contains(out, "************cret") {
		t.Errorf("register: %d %q %q", code, out, errs)
	}
	if m, ok := crm.Module("pult"); !ok || m.Telephony == nil || len(m.Telephony.AdditionalCodes) != 1 {
		t.Errorf("module in the CRM: %+v", m)
	}
	code, out, _ = runCLI(t, env, "retailcrm", "show", "--relay", base, "--json")
	var m retailcrm.IntegrationModule
	if err := json.Unmarshal([]byte(out), &m); code != 0 || err != nil || m.ClientID != "client-id-secret" || m.Telephony.ChangeUserStatusURL != "https://pult.example.com/retailcrm/change-status" {
		t.Errorf("show --json: %d %q %v", code, out, err)
	}
	if code, out, _ := runCLI(t, env, "retailcrm", "show", "--relay", base); code != 0 || !strings.Contains(out, "Extension codes (1)") || !strings.Contains(out, "External phones (1)") {
		t.Errorf("show: %d %q", code, out)
	}
	if code, _, errs := runCLI(t, env, "retailcrm", "--relay", base); code != 2 || !strings.Contains(errs, "unknown subcommand") {
		t.Errorf("retailcrm without subcommand: %d %q", code, errs)
	}
}
