package relay_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/pult/pult/agent/wire"
)

// dialAhead opens a raw agent session that asks for cards ahead of the log.
func dialAhead(t *testing.T, base, token string) *rawAgent {
	t.Helper()
	h := http.Header{}
	h.Set("Authorization", "Bearer "+token)
	h.Set(wire.HeaderProtocol, "1")
	c, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(base, "http")+wire.Path+"?"+wire.QueryPreview+"=1", h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ra := &rawAgent{t: t, c: c}
	if env := ra.read(); env.Type != wire.TypeHello {
		t.Fatalf("first frame: %+v", env)
	}
	return ra
}

// readCall reads frames up to the next call-card frame (or a stored or
// withdrawn one).
func (ra *rawAgent) readCard() wire.Envelope {
	ra.t.Helper()
	for {
		env := ra.read()
		switch env.Type {
		case wire.TypeCall, wire.TypeStored, wire.TypeWithdrawn:
			return env
		}
	}
}

func cardState(t *testing.T, env wire.Envelope) wire.CallState {
	t.Helper()
	var c wire.Call
	if err := json.Unmarshal(env.Data, &c); err != nil {
		t.Fatalf("card %s: %v", env.Data, err)
	}
	return c.State
}

// TestCardsAheadOfTheLog: an agent that asks for them gets a call's card
// while the relay stores it (no seq, the card's id), then a "stored" frame
// with that id and the card's seq; an agent that does not gets the stored
// card, the same bytes with the same id at that seq. A card sent ahead whose record turns
// out stale (here: the relay restarted and presumed a known call new) is
// withdrawn back to the stored card.
func TestCardsAheadOfTheLog(t *testing.T) {
	checkGoroutines(t)
	r := startRelay(t, testConfig(t))
	anna, tok := r.addOperator("Anna", "100", "1")
	ahead := dialAhead(t, r.URL, tok)
	plain := dialRaw(t, r.URL, tok)

	ring := map[string]any{"type": "in", "phone": "+79121234567", "codes": []string{"100"}, "callExternalId": "c-1"}
	if status, body := r.callEvent(ring); status != http.StatusOK {
		t.Fatalf("ring: %d %v", status, body)
	}
	card := ahead.readCard()
	if card.Type != wire.TypeCall || card.Seq != 0 || card.ID == "" || cardState(t, card) != wire.CallRinging {
		t.Fatalf("first frame ahead = %+v, want a ringing card with an id and no seq", card)
	}
	stored := ahead.readCard()
	if stored.Type != wire.TypeStored || stored.ID != card.ID || stored.Seq == 0 || len(stored.Data) != 0 {
		t.Fatalf("then %+v, want stored %s with a seq", stored, card.ID)
	}
	got := plain.readCard()
	if got.Type != wire.TypeCall || got.Seq != stored.Seq || got.ID != card.ID || string(got.Data) != string(card.Data) {
		t.Fatalf("the agent without cards ahead got %+v, want the same card at seq %d", got, stored.Seq)
	}

	// The relay restarts: its call cache is gone, and a repeated ring of
	// the same call is presumed new. Its card goes ahead, the record is
	// found stale, and the card is taken back to the stored one.
	ahead.c.Close()
	plain.c.Close()
	r = r.restart()
	// A new connection first gets the stored card again (the operator's
	// events of the last minutes); cards ahead come once that is done.
	ahead = dialAhead(t, r.URL, tok)
	if again := ahead.readCard(); again.Type != wire.TypeCall || again.Seq != stored.Seq || again.ID != card.ID {
		t.Fatalf("after the restart: %+v, want the stored card at seq %d", again, stored.Seq)
	}
	for deadline := time.Now().Add(5 * time.Second); r.srv.CatchingUp(anna.ID); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the new connection's catch-up did not end")
		}
	}
	answer := map[string]any{"type": "in", "phone": "+79121234567", "codes": []string{"100"}, "callExternalId": "c-1"}
	if status, body := r.callEvent(answer); status != http.StatusOK {
		t.Fatalf("repeated ring: %d %v", status, body)
	}
	first := ahead.readCard()
	if first.Type != wire.TypeCall || first.Seq != 0 {
		t.Fatalf("after the restart: %+v, want a card ahead", first)
	}
	back := ahead.readCard()
	if back.Type != wire.TypeWithdrawn || back.ID != first.ID || string(back.Data) != string(card.Data) {
		t.Fatalf("then %+v, want %s withdrawn back to the stored card %s", back, first.ID, card.Data)
	}
	// Nothing else: the ring was a replay, stored already.
	ahead.c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if _, b, err := ahead.c.ReadMessage(); err == nil {
		t.Errorf("unexpected frame after the withdrawal: %s", b)
	}
}

// TestCardsAheadAcrossRelays: a card made on one relay is sent ahead to
// the agents on another relay of the same cluster (three NATS servers,
// three copies), over NATS, before that relay's live feed brings it stored
// (then said stored); or, when the feed is first, not sent again. Sent to
// every relay while the relay making it has not heard where the operator
// is, to that relay alone once it has.
func TestCardsAheadAcrossRelays(t *testing.T) {
	checkGoroutines(t)
	var urls []string
	for _, ns := range startNATSCluster(t, 3) {
		urls = append(urls, ns.ClientURL())
	}
	var relays []*testRelay
	for range 2 {
		cfg := testConfig(t)
		cfg.NATS.URL = strings.Join(urls, ",")
		cfg.NATS.Replicas = 3
		cfg.DataDir = t.TempDir()
		relays = append(relays, startRelay(t, cfg))
	}
	_, tok := relays[0].addOperator("Anna", "100", "1")
	ahead := dialAhead(t, relays[0].URL, tok)

	sharedFirst, sharedBefore := 0, 0
	for i := range 20 {
		id := fmt.Sprintf("c-%d", i)
		ring := map[string]any{"type": "in", "phone": "+79121234567", "codes": []string{"100"}, "callExternalId": id}
		for {
			status, body := relays[1].callEvent(ring)
			if nf, _ := body["notFoundCodes"].([]any); status == http.StatusOK && len(nf) == 0 {
				break
			}
			time.Sleep(20 * time.Millisecond) // the other relay learns of Anna
		}
		if i == 10 {
			// From here on, relay 1 knows where Anna is: its cards go to
			// relay 0 alone.
			deadline := time.Now().Add(10 * time.Second)
			for !connectedOn(relays[1], "100") {
				if time.Now().After(deadline) {
					t.Fatal("relay 1 never heard that Anna is connected to relay 0")
				}
				time.Sleep(10 * time.Millisecond)
			}
			sharedBefore = sharedFirst
		}
		card := ahead.readCard()
		switch {
		case card.Type == wire.TypeCall && card.Seq == 0 && card.ID != "":
			sharedFirst++
			if stored := ahead.readCard(); stored.Type != wire.TypeStored || stored.ID != card.ID || stored.Seq == 0 {
				t.Fatalf("%s: then %+v, want stored %s with a seq", id, stored, card.ID)
			}
		case card.Type == wire.TypeCall && card.Seq > 0:
			// The live feed was first; the card shared is not sent after it.
		default:
			t.Fatalf("%s: %+v", id, card)
		}
	}
	ahead.c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if _, b, err := ahead.c.ReadMessage(); err == nil {
		t.Errorf("unexpected frame: %s", b)
	}
	t.Logf("%d of 20 cards came ahead from the other relay", sharedFirst)
	if sharedFirst == sharedBefore {
		t.Error("no card came ahead from the other relay once it knew where Anna is")
	}
}

// connectedOn reports whether the relay's board counts the operator (by
// code) connected: whether its presence has heard of their agent.
func connectedOn(r *testRelay, code string) bool {
	for _, op := range r.srv.BoardSnapshot().Operators {
		if op.Code == code {
			return op.Connected
		}
	}
	return false
}
