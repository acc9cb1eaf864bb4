package relay_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pult/pult/agent"
	"github.com/pult/pult/agent/wire"
	"github.com/pult/pult/relay"
	"github.com/pult/pult/relay/config"
)

// An agent whose position is not resumed — its first connection, or one
// from another event log (the epoch differs) — gets its operator's cards
// of the relay's recent window after hello: a call ringing as it connects
// shows, a call that ended within the window arrives with its end, each
// card once, then live ones. A card older than the window does not come,
// nor another operator's. Resumed after a cut, the agent gets only what it
// missed, as before.
func TestNotResumedGetsTheRecentCalls(t *testing.T) {
	checkGoroutines(t)
	const window = 3 * time.Second
	for _, name := range []string{"first connection", "another epoch"} {
		t.Run(name, func(t *testing.T) {
			r := startRelayWith(t, testConfig(t), func(cfg config.Config) *relay.Server {
				return relay.NewWithRecentWindow(cfg, relayLogger(t), window)
			})
			_, token := r.addOperator("Anna", "100", "1")
			r.addOperator("Boris", "101", "2")
			ring := func(id, code string) {
				t.Helper()
				if status, body := r.callEvent(map[string]any{"type": "in", "phone": "+79121234567", "codes": []string{code}, "callExternalId": id}); status != 200 {
					t.Fatalf("%s: %d %v", id, status, body)
				}
			}
			ring("old", "100")
			ring("boris-old", "101")
			time.Sleep(window + 500*time.Millisecond)
			started := time.Now()
			ring("done", "100")
			if status, body := r.callEvent(map[string]any{"type": "hangup", "phone": "+79121234567", "codes": []string{"100"}, "callExternalId": "done", "hangupStatus": "no answered"}); status != 200 {
				t.Fatalf("hangup: %d %v", status, body)
			}
			ring("boris-now", "101")
			ring("now", "100")

			p := startProxy(t, strings.TrimPrefix(r.URL, "http://"))
			state := t.TempDir()
			if name == "another epoch" {
				// The position of an event log since recreated.
				if err := os.WriteFile(filepath.Join(state, "state.json"), []byte(`{"seq":999999,"epoch":"gone"}`), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			anna := startAgent(t, p.URL(), token, func(c *agent.Config) {
				c.StateDir, c.Resume = state, true
				c.MinBackoff, c.MaxBackoff = 300*time.Millisecond, 400*time.Millisecond
			})
			hello := anna.waitFor("hello", func(e agent.Event) bool { return e.Kind == agent.EventHello }).Hello
			if hello.Resumed {
				t.Fatalf("hello resumed: %+v", hello)
			}
			if time.Since(started) > window {
				t.Skipf("the cards took longer than the window (%s) to post: the test cannot tell", window)
			}
			anna.waitFor("the call ringing", callWith("now", wire.CallRinging))
			anna.waitFor("the call ended meanwhile", callWith("done", wire.CallMissed))
			ring("live", "100")
			anna.waitFor("a live call", callWith("live", wire.CallRinging))

			// Resumed after a cut: only the call made while away comes.
			p.cut()
			anna.waitFor("offline", func(e agent.Event) bool { return e.Kind == agent.EventConn && e.Conn == agent.Offline })
			ring("away", "100")
			anna.waitFor("the call made while away", callWith("away", wire.CallRinging))
			if h, _ := anna.a.Hello(); !h.Resumed {
				t.Fatalf("not resumed after the cut: %+v", h)
			}

			var got []string
			var last uint64
			for _, e := range anna.calls() {
				if e.Seq != 0 && e.Seq <= last {
					t.Errorf("seq went from %d to %d", last, e.Seq)
				}
				last = max(last, e.Seq)
				got = append(got, fmt.Sprintf("%s %s", e.Call.ID, e.Call.State))
			}
			want := []string{"done ringing", "done missed", "now ringing", "live ringing", "away ringing"}
			if strings.Join(got, ", ") != strings.Join(want, ", ") {
				t.Errorf("cards:\n got %s\nwant %s", strings.Join(got, ", "), strings.Join(want, ", "))
			}
		})
	}
}
