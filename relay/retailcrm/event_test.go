package retailcrm

import (
	"bytes"
	"encoding/json"
	"errors"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// formPost is a urlencoded POST carrying the given fields.
func formPost(path string, form url.Values) *http.Request {
	r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return r
}

func multipartPost(t testing.TB, path string, form url.Values) *http.Request {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for k, vs := range form {
		for _, v := range vs {
			if err := mw.WriteField(k, v); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodPost, path, &buf)
	r.Header.Set("Content-Type", mw.FormDataContentType())
	return r
}

func eventPost(event string) *http.Request {
	return formPost(PathCallEvent, url.Values{"event": {event}})
}

func TestParseCallEventFixtures(t *testing.T) {
	tests := []struct {
		file string
		want CallEvent
	}{
		{"event_seed.json", CallEvent{
			Phone: "+7-555-555-55-55", Type: TypeIn, Codes: []string{"100"}, ExternalPhone: "+7-444-444-44-44",
		}},
		{"event_hangup.json", CallEvent{
			Phone: "79121234567", Type: TypeHangup, Codes: []string{"100", "200"}, UserIDs: []string{"1", "2"},
			Site: "shop1", CallExternalID: "a1b2c3-42", ExternalPhone: "+7-499-999-99-99", HangupStatus: HangupNoAnswer,
			WebAnalyticsData: json.RawMessage(`{"ym": {"clientId": "1612345678901234567"}, "ga": {"clientId": "123.456"}}`),
		}},
		{"event_tolerant.json", CallEvent{
			Phone: "+7 (912) 123-45-67", Type: TypeOut, Codes: []string{"101"}, UserIDs: []string{"7"}, CallExternalID: "123456",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			raw := string(fixture(t, tt.file))
			for name, r := range map[string]*http.Request{
				"urlencoded": eventPost(raw),
				"multipart":  multipartPost(t, PathCallEvent, url.Values{"event": {raw}}),
			} {
				got, err := ParseCallEvent(r, 0)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("%s: (-want +got)\n%s", name, diff)
				}
			}
		})
	}
}

func TestParseCallEventRefusals(t *testing.T) {
	codes101 := `[` + strings.Repeat(`"1",`, 100) + `"1"]`
	tests := []struct {
		name, event string
		field       string
	}{
		{"not json", `{"phone":`, "event"},
		{"array", `[{"phone":"1","type":"in"}]`, "event"},
		{"string", `"in"`, "event"},
		{"no type", `{"phone":"+79121234567"}`, "type"},
		{"unknown type", `{"phone":"+79121234567","type":"ring"}`, "type"},
		{"answered type", `{"phone":"+79121234567","type":"answered"}`, "type"},
		{"type case", `{"phone":"+79121234567","type":"IN"}`, "type"},
		{"type number", `{"phone":"+79121234567","type":1}`, "type"},
		{"no phone", `{"type":"in","codes":["100"]}`, "phone"},
		{"blank phone", `{"type":"in","phone":"   "}`, "phone"},
		{"phone object", `{"type":"in","phone":{"n":1}}`, "phone"},
		{"phone bool", `{"type":"in","phone":true}`, "phone"},
		{"long phone", `{"type":"in","phone":"` + strings.Repeat("7", 65) + `"}`, "phone"},
		{"control in phone", `{"type":"in","phone":"+7912\u0000"}`, "phone"},
		{"hangup status on in", `{"type":"in","phone":"1","hangupStatus":"answered"}`, "hangupStatus"},
		{"unknown hangup status", `{"type":"hangup","phone":"1","hangupStatus":"no answer"}`, "hangupStatus"},
		{"too many codes", `{"type":"in","phone":"1","codes":` + codes101 + `}`, "codes"},
		{"empty code", `{"type":"in","phone":"1","codes":["100",""]}`, "codes[1]"},
		{"null code", `{"type":"in","phone":"1","codes":["100",null]}`, "codes[1]"},
		{"code with dash", `{"type":"in","phone":"1","codes":["1-00"]}`, "codes[0]"},
		{"negative code", `{"type":"in","phone":"1","codes":[-100]}`, "codes[0]"},
		{"long code", `{"type":"in","phone":"1","codes":["` + strings.Repeat("1", 33) + `"]}`, "codes[0]"},
		{"code object", `{"type":"in","phone":"1","codes":[{"code":"100"}]}`, "codes[0]"},
		{"codes object", `{"type":"in","phone":"1","codes":{"code":"100"}}`, "codes"},
		{"empty user", `{"type":"in","phone":"1","userIds":[""]}`, "userIds[0]"},
		{"long external id", `{"type":"in","phone":"1","callExternalId":"` + strings.Repeat("x", 256) + `"}`, "callExternalId"},
		{"site number", `{"type":"in","phone":"1","site":5}`, "site"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseCallEvent(eventPost(tt.event), 0)
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("err = %v, want *ValidationError", err)
			}
			if ve.Field != tt.field {
				t.Errorf("field = %q (%v), want %q", ve.Field, err, tt.field)
			}
		})
	}
}

func TestParseCallEventAccepts(t *testing.T) {
	for _, ev := range []string{
		`{"type":"hangup","phone":"1","hangupStatus":""}`,
		`{"type":"hangup","phone":"anonymous","hangupStatus":"cancel"}`,
		`{"type":"in","phone":"1","codes":[],"userIds":null}`,
		`{"type":"in","phone":"1","codes":""}`,
		`{"type":"in","phone":"1","webAnalyticsData":[]}`,
		`{"type":"in","phone":"1","codes":["` + strings.Repeat("9", 32) + `","sip7"]}`,
	} {
		if _, err := ParseCallEvent(eventPost(ev), 0); err != nil {
			t.Errorf("%s: %v", ev, err)
		}
	}
}

func TestParseCallEventRequest(t *testing.T) {
	big := `{"type":"in","phone":"1","site":"` + strings.Repeat("s", 2000) + `"}`
	tests := []struct {
		name    string
		req     func() *http.Request
		max     int64
		tooBig  bool
		field   string
		wantErr bool
	}{
		{name: "body over limit", req: func() *http.Request { return eventPost(big) }, max: 1000, tooBig: true, wantErr: true},
		{name: "declared length over limit", req: func() *http.Request {
			r := eventPost(`{"type":"in","phone":"1"}`)
			r.ContentLength = 5000
			return r
		}, max: 1000, tooBig: true, wantErr: true},
		{name: "chunked over limit", req: func() *http.Request {
			r := eventPost(big)
			r.ContentLength = -1
			return r
		}, max: 1000, tooBig: true, wantErr: true},
		{name: "json content type", req: func() *http.Request {
			r := httptest.NewRequest(http.MethodPost, PathCallEvent, strings.NewReader(`{"event":{"type":"in","phone":"1"}}`))
			r.Header.Set("Content-Type", "application/json")
			return r
		}, wantErr: true},
		{name: "no content type", req: func() *http.Request {
			r := eventPost(`{"type":"in","phone":"1"}`)
			r.Header.Del("Content-Type")
			return r
		}, wantErr: true},
		{name: "event missing", req: func() *http.Request {
			return formPost(PathCallEvent, url.Values{"events": {`{"type":"in","phone":"1"}`}})
		}, field: "event", wantErr: true},
		{name: "event twice", req: func() *http.Request {
			return formPost(PathCallEvent, url.Values{"event": {`{"type":"in","phone":"1"}`, `{"type":"in","phone":"2"}`}})
		}, field: "event", wantErr: true},
		{name: "event in query only", req: func() *http.Request {
			return httptest.NewRequest(http.MethodGet, PathCallEvent+"?event="+url.QueryEscape(`{"type":"in","phone":"1"}`), nil)
		}, field: "event", wantErr: true},
		{name: "bad escape", req: func() *http.Request {
			r := httptest.NewRequest(http.MethodPost, PathCallEvent, strings.NewReader("event=%zz"))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			return r
		}, wantErr: true},
		{name: "multipart without boundary", req: func() *http.Request {
			r := httptest.NewRequest(http.MethodPost, PathCallEvent, strings.NewReader("x"))
			r.Header.Set("Content-Type", "multipart/form-data")
			return r
		}, wantErr: true},
		{name: "charset parameter", req: func() *http.Request {
			r := eventPost(`{"type":"in","phone":"1"}`)
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=UTF-8")
			return r
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseCallEvent(tt.req(), tt.max)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err == nil {
				return
			}
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("err = %T %v, want *ValidationError", err, err)
			}
			if got := errors.Is(err, ErrBodyTooLarge); got != tt.tooBig {
				t.Errorf("errors.Is(ErrBodyTooLarge) = %v, want %v (%v)", got, tt.tooBig, err)
			}
			if ve.Field != tt.field {
				t.Errorf("field = %q, want %q (%v)", ve.Field, tt.field, err)
			}
		})
	}
}

func TestAPIKeyFrom(t *testing.T) {
	r := eventPost(`{"type":"in","phone":"1"}`)
	r.Header.Set("X-API-KEY", " k1 ")
	if got := APIKeyFrom(r); got != "k1" {
		t.Errorf("header: %q", got)
	}

	r = httptest.NewRequest(http.MethodPost, PathCallEvent+"?apiKey=k2", nil)
	if got := APIKeyFrom(r); got != "k2" {
		t.Errorf("query: %q", got)
	}

	r = formPost(PathCallEvent, url.Values{"apiKey": {"k3"}, "event": {`{"type":"in","phone":"1"}`}})
	if got := APIKeyFrom(r); got != "" {
		t.Errorf("form before parsing: %q, want nothing (the body is not read)", got)
	}
	if _, err := ParseCallEvent(r, 0); err != nil {
		t.Fatal(err)
	}
	if got := APIKeyFrom(r); got != "k3" {
		t.Errorf("form after parsing: %q", got)
	}
	// The body stays readable, and a second parse reuses the first.
	if _, err := ParseCallEvent(r, 0); err != nil {
		t.Errorf("second parse: %v", err)
	}

	if got := APIKeyFrom(httptest.NewRequest(http.MethodGet, "/", nil)); got != "" {
		t.Errorf("none: %q", got)
	}
}

func TestEncodeCallEventRoundTrip(t *testing.T) {
	ev := CallEvent{
		Phone: "+79121234567", Type: TypeHangup, Codes: []string{"100"}, UserIDs: []string{"12", "u-7"},
		Site: "shop1", CallExternalID: "c1", ExternalPhone: "+74999999999", HangupStatus: HangupAnswered,
		WebAnalyticsData: json.RawMessage(`{"a":1}`),
	}
	form, err := EncodeCallEvent(ev)
	if err != nil {
		t.Fatal(err)
	}
	if want := `"userIds":[12,"u-7"]`; !strings.Contains(form.Get("event"), want) {
		t.Errorf("event = %s, want it to contain %s", form.Get("event"), want)
	}
	got, err := ParseCallEvent(formPost(PathCallEvent, form), 0)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(ev, got); diff != "" {
		t.Errorf("(-sent +parsed)\n%s", diff)
	}

	if _, err := EncodeCallEvent(CallEvent{Type: "ring", Phone: "1"}); err == nil {
		t.Error("invalid event encoded")
	}
}

// TypeAnswer is pult's extension (added for the relay core): accepted from
// PBXes, never encoded toward retailCRM.
func TestCallEventAnswerExtension(t *testing.T) {
	ev, err := ParseCallEvent(eventPost(`{"type":"answer","phone":"+79121234567","codes":["101"],"callExternalId":"c1"}`), 0)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Type != TypeAnswer {
		t.Errorf("type %q", ev.Type)
	}
	if _, err := EncodeCallEvent(ev); err == nil {
		t.Error("answer event encoded for retailCRM")
	}
	if _, err := ParseCallEvent(eventPost(`{"type":"answer","phone":"1","hangupStatus":"answered"}`), 0); err == nil {
		t.Error("hangupStatus accepted on answer")
	}
}

func TestParseCallEventNumbers(t *testing.T) {
	for _, ev := range []string{
		`{"type":"in","phone":1e10}`,
		`{"type":"in","phone":"1","codes":[1e3]}`,
		`{"type":"in","phone":"1","codes":[1.5]}`,
		`{"type":"in","phone":"1","callExternalId":0.5}`,
	} {
		if got, err := ParseCallEvent(eventPost(ev), 0); err == nil {
			t.Errorf("%s accepted: %+v", ev, got)
		}
	}
}
