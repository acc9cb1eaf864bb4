package relay_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pult/pult/agent"
	"github.com/pult/pult/agent/wire"
	"github.com/pult/pult/relay"
	"github.com/pult/pult/relay/config"
	"github.com/pult/pult/relay/retailcrm"
	"github.com/pult/pult/relay/retailcrm/sim"
)

// world is a relay with a strict fake PBX and retailCRM, and two operators
// with connected agents: Anna (100, user 1) and Boris (101, user 2), who is
// the responsible manager of the client Ivan Petrov (+7 912 123-45-67).
type world struct {
	t           *testing.T
	r           *testRelay
	pbx         *sim.PBX
	crm         *sim.CRM
	anna, boris *testAgent
	annaTok     string
	// pbxDown makes the PBX answer 503 to that many change-status calls.
	pbxDown   atomic.Int32
	pbxFailed atomic.Int32
}

func newWorld(t *testing.T, mod func(*config.Config)) *world {
	t.Helper()
	w := &world{t: t, pbx: sim.NewPBX(testClientID), crm: sim.NewCRM(testCRMKey)}
	pbxSrv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/change-status" && w.pbxDown.Add(-1) >= 0 {
			w.pbxFailed.Add(1)
			http.Error(rw, "down for maintenance", http.StatusServiceUnavailable)
			return
		}
		w.pbx.ServeHTTP(rw, r)
	}))
	t.Cleanup(pbxSrv.Close)
	crmSrv := httptest.NewServer(w.crm)
	t.Cleanup(crmSrv.Close)
	w.crm.SetAccountURL(crmSrv.URL)
	if err := w.crm.AddClient("+7 (912) 123-45-67",
		retailcrm.Customer{ID: "77", FirstName: "Ivan", LastName: "Petrov", Email: "ivan@example.ru"},
		&retailcrm.Manager{ID: "2", FirstName: "Boris", LastName: "Orlov", Code: "101"}); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t)
	cfg.PBX.MakeCallURL = pbxSrv.URL + "/make-call"
	cfg.PBX.ChangeStatusURL = pbxSrv.URL + "/change-status"
	cfg.RetailCRM.URL = crmSrv.URL
	cfg.RetailCRM.APIKey = testCRMKey
	if mod != nil {
		mod(&cfg)
	}
	w.r = startRelay(t, cfg)
	_, w.annaTok = w.r.addOperator("Anna Smirnova", "100", "1")
	_, borisTok := w.r.addOperator("Boris Orlov", "101", "2")
	w.anna = startAgent(t, w.r.URL, w.annaTok, nil)
	w.boris = startAgent(t, w.r.URL, borisTok, nil)
	w.anna.waitOnline()
	w.boris.waitOnline()
	return w
}

func (w *world) event(ev map[string]any) map[string]any {
	w.t.Helper()
	status, body := w.r.callEvent(ev)
	if status != 200 || body["success"] != true {
		w.t.Fatalf("call event refused: %d %v", status, body)
	}
	return body
}

func TestIncomingCallCardWithManager(t *testing.T) {
	checkGoroutines(t)
	w := newWorld(t, nil)
	body := w.event(map[string]any{"type": "in", "phone": "8 912 123 45 67", "codes": []string{"100", "101", "555"},
		"callExternalId": "c1", "externalPhone": "+7-499-999-99-99", "site": "shop1"})
	if d := cmp.Diff([]any{"555"}, body["notExistCodes"]); d != "" {
		t.Errorf("notExistCodes (-want +got):\n%s", d)
	}
	e := w.anna.waitFor("ringing card with the manager", func(e agent.Event) bool {
		return e.Kind == agent.EventCall && e.Call.ID == "c1" && e.Call.ManagerState == wire.ManagerFound
	})
	c := e.Call
	if c.State != wire.CallRinging || c.Direction != wire.DirectionIn || c.Phone != "+79121234567" ||
		c.PhoneDisplay != "8 (912) 123-45-67" || c.Line != "+74999999999" || c.Site != "shop1" {
		t.Errorf("card: %+v", c)
	}
	if c.Client == nil || c.Client.Name != "Petrov Ivan" || c.Client.ID != "77" {
		t.Errorf("client: %+v", c.Client)
	}
	if c.Manager == nil || c.Manager.Name != "Orlov Boris" || c.Manager.Code != "101" || !c.Manager.Free || c.Manager.You {
		t.Errorf("manager on Anna's card: %+v", c.Manager)
	}
	if c.Links == nil || c.Links.Customer == "" {
		t.Errorf("links: %+v", c.Links)
	}
	b := w.boris.waitFor("Boris's card", func(e agent.Event) bool {
		return e.Kind == agent.EventCall && e.Call.ID == "c1" && e.Call.ManagerState == wire.ManagerFound
	})
	if !b.Call.Manager.You {
		t.Error("Boris's card does not say the manager is him")
	}
	// The CRM was asked exactly as retailCRM's API wants it.
	reqs := w.crm.Requests()
	if len(reqs) != 1 {
		t.Fatalf("CRM got %d requests, want 1 (one lookup per number, cached)", len(reqs))
	}
	q := reqs[0]
	if q.Method != "GET" || q.Path != "/api/v5/telephony/manager" || q.Query.Get("phone") != "+79121234567" ||
		q.Query.Get("details") != "1" || q.Header.Get("X-API-KEY") != testCRMKey || q.Query.Get("apiKey") != "" {
		t.Errorf("CRM request: %s %s %v key=%q", q.Method, q.Path, q.Query, q.Header.Get("X-API-KEY"))
	}

	// Boris answers: Anna sees "answered elsewhere" by Boris; Boris talks.
	w.event(map[string]any{"type": "answer", "phone": "+79121234567", "codes": []string{"101"}, "callExternalId": "c1"})
	e = w.anna.waitFor("answered elsewhere", callWith("c1", wire.CallAnsweredElsewhere))
	if e.Call.AnsweredBy == nil || e.Call.AnsweredBy.Code != "101" || e.Call.AnsweredBy.Name != "Boris Orlov" || e.Call.AnsweredBy.You {
		t.Errorf("answeredBy on Anna's card: %+v", e.Call.AnsweredBy)
	}
	e = w.boris.waitFor("talking", callWith("c1", wire.CallTalking))
	if e.Call.AnsweredAt == nil || !e.Call.AnsweredBy.You {
		t.Errorf("Boris's talking card: %+v", e.Call)
	}
	w.event(map[string]any{"type": "hangup", "phone": "+79121234567", "codes": []string{"101"}, "callExternalId": "c1", "hangupStatus": "answered"})
	e = w.boris.waitFor("ended", callWith("c1", wire.CallEnded))
	if e.Call.EndedAt == nil || e.Call.HangupStatus != "answered" {
		t.Errorf("ended card: %+v", e.Call)
	}

	// A second call from the same number uses the cached manager: it is on
	// the very first card, and the CRM is not asked again.
	w.event(map[string]any{"type": "in", "phone": "+79121234567", "codes": []string{"100"}, "callExternalId": "c2"})
	e = w.anna.waitFor("second call", func(e agent.Event) bool { return e.Kind == agent.EventCall && e.Call.ID == "c2" })
	if e.Call.ManagerState != wire.ManagerFound {
		t.Errorf("cached manager not on the first card: %s", e.Call.ManagerState)
	}
	if n := w.crm.Count(); n != 1 {
		t.Errorf("CRM asked %d times, want 1", n)
	}
	// Nobody answers: missed.
	w.event(map[string]any{"type": "hangup", "phone": "+79121234567", "codes": []string{"100"}, "callExternalId": "c2", "hangupStatus": "no answered"})
	w.anna.waitFor("missed", callWith("c2", wire.CallMissed))
}

func TestSlowCRMDoesNotDelayTheCard(t *testing.T) {
	checkGoroutines(t)
	w := newWorld(t, nil)
	w.crm.SetDelay(1500 * time.Millisecond)
	start := time.Now()
	w.event(map[string]any{"type": "in", "phone": "+79121234567", "codes": []string{"100"}, "callExternalId": "slow"})
	first := w.anna.waitFor("first card", func(e agent.Event) bool { return e.Kind == agent.EventCall && e.Call.ID == "slow" })
	if took := time.Since(start); took > time.Second {
		t.Errorf("the card took %s with a slow CRM", took)
	}
	if first.Call.ManagerState != wire.ManagerPending {
		t.Errorf("first card manager state %s, want pending", first.Call.ManagerState)
	}
	upd := w.anna.waitFor("manager update", func(e agent.Event) bool {
		return e.Kind == agent.EventCall && e.Call.ID == "slow" && e.Call.ManagerState == wire.ManagerFound
	})
	if upd.Call.State != wire.CallRinging || upd.Call.Manager.Name != "Orlov Boris" {
		t.Errorf("update: %+v", upd.Call)
	}
}

func TestFailingCRMStillShowsTheCard(t *testing.T) {
	checkGoroutines(t)
	w := newWorld(t, nil)
	w.crm.SetFailure(503)
	w.event(map[string]any{"type": "in", "phone": "+79121234567", "codes": []string{"100"}, "callExternalId": "down"})
	w.anna.waitFor("card", callWith("down", wire.CallRinging))
	w.anna.waitFor("manager unavailable", func(e agent.Event) bool {
		return e.Kind == agent.EventCall && e.Call.ID == "down" && e.Call.ManagerState == wire.ManagerUnavailable
	})
}

// A number retailCRM does not know (its 404 "Not found" to the lookup) is no
// failure: the card says "no responsible manager" (none, not unavailable),
// and the relay logs it at debug level only, without the number.
func TestUnknownNumberHasNoManager(t *testing.T) {
	checkGoroutines(t)
	crm := sim.NewCRM(testCRMKey)
	crmSrv := httptest.NewServer(crm)
	t.Cleanup(crmSrv.Close)
	crm.SetAccountURL(crmSrv.URL)
	cfg := testConfig(t)
	cfg.RetailCRM.URL = crmSrv.URL
	cfg.RetailCRM.APIKey = testCRMKey
	var logs lockedBuffer // besides relayOutput, which TestMain checks for numbers
	r := startRelayWith(t, cfg, func(c config.Config) *relay.Server {
		own := slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})
		return relay.New(c, slog.New(teeHandler{relayLogger(t).Handler(), own}))
	})
	_, tok := r.addOperator("Anna Smirnova", "100", "1")
	anna := startAgent(t, r.URL, tok, nil)
	anna.waitOnline()
	before := len(logs.String()) // what the start logged (a warning about TLS, say) is not this test's

	const number = "+79995550123"
	if status, body := r.callEvent(map[string]any{"type": "in", "phone": number, "codes": []string{"100"}, "callExternalId": "unknown"}); status != 200 {
		t.Fatalf("call event: %d %v", status, body)
	}
	e := anna.waitFor("no responsible manager", func(e agent.Event) bool {
		return e.Kind == agent.EventCall && e.Call.ID == "unknown" && e.Call.ManagerState != wire.ManagerPending
	})
	if e.Call.ManagerState != wire.ManagerNone || e.Call.Manager != nil || e.Call.Client != nil {
		t.Errorf("card of an unknown number: manager state %s, manager %+v, client %+v; want none", e.Call.ManagerState, e.Call.Manager, e.Call.Client)
	}
	if reqs := crmRequests(crm, retailcrm.PathManager); len(reqs) != 1 || reqs[0].Status != http.StatusNotFound {
		t.Fatalf("retailCRM was not asked once (and answered 404): %+v", reqs)
	}
	if status, body := r.callEvent(map[string]any{"type": "hangup", "phone": number, "codes": []string{"100"}, "callExternalId": "unknown", "hangupStatus": "no answered"}); status != 200 {
		t.Fatalf("hangup: %d %v", status, body)
	}
	e = anna.waitFor("missed", callWith("unknown", wire.CallMissed))
	if e.Call.ManagerState != wire.ManagerNone {
		t.Errorf("missed card: manager state %s, want none", e.Call.ManagerState)
	}

	// The lookup's outcome was logged, at debug level, and nothing about
	// the call above that.
	var lines []map[string]any
	debug := false
	for _, l := range strings.Split(strings.TrimSpace(logs.String()[before:]), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		lines = append(lines, m)
		if m["level"] == "WARN" || m["level"] == "ERROR" {
			t.Errorf("logged at %s: %s", m["level"], l)
		}
		if m["level"] == "DEBUG" && m["call"] != nil && strings.Contains(fmt.Sprint(m["msg"]), "responsible manager") {
			debug = true
		}
		if strings.Contains(l, strings.TrimPrefix(number, "+")[1:]) {
			t.Errorf("the log holds the number: %s", l)
		}
	}
	if !debug {
		t.Errorf("no debug line about the lookup's outcome in %d lines:\n%s", len(lines), logs.String()[before:])
	}
}

func TestStatusReachesPBXAndCRMStatusReachesOperator(t *testing.T) {
	checkGoroutines(t)
	w := newWorld(t, nil)
	ctx := context.Background()
	st, err := w.anna.a.SetStatus(ctx, wire.StatusBusy)
	if err != nil || st.Status != wire.StatusBusy {
		t.Fatalf("SetStatus: %+v %v", st, err)
	}
	reqs, err := w.pbx.Wait(ctx, sim.KindChangeStatus, 1)
	if err != nil {
		t.Fatal(err)
	}
	want := url.Values{"clientId": {testClientID}, "userId": {"1"}, "code": {"100"}, "status": {"busy"}}
	if d := cmp.Diff(want, reqs[0].Query); d != "" || reqs[0].Err != "" {
		t.Errorf("PBX change-status query (-want +got):\n%s %s", d, reqs[0].Err)
	}
	w.anna.waitFor("status event", func(e agent.Event) bool {
		return e.Kind == agent.EventStatus && e.Status.Status == wire.StatusBusy && e.Status.Source == "agent"
	})

	// The CRM changes Anna's status: her agent hears it, the PBX too.
	q := url.Values{"clientId": {testClientID}, "userId": {"1"}, "code": {"100"}, "status": {"dinner"}}
	if status, body := w.r.get("/retailcrm/change-status", q); status != 200 {
		t.Fatalf("change-status: %d %s", status, body)
	}
	w.anna.waitFor("CRM status", func(e agent.Event) bool {
		return e.Kind == agent.EventStatus && e.Status.Status == wire.StatusDinner && e.Status.Source == "crm"
	})
	if _, err := w.pbx.Wait(ctx, sim.KindChangeStatus, 2); err != nil {
		t.Fatal(err)
	}
	ops, _ := w.r.admin().ListOperators(ctx)
	if ops[0].Status != wire.StatusDinner {
		t.Errorf("listed status %s", ops[0].Status)
	}
}

func TestStatusOutboxRetriesPBXFailures(t *testing.T) {
	checkGoroutines(t)
	// A PBX that is down at first: the outbox retries until it answers.
	w := newWorld(t, nil)
	w.pbxDown.Store(2)
	if _, err := w.anna.a.SetStatus(context.Background(), wire.StatusBreak); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	reqs, err := w.pbx.Wait(ctx, sim.KindChangeStatus, 1)
	if err != nil {
		t.Fatalf("after two 503s the status never got through: %v", err)
	}
	if n := w.pbxFailed.Load(); n != 2 {
		t.Errorf("PBX failed %d times before success, want 2", n)
	}
	if reqs[0].Query.Get("status") != "break" {
		t.Errorf("retry sent %v", reqs[0].Query)
	}
	time.Sleep(300 * time.Millisecond)
	if n := len(w.pbx.Calls()); n != 1 {
		t.Errorf("PBX got the status %d times after success, want once", n)
	}
}

func TestOperatorOfflineWithoutAgent(t *testing.T) {
	checkGoroutines(t)
	w := newWorld(t, nil)
	w.boris.stop()
	deadline := time.Now().Add(5 * time.Second)
	for {
		ops, _ := w.r.admin().ListOperators(context.Background())
		if ops[1].Status == wire.StatusOffline && ops[0].Status == wire.StatusFree {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("statuses %s/%s, want free/offline", ops[0].Status, ops[1].Status)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestDial(t *testing.T) {
	checkGoroutines(t)
	w := newWorld(t, nil)
	ctx := context.Background()

	res, err := w.anna.a.Dial(ctx, "8 (912) 123-45-67")
	if err != nil || res.Phone != "+79121234567" || res.Display != "8 (912) 123-45-67" {
		t.Fatalf("Dial: %+v %v", res, err)
	}
	reqs, _ := w.pbx.Wait(ctx, sim.KindMakeCall, 1)
	want := url.Values{"clientId": {testClientID}, "code": {"100"}, "phone": {"+79121234567"}, "userId": {"1"}}
	if d := cmp.Diff(want, reqs[0].Query); d != "" || reqs[0].Err != "" {
		t.Errorf("make-call query (-want +got):\n%s %s", d, reqs[0].Err)
	}

	w.pbx.SetMakeCallStatus(500)
	_, err = w.anna.a.Dial(ctx, "+79121234567")
	var we *wire.Error
	if !errors.As(err, &we) || we.Code != wire.ErrPBXRefused || we.HTTPStatus != 500 {
		t.Fatalf("PBX 500: %v (HTTP %d), want %s", err, we.HTTPStatus, wire.ErrPBXRefused)
	}
	w.pbx.SetMakeCallStatus(200)

	w.pbx.SetHang(true)
	start := time.Now()
	_, err = w.anna.a.Dial(ctx, "+79121234567")
	w.pbx.SetHang(false)
	if !errors.As(err, &we) || we.Code != wire.ErrPBXTimeout {
		t.Fatalf("PBX hangs: %v, want %s", err, wire.ErrPBXTimeout)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("timeout took %s", took)
	}

	// The CRM's phone icon: forwarded the same way, and Anna is told.
	q := url.Values{"clientId": {testClientID}, "code": {"100"}, "phone": {"+79161112233"}, "userId": {"1"}}
	if status, body := w.r.get("/retailcrm/make-call", q); status != 200 {
		t.Fatalf("CRM make-call: %d %s", status, body)
	}
	e := w.anna.waitFor("dialing notice", func(e agent.Event) bool { return e.Kind == agent.EventNotice && e.Notice.Kind == wire.NoticeDialing })
	if e.Notice.Text == "" || e.Notice.Phone == "" {
		t.Errorf("notice: %+v", e.Notice)
	}
	reqs, _ = w.pbx.Wait(ctx, sim.KindMakeCall, 4)
	if got := reqs[3].Query.Get("phone"); got != "+79161112233" {
		t.Errorf("forwarded phone %q", got)
	}
	// A refusal reaches Anna with its code, for her app to say in her
	// language, and in English for an app that does not know it.
	w.pbx.SetMakeCallStatus(403)
	if status, body := w.r.get("/retailcrm/make-call", q); status == 200 {
		t.Fatalf("CRM make-call refused by the PBX: %d %s", status, body)
	}
	w.pbx.SetMakeCallStatus(200)
	e = w.anna.waitFor("dial_failed notice", func(e agent.Event) bool { return e.Kind == agent.EventNotice && e.Notice.Kind == wire.NoticeDialFailed })
	if n := e.Notice; n.Phone != "+79161112233" || n.Error == nil || n.Error.Code != wire.ErrPBXRefused || n.Error.HTTPStatus != 403 ||
		!strings.Contains(n.Text, "refused") {
		t.Errorf("dial_failed notice: %+v (error %+v)", n, n.Error)
	}
}

func TestDialWhileOfflineFailsAtOnce(t *testing.T) {
	checkGoroutines(t)
	r := startRelay(t, testConfig(t))
	_, token := r.addOperator("Anna", "100", "1")
	r.stop()
	ta := startAgent(t, r.URL, token, nil)
	start := time.Now()
	_, err := ta.a.Dial(context.Background(), "+79121234567")
	if !errors.Is(err, agent.ErrOffline) || time.Since(start) > 100*time.Millisecond {
		t.Fatalf("Dial offline: %v after %s", err, time.Since(start))
	}
}
