package agent

import (
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pult/pult/agent/agenttest"
	"github.com/pult/pult/agent/wire"
)

// calls lists the call events as "id state" (withdrawals as "id -"), with
// their seq.
func (r *recorder) calls() []string {
	var out []string
	for _, ev := range r.events() {
		switch ev.Kind {
		case EventCall:
			out = append(out, ev.Call.ID+" "+string(ev.Call.State)+seqNote(ev.Seq))
		case EventCallWithdrawn:
			out = append(out, ev.Call.ID+" -")
		}
	}
	return out
}

func seqNote(seq uint64) string {
	if seq == 0 {
		return " ahead"
	}
	return ""
}

func (a *Agent) position() uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.pos.Seq
}

// TestCardsAhead: a card sent ahead of the relay's log is shown at once,
// its "stored" frame moves the position without showing it again, a card
// withdrawn goes back to the card before (or away), an older card of a call
// arriving after a newer one is not shown, a card sent ahead after it came
// stored is not shown again, and a card shown ahead that reaches the agent
// again in a reconnect's catch-up is not shown twice.
func TestCardsAhead(t *testing.T) {
	checkLeaks(t)
	r := agenttest.New(t)
	a, rec := newTestAgent(t, r, nil)
	start(t, a)
	waitOnline(t, a)
	if hs := r.Handshakes(); hs[0].Preview != "1" {
		t.Fatalf("handshake preview = %q, want 1", hs[0].Preview)
	}

	// Ahead, then stored: shown once, the position moves to its seq.
	ring := call("c1", wire.CallRinging)
	r.SendAhead("c1.op-1.1", ring)
	waitFor(t, "the card ahead", func() bool { return len(rec.calls()) == 1 })
	s1 := r.Store("c1.op-1.1", ring)
	r.Stored("c1.op-1.1", s1)
	waitFor(t, "the position", func() bool { return a.position() == s1 })

	// A change ahead that is withdrawn: back to the card before.
	talk := call("c1", wire.CallTalking)
	r.SendAhead("c1.op-1.2", talk)
	r.Withdraw("c1.op-1.2", &ring)
	// A new call ahead that is withdrawn: taken away.
	r.SendAhead("c2.op-1.1", call("c2", wire.CallRinging))
	r.Withdraw("c2.op-1.1", nil)
	// A withdrawal of a card never shown changes nothing.
	r.Withdraw("c9.op-1.1", nil)
	waitFor(t, "the withdrawals", func() bool { return len(rec.calls()) == 5 })

	// A card ahead overtakes an older one of the same call stored by
	// another relay: the older one is not shown, the position moves.
	c3talk, c3ring := call("c3", wire.CallTalking), call("c3", wire.CallRinging)
	c3talk.Version, c3ring.Version = 2, 1
	r.SendAhead("c3.op-1.2", c3talk)
	older := r.Publish(wire.TypeCall, c3ring)
	waitFor(t, "the position past the older card", func() bool { return a.position() == older })
	r.Stored("c3.op-1.2", r.Store("c3.op-1.2", c3talk))

	// A card shared by another relay comes ahead after its relay's live
	// feed brought it stored: shown once.
	c4 := call("c4", wire.CallRinging)
	r.Resend(r.Store("c4.op-1.1", c4))
	r.SendAhead("c4.op-1.1", c4)
	waitFor(t, "the stored card", func() bool { return len(rec.calls()) == 7 })

	// A card ahead withdrawn to the call as another relay stored it at the
	// same version: in the same state (the same event, stored there) it
	// shows nothing new, in another state the stored card; the replay that
	// stores the card's id later shows nothing new either.
	c5, c5stored := call("c5", wire.CallRinging), call("c5", wire.CallRinging)
	c5.Version, c5stored.Version, c5stored.StartedAt = 1, 1, time.Now().UTC()
	r.SendAhead("c5.op-1.1", c5)
	r.Withdraw("c5.op-1.1", &c5stored)
	c6, c6stored := call("c6", wire.CallTalking), call("c6", wire.CallEnded)
	c6.Version, c6stored.Version = 2, 2
	r.SendAhead("c6.op-1.2", c6)
	r.Withdraw("c6.op-1.2", &c6stored)
	waitFor(t, "the withdrawals", func() bool { return len(rec.calls()) == 10 })
	replay := r.Store("c5.op-1.1", c5stored)
	r.Resend(replay)
	waitFor(t, "the position past the replay", func() bool { return a.position() == replay })

	// Ahead, then the link drops before "stored": the catch-up brings the
	// stored card (here as stored by another relay: the same change, at
	// another time), known by its id and not shown again; one stored
	// meanwhile is.
	r.SendAhead("c1.op-1.3", talk)
	waitFor(t, "the card ahead", func() bool { return len(rec.calls()) == 11 })
	at := a.position()
	r.Drop()
	again := talk
	again.StartedAt = time.Now().UTC()
	r.Store("c1.op-1.3", again)
	ended := call("c1", wire.CallEnded)
	s4 := r.Store("c1.op-1.4", ended)
	waitFor(t, "the catch-up", func() bool { return a.position() == s4 })
	time.Sleep(20 * time.Millisecond) // room for a wrong duplicate to show up

	want := []string{"c1 ringing ahead", "c1 talking ahead", "c1 ringing ahead", "c2 ringing ahead", "c2 -",
		"c3 talking ahead", "c4 ringing", "c5 ringing ahead", "c6 talking ahead", "c6 ended ahead", "c1 talking ahead", "c1 ended"}
	if diff := cmp.Diff(want, rec.calls()); diff != "" {
		t.Errorf("calls shown (-want +got):\n%s", diff)
	}
	if hs := r.Handshakes(); len(hs) < 2 || hs[1].Since != strconv.FormatUint(at, 10) || hs[1].Preview != "1" {
		t.Errorf("resume handshake = %+v, want since=%d and preview", hs, at)
	}
}
