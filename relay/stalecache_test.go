package relay_test

import (
	"testing"

	"github.com/pult/pult/agent/wire"
)

// The relay remembers the calls it stored. When a call changed behind its
// back (another relay node on the same NATS), writing the next change fails
// its revision check, the call is read again, and every card is right.
func TestStaleCallCache(t *testing.T) {
	checkGoroutines(t)
	r := startRelay(t, testConfig(t))
	_, annaTok := r.addOperator("Anna", "100", "1")
	_, borisTok := r.addOperator("Boris", "101", "2")
	anna := startAgent(t, r.URL, annaTok, nil)
	boris := startAgent(t, r.URL, borisTok, nil)
	anna.waitOnline()
	boris.waitOnline()

	r.callEvent(map[string]any{"type": "in", "phone": "+79121234567", "codes": []string{"100"}, "callExternalId": "s1"})
	anna.waitFor("ringing at Anna", callWith("s1", wire.CallRinging))
	rewind := r.srv.RewindCallCache()
	r.callEvent(map[string]any{"type": "in", "phone": "+79121234567", "codes": []string{"101"}, "callExternalId": "s1"})
	boris.waitFor("ringing at Boris", callWith("s1", wire.CallRinging))
	rewind() // the relay remembers s1 ringing at Anna only
	r.callEvent(map[string]any{"type": "answer", "phone": "+79121234567", "codes": []string{"100"}, "callExternalId": "s1"})
	anna.waitFor("Anna talking", callWith("s1", wire.CallTalking))
	boris.waitFor("answered elsewhere at Boris", callWith("s1", wire.CallAnsweredElsewhere))
	if n := len(boris.calls()); n != 2 {
		t.Errorf("Boris got %d cards, want 2 (ringing, answered elsewhere)", n)
	}
}
