package relay_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/pult/pult/agent"
	"github.com/pult/pult/agent/wire"
	ctfake "github.com/pult/pult/relay/calltouch/fake"
	qfake "github.com/pult/pult/relay/qolio/fake"
	"github.com/pult/pult/relay/store"
)

// startExternalNATS runs an in-process nats-server with JetStream on
// loopback, shut down when the test ends (after the relays registered later).
func startExternalNATS(t *testing.T) *server.Server {
	t.Helper()
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(),
		NoLog: true, NoSigs: true, MaxPayload: store.MaxPayload})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats did not start")
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	return ns
}

// An agent that knows two relays of one cluster (here two relays sharing an
// external NATS server) moves to the other when the one it is on stops, and
// resumes there: every call event, posted to either relay before, during and
// after the move, reaches it exactly once. (Cards of calls posted to the
// relay the agent is on are sent ahead of the log, and may overtake those
// of other calls posted to the other relay: order holds within a call.)
func TestFailoverBetweenRelays(t *testing.T) {
	checkGoroutines(t)
	ns := startExternalNATS(t)
	relays := map[string]*testRelay{}
	var urls []string
	for range 2 {
		cfg := testConfig(t)
		cfg.NATS.URL = ns.ClientURL()
		cfg.DataDir = t.TempDir() // each relay its own: JetStream is the external server's
		r := startRelay(t, cfg)
		relays[strings.TrimPrefix(r.URL, "http://")] = r
		urls = append(urls, r.URL)
	}
	_, token := relays[strings.TrimPrefix(urls[0], "http://")].addOperator("Anna", "100", "1")
	ta := startAgent(t, strings.Join(urls, ","), token, nil)
	ta.waitOnline()

	on := ta.a.Relay()
	cur := relays[on]
	if cur == nil {
		t.Fatalf("the agent is on %q, not one of %v", on, urls)
	}
	var other *testRelay
	for host, r := range relays {
		if host != on {
			other = r
		}
	}
	call := func(r *testRelay, n int) error {
		status, body, err := r.tryCallEvent(map[string]any{"type": "in", "phone": "+79121234567", "codes": []string{"100"},
			"callExternalId": fmt.Sprintf("n-%03d", n)})
		if err == nil && status != 200 {
			err = fmt.Errorf("call %d: HTTP %d %v", n, status, body)
		}
		return err
	}

	// Before: on the relay it is on, and on the other.
	const before, during, after = 5, 30, 5
	for n := 1; n <= before; n++ {
		r := cur
		if n%2 == 0 {
			r = other
		}
		if err := call(r, n); err != nil {
			t.Fatal(err)
		}
	}
	ta.waitFor("the calls before the failover", callWith(fmt.Sprintf("n-%03d", before), wire.CallRinging))
	hellos := ta.hellos()

	// During: numbered calls to the other relay while the agent's stops.
	var wg sync.WaitGroup
	errs := make(chan error, 1)
	wg.Go(func() {
		for n := before + 1; n <= before+during; n++ {
			if err := call(other, n); err != nil {
				errs <- err
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
	time.Sleep(20 * time.Millisecond)
	stopped := time.Now()
	cur.stop()
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	ta.waitHellos(hellos + 1)
	ta.waitFor("online on the other relay", func(e agent.Event) bool {
		return e.Kind == agent.EventConn && e.Conn == agent.Online && e.Relay == strings.TrimPrefix(other.URL, "http://")
	})
	t.Logf("the agent was back online on the other relay %s after the stop began", time.Since(stopped).Round(time.Millisecond))
	if got := ta.a.Relay(); got != strings.TrimPrefix(other.URL, "http://") {
		t.Errorf("Relay() = %q, want the other relay", got)
	}

	// After: on the relay it is on now.
	for n := before + during + 1; n <= before+during+after; n++ {
		if err := call(other, n); err != nil {
			t.Fatal(err)
		}
	}
	total := before + during + after
	var want []string
	for n := 1; n <= total; n++ {
		want = append(want, fmt.Sprintf("n-%03d", n))
	}
	ta.waitRinging(want)

	ta.mu.Lock()
	defer ta.mu.Unlock()
	var ids []string
	var last uint64
	var resumed []bool
	for _, e := range ta.events {
		switch e.Kind {
		case agent.EventHello:
			resumed = append(resumed, e.Hello.Resumed)
		case agent.EventCall:
			if e.Call.State != wire.CallRinging {
				continue
			}
			// Cards from the log (a catch-up) in seq order; those sent
			// ahead of it have none, their order is the ids'.
			if e.Seq != 0 && e.Seq <= last {
				t.Errorf("call %s has seq %d after %d", e.Call.ID, e.Seq, last)
			}
			last = max(last, e.Seq)
			ids = append(ids, e.Call.ID)
		}
	}
	slices.Sort(ids)
	if strings.Join(ids, " ") != strings.Join(want, " ") {
		t.Errorf("ringing cards, sorted:\n got %v\nwant each once: %v", ids, want)
	}
	if len(resumed) < 2 || !resumed[len(resumed)-1] {
		t.Errorf("hellos resumed: %v; want the last one, on the other relay, resumed", resumed)
	}
}

// Requests work on any relay of a cluster, and one sent again to another
// relay (an agent that moved after losing the first before its answer) is
// answered there as it was the first time, not carried out twice: status
// changes, dials and callbacks over the websocket, transcripts over HTTP.
func TestRequestsOnAnyRelay(t *testing.T) {
	checkGoroutines(t)
	var mu sync.Mutex
	var dials, statuses []string
	pbx := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		switch r.URL.Path {
		case "/make-call":
			dials = append(dials, r.URL.Query().Get("phone"))
		case "/change-status":
			statuses = append(statuses, r.URL.Query().Get("status"))
		}
	}))
	t.Cleanup(pbx.Close)
	ct := ctfake.NewServer(testCalltouchToken, "route-1")
	t.Cleanup(ct.Close)
	qolio := qfake.NewServer(testQolioToken)
	t.Cleanup(qolio.Close)

	ns := startExternalNATS(t)
	var rs []*testRelay
	for range 2 {
		cfg := testConfig(t)
		cfg.NATS.URL = ns.ClientURL()
		cfg.PBX.MakeCallURL = pbx.URL + "/make-call"
		cfg.PBX.ChangeStatusURL = pbx.URL + "/change-status"
		cfg.Calltouch.URL, cfg.Calltouch.Token, cfg.Calltouch.RouteKey = ct.URL(), testCalltouchToken, "route-1"
		cfg.Qolio.URL, cfg.Qolio.Token = qolio.URL(), testQolioToken
		rs = append(rs, startRelay(t, cfg))
	}
	a, b := rs[0], rs[1]
	_, tok := a.addOperator("Anna", "100", "1")

	requests := []struct {
		typ, id string
		data    any
	}{
		{wire.TypeSetStatus, "s1", wire.SetStatus{Status: wire.StatusBusy, At: time.Now()}},
		{wire.TypeDial, "d1", wire.Dial{Phone: "+7 912 345-67-89"}},
		{wire.TypeCallback, "c1", wire.Callback{Phone: "+7 912 345-67-80"}},
	}
	first := map[string]wire.Envelope{}
	onA := dialRaw(t, a.URL, tok)
	for _, rq := range requests {
		onA.send(rq.typ, rq.id, rq.data)
		env := onA.replies(rq.id)[rq.id]
		if env.Type != wire.TypeReply {
			t.Fatalf("%s on the first relay: %s %s", rq.typ, env.Type, env.Data)
		}
		first[rq.id] = env
	}
	onA.c.Close()
	// The same requests, sent again to the other relay.
	onB := dialRaw(t, b.URL, tok)
	defer onB.c.Close()
	for _, rq := range requests {
		onB.send(rq.typ, rq.id, rq.data)
		env := onB.replies(rq.id)[rq.id]
		if env.Type != first[rq.id].Type || string(env.Data) != string(first[rq.id].Data) {
			t.Errorf("%s again on the other relay: %s %s; the first answer was %s %s", rq.typ, env.Type, env.Data, first[rq.id].Type, first[rq.id].Data)
		}
	}
	// New requests on the other relay are carried out there.
	onB.send(wire.TypeDial, "d2", wire.Dial{Phone: "+7 912 345-67-81"})
	if env := onB.replies("d2")["d2"]; env.Type != wire.TypeReply {
		t.Errorf("a new dial on the other relay: %s %s", env.Type, env.Data)
	}

	// A transcript submitted to one relay and again to the other.
	sub := wire.TranscriptSubmit{ID: "t1", Format: wire.FormatText, Body: "Anna: Hello\nClient: Hi"}
	st1, body1 := a.postTranscript(tok, sub)
	st2, body2 := b.postTranscript(tok, sub)
	if st1 != http.StatusAccepted || st2 != http.StatusAccepted || string(body1) != string(body2) {
		t.Errorf("a transcript on both relays: %d %s, then %d %s", st1, body1, st2, body2)
	}

	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		mu.Lock()
		n := len(statuses)
		mu.Unlock()
		if (n >= 1 && qolio.Count() >= 1) || time.Now().After(deadline) {
			break
		}
	}
	time.Sleep(500 * time.Millisecond) // a second delivery would show
	mu.Lock()
	defer mu.Unlock()
	if len(dials) != 2 || len(statuses) != 1 || len(ct.Created()) != 1 || qolio.Count() != 1 {
		t.Errorf("carried out: dials %d, statuses %d (%v), callbacks %d, transcripts %d; want 2, 1, 1, 1",
			len(dials), len(statuses), statuses, len(ct.Created()), qolio.Count())
	}
}
