package relay_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/gorilla/websocket"

	"github.com/pult/pult/agent"
	"github.com/pult/pult/agent/wire"
	"github.com/pult/pult/relay"
	"github.com/pult/pult/relay/admin"
	"github.com/pult/pult/relay/config"
	"github.com/pult/pult/relay/operators"
	"github.com/pult/pult/relay/retailcrm/sim"
)

// boardClient is a supervisor's websocket speaking the protocol by hand:
// it subscribes to the queue board, applies every delta to its snapshot
// and checks that each delta carries only changes.
type boardClient struct {
	t    *testing.T
	conn *websocket.Conn
	done chan struct{}

	mu        sync.Mutex
	subID     string
	board     *wire.QueueSnapshot
	deltas    int
	problems  []string
	replies   map[string]chan wire.Envelope
	closeCode int
	changed   chan struct{}
}

func dialBoard(t *testing.T, relayURL, token string) *boardClient {
	t.Helper()
	h := http.Header{}
	h.Set("Authorization", "Bearer "+token)
	h.Set(wire.HeaderProtocol, strconv.Itoa(wire.ProtocolVersion))
	conn, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(relayURL, "http")+wire.Path, h)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	conn.SetReadLimit(16 << 20)
	var hello wire.Envelope
	if err := conn.ReadJSON(&hello); err != nil || hello.Type != wire.TypeHello {
		t.Fatalf("hello: %v %+v", err, hello)
	}
	c := &boardClient{t: t, conn: conn, done: make(chan struct{}), replies: map[string]chan wire.Envelope{}, changed: make(chan struct{}, 1)}
	go c.read()
	t.Cleanup(c.close)
	return c
}

func (c *boardClient) close() {
	c.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	c.conn.Close()
	<-c.done
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.problems {
		c.t.Error(p)
	}
	c.problems = nil
}

func (c *boardClient) read() {
	defer close(c.done)
	for {
		_, b, err := c.conn.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			c.mu.Lock()
			if asClose(err, &ce) {
				c.closeCode = ce.Code
			}
			c.mu.Unlock()
			return
		}
		var env wire.Envelope
		if err := json.Unmarshal(b, &env); err != nil {
			c.fail("unreadable frame %q", b)
			continue
		}
		c.mu.Lock()
		switch {
		case env.Type == wire.TypeQueue:
			var d wire.QueueDelta
			if err := json.Unmarshal(env.Data, &d); err != nil {
				c.problems = append(c.problems, "unreadable delta: "+err.Error())
			} else if c.board != nil {
				c.checkOnlyChanges(d)
				if !c.board.Apply(d) {
					c.problems = append(c.problems, fmt.Sprintf("delta %d after %d", d.Version, c.board.Version))
				}
				c.deltas++
			}
		case env.ID != "" && env.ID == c.subID && env.Type == wire.TypeReply:
			var s wire.QueueSnapshot
			if err := json.Unmarshal(env.Data, &s); err != nil {
				c.problems = append(c.problems, "unreadable snapshot: "+err.Error())
			}
			c.board = &s
		}
		if ch := c.replies[env.ID]; ch != nil && env.ID != "" {
			ch <- env
			delete(c.replies, env.ID)
		}
		c.mu.Unlock()
		select {
		case c.changed <- struct{}{}:
		default:
		}
	}
}

func asClose(err error, ce **websocket.CloseError) bool {
	e, ok := err.(*websocket.CloseError)
	*ce = e
	return ok
}

func (c *boardClient) fail(format string, a ...any) {
	c.mu.Lock()
	c.problems = append(c.problems, fmt.Sprintf(format, a...))
	c.mu.Unlock()
}

// checkOnlyChanges: every entry of a delta differs from what the client
// has (a new day's delta may carry every operator).
func (c *boardClient) checkOnlyChanges(d wire.QueueDelta) {
	if d.Day != "" && d.Day != c.board.Day {
		return
	}
	for _, op := range d.Operators {
		for _, have := range c.board.Operators {
			if have.ID == op.ID && cmp.Equal(have, op) {
				c.problems = append(c.problems, fmt.Sprintf("delta %d carries operator %s unchanged", d.Version, op.Code))
			}
		}
	}
	for _, w := range d.Waiting {
		for _, have := range c.board.Waiting {
			if have.ID == w.ID && cmp.Equal(have, w) {
				c.problems = append(c.problems, fmt.Sprintf("delta %d carries waiting call %s unchanged", d.Version, w.ID))
			}
		}
	}
	if d.Totals != nil && *d.Totals == c.board.Totals {
		c.problems = append(c.problems, fmt.Sprintf("delta %d carries the totals unchanged", d.Version))
	}
}

var reqN atomicCounter

type atomicCounter struct {
	mu sync.Mutex
	n  int
}

func (a *atomicCounter) next() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.n++
	return "q" + strconv.Itoa(a.n)
}

// request sends a request and waits for its answer.
func (c *boardClient) request(typ string, data any) wire.Envelope {
	c.t.Helper()
	id := reqN.next()
	ch := make(chan wire.Envelope, 1)
	c.mu.Lock()
	c.replies[id] = ch
	if typ == wire.TypeQueueSubscribe {
		c.subID, c.board = id, nil
	}
	c.mu.Unlock()
	frame, err := wire.Encode(typ, id, 0, data)
	if err != nil {
		c.t.Fatal(err)
	}
	if err := c.conn.WriteMessage(websocket.TextMessage, frame); err != nil {
		c.t.Fatalf("send %s: %v", typ, err)
	}
	select {
	case env := <-ch:
		return env
	case <-time.After(10 * time.Second):
		c.t.Fatalf("no answer to %s", typ)
	}
	return wire.Envelope{}
}

func (c *boardClient) subscribe() {
	c.t.Helper()
	env := c.request(wire.TypeQueueSubscribe, nil)
	if env.Type != wire.TypeReply {
		c.t.Fatalf("queue.subscribe: %s %s", env.Type, env.Data)
	}
}

// wait waits until the client's board satisfies ok.
func (c *boardClient) wait(what string, ok func(*wire.QueueSnapshot) bool) wire.QueueSnapshot {
	c.t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		c.mu.Lock()
		if c.board != nil && ok(c.board) {
			b := *c.board
			b.Operators = slices.Clone(b.Operators)
			b.Waiting = slices.Clone(b.Waiting)
			b.History = slices.Clone(b.History)
			c.mu.Unlock()
			return b
		}
		c.mu.Unlock()
		select {
		case <-c.changed:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			c.mu.Lock()
			b, _ := json.MarshalIndent(c.board, "", " ")
			c.mu.Unlock()
			c.t.Fatalf("timed out waiting for the board to show %s; it shows:\n%s", what, b)
		}
	}
}

func opByCode(s *wire.QueueSnapshot, code string) wire.QueueOperator {
	for _, op := range s.Operators {
		if op.Code == code {
			return op
		}
	}
	return wire.QueueOperator{}
}

func waitingIDs(s *wire.QueueSnapshot) []string {
	var ids []string
	for _, w := range s.Waiting {
		ids = append(ids, w.ID)
	}
	slices.Sort(ids)
	return ids
}

// sameBoard compares two boards as a person sees them: order and the
// moment of the snapshot aside.
func sameBoard(t *testing.T, want, got wire.QueueSnapshot) {
	t.Helper()
	opts := []cmp.Option{
		cmpopts.IgnoreFields(wire.QueueSnapshot{}, "At", "Version"),
		cmpopts.SortSlices(func(a, b wire.QueueOperator) bool { return a.ID < b.ID }),
		cmpopts.SortSlices(func(a, b wire.WaitingCall) bool { return a.ID < b.ID }),
		cmpopts.EquateEmpty(),
	}
	if d := cmp.Diff(want, got, opts...); d != "" {
		t.Errorf("boards differ (-want +got):\n%s", d)
	}
}

func (r *testRelay) addSupervisor(name, code, userID string) (admin.OperatorView, string) {
	r.t.Helper()
	added, err := r.admin().AddOperator(context.Background(), operators.NewOperator{Name: name, Code: code, UserID: userID, Role: wire.RoleSupervisor})
	if err != nil {
		r.t.Fatalf("add supervisor %s: %v", name, err)
	}
	return added.Operator, added.Token
}

// The board follows calls as the relay sees them: ringing, answered,
// transferred, ended, missed, outgoing, answered elsewhere; and statuses
// and presence. Every delta carries only changes, and the snapshot plus
// the deltas is the board a new subscriber gets.
func TestQueueBoardFollowsCalls(t *testing.T) {
	checkGoroutines(t)
	w := newWorld(t, nil)
	_, supTok := w.r.addSupervisor("Sofia Volkova", "900", "9")
	_, veraTok := w.r.addOperator("Vera Lebedeva", "102", "3")
	vera := startAgent(t, w.r.URL, veraTok, nil)
	vera.waitOnline()
	sup := dialBoard(t, w.r.URL, supTok)
	sup.subscribe()
	s := sup.wait("four people, connected", func(s *wire.QueueSnapshot) bool {
		return len(s.Operators) == 4 && opByCode(s, "100").Connected && opByCode(s, "102").Connected && opByCode(s, "900").Connected
	})
	if s.ServiceLevelSeconds != 20 || s.TimeZone != "Europe/Moscow" || s.Day == "" {
		t.Errorf("snapshot: %+v", s)
	}
	if a := opByCode(&s, "100"); a.Name != "Anna Smirnova" || a.Role != wire.RoleOperator || a.Status != wire.StatusFree {
		t.Errorf("Anna on the board: %+v", a)
	}

	// c1 rings Anna and Boris: waiting.
	w.event(map[string]any{"type": "in", "phone": "+79121234567", "codes": []string{"100", "101"}, "callExternalId": "c1", "externalPhone": "+74999999999", "site": "shop1"})
	s = sup.wait("c1 waiting", func(s *wire.QueueSnapshot) bool { return slices.Equal(waitingIDs(s), []string{"c1"}) })
	if wc := s.Waiting[0]; wc.PhoneDisplay != "8 (912) 123-45-67" || wc.Site != "shop1" || wc.Line != "+74999999999" || !slices.Equal(wc.Ringing, []string{"100", "101"}) {
		t.Errorf("waiting call: %+v", wc)
	}
	// Boris answers: not waiting, Boris talks.
	w.event(map[string]any{"type": "answer", "phone": "+79121234567", "codes": []string{"101"}, "callExternalId": "c1"})
	s = sup.wait("Boris talking", func(s *wire.QueueSnapshot) bool {
		c := opByCode(s, "101").Call
		return len(s.Waiting) == 0 && c != nil && c.State == wire.CallTalking && c.ID == "c1"
	})
	if s.Totals.Incoming != 1 || s.Totals.Answered != 1 || s.Totals.AnsweredInTime != 1 {
		t.Errorf("totals after the answer: %+v", s.Totals)
	}
	// Transferred to Vera, then over.
	w.event(map[string]any{"type": "answer", "phone": "+79121234567", "codes": []string{"102"}, "callExternalId": "c1"})
	sup.wait("Vera talking, Boris free", func(s *wire.QueueSnapshot) bool {
		c := opByCode(s, "102").Call
		return c != nil && c.ID == "c1" && opByCode(s, "101").Call == nil && opByCode(s, "101").Counters.TalkedCalls == 1
	})
	w.event(map[string]any{"type": "hangup", "phone": "+79121234567", "codes": []string{"102"}, "callExternalId": "c1", "hangupStatus": "answered"})
	sup.wait("c1 over", func(s *wire.QueueSnapshot) bool {
		return opByCode(s, "102").Call == nil && s.Totals.TalkedCalls == 1 && opByCode(s, "102").Counters.Answered == 1
	})

	// c2 rings Anna and is missed.
	w.event(map[string]any{"type": "in", "phone": "+79161112233", "codes": []string{"100"}, "callExternalId": "c2"})
	sup.wait("c2 waiting", func(s *wire.QueueSnapshot) bool { return slices.Equal(waitingIDs(s), []string{"c2"}) })
	w.event(map[string]any{"type": "hangup", "phone": "+79161112233", "codes": []string{"100"}, "callExternalId": "c2", "hangupStatus": "no answered"})
	sup.wait("c2 missed", func(s *wire.QueueSnapshot) bool {
		return len(s.Waiting) == 0 && s.Totals.Missed == 1 && opByCode(s, "100").Counters.Missed == 1
	})

	// c3 rings Anna and Boris; Anna answers: answered elsewhere for Boris.
	w.event(map[string]any{"type": "in", "phone": "+79161112244", "codes": []string{"100", "101"}, "callExternalId": "c3"})
	w.event(map[string]any{"type": "answer", "phone": "+79161112244", "codes": []string{"100"}, "callExternalId": "c3"})
	sup.wait("Anna talking on c3", func(s *wire.QueueSnapshot) bool {
		c := opByCode(s, "100").Call
		return c != nil && c.ID == "c3" && len(s.Waiting) == 0
	})

	// Boris dials out.
	w.event(map[string]any{"type": "out", "phone": "+79161112255", "codes": []string{"101"}, "callExternalId": "c4"})
	sup.wait("Boris dialling", func(s *wire.QueueSnapshot) bool {
		c := opByCode(s, "101").Call
		return c != nil && c.Direction == wire.DirectionOut && c.State == wire.CallRinging && s.Totals.Outgoing == 1
	})

	// Statuses and presence.
	if _, err := w.anna.a.SetStatus(context.Background(), wire.StatusBusy); err != nil {
		t.Fatal(err)
	}
	sup.wait("Anna busy", func(s *wire.QueueSnapshot) bool { return opByCode(s, "100").Status == wire.StatusBusy })
	vera.stop()
	s = sup.wait("Vera offline", func(s *wire.QueueSnapshot) bool {
		v := opByCode(s, "102")
		return !v.Connected && v.Status == wire.StatusOffline
	})
	if b := opByCode(&s, "101").Counters; b.Incoming != 2 || b.Answered != 1 || b.Missed != 0 || b.Outgoing != 1 || b.TalkedCalls != 1 {
		t.Errorf("Boris's counters: %+v", b)
	}
	want := wire.QueueCounters{Incoming: 3, Answered: 2, Missed: 1, Outgoing: 1, AnsweredInTime: 2, TalkedCalls: 1}
	got := s.Totals
	got.WaitTotalSeconds, got.WaitMaxSeconds, got.TalkTotalSeconds = 0, 0, 0
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("totals (-want +got):\n%s", d)
	}

	// The snapshot plus every delta is the board; a second subscriber gets it.
	sup.mu.Lock()
	n := sup.deltas
	sup.mu.Unlock()
	if n < 10 {
		t.Errorf("only %d deltas", n)
	}
	other := dialBoard(t, w.r.URL, supTok)
	other.subscribe()
	fresh := other.wait("a snapshot", func(*wire.QueueSnapshot) bool { return true })
	mine := sup.wait("the same version", func(s *wire.QueueSnapshot) bool { return s.Version >= fresh.Version })
	sameBoard(t, fresh, mine)

	// queue.unsubscribe: no more deltas.
	if env := sup.request(wire.TypeQueueUnsubscribe, nil); env.Type != wire.TypeReply {
		t.Fatalf("unsubscribe: %s %s", env.Type, env.Data)
	}
	sup.mu.Lock()
	n = sup.deltas
	sup.mu.Unlock()
	w.event(map[string]any{"type": "in", "phone": "+79161112266", "codes": []string{"101"}, "callExternalId": "c5"})
	other.wait("c5 waiting", func(s *wire.QueueSnapshot) bool { return slices.Contains(waitingIDs(s), "c5") })
	time.Sleep(100 * time.Millisecond)
	sup.mu.Lock()
	if sup.deltas != n {
		t.Errorf("%d deltas after unsubscribing", sup.deltas-n)
	}
	sup.mu.Unlock()
}

// A UIS call that names no employee waits, ringing nobody, until an
// employee's conversation starts; its talk time is UIS's.
func TestQueueBoardUIS(t *testing.T) {
	checkGoroutines(t)
	r, _, _ := uisWorld(t, nil)
	_, supTok := r.addSupervisor("Sofia", "900", "9")
	sup := dialBoard(t, r.URL, supTok)
	sup.subscribe()
	const id = "uis-3061237823"
	r.uis("incoming_call_started", uisFixture(t, "incoming_call_started.json"))
	s := sup.wait("the UIS call waiting", func(s *wire.QueueSnapshot) bool { return slices.Equal(waitingIDs(s), []string{id}) })
	if len(s.Waiting[0].Ringing) != 0 || s.Waiting[0].PhoneDisplay != "8 (912) 123-45-67" || s.Waiting[0].LineDisplay != "8 (495) 150-50-50" {
		t.Errorf("waiting UIS call: %+v", s.Waiting[0])
	}
	r.uis("conversation_started", uisFixture(t, "conversation_started.json"))
	sup.wait("Anna talking", func(s *wire.QueueSnapshot) bool {
		c := opByCode(s, "101").Call
		return len(s.Waiting) == 0 && c != nil && c.ID == id && s.Totals.Answered == 1
	})
	finished := uisFixture(t, "call_finished.json")
	var f map[string]any
	json.Unmarshal(finished, &f)
	r.uis("call_finished", finished)
	s = sup.wait("the UIS call over", func(s *wire.QueueSnapshot) bool { return s.Totals.TalkedCalls == 1 && opByCode(s, "101").Call == nil })
	if want := int64(f["talk_time_duration"].(float64)); s.Totals.TalkTotalSeconds != want || opByCode(&s, "101").Counters.TalkTotalSeconds != want {
		t.Errorf("talk time %d (Anna %d), UIS measured %d", s.Totals.TalkTotalSeconds, opByCode(&s, "101").Counters.TalkTotalSeconds, want)
	}
}

// Only supervisors see the board and set others' statuses.
func TestQueueForbiddenForOperators(t *testing.T) {
	checkGoroutines(t)
	r := startRelay(t, testConfig(t))
	anna, annaTok := r.addOperator("Anna", "100", "1")
	c := dialBoard(t, r.URL, annaTok)
	for _, req := range []struct {
		typ  string
		data any
	}{
		{wire.TypeQueueSubscribe, nil},
		{wire.TypeQueueUnsubscribe, nil},
		{wire.TypeOperatorStatusSet, wire.OperatorStatus{OperatorID: anna.ID, Status: wire.StatusBreak}},
	} {
		env := c.request(req.typ, req.data)
		var e wire.Error
		json.Unmarshal(env.Data, &e)
		if env.Type != wire.TypeError || e.Code != wire.ErrForbidden || !strings.Contains(e.Message, "supervisor") {
			t.Errorf("%s by an operator: %s %s", req.typ, env.Type, env.Data)
		}
	}
	if n := r.srv.BoardSubscribers(); n != 0 {
		t.Errorf("%d subscribers", n)
	}
}

// A supervisor sets an operator's status through the operator's own path:
// stored, on the operator's stream (their tray), to the PBX, on the board.
func TestSupervisorSetsStatus(t *testing.T) {
	checkGoroutines(t)
	w := newWorld(t, nil)
	_, supTok := w.r.addSupervisor("Sofia", "900", "9")
	sup := dialBoard(t, w.r.URL, supTok)
	sup.subscribe()
	s := sup.wait("Anna", func(s *wire.QueueSnapshot) bool { return opByCode(s, "100").ID != "" })
	annaID := opByCode(&s, "100").ID

	env := sup.request(wire.TypeOperatorStatusSet, wire.OperatorStatus{OperatorID: annaID, Status: wire.StatusBreak})
	var st wire.StatusInfo
	json.Unmarshal(env.Data, &st)
	if env.Type != wire.TypeReply || st.Status != wire.StatusBreak || st.Source != "supervisor" {
		t.Fatalf("operator.status.set: %s %s", env.Type, env.Data)
	}
	e := w.anna.waitFor("the status on Anna's stream", func(e agent.Event) bool {
		return e.Kind == agent.EventStatus && e.Status.Status == wire.StatusBreak
	})
	if e.Status.Source != "supervisor" {
		t.Errorf("Anna's status event: %+v", e.Status)
	}
	reqs, err := w.pbx.Wait(context.Background(), sim.KindChangeStatus, 1)
	if err != nil {
		t.Fatal(err)
	}
	if q := reqs[0].Query; q.Get("code") != "100" || q.Get("status") != "break" || q.Get("clientId") != testClientID {
		t.Errorf("PBX change-status: %v", q)
	}
	sup.wait("Anna on a break", func(s *wire.QueueSnapshot) bool { return opByCode(s, "100").Status == wire.StatusBreak })

	// By extension code too; unknown operators and statuses are refused.
	if env := sup.request(wire.TypeOperatorStatusSet, wire.OperatorStatus{OperatorID: "101", Status: wire.StatusDinner}); env.Type != wire.TypeReply {
		t.Errorf("by code: %s %s", env.Type, env.Data)
	}
	w.boris.waitFor("Boris at dinner", func(e agent.Event) bool { return e.Kind == agent.EventStatus && e.Status.Status == wire.StatusDinner })
	for _, tc := range []struct {
		req  wire.OperatorStatus
		code string
		text string
	}{
		{wire.OperatorStatus{OperatorID: "nobody", Status: wire.StatusBusy}, wire.ErrBadRequest, `no operator "nobody"`},
		{wire.OperatorStatus{OperatorID: annaID, Status: wire.StatusOffline}, wire.ErrInvalidStatus, "unknown status"},
	} {
		env := sup.request(wire.TypeOperatorStatusSet, tc.req)
		var e wire.Error
		json.Unmarshal(env.Data, &e)
		if env.Type != wire.TypeError || e.Code != tc.code || !strings.Contains(e.Message, tc.text) {
			t.Errorf("%+v: %s %s", tc.req, env.Type, env.Data)
		}
	}
}

// Counters, the waiting calls, the calls in progress and the history
// survive a restart; a call that waited across it is counted once.
func TestQueueBoardSurvivesRestart(t *testing.T) {
	checkGoroutines(t)
	r := startRelay(t, testConfig(t))
	_, supTok := r.addSupervisor("Sofia", "900", "9")
	r.addOperator("Anna", "100", "1")
	r.addOperator("Boris", "101", "2")
	ev := func(m map[string]any) {
		t.Helper()
		if status, body := r.callEvent(m); status != 200 {
			t.Fatalf("event: %d %v", status, body)
		}
	}
	ev(map[string]any{"type": "in", "phone": "+79121234567", "codes": []string{"100"}, "callExternalId": "r1"})
	ev(map[string]any{"type": "answer", "phone": "+79121234567", "codes": []string{"100"}, "callExternalId": "r1"})
	ev(map[string]any{"type": "hangup", "phone": "+79121234567", "codes": []string{"100"}, "callExternalId": "r1", "hangupStatus": "answered"})
	ev(map[string]any{"type": "in", "phone": "+79121234568", "codes": []string{"101"}, "callExternalId": "r2"})
	ev(map[string]any{"type": "hangup", "phone": "+79121234568", "callExternalId": "r2", "hangupStatus": "no answered"})
	ev(map[string]any{"type": "in", "phone": "+79121234569", "codes": []string{"100", "101"}, "callExternalId": "r3"})
	ev(map[string]any{"type": "in", "phone": "+79121234560", "codes": []string{"101"}, "callExternalId": "r4"})
	ev(map[string]any{"type": "answer", "phone": "+79121234560", "codes": []string{"101"}, "callExternalId": "r4"})
	sup := dialBoard(t, r.URL, supTok)
	sup.subscribe()
	before := sup.wait("r3 waiting, Boris on r4", func(s *wire.QueueSnapshot) bool {
		return slices.Equal(waitingIDs(s), []string{"r3"}) && opByCode(s, "101").Call != nil && s.Totals.Missed == 1
	})
	sup.close()

	r = r.restart()
	sup = dialBoard(t, r.URL, supTok)
	sup.subscribe()
	after := sup.wait("the board", func(*wire.QueueSnapshot) bool { return true })
	if !slices.Equal(waitingIDs(&after), []string{"r3"}) || !after.Waiting[0].Since.Equal(before.Waiting[0].Since) {
		t.Errorf("waiting after the restart: %+v (before %+v)", after.Waiting, before.Waiting)
	}
	if after.Totals != before.Totals {
		t.Errorf("totals after the restart: %+v, before %+v", after.Totals, before.Totals)
	}
	if c := opByCode(&after, "101").Call; c == nil || c.ID != "r4" || c.State != wire.CallTalking {
		t.Errorf("Boris's call after the restart: %+v", c)
	}
	if len(after.History) < len(before.History) || !slices.Equal(after.History[:len(before.History)], before.History) {
		t.Errorf("history after the restart: %d samples, before %d", len(after.History), len(before.History))
	}
	for _, code := range []string{"100", "101"} {
		if a, b := opByCode(&after, code).Counters, opByCode(&before, code).Counters; a != b {
			t.Errorf("%s's counters after the restart: %+v, before %+v", code, a, b)
		}
	}
	// The call that waited across the restart is answered once.
	ev(map[string]any{"type": "answer", "phone": "+79121234569", "codes": []string{"100"}, "callExternalId": "r3"})
	s := sup.wait("r3 answered", func(s *wire.QueueSnapshot) bool { return len(s.Waiting) == 0 })
	if s.Totals.Incoming != 4 || s.Totals.Answered != 3 {
		t.Errorf("totals: %+v", s.Totals)
	}
}

// Counters start again at local midnight (the relay's clock moved by hand).
func TestQueueBoardMidnight(t *testing.T) {
	checkGoroutines(t)
	clock := &fakeClock{t: time.Date(2026, 11, 21, 20, 59, 30, 0, time.UTC)} // 23:59:30 in Moscow
	r := startRelayWith(t, testConfig(t), func(cfg config.Config) *relay.Server {
		return relay.NewWithClock(cfg, relayLogger(t), clock.now)
	})
	_, supTok := r.addSupervisor("Sofia", "900", "9")
	r.addOperator("Anna", "100", "1")
	sup := dialBoard(t, r.URL, supTok)
	sup.subscribe()
	r.callEvent(map[string]any{"type": "in", "phone": "+79121234567", "codes": []string{"100"}, "callExternalId": "m1"})
	clock.add(5 * time.Second)
	r.callEvent(map[string]any{"type": "answer", "phone": "+79121234567", "codes": []string{"100"}, "callExternalId": "m1"})
	s := sup.wait("m1 answered on the 21st", func(s *wire.QueueSnapshot) bool { return s.Totals.Answered == 1 })
	if s.Day != "2026-11-21" || opByCode(&s, "100").Counters.Answered != 1 {
		t.Fatalf("before midnight: %s %+v", s.Day, s.Totals)
	}
	clock.add(time.Minute) // 00:00:35
	s = sup.wait("a new day", func(s *wire.QueueSnapshot) bool { return s.Day == "2026-11-22" })
	if (s.Totals != wire.QueueCounters{}) || (opByCode(&s, "100").Counters != wire.QueueCounters{}) {
		t.Errorf("counters after midnight: %+v, Anna %+v", s.Totals, opByCode(&s, "100").Counters)
	}
	if len(s.History) == 0 || s.History[len(s.History)-1].At.After(clock.now()) {
		t.Errorf("history: %+v", s.History)
	}
	// The call talked across midnight is counted today when it ends.
	r.callEvent(map[string]any{"type": "hangup", "phone": "+79121234567", "codes": []string{"100"}, "callExternalId": "m1", "hangupStatus": "answered"})
	s = sup.wait("m1 over", func(s *wire.QueueSnapshot) bool { return s.Totals.TalkedCalls == 1 })
	if s.Totals.TalkTotalSeconds != 60 || s.Totals.Answered != 0 {
		t.Errorf("totals of the 22nd: %+v", s.Totals)
	}
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// The agent's own queue watch (what the Queue window and `pult queue` use)
// against the real relay: the snapshot, live deltas applied in order, and a
// supervisor setting an operator's status reaching the PBX.
func TestQueueThroughAgent(t *testing.T) {
	checkGoroutines(t)
	w := newWorld(t, nil)
	_, supTok := w.r.addSupervisor("Sofia Volkova", "900", "9")
	sup := startAgent(t, w.r.URL, supTok, nil)
	sup.waitOnline()
	sup.a.WatchQueue(true)
	board := func(what string, ok func(*wire.QueueSnapshot) bool) *wire.QueueSnapshot {
		t.Helper()
		return sup.waitFor(what, func(ev agent.Event) bool {
			return ev.Kind == agent.EventQueue && ev.Queue != nil && ok(ev.Queue)
		}).Queue
	}
	b := board("the snapshot", func(s *wire.QueueSnapshot) bool { return opByCode(s, "900").Connected })
	if len(b.Operators) < 3 || b.ServiceLevelSeconds != 20 {
		t.Fatalf("snapshot %+v", b)
	}
	w.event(map[string]any{"type": "in", "phone": "+79121234567", "codes": []string{"100"}, "callExternalId": "qa1"})
	b = board("qa1 waiting", func(s *wire.QueueSnapshot) bool { return slices.Equal(waitingIDs(s), []string{"qa1"}) })
	w.event(map[string]any{"type": "answer", "phone": "+79121234567", "codes": []string{"100"}, "callExternalId": "qa1"})
	board("qa1 answered", func(s *wire.QueueSnapshot) bool {
		c := opByCode(s, "100").Call
		return len(s.Waiting) == 0 && c != nil && c.ID == "qa1" && s.Version > b.Version
	})

	// Sofia puts Anna on a break: the PBX hears it like Anna's own change.
	info, err := sup.a.SetOperatorStatus(context.Background(), opByCode(b, "100").ID, wire.StatusBreak)
	if err != nil || info.Status != wire.StatusBreak {
		t.Fatalf("SetOperatorStatus = %+v, %v", info, err)
	}
	board("Anna on a break", func(s *wire.QueueSnapshot) bool { return opByCode(s, "100").Status == wire.StatusBreak })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	reqs, err := w.pbx.Wait(ctx, sim.KindChangeStatus, 1)
	if err != nil {
		t.Fatal(err)
	}
	if q := reqs[0].Query; q.Get("code") != "100" || q.Get("status") != "break" {
		t.Errorf("PBX change-status: %v", q)
	}
}
