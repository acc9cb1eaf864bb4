package relay_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pult/pult/agent"
	"github.com/pult/pult/agent/wire"
	"github.com/pult/pult/relay"
	"github.com/pult/pult/relay/admin"
	"github.com/pult/pult/relay/config"
	"github.com/pult/pult/relay/operators"
)

const (
	testAdminToken = "admin-token-for-tests-0123456789"
	testClientID   = "client-id-secret-42"
	testPBXKey     = "pbx-api-key-secret"
	testCRMKey     = "crm-api-key-secret"
)

// testRelay is a relay running in this process on a loopback port with an
// embedded NATS server in a temporary folder.
type testRelay struct {
	t      testing.TB
	cfg    config.Config
	srv    *relay.Server
	cancel context.CancelFunc
	done   chan error
	URL    string
	mk     func(config.Config) *relay.Server // nil: relay.New
}

func testConfig(t testing.TB) config.Config {
	cfg := config.Defaults()
	cfg.Listen = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.AdminToken = testAdminToken
	cfg.MetricsListen = "127.0.0.1:0"
	cfg.PBX.ClientID = testClientID
	cfg.PBX.APIKey = testPBXKey
	cfg.PBX.Timeout = config.Duration{Duration: 2 * time.Second}
	cfg.RetailCRM.Timeout = config.Duration{Duration: 3 * time.Second}
	cfg.Outbox.MinBackoff = config.Duration{Duration: 50 * time.Millisecond}
	cfg.Outbox.MaxBackoff = config.Duration{Duration: 400 * time.Millisecond}
	return cfg
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("PULT_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func startRelay(t testing.TB, cfg config.Config) *testRelay {
	t.Helper()
	return startRelayWith(t, cfg, nil)
}

// startRelayWith is startRelay with the server made by mk (nil: relay.New).
func startRelayWith(t testing.TB, cfg config.Config, mk func(config.Config) *relay.Server) *testRelay {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	relayOutput.secretsOf(cfg)
	srv := relay.New(cfg, relayLogger(t))
	if mk != nil {
		srv = mk(cfg)
	}
	r := &testRelay{t: t, cfg: cfg, srv: srv, cancel: cancel, done: make(chan error, 1), mk: mk}
	go func() { r.done <- r.srv.Run(ctx) }()
	select {
	case <-r.srv.Ready():
	case err := <-r.done:
		t.Fatalf("relay did not start: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("relay did not start within 20s")
	}
	r.URL = "http://" + r.srv.Addr()
	t.Cleanup(r.stop)
	return r
}

// stop shuts the relay down and waits for it.
func (r *testRelay) stop() {
	if r.cancel == nil {
		return
	}
	r.keepRecords()
	r.cancel()
	r.cancel = nil
	select {
	case err := <-r.done:
		if err != nil {
			r.t.Errorf("relay: %v", err)
		}
	case <-time.After(20 * time.Second):
		r.t.Error("relay did not stop within 20s")
	}
}

// restart stops the relay and starts a new one on the same address and data.
func (r *testRelay) restart() *testRelay {
	r.t.Helper()
	r.stop()
	cfg := r.cfg
	cfg.Listen = strings.TrimPrefix(r.URL, "http://")
	return startRelayWith(r.t, cfg, r.mk)
}

// admin is a client of the relay's admin socket.
func (r *testRelay) admin() *admin.Client {
	return &admin.Client{Socket: r.srv.AdminSocket()}
}

// adminHTTP is an HTTP client whose every request goes to the relay's admin
// socket, whatever the URL's host (use adminSocketURL).
func (r *testRelay) adminHTTP() *http.Client {
	var d net.Dialer
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", r.srv.AdminSocket())
		},
	}}
}

// adminSocketURL is the base URL of requests through adminHTTP.
const adminSocketURL = "http://admin.sock"

// addOperator adds an operator and returns its token.
func (r *testRelay) addOperator(name, code, userID string) (admin.OperatorView, string) {
	r.t.Helper()
	added, err := r.admin().AddOperator(context.Background(), operators.NewOperator{Name: name, Code: code, UserID: userID})
	if err != nil {
		r.t.Fatalf("add operator %s: %v", name, err)
	}
	return added.Operator, added.Token
}

// callEvent posts a retailCRM-style call event as a PBX would.
func (r *testRelay) callEvent(ev map[string]any) (int, map[string]any) {
	r.t.Helper()
	b, _ := json.Marshal(ev)
	return r.postForm("/api/v5/telephony/call/event", url.Values{"event": {string(b)}}, testPBXKey)
}

func (r *testRelay) postForm(path string, form url.Values, key string) (int, map[string]any) {
	r.t.Helper()
	status, body, err := r.tryPostForm(path, form, key)
	if err != nil {
		r.t.Fatal(err)
	}
	return status, body
}

// tryCallEvent is callEvent that reports failures instead of failing.
func (r *testRelay) tryCallEvent(ev map[string]any) (int, map[string]any, error) {
	b, _ := json.Marshal(ev)
	return r.tryPostForm("/api/v5/telephony/call/event", url.Values{"event": {string(b)}}, testPBXKey)
}

func (r *testRelay) tryPostForm(path string, form url.Values, key string) (int, map[string]any, error) {
	req, _ := http.NewRequest(http.MethodPost, r.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if key != "" {
		req.Header.Set("X-API-KEY", key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("POST %s: %w", path, err)
	}
	defer resp.Body.Close()
	var body map[string]any
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &body); err != nil {
		return resp.StatusCode, nil, fmt.Errorf("POST %s: answer is not JSON: %q", path, b)
	}
	return resp.StatusCode, body, nil
}

func (r *testRelay) get(path string, q url.Values) (int, string) {
	r.t.Helper()
	resp, err := http.Get(r.URL + path + "?" + q.Encode())
	if err != nil {
		r.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (r *testRelay) do(req *http.Request) (int, map[string]any) {
	r.t.Helper()
	return r.doWith(http.DefaultClient, req)
}

// doWith is do through c.
func (r *testRelay) doWith(c *http.Client, req *http.Request) (int, map[string]any) {
	r.t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		r.t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	var body map[string]any
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &body); err != nil {
		r.t.Fatalf("%s %s: answer is not JSON: %q", req.Method, req.URL.Path, b)
	}
	return resp.StatusCode, body
}

// testAgent is an agent core connected to the test relay, recording events.
type testAgent struct {
	t        *testing.T
	a        *agent.Agent
	cancel   context.CancelFunc
	done     chan error
	stopOnce sync.Once

	mu     sync.Mutex
	events []agent.Event
	notify chan struct{}
}

func startAgent(t *testing.T, relayURL, token string, mod func(*agent.Config)) *testAgent {
	t.Helper()
	ta := &testAgent{t: t, notify: make(chan struct{}, 1), done: make(chan error, 1)}
	cfg := agent.Config{
		RelayURL: relayURL, Token: token, Logger: testLogger(t),
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 300 * time.Millisecond,
		OnEvent: func(e agent.Event) {
			ta.mu.Lock()
			ta.events = append(ta.events, e)
			ta.mu.Unlock()
			select {
			case ta.notify <- struct{}{}:
			default:
			}
		},
	}
	if mod != nil {
		mod(&cfg)
	}
	a, err := agent.New(cfg)
	if err != nil {
		t.Fatalf("agent.New: %v", err)
	}
	ta.a = a
	ctx, cancel := context.WithCancel(context.Background())
	ta.cancel = cancel
	go func() { ta.done <- a.Run(ctx) }()
	t.Cleanup(ta.stop)
	return ta
}

func (ta *testAgent) stop() {
	ta.stopOnce.Do(func() {
		ta.cancel()
		select {
		case <-ta.done:
		case <-time.After(10 * time.Second):
			ta.t.Error("agent did not stop within 10s")
		}
	})
}

// waitFor waits until some recorded event satisfies ok and returns it.
func (ta *testAgent) waitFor(what string, ok func(agent.Event) bool) agent.Event {
	ta.t.Helper()
	deadline := time.After(10 * time.Second)
	seen := 0
	for {
		ta.mu.Lock()
		evs := ta.events[seen:]
		seen = len(ta.events)
		ta.mu.Unlock()
		for _, e := range evs {
			if ok(e) {
				return e
			}
		}
		select {
		case <-ta.notify:
		case <-time.After(20 * time.Millisecond):
		case <-deadline:
			ta.t.Fatalf("timed out waiting for %s; got %s", what, ta.describe())
		}
	}
}

// hellos counts the connections the agent made.
func (ta *testAgent) hellos() int {
	ta.mu.Lock()
	defer ta.mu.Unlock()
	n := 0
	for _, e := range ta.events {
		if e.Kind == agent.EventHello {
			n++
		}
	}
	return n
}

// waitHellos waits until the agent has connected n times.
func (ta *testAgent) waitHellos(n int) {
	ta.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for ta.hellos() < n {
		if time.Now().After(deadline) {
			ta.t.Fatalf("agent did not reconnect: %d connections, want %d", ta.hellos(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (ta *testAgent) waitOnline() {
	ta.t.Helper()
	ta.waitFor("online", func(e agent.Event) bool { return e.Kind == agent.EventConn && e.Conn == agent.Online })
}

// waitRinging waits until the agent has had a ringing card of every call
// in ids (cards ahead of the log can overtake a call still being stored:
// the last one posted is not the last to come).
func (ta *testAgent) waitRinging(ids []string) {
	ta.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := map[string]bool{}
		for _, e := range ta.calls() {
			if e.Call.State == wire.CallRinging {
				got[e.Call.ID] = true
			}
		}
		missing := 0
		for _, id := range ids {
			if !got[id] {
				missing++
			}
		}
		if missing == 0 {
			return
		}
		if time.Now().After(deadline) {
			ta.t.Fatalf("%d of %d calls never rang; got %s", missing, len(ids), ta.describe())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// calls returns the call events recorded so far.
func (ta *testAgent) calls() []agent.Event {
	ta.mu.Lock()
	defer ta.mu.Unlock()
	var out []agent.Event
	for _, e := range ta.events {
		if e.Kind == agent.EventCall {
			out = append(out, e)
		}
	}
	return out
}

func (ta *testAgent) describe() string {
	ta.mu.Lock()
	defer ta.mu.Unlock()
	var b strings.Builder
	for _, e := range ta.events {
		switch e.Kind {
		case agent.EventCall:
			fmt.Fprintf(&b, "\n  call seq=%d id=%s state=%s manager=%s", e.Seq, e.Call.ID, e.Call.State, e.Call.ManagerState)
		case agent.EventConn:
			fmt.Fprintf(&b, "\n  conn %s %s", e.Conn, e.Err)
		case agent.EventStatus:
			fmt.Fprintf(&b, "\n  status seq=%d %s (%s)", e.Seq, e.Status.Status, e.Status.Source)
		default:
			fmt.Fprintf(&b, "\n  %s seq=%d", e.Kind, e.Seq)
		}
	}
	return b.String()
}

func callWith(id string, state wire.CallState) func(agent.Event) bool {
	return func(e agent.Event) bool {
		return e.Kind == agent.EventCall && e.Call.ID == id && e.Call.State == state
	}
}

// checkGoroutines fails the test if goroutines started during it are still
// running once it has cleaned up.
func checkGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(10 * time.Second)
		for {
			n := runtime.NumGoroutine()
			if n <= before {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("%d goroutines left running (before: %d):\n%s", n, before, buf)
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}

// proxy forwards loopback TCP to the relay and can cut every connection, to
// drop an agent's link mid-stream.
type proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	down   bool
	wg     sync.WaitGroup
}

// setDown cuts every connection and refuses new ones until set back.
func (p *proxy) setDown(down bool) {
	p.mu.Lock()
	p.down = down
	p.mu.Unlock()
	if down {
		p.cut()
	}
}

func startProxy(t *testing.T, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() { ln.Close(); p.cut(); p.wg.Wait() })
	return p
}

func (p *proxy) URL() string { return "http://" + p.ln.Addr().String() }

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		down := p.down
		p.mu.Unlock()
		if down {
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns[c], p.conns[up] = struct{}{}, struct{}{}
		p.mu.Unlock()
		p.wg.Add(2)
		go func() { defer p.wg.Done(); io.Copy(up, c); up.Close() }()
		go func() { defer p.wg.Done(); io.Copy(c, up); c.Close() }()
	}
}

// cut closes every proxied connection, as a network failure would.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
}
