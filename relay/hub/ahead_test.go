package hub

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/pult/pult/agent/wire"
	"github.com/pult/pult/relay/store"
)

// emptyLog is a log with nothing in it: sessions start at its end.
type emptyLog struct{}

func (emptyLog) Next(context.Context, string, uint64) (*store.Event, error) { return nil, nil }
func (emptyLog) EventBounds(context.Context) (uint64, uint64, error)        { return 0, 0, nil }
func (emptyLog) Epoch() string                                              { return "e1" }

// dial connects an agent of operator op, with cards ahead or not, and
// reads its hello.
func dial(t *testing.T, h *Hub, op string, ahead bool) *websocket.Conn {
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
	u := "ws" + strings.TrimPrefix(srv.URL, "http")
	if ahead {
		u += "?" + wire.QueryPreview + "=1"
	}
	c, _, err := websocket.DefaultDialer.Dial(u, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if env := read(t, c); env.Type != wire.TypeHello {
		t.Fatalf("first frame %+v", env)
	}
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
	h := New(Config{Log: emptyLog{}, PingPeriod: 50 * time.Millisecond, AheadExpiry: 100 * time.Millisecond}, 0)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		h.Shutdown(ctx)
	})
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
