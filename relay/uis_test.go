package relay_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pult/pult/agent"
	"github.com/pult/pult/agent/wire"
	"github.com/pult/pult/relay/admin"
	"github.com/pult/pult/relay/config"
	"github.com/pult/pult/relay/operators"
)

// uisToken is the channel token in relay/uis/testdata's fixtures, as UIS's
// own instructions leave it.
const uisToken = "токен из пункта 9"

func uisFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("uis", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// postUIS posts a UIS notification; query is appended to the URL as is.
func (r *testRelay) postUIS(event string, body []byte, query string) (int, map[string]any) {
	r.t.Helper()
	u := r.URL + "/hooks/uis/" + event
	if query != "" {
		u += "?" + query
	}
	resp, err := http.Post(u, "application/json", bytes.NewReader(body))
	if err != nil {
		r.t.Fatalf("POST %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		r.t.Fatalf("POST /hooks/uis/%s: answer is not JSON: %q", event, b)
	}
	return resp.StatusCode, out
}

func (r *testRelay) uis(event string, body []byte) {
	r.t.Helper()
	if status, out := r.postUIS(event, body, ""); status != 200 || out["success"] != true {
		r.t.Fatalf("UIS %s refused: %d %v", event, status, out)
	}
}

// setJSON rewrites fields of a JSON object body (nil deletes).
func setJSON(t *testing.T, body []byte, fields map[string]any) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	for k, v := range fields {
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	b, _ := json.Marshal(m)
	return b
}

// cardsOf returns the states of the cards an agent got for a call, in order.
func cardsOf(ta *testAgent, id string) []wire.CallState {
	var out []wire.CallState
	for _, e := range ta.calls() {
		if e.Call.ID == id {
			out = append(out, e.Call.State)
		}
	}
	return out
}

func uisWorld(t *testing.T, mod func(*config.Config)) (*testRelay, *testAgent, *testAgent) {
	t.Helper()
	cfg := testConfig(t)
	cfg.UIS.Token = uisToken
	if mod != nil {
		mod(&cfg)
	}
	r := startRelay(t, cfg)
	_, annaTok := r.addOperatorWith(operators.NewOperator{Name: "Анна Петрова", Code: "101", UserID: "1", UISEmployeeID: "12345"})
	_, olegTok := r.addOperatorWith(operators.NewOperator{Name: "Олег Смирнов", Code: "102", UserID: "2", UISEmployeeID: "12346"})
	anna, oleg := startAgent(t, r.URL, annaTok, nil), startAgent(t, r.URL, olegTok, nil)
	anna.waitOnline()
	oleg.waitOnline()
	return r, anna, oleg
}

func (r *testRelay) addOperatorWith(n operators.NewOperator) (admin.OperatorView, string) {
	r.t.Helper()
	added, err := r.admin().AddOperator(context.Background(), n)
	if err != nil {
		r.t.Fatalf("add operator %s: %v", n.Name, err)
	}
	return added.Operator, added.Token
}

// UIS's four notifications, as its templates fill them in, drive the same
// cards as retailCRM-style events: ringing for everyone (ring_unassigned),
// talking for the employee who answered, answered elsewhere for the other,
// then ended; a replayed notification publishes nothing.
func TestUISCallCards(t *testing.T) {
	checkGoroutines(t)
	r, anna, oleg := uisWorld(t, func(c *config.Config) { c.UIS.RingUnassigned = true })
	const id = "uis-3061237823"

	r.uis("incoming_call_started", uisFixture(t, "incoming_call_started.json"))
	e := anna.waitFor("Anna's ringing card", callWith(id, wire.CallRinging))
	c := e.Call
	if c.Direction != wire.DirectionIn || c.Phone != "+79121234567" || c.PhoneDisplay != "8 (912) 123-45-67" ||
		c.Line != "+74951505050" || c.LineDisplay != "8 (495) 150-50-50" {
		t.Errorf("card: %+v", c)
	}
	oleg.waitFor("Oleg's ringing card", callWith(id, wire.CallRinging))

	r.uis("conversation_started", uisFixture(t, "conversation_started.json"))
	e = anna.waitFor("Anna talking", callWith(id, wire.CallTalking))
	if e.Call.AnsweredBy == nil || !e.Call.AnsweredBy.You || e.Call.AnsweredBy.Code != "101" {
		t.Errorf("answered by: %+v", e.Call.AnsweredBy)
	}
	e = oleg.waitFor("Oleg: answered elsewhere", callWith(id, wire.CallAnsweredElsewhere))
	if e.Call.AnsweredBy == nil || e.Call.AnsweredBy.You || e.Call.AnsweredBy.Name != "Анна Петрова" {
		t.Errorf("answered by, on Oleg's card: %+v", e.Call.AnsweredBy)
	}
	// UIS retries a notification it thinks was lost: nothing new.
	r.uis("conversation_started", uisFixture(t, "conversation_started.json"))

	r.uis("call_finished", uisFixture(t, "call_finished.json"))
	anna.waitFor("Anna: ended", callWith(id, wire.CallEnded))
	r.uis("call_finished", uisFixture(t, "call_finished.json"))
	time.Sleep(300 * time.Millisecond)
	if got, want := cardsOf(anna, id), []wire.CallState{wire.CallRinging, wire.CallTalking, wire.CallEnded}; !equalStates(got, want) {
		t.Errorf("Anna's cards %v, want %v", got, want)
	}
	// The second "answered elsewhere" carries the end of the call.
	if got, want := cardsOf(oleg, id), []wire.CallState{wire.CallRinging, wire.CallAnsweredElsewhere, wire.CallAnsweredElsewhere}; !equalStates(got, want) {
		t.Errorf("Oleg's cards %v, want %v", got, want)
	}
	if m := r.metrics(); !strings.Contains(m, `pult_relay_events_in_total{source="uis"} 5`) {
		t.Errorf("metrics:\n%s", grep(m, "events_in"))
	}
}

func equalStates(a, b []wire.CallState) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// A call nobody answers, sent the way sloppy templates fill values in
// (numbers as strings, a single id for a list, placeholders left in,
// nulls), rings the employees it names and ends missed. Without
// ring_unassigned an incoming call naming nobody rings nobody; the card
// appears for whoever answers.
func TestUISMissedCallAndTolerantValues(t *testing.T) {
	checkGoroutines(t)
	r, anna, oleg := uisWorld(t, nil)
	in := setJSON(t, uisFixture(t, "incoming_call_started.json"), map[string]any{
		"call_session_id": "777", "employee_ids": "12345", "contact_phone_number": "8 (916) 123-45-67",
		"virtual_phone_number": 74951505050, "app_id": "{{app_id}}", "contact_full_name": nil,
	})
	r.uis("incoming_call_started", in)
	anna.waitFor("Anna ringing", callWith("uis-777", wire.CallRinging))
	fin := setJSON(t, uisFixture(t, "call_finished.json"), map[string]any{
		"call_session_id": 777, "is_lost": "true", "talk_time_duration": "0", "employee_ids": []any{"12345", 12346},
		"record_file_links": nil, "contact_phone_number": "79161234567",
	})
	r.uis("call_finished", fin)
	e := anna.waitFor("Anna: missed", callWith("uis-777", wire.CallMissed))
	if e.Call.PhoneDisplay != "8 (916) 123-45-67" || e.Call.AnsweredBy != nil {
		t.Errorf("missed card: %+v", e.Call)
	}

	// Nobody named, ring_unassigned off: recorded, no card until answered.
	r.uis("incoming_call_started", setJSON(t, uisFixture(t, "incoming_call_started.json"), map[string]any{"call_session_id": 888}))
	conv := setJSON(t, uisFixture(t, "conversation_started.json"), map[string]any{"call_session_id": 888, "employee_id": "12346"})
	r.uis("conversation_started", conv)
	oleg.waitFor("Oleg talking", callWith("uis-888", wire.CallTalking))
	fin = setJSON(t, uisFixture(t, "call_finished.json"), map[string]any{"call_session_id": 888, "employee_id": 12346,
		"employee_ids": nil, "first_answered_employee_id": nil, "last_answered_employee_id": nil,
		"first_talked_employee_id": nil, "last_talked_employee_id": nil})
	r.uis("call_finished", fin)
	oleg.waitFor("Oleg: ended", callWith("uis-888", wire.CallEnded))
	if got := cardsOf(anna, "uis-888"); len(got) != 0 {
		t.Errorf("Anna got cards of a call she never saw: %v", got)
	}

	// Outgoing: dialling out, then talking, then ended.
	r.uis("outgoing_call_started", uisFixture(t, "outgoing_call_started.json"))
	e = anna.waitFor("Anna dialling out", callWith("uis-3061240001", wire.CallRinging))
	if e.Call.Direction != wire.DirectionOut || e.Call.Phone != "+79161234567" {
		t.Errorf("outgoing card: %+v", e.Call)
	}
	r.uis("conversation_started", setJSON(t, uisFixture(t, "conversation_started.json"), map[string]any{
		"call_session_id": 3061240001, "direction": "out"}))
	anna.waitFor("Anna talking out", callWith("uis-3061240001", wire.CallTalking))
}

// Refusals: no token, a wrong one (in the body or the URL), an unknown
// event, an unusable body, a body too large; and UIS not configured.
func TestUISRefusals(t *testing.T) {
	checkGoroutines(t)
	r, anna, _ := uisWorld(t, nil)
	good := uisFixture(t, "incoming_call_started.json")
	noToken := setJSON(t, good, map[string]any{"ud_channel_token": nil})
	for _, tc := range []struct {
		name, event, query string
		body               []byte
		status             int
		field, want        string
	}{
		{"no token", "incoming_call_started", "", noToken, 401, "", "missing channel token"},
		{"wrong token in the body", "incoming_call_started", "", setJSON(t, good, map[string]any{"ud_channel_token": "guess"}), 403, "", "wrong channel token"},
		{"wrong token in the URL", "incoming_call_started", "token=guess", noToken, 403, "", "wrong channel token"},
		{"unknown event", "call_transferred", "", good, 404, "", "unknown UIS event"},
		{"no call_session_id", "incoming_call_started", "", setJSON(t, good, map[string]any{"call_session_id": nil}), 400, "call_session_id", "call_session_id"},
		{"template left unfilled", "incoming_call_started", "", uisFixture(t, "template_incoming_call_started.txt"), 400, "call_session_id", "call_session_id"},
		{"not JSON", "call_finished", "token=" + "%D1%82%D0%BE%D0%BA%D0%B5%D0%BD%20%D0%B8%D0%B7%20%D0%BF%D1%83%D0%BD%D0%BA%D1%82%D0%B0%209", []byte("[1,2]"), 400, "body", "JSON object"},
		{"direction contradicts the event", "outgoing_call_started", "", setJSON(t, good, map[string]any{"direction": "in"}), 400, "direction", "direction"},
		{"too large", "call_finished", "", append(append([]byte(`{"call_session_id":1,"x":"`), bytes.Repeat([]byte("a"), 70<<10)...), `"}`...), 413, "body", "larger than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, out := r.postUIS(tc.event, tc.body, tc.query)
			msg, _ := out["error"].(string)
			if status != tc.status || !strings.Contains(msg, tc.want) || (tc.field != "" && out["field"] != tc.field) {
				t.Errorf("got %d %v, want %d naming %q (field %q)", status, out, tc.status, tc.want, tc.field)
			}
		})
	}
	// The token in the URL is as good as in the body.
	if status, out := r.postUIS("incoming_call_started", setJSON(t, noToken, map[string]any{"employee_id": 12345}),
		"token=%D1%82%D0%BE%D0%BA%D0%B5%D0%BD%20%D0%B8%D0%B7%20%D0%BF%D1%83%D0%BD%D0%BA%D1%82%D0%B0%209"); status != 200 {
		t.Fatalf("token in the URL: %d %v", status, out)
	}
	anna.waitFor("card from a notification with the token in the URL", callWith("uis-3061237823", wire.CallRinging))

	plain := startRelay(t, testConfig(t))
	if status, out := plain.postUIS("incoming_call_started", good, ""); status != 404 || !strings.Contains(out["error"].(string), "[uis] token") {
		t.Errorf("UIS not configured: %d %v", status, out)
	}
	_ = agent.EventCall
}
