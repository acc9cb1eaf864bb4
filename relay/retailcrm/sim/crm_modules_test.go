package sim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/pult/pult/relay/retailcrm"
)

// retryable is what an outbox adapter looks for in retailcrm's errors.
type retryable interface {
	Temporary() bool
	RetryDelay() time.Duration
}

func module() retailcrm.IntegrationModule {
	return retailcrm.IntegrationModule{
		Code: "pult", Active: true, Name: "pult", ClientID: "secret-client-id",
		Logo: "https://relay.example.com/logo.svg", AccountURL: "https://relay.example.com/",
		Telephony: &retailcrm.Telephony{
			MakeCallURL: "https://relay.example.com/make-call", ChangeUserStatusURL: "https://relay.example.com/change-status",
			InputEventSupported: true, OutputEventSupported: true, HangupEventSupported: true,
			AdditionalCodes: []retailcrm.AdditionalCode{{UserID: "12", Code: "100"}, {UserID: "40", Code: "140"}},
			ExternalPhones:  []retailcrm.ExternalPhone{{SiteCode: "shop1", ExternalPhone: "+74999999999"}},
		},
	}
}

func TestCRMIntegrationModule(t *testing.T) {
	crm, client, base := newCRM(t)
	ctx := context.Background()

	if _, err := client.IntegrationModule(ctx, "pult"); err == nil {
		t.Fatal("unknown module found")
	} else {
		var apiErr *retailcrm.APIError
		if !errors.As(err, &apiErr) || apiErr.StatusCode != 404 || apiErr.Temporary() {
			t.Errorf("unknown module: %v", err)
		}
	}
	if err := client.EditIntegrationModule(ctx, "pult", module()); err != nil {
		t.Fatal(err)
	}
	reqs := crm.Requests()
	last := reqs[len(reqs)-1]
	if last.Status != http.StatusCreated || last.Method != "POST" || last.Path != "/api/v5/integration-modules/pult/edit" {
		t.Errorf("create: %s %s → %d", last.Method, last.Path, last.Status)
	}
	if !strings.Contains(last.Form.Get("integrationModule"), `"makeCallUrl":"https://relay.example.com/make-call"`) {
		t.Errorf("recorded form %v", last.Form)
	}
	got, err := client.IntegrationModule(ctx, "pult")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(module(), got); diff != "" {
		t.Errorf("read back (-want +got)\n%s", diff)
	}

	// An update without the lists keeps them; an empty list clears.
	upd := module()
	upd.Active = false
	upd.Telephony.AdditionalCodes = nil
	upd.Telephony.ExternalPhones = []retailcrm.ExternalPhone{}
	if err := client.EditIntegrationModule(ctx, "pult", upd); err != nil {
		t.Fatal(err)
	}
	reqs = crm.Requests()
	if st := reqs[len(reqs)-1].Status; st != http.StatusOK {
		t.Errorf("update answered %d", st)
	}
	m, ok := crm.Module("pult")
	if !ok || m.Active || len(m.Telephony.AdditionalCodes) != 2 || len(m.Telephony.ExternalPhones) != 0 {
		t.Errorf("after update: %+v %+v", m, m.Telephony)
	}
	if len(crm.Modules()) != 1 {
		t.Errorf("modules %v", crm.Modules())
	}

	// Codes of the telephony are known to call events.
	res, err := client.SendCallEvent(ctx, retailcrm.CallEvent{Phone: "+79121234567", Type: retailcrm.TypeIn, Codes: []string{"100", "140", "999"}, UserIDs: []string{"40", "41"}})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(retailcrm.CallEventResult{NotExistCodes: []string{"999"}, NotExistUsers: []string{"41"}}, res); diff != "" {
		t.Errorf("(-want +got)\n%s", diff)
	}

	// Refusals a correct client never meets.
	key := map[string]string{"X-API-KEY": testKey}
	good, _ := json.Marshal(module())
	for _, tt := range []struct {
		name   string
		method string
		path   string
		form   url.Values
		status int
		field  string
	}{
		{"GET edit", "GET", "/api/v5/integration-modules/pult/edit", nil, 405, ""},
		{"POST read", "POST", "/api/v5/integration-modules/pult", url.Values{"x": {"1"}}, 405, ""},
		{"no field", "POST", "/api/v5/integration-modules/pult/edit", url.Values{"module": {string(good)}}, 400, "module"},
		{"extra field", "POST", "/api/v5/integration-modules/pult/edit", url.Values{"integrationModule": {string(good)}, "site": {"x"}}, 400, "site"},
		{"not JSON", "POST", "/api/v5/integration-modules/pult/edit", url.Values{"integrationModule": {"code=pult"}}, 400, "integrationModule"},
		{"code mismatch", "POST", "/api/v5/integration-modules/other/edit", url.Values{"integrationModule": {string(good)}}, 400, "integrationModule.code"},
		{"unknown key", "POST", "/api/v5/integration-modules/pult/edit", url.Values{"integrationModule": {strings.Replace(string(good), `"makeCallUrl"`, `"makeCallURL"`, 1)}}, 400, "integrationModule.integrations.telephony.makeCallURL"},
		{"unknown code key", "POST", "/api/v5/integration-modules/pult/edit", url.Values{"integrationModule": {strings.Replace(string(good), `"userId":12`, `"user":12`, 1)}}, 400, "integrationModule.integrations.telephony.additionalCodes[0].user"},
		{"no client id", "POST", "/api/v5/integration-modules/pult/edit", url.Values{"integrationModule": {`{"code":"pult","name":"p"}`}}, 400, "integrationModule.clientId"},
		{"query", "GET", "/api/v5/integration-modules/pult?details=1", nil, 400, "details"},
	} {
		a := send(t, tt.method, base+tt.path, key, tt.form)
		if a.status != tt.status {
			t.Errorf("%s: %d %v", tt.name, a.status, a.body)
			continue
		}
		if tt.field != "" {
			errs, _ := a.body["errors"].(map[string]any)
			if _, ok := errs[tt.field]; !ok {
				t.Errorf("%s: %v does not name %s", tt.name, a.body, tt.field)
			}
		}
	}
	if a := send(t, "GET", base+"/api/v5/integration-modules/pult", nil, nil); a.status != 401 {
		t.Errorf("no key: %d", a.status)
	}
}

func TestCRMUploadAndStatus(t *testing.T) {
	crm, client, base := newCRM(t)
	ctx := context.Background()
	call := func(id string) retailcrm.UploadCall {
		return retailcrm.UploadCall{Date: time.Date(2024, 3, 1, 9, 15, 0, 0, time.UTC), Type: retailcrm.TypeIn, Phone: "+79121234567",
			Code: "100", UserID: "12", Result: retailcrm.ResultAnswered, Duration: 30, ExternalID: id}
	}
	res, err := client.UploadCalls(ctx, []retailcrm.UploadCall{call("a"), call("b")})
	if err != nil || res.Processed != 2 || len(res.Duplicates) != 0 {
		t.Fatalf("%+v %v", res, err)
	}
	// A retry of a delivered upload is not an error.
	res, err = client.UploadCalls(ctx, []retailcrm.UploadCall{call("b"), call("c")})
	if err != nil || res.Processed != 1 || !cmp.Equal(res.Duplicates, []string{"b"}) {
		t.Errorf("%+v %v", res, err)
	}
	if n := len(crm.Uploads()); n != 3 {
		t.Errorf("%d stored", n)
	}
	// 51 calls: the simulator refuses them as retailCRM does.
	calls := make([]map[string]any, 51)
	for i := range calls {
		calls[i] = map[string]any{"date": "2024-03-01 09:15:00", "type": "in", "phone": "1", "externalId": fmt.Sprint("x", i)}
	}
	b, _ := json.Marshal(calls)
	a := send(t, "POST", base+"/api/v5/telephony/calls/upload", map[string]string{"X-API-KEY": testKey}, url.Values{"calls": {string(b)}})
	if a.status != 400 || !strings.Contains(fmt.Sprint(a.body["errors"]), "at most 50") {
		t.Errorf("51 calls: %d %v", a.status, a.body)
	}

	if err := client.SetUserStatus(ctx, "12", retailcrm.StatusBreak); err != nil {
		t.Fatal(err)
	}
	if s := crm.UserStatus("12"); s != retailcrm.StatusBreak {
		t.Errorf("status %q", s)
	}
	reqs := crm.Requests()
	last := reqs[len(reqs)-1]
	if last.Path != "/api/v5/users/12/status" || last.Form.Get("status") != "break" || last.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
		t.Errorf("recorded %+v", last)
	}
}

func TestCRMRateLimit(t *testing.T) {
	crm, client, _ := newCRM(t)
	ctx := context.Background()
	if err := client.EditIntegrationModule(ctx, "pult", module()); err != nil {
		t.Fatal(err)
	}
	// Off by default.
	for range 15 {
		if _, err := client.IntegrationModule(ctx, "pult"); err != nil {
			t.Fatal(err)
		}
	}
	crm.SetRateLimit(10, 40)
	burst := func(n int, f func() error) (ok, limited int) {
		var mu sync.Mutex
		var wg sync.WaitGroup
		for range n {
			wg.Go(func() {
				err := f()
				mu.Lock()
				defer mu.Unlock()
				var apiErr *retailcrm.APIError
				switch {
				case err == nil:
					ok++
				case errors.As(err, &apiErr) && apiErr.StatusCode == 429 && apiErr.Temporary() && apiErr.RetryDelay() == time.Second:
					limited++
				default:
					t.Errorf("unexpected %v", err)
				}
			})
		}
		wg.Wait()
		return ok, limited
	}
	if ok, limited := burst(12, func() error { _, err := client.IntegrationModule(ctx, "pult"); return err }); ok != 10 || limited != 2 {
		t.Errorf("general: %d ok, %d limited", ok, limited)
	}
	// /telephony/* has its own, higher budget.
	if ok, limited := burst(42, func() error { _, err := client.Manager(ctx, "+79121234567"); return err }); ok != 40 || limited != 2 {
		t.Errorf("telephony: %d ok, %d limited", ok, limited)
	}
	crm.SetRateLimit(0, 0)
	if _, err := client.IntegrationModule(ctx, "pult"); err != nil {
		t.Error(err)
	}
}

func TestCRMScript(t *testing.T) {
	crm, client, _ := newCRM(t)
	ctx := context.Background()
	upload := func() error {
		_, err := client.UploadCalls(ctx, []retailcrm.UploadCall{{Date: time.Now(), Type: retailcrm.TypeOut, Phone: "+79121234567", ExternalID: "s1"}})
		return err
	}
	date := time.Now().Add(time.Minute).UTC().Format(http.TimeFormat)
	crm.Script(
		Fault{Path: retailcrm.PathCallsUpload, Status: 503, RetryAfter: "2"},
		Fault{Path: retailcrm.PathCallsUpload, Status: 429, Msg: "Limit exceeded", RetryAfter: date},
		Fault{Status: 500},
		Fault{Path: retailcrm.PathCallsUpload, Status: 400, Msg: "nope"},
		Fault{Path: retailcrm.PathCallsUpload, Hang: true},
	)
	// A manager lookup is not matched by upload faults, only by the last
	// catch-all one.
	var r retryable
	err := upload()
	if !errors.As(err, &r) || !r.Temporary() || r.RetryDelay() != 2*time.Second {
		t.Errorf("503: %v", err)
	}
	if _, err := client.Manager(ctx, "+79121234567"); !errors.As(err, &r) || !r.Temporary() || r.RetryDelay() != 0 {
		t.Errorf("catch-all 500: %v", err)
	}
	err = upload()
	var apiErr *retailcrm.APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 429 || apiErr.Msg != "Limit exceeded" || apiErr.RetryAfter < 50*time.Second {
		t.Errorf("429: %v", err)
	}
	if err := upload(); !errors.As(err, &r) || r.Temporary() {
		t.Errorf("400: %v", err)
	}
	hctx, cancel := context.WithTimeout(ctx, 60*time.Millisecond)
	defer cancel()
	if _, err := client.UploadCalls(hctx, []retailcrm.UploadCall{{Date: time.Now(), Type: retailcrm.TypeOut, Phone: "1"}}); !errors.Is(err, context.DeadlineExceeded) || errors.As(err, &r) {
		t.Errorf("hang: %v", err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
	defer wcancel()
	reqs, err := crm.Wait(wctx, 5)
	if err != nil {
		t.Fatal(err)
	}
	if st := reqs[4].Status; st != StatusClientGone {
		t.Errorf("hang recorded as %d", st)
	}
	// The script is used up: service is normal again.
	if err := upload(); err != nil {
		t.Error(err)
	}
	if len(crm.Uploads()) != 1 {
		t.Errorf("uploads %v", crm.Uploads())
	}
}
