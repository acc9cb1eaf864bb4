package relay_test

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pult/pult/relay"
	"github.com/pult/pult/relay/admin"
	"github.com/pult/pult/relay/config"
	"github.com/pult/pult/relay/operators"
)

// get answers a GET with status and body, the bearer token set if any.
func getWith(t *testing.T, c *http.Client, url, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// The relay's sides: the admin API on the socket (mode 0600, no token) and
// on admin_listen (the admin token), never on the public listener; metrics
// and pprof on metrics_listen alone. Each refusal is checked on both the
// public listener and admin_listen, with no token, a wrong one and the
// right one.
func TestAdminAndMetricsSides(t *testing.T) {
	checkGoroutines(t)
	var logs lockedBuffer
	cfg := testConfig(t)
	cfg.AdminListen = "127.0.0.1:0"
	r := startRelayWith(t, cfg, func(c config.Config) *relay.Server {
		return relay.New(c, slog.New(slog.NewTextHandler(&logs, nil)))
	})
	ctx := context.Background()

	// The socket: in data_dir, 0600, the admin API without a token.
	sock := r.srv.AdminSocket()
	if sock != filepath.Join(cfg.DataDir, "admin.sock") {
		t.Errorf("admin socket at %s", sock)
	}
	fi, err := os.Lstat(sock)
	if err != nil || fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Fatalf("admin socket: %v %v, want a socket of mode 0600", fi.Mode(), err)
	}
	if _, err := r.admin().AddOperator(ctx, operators.NewOperator{Name: "Anna", Code: "100", UserID: "1"}); err != nil {
		t.Fatalf("add over the socket: %v", err)
	}
	if status, body := getWith(t, r.adminHTTP(), adminSocketURL+"/admin/v1/operators", ""); status != 200 || !strings.Contains(body, "Anna") {
		t.Errorf("socket without a token: %d %s", status, body)
	}

	public := "http://" + r.srv.Addr()
	adminURL := "http://" + r.srv.AdminAddr()
	metrics := "http://" + r.srv.MetricsAddr()
	for _, tc := range []struct {
		side, base   string
		none, wrong  int // the status without a token, with a wrong one
		right        int // with the admin token
		wantErrorMsg string
	}{
		{"public", public, 404, 404, 404, admin.NoSuchEndpoint},
		{"admin_listen", adminURL, 401, 401, 200, "admin token required"},
	} {
		for _, req := range []struct{ method, path, body string }{
			{"GET", "/admin/v1/operators", ""},
			{"GET", "/admin/v1/outbox?state=dead", ""},
			{"POST", "/admin/v1/operators", `{"name":"Mallory","code":"666","userId":"66"}`},
			{"POST", "/admin/v1/operators/100/revoke", ""},
			{"DELETE", "/admin/v1/outbox/x", ""},
		} {
			for _, tok := range []struct {
				name, token string
			}{{"no token", ""}, {"wrong token", "wrong-admin-token-0123456789"}, {"admin token", testAdminToken}} {
				want := tc.none
				switch tok.name {
				case "wrong token":
					want = tc.wrong
				case "admin token":
					want = tc.right
				}
				if tok.name == "admin token" && tc.side == "admin_listen" {
					continue // the allowed requests are below
				}
				hr, _ := http.NewRequest(req.method, tc.base+req.path, strings.NewReader(req.body))
				if tok.token != "" {
					hr.Header.Set("Authorization", "Bearer "+tok.token)
				}
				status, body := r.do(hr)
				if msg, _ := body["error"].(string); status != want || !strings.HasPrefix(msg, tc.wantErrorMsg) {
					t.Errorf("%s: %s %s with %s: %d %v, want %d with %q", tc.side, req.method, req.path, tok.name, status, body, want, tc.wantErrorMsg)
				}
			}
		}
	}
	// Nothing refused changed anything: Anna alone, not revoked.
	ops, err := r.admin().ListOperators(ctx)
	if err != nil || len(ops) != 1 || ops[0].Name != "Anna" || ops[0].RevokedAt != nil {
		t.Fatalf("operators after the refusals: %+v %v", ops, err)
	}
	// admin_listen with the token.
	remote := &admin.Client{BaseURL: adminURL, Token: testAdminToken}
	if ops, err := remote.ListOperators(ctx); err != nil || len(ops) != 1 {
		t.Errorf("admin_listen with the token: %+v %v", ops, err)
	}
	if _, err := (&admin.Client{BaseURL: adminURL, Token: "wrong-admin-token-0123456789"}).ListOperators(ctx); err == nil || !strings.Contains(err.Error(), "admin token required") {
		t.Errorf("admin_listen with a wrong token: %v", err)
	}
	if _, err := (&admin.Client{BaseURL: public, Token: testAdminToken}).ListOperators(ctx); err == nil || !strings.Contains(err.Error(), "does not serve the admin API") {
		t.Errorf("the admin client pointed at the public listener: %v", err)
	}

	// /metrics and pprof: on metrics_listen alone.
	for _, path := range []string{"/metrics", "/debug/pprof/", "/debug/pprof/goroutine?debug=1", "/debug/pprof/cmdline", "/debug/pprof/heap", "/debug/pult/events"} {
		if status, body := getWith(t, http.DefaultClient, metrics+path, ""); status != 200 || body == "" {
			t.Errorf("metrics_listen %s: %d", path, status)
		}
		for _, side := range []struct {
			name, base, token string
			status            int
		}{{"public", public, "", 404}, {"admin_listen", adminURL, testAdminToken, 404}} {
			status, body := getWith(t, http.DefaultClient, side.base+path, side.token)
			if status != side.status {
				t.Errorf("%s %s: %d %s, want %d", side.name, path, status, body, side.status)
			}
			if side.name == "public" && !strings.Contains(body, `"error":"`+admin.NoSuchEndpoint+`"`) {
				t.Errorf("public %s: %q is not the surface's JSON 404", path, body)
			}
		}
	}
	if _, body := getWith(t, http.DefaultClient, metrics+"/metrics", ""); !strings.Contains(body, "pult_relay_connections") {
		t.Errorf("metrics_listen /metrics lacks the relay's metrics")
	}
	// The public listener serves what it must.
	if status, body := getWith(t, http.DefaultClient, public+"/healthz", ""); status != 200 || !strings.Contains(body, "ok") {
		t.Errorf("healthz: %d %s", status, body)
	}
	if status, _ := getWith(t, http.DefaultClient, public+"/board", ""); status != 200 {
		t.Errorf("the wallboard page: %d", status)
	}

	// Each side is in the log.
	for _, want := range []string{"socket=" + sock, "addr=" + r.srv.AdminAddr(), "metrics and pprof listening", "addr=" + r.srv.MetricsAddr()} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("the log does not say %q:\n%s", want, logs.String())
		}
	}
	if strings.Contains(logs.String(), testAdminToken) {
		t.Error("the admin token is in the log")
	}

	// A clean stop removes the socket.
	r.stop()
	if _, err := os.Lstat(sock); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("admin socket left after a clean stop: %v", err)
	}
	if _, err := (&admin.Client{Socket: sock}).ListOperators(ctx); err == nil || !strings.Contains(err.Error(), "is the relay running? no admin socket at "+sock) {
		t.Errorf("a client of a stopped relay: %v", err)
	}
}

// A CPU profile in flight does not hold the relay's stop.
func TestStopCutsProfile(t *testing.T) {
	checkGoroutines(t)
	r := startRelay(t, testConfig(t))
	done := make(chan struct{})
	go func() {
		defer close(done)
		resp, err := http.Get("http://" + r.srv.MetricsAddr() + "/debug/pprof/profile?seconds=60")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}()
	time.Sleep(300 * time.Millisecond) // the profile has started
	start := time.Now()
	r.stop()
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the relay took %v to stop during a profile", d)
	}
	<-done
}

// Without metrics_listen and admin_listen there is neither: the admin API
// is on the socket alone, which needs no admin token in the config.
func TestSidesOffByDefault(t *testing.T) {
	checkGoroutines(t)
	cfg := testConfig(t)
	cfg.MetricsListen = ""
	cfg.AdminToken = ""
	r := startRelay(t, cfg)
	if r.srv.AdminAddr() != "" || r.srv.MetricsAddr() != "" {
		t.Errorf("admin %q, metrics %q: want both off", r.srv.AdminAddr(), r.srv.MetricsAddr())
	}
	if _, err := r.admin().ListOperators(context.Background()); err != nil {
		t.Errorf("the socket without an admin token configured: %v", err)
	}
	// An empty admin token opens nothing.
	if status, _ := getWith(t, http.DefaultClient, r.URL+"/admin/v1/operators", ""); status != 404 {
		t.Errorf("public /admin/v1/operators: %d", status)
	}
}

// A socket left by a relay that was killed is replaced; a relay that runs
// keeps its socket, and a second relay on its data_dir stops at once with a
// message that says so.
func TestAdminSocketStaleAndLive(t *testing.T) {
	checkGoroutines(t)
	cfg := testConfig(t)
	stale, err := net.ListenUnix("unix", &net.UnixAddr{Name: cfg.AdminSocket(), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	stale.SetUnlinkOnClose(false)
	stale.Close() // the file stays, as after a SIGKILL
	r := startRelay(t, cfg)
	if _, err := r.admin().ListOperators(context.Background()); err != nil {
		t.Fatalf("over the replaced socket: %v", err)
	}

	second := cfg
	second.MetricsListen = ""
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err = relay.New(second, testLogger(t)).Run(ctx)
	if err == nil || !strings.Contains(err.Error(), "another relay uses data_dir "+cfg.DataDir) {
		t.Fatalf("a second relay on the same data_dir: %v", err)
	}
	// The first one's socket still answers.
	if _, err := r.admin().ListOperators(context.Background()); err != nil {
		t.Fatalf("the first relay's socket after the second tried: %v", err)
	}
}

// Bad addresses and a data_dir too long for a socket stop the relay before
// it opens anything.
func TestSidesConfigRefused(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*config.Config)
		want string
	}{
		{"admin_listen not host:port", func(c *config.Config) { c.AdminListen = "8701" }, "admin_listen: want host:port"},
		{"metrics_listen bad port", func(c *config.Config) { c.MetricsListen = "127.0.0.1:http" }, "metrics_listen: want a port number"},
		{"admin_listen without a token", func(c *config.Config) { c.AdminListen, c.AdminToken = "127.0.0.1:0", "" }, "admin_token: required with admin_listen"},
		{"data_dir too long", func(c *config.Config) { c.DataDir = filepath.Join(c.DataDir, strings.Repeat("d", 120)) }, "data_dir: too long for the admin socket"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t)
			tc.mod(&cfg)
			err := relay.New(cfg, nil).Run(context.Background())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Run: %v, want %q", err, tc.want)
			}
		})
	}
	// admin_listen already taken: a clear error, and nothing left behind.
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	cfg := testConfig(t)
	cfg.AdminListen = busy.Addr().String()
	if err := relay.New(cfg, nil).Run(context.Background()); err == nil || !strings.Contains(err.Error(), "admin_listen") {
		t.Fatalf("admin_listen in use: %v", err)
	}
	if _, err := os.Lstat(cfg.AdminSocket()); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a relay that failed to start left its admin socket: %v", err)
	}
}
