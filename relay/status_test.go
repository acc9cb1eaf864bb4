package relay_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/pult/pult/agent"
	"github.com/pult/pult/agent/wire"
)

// statusPBX is a PBX recording the statuses it is told, in order.
type statusPBX struct {
	mu  sync.Mutex
	got []string
}

func newStatusPBX(t *testing.T) (*statusPBX, *httptest.Server) {
	p := &statusPBX{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.got = append(p.got, r.URL.Query().Get("status"))
		p.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	return p, srv
}

func (p *statusPBX) last() (string, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.got) == 0 {
		return "", 0
	}
	return p.got[len(p.got)-1], len(p.got)
}

// rawAgent is a websocket speaking the agent protocol frame by frame, to
// send what the agent library never would.
type rawAgent struct {
	t *testing.T
	c *websocket.Conn
}

func dialRaw(t *testing.T, base, token string) *rawAgent {
	t.Helper()
	c, _, err := wsDial(t, base, token, strconv.Itoa(wire.ProtocolVersion))
	if err != nil {
		t.Fatal(err)
	}
	ra := &rawAgent{t: t, c: c}
	if env := ra.read(); env.Type != wire.TypeHello {
		t.Fatalf("first frame: %+v", env)
	}
	return ra
}

func (ra *rawAgent) send(typ, id string, data any) {
	ra.t.Helper()
	b, err := wire.Encode(typ, id, 0, data)
	if err != nil {
		ra.t.Fatal(err)
	}
	if err := ra.c.WriteMessage(websocket.TextMessage, b); err != nil {
		ra.t.Fatal(err)
	}
}

func (ra *rawAgent) read() wire.Envelope {
	ra.t.Helper()
	ra.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, b, err := ra.c.ReadMessage()
	if err != nil {
		ra.t.Fatal(err)
	}
	var env wire.Envelope
	if err := json.Unmarshal(b, &env); err != nil {
		ra.t.Fatalf("frame %q: %v", b, err)
	}
	return env
}

// replies reads frames until every id has its reply and returns them.
func (ra *rawAgent) replies(ids ...string) map[string]wire.Envelope {
	ra.t.Helper()
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	got := map[string]wire.Envelope{}
	for len(got) < len(want) {
		env := ra.read()
		if (env.Type == wire.TypeReply || env.Type == wire.TypeError) && want[env.ID] {
			got[env.ID] = env
		}
	}
	return got
}

// Two status changes dated the same instant (an operator's double click, or
// the CRM and the operator at once) are two changes: the operator's agents,
// the relay and the PBX all end on the same one.
func TestSameInstantStatusChangesStayConsistent(t *testing.T) {
	checkGoroutines(t)
	pbx, pbxSrv := newStatusPBX(t)
	cfg := testConfig(t)
	cfg.PBX.ChangeStatusURL = pbxSrv.URL + "/change-status"
	r := startRelay(t, cfg)
	_, tok := r.addOperator("Anna", "100", "1")
	watcher := startAgent(t, r.URL, tok, nil)
	watcher.waitOnline()

	ra := dialRaw(t, r.URL, tok)
	at := time.Now().UTC().Add(-time.Second)
	ra.send(wire.TypeSetStatus, "s1", wire.SetStatus{Status: wire.StatusBusy, At: at})
	ra.send(wire.TypeSetStatus, "s2", wire.SetStatus{Status: wire.StatusDinner, At: at})
	for id, env := range ra.replies("s1", "s2") {
		if env.Type != wire.TypeReply {
			t.Fatalf("%s: %s %s", id, env.Type, env.Data)
		}
	}

	// What is in force is what a new connection is told.
	fresh := startAgent(t, r.URL, tok, nil)
	hello := fresh.waitFor("hello", func(e agent.Event) bool { return e.Kind == agent.EventHello }).Hello
	inForce := hello.Status.Status
	if inForce != wire.StatusBusy && inForce != wire.StatusDinner {
		t.Fatalf("in force: %+v", hello.Status)
	}
	watcher.waitFor("the status in force as the last status event", func(e agent.Event) bool {
		return e.Kind == agent.EventStatus && e.Status.Status == inForce
	})
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if last, _ := pbx.last(); last == string(inForce) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the PBX was told %v, the relay holds %s", pbx.got, inForce)
		}
	}
	time.Sleep(300 * time.Millisecond) // nothing else arrives after it
	if last, n := pbx.last(); last != string(inForce) {
		t.Errorf("the PBX ended on %q after %d calls, the relay holds %s", last, n, inForce)
	}
	watcher.mu.Lock()
	var lastEvent wire.Status
	for _, e := range watcher.events {
		if e.Kind == agent.EventStatus {
			lastEvent = e.Status.Status
		}
	}
	watcher.mu.Unlock()
	if lastEvent != inForce {
		t.Errorf("the operator's agent ended on %s, the relay holds %s", lastEvent, inForce)
	}
}

// An agent may date a change a little in the past (its clock may be off,
// or it was chosen offline), but the status's start is never put further
// back than a few seconds: the board's durations stay honest.
func TestStatusTimeCannotBeBackdated(t *testing.T) {
	checkGoroutines(t)
	r := startRelay(t, testConfig(t))
	_, tok := r.addOperator("Anna", "100", "1")
	ra := dialRaw(t, r.URL, tok)
	before := time.Now().UTC()
	ra.send(wire.TypeSetStatus, "old", wire.SetStatus{Status: wire.StatusBreak, At: before.Add(-time.Hour)})
	env := ra.replies("old")["old"]
	var st wire.StatusInfo
	if env.Type != wire.TypeReply || json.Unmarshal(env.Data, &st) != nil {
		t.Fatalf("reply: %s %s", env.Type, env.Data)
	}
	if st.Status != wire.StatusBreak || st.Since.Before(before.Add(-15*time.Second)) {
		t.Errorf("a change dated an hour ago starts at %v (now %v)", st.Since, before)
	}
	ra.send(wire.TypeSetStatus, "soon", wire.SetStatus{Status: wire.StatusFree, At: time.Now().Add(time.Hour)})
	env = ra.replies("soon")["soon"]
	json.Unmarshal(env.Data, &st)
	if st.Status != wire.StatusFree || st.Since.After(time.Now()) {
		t.Errorf("a change dated in an hour: %+v", st)
	}
}

// A request that failed with nothing done (the PBX unavailable) is not
// remembered as its answer: sent again with the same id once the PBX is
// back, it places the call. One that succeeded is answered again, not
// repeated.
func TestTransientFailureIsNotTheFinalAnswer(t *testing.T) {
	checkGoroutines(t)
	var up atomic.Bool
	var calls atomic.Int32
	pbx := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !up.Load() {
			http.Error(w, "maintenance", http.StatusServiceUnavailable)
			return
		}
		calls.Add(1)
	}))
	t.Cleanup(pbx.Close)
	cfg := testConfig(t)
	cfg.PBX.MakeCallURL = pbx.URL + "/make-call"
	r := startRelay(t, cfg)
	_, tok := r.addOperator("Anna", "100", "1")
	ra := dialRaw(t, r.URL, tok)
	dial := wire.Dial{Phone: "+7 912 345-67-89"}

	ra.send(wire.TypeDial, "d1", dial)
	env := ra.replies("d1")["d1"]
	var we wire.Error
	json.Unmarshal(env.Data, &we)
	if env.Type != wire.TypeError || we.Code != wire.ErrPBXUnreachable {
		t.Fatalf("PBX down: %s %s", env.Type, env.Data)
	}
	up.Store(true)
	for range 2 {
		ra.send(wire.TypeDial, "d1", dial)
		if env := ra.replies("d1")["d1"]; env.Type != wire.TypeReply {
			t.Fatalf("the same request with the PBX back: %s %s", env.Type, env.Data)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("the PBX placed %d calls, want 1", n)
	}
}
