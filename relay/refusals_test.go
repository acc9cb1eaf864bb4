package relay_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/pult/pult/agent"
	"github.com/pult/pult/agent/wire"
	"github.com/pult/pult/relay"
	"github.com/pult/pult/relay/config"
)

// pbxTripwire is a PBX that must never be called.
func pbxTripwire(t *testing.T) (*httptest.Server, *atomic.Int32) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

func wsDial(t *testing.T, base, token string, proto string) (*websocket.Conn, *http.Response, error) {
	h := http.Header{}
	if token != "" {
		h.Set("Authorization", "Bearer "+token)
	}
	if proto != "" {
		h.Set(wire.HeaderProtocol, proto)
	}
	u := "ws" + strings.TrimPrefix(base, "http") + wire.Path
	c, resp, err := websocket.DefaultDialer.Dial(u, h)
	if c != nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, resp, err
}

func handshakeCode(t *testing.T, resp *http.Response) (int, int) {
	t.Helper()
	if resp == nil {
		t.Fatal("no HTTP response")
	}
	var he wire.HandshakeError
	if err := json.NewDecoder(resp.Body).Decode(&he); err != nil {
		t.Fatalf("refusal body is not a HandshakeError: %v", err)
	}
	if he.Reason == "" {
		t.Error("refusal has no reason")
	}
	return resp.StatusCode, he.Code
}

func TestHandshakeRefusals(t *testing.T) {
	checkGoroutines(t)
	r := startRelay(t, testConfig(t))
	_, token := r.addOperator("Anna", "100", "1")
	_, revoked := r.addOperator("Boris", "101", "2")
	if _, err := r.admin().RevokeOperator(context.Background(), "101"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, token, proto string
		status, code       int
	}{
		{"no token", "", "1", 401, wire.CloseBadToken},
		{"wrong token", "pult_000000000000_AAAA", "1", 401, wire.CloseBadToken},
		{"garbage token", strings.Repeat("x", 5000), "1", 401, wire.CloseBadToken},
		{"token of another's id", token[:17] + "AAAAAAAAAAAAAAAAAAAA", "1", 401, wire.CloseBadToken},
		{"revoked token", revoked, "1", 403, wire.CloseRevoked},
		{"protocol too old", token, "0", 426, wire.CloseProtocol},
		{"no protocol", token, "", 426, wire.CloseProtocol},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, resp, err := wsDial(t, r.URL, tc.token, tc.proto)
			if err == nil {
				t.Fatal("handshake accepted")
			}
			status, code := handshakeCode(t, resp)
			if status != tc.status || code != tc.code {
				t.Fatalf("got HTTP %d code %d, want %d %d", status, code, tc.status, tc.code)
			}
			if !wire.IsStop(code) {
				t.Fatalf("code %d is not a stop code", code)
			}
		})
	}
	// The agent stops (does not retry) on a bad token, and says why.
	_, err := agent.Check(context.Background(), r.URL, "pult_000000000000_AAAA")
	var stop *agent.StopError
	if !errors.As(err, &stop) || stop.Code != wire.CloseBadToken {
		t.Fatalf("Check with a wrong token: %v", err)
	}
	ta := startAgent(t, r.URL, revoked, nil)
	select {
	case err := <-ta.done:
		if !errors.As(err, &stop) || stop.Code != wire.CloseRevoked {
			t.Fatalf("Run with a revoked token returned %v", err)
		}
		ta.done <- err // for cleanup
	case <-time.After(10 * time.Second):
		t.Fatal("agent with a revoked token kept trying")
	}
}

func TestRevokeDisconnectsLiveAgent(t *testing.T) {
	checkGoroutines(t)
	r := startRelay(t, testConfig(t))
	_, token := r.addOperator("Anna", "100", "1")
	ta := startAgent(t, r.URL, token, nil)
	ta.waitOnline()
	if _, err := r.admin().RevokeOperator(context.Background(), "100"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-ta.done:
		var stop *agent.StopError
		if !errors.As(err, &stop) || stop.Code != wire.CloseRevoked {
			t.Fatalf("Run returned %v, want a stop with %d", err, wire.CloseRevoked)
		}
		ta.done <- err
	case <-time.After(10 * time.Second):
		t.Fatal("revoked agent still connected")
	}
	if ta.a.State() != agent.AuthFailed {
		t.Fatalf("state %s, want auth_failed", ta.a.State())
	}
}

func TestWebhookRefusals(t *testing.T) {
	checkGoroutines(t)
	pbx, hits := pbxTripwire(t)
	cfg := testConfig(t)
	cfg.PBX.MakeCallURL = pbx.URL + "/make-call"
	cfg.PBX.ChangeStatusURL = pbx.URL + "/change-status"
	r := startRelay(t, cfg)
	_, token := r.addOperator("Anna", "100", "1")
	ta := startAgent(t, r.URL, token, nil)
	ta.waitOnline()

	good, _ := json.Marshal(map[string]any{"type": "in", "phone": "+79121234567", "codes": []string{"100"}})
	for _, tc := range []struct {
		name   string
		form   url.Values
		key    string
		status int
	}{
		{"no X-API-KEY", url.Values{"event": {string(good)}}, "", 401},
		{"wrong X-API-KEY", url.Values{"event": {string(good)}}, "wrong-key-123", 403},
		{"malformed JSON", url.Values{"event": {`{"type":"in",`}}, testPBXKey, 400},
		{"no event field", url.Values{"evnt": {string(good)}}, testPBXKey, 400},
		{"unknown type", url.Values{"event": {`{"type":"ring","phone":"+79121234567","codes":["100"]}`}}, testPBXKey, 400},
		{"no phone", url.Values{"event": {`{"type":"in","codes":["100"]}`}}, testPBXKey, 400},
		{"huge body", url.Values{"event": {strings.Repeat("x", 1<<20)}}, testPBXKey, 413},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := r.postForm("/api/v5/telephony/call/event", tc.form, tc.key)
			if status != tc.status {
				t.Fatalf("HTTP %d, want %d: %v", status, tc.status, body)
			}
			if body["success"] != false || body["errorMsg"] == "" {
				t.Fatalf("not a retailCRM-shaped error: %v", body)
			}
		})
	}
	// Wrong clientId on the URLs retailCRM calls: 403, and nothing happens.
	for _, path := range []string{"/retailcrm/make-call", "/retailcrm/change-status"} {
		q := url.Values{"clientId": {"wrong"}, "code": {"100"}, "userId": {"1"}, "phone": {"+79121234567"}, "status": {"busy"}}
		if status, _ := r.get(path, q); status != 403 {
			t.Errorf("%s with a wrong clientId: HTTP %d, want 403", path, status)
		}
		q.Del("clientId")
		if status, _ := r.get(path, q); status != 403 {
			t.Errorf("%s without clientId: HTTP %d, want 403", path, status)
		}
	}
	time.Sleep(200 * time.Millisecond) // let anything wrongly published arrive
	ta.mu.Lock()
	for _, e := range ta.events {
		if e.Kind == agent.EventCall || e.Kind == agent.EventStatus || e.Kind == agent.EventNotice {
			t.Errorf("refused input reached the operator: %s", e.Kind)
		}
	}
	ta.mu.Unlock()
	if n := hits.Load(); n != 0 {
		t.Errorf("refused input reached the PBX %d times", n)
	}
	ops, _ := r.admin().ListOperators(context.Background())
	if ops[0].Chosen.Source != "default" {
		t.Errorf("status changed: %+v", ops[0].Chosen)
	}
}

func TestFrameRefusals(t *testing.T) {
	checkGoroutines(t)
	pbx, hits := pbxTripwire(t)
	cfg := testConfig(t)
	cfg.PBX.MakeCallURL = pbx.URL + "/make-call"
	cfg.PBX.ChangeStatusURL = pbx.URL + "/change-status"
	r := startRelay(t, cfg)
	_, token := r.addOperator("Anna", "100", "1")
	c, _, err := wsDial(t, r.URL, token, "1")
	if err != nil {
		t.Fatal(err)
	}
	read := func() wire.Envelope {
		t.Helper()
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		var env wire.Envelope
		if err := c.ReadJSON(&env); err != nil {
			t.Fatalf("read: %v", err)
		}
		return env
	}
	if h := read(); h.Type != wire.TypeHello {
		t.Fatalf("first frame %q, want hello", h.Type)
	}
	for _, tc := range []struct{ name, frame, code string }{
		{"malformed JSON", `{"v":1,"type":"status.set",`, wire.ErrBadRequest},
		{"no id", `{"v":1,"type":"status.set","data":{"status":"busy"}}`, wire.ErrBadRequest},
		{"bad id", `{"v":1,"type":"status.set","id":"a b","data":{"status":"busy"}}`, wire.ErrBadRequest},
		{"unknown type", `{"v":1,"type":"status.delete","id":"r1"}`, wire.ErrBadRequest},
		{"unknown status", `{"v":1,"type":"status.set","id":"r2","data":{"status":"sleeping"}}`, wire.ErrInvalidStatus},
		{"offline is not settable", `{"v":1,"type":"status.set","id":"r3","data":{"status":"offline"}}`, wire.ErrInvalidStatus},
		{"status not a string", `{"v":1,"type":"status.set","id":"r4","data":{"status":5}}`, wire.ErrBadRequest},
		{"not a number", `{"v":1,"type":"dial","id":"r5","data":{"phone":"call mom"}}`, wire.ErrInvalidNumber},
		{"too short a number", `{"v":1,"type":"dial","id":"r6","data":{"phone":"12"}}`, wire.ErrInvalidNumber},
		{"wrong version", `{"v":9,"type":"dial","id":"r7","data":{"phone":"+79121234567"}}`, wire.ErrBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := c.WriteMessage(websocket.TextMessage, []byte(tc.frame)); err != nil {
				t.Fatal(err)
			}
			env := read()
			if env.Type != wire.TypeError {
				t.Fatalf("got %q, want an error", env.Type)
			}
			var e wire.Error
			json.Unmarshal(env.Data, &e)
			if e.Code != tc.code || e.Message == "" {
				t.Fatalf("error %+v, want code %s with a message", e, tc.code)
			}
		})
	}
	// A 1 MiB frame closes the connection with 1009; nothing changed.
	big := `{"v":1,"type":"status.set","id":"big","data":{"status":"busy","pad":"` + strings.Repeat("x", 1<<20) + `"}}`
	c.WriteMessage(websocket.TextMessage, []byte(big))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _, err = c.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.CloseMessageTooBig {
		t.Fatalf("after a 1 MiB frame: %v, want close 1009", err)
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("refused frames reached the PBX %d times", n)
	}
	ops, _ := r.admin().ListOperators(context.Background())
	if ops[0].Chosen.Source != "default" {
		t.Errorf("status changed: %+v", ops[0].Chosen)
	}
	// The relay still serves the operator.
	c2, _, err := wsDial(t, r.URL, token, "1")
	if err != nil {
		t.Fatalf("relay refused a new connection after the big frame: %v", err)
	}
	c2.Close()
}

func TestAdminAddRefusals(t *testing.T) {
	checkGoroutines(t)
	r := startRelay(t, testConfig(t))
	r.addOperator("Anna", "100", "1")
	for _, tc := range []struct {
		name, body string
		status     int
	}{
		{"bad code", `{"name":"Bob","code":"1x","userId":"2"}`, 400},
		{"bad role", `{"name":"Bob","code":"101","userId":"2","role":"boss"}`, 400},
		{"unknown field", `{"name":"Bob","code":"101","userId":"2","admin":true}`, 400},
		{"code taken", `{"name":"Bob","code":"100","userId":"2"}`, 409},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, adminSocketURL+"/admin/v1/operators", strings.NewReader(tc.body))
			status, body := r.doWith(r.adminHTTP(), req)
			if status != tc.status || body["error"] == "" {
				t.Fatalf("HTTP %d %v, want %d with an error", status, body, tc.status)
			}
		})
	}
}

// A token revoked while its session is connecting (checked, not yet
// started) never gets anything on that session but the revocation.
func TestRevokedWhileConnecting(t *testing.T) {
	checkGoroutines(t)
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	r := startRelayWith(t, testConfig(t), func(c config.Config) *relay.Server {
		s := relay.New(c, relayLogger(t))
		s.PauseAgentHandshakes(func() {
			once.Do(func() { close(entered); <-release })
		})
		return s
	})
	anna, tok := r.addOperator("Anna", "100", "1")
	type dialed struct {
		c   *websocket.Conn
		err error
	}
	done := make(chan dialed, 1)
	go func() {
		c, _, err := wsDial(t, r.URL, tok, strconv.Itoa(wire.ProtocolVersion))
		done <- dialed{c, err}
	}()
	<-entered
	if _, err := r.admin().RevokeOperator(context.Background(), "100"); err != nil {
		t.Fatal(err)
	}
	// The relay learns of the revocation from its registry's watch: the
	// paused handshake goes on once it has.
	for deadline := time.Now().Add(10 * time.Second); !r.srv.Barred(anna.ID); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the relay did not see the revocation")
		}
	}
	close(release)
	d := <-done
	if d.err != nil {
		return // refused at the handshake: as good
	}
	d.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, frame, err := d.c.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != wire.CloseRevoked {
		t.Fatalf("the revoked session got %q (%v), want only a close %d", frame, err, wire.CloseRevoked)
	}
}
