package relay_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"

	"github.com/pult/pult/relay/eventtrace"
	"github.com/pult/pult/relay/operators"
)

// TestTraceEvents: with trace_events, the metrics listener serves each call
// event's times at every step, in order, by the PBX's call id (a
// retailCRM-style event and a UIS notification); a refused event is kept
// with the steps it reached.
func TestTraceEvents(t *testing.T) {
	checkGoroutines(t)
	cfg := testConfig(t)
	cfg.TraceEvents = 10
	cfg.UIS.Token, cfg.UIS.RingUnassigned = uisToken, true
	r := startRelay(t, cfg)
	_, tok := r.addOperatorWith(operators.NewOperator{Name: "Anna", Code: "100", UserID: "1", UISEmployeeID: "12345"})
	ahead := dialAhead(t, r.URL, tok)

	ring := map[string]any{"type": "in", "phone": "+79121234567", "codes": []string{"100"}, "callExternalId": "trace-1"}
	if status, body := r.callEvent(ring); status != http.StatusOK {
		t.Fatalf("ring: %d %v", status, body)
	}
	ahead.readCard()
	r.uis("incoming_call_started", uisFixture(t, "incoming_call_started.json"))
	if status, _ := r.postForm("/api/v5/telephony/call/event", url.Values{"event": {`{"type":"in"}`}}, "wrong-key"); status != http.StatusForbidden {
		t.Fatalf("a wrong key: %d", status)
	}

	resp, err := http.Get("http://" + r.srv.MetricsAddr() + "/debug/pult/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var evs []eventtrace.Event
	if err := json.NewDecoder(resp.Body).Decode(&evs); err != nil {
		t.Fatal(err)
	}
	if len(evs) != 3 || evs[0].ID != "trace-1" || evs[1].ID != "uis-3061237823" || evs[2].ID != "" {
		t.Fatalf("events %+v, want trace-1, the UIS call and the refused one", evs)
	}
	for _, e := range evs[:2] {
		for p := eventtrace.Received; p < eventtrace.NumPoints; p++ {
			if e.At[p] == 0 || (p > 0 && e.At[p] < e.At[p-1]) {
				t.Errorf("%s at point %d: %d (points %v), want every point, in order", e.ID, p, e.At[p], e.At)
			}
		}
	}
	refused := evs[2].At
	if refused[eventtrace.Received] == 0 || refused[eventtrace.Answered] == 0 || refused[eventtrace.Read] != 0 || refused[eventtrace.Sent] != 0 {
		t.Errorf("the refused event's points %v: want received and answered only", refused)
	}
}
