package agent

import (
	"encoding/json"
	"log/slog"
	"sync"

	"github.com/pult/pult/agent/wire"
)

// aheads are the call cards the relay sent ahead of its log (a "call"
// frame with an id and no seq) and has not yet said are stored, by that
// id: a "stored" frame then moves the position, a "withdrawn" one takes
// the card back, and a card met again in a catch-up (by its id) only moves
// the position. It also keeps the version of each call's card last shown:
// a card sent ahead by one relay can overtake an older one of the same call
// stored by another, which must not then be shown over it. The readers of
// successive connections use it, one at a time.
type aheads struct {
	mu       sync.Mutex
	m        map[string]aheadCard
	versions map[string]int // call id → version of the card last shown
}

type aheadCard struct {
	call string // the call's id
	data []byte // the card as shown
}

// maxAheads bounds the cards remembered; past it the oldest knowledge is
// dropped (a card may then be shown twice, never lost).
const maxAheads = 512

// shown remembers a card shown ahead of the log.
func (t *aheads) shown(id, call string, data []byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil || len(t.m) >= maxAheads {
		t.m = make(map[string]aheadCard)
	}
	t.m[id] = aheadCard{call: call, data: data}
}

// storedAsShown reports whether a stored card (its id, and data) is one
// shown ahead, and forgets it. Relays that send no id with stored cards
// are matched by the card's bytes.
func (t *aheads) storedAsShown(id string, data []byte) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.m[id]; ok && id != "" {
		delete(t.m, id)
		return true
	}
	for id, c := range t.m {
		if string(c.data) == string(data) {
			delete(t.m, id)
			return true
		}
	}
	return false
}

// newer reports whether a call's card is to be shown: not older than the
// one shown last (a card without a version always is), and notes its
// version.
func (t *aheads) newer(c *wire.Call) bool {
	if c.Version == 0 {
		return true
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if c.Version < t.versions[c.ID] {
		return false
	}
	t.noteLocked(c.ID, c.Version)
	return true
}

// noteLocked records the version of the call's card shown (0: none).
func (t *aheads) noteLocked(call string, version int) {
	if version == 0 {
		delete(t.versions, call)
		return
	}
	if t.versions == nil || len(t.versions) >= maxAheads {
		t.versions = make(map[string]int)
	}
	t.versions[call] = version
}

// settle reads a "stored" or "withdrawn" frame about a card shown ahead:
// the event it makes, if any.
func (t *aheads) settle(env wire.Envelope, log *slog.Logger) (Event, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	c, ok := t.m[env.ID]
	delete(t.m, env.ID)
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
	if before.ID == "" {
		return Event{Kind: EventCallWithdrawn, Call: &wire.Call{ID: c.call}}, true
	}
	return Event{Kind: EventCall, Call: before}, true
}
