package relay_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pult/pult/agent"
	"github.com/pult/pult/agent/wire"
	"github.com/pult/pult/relay/config"
	"github.com/pult/pult/relay/operators"
	"github.com/pult/pult/relay/retailcrm"
	"github.com/pult/pult/relay/retailcrm/sim"
)

// crmRelay is a relay with retailCRM's strict simulator.
func crmRelay(t *testing.T, mod func(*config.Config)) (*testRelay, *sim.CRM, string) {
	t.Helper()
	crm := sim.NewCRM(testCRMKey)
	srv := httptest.NewServer(crm)
	t.Cleanup(srv.Close)
	crm.SetAccountURL(srv.URL)
	cfg := testConfig(t)
	cfg.RetailCRM.URL = srv.URL
	cfg.RetailCRM.APIKey = testCRMKey
	cfg.RetailCRM.UploadWait = config.Duration{Duration: time.Second}
	if mod != nil {
		mod(&cfg)
	}
	return startRelay(t, cfg), crm, srv.URL
}

func waitUntil(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); !ok(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func crmRequests(crm *sim.CRM, path string) []sim.Request {
	var out []sim.Request
	for _, r := range crm.Requests() {
		if r.Path == path && r.Status != 0 {
			out = append(out, r)
		}
	}
	return out
}

// `retailcrm register` sends exactly the integration module retailCRM's
// documentation describes, built from the config and the operators;
// `retailcrm show` reads it back.
func TestRetailCRMRegisterAndShow(t *testing.T) {
	checkGoroutines(t)
	r, crm, _ := crmRelay(t, func(c *config.Config) {
		c.PublicURL = "https://pult.example.com/"
		c.RetailCRM.LogoURL = "https://pult.example.com/logo.svg"
		c.RetailCRM.ForwardEvents = true
		c.RetailCRM.ExternalPhones = []config.ExternalPhone{{Site: "shop1", Phone: "+7 (499) 999-99-99"}, {Site: "shop2", Phone: "8 499 888 88 88"}}
	})
	ctx := context.Background()
	admin := r.admin()
	if _, err := admin.RetailCRMModule(ctx); err == nil || !strings.Contains(err.Error(), "retailcrm register") {
		t.Errorf("show before register: %v", err)
	}
	r.addOperator("Boris", "101", "2")
	r.addOperator("Anna", "100", "1")
	r.addOperator("Vera", "102", "3")
	if _, err := admin.RevokeOperator(ctx, "102"); err != nil {
		t.Fatal(err)
	}
	sent, err := admin.RegisterRetailCRM(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := retailcrm.IntegrationModule{
		Code: "pult", Active: true, Name: "pult", Logo: "https://pult.example.com/logo.svg",
		ClientID: testClientID, AccountURL: "https://pult.example.com",
		Telephony: &retailcrm.Telephony{
			MakeCallURL:         "https://pult.example.com/retailcrm/make-call",
			ChangeUserStatusURL: "https://pult.example.com/retailcrm/change-status",
			InputEventSupported: true, OutputEventSupported: true, HangupEventSupported: true,
			AdditionalCodes: []retailcrm.AdditionalCode{{UserID: "1", Code: "100"}, {UserID: "2", Code: "101"}},
			ExternalPhones:  []retailcrm.ExternalPhone{{SiteCode: "shop1", ExternalPhone: "+74999999999"}, {SiteCode: "shop2", ExternalPhone: "+74998888888"}},
		},
	}
	got, ok := crm.Module("pult")
	if !ok {
		t.Fatal("retailCRM has no module pult")
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("module in retailCRM (-want +got):\n%s", d)
	}
	if d := cmp.Diff(want, sent); d != "" {
		t.Errorf("module answered (-want +got):\n%s", d)
	}
	edits := crmRequests(crm, "/api/v5/integration-modules/pult/edit")
	if len(edits) != 1 || edits[0].Method != "POST" || edits[0].Header.Get("X-API-KEY") != testCRMKey {
		t.Fatalf("edit requests: %+v", edits)
	}
	shown, err := admin.RetailCRMModule(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(want, shown); d != "" {
		t.Errorf("show (-want +got):\n%s", d)
	}

	// Without public_url there is nothing to register.
	r2, _, _ := crmRelay(t, nil)
	if _, err := r2.admin().RegisterRetailCRM(ctx); err == nil || !strings.Contains(err.Error(), "public_url") {
		t.Errorf("register without public_url: %v", err)
	}
	plain := startRelay(t, testConfig(t))
	if _, err := plain.admin().RegisterRetailCRM(ctx); err == nil || !strings.Contains(err.Error(), "retailcrm.url") {
		t.Errorf("register without retailCRM: %v", err)
	}
}

// 120 calls a PBX uploads to the relay reach retailCRM in 3 calls/upload
// requests of at most 50; calls retailCRM had already (duplicateCalls)
// count as delivered.
func TestCallsUploadInBatches(t *testing.T) {
	checkGoroutines(t)
	r, crm, crmURL := crmRelay(t, nil)
	ctx := context.Background()
	date := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	pre := &retailcrm.Client{BaseURL: crmURL, APIKey: testCRMKey}
	if _, err := pre.UploadCalls(ctx, []retailcrm.UploadCall{
		{Date: date, Type: "in", Phone: "+79120000007", ExternalID: "h-7", Result: "answered"},
		{Date: date, Type: "in", Phone: "+79120000008", ExternalID: "h-8", Result: "answered"},
	}); err != nil {
		t.Fatal(err)
	}
	var calls []map[string]any
	for i := range 120 {
		calls = append(calls, map[string]any{
			"date": "2024-05-01 12:00:00", "type": "in", "phone": fmt.Sprintf("8 912 000-%04d", i), "code": "100", "userId": 1,
			"result": "answered", "duration": 60 + i, "durationWaiting": "5", "externalId": fmt.Sprintf("h-%d", i),
			"externalPhone": "+7 (499) 999-99-99",
		})
	}
	for _, part := range [][]map[string]any{calls[:50], calls[50:100], calls[100:]} {
		b, _ := json.Marshal(part)
		if status, body := r.postForm("/api/v5/telephony/calls/upload", url.Values{"calls": {string(b)}}, testPBXKey); status != 200 || body["success"] != true {
			t.Fatalf("upload to the relay: %d %v", status, body)
		}
	}
	waitUntil(t, "120 calls in retailCRM", func() bool { return len(crm.Uploads()) == 120 })
	reqs := crmRequests(crm, retailcrm.PathCallsUpload)
	if len(reqs) != 4 {
		t.Fatalf("calls/upload requests: %d, want 1 (ours) + 3 (the relay's)", len(reqs))
	}
	var sizes []int
	for _, q := range reqs[1:] {
		var got []map[string]any
		if err := json.Unmarshal([]byte(q.Form.Get("calls")), &got); err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, len(got))
	}
	if d := cmp.Diff([]int{50, 50, 20}, sizes); d != "" {
		t.Errorf("batch sizes (-want +got):\n%s", d)
	}
	var c9 retailcrm.UploadCall
	for _, c := range crm.Uploads() {
		if c.ExternalID == "h-9" {
			c9 = c
		}
	}
	want := retailcrm.UploadCall{Date: date, Type: "in", Phone: "+79120000009", Code: "100", UserID: "1", Result: "answered",
		Duration: 69, DurationWaiting: 5, ExternalID: "h-9", ExternalPhone: "+74999999999"}
	if d := cmp.Diff(want, c9); d != "" {
		t.Errorf("a call as retailCRM got it (-want +got):\n%s", d)
	}
	waitUntil(t, "the outbox to empty", func() bool {
		p, _ := r.admin().ListPending(ctx, 10)
		return len(p) == 0
	})
	if dead, _ := r.admin().ListDead(ctx, 10); len(dead) != 0 {
		t.Errorf("dead letters: %+v", dead)
	}
	if m := r.metrics(); !strings.Contains(m, "pult_relay_calls_uploaded_total 120") ||
		!strings.Contains(m, `pult_relay_outbox_attempts_total{kind="retailcrm.calls",outcome="ok"} 3`) {
		t.Errorf("metrics:\n%s", grep(m, "upload"))
	}
}

// forward_events passes a PBX's call events on to retailCRM (with
// normalised numbers, once per event however often the PBX retries);
// sync_status sets an operator's status in retailCRM, except one that came
// from retailCRM.
func TestForwardEventsAndSyncStatus(t *testing.T) {
	checkGoroutines(t)
	r, crm, _ := crmRelay(t, func(c *config.Config) {
		c.RetailCRM.ForwardEvents, c.RetailCRM.SyncStatus = true, true
	})
	_, tok := r.addOperator("Anna", "100", "1")
	anna := startAgent(t, r.URL, tok, nil)
	anna.waitOnline()

	in := map[string]any{"type": "in", "phone": "8 912 123 45 67", "codes": []string{"100", "555"}, "userIds": []int{1},
		"callExternalId": "c9", "externalPhone": "+7-499-999-99-99", "site": "shop1"}
	r.callEvent(in)
	r.callEvent(in) // the PBX retries
	anna.waitFor("ringing", callWith("c9", wire.CallRinging))
	waitUntil(t, "the in event in retailCRM", func() bool { return len(crm.Events()) == 1 })
	r.callEvent(map[string]any{"type": "answer", "phone": "+79121234567", "codes": []string{"100"}, "callExternalId": "c9"})
	hangup := map[string]any{"type": "hangup", "phone": "+79121234567", "codes": []string{"100"}, "callExternalId": "c9", "hangupStatus": "answered"}
	r.callEvent(hangup)
	r.callEvent(hangup)
	waitUntil(t, "the hangup in retailCRM", func() bool { return len(crm.Events()) == 2 })
	time.Sleep(300 * time.Millisecond)
	want := []retailcrm.CallEvent{
		{Phone: "+79121234567", Type: "in", Codes: []string{"100", "555"}, UserIDs: []string{"1"}, Site: "shop1", CallExternalID: "c9", ExternalPhone: "+74999999999"},
		{Phone: "+79121234567", Type: "hangup", Codes: []string{"100"}, CallExternalID: "c9", HangupStatus: "answered"},
	}
	if d := cmp.Diff(want, crm.Events()); d != "" {
		t.Errorf("events in retailCRM (-want +got):\n%s", d)
	}

	if _, err := anna.a.SetStatus(context.Background(), wire.StatusBusy); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "busy in retailCRM", func() bool { return crm.UserStatus("1") == "busy" })
	q := url.Values{"clientId": {testClientID}, "userId": {"1"}, "code": {"100"}, "status": {"dinner"}}
	if status, body := r.get("/retailcrm/change-status", q); status != 200 {
		t.Fatalf("change-status: %d %s", status, body)
	}
	anna.waitFor("dinner from the CRM", func(e agent.Event) bool { return e.Status != nil && e.Status.Status == wire.StatusDinner })
	time.Sleep(300 * time.Millisecond)
	if n := len(crmRequests(crm, "/api/v5/users/1/status")); n != 1 {
		t.Errorf("users/1/status requests: %d, want 1 (a status from the CRM is not sent back)", n)
	}
}

// A UIS call reaches retailCRM like any other: its events (forward_events)
// and, once finished, its history with what UIS measured.
func TestUISCallReachesRetailCRM(t *testing.T) {
	checkGoroutines(t)
	r, crm, _ := crmRelay(t, func(c *config.Config) {
		c.UIS.Token = uisToken
		c.UIS.RingUnassigned = true
		c.RetailCRM.ForwardEvents = true
		c.RetailCRM.UploadWait = config.Duration{Duration: 200 * time.Millisecond}
		c.RetailCRM.ExternalPhones = []config.ExternalPhone{{Site: "shop-msk", Phone: "+7 495 150-50-50"}}
	})
	_, tok := r.addOperatorWith(operators.NewOperator{Name: "Анна Петрова", Code: "101", UserID: "1", UISEmployeeID: "12345"})
	r.addOperatorWith(operators.NewOperator{Name: "Олег Смирнов", Code: "102", UserID: "2", UISEmployeeID: "12346"})
	anna := startAgent(t, r.URL, tok, nil)
	anna.waitOnline()
	start := time.Now()
	r.uis("incoming_call_started", uisFixture(t, "incoming_call_started.json"))
	e := anna.waitFor("ringing", callWith("uis-3061237823", wire.CallRinging))
	if e.Call.Site != "shop-msk" {
		t.Errorf("the line's shop is not on the card: %+v", e.Call)
	}
	waitUntil(t, "the in event", func() bool { return len(crm.Events()) == 1 })
	r.uis("conversation_started", uisFixture(t, "conversation_started.json"))
	waitUntil(t, "the answer's in event", func() bool { return len(crm.Events()) == 2 })
	r.uis("call_finished", uisFixture(t, "call_finished.json"))
	waitUntil(t, "the hangup", func() bool { return len(crm.Events()) == 3 })
	want := []retailcrm.CallEvent{
		{Phone: "+79121234567", Type: "in", Codes: []string{"101", "102"}, UserIDs: []string{"1", "2"}, Site: "shop-msk",
			CallExternalID: "uis-3061237823", ExternalPhone: "+74951505050"},
		{Phone: "+79121234567", Type: "in", Codes: []string{"101"}, UserIDs: []string{"1"}, Site: "shop-msk",
			CallExternalID: "uis-3061237823", ExternalPhone: "+74951505050"},
		{Phone: "+79121234567", Type: "hangup", Codes: []string{"101", "102"}, UserIDs: []string{"1", "2"}, Site: "shop-msk",
			CallExternalID: "uis-3061237823", ExternalPhone: "+74951505050", HangupStatus: "answered"},
	}
	if d := cmp.Diff(want, crm.Events()); d != "" {
		t.Errorf("events in retailCRM (-want +got):\n%s", d)
	}
	waitUntil(t, "the call's history", func() bool { return len(crm.Uploads()) == 1 })
	got := crm.Uploads()[0]
	if got.Date.Before(start.UTC().Add(-5*time.Second)) || got.Date.After(time.Now().UTC().Add(4*time.Hour)) {
		t.Errorf("date %v", got.Date)
	}
	got.Date = time.Time{}
	wantCall := retailcrm.UploadCall{Type: "in", Phone: "+79121234567", Code: "101", UserID: "1", Result: "answered",
		Duration: 208, DurationWaiting: 12, ExternalID: "uis-3061237823",
		RecordURL: "https://app.uiscom.ru/system/media/talk/3061237823/0b7e4ac2f1d9/", ExternalPhone: "+74951505050", Site: "shop-msk"}
	if d := cmp.Diff(wantCall, got); d != "" {
		t.Errorf("history in retailCRM (-want +got):\n%s", d)
	}

	// The relay missed a call's start (it was down): its end still makes
	// the history, though no card.
	r.uis("call_finished", setJSON(t, uisFixture(t, "call_finished.json"), map[string]any{"call_session_id": 999}))
	waitUntil(t, "the unseen call's history", func() bool { return len(crm.Uploads()) == 2 })
	if c := crm.Uploads()[1]; c.ExternalID != "uis-999" || c.Code != "101" || c.Result != "answered" || c.Duration != 208 {
		t.Errorf("unseen call's history: %+v", c)
	}
	if got := cardsOf(anna, "uis-999"); len(got) != 0 {
		t.Errorf("cards of a call whose start the relay missed: %v", got)
	}
	// UIS's retry of that end finds the call's record: still no card, and
	// the history once.
	r.uis("call_finished", setJSON(t, uisFixture(t, "call_finished.json"), map[string]any{"call_session_id": 999}))
	r.uis("incoming_call_started", setJSON(t, uisFixture(t, "incoming_call_started.json"), map[string]any{"call_session_id": 1000, "employee_ids": "12345"}))
	anna.waitFor("Anna rung by the next call", callWith("uis-1000", wire.CallRinging))
	if got := cardsOf(anna, "uis-999"); len(got) != 0 {
		t.Errorf("cards of a call whose start the relay missed, after a retry: %v", got)
	}
	time.Sleep(3 * 200 * time.Millisecond) // UploadWait: a second upload would be out
	if n := len(crm.Uploads()); n != 2 {
		t.Errorf("%d calls in the history, want 2", n)
	}
}
