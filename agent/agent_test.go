package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/pult/pult/agent/agenttest"
	"github.com/pult/pult/agent/phone"
	"github.com/pult/pult/agent/wire"
)

func call(id string, st wire.CallState) wire.Call {
	return wire.Call{ID: id, Direction: wire.DirectionIn, State: st, Phone: "+79121234567", PhoneDisplay: "8 (912) 123-45-67", ManagerState: wire.ManagerPending}
}

func TestNewValidates(t *testing.T) {
	for _, tc := range []struct{ url, token, want string }{
		{"", "t", "empty"},
		{"ftp://relay", "t", "scheme"},
		{"relay.example.com:8080", "t", "scheme"},
		{"https://", "t", "no host"},
		{"https://u:p@relay", "t", "credentials"},
		{"https://relay/?x=1", "t", "query"},
		{"https://relay", "", "empty token"},
		{"https://relay", "a b", "spaces"},
	} {
		_, err := New(Config{RelayURL: tc.url, Token: tc.token})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%q, %q) = %v, want error containing %q", tc.url, tc.token, err, tc.want)
		}
	}
	for _, u := range []string{"http://127.0.0.1:8080", "https://relay/pult/", "ws://localhost", "WSS://relay"} {
		a, err := New(Config{RelayURL: u, Token: "t"})
		if err != nil {
			t.Errorf("New(%q): %v", u, err)
			continue
		}
		if ws := a.relays[0].ws; !strings.HasSuffix(ws, wire.Path) || !strings.HasPrefix(ws, "ws") {
			t.Errorf("New(%q): websocket URL %q", u, ws)
		}
	}
	if _, err := New(Config{RelayURL: "https://relay", Token: "t", Resume: true}); err == nil {
		t.Error("Resume without StateDir accepted")
	}
}

func TestBackoff(t *testing.T) {
	min, max := 500*time.Millisecond, 30*time.Second
	for n, want := range []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 30 * time.Second, 30 * time.Second} {
		if got := backoffCeil(n, min, max); got != want {
			t.Errorf("backoffCeil(%d) = %v, want %v", n, got, want)
		}
	}
	if got := backoffCeil(1000, min, max); got != max {
		t.Errorf("backoffCeil(1000) = %v, want the cap", got)
	}
	// Full jitter: the random value spans [0, ceil], both ends included.
	top := func(k int64) int64 { return k - 1 }
	zero := func(int64) int64 { return 0 }
	for n := range 70 {
		if got, ceil := backoff(n, min, max, top), backoffCeil(n, min, max); got != ceil {
			t.Errorf("backoff(%d) with the largest random value = %v, want %v", n, got, ceil)
		}
		if got := backoff(n, min, max, zero); got != 0 {
			t.Errorf("backoff(%d) with random 0 = %v", n, got)
		}
	}
	seen := map[time.Duration]bool{}
	for range 1000 {
		d := backoff(3, min, max, rand.Int64N)
		if d < 0 || d > 4*time.Second {
			t.Fatalf("backoff(3) = %v, outside [0, 4s]", d)
		}
		seen[d] = true
	}
	if len(seen) < 900 {
		t.Errorf("backoff is not jittered: %d distinct values of 1000", len(seen))
	}
}

func TestEventsExactlyOnceInOrderAcrossReconnect(t *testing.T) {
	checkLeaks(t)
	r := agenttest.New(t)
	a, rec := newTestAgent(t, r, nil)
	run := start(t, a)
	waitOnline(t, a)

	s1 := r.Publish(wire.TypeCall, call("c1", wire.CallRinging))
	s2 := r.Publish(wire.TypeStatus, wire.StatusInfo{Status: wire.StatusBusy, Source: "crm"})
	r.Resend(s1) // duplicate
	s3 := r.Publish(wire.TypeNotice, wire.Notice{Kind: wire.NoticeDialing, Text: "dialing"})
	r.Resend(s2) // old
	r.SendRaw([]byte(`{"v":1,"type":"future.thing","seq":0}`))
	s4 := r.Publish(wire.TypeCall, call("c1", wire.CallTalking))
	waitFor(t, "4 events", func() bool { return len(rec.seqs()) >= 4 })

	r.Drop()
	s5 := r.Publish(wire.TypeCall, call("c1", wire.CallEnded)) // stored while the agent is away (or sent live)
	s6 := r.Publish(wire.TypeCall, call("c2", wire.CallMissed))
	waitFor(t, "reconnect", func() bool { return r.Accepted() == 2 })
	r.Resend(s4) // the relay repeats an old one after resume
	s7 := r.Publish(wire.TypeNotice, wire.Notice{Kind: wire.NoticeDialFailed, Text: "busy"})
	waitFor(t, "7 events", func() bool { return len(rec.seqs()) >= 7 })
	time.Sleep(20 * time.Millisecond) // room for a wrong duplicate to show up

	if diff := cmp.Diff([]uint64{s1, s2, s3, s4, s5, s6, s7}, rec.seqs()); diff != "" {
		t.Errorf("seqs delivered (-want +got):\n%s", diff)
	}
	hs := r.Handshakes()
	if hs[0].Since != "" || hs[0].Epoch != "" {
		t.Errorf("first handshake sent a position: %+v", hs[0])
	}
	if hs[1].Since != "8" || hs[1].Epoch != "epoch-1" || hs[1].Protocol != "1" {
		t.Errorf("resume handshake = %+v, want since=8 epoch=epoch-1 protocol 1", hs[1])
	}
	evs := rec.events()
	if evs[0].Kind != EventConn || evs[0].Conn != Connecting || evs[1].Kind != EventHello || evs[2].Conn != Online {
		t.Errorf("first events: %+v %+v %+v, want connecting, hello, online", evs[0], evs[1], evs[2])
	}
	if evs[1].Hello.Operator.Name != "Anna" {
		t.Errorf("hello operator = %+v", evs[1].Hello.Operator)
	}
	first := evs[3]
	if first.Kind != EventCall || first.Call.ID != "c1" || first.Call.State != wire.CallRinging {
		t.Errorf("first stream event = %+v", first)
	}
	if rec.count(EventConn, Offline) != 1 {
		t.Errorf("offline events = %d, want 1", rec.count(EventConn, Offline))
	}
	if off, _ := rec.last(EventConn); off.Conn != Online {
		t.Errorf("last connection event = %v", off.Conn)
	}
	if err := run.stop(t); err != nil {
		t.Errorf("Run = %v, want nil after cancel", err)
	}
	if a.State() != Stopped {
		t.Errorf("state after Run = %v", a.State())
	}
}

func TestEpochChangeResetsPosition(t *testing.T) {
	checkLeaks(t)
	r := agenttest.New(t)
	a, rec := newTestAgent(t, r, nil)
	start(t, a)
	waitOnline(t, a)
	r.Publish(wire.TypeCall, call("c1", wire.CallRinging))
	r.Publish(wire.TypeCall, call("c1", wire.CallMissed))
	waitFor(t, "2 events", func() bool { return len(rec.seqs()) == 2 })

	r.SetEpoch("epoch-2") // the relay's log was recreated: seqs start over
	r.Drop()
	waitFor(t, "reconnect", func() bool { return r.Accepted() == 2 })
	waitOnline(t, a)
	r.Publish(wire.TypeCall, call("c2", wire.CallRinging)) // seq 2 again
	waitFor(t, "3 events", func() bool { return len(rec.seqs()) == 3 })
	if diff := cmp.Diff([]uint64{2, 4, 2}, rec.seqs()); diff != "" {
		t.Errorf("seqs (-want +got):\n%s", diff)
	}
	if h := r.Handshakes()[1]; h.Since != "4" || h.Epoch != "epoch-1" {
		t.Errorf("handshake after epoch change = %+v", h)
	}
	if h, ok := a.Hello(); !ok || h.Epoch != "epoch-2" || h.Resumed {
		t.Errorf("Hello() = %+v, %v", h, ok)
	}
}

func TestResumePersistedAcrossRestart(t *testing.T) {
	checkLeaks(t)
	dir := t.TempDir()
	r := agenttest.New(t)
	a, rec := newTestAgent(t, r, func(c *Config) { c.StateDir, c.Resume = dir, true })
	run := start(t, a)
	waitOnline(t, a)
	r.Publish(wire.TypeCall, call("c1", wire.CallRinging))
	r.Publish(wire.TypeCall, call("c1", wire.CallMissed))
	waitFor(t, "2 events", func() bool { return len(rec.seqs()) == 2 })
	run.stop(t)

	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), agenttest.Token) {
		t.Fatal("state file contains the token")
	}
	var pos position
	if err := json.Unmarshal(b, &pos); err != nil || pos != (position{Seq: 4, Epoch: "epoch-1"}) {
		t.Fatalf("state.json = %s (%v)", b, err)
	}

	s3 := r.Publish(wire.TypeCall, call("c2", wire.CallRinging)) // while no agent runs
	a2, rec2 := newTestAgent(t, r, func(c *Config) { c.StateDir, c.Resume = dir, true })
	start(t, a2)
	waitFor(t, "resumed event", func() bool { return len(rec2.seqs()) == 1 })
	if got := r.Handshakes()[1]; got.Since != "4" {
		t.Errorf("restarted agent sent since=%q, want 4", got.Since)
	}
	if rec2.seqs()[0] != s3 {
		t.Errorf("restarted agent got %v, want [%d]", rec2.seqs(), s3)
	}
}

func TestHandshakeRefusalStops(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		body   *wire.HandshakeError
		code   int
		state  ConnState
		reason string
	}{
		{"bad token", http.StatusUnauthorized, &wire.HandshakeError{Code: wire.CloseBadToken, Reason: "unknown token"}, wire.CloseBadToken, AuthFailed, "unknown token"},
		{"revoked", http.StatusForbidden, &wire.HandshakeError{Code: wire.CloseRevoked, Reason: "revoked by admin"}, wire.CloseRevoked, AuthFailed, "revoked by admin"},
		{"protocol", http.StatusUpgradeRequired, &wire.HandshakeError{Code: wire.CloseProtocol, Reason: "update"}, wire.CloseProtocol, Outdated, "update"},
		{"403 without body", http.StatusForbidden, nil, wire.CloseRevoked, AuthFailed, wire.CloseText(wire.CloseRevoked)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkLeaks(t)
			r := agenttest.New(t)
			r.Refuse(tc.status, tc.body)
			a, rec := newTestAgent(t, r, nil)
			err := start(t, a).wait(t)
			var se *StopError
			if !errors.As(err, &se) || se.Code != tc.code || se.Reason != tc.reason {
				t.Fatalf("Run = %v, want StopError %d %q", err, tc.code, tc.reason)
			}
			if a.State() != tc.state {
				t.Errorf("state = %v, want %v", a.State(), tc.state)
			}
			if ev, _ := rec.last(EventConn); ev.Conn != tc.state || ev.Err == "" {
				t.Errorf("last connection event = %+v", ev)
			}
			if n := len(r.Handshakes()); n != 1 {
				t.Errorf("%d handshakes, want 1 (no retry)", n)
			}
		})
	}
}

func TestHandshakeErrorsRetry(t *testing.T) {
	checkLeaks(t)
	r := agenttest.New(t)
	r.Refuse(http.StatusServiceUnavailable, nil)
	a, rec := newTestAgent(t, r, nil)
	start(t, a)
	waitFor(t, "retries", func() bool { return len(r.Handshakes()) >= 3 })
	ev, _ := rec.last(EventConn)
	if ev.Conn != Offline && ev.Conn != Connecting {
		t.Errorf("state while refused with 503: %+v", ev)
	}
	var off Event
	for _, e := range rec.events() {
		if e.Conn == Offline {
			off = e
		}
	}
	if !strings.Contains(off.Err, "503") || off.RetryIn > 50*time.Millisecond {
		t.Errorf("offline event = %+v", off)
	}
	r.Refuse(0, nil)
	waitOnline(t, a)
}

func TestCloseCodes(t *testing.T) {
	t.Run("4003 stops", func(t *testing.T) {
		checkLeaks(t)
		r := agenttest.New(t)
		a, _ := newTestAgent(t, r, nil)
		run := start(t, a)
		waitOnline(t, a)
		r.CloseWith(wire.CloseRevoked, "revoked by admin")
		err := run.wait(t)
		var se *StopError
		if !errors.As(err, &se) || se.Code != wire.CloseRevoked || se.Reason != "revoked by admin" {
			t.Fatalf("Run = %v", err)
		}
		if a.State() != AuthFailed {
			t.Errorf("state = %v", a.State())
		}
	})
	t.Run("4100 reconnects", func(t *testing.T) {
		checkLeaks(t)
		r := agenttest.New(t)
		a, rec := newTestAgent(t, r, nil)
		start(t, a)
		waitOnline(t, a)
		r.CloseWith(wire.CloseGoingAway, "")
		// The agent drops the link and reconnects (resuming, it is sent the same
		// frame again: an oversized event is never silently skipped).
		waitFor(t, "reconnect", func() bool { return r.Accepted() >= 2 })
		var off Event
		for _, e := range rec.events() {
			if e.Conn == Offline {
				off = e
			}
		}
		if !strings.Contains(off.Err, "restarting") {
			t.Errorf("offline reason = %q", off.Err)
		}
	})
}

func TestPingAnswered(t *testing.T) {
	checkLeaks(t)
	r := agenttest.New(t)
	a, _ := newTestAgent(t, r, nil)
	start(t, a)
	waitOnline(t, a)
	if err := r.Ping(2 * time.Second); err != nil {
		t.Fatal(err)
	}
}

func TestDeadLinkDetected(t *testing.T) {
	checkLeaks(t)
	r := agenttest.New(t)
	a, _ := newTestAgent(t, r, nil)
	a.pongWait = 100 * time.Millisecond // the relay sends nothing for longer
	start(t, a)
	waitFor(t, "reconnect after silence", func() bool { return r.Accepted() >= 2 })
}

func TestRequests(t *testing.T) {
	checkLeaks(t)
	r := agenttest.New(t)
	a, _ := newTestAgent(t, r, nil)
	start(t, a)
	waitOnline(t, a)
	ctx := context.Background()

	info, err := a.SetStatus(ctx, wire.StatusBusy)
	if err != nil || info.Status != wire.StatusBusy || info.Source != "agent" {
		t.Fatalf("SetStatus = %+v, %v", info, err)
	}
	if _, err := a.SetStatus(ctx, wire.StatusOffline); err == nil {
		t.Error("SetStatus(offline) accepted")
	}
	res, err := a.Dial(ctx, "+7 (912) 123-45-67")
	if err != nil || res.Phone != "+79121234567" || res.Display != "8 (912) 123-45-67" {
		t.Fatalf("Dial = %+v, %v", res, err)
	}
	n := len(r.Requests())
	if _, err := a.Dial(ctx, "call me maybe"); !errors.Is(err, phone.ErrNotANumber) {
		t.Errorf("Dial(garbage) = %v, want ErrNotANumber", err)
	}
	if len(r.Requests()) != n {
		t.Error("an invalid number was sent to the relay")
	}

	r.SetHandler(func(req wire.Envelope) (string, any) {
		return wire.TypeError, &wire.Error{Code: wire.ErrPBXRefused, Message: "PBX said no"}
	})
	_, err = a.Dial(ctx, "89121234567")
	var we *wire.Error
	if !errors.As(err, &we) || we.Code != wire.ErrPBXRefused || !strings.Contains(err.Error(), "PBX said no") {
		t.Errorf("Dial refused = %v", err)
	}
	_, err = a.SetStatus(ctx, wire.StatusBreak)
	if !errors.As(err, &we) || errors.Is(err, ErrQueued) {
		t.Errorf("SetStatus refused = %v", err)
	}

	// Answers are matched by id, not by order.
	ids := make(chan string, 3)
	r.SetHandler(func(req wire.Envelope) (string, any) { ids <- req.ID; return "", nil })
	type result struct {
		want string
		res  wire.DialResult
		err  error
	}
	results := make(chan result, 3)
	numbers := []string{"+79120000001", "+79120000002", "+79120000003"}
	for _, num := range numbers {
		go func() {
			res, err := a.Dial(ctx, num)
			results <- result{num, res, err}
		}()
	}
	var got []wire.Envelope
	for range numbers {
		id := <-ids
		for _, req := range r.Requests() {
			if req.ID == id {
				got = append(got, req)
			}
		}
	}
	for i := len(got) - 1; i >= 0; i-- { // answer in reverse order
		var d wire.Dial
		json.Unmarshal(got[i].Data, &d)
		frame, _ := wire.Encode(wire.TypeReply, got[i].ID, 0, wire.DialResult{Phone: d.Phone, Display: "x"})
		r.SendRaw(frame)
	}
	for range numbers {
		res := <-results
		if res.err != nil || res.res.Phone != res.want {
			t.Errorf("Dial(%s) = %+v, %v", res.want, res.res, res.err)
		}
	}
}

func TestDialTimeoutAndDrop(t *testing.T) {
	checkLeaks(t)
	r := agenttest.New(t)
	a, _ := newTestAgent(t, r, func(c *Config) { c.DialTimeout = 50 * time.Millisecond })
	start(t, a)
	waitOnline(t, a)
	r.SetHandler(func(wire.Envelope) (string, any) { return "", nil })
	if _, err := a.Dial(context.Background(), "89121234567"); !errors.Is(err, ErrNoReply) {
		t.Errorf("Dial without answer = %v, want ErrNoReply", err)
	}

	a.cfg.DialTimeout = 5 * time.Second
	got := make(chan struct{}, 1)
	r.SetHandler(func(wire.Envelope) (string, any) { got <- struct{}{}; return "", nil })
	errc := make(chan error, 1)
	go func() { _, err := a.Dial(context.Background(), "89121234567"); errc <- err }()
	<-got
	r.Drop()
	if err := <-errc; !errors.Is(err, ErrNoReply) || !strings.Contains(err.Error(), "may or may not") {
		t.Errorf("Dial when the connection drops = %v", err)
	}
}

func TestDialOfflineFailsAtOnce(t *testing.T) {
	checkLeaks(t)
	r := agenttest.New(t)
	r.Refuse(http.StatusServiceUnavailable, nil)
	a, _ := newTestAgent(t, r, nil)
	startAt := time.Now()
	if _, err := a.Dial(context.Background(), "89121234567"); !errors.Is(err, ErrOffline) {
		t.Errorf("Dial before Run = %v", err)
	}
	start(t, a)
	waitFor(t, "a refused attempt", func() bool { return len(r.Handshakes()) >= 1 })
	if _, err := a.Dial(context.Background(), "89121234567"); !errors.Is(err, ErrOffline) || err.Error() != "not connected to the relay: the call was not placed" {
		t.Errorf("Dial while offline = %v", err)
	}
	if d := time.Since(startAt); d > time.Second {
		t.Errorf("Dial offline took %v", d)
	}
	for _, req := range r.Requests() {
		if req.Type == wire.TypeDial {
			t.Error("a dial was queued and sent")
		}
	}
}

func TestStatusOutboxSurvivesRestart(t *testing.T) {
	checkLeaks(t)
	dir := t.TempDir()
	r := agenttest.New(t)

	// Process 1: never connects; the operator picks dinner, then busy.
	a1, _ := newTestAgent(t, r, func(c *Config) { c.StateDir = dir })
	if _, err := a1.SetStatus(context.Background(), wire.StatusDinner); !errors.Is(err, ErrQueued) {
		t.Fatalf("SetStatus offline = %v, want ErrQueued", err)
	}
	_, err := a1.SetStatus(context.Background(), wire.StatusBusy)
	if !errors.Is(err, ErrQueued) || err.Error() != "relay unreachable: status busy will be sent when the connection is back" {
		t.Fatalf("SetStatus offline = %v", err)
	}
	path := filepath.Join(dir, outboxFile)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("outbox mode %v, want 0600", fi.Mode().Perm())
	}
	b, _ := os.ReadFile(path)
	if strings.Contains(string(b), agenttest.Token) {
		t.Fatal("outbox contains the token")
	}
	var doc outboxDoc
	if err := json.Unmarshal(b, &doc); err != nil || doc.Status == nil || doc.Status.Status != wire.StatusBusy {
		t.Fatalf("outbox = %s", b)
	}
	queued := *doc.Status

	// Process 2 with the same StateDir connects; the first attempt's answer
	// is lost with the connection, so the change goes out twice, same id.
	sent := make(chan struct{}, 4)
	var calls atomic.Int32
	r.SetHandler(func(req wire.Envelope) (string, any) {
		sent <- struct{}{}
		if calls.Add(1) == 1 {
			return "", nil
		}
		var s wire.SetStatus
		json.Unmarshal(req.Data, &s)
		return wire.TypeReply, wire.StatusInfo{Status: s.Status, Since: s.At, Source: "agent"}
	})
	a2, rec := newTestAgent(t, r, func(c *Config) { c.StateDir = dir })
	start(t, a2)
	<-sent
	r.Drop()
	waitFor(t, "receipt", func() bool { _, ok := rec.last(EventReceipt); return ok })

	var ids []string
	for _, req := range r.Requests() {
		if req.Type != wire.TypeSetStatus {
			continue
		}
		ids = append(ids, req.ID)
		var s wire.SetStatus
		json.Unmarshal(req.Data, &s)
		if s.Status != wire.StatusBusy || !s.At.Equal(queued.At) {
			t.Errorf("sent %+v, want busy at %v", s, queued.At)
		}
	}
	if diff := cmp.Diff([]string{queued.ID, queued.ID}, ids); diff != "" {
		t.Errorf("status.set ids (-want +got):\n%s", diff)
	}
	ev, _ := rec.last(EventReceipt)
	if rc := ev.Receipt; rc.ID != queued.ID || rc.Applied == nil || rc.Applied.Status != wire.StatusBusy || rc.Refused != nil {
		t.Errorf("receipt = %+v", rc)
	}
	if rec.count(EventReceipt, 0) != 1 {
		t.Errorf("%d receipts, want 1", rec.count(EventReceipt, 0))
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("outbox still on disk after the answer: %v", err)
	}
}

func TestStatusQueuedOnceWhenAnswered(t *testing.T) {
	checkLeaks(t)
	r := agenttest.New(t)
	a, rec := newTestAgent(t, r, nil) // memory-only outbox
	if _, err := a.SetStatus(context.Background(), wire.StatusBreak); !errors.Is(err, ErrQueued) {
		t.Fatal(err)
	}
	start(t, a)
	waitFor(t, "receipt", func() bool { _, ok := rec.last(EventReceipt); return ok })
	r.Drop()
	// The agent drops the link and reconnects (resuming, it is sent the same
	// frame again: an oversized event is never silently skipped).
	waitFor(t, "reconnect", func() bool { return r.Accepted() >= 2 })
	n := 0
	for _, req := range r.Requests() {
		if req.Type == wire.TypeSetStatus {
			n++
		}
	}
	if n != 1 {
		t.Errorf("status.set sent %d times, want once", n)
	}
	if r.Status().Status != wire.StatusBreak {
		t.Errorf("relay status = %v", r.Status())
	}
}

func TestStatusQueuedRefusedIsDropped(t *testing.T) {
	checkLeaks(t)
	dir := t.TempDir()
	r := agenttest.New(t)
	r.SetHandler(func(wire.Envelope) (string, any) {
		return wire.TypeError, &wire.Error{Code: wire.ErrInvalidStatus, Message: "a newer status exists"}
	})
	a, rec := newTestAgent(t, r, func(c *Config) { c.StateDir = dir })
	if _, err := a.SetStatus(context.Background(), wire.StatusFree); !errors.Is(err, ErrQueued) {
		t.Fatal(err)
	}
	start(t, a)
	waitFor(t, "receipt", func() bool { _, ok := rec.last(EventReceipt); return ok })
	ev, _ := rec.last(EventReceipt)
	if ev.Receipt.Refused == nil || ev.Receipt.Refused.Code != wire.ErrInvalidStatus || ev.Receipt.Applied != nil {
		t.Errorf("receipt = %+v", ev.Receipt)
	}
	if _, err := os.Stat(filepath.Join(dir, outboxFile)); !os.IsNotExist(err) {
		t.Errorf("refused change still queued: %v", err)
	}
}

func TestFrameLimits(t *testing.T) {
	checkLeaks(t)
	r := agenttest.New(t)
	a, rec := newTestAgent(t, r, func(c *Config) { c.MaxFrame = 1024 })
	start(t, a)
	waitOnline(t, a)

	if _, err := a.encode(wire.TypeDial, newID(), wire.Dial{Phone: strings.Repeat("9", 2000)}); !errors.Is(err, ErrFrameTooLarge) || !strings.Contains(err.Error(), "1024") {
		t.Errorf("encode of a large frame = %v", err)
	}
	if a.State() != Online {
		t.Error("a refused outgoing frame affected the connection")
	}

	// Frames from the relay may be larger (a supervisor's queue snapshot)…
	r.Publish(wire.TypeNotice, wire.Notice{Kind: "dialing", Text: strings.Repeat("x", 200<<10)})
	waitFor(t, "a large notice", func() bool { _, ok := rec.last(EventNotice); return ok })
	// …up to wire.MaxRelayFrame. Past it, the agent drops the link and
	// reconnects (resuming, it is sent the same frame again: an oversized
	// event is never silently skipped).
	r.Publish(wire.TypeNotice, wire.Notice{Kind: "dialing", Text: strings.Repeat("x", wire.MaxRelayFrame)})
	waitFor(t, "reconnect", func() bool { return r.Accepted() >= 2 })
	var off Event
	for _, e := range rec.events() {
		if e.Conn == Offline {
			off = e
		}
	}
	if !strings.Contains(off.Err, fmt.Sprintf("larger than the %d-byte limit", wire.MaxRelayFrame)) {
		t.Errorf("offline reason = %q", off.Err)
	}
}

func TestRunStopsWhileBackingOff(t *testing.T) {
	checkLeaks(t)
	r := agenttest.New(t)
	r.Refuse(http.StatusBadGateway, nil)
	a, _ := newTestAgent(t, r, func(c *Config) { c.MinBackoff, c.MaxBackoff = time.Hour, time.Hour })
	run := start(t, a)
	waitFor(t, "offline", func() bool { return a.State() == Offline })
	t0 := time.Now()
	if err := run.stop(t); err != nil {
		t.Errorf("Run = %v", err)
	}
	if d := time.Since(t0); d > time.Second {
		t.Errorf("Run took %v to stop", d)
	}
}

func TestRunTwiceRefused(t *testing.T) {
	checkLeaks(t)
	r := agenttest.New(t)
	a, _ := newTestAgent(t, r, nil)
	start(t, a)
	waitOnline(t, a)
	if err := a.Run(context.Background()); err == nil {
		t.Error("a second concurrent Run was accepted")
	}
}

func TestCheck(t *testing.T) {
	checkLeaks(t)
	r := agenttest.New(t)
	ctx := context.Background()
	op, err := Check(ctx, r.URL, agenttest.Token)
	if err != nil || op.Name != "Anna" || op.Code != "100" {
		t.Fatalf("Check = %+v, %v", op, err)
	}
	if _, err := Check(ctx, strings.Replace(r.URL, "http", "ws", 1), agenttest.Token); err != nil {
		t.Errorf("Check with a ws URL: %v", err)
	}
	var se *StopError
	if _, err := Check(ctx, r.URL, "wrong"); !errors.As(err, &se) || se.Code != wire.CloseBadToken {
		t.Errorf("Check bad token = %v", err)
	}
	r.Refuse(http.StatusForbidden, &wire.HandshakeError{Code: wire.CloseRevoked, Reason: "revoked"})
	if _, err := Check(ctx, r.URL, agenttest.Token); !errors.As(err, &se) || se.Code != wire.CloseRevoked {
		t.Errorf("Check revoked = %v", err)
	}
	r.Refuse(0, nil)

	notRelay := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path == "/html"+wire.PathMe {
			w.Write([]byte("<html>hello</html>"))
			return
		}
		http.NotFound(w, req)
	}))
	defer notRelay.Close()
	if _, err := Check(ctx, notRelay.URL, "t"); !errors.Is(err, ErrNotRelay) {
		t.Errorf("Check 404 = %v", err)
	}
	if _, err := Check(ctx, notRelay.URL+"/html", "t"); !errors.Is(err, ErrNotRelay) {
		t.Errorf("Check HTML = %v", err)
	}
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	if _, err := Check(ctx, dead.URL, "t"); !errors.Is(err, ErrUnreachable) {
		t.Errorf("Check dead = %v", err)
	}
	if _, err := Check(ctx, "gopher://x", "t"); err == nil || errors.Is(err, ErrUnreachable) {
		t.Errorf("Check bad scheme = %v", err)
	}
}

// TestThrottledBacksOff: a session closed for its request rate, or a
// handshake refused with 429, is retried after throttledWait at the least,
// even after a long time online (which otherwise resets the backoff).
func TestThrottledBacksOff(t *testing.T) {
	for _, tc := range []struct {
		name   string
		refuse func(r *agenttest.Relay)
		want   string
	}{
		{"4102", func(r *agenttest.Relay) { r.CloseWith(wire.CloseRateLimited, "more than 5 requests per second") }, "more than 5 requests per second"},
		{"429", func(r *agenttest.Relay) {
			r.Refuse(http.StatusTooManyRequests, &wire.HandshakeError{Code: wire.CloseTooManySessions, Reason: "4 sessions are open already"})
			r.Drop()
		}, "4 sessions are open already"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkLeaks(t)
			r := agenttest.New(t)
			a, rec := newTestAgent(t, r, nil)
			a.stableAfter = 0 // every connection counts as stable
			a.throttledWait = 300 * time.Millisecond
			start(t, a)
			waitOnline(t, a)
			tc.refuse(r)
			var ev Event
			waitFor(t, "offline with the relay's reason", func() bool {
				for _, e := range rec.events() {
					if e.Conn == Offline && strings.Contains(e.Err, tc.want) {
						ev = e
						return true
					}
				}
				return false
			})
			if ev.RetryIn < 300*time.Millisecond || !strings.Contains(ev.Err, tc.want) {
				t.Errorf("offline event = %+v; want a retry after 300ms at least, and the relay's reason", ev)
			}
			r.Refuse(0, nil)
			waitOnline(t, a)
		})
	}
}
