package relay_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pult/pult/agent"
	"github.com/pult/pult/agent/wire"
	"github.com/pult/pult/relay"
	"github.com/pult/pult/relay/config"
	"github.com/pult/pult/relay/store"
)

// presenceTTL is the test cluster's presence TTL: store.PresenceTTL (30 s)
// scaled down, so that a test waits seconds.
const presenceTTL = 2 * time.Second

// startCluster starts n relays sharing one external NATS server, each with
// its own data_dir, presence expiring after presenceTTL.
func startCluster(t *testing.T, n int) []*testRelay {
	t.Helper()
	ns := startExternalNATS(t)
	var rs []*testRelay
	for range n {
		cfg := testConfig(t)
		cfg.NATS.URL = ns.ClientURL()
		cfg.DataDir = t.TempDir()
		rs = append(rs, startRelayWith(t, cfg, func(cfg config.Config) *relay.Server {
			return relay.NewWithPresenceTTL(cfg, relayLogger(t), presenceTTL)
		}))
	}
	return rs
}

// waitBoard polls a relay's board until ok holds, and returns how long it
// took.
func waitBoard(t *testing.T, r *testRelay, what string, limit time.Duration, ok func(s *wire.QueueSnapshot) bool) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		s := r.srv.BoardSnapshot()
		if ok(&s) {
			return time.Since(start)
		}
		if time.Since(start) > limit {
			t.Fatalf("%s: not within %s; board: %+v", what, limit, s.Operators)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func connected(code string, on bool) func(s *wire.QueueSnapshot) bool {
	return func(s *wire.QueueSnapshot) bool {
		o := opByCode(s, code)
		return o.Code == code && o.Connected == on
	}
}

// Presence and the board are cluster-wide: an operator connected to one
// relay is online on every relay's board (and available as a responsible
// manager there); when that relay dies they go offline everywhere within
// the presence TTL, and come back when their agent connects to another;
// every board counts the same calls the same; one relay at a time writes
// the board's checkpoints, and another takes over when it dies.
func TestPresenceAcrossRelays(t *testing.T) {
	checkGoroutines(t)
	// Offline within the TTL and a second of the kill (asserted below
	// with a TTL of 2 s): with the default TTL, within 30 s.
	if store.PresenceTTL+time.Second > 30*time.Second {
		t.Fatalf("store.PresenceTTL = %s: a dead relay's operators would stay online longer than 30 s", store.PresenceTTL)
	}
	rs := startCluster(t, 3)
	a, b, c := rs[0], rs[1], rs[2]
	anna, annaTok := a.addOperator("Anna", "100", "1")
	_, borisTok := a.addOperator("Boris", "101", "2")

	// A started first and writes the checkpoints; the others do not.
	if !a.srv.BoardLeading() || b.srv.BoardLeading() || c.srv.BoardLeading() {
		t.Fatalf("checkpoint lease: A %v, B %v, C %v; want A alone", a.srv.BoardLeading(), b.srv.BoardLeading(), c.srv.BoardLeading())
	}

	// Anna's agent knows A only: it cannot move when A dies. Boris's knows
	// all three and moves.
	ta := startAgent(t, a.URL, annaTok, nil)
	ta.waitOnline()
	tb := startAgent(t, strings.Join([]string{a.URL, b.URL, c.URL}, ","), borisTok, nil)
	tb.waitOnline()
	for _, r := range rs {
		waitBoard(t, r, "Anna online on "+r.URL, 5*time.Second, connected("100", true))
		waitBoard(t, r, "Boris online on "+r.URL, 5*time.Second, connected("101", true))
		if !r.srv.Available(anna.ID) {
			t.Errorf("Anna is not available as a manager on %s", r.URL)
		}
	}

	// Calls through every relay: each board folds the same stream.
	for n, r := range []*testRelay{a, b, c, a, b} {
		id := fmt.Sprintf("p-%d", n)
		r.callEvent(map[string]any{"type": "in", "phone": "+79121234567", "codes": []string{"100", "101"}, "callExternalId": id})
		if n%2 == 0 {
			rs[(n+1)%3].callEvent(map[string]any{"type": "answer", "phone": "+79121234567", "codes": []string{"100"}, "callExternalId": id})
			rs[(n+2)%3].callEvent(map[string]any{"type": "hangup", "phone": "+79121234567", "codes": []string{"100"}, "callExternalId": id, "hangupStatus": "answered"})
		} else {
			rs[(n+1)%3].callEvent(map[string]any{"type": "hangup", "phone": "+79121234567", "codes": []string{"100", "101"}, "callExternalId": id, "hangupStatus": "no answered"})
		}
	}
	want := func(s *wire.QueueSnapshot) bool {
		return s.Totals.Incoming == 5 && s.Totals.Answered == 3 && s.Totals.Missed == 2 && s.Totals.TalkedCalls == 3
	}
	for _, r := range rs {
		waitBoard(t, r, "the calls on "+r.URL, 5*time.Second, want)
	}
	sa, sb, sc := a.srv.BoardSnapshot(), b.srv.BoardSnapshot(), c.srv.BoardSnapshot()
	for i, s := range []wire.QueueSnapshot{sb, sc} {
		if s.Totals != sa.Totals || s.Day != sa.Day {
			t.Errorf("relay %d's totals %+v (%s), A's %+v (%s)", i+1, s.Totals, s.Day, sa.Totals, sa.Day)
		}
		if fmt.Sprintf("%+v", s.Operators) != fmt.Sprintf("%+v", sa.Operators) {
			t.Errorf("relay %d's operators differ from A's:\n%+v\n%+v", i+1, s.Operators, sa.Operators)
		}
	}

	// A supervisor on B watches the board over the wire.
	_, supTok := b.addSupervisor("Sofia", "900", "9")
	sup := dialBoard(t, b.URL, supTok)
	sup.subscribe()
	sup.wait("Anna online on B's wire board", connected("100", true))

	// A dies: nothing of it is cleaned up; its record expires.
	a.srv.AbandonOnStop()
	killed := time.Now()
	a.stop()
	for _, r := range []*testRelay{b, c} {
		waitBoard(t, r, "Anna offline on "+r.URL, 3*presenceTTL, connected("100", false))
		took := time.Since(killed)
		t.Logf("Anna offline on %s %s after the kill (presence TTL %s)", r.URL, took.Round(time.Millisecond), presenceTTL)
		if took < presenceTTL/3 {
			t.Errorf("Anna offline %s after the kill: sooner than the record could expire", took)
		}
		if took > presenceTTL+time.Second {
			t.Errorf("Anna offline %s after the kill; want within the TTL (%s) and a second", took, presenceTTL)
		}
		if r.srv.Available(anna.ID) {
			t.Errorf("Anna still available as a manager on %s", r.URL)
		}
	}
	sup.wait("Anna offline on B's wire board", connected("100", false))
	// Boris moved to B or C: online on both all along or again.
	tb.waitFor("Boris back online elsewhere", func(e agent.Event) bool {
		return e.Kind == agent.EventConn && e.Conn == agent.Online && e.Relay != strings.TrimPrefix(a.URL, "http://")
	})
	for _, r := range []*testRelay{b, c} {
		waitBoard(t, r, "Boris online on "+r.URL, 5*time.Second, connected("101", true))
	}

	// One of B and C takes the checkpoint lease once A's lapses, and
	// checkpoints at once; the other writes none.
	deadline := time.Now().Add(3*presenceTTL + 5*time.Second)
	for b.srv.BoardCheckpoints()+c.srv.BoardCheckpoints() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint by B or C %s after A died", time.Since(killed))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if b.srv.BoardLeading() == c.srv.BoardLeading() {
		t.Errorf("checkpoint lease: B %v, C %v; want one of them", b.srv.BoardLeading(), c.srv.BoardLeading())
	}
	writer, other := b, c
	if c.srv.BoardLeading() {
		writer, other = c, b
	}
	if other.srv.BoardCheckpoints() != 0 {
		t.Errorf("the node without the lease wrote %d checkpoints", other.srv.BoardCheckpoints())
	}
	t.Logf("%s writes the checkpoints now (%d so far)", writer.URL, writer.srv.BoardCheckpoints())
	if m := writer.srv.MetricsText(); !strings.Contains(m, "pult_relay_board_checkpoint_lease 1") {
		t.Errorf("the writer's metrics lack pult_relay_board_checkpoint_lease 1")
	}
	if m := other.srv.MetricsText(); !strings.Contains(m, "pult_relay_board_checkpoint_lease 0") || !strings.Contains(m, "pult_relay_board_checkpoints_total 0") {
		t.Errorf("the other's metrics lack pult_relay_board_checkpoint_lease 0 and pult_relay_board_checkpoints_total 0")
	}

	// Anna signs in on C: online on both again.
	ta.stop()
	ta2 := startAgent(t, c.URL, annaTok, nil)
	ta2.waitOnline()
	for _, r := range []*testRelay{b, c} {
		waitBoard(t, r, "Anna online again on "+r.URL, 5*time.Second, connected("100", true))
		if !r.srv.Available(anna.ID) {
			t.Errorf("Anna is not available as a manager on %s after she came back", r.URL)
		}
	}
	sb, sc = b.srv.BoardSnapshot(), c.srv.BoardSnapshot()
	if sb.Totals != sc.Totals || fmt.Sprintf("%+v", sb.Operators) != fmt.Sprintf("%+v", sc.Operators) {
		t.Errorf("B and C differ:\n%+v %+v\n%+v %+v", sb.Totals, sb.Operators, sc.Totals, sc.Operators)
	}

	// C stops cleanly: its record goes at once, so B sees Anna leave
	// without waiting for the record to expire, and B holds the lease
	// (released by C if it had it) soon after.
	stopped := time.Now()
	c.stop()
	waitBoard(t, b, "Anna offline on B after C stopped", 5*time.Second, connected("100", false))
	took := time.Since(stopped)
	t.Logf("Anna offline on B %s after C's clean stop began", took.Round(time.Millisecond))
	if took >= presenceTTL*2/3 {
		t.Errorf("Anna offline on B %s after C's clean stop; want sooner than her record could expire", took)
	}
	deadline = time.Now().Add(presenceTTL + 2*time.Second)
	for !b.srv.BoardLeading() {
		if time.Now().After(deadline) {
			t.Fatalf("B does not hold the checkpoint lease %s after C stopped", time.Since(stopped))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
