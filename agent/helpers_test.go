package agent

import (
	"context"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pult/pult/agent/agenttest"
)

// checkLeaks fails the test if, once it has finished, goroutines running
// agent code (or an HTTP client connection) are still alive. Register it
// first so its cleanup runs last. Tests using it must not be parallel.
func checkLeaks(t *testing.T) {
	t.Helper()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for {
			leaked := leakedGoroutines()
			if len(leaked) == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("%d goroutine(s) left running:\n\n%s", len(leaked), strings.Join(leaked, "\n\n"))
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

func leakedGoroutines() []string {
	buf := make([]byte, 4<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for i, g := range strings.Split(string(buf), "\n\n") {
		if i == 0 || strings.Contains(g, "testing.tRunner(") { // this goroutine, tests
			continue
		}
		if strings.Contains(g, "github.com/pult/pult/agent.") || strings.Contains(g, "net/http.(*persistConn)") {
			out = append(out, g)
		}
	}
	return out
}

// recorder collects events.
type recorder struct {
	mu  sync.Mutex
	evs []Event
}

func (r *recorder) on(ev Event) {
	r.mu.Lock()
	r.evs = append(r.evs, ev)
	r.mu.Unlock()
}

func (r *recorder) events() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Event(nil), r.evs...)
}

func (r *recorder) seqs() []uint64 {
	var out []uint64
	for _, ev := range r.events() {
		if ev.Seq > 0 {
			out = append(out, ev.Seq)
		}
	}
	return out
}

func (r *recorder) count(kind EventKind, conn ConnState) int {
	n := 0
	for _, ev := range r.events() {
		if ev.Kind == kind && (kind != EventConn || ev.Conn == conn) {
			n++
		}
	}
	return n
}

func (r *recorder) last(kind EventKind) (Event, bool) {
	evs := r.events()
	for i := len(evs) - 1; i >= 0; i-- {
		if evs[i].Kind == kind {
			return evs[i], true
		}
	}
	return Event{}, false
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// newTestAgent builds an agent for relay r with fast backoff and a recorder.
func newTestAgent(t *testing.T, r *agenttest.Relay, mod func(*Config)) (*Agent, *recorder) {
	t.Helper()
	rec := &recorder{}
	cfg := Config{
		RelayURL:   r.URL,
		Token:      agenttest.Token,
		Logger:     testLogger(t),
		MinBackoff: 5 * time.Millisecond,
		MaxBackoff: 50 * time.Millisecond,
		OnEvent:    rec.on,
	}
	if mod != nil {
		mod(&cfg)
	}
	a, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return a, rec
}

// running is an Agent.Run in progress.
type running struct {
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

// start runs a.Run until stop is called or the test ends.
func start(t *testing.T, a *Agent) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		r.err = a.Run(ctx)
	}()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop cancels Run and returns its error.
func (r *running) stop(t *testing.T) error {
	t.Helper()
	r.cancel()
	return r.wait(t)
}

// wait waits for Run to return by itself.
func (r *running) wait(t *testing.T) error {
	t.Helper()
	select {
	case <-r.done:
		return r.err
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
		return nil
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func waitOnline(t *testing.T, a *Agent) {
	t.Helper()
	waitFor(t, "online", func() bool { return a.State() == Online })
}
