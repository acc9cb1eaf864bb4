package relay_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/pult/pult/agent/wire"
)

// With [nats] url the relay uses an external server through the same code
// path, and keeps working across its own restart.
func TestExternalNATS(t *testing.T) {
	checkGoroutines(t)
	ns := startExternalNATS(t)
	cfg := testConfig(t)
	cfg.NATS.URL = ns.ClientURL()
	cfg.DataDir = t.TempDir() // the admin socket's alone: JetStream is the external server's
	r := startRelay(t, cfg)
	_, token := r.addOperator("Anna", "100", "1")
	ta := startAgent(t, r.URL, token, nil)
	ta.waitOnline()
	r.callEvent(map[string]any{"type": "in", "phone": "+79121234567", "codes": []string{"100"}, "callExternalId": "ext-1"})
	ta.waitFor("card via external NATS", callWith("ext-1", wire.CallRinging))
	r = r.restart()
	r.callEvent(map[string]any{"type": "in", "phone": "+79121234567", "codes": []string{"100"}, "callExternalId": "ext-2"})
	ta.waitFor("card after relay restart", callWith("ext-2", wire.CallRinging))
	if n := len(ta.calls()); n != 2 {
		t.Errorf("%d cards, want 2", n)
	}
}

func TestCallsUploadAndMetrics(t *testing.T) {
	checkGoroutines(t)
	r := startRelay(t, testConfig(t))
	_, token := r.addOperator("Anna", "100", "1")
	ta := startAgent(t, r.URL, token, nil)
	ta.waitOnline()

	calls := `[{"date":"2026-11-21 10:00:00","type":"in","phone":"+79121234567","code":"100","result":"answered","duration":42,"durationWaiting":"5","externalId":"u1"},
	           {"date":"2026-11-21 10:05:00","type":"out","phone":"89161112233","code":"100","result":"no answer","externalId":"u2"}]`
	status, body := r.postForm("/api/v5/telephony/calls/upload", url.Values{"calls": {calls}}, testPBXKey)
	if status != 200 || body["success"] != true || body["processedCallsCount"] != float64(2) {
		t.Fatalf("upload: %d %v", status, body)
	}
	status, body = r.postForm("/api/v5/telephony/calls/upload", url.Values{"calls": {calls}}, testPBXKey)
	if status != 200 || fmt.Sprint(body["duplicateCalls"]) != "[u1 u2]" {
		t.Fatalf("re-upload: %d %v", status, body)
	}
	status, body = r.postForm("/api/v5/telephony/calls/upload", url.Values{"calls": {`[{"date":"yesterday","type":"in","phone":"+79121234567"}]`}}, testPBXKey)
	if status != 400 || body["success"] != false {
		t.Fatalf("bad upload: %d %v", status, body)
	}

	r.callEvent(map[string]any{"type": "in", "phone": "+79121234567", "codes": []string{"100"}, "callExternalId": "m1"})
	ta.waitFor("card", callWith("m1", wire.CallRinging))
	resp, err := http.Get("http://" + r.srv.MetricsAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		"pult_relay_connected_operators 1", `pult_relay_events_in_total{source="retailcrm"} 1`,
		`pult_relay_events_in_total{source="calls_upload"} 2`, "pult_relay_events_out_total 1",
		"pult_relay_delivery_latency_seconds_count 1", `pult_relay_outbox_depth{kind="pbx.status"} 0`,
		"pult_relay_outbox_oldest_job_age_seconds 0", `pult_relay_outbox_dead_letters{kind="pbx.status"} 0`,
		`pult_relay_outbox_dead_total{kind="pbx.status"} 0`, `pult_relay_outbox_attempts_total{kind="pbx.status",outcome="ok"} 0`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	resp, err = http.Get(r.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	var h map[string]string
	json.NewDecoder(resp.Body).Decode(&h)
	resp.Body.Close()
	if resp.StatusCode != 200 || h["status"] != "ok" {
		t.Errorf("healthz: %d %v", resp.StatusCode, h)
	}
}
