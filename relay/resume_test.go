package relay_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pult/pult/agent"
	"github.com/pult/pult/agent/wire"
)

// Numbered calls flow to an operator while its connection is cut and the
// relay is restarted: the agent ends with every call exactly once, in order.
func TestResumeExactlyOnceAcrossDropAndRestart(t *testing.T) {
	checkGoroutines(t)
	r := startRelay(t, testConfig(t))
	_, token := r.addOperator("Anna", "100", "1")
	p := startProxy(t, strings.TrimPrefix(r.URL, "http://"))
	ta := startAgent(t, p.URL(), token, nil)
	ta.waitOnline()

	const n = 120
	hellos := 0
	post := func(i int) {
		t.Helper()
		ev := map[string]any{"type": "in", "phone": fmt.Sprintf("+7912%07d", i), "codes": []string{"100"}, "callExternalId": fmt.Sprintf("call-%03d", i)}
		for attempt := 0; ; attempt++ {
			status, body, err := r.tryCallEvent(ev)
			if err == nil && status == 200 {
				return
			}
			if attempt > 200 {
				t.Fatalf("event %d not accepted: %d %v %v", i, status, body, err)
			}
			time.Sleep(25 * time.Millisecond) // the PBX retries
		}
	}
	for i := 1; i <= n; i++ {
		post(i)
		// During each outage the agent cannot reconnect while five calls
		// are accepted; then the link is back and the agent must catch up.
		switch i {
		case 30, 90:
			hellos = ta.hellos()
			p.setDown(true) // the network drops the agent mid-stream
		case 60:
			hellos = ta.hellos()
			p.setDown(true)
			r = r.restart() // the relay process goes away and comes back
		case 35, 65, 95:
			p.setDown(false)
			ta.waitHellos(hellos + 1)
		}
	}
	want := fmt.Sprintf("call-%03d", n)
	ta.waitFor("the last call", callWith(want, wire.CallRinging))

	var got []string
	var last uint64
	for _, e := range ta.calls() {
		if e.Seq != 0 && e.Seq <= last { // 0: sent ahead of the log (live)
			t.Fatalf("seq went from %d to %d", last, e.Seq)
		}
		last = max(last, e.Seq)
		got = append(got, e.Call.ID)
	}
	if len(got) != n {
		t.Fatalf("got %d call events, want %d: %v", len(got), n, got)
	}
	for i, id := range got {
		if w := fmt.Sprintf("call-%03d", i+1); id != w {
			t.Fatalf("event %d is %s, want %s (order or duplicates broken)", i, id, w)
		}
	}
	// The agent did reconnect at least three times.
	reconnects := 0
	ta.mu.Lock()
	for _, e := range ta.events {
		if e.Kind == agent.EventHello {
			reconnects++
		}
	}
	ta.mu.Unlock()
	if reconnects < 4 {
		t.Errorf("agent connected %d times; the test did not exercise resume", reconnects)
	}
}

// An agent that has seen no event yet still misses nothing while away.
func TestResumeBeforeFirstEvent(t *testing.T) {
	checkGoroutines(t)
	for _, name := range []string{"empty log", "busy log"} {
		t.Run(name, func(t *testing.T) {
			r := startRelay(t, testConfig(t))
			_, token := r.addOperator("Anna", "100", "1")
			_, other := r.addOperator("Boris", "101", "2")
			_ = other
			if name == "busy log" {
				r.callEvent(map[string]any{"type": "in", "phone": "+79121234567", "codes": []string{"101"}, "callExternalId": "x"})
			}
			p := startProxy(t, strings.TrimPrefix(r.URL, "http://"))
			ta := startAgent(t, p.URL(), token, func(c *agent.Config) { c.MinBackoff, c.MaxBackoff = 300*time.Millisecond, 400*time.Millisecond })
			ta.waitOnline()
			p.cut()
			ta.waitFor("offline", func(e agent.Event) bool { return e.Kind == agent.EventConn && e.Conn == agent.Offline })
			r.callEvent(map[string]any{"type": "in", "phone": "+79121234567", "codes": []string{"100"}, "callExternalId": "while-away"})
			ta.waitFor("the call made while away", callWith("while-away", wire.CallRinging))
		})
	}
}
