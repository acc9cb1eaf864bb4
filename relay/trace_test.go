package relay_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"

	"github.com/pult/pult/relay/eventtrace"
)

// TestTraceEvents: with trace_events, the metrics listener serves each call
// event's times at every step, in order, by the PBX's call id; a refused
// event is kept with the steps it reached.
func TestTraceEvents(t *testing.T) {
	checkGoroutines(t)
	cfg := testConfig(t)
	cfg.TraceEvents = 10
	r := startRelay(t, cfg)
	_, tok := r.addOperator("Anna", "100", "1")
	ahead := dialAhead(t, r.URL, tok)

	ring := map[string]any{"type": "in", "phone": "+79121234567", "codes": []string{"100"}, "callExternalId": "trace-1"}
	if status, body := r.callEvent(ring); status != http.StatusOK {
		t.Fatalf("ring: %d %v", status, body)
	}
	ahead.readCard()
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
	if len(evs) != 2 || evs[0].ID != "trace-1" || evs[1].ID != "" {
		t.Fatalf("events %+v, want trace-1 and the refused one", evs)
	}
	for p := eventtrace.Received; p < eventtrace.NumPoints; p++ {
		if evs[0].At[p] == 0 || (p > 0 && evs[0].At[p] < evs[0].At[p-1]) {
			t.Errorf("trace-1 at %s: %d (points %v), want every point, in order", eventtrace.Names[p], evs[0].At[p], evs[0].At)
		}
	}
	refused := evs[1].At
	if refused[eventtrace.Received] == 0 || refused[eventtrace.Answered] == 0 || refused[eventtrace.Read] != 0 || refused[eventtrace.Sent] != 0 {
		t.Errorf("the refused event's points %v: want received and answered only", refused)
	}
}
