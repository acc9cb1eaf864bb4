package hub

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/pult/pult/agent/wire"
	"github.com/pult/pult/relay/store"
)

// emptyLog is a log with nothing in it: sessions start at its end.
type emptyLog struct{}

func (emptyLog) Next(context.Context, string, uint64) (*store.Event, error) { return nil, nil }
func (emptyLog) FirstSince(context.Context, string, time.Time) (uint64, bool, error) {
	return 0, false, nil
}
func (emptyLog) EventBounds(context.Context) (uint64, uint64, error) { return 0, 0, nil }
func (emptyLog) Epoch() string                                       { return "e1" }

// newHub is New(cfg, last), shut down when the test ends.
func newHub(t *testing.T, cfg Config, last uint64) *Hub {
	t.Helper()
	h := New(cfg, last)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		h.Shutdown(ctx)
	})
	return h
}

// serve serves agents of operator op from h on a loopback server, their
// position read from the handshake's query; it returns the websocket URL.
func serve(t *testing.T, h *Hub, op string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		pos, err := ParsePosition(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		h.Serve(w, r, wire.Operator{ID: op}, pos, wire.Hello{})
	}))
	t.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http")
}

// dialHello connects an agent to u and reads its hello.
func dialHello(t *testing.T, u string) (*websocket.Conn, wire.Hello) {
	t.Helper()
	c, _, err := websocket.DefaultDialer.Dial(u, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	env := read(t, c)
	var hello wire.Hello
	if env.Type != wire.TypeHello || json.Unmarshal(env.Data, &hello) != nil {
		t.Fatalf("first frame %+v", env)
	}
	return c, hello
}

// dial connects an agent of operator op, with cards ahead or not, and
// reads its hello.
func dial(t *testing.T, h *Hub, op string, ahead bool) *websocket.Conn {
	t.Helper()
	u := serve(t, h, op)
	if ahead {
		u += "?" + wire.QueryPreview + "=1"
	}
	c, _ := dialHello(t, u)
	return c
}

func read(t *testing.T, c *websocket.Conn) wire.Envelope {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, b, err := c.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	var env wire.Envelope
	if err := json.Unmarshal(b, &env); err != nil {
		t.Fatalf("frame %s: %v", b, err)
	}
	return env
}

// TestCardsAhead: cards go ahead only to the sessions that asked; the live
// feed's stored card becomes a "stored" frame for them and the card for
// the others; Withdraw sends the card before; a card never seen stored is
// withdrawn at the pings after AheadExpiry; a card shared ahead after the
// live feed delivered it is not sent; a bad preview value is refused.
func TestCardsAhead(t *testing.T) {
	h := newHub(t, Config{Log: emptyLog{}, PingPeriod: 50 * time.Millisecond, AheadExpiry: 100 * time.Millisecond}, 0)
	ahead, plain := dial(t, h, "op", true), dial(t, h, "op", false)

	card, before := []byte(`{"id":"c1","state":"talking","version":2}`), []byte(`{"id":"c1","state":"ringing","version":1}`)
	h.SendAhead([]store.Ahead{{Operator: "op", MsgID: "k.op.2", Data: card, Before: before}})
	if env := read(t, ahead); env.Type != wire.TypeCall || env.ID != "k.op.2" || env.Seq != 0 || string(env.Data) != string(card) {
		t.Fatalf("ahead: %+v", env)
	}
	h.Deliver(store.Event{Seq: 7, Operator: "op", Type: wire.TypeCall, Data: card, MsgID: "k.op.2"})
	if env := read(t, ahead); env.Type != wire.TypeStored || env.ID != "k.op.2" || env.Seq != 7 || len(env.Data) != 0 {
		t.Fatalf("stored: %+v", env)
	}
	if env := read(t, plain); env.Type != wire.TypeCall || env.ID != "k.op.2" || env.Seq != 7 || string(env.Data) != string(card) {
		t.Fatalf("the session without cards ahead got %+v, want the stored card", env)
	}

	// The same card shared ahead by another relay after the live feed
	// delivered it: not sent.
	h.SendAhead([]store.Ahead{{Operator: "op", MsgID: "k.op.2", Data: card, Before: before}})

	// Refused: withdrawn to the card before. Not known stored: withdrawn
	// after the expiry, at a ping. Neither reaches the other session.
	h.SendAhead([]store.Ahead{{Operator: "op", MsgID: "k.op.3", Data: card, Before: before}})
	if env := read(t, ahead); env.ID != "k.op.3" {
		t.Fatalf("after a card delivered stored was shared again: %+v", env)
	}
	h.Withdraw([]store.Ahead{{Operator: "op", MsgID: "k.op.3", Before: before}})
	if env := read(t, ahead); env.Type != wire.TypeWithdrawn || env.ID != "k.op.3" || string(env.Data) != string(before) {
		t.Fatalf("withdrawn: %+v", env)
	}
	h.SendAhead([]store.Ahead{{Operator: "op", MsgID: "k2.op.1", Data: card}})
	read(t, ahead)
	start := time.Now()
	if env := read(t, ahead); env.Type != wire.TypeWithdrawn || env.ID != "k2.op.1" || len(env.Data) != 0 {
		t.Fatalf("expired: %+v", env)
	} else if took := time.Since(start); took < 50*time.Millisecond {
		t.Errorf("withdrawn after %s, before the expiry", took)
	}
	plain.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if _, b, err := plain.ReadMessage(); err == nil {
		t.Errorf("the session without cards ahead got %s", b)
	}

	req := httptest.NewRequest("GET", "/?"+wire.QueryPreview+"=yes", nil)
	if _, err := ParsePosition(req); err == nil {
		t.Error("preview=yes accepted")
	}
}

// waitWritersIdle waits until no writer runs for the operator's sessions.
func waitWritersIdle(t *testing.T, h *Hub, op string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		h.mu.Lock()
		busy := len(h.sessions[op]) == 0
		for s := range h.sessions[op] {
			s.mu.Lock()
			busy = busy || s.writing
			s.mu.Unlock()
		}
		h.mu.Unlock()
		if !busy {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("a session's writer still runs after 5 s")
		}
	}
}

// TestStoredFramesWait: a "stored" frame wakes no writer; it goes out after
// the next card (which has no seq, so the order does not matter), before
// any later frame with a seq, or at the hub's flush within StoredWait.
func TestStoredFramesWait(t *testing.T) {
	never := time.Hour
	h := newHub(t, Config{Log: emptyLog{}, PingPeriod: never, StoredWait: never}, 0)
	c := dial(t, h, "op", true)
	waitWritersIdle(t, h, "op")
	card := []byte(`{"id":"c1","state":"ringing","version":1}`)
	h.SendAhead([]store.Ahead{{Operator: "op", MsgID: "k.op.1", Data: card}})
	read(t, c)
	h.Deliver(store.Event{Seq: 7, Operator: "op", Type: wire.TypeCall, Data: card, MsgID: "k.op.1"})
	c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if _, b, err := c.ReadMessage(); err == nil {
		t.Fatalf("got %s: the stored frame did not wait", b)
	}
	c.Close()
	c = dial(t, h, "op", true) // a read past its deadline leaves a gorilla conn unusable
	// The writer that sent the hello may not have ended yet: a card sent
	// meanwhile goes to it, and so would the stored frame after it.
	waitWritersIdle(t, h, "op")

	// The next card goes first, then what waited.
	h.SendAhead([]store.Ahead{{Operator: "op", MsgID: "k.op.2", Data: card}})
	h.Deliver(store.Event{Seq: 8, Operator: "op", Type: wire.TypeCall, Data: card, MsgID: "k.op.2"})
	h.SendAhead([]store.Ahead{{Operator: "op", MsgID: "k2.op.1", Data: card}})
	for i, want := range []wire.Envelope{
		{Type: wire.TypeCall, ID: "k.op.2"},
		{Type: wire.TypeCall, ID: "k2.op.1"},
		{Type: wire.TypeStored, ID: "k.op.2", Seq: 8},
	} {
		if env := read(t, c); env.Type != want.Type || env.ID != want.ID || env.Seq != want.Seq {
			t.Fatalf("frame %d: %+v, want %+v", i, env, want)
		}
	}
	// A frame with a seq takes the stored frames before it along, in order.
	h.Deliver(store.Event{Seq: 9, Operator: "op", Type: wire.TypeCall, Data: card, MsgID: "k2.op.1"})
	h.Deliver(store.Event{Seq: 10, Operator: "op", Type: wire.TypeStatus, Data: []byte(`{}`)})
	for i, want := range []wire.Envelope{{Type: wire.TypeStored, ID: "k2.op.1", Seq: 9}, {Type: wire.TypeStatus, Seq: 10}} {
		if env := read(t, c); env.Type != want.Type || env.ID != want.ID || env.Seq != want.Seq {
			t.Fatalf("frame %d: %+v, want %+v", i, env, want)
		}
	}

	// Nothing else to write: the hub's flush sends it.
	h2 := New(Config{Log: emptyLog{}, PingPeriod: never, StoredWait: 20 * time.Millisecond}, 0)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		h2.Shutdown(ctx)
	})
	c2 := dial(t, h2, "op", true)
	h2.SendAhead([]store.Ahead{{Operator: "op", MsgID: "k.op.1", Data: card}})
	read(t, c2)
	h2.Deliver(store.Event{Seq: 3, Operator: "op", Type: wire.TypeCall, Data: card, MsgID: "k.op.1"})
	if env := read(t, c2); env.Type != wire.TypeStored || env.Seq != 3 {
		t.Fatalf("flushed: %+v", env)
	}
}

// gatedConn is a server-side connection whose next write, once armed,
// waits for the test and then fails.
type gatedConn struct {
	net.Conn
	armed   atomic.Bool
	writing chan struct{} // a write is held
	release chan struct{}
}

func (c *gatedConn) Write(b []byte) (int, error) {
	if c.armed.CompareAndSwap(true, false) {
		c.writing <- struct{}{}
		<-c.release
		return 0, errors.New("write failed (test)")
	}
	return c.Conn.Write(b)
}

type gatedListener struct {
	net.Listener
	conns chan *gatedConn
}

func (l gatedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	g := &gatedConn{Conn: c, writing: make(chan struct{}), release: make(chan struct{})}
	l.conns <- g
	return g, nil
}

// TestCloseDuringWriteNow: a session closed while a card is being written
// at once (by the caller, not a writer), whose write then fails, still
// ends — the close found the writing flag set and started no writer.
func TestCloseDuringWriteNow(t *testing.T) {
	h := New(Config{Log: emptyLog{}, PingPeriod: time.Hour}, 0)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.Serve(w, r, wire.Operator{ID: "op"}, Position{Ahead: true}, wire.Hello{})
	}))
	conns := make(chan *gatedConn, 1)
	srv.Listener = gatedListener{srv.Listener, conns}
	srv.Start()
	t.Cleanup(srv.Close)
	c, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	read(t, c) // hello
	g := <-conns

	g.armed.Store(true)
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		h.SendAhead([]store.Ahead{{Operator: "op", MsgID: "k.op.1", Data: []byte(`{}`)}})
	}()
	<-g.writing
	h.Disconnect("op", wire.CloseGoingAway, "test")
	close(g.release)
	<-sent

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.Shutdown(ctx); err != nil {
		t.Fatalf("the session did not end: %v", err)
	}
}

// TestIdlePings: an idle session is pinged every period, a card between
// pings still goes out, and a "stored" frame left waiting goes out with the
// next ping.
func TestIdlePings(t *testing.T) {
	h := newHub(t, Config{Log: emptyLog{}, PingPeriod: 30 * time.Millisecond, StoredWait: time.Hour}, 0)
	c := dial(t, h, "op", true)
	pings := make(chan struct{}, 100)
	c.SetPingHandler(func(string) error {
		pings <- struct{}{}
		return c.WriteControl(websocket.PongMessage, nil, time.Now().Add(time.Second))
	})
	frames := make(chan wire.Envelope, 10)
	go func() {
		for {
			_, b, err := c.ReadMessage()
			if err != nil {
				close(frames)
				return
			}
			var env wire.Envelope
			json.Unmarshal(b, &env)
			frames <- env
		}
	}()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for i := range 3 {
		select {
		case <-pings:
		case <-time.After(5 * time.Second):
			t.Fatalf("ping %d never came", i+1)
		}
	}
	h.SendAhead([]store.Ahead{{Operator: "op", MsgID: "k.op.1", Data: []byte(`{}`)}})
	if env := <-frames; env.ID != "k.op.1" {
		t.Fatalf("after pings: %+v", env)
	}
	h.Deliver(store.Event{Seq: 3, Operator: "op", Type: wire.TypeCall, Data: []byte(`{}`), MsgID: "k.op.1"})
	select {
	case env := <-frames:
		if env.Type != wire.TypeStored || env.ID != "k.op.1" || env.Seq != 3 {
			t.Fatalf("with the ping: %+v", env)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the stored frame waited past the next pings")
	}
	<-pings
}

// failingLog holds one event (seq 1); its first reads fail, as a
// cluster's log does while it elects a new leader.
type failingLog struct{ fails atomic.Int32 }

func (l *failingLog) Next(_ context.Context, _ string, after uint64) (*store.Event, error) {
	if l.fails.Add(-1) >= 0 {
		return nil, errors.New("no leader (test)")
	}
	if after >= 1 {
		return nil, nil
	}
	return &store.Event{Seq: 1, Operator: "op", Type: wire.TypeStatus, Data: []byte(`{}`)}, nil
}
func (*failingLog) FirstSince(context.Context, string, time.Time) (uint64, bool, error) {
	return 1, true, nil
}
func (*failingLog) EventBounds(context.Context) (uint64, uint64, error) { return 1, 1, nil }
func (*failingLog) Epoch() string                                       { return "e1" }

// TestCatchUpRetries: a catch-up whose reads fail for a moment is tried
// again rather than ending the session.
func TestCatchUpRetries(t *testing.T) {
	log := &failingLog{}
	log.fails.Store(2)
	h := newHub(t, Config{Log: log, PingPeriod: time.Hour}, 1)
	c, _ := dialHello(t, serve(t, h, "op")+"?"+wire.QuerySince+"=0&"+wire.QueryEpoch+"=e1")
	if env := read(t, c); env.Type != wire.TypeStatus || env.Seq != 1 {
		t.Fatalf("caught up with %+v", env)
	}
	if n := log.fails.Load(); n >= 0 {
		t.Errorf("the log's reads did not fail as set (%d left)", n)
	}
}

// TestBarredGetsOnlyTheClose: once an operator is disconnected with a stop
// code, a session whose handshake got past the token check earlier gets the
// close and nothing before it, not even hello.
func TestBarredGetsOnlyTheClose(t *testing.T) {
	h := New(Config{Log: emptyLog{}, PingPeriod: time.Hour}, 0)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.Serve(w, r, wire.Operator{ID: "op"}, Position{}, wire.Hello{})
	}))
	defer srv.Close()
	h.Disconnect("op", wire.CloseRevoked, "revoked")
	for i := range 200 {
		c, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
		if err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, frame, err := c.ReadMessage()
		c.Close()
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != wire.CloseRevoked {
			t.Fatalf("session %d got %q (%v), want only a close %d", i, frame, err, wire.CloseRevoked)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}
