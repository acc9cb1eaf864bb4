package agent

import (
	"encoding/json"
	"log/slog"
	"sync"

	"github.com/pult/pult/agent/wire"
)

// CardFilter decides which call cards an agent shows, with the cards the relay
// sends ahead of its log (a "call" frame with an id and no seq; see "Cards
// ahead of the log" in package wire):
//   - a card sent ahead is shown at once, and remembered by its id until a
//     "stored" frame (which only moves the position) or a "withdrawn" one
//     (the card before comes back);
//   - a stored card shown ahead before (met again in a reconnect's
//     catch-up) only moves the position, as does a card older than the one
//     shown (a card sent ahead by one relay can overtake an older one of
//     the same call stored by another);
//   - a card sent ahead that was shown already, ahead or stored (one shared
//     by another relay can come after its live feed brought it stored), or
//     withdrawn (the PBX's retries of the change, each sending it ahead
//     again from another relay), is not shown again: the log decides.
//
// The readers of successive connections use it, one at a time. It is
// exported for programs that play agents (pult-relay bench), so that they
// count exactly the cards an operator would see. The zero value is ready.
type CardFilter struct {
	mu       sync.Mutex
	shownNow map[string]aheadCard // sent ahead, not yet stored, by id
	settled  map[string]struct{}  // ids of cards lately received stored, or withdrawn
	versions map[string]int       // call id → version of the card last shown
}

type aheadCard struct {
	call    string         // the call's id
	version int            // the card's
	state   wire.CallState // the card's
	data    []byte         // the card as shown
}

// maxAheads bounds each of the maps; past it one starts afresh (a card may
// then be shown twice, never lost).
const maxAheads = 512

// Filter returns what a call frame (env, decoded as ev) makes: ev, or
// only its position (an Event of kind 0; for a card sent ahead, seq 0:
// nothing).
func (t *CardFilter) Filter(env wire.Envelope, ev Event) Event {
	t.mu.Lock()
	defer t.mu.Unlock()
	nothing := Event{Seq: env.Seq}
	switch {
	case env.Seq > 0:
		shown := t.takeShownLocked(env.ID, env.Data)
		put(&t.settled, env.ID, struct{}{})
		if shown {
			return nothing
		}
	case env.ID != "":
		if _, ok := t.shownNow[env.ID]; ok {
			return nothing
		}
		if _, ok := t.settled[env.ID]; ok {
			return nothing
		}
	}
	if v := ev.Call.Version; v != 0 && v < t.versions[ev.Call.ID] {
		return nothing
	}
	t.noteLocked(ev.Call.ID, ev.Call.Version)
	if env.Seq == 0 && env.ID != "" {
		put(&t.shownNow, env.ID, aheadCard{call: ev.Call.ID, version: ev.Call.Version, state: ev.Call.State, data: env.Data})
	}
	return ev
}

// takeShownLocked reports whether a stored card (its id, and data) was
// shown ahead, and forgets that. Relays that send no id with stored cards
// are matched by the card's bytes.
func (t *CardFilter) takeShownLocked(id string, data []byte) bool {
	if _, ok := t.shownNow[id]; ok && id != "" {
		delete(t.shownNow, id)
		return true
	}
	for id, c := range t.shownNow {
		if string(c.data) == string(data) {
			delete(t.shownNow, id)
			return true
		}
	}
	return false
}

// noteLocked records the version of the call's card shown (0: none).
func (t *CardFilter) noteLocked(call string, version int) {
	if version == 0 {
		delete(t.versions, call)
		return
	}
	put(&t.versions, call, version)
}

// put adds to a bounded map, making it first.
func put[V any](m *map[string]V, k string, v V) {
	if k == "" {
		return
	}
	if *m == nil || len(*m) >= maxAheads {
		*m = make(map[string]V)
	}
	(*m)[k] = v
}

// Settle reads a "stored" or "withdrawn" frame about a card sent ahead:
// the event it makes, if any.
func (t *CardFilter) Settle(env wire.Envelope, log *slog.Logger) (Event, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	c, ok := t.shownNow[env.ID]
	delete(t.shownNow, env.ID)
	// The log has the last word on this card now: the same card sent ahead
	// again (a PBX's retry on another relay) is not shown.
	put(&t.settled, env.ID, struct{}{})
	if env.Type == wire.TypeStored {
		// The position moves whether or not the card is remembered.
		return Event{Seq: env.Seq}, env.Seq > 0
	}
	if !ok {
		return Event{}, false
	}
	before := new(wire.Call)
	if len(env.Data) > 0 {
		if err := json.Unmarshal(env.Data, before); err != nil {
			log.Warn("skipping a malformed withdrawal", "err", err)
			before = new(wire.Call)
		}
	}
	// The card before is shown whatever its version: the one withdrawn
	// never was.
	t.noteLocked(c.call, before.Version)
	if before.ID != "" && before.Version != 0 && before.Version == c.version {
		// Withdrawn to the call as stored at the same version (another
		// relay's change got there first): that is what a card with this
		// id in the log shows, should one come (a replay storing it).
		put(&t.shownNow, env.ID, aheadCard{call: c.call, version: c.version, state: before.State, data: env.Data})
		if before.State == c.state {
			// The same event, stored by the other relay: the card shown
			// already says what the stored one says.
			return Event{}, false
		}
	}
	if before.ID == "" {
		return Event{Kind: EventCallWithdrawn, Call: &wire.Call{ID: c.call}}, true
	}
	return Event{Kind: EventCall, Call: before}, true
}
