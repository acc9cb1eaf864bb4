package sim

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/pult/pult/relay/retailcrm"
)

const testKey = "sim-key"

var (
	anna  = retailcrm.Manager{ID: "12", FirstName: "Анна", LastName: "Смирнова", Patronymic: "Игоревна", Email: "anna@example.ru", Code: "100"}
	olga  = retailcrm.Customer{ID: "3456", FirstName: "Ольга", LastName: "Кузнецова", Email: "olga@example.ru", Phones: []string{"+7 (912) 123-45-67"}}
	ivan  = retailcrm.Customer{ID: "77", FirstName: "Иван", LastName: "Орлов"}
	nomgr = retailcrm.Customer{ID: "78", FirstName: "Пётр"}
)

func newCRM(t *testing.T) (*CRM, *retailcrm.Client, string) {
	t.Helper()
	crm := NewCRM(testKey)
	crm.SetAccountURL("https://demo.retailcrm.ru/")
	for _, c := range []struct {
		phone string
		cu    retailcrm.Customer
		m     *retailcrm.Manager
	}{
		{"89121234567", olga, &anna},
		{"+7 495 111-22-33", ivan, &retailcrm.Manager{ID: "13", FirstName: "Без", LastName: "Кода"}},
		{"+7 903 000-00-01", nomgr, nil},
	} {
		if err := crm.AddClient(c.phone, c.cu, c.m); err != nil {
			t.Fatal(err)
		}
	}
	srv := NewCRMServer(crm)
	t.Cleanup(srv.Close)
	return crm, &retailcrm.Client{BaseURL: srv.URL, APIKey: testKey, HTTP: srv.Client()}, srv.URL
}

type rawAnswer struct {
	status int
	header http.Header
	body   map[string]any
}

func send(t *testing.T, method, u string, header map[string]string, body url.Values) rawAnswer {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = strings.NewReader(body.Encode())
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	a := rawAnswer{status: resp.StatusCode, header: resp.Header}
	if err := json.NewDecoder(resp.Body).Decode(&a.body); err != nil {
		t.Fatalf("answer is not JSON: %v", err)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q", ct)
	}
	return a
}

func TestCRMManager(t *testing.T) {
	crm, client, _ := newCRM(t)
	ctx := context.Background()

	got, err := client.Manager(ctx, "+79121234567")
	if err != nil {
		t.Fatal(err)
	}
	want := &retailcrm.ManagerResult{
		Manager:  &anna,
		Customer: &olga,
		Links: retailcrm.Links{
			Customer: "https://demo.retailcrm.ru/customers/3456",
			NewOrder: "https://demo.retailcrm.ru/orders/add?customerId=3456",
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got)\n%s", diff)
	}

	// The manager is not free: the client asks with ignoreStatus=1, so
	// retailCRM still names them (without it, the client only; see
	// TestCRMManagerStatusRule).
	if err := crm.SetUserStatus("12", retailcrm.StatusDinner); err != nil {
		t.Fatal(err)
	}
	got, err = client.Manager(ctx, "8 (912) 123-45-67")
	if err != nil {
		t.Fatal(err)
	}
	if got.Manager == nil || got.Manager.ID != "12" || got.Customer == nil {
		t.Errorf("busy manager: %+v", got)
	}

	// A manager without an extension code is never returned.
	got, err = client.Manager(ctx, "+74951112233")
	if err != nil || got.Manager != nil || got.Customer == nil || got.Customer.ID != "77" {
		t.Errorf("manager without code: %+v, %v", got, err)
	}
	// No manager, and unknown numbers.
	got, err = client.Manager(ctx, "+79030000001")
	if err != nil || got.Manager != nil || got.Customer == nil {
		t.Errorf("client without manager: %+v, %v", got, err)
	}
	// An unknown number is retailCRM's 404 "Not found": no client, no error.
	got, err = client.Manager(ctx, "+79990000000")
	if err != nil || got.Manager != nil || got.Customer != nil {
		t.Errorf("unknown number: %+v, %v", got, err)
	}
	got, err = client.Manager(ctx, "anonymous")
	if err != nil || got.Manager != nil || got.Customer != nil {
		t.Errorf("hidden number: %+v, %v", got, err)
	}

	reqs := crm.Requests()
	if len(reqs) != 6 || crm.Count() != 6 {
		t.Fatalf("recorded %d requests", len(reqs))
	}
	r := reqs[0]
	if r.Method != "GET" || r.Path != "/api/v5/telephony/manager" || r.Header.Get("X-API-KEY") != testKey || r.Status != 200 {
		t.Errorf("recorded %+v", r)
	}
	if diff := cmp.Diff(url.Values{"phone": {"+79121234567"}, "details": {"1"}, "ignoreStatus": {"1"}}, r.Query); diff != "" {
		t.Errorf("query (-want +got)\n%s", diff)
	}
}

func TestCRMManagerQueryVariants(t *testing.T) {
	crm, _, base := newCRM(t)
	if err := crm.SetUserStatus("12", retailcrm.StatusBusy); err != nil {
		t.Fatal(err)
	}
	key := map[string]string{"X-API-KEY": testKey}
	u := base + "/api/v5/telephony/manager?"

	a := send(t, "GET", u+"phone=%2B79121234567&details=0&ignoreStatus=1", key, nil)
	if a.status != 200 || a.body["customer"] != nil {
		t.Errorf("details=0: %d %v", a.status, a.body)
	}
	m, _ := a.body["manager"].(map[string]any)
	if m["code"] != "100" || m["firstName"] != nil {
		t.Errorf("details=0 manager: %v", a.body)
	}
	if id, ok := m["id"].(float64); !ok || id != 12 {
		t.Errorf("manager id should be a JSON number like retailCRM's: %v", m["id"])
	}
	a = send(t, "GET", u+"phone=%2B79121234567&details=1&ignoreStatus=0", key, nil)
	if a.status != 200 || a.body["manager"] != nil || a.body["customer"] == nil {
		t.Errorf("busy manager with details: %d %v", a.status, a.body)
	}
}

func TestCRMRefusals(t *testing.T) {
	_, _, base := newCRM(t)
	key := map[string]string{"X-API-KEY": testKey}
	mgr := base + "/api/v5/telephony/manager"
	ev, err := retailcrm.EncodeCallEvent(retailcrm.CallEvent{Phone: "+79121234567", Type: "in", Codes: []string{"100"}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, method, url string
		header            map[string]string
		body              url.Values
		status            int
		msg               string
		errField          string
	}{
		{"no key", "GET", mgr + "?phone=1&details=1", nil, nil, 401, `"apiKey" is missing.`, ""},
		{"wrong key", "GET", mgr + "?phone=1&details=1", map[string]string{"X-API-KEY": "nope"}, nil, 403, `Wrong "apiKey" value.`, ""},
		{"key in URL", "GET", mgr + "?phone=1&details=1&apiKey=" + testKey, nil, nil, 400, "", ""},
		{"key in URL and header", "GET", mgr + "?phone=1&apiKey=" + testKey, key, nil, 400, "", ""},
		{"POST to manager", "POST", mgr, key, url.Values{"phone": {"1"}}, 405, "", ""},
		{"unknown path", "GET", base + "/api/v5/telephony/managers?phone=1", key, nil, 404, "Not found", ""},
		{"trailing slash", "GET", mgr + "/?phone=1", key, nil, 404, "", ""},
		{"no phone", "GET", mgr + "?details=1", key, nil, 400, "Errors in the input parameters", "phone"},
		{"blank phone", "GET", mgr + "?phone=+&details=1", key, nil, 400, "", "phone"},
		{"long phone", "GET", mgr + "?details=1&phone=" + strings.Repeat("1", 65), key, nil, 400, "", "phone"},
		{"details=true", "GET", mgr + "?phone=1&details=true", key, nil, 400, "", "details"},
		{"details empty", "GET", mgr + "?phone=1&details=", key, nil, 400, "", "details"},
		{"ignoreStatus=2", "GET", mgr + "?phone=1&ignoreStatus=2", key, nil, 400, "", "ignoreStatus"},
		{"unknown param", "GET", mgr + "?phone=1&detail=1", key, nil, 400, "", "detail"},
		{"two phones", "GET", mgr + "?phone=1&phone=2", key, nil, 400, "", "phone"},
		{"GET event", "GET", base + "/api/v5/telephony/call/event?" + ev.Encode(), key, nil, 405, "", ""},
		{"event in URL", "POST", base + "/api/v5/telephony/call/event?" + ev.Encode(), key, url.Values{}, 400, "", ""},
		{"bad event", "POST", base + "/api/v5/telephony/call/event", key, url.Values{"event": {`{"type":"ring","phone":"1"}`}}, 400, "", "type"},
		{"pult's answer event", "POST", base + "/api/v5/telephony/call/event", key, url.Values{"event": {`{"type":"answer","phone":"1"}`}}, 400, "", "type"},
		{"no event", "POST", base + "/api/v5/telephony/call/event", key, url.Values{"evnt": {"{}"}}, 400, "", "event"},
		{"bad upload", "POST", base + "/api/v5/telephony/calls/upload", key, url.Values{"calls": {`[{"type":"in","phone":"1"}]`}}, 400, "", "calls[0].date"},
		{"bad status", "POST", base + "/api/v5/users/12/status", key, url.Values{"status": {"offline"}}, 400, "", "status"},
		{"bad user", "POST", base + "/api/v5/users/abc/status", key, url.Values{"status": {"free"}}, 404, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := send(t, tt.method, tt.url, tt.header, tt.body)
			if a.status != tt.status {
				t.Errorf("status %d, want %d: %v", a.status, tt.status, a.body)
			}
			if a.body["success"] != false {
				t.Errorf("success = %v", a.body["success"])
			}
			if tt.msg != "" && a.body["errorMsg"] != tt.msg {
				t.Errorf("errorMsg %q, want %q", a.body["errorMsg"], tt.msg)
			}
			if tt.errField != "" {
				errs, _ := a.body["errors"].(map[string]any)
				if _, ok := errs[tt.errField]; !ok {
					t.Errorf("errors %v lack %q", a.body["errors"], tt.errField)
				}
			}
		})
	}
	// Unexpected content type.
	req, _ := http.NewRequest("POST", base+"/api/v5/telephony/call/event", strings.NewReader(`{"event":{}}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-API-KEY", testKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Errorf("JSON body: status %d", resp.StatusCode)
	}
	// An oversized body.
	big := send(t, "POST", base+"/api/v5/telephony/call/event", key, url.Values{"event": {strings.Repeat("x", 2<<20)}})
	if big.status != 413 || !strings.Contains(big.body["errorMsg"].(string), "exceeds") {
		t.Errorf("2 MiB body: %d %v", big.status, big.body)
	}
	// The client's typed error for a wrong key.
	c := &retailcrm.Client{BaseURL: base, APIKey: "nope"}
	_, err = c.Manager(context.Background(), "1")
	var apiErr *retailcrm.APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 403 || apiErr.Msg != `Wrong "apiKey" value.` {
		t.Errorf("wrong key: %v", err)
	}
}

func TestCRMKnobs(t *testing.T) {
	crm, client, _ := newCRM(t)
	ctx := context.Background()

	crm.SetFailure(http.StatusServiceUnavailable)
	_, err := client.Manager(ctx, "+79121234567")
	var apiErr *retailcrm.APIError
	if !errors.As(err, &apiErr) || !apiErr.Temporary() || apiErr.RetryAfter != time.Second {
		t.Errorf("503: %v", err)
	}
	crm.SetFailure(http.StatusInternalServerError)
	if _, err = client.Manager(ctx, "+79121234567"); !errors.As(err, &apiErr) || apiErr.StatusCode != 500 || !apiErr.Temporary() {
		t.Errorf("500: %v", err)
	}
	crm.SetFailure(0)

	crm.SetDelay(80 * time.Millisecond)
	start := time.Now()
	if _, err := client.Manager(ctx, "+79121234567"); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 80*time.Millisecond {
		t.Errorf("answered after %v despite the delay", d)
	}
	crm.SetDelay(0)

	crm.SetHang(true)
	hctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := client.Manager(hctx, "+79121234567"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("hang: %v", err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
	defer wcancel()
	reqs, err := crm.Wait(wctx, 4)
	if err != nil {
		t.Fatal(err)
	}
	if got := reqs[3].Status; got != StatusClientGone {
		t.Errorf("abandoned request recorded with status %d", got)
	}
	crm.SetHang(false)

	short, scancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer scancel()
	if _, err := crm.Wait(short, 100); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Wait for too many: %v", err)
	}
}

func TestCRMCallEventAndUpload(t *testing.T) {
	crm, _, base := newCRM(t)
	key := map[string]string{"X-API-KEY": testKey}

	ev := retailcrm.CallEvent{Phone: "+79121234567", Type: "in", Codes: []string{"100", "555"}, UserIDs: []string{"12", "99"}}
	form, err := retailcrm.EncodeCallEvent(ev)
	if err != nil {
		t.Fatal(err)
	}
	a := send(t, "POST", base+retailcrm.PathCallEvent, key, form)
	if a.status != 200 || a.body["success"] != true {
		t.Fatalf("%d %v", a.status, a.body)
	}
	if diff := cmp.Diff([]any{"555"}, a.body["notExistCodes"]); diff != "" {
		t.Errorf("notExistCodes: %s", diff)
	}
	if diff := cmp.Diff([]any{"99"}, a.body["notExistUsers"]); diff != "" {
		t.Errorf("notExistUsers: %s", diff)
	}
	if diff := cmp.Diff([]retailcrm.CallEvent{ev}, crm.Events()); diff != "" {
		t.Errorf("events: %s", diff)
	}

	at := time.Date(2024, 3, 1, 9, 15, 0, 0, time.UTC)
	calls := []retailcrm.UploadCall{
		{Date: at, Type: "in", Phone: "+79121234567", Code: "100", Result: "answered", Duration: 60, ExternalID: "c1"},
		{Date: at, Type: "out", Phone: "+79121234567", Code: "100", Result: "no answer", ExternalID: "c2"},
	}
	form, err = retailcrm.EncodeCallsUpload(calls)
	if err != nil {
		t.Fatal(err)
	}
	a = send(t, "POST", base+retailcrm.PathCallsUpload, key, form)
	if a.status != 200 || a.body["processedCallsCount"] != float64(2) {
		t.Fatalf("%d %v", a.status, a.body)
	}
	a = send(t, "POST", base+retailcrm.PathCallsUpload, key, form)
	if a.body["processedCallsCount"] != float64(0) || cmp.Diff([]any{"c1", "c2"}, a.body["duplicateCalls"]) != "" {
		t.Errorf("re-upload: %v", a.body)
	}
	if diff := cmp.Diff(calls, crm.Uploads()); diff != "" {
		t.Errorf("uploads: %s", diff)
	}

	a = send(t, "POST", base+"/api/v5/users/12/status", key, url.Values{"status": {"break"}})
	if a.status != 200 || crm.UserStatus("12") != retailcrm.StatusBreak {
		t.Errorf("status change: %d %v %s", a.status, a.body, crm.UserStatus("12"))
	}
	recorded := crm.Requests()[0]
	if recorded.Form.Get("event") == "" {
		t.Errorf("form not recorded: %+v", recorded)
	}
}

func TestCRMConcurrent(t *testing.T) {
	crm, client, _ := newCRM(t)
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			switch i % 4 {
			case 0:
				crm.SetDelay(time.Duration(i) * time.Microsecond)
			case 1:
				_ = crm.SetUserStatus("12", retailcrm.StatusFree)
			case 2:
				_ = crm.Requests()
			}
			if _, err := client.Manager(context.Background(), "+79121234567"); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if crm.Count() != 20 {
		t.Errorf("count %d", crm.Count())
	}
}

func TestAddClientRefusesNonNumbers(t *testing.T) {
	if err := NewCRM("k").AddClient("not a phone", retailcrm.Customer{}, nil); err == nil {
		t.Error("accepted")
	}
}
