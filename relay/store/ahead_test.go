package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/pult/pult/relay/store"
)

type shared struct {
	c         store.Ahead
	withdrawn bool
}

// Three relays on one NATS server: a card for an operator held by a known
// relay goes to that relay alone; one for an operator no relay is known to
// hold goes to every other relay; a card and its withdrawal keep their
// order, whichever way each went.
func TestShareAheadTargets(t *testing.T) {
	ns := startExternalNATS(t, store.MaxPayload)

	nodes := []string{"a", "b", "c"}
	got := map[string]chan shared{}
	stores := map[string]*store.Store{}
	for _, n := range nodes {
		st, err := store.Open(context.Background(), store.Options{URL: ns.ClientURL()})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		if !st.Shared() {
			t.Fatal("a store on an external NATS does not share")
		}
		ch := make(chan shared, 16)
		stop, err := st.SubscribeAhead(n, func(c store.Ahead, withdrawn bool) { ch <- shared{c, withdrawn} })
		if err != nil {
			t.Fatal(err)
		}
		defer stop()
		stores[n], got[n] = st, ch
	}
	next := func(node string) shared {
		t.Helper()
		select {
		case s := <-got[node]:
			return s
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: nothing shared within 5 s", node)
			return shared{}
		}
	}
	card := func(op, id string) store.Ahead {
		return store.Ahead{Operator: op, MsgID: id, Data: []byte(`{"id":"` + id + `"}`), Before: []byte(`{"before":1}`),
			Received: time.Unix(0, 1_700_000_000_000_000_000)}
	}
	a := stores["a"]

	// To b alone, then to everyone: c's first is the second, so the first
	// never reached it; a gets neither of its own.
	a.ShareAhead("a", []string{"b"}, false, card("op1", "m1"))
	a.ShareAhead("a", nil, false, card("op2", "m2"))
	if s := next("b"); s.c.MsgID != "m1" || s.c.Operator != "op1" || s.withdrawn || string(s.c.Data) != `{"id":"m1"}` ||
		string(s.c.Before) != `{"before":1}` || !s.c.Received.Equal(time.Unix(0, 1_700_000_000_000_000_000)) {
		t.Errorf("b got %+v", s)
	}
	if s := next("b"); s.c.MsgID != "m2" || s.c.Operator != "op2" {
		t.Errorf("b's second: %+v", s)
	}
	if s := next("c"); s.c.MsgID != "m2" {
		t.Errorf("c got %+v; the card for b alone reached it", s)
	}

	// Sent to everyone, withdrawn to b and c once they are known: in order.
	a.ShareAhead("a", nil, false, card("op3", "m3"))
	a.ShareAhead("a", []string{"b", "c"}, true, card("op3", "m3"))
	for _, n := range []string{"b", "c"} {
		if s := next(n); s.c.MsgID != "m3" || s.withdrawn {
			t.Errorf("%s: %+v, want m3 sent", n, s)
		}
		if s := next(n); s.c.MsgID != "m3" || !s.withdrawn || s.c.Operator != "op3" {
			t.Errorf("%s: %+v, want m3 withdrawn", n, s)
		}
	}

	// Nothing reached a: a card from b to everyone is its first.
	stores["b"].ShareAhead("b", nil, false, card("op4", "m4"))
	if s := next("a"); s.c.MsgID != "m4" {
		t.Errorf("a got %+v", s)
	}
	if s := next("c"); s.c.MsgID != "m4" {
		t.Errorf("c got %+v", s)
	}
}
