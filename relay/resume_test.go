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
		switch i {
		case 30:
			p.cut() // the network drops the agent mid-stream
		case 60:
			r = r.restart() // the relay process goes away and comes back
		case 90:
			p.cut()
		}
	}
	want := fmt.Sprintf("call-%03d", n)
	ta.waitFor("the last call", callWith(want, wire.CallRinging))

	var got []string
	var last uint64
	for _, e := range ta.calls() {
		if e.Seq <= last {
			t.Fatalf("seq went from %d to %d", last, e.Seq)
		}
		last = e.Seq
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
