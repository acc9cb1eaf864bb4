package pbxapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pult/pult/relay/call"
	"github.com/pult/pult/relay/operators"
	"github.com/pult/pult/relay/retailcrm"
)

// The API alone, with the relay's parts faked: the end-to-end tests
// (relay/retailcrm_wire_test.go, managerquery_test.go,
// retailcrm_clients_test.go) run it inside a relay.

const key = "pbx-key"

type fakeOps map[string]operators.Operator // by code and by user id

func (f fakeOps) ByCode(code string) (operators.Operator, bool) {
	op, ok := f["code:"+code]
	return op, ok
}

func (f fakeOps) ByUserID(id string) (operators.Operator, bool) {
	op, ok := f["user:"+id]
	return op, ok
}

type fakeUploads struct{ seen map[string]bool }

func (f *fakeUploads) PublishPBXUpload(_ context.Context, data []byte, id string) (bool, error) {
	dup := f.seen[id]
	f.seen[id] = true
	return dup, nil
}

type world struct {
	api     *API
	applied []call.Event
	fwd     []retailcrm.CallEvent
	uploads *fakeUploads
}

func newWorld(mod func(*Config)) *world {
	w := &world{uploads: &fakeUploads{seen: map[string]bool{}}}
	anna := operators.Operator{ID: "anna", Code: "101", Name: "Anna", UserID: "7"}
	cfg := Config{
		APIKey: key, PhoneRegion: "RU",
		Sites:     map[string]string{"+74950000001": "shop", "+74950000002": "shop", "+74950000003": "outlet"},
		Operators: fakeOps{"code:101": anna, "user:7": anna},
		Uploads:   w.uploads,
		Apply: func(_ context.Context, ev call.Event, _ time.Time) error {
			w.applied = append(w.applied, ev)
			return nil
		},
		Forward: func(_ context.Context, ev retailcrm.CallEvent) error {
			w.fwd = append(w.fwd, ev)
			return nil
		},
		Routable: func(m *retailcrm.Manager, ignoreStatus bool) (string, bool) { return m.Code, ignoreStatus },
	}
	if mod != nil {
		mod(&cfg)
	}
	w.api = New(cfg)
	return w
}

// do serves one request and decodes retailCRM's JSON answer.
func (w *world) do(method, target string, form url.Values, hdr map[string]string) (int, map[string]any) {
	var r *http.Request
	if form != nil {
		r = httptest.NewRequest(method, target, strings.NewReader(form.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else {
		r = httptest.NewRequest(method, target, nil)
	}
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	w.api.ServeHTTP(rec, r)
	var out map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		return rec.Code, map[string]any{"undecodable": rec.Body.String()}
	}
	return rec.Code, out
}

var withKey = map[string]string{retailcrm.HeaderAPIKey: key}

func TestCallEventAppliedAndForwarded(t *testing.T) {
	w := newWorld(nil)
	ev := `{"type":"in","phone":"8 (912) 123-45-67","externalPhone":"+7 495 000-00-01","callExternalId":"c1","codes":["101","999"],"userIds":["7","8"]}`
	code, out := w.do(http.MethodPost, retailcrm.PathCallEvent, url.Values{"event": {ev}}, withKey)
	if code != http.StatusOK || out["success"] != true {
		t.Fatalf("answer %d %v", code, out)
	}
	if diff := cmp.Diff(map[string]any{"success": true, "notExistCodes": []any{"999"}, "notExistUsers": []any{8.0}}, out); diff != "" {
		t.Errorf("answer (-want +got):\n%s", diff)
	}
	if len(w.applied) != 1 {
		t.Fatalf("applied %d events", len(w.applied))
	}
	got := w.applied[0]
	if got.Source != Source || got.CallID != "c1" || got.Type != "in" || len(got.Operators) != 1 || got.Operators[0].ID != "anna" {
		t.Errorf("applied %+v", got)
	}
	if len(w.fwd) != 1 || w.fwd[0].Phone != "+79121234567" || w.fwd[0].ExternalPhone != "+74950000001" || w.fwd[0].Site != "shop" {
		t.Errorf("forwarded %+v", w.fwd)
	}
}

func TestCallEventNotForwardedWhenOff(t *testing.T) {
	w := newWorld(func(c *Config) { c.Forward = nil })
	code, _ := w.do(http.MethodPost, retailcrm.PathCallEvent, url.Values{"event": {`{"type":"in","phone":"1001","callExternalId":"c1"}`}}, withKey)
	if code != http.StatusOK || len(w.applied) != 1 {
		t.Fatalf("answer %d, applied %d", code, len(w.applied))
	}
}

func TestCallEventStoreFails(t *testing.T) {
	w := newWorld(func(c *Config) {
		c.Apply = func(context.Context, call.Event, time.Time) error { return errors.New("nats down") }
	})
	code, out := w.do(http.MethodPost, retailcrm.PathCallEvent, url.Values{"event": {`{"type":"in","phone":"1001","callExternalId":"c1"}`}}, withKey)
	if code != http.StatusInternalServerError || out["success"] != false || len(w.fwd) != 0 {
		t.Fatalf("answer %d %v, forwarded %d", code, out, len(w.fwd))
	}
}

// A refusal stores nothing, and one without the key says nothing of the
// body but its size.
func TestRefusals(t *testing.T) {
	w := newWorld(nil)
	ev := url.Values{"event": {`{"type":"in","phone":"1001","callExternalId":"c1"}`}}
	for _, tt := range []struct {
		name   string
		method string
		target string
		form   url.Values
		hdr    map[string]string
		want   int
	}{
		{"no key", http.MethodPost, retailcrm.PathCallEvent, ev, nil, http.StatusUnauthorized},
		{"wrong key", http.MethodPost, retailcrm.PathCallEvent, ev, map[string]string{retailcrm.HeaderAPIKey: "nope"}, http.StatusForbidden},
		{"bad event, no key", http.MethodPost, retailcrm.PathCallEvent, url.Values{"event": {"{"}}, nil, http.StatusUnauthorized},
		{"bad event", http.MethodPost, retailcrm.PathCallEvent, url.Values{"event": {"{"}}, withKey, http.StatusBadRequest},
		{"too large, no key", http.MethodPost, retailcrm.PathCallEvent, url.Values{"event": {strings.Repeat("x", maxEventBody)}}, nil, http.StatusRequestEntityTooLarge},
		{"wrong method", http.MethodGet, retailcrm.PathCallEvent, nil, withKey, http.StatusMethodNotAllowed},
		{"unknown method", http.MethodGet, "/api/v5/orders", nil, withKey, http.StatusNotFound},
		{"versions without key", http.MethodGet, retailcrm.PathVersions, nil, nil, http.StatusUnauthorized},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, out := w.do(tt.method, tt.target, tt.form, tt.hdr)
			if code != tt.want || out["success"] != false {
				t.Errorf("answer %d %v, want %d in retailCRM's shape", code, out, tt.want)
			}
		})
	}
	if len(w.applied)+len(w.fwd) != 0 {
		t.Errorf("refused requests stored %d events", len(w.applied)+len(w.fwd))
	}
}

func TestCallsUploadOncePerExternalID(t *testing.T) {
	w := newWorld(nil)
	calls := `[{"date":"2026-01-02 10:00:00","type":"in","phone":"89121234567","externalPhone":"84950000003","code":"101","result":"answered","externalId":"u1","duration":30}]`
	for i, wantDups := range []int{0, 1} {
		code, out := w.do(http.MethodPost, retailcrm.PathCallsUpload, url.Values{"calls": {calls}}, withKey)
		if code != http.StatusOK || out["processedCallsCount"] != float64(1-wantDups) || len(out["duplicateCalls"].([]any)) != wantDups {
			t.Fatalf("upload %d: %d %v", i, code, out)
		}
	}
}

func TestManagerQuery(t *testing.T) {
	res := &retailcrm.ManagerResult{Manager: &retailcrm.Manager{ID: "7", FirstName: "Anna", Code: "101"}}
	var asked string
	w := newWorld(func(c *Config) {
		c.Lookup = func(_ context.Context, e164 string) (*retailcrm.ManagerResult, error) { asked = e164; return res, nil }
	})
	q := retailcrm.PathManager + "?phone=" + url.QueryEscape("8 912 123-45-67")
	_, out := w.do(http.MethodGet, q, nil, withKey)
	if asked != "+79121234567" || out["manager"] != nil {
		t.Errorf("asked %q; answer %v: the rule (busy) names no manager", asked, out)
	}
	_, out = w.do(http.MethodGet, q+"&ignoreStatus=1", nil, withKey)
	if m, _ := out["manager"].(map[string]any); m == nil || m["code"] != "101" {
		t.Errorf("answer %v: ignoreStatus names the manager", out)
	}
	// Without retailCRM: no manager, and nobody asked.
	w = newWorld(nil)
	code, out := w.do(http.MethodGet, q, nil, withKey)
	if code != http.StatusOK || out["success"] != true || out["manager"] != nil {
		t.Errorf("without a CRM: %d %v", code, out)
	}
}

func TestCredentialsListSites(t *testing.T) {
	w := newWorld(nil)
	code, out := w.do(http.MethodGet, retailcrm.PathCredentials, nil, withKey)
	if code != http.StatusOK {
		t.Fatalf("answer %d %v", code, out)
	}
	if diff := cmp.Diff([]any{"outlet", "shop"}, out["sitesAvailable"]); diff != "" {
		t.Errorf("sites (-want +got):\n%s", diff)
	}
}
