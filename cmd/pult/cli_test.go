package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pult/pult/agent"
	"github.com/pult/pult/agent/agenttest"
	"github.com/pult/pult/agent/credentials"
	"github.com/pult/pult/agent/wire"
	"github.com/zalando/go-keyring"
)

// result of one run.
type result struct {
	code           int
	stdout, stderr string
}

// syncBuffer is a bytes.Buffer safe for a writer and a concurrent reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testEnv is a fresh environment: a mock keyring and an empty config dir.
func testEnv(t *testing.T, kv ...string) map[string]string {
	t.Helper()
	keyring.MockInit()
	env := map[string]string{"PULT_CONFIG_DIR": t.TempDir()}
	for i := 0; i+1 < len(kv); i += 2 {
		env[kv[i]] = kv[i+1]
	}
	return env
}

func runCLI(t *testing.T, env map[string]string, stdin string, args ...string) result {
	t.Helper()
	var out, errb syncBuffer
	code := run(context.Background(), args, func(k string) string { return env[k] }, strings.NewReader(stdin), &out, &errb)
	return result{code, out.String(), errb.String()}
}

func (r result) expect(t *testing.T, code int, stdout, stderr string) {
	t.Helper()
	if r.code != code || !strings.Contains(r.stdout, stdout) || !strings.Contains(r.stderr, stderr) {
		t.Errorf("exit %d, stdout %q, stderr %q; want exit %d, stdout containing %q, stderr containing %q",
			r.code, r.stdout, r.stderr, code, stdout, stderr)
	}
}

func TestUsage(t *testing.T) {
	env := testEnv(t)
	for _, args := range [][]string{{"help"}, {"-h"}, {"--help"}} {
		r := runCLI(t, env, "", args...)
		for _, cmd := range []string{"pult login", "pult logout", "pult status", "pult dial", "pult watch", "pult help", "PULT_RELAY", "Exit status"} {
			if !strings.Contains(r.stdout, cmd) || r.code != exitOK {
				t.Errorf("pult %v: exit %d, usage without %q", args, r.code, cmd)
			}
		}
	}
	runCLI(t, env, "", "frobnicate").expect(t, exitUsage, "", `unknown command "frobnicate"`)
	if r := runCLI(t, env, "", "frobnicate"); !strings.Contains(r.stderr, "pult watch") {
		t.Error("unknown command does not print usage on stderr")
	}
	runCLI(t, env, "", "status", "sleeping").expect(t, exitUsage, "", "unknown status")
	runCLI(t, env, "", "status", "busy", "free").expect(t, exitUsage, "", "at most one")
	runCLI(t, env, "", "dial").expect(t, exitUsage, "", "one number")
	runCLI(t, env, "", "dial", "not a number").expect(t, exitUsage, "", "not a phone number")
	runCLI(t, env, "", "dial", "--bogus", "1").expect(t, exitUsage, "", "flag provided but not defined")
	runCLI(t, env, "", "login").expect(t, exitUsage, "", "--relay")
	runCLI(t, env, "", "login", "--relay", "ftp://x").expect(t, exitUsage, "", "scheme")
	runCLI(t, env, "", "login", "--relay", "http://relay.example.com").
		expect(t, exitUsage, "", "http://relay.example.com would send your token unencrypted to relay.example.com; use https:// (wss://), or --insecure if you accept that risk")
	runCLI(t, env, "", "watch", "extra").expect(t, exitUsage, "", "no arguments")
	runCLI(t, env, "", "dial", "-h").expect(t, exitOK, "", "Usage: pult dial")
}

func TestCredentialsFromEnv(t *testing.T) {
	r := agenttest.New(t)
	env := testEnv(t, "PULT_RELAY", r.URL)
	runCLI(t, env, "", "status").expect(t, exitUsage, "", "PULT_RELAY is set but PULT_TOKEN is not")
	env = testEnv(t, "PULT_TOKEN", agenttest.Token)
	runCLI(t, env, "", "status").expect(t, exitUsage, "", "PULT_TOKEN is set but PULT_RELAY is not")

	// Both set: the keyring is not touched (it would fail).
	env = testEnv(t, "PULT_RELAY", strings.Replace(r.URL, "http://", "ws://", 1), "PULT_TOKEN", agenttest.Token)
	keyring.MockInitWithError(errors.New("no keyring in this test"))
	runCLI(t, env, "", "status").expect(t, exitOK, "Anna (code 100): free", "")

	// Neither set and nothing stored.
	env = testEnv(t)
	runCLI(t, env, "", "status").expect(t, exitOffline, "", "not signed in: run pult login")
	keyring.MockInitWithError(errors.New("dbus: no session bus"))
	os.WriteFile(filepath.Join(env["PULT_CONFIG_DIR"], "config.json"), []byte(`{"relayURL":"http://x"}`), 0o600)
	runCLI(t, env, "", "watch").expect(t, exitError, "", "no OS keyring available")
}

func TestLoginLogout(t *testing.T) {
	r := agenttest.New(t)
	env := testEnv(t)
	runCLI(t, env, "  "+agenttest.Token+"\n", "login", "--relay", r.URL+"/").
		expect(t, exitOK, "Signed in to "+r.URL+" as Anna (code 100, operator)", "")
	store := credentials.Store{ConfigDir: env["PULT_CONFIG_DIR"]}
	l, err := store.Load()
	if err != nil || l != (credentials.Login{RelayURL: r.URL, Token: agenttest.Token}) {
		t.Fatalf("stored %+v %v", l, err)
	}
	b, _ := os.ReadFile(filepath.Join(env["PULT_CONFIG_DIR"], "config.json"))
	if strings.Contains(string(b), agenttest.Token) {
		t.Fatal("token written to the config file")
	}

	// The stored sign-in is used by the other commands.
	runCLI(t, env, "", "status", "busy").expect(t, exitOK, "Status set: busy", "")
	if r.Status().Status != wire.StatusBusy {
		t.Errorf("relay status = %v", r.Status())
	}

	runCLI(t, env, "", "logout").expect(t, exitOK, "Signed out", "")
	if _, err := store.Load(); !errors.Is(err, credentials.ErrNotSignedIn) {
		t.Errorf("after logout: %v", err)
	}

	// Token from a file.
	f := filepath.Join(t.TempDir(), "token")
	os.WriteFile(f, []byte(agenttest.Token+"\n"), 0o600)
	runCLI(t, env, "", "login", "--token-file", f, "--relay", r.URL).expect(t, exitOK, "as Anna", "")
}

// Plain text to another machine needs the operator's explicit consent:
// --insecure at login (remembered with the sign-in, cleared by a login
// without it) or PULT_INSECURE=1 with PULT_RELAY; without it the token is
// never sent. 0.0.0.0 is not loopback by agent.IsLoopback, yet Linux
// connects it to this machine, where the test relay listens.
func TestInsecureRelay(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("connecting to 0.0.0.0 reaches this machine only on Linux")
	}
	r := agenttest.New(t)
	plain := strings.Replace(r.URL, "127.0.0.1", "0.0.0.0", 1)
	env := testEnv(t)
	store := credentials.Store{ConfigDir: env["PULT_CONFIG_DIR"]}

	runCLI(t, env, agenttest.Token, "login", "--relay", plain).
		expect(t, exitUsage, "", "would send your token unencrypted to 0.0.0.0; use https:// (wss://), or --insecure")
	if n := len(r.Handshakes()); n != 0 || r.Status().Status != wire.StatusFree {
		t.Fatalf("a refused login reached the relay")
	}
	if _, err := store.Load(); !errors.Is(err, credentials.ErrNotSignedIn) {
		t.Fatalf("a refused login stored something: %v", err)
	}

	runCLI(t, env, agenttest.Token, "login", "--insecure", "--relay", plain).
		expect(t, exitOK, "Signed in to "+plain+" as Anna", "warning: --insecure: your token goes unencrypted")
	if l, err := store.Load(); err != nil || !l.Insecure || l.RelayURL != plain {
		t.Fatalf("stored %q insecure=%v, %v", l.RelayURL, l.Insecure, err)
	}
	// Later commands use the remembered choice.
	runCLI(t, env, "", "status", "busy").expect(t, exitOK, "Status set: busy", "")

	// The choice is not kept past a login without it.
	runCLI(t, env, agenttest.Token, "login", "--relay", r.URL).expect(t, exitOK, "Signed in", "")
	if l, err := store.Load(); err != nil || l.Insecure {
		t.Fatalf("after a login without --insecure: insecure=%v, %v", l.Insecure, err)
	}
	if b, _ := os.ReadFile(filepath.Join(env["PULT_CONFIG_DIR"], "config.json")); strings.Contains(string(b), "insecure") {
		t.Errorf("config.json = %s", b)
	}
	// --insecure where it changes nothing (loopback) is not remembered.
	runCLI(t, env, agenttest.Token, "login", "--insecure", "--relay", r.URL).expect(t, exitOK, "Signed in", "")
	if l, err := store.Load(); err != nil || l.Insecure {
		t.Fatalf("--insecure to loopback remembered: insecure=%v, %v", l.Insecure, err)
	}
	// A stored plain-text URL without the choice (an edited file) is refused.
	os.WriteFile(filepath.Join(env["PULT_CONFIG_DIR"], "config.json"), []byte(`{"relayURL":"`+plain+`"}`), 0o600)
	store.Save(credentials.Login{RelayURL: plain, Token: agenttest.Token})
	runCLI(t, env, "", "status").expect(t, exitUsage, "", "the stored sign-in: relay URL "+plain+" would send your token unencrypted")

	// The environment's way.
	env = testEnv(t, "PULT_RELAY", plain, "PULT_TOKEN", agenttest.Token)
	runCLI(t, env, "", "status").expect(t, exitUsage, "", "PULT_RELAY "+plain+" would send your token unencrypted to 0.0.0.0; use https:// (wss://), or set PULT_INSECURE=1")
	env["PULT_INSECURE"] = "1"
	runCLI(t, env, "", "status").expect(t, exitOK, "Anna (code 100): busy", "")
}

func TestLoginErrors(t *testing.T) {
	r := agenttest.New(t)
	env := testEnv(t)
	runCLI(t, env, " \n", "login", "--relay", r.URL).expect(t, exitUsage, "", "no token")
	runCLI(t, env, strings.Repeat("x", 5000), "login", "--relay", r.URL).expect(t, exitUsage, "", "longer than 4096 bytes")
	runCLI(t, env, "", "login", "--relay", r.URL, "--token-file", "/nonexistent/token").expect(t, exitUsage, "", "token file")
	runCLI(t, env, "wrong-token", "login", "--relay", r.URL).expect(t, exitOffline, "", "the relay does not know this token")

	r.Refuse(http.StatusForbidden, &wire.HandshakeError{Code: wire.CloseRevoked, Reason: "revoked by admin"})
	runCLI(t, env, agenttest.Token, "login", "--relay", r.URL).expect(t, exitOffline, "", "this token has been revoked (revoked by admin)")
	r.Refuse(0, nil)

	web := httptest.NewServer(http.NotFoundHandler())
	defer web.Close()
	runCLI(t, env, agenttest.Token, "login", "--relay", web.URL).expect(t, exitError, "", "does not look like a pult relay")

	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	runCLI(t, env, agenttest.Token, "login", "--relay", dead.URL).expect(t, exitOffline, "", "cannot reach the relay")

	if _, err := (credentials.Store{ConfigDir: env["PULT_CONFIG_DIR"]}).Load(); !errors.Is(err, credentials.ErrNotSignedIn) {
		t.Errorf("a failed login stored something: %v", err)
	}
}

func TestStatusAndDial(t *testing.T) {
	r := agenttest.New(t)
	env := testEnv(t, "PULT_RELAY", r.URL, "PULT_TOKEN", agenttest.Token)
	runCLI(t, env, "", "status", "--timeout", "5s", "Dinner").expect(t, exitOK, "Status set: dinner", "")
	runCLI(t, env, "", "status").expect(t, exitOK, "Anna (code 100): dinner", "")
	runCLI(t, env, "", "dial", "+7 (912) 123-45-67").expect(t, exitOK, "Dialing 8 (912) 123-45-67…\nPBX accepted the call\n", "")

	r.SetHandler(func(req wire.Envelope) (string, any) {
		return wire.TypeError, &wire.Error{Code: wire.ErrPBXUnreachable, Message: "the PBX does not answer"}
	})
	runCLI(t, env, "", "dial", "89121234567").expect(t, exitError, "Dialing", "the call was not placed: the PBX does not answer")
	runCLI(t, env, "", "status", "busy").expect(t, exitError, "", "the relay refused status busy")

	r.Refuse(http.StatusUnauthorized, &wire.HandshakeError{Code: wire.CloseBadToken, Reason: "unknown token"})
	runCLI(t, env, "", "dial", "89121234567").expect(t, exitOffline, "", "the relay does not know this token")
	r.Refuse(http.StatusServiceUnavailable, nil)
	res := runCLI(t, env, "", "status", "--timeout", "300ms")
	res.expect(t, exitOffline, "", "could not connect to the relay at "+r.URL+" within 300ms")
	if strings.Contains(res.stderr+res.stdout, agenttest.Token) {
		t.Error("token printed")
	}
}

func TestWatch(t *testing.T) {
	r := agenttest.New(t)
	env := testEnv(t, "PULT_RELAY", r.URL, "PULT_TOKEN", agenttest.Token)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errb syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"watch"}, func(k string) string { return env[k] }, strings.NewReader(""), &out, &errb)
	}()
	r.Wait(t, 5*time.Second, "connection", r.Connected)
	seq := r.Publish(wire.TypeCall, wire.Call{
		ID: "c1", Direction: wire.DirectionIn, State: wire.CallRinging, Phone: "+79121234567", PhoneDisplay: "8 (912) 123-45-67",
		Manager: &wire.Manager{Name: "Boris", Code: "101", Free: true}, ManagerState: wire.ManagerFound,
	})
	r.Publish(wire.TypeStatus, wire.StatusInfo{Status: wire.StatusBusy, Source: "crm"})
	r.Publish(wire.TypeNotice, wire.Notice{Kind: wire.NoticeDialing, Text: "Dialing <8 (912) 123-45-67>"})
	deadline := time.Now().Add(5 * time.Second)
	for strings.Count(out.String(), "\n") < 6 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if code := <-done; code != exitOK {
		t.Errorf("watch exit %d, stderr %q", code, errb.String())
	}

	var lines []map[string]any
	sc := bufio.NewScanner(strings.NewReader(out.String()))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("not a JSON line: %q", sc.Text())
		}
		lines = append(lines, m)
	}
	want := []string{"connection:connecting", "hello", "connection:online", "call", "status", "notice"}
	if len(lines) < len(want) {
		t.Fatalf("lines:\n%s", out.String())
	}
	for i, w := range want {
		got := lines[i]["event"].(string)
		if st, ok := lines[i]["state"]; ok {
			got += ":" + st.(string)
		}
		if got != w {
			t.Errorf("line %d = %s, want %s", i, got, w)
		}
	}
	c := lines[3]
	if c["seq"].(float64) != float64(seq) {
		t.Errorf("call seq = %v, want %d", c["seq"], seq)
	}
	card := c["call"].(map[string]any)
	if card["state"] != "ringing" || card["phone"] != "+79121234567" || card["manager"].(map[string]any)["name"] != "Boris" {
		t.Errorf("call line = %v", c)
	}
	if h := lines[1]["hello"].(map[string]any); h["operator"].(map[string]any)["name"] != "Anna" {
		t.Errorf("hello line = %v", lines[1])
	}
	if !strings.Contains(out.String(), `"text":"Dialing <8 (912) 123-45-67>"`) {
		t.Errorf("HTML-escaped output: %s", out.String())
	}
}

func TestWatchStops(t *testing.T) {
	r := agenttest.New(t)
	env := testEnv(t, "PULT_RELAY", r.URL, "PULT_TOKEN", agenttest.Token)
	var out, errb syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(context.Background(), []string{"watch"}, func(k string) string { return env[k] }, strings.NewReader(""), &out, &errb)
	}()
	r.Wait(t, 5*time.Second, "connection", r.Connected)
	r.CloseWith(wire.CloseRevoked, "revoked by admin")
	select {
	case code := <-done:
		if code != exitOffline || !strings.Contains(errb.String(), "this token has been revoked (revoked by admin)") {
			t.Errorf("exit %d, stderr %q", code, errb.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("watch did not stop")
	}
	if !strings.Contains(out.String(), `{"event":"connection","state":"auth_failed","error":`) {
		t.Errorf("no auth_failed line in %s", out.String())
	}
}

// pult logout removes the sign-in's queued state and the recent calls, and
// keeps other files; work not yet sent to the relay is listed and kept
// unless --discard.
func TestLogoutRemovesQueuedState(t *testing.T) {
	r := agenttest.New(t)
	env := testEnv(t)
	cfgDir := env["PULT_CONFIG_DIR"]
	runCLI(t, env, agenttest.Token, "login", "--relay", r.URL).expect(t, exitOK, "Signed in", "")
	store := credentials.Store{ConfigDir: cfgDir}
	session := agent.SessionDir(cfgDir, r.URL, agenttest.Token)

	// A transcript kept while the relay is down, and a status change made
	// offline by the app (an agent on the same folder).
	file := filepath.Join(t.TempDir(), "chat.txt")
	os.WriteFile(file, []byte("Anna: Hello\nIvan: Hi\n"), 0o600)
	r.Refuse(http.StatusServiceUnavailable, nil)
	runCLI(t, env, "", "transcript", "submit", "--timeout", "300ms", file).expect(t, exitOffline, "will be sent once", "")
	r.Refuse(0, nil)
	a, err := agent.New(agent.Config{RelayURL: r.URL, Token: agenttest.Token, StateDir: session})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.SetStatus(context.Background(), wire.StatusDinner); !errors.Is(err, agent.ErrQueued) {
		t.Fatalf("SetStatus offline = %v", err)
	}
	recent := filepath.Join(cfgDir, "recent.json")
	os.WriteFile(recent, []byte(`{"calls":[{"id":"c1","phone":"+79161234567"}]}`), 0o600)
	unrelated := filepath.Join(cfgDir, "notes.txt")
	os.WriteFile(unrelated, []byte("mine"), 0o600)

	// Unsent work: refused, listed, nothing changed.
	runCLI(t, env, "", "logout").expect(t, exitError, "", "not signed out: 2 item(s) have not reached the relay yet")
	res := runCLI(t, env, "", "logout")
	for _, want := range []string{"status change to dinner", `transcript `, `("chat.txt")`, "pult logout --discard"} {
		if !strings.Contains(res.stderr, want) {
			t.Errorf("refusal %q lacks %q", res.stderr, want)
		}
	}
	if _, err := store.Load(); err != nil {
		t.Errorf("a refused logout removed the sign-in: %v", err)
	}
	if q, err := agent.ReadQueued(session); err != nil || q.Status == nil || len(q.Transcripts) != 1 {
		t.Errorf("a refused logout changed the queue: %+v, %v", q, err)
	}

	// --discard: everything goes, and it says what was dropped.
	runCLI(t, env, "", "logout", "--discard").
		expect(t, exitOK, "Removed the queued state of 1 sign-in(s) and the recent calls", "discarded, never sent to the relay:\n  status change to dinner")
	if _, err := store.Load(); !errors.Is(err, credentials.ErrNotSignedIn) {
		t.Errorf("after logout: %v", err)
	}
	for _, gone := range []string{session, recent} {
		if _, err := os.Stat(gone); !os.IsNotExist(err) {
			t.Errorf("%s still there: %v", gone, err)
		}
	}
	if b, err := os.ReadFile(unrelated); err != nil || string(b) != "mine" {
		t.Errorf("an unrelated file was touched: %q, %v", b, err)
	}

	// Nothing unsent: no --discard needed; the stream position goes too.
	runCLI(t, env, agenttest.Token, "login", "--relay", r.URL).expect(t, exitOK, "Signed in", "")
	os.MkdirAll(session, 0o700)
	os.WriteFile(filepath.Join(session, "state.json"), []byte(`{"seq":3,"epoch":"e"}`), 0o600)
	runCLI(t, env, "", "logout").expect(t, exitOK, "Removed the queued state of 1 sign-in(s)", "")
	if _, err := os.Stat(session); !os.IsNotExist(err) {
		t.Errorf("%s still there: %v", session, err)
	}
}
