package presence

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"
)

// memStore is a presence bucket in memory: every write reaches every
// watcher, in order, dated by the "server".
type memStore struct {
	ttl time.Duration

	mu       sync.Mutex
	puts     map[string]int
	records  map[string][]byte
	watchers []func(node string, data []byte, at time.Time)
}

func newMemStore(ttl time.Duration) *memStore {
	return &memStore{ttl: ttl, puts: map[string]int{}, records: map[string][]byte{}}
}

func (m *memStore) PresenceTTL() time.Duration { return m.ttl }

func (m *memStore) PutPresence(_ context.Context, node string, data []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.puts[node]++
	m.records[node] = data
	for _, w := range m.watchers {
		w(node, data, time.Now())
	}
	return nil
}

func (m *memStore) DeletePresence(_ context.Context, node string) error { m.expire(node); return nil }

// expire removes a node's record, as its TTL or a delete does.
func (m *memStore) expire(node string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.records, node)
	for _, w := range m.watchers {
		w(node, nil, time.Now())
	}
}

func (m *memStore) WatchPresence(ctx context.Context, fn func(node string, data []byte, at time.Time), synced func()) error {
	m.mu.Lock()
	for node, data := range m.records {
		fn(node, data, time.Now())
	}
	m.watchers = append(m.watchers, fn)
	m.mu.Unlock()
	synced()
	<-ctx.Done()
	return nil
}

func (m *memStore) writes(node string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.puts[node]
}

// sink records what a board hears.
type sink struct {
	mu sync.Mutex
	on map[string]bool
	at map[string]time.Time
}

func (s *sink) SetPresence(opID string, online bool, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.on[opID], s.at[opID] = online, at
}

func (s *sink) state(opID string) (bool, time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.on[opID], s.at[opID]
}

func newSink() *sink { return &sink{on: map[string]bool{}, at: map[string]time.Time{}} }

func start(t *testing.T, st Store, node string) (*Tracker, *sink, context.CancelFunc, chan error) {
	t.Helper()
	sk := newSink()
	tr := New(Config{Log: slog.New(slog.DiscardHandler), Store: st, Sink: sk, Node: node})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tr.Run(ctx) }()
	<-tr.Synced()
	return tr, sk, cancel, done
}

func eventually(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 5s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Operators connected to one node are online on another; a burst of
// sessions makes a few writes, not one per operator; when an operator's
// last session ends the other node dates it as the node that had them
// does; a node stopping removes its record, one abandoned does not.
func TestTrackers(t *testing.T) {
	st := newMemStore(time.Hour) // no heartbeat within the test
	a, sa, cancelA, doneA := start(t, st, "a")
	b, sb, cancelB, doneB := start(t, st, "b")
	defer func() { cancelB(); <-doneB }()

	const n = 1000
	before := st.writes("a")
	for i := range n {
		a.Local(fmt.Sprintf("op%d", i), count(1))
	}
	if on, _ := sa.state("op0"); !on {
		t.Error("an operator connected here is not online here at once")
	}
	eventually(t, "every operator online on b", func() bool { on, _ := sb.state(fmt.Sprintf("op%d", n-1)); return on })
	if w := st.writes("a") - before; w > 3 {
		t.Errorf("%d sessions opening at once made %d writes; want them coalesced", n, w)
	}
	_, sinceA := sa.state("op0")
	if _, sinceB := sb.state("op0"); !sinceB.Equal(sinceA) {
		t.Errorf("online since: %s on a, %s on b", sinceA, sinceB)
	}

	// The same operator on both nodes: online while either has them.
	b.Local("op1", count(1))
	a.Local("op1", count(0))
	time.Sleep(3 * coalesce)
	if on, _ := sb.state("op1"); !on {
		t.Error("op1, still connected to b, went offline")
	}
	a.Local("op0", count(0))
	eventually(t, "op0 offline on b", func() bool { on, _ := sb.state("op0"); return !on })
	_, goneA := sa.state("op0")
	if _, goneB := sb.state("op0"); !goneB.Equal(goneA) {
		t.Errorf("offline since: %s on a, %s on b", goneA, goneB)
	}

	// a stops cleanly: its record goes, its operators with it.
	cancelA()
	if err := <-doneA; err != nil {
		t.Fatal(err)
	}
	eventually(t, "a's operators offline on b", func() bool { on, _ := sb.state("op2"); return !on })
	if on, _ := sb.state("op1"); !on {
		t.Error("op1, connected to b, went offline with a")
	}

	// c is killed: its record stays until it expires.
	c, _, cancelC, doneC := start(t, st, "c")
	c.Local("op7", count(1))
	eventually(t, "op7 online on b", func() bool { on, _ := sb.state("op7"); return on })
	c.Abandon()
	cancelC()
	<-doneC
	time.Sleep(3 * coalesce)
	if on, _ := sb.state("op7"); !on {
		t.Error("a killed node's operators went offline before its record expired")
	}
	st.expire("c")
	if on, _ := sb.state("op7"); on {
		t.Error("op7 online after c's record expired")
	}
}

// The heartbeat rewrites the record every third of the TTL.
func TestHeartbeat(t *testing.T) {
	st := newMemStore(60 * time.Millisecond)
	a, _, cancel, done := start(t, st, "a")
	defer func() { cancel(); <-done }()
	a.Local("op", count(1))
	w := st.writes("a")
	time.Sleep(200 * time.Millisecond)
	if got := st.writes("a") - w; got < 3 || got > 12 {
		t.Errorf("%d writes in 200 ms with a TTL of 60 ms; want about 10", got)
	}
}

// A late callback (overtaken by a later one) does not win: the tracker
// reads the count when it handles the call, not when the hub made it.
func TestLocalReadsTheTruth(t *testing.T) {
	st := newMemStore(time.Hour)
	var mu sync.Mutex
	truth := map[string]int{}
	sk := newSink()
	tr := New(Config{Log: slog.New(slog.DiscardHandler), Store: st, Sink: sk, Node: "a"})
	sessions := func() int {
		mu.Lock()
		defer mu.Unlock()
		return truth["op"]
	}
	// The session opened and closed; the callback of the opening, late,
	// comes now.
	tr.Local("op", sessions)
	if on, _ := sk.state("op"); on {
		t.Error("online with no session")
	}
	mu.Lock()
	truth["op"] = 1
	mu.Unlock()
	tr.Local("op", sessions) // the closing's callback, with a session open again
	if on, _ := sk.state("op"); !on {
		t.Error("offline with a session")
	}
}

// count is a constant session count, for Local.
func count(n int) func() int { return func() int { return n } }

// Elsewhere names the other nodes holding an operator once their records
// say so, and knows an operator held here or nowhere.
func TestElsewhere(t *testing.T) {
	st := newMemStore(time.Hour)
	a, _, cancelA, doneA := start(t, st, "a")
	defer func() { cancelA(); <-doneA }()
	b, _, cancelB, doneB := start(t, st, "b")
	defer func() { cancelB(); <-doneB }()
	c, _, cancelC, doneC := start(t, st, "c")
	defer func() { cancelC(); <-doneC }()

	if nodes, known := a.Elsewhere("op1", nil); known || len(nodes) > 0 {
		t.Errorf("nobody connected: %v, %v", nodes, known)
	}
	a.Local("op1", count(1))
	if nodes, known := a.Elsewhere("op1", nil); !known || len(nodes) > 0 {
		t.Errorf("op1 here only: %v, %v", nodes, known)
	}
	b.Local("op1", count(1))
	c.Local("op2", count(1))
	eventually(t, "a sees op1 on b", func() bool { nodes, _ := a.Elsewhere("op1", nil); return slices.Equal(nodes, []string{"b"}) })
	eventually(t, "a sees op2 on c", func() bool { nodes, k := a.Elsewhere("op2", nil); return k && slices.Equal(nodes, []string{"c"}) })
	c.Local("op1", count(1))
	eventually(t, "a sees op1 on b and c", func() bool {
		nodes, _ := a.Elsewhere("op1", make([]string, 0, 2))
		slices.Sort(nodes)
		return slices.Equal(nodes, []string{"b", "c"})
	})
	b.Local("op1", count(0))
	c.Local("op1", count(0))
	a.Local("op1", count(0))
	eventually(t, "op1 nowhere", func() bool { nodes, k := a.Elsewhere("op1", nil); return !k && len(nodes) == 0 })
}
