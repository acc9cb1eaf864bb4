package retailcrm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// seedModule is the example of retailCRM's telephony integration guide.
func seedModule() IntegrationModule {
	return IntegrationModule{
		Code: "my-telephony", Active: true, Name: "Название телефонии",
		Logo: "http://api.telephony-test.ru/logo.svg", ClientID: "2dbh26tahjj26sg",
		AccountURL: "http://api.telephony-test.ru/settings",
		Telephony: &Telephony{
			MakeCallURL: "http://api.telephony-test.ru/make-call", AllowEdit: false, InputEventSupported: true,
			AdditionalCodes:     []AdditionalCode{{UserID: "1", Code: "100"}, {UserID: "2", Code: "200"}},
			ExternalPhones:      []ExternalPhone{{SiteCode: "shop1", ExternalPhone: "+7-499-999-99-99"}, {SiteCode: "shop2", ExternalPhone: "+7-499-888-88-88"}},
			ChangeUserStatusURL: "http://api.telephony-test.ru/change-status",
		},
	}
}

func TestEncodeIntegrationModuleSeed(t *testing.T) {
	form, err := EncodeIntegrationModule(seedModule())
	if err != nil {
		t.Fatal(err)
	}
	if len(form) != 1 {
		t.Errorf("form %v", form)
	}
	// The seed's JSON, plus the two booleans it leaves out (we always send
	// them so an edit is complete) and integrationCode, with the types of
	// retailCRM's own models (userId a number, code a string).
	want := `{
	    "code": "my-telephony", "integrationCode": "my-telephony", "active": true, "name": "Название телефонии",
	    "logo": "http://api.telephony-test.ru/logo.svg", "clientId": "2dbh26tahjj26sg",
	    "accountUrl": "http://api.telephony-test.ru/settings",
	    "integrations": {"telephony": {
	        "makeCallUrl": "http://api.telephony-test.ru/make-call", "allowEdit": false, "inputEventSupported": true,
	        "outputEventSupported": false, "hangupEventSupported": false,
	        "additionalCodes": [{"userId": 1, "code": "100"}, {"userId": 2, "code": "200"}],
	        "externalPhones": [{"siteCode": "shop1", "externalPhone": "+7-499-999-99-99"}, {"siteCode": "shop2", "externalPhone": "+7-499-888-88-88"}],
	        "changeUserStatusUrl": "http://api.telephony-test.ru/change-status"
	    }}
	}`
	if got := form.Get("integrationModule"); !jsonEqual(t, want, got) {
		t.Errorf("got %s", got)
	}
	// Round trip.
	var back IntegrationModule
	if err := json.Unmarshal([]byte(form.Get("integrationModule")), &back); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(seedModule(), back); diff != "" {
		t.Errorf("(-want +got)\n%s", diff)
	}
}

func TestIntegrationModuleLists(t *testing.T) {
	m := seedModule()
	m.Telephony.AdditionalCodes = nil
	m.Telephony.ExternalPhones = []ExternalPhone{}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	if strings.Contains(s, "additionalCodes") || !strings.Contains(s, `"externalPhones":[]`) {
		t.Errorf("nil must be left out, empty sent as []: %s", s)
	}
	var back IntegrationModule
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.Telephony.AdditionalCodes != nil || back.Telephony.ExternalPhones == nil {
		t.Errorf("nil/empty lost: %#v", back.Telephony)
	}
	// Without a telephony there is no "integrations".
	m.Telephony = nil
	b, _ = json.Marshal(m)
	if strings.Contains(string(b), "integrations") {
		t.Errorf("%s", b)
	}
}

func TestIntegrationModuleTolerantDecode(t *testing.T) {
	in := `{"code":"t","active":1,"name":"T","clientId":12345,"integrations":{"telephony":{"allowEdit":"1",
		"inputEventSupported":true,"outputEventSupported":"0","hangupEventSupported":null,
		"additionalCodes":[{"userId":7,"code":"0100"}],"externalPhones":[],"extra":{"x":1}}},"baseUrl":"https://x"}`
	var m IntegrationModule
	if err := json.Unmarshal([]byte(in), &m); err != nil {
		t.Fatal(err)
	}
	want := IntegrationModule{Code: "t", Active: true, Name: "T", ClientID: "12345", Telephony: &Telephony{
		AllowEdit: true, InputEventSupported: true,
		AdditionalCodes: []AdditionalCode{{UserID: "7", Code: "0100"}}, ExternalPhones: []ExternalPhone{},
	}}
	if diff := cmp.Diff(want, m); diff != "" {
		t.Errorf("(-want +got)\n%s", diff)
	}
	for _, bad := range []string{`{"active":"yes"}`, `{"integrations":"x"}`, `{"integrations":{"telephony":5}}`, `{"integrations":{"telephony":{"allowEdit":[]}}}`} {
		if err := json.Unmarshal([]byte(bad), &m); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
	// Codes are strings (a leading zero survives), numeric user ids numbers.
	b, _ := json.Marshal(IntegrationModule{Code: "t", Telephony: &Telephony{AdditionalCodes: []AdditionalCode{{UserID: "7", Code: "0100"}, {UserID: "u8", Code: "101"}}}})
	if !strings.Contains(string(b), `{"userId":7,"code":"0100"}`) || !strings.Contains(string(b), `{"userId":"u8","code":"101"}`) {
		t.Errorf("%s", b)
	}
}

func TestIntegrationModuleValidate(t *testing.T) {
	const tp = "integrationModule.integrations.telephony."
	tests := []struct {
		field string
		edit  func(*IntegrationModule)
	}{
		{"integrationModule.code", func(m *IntegrationModule) { m.Code = "" }},
		{"integrationModule.code", func(m *IntegrationModule) { m.Code = "my telephony" }},
		{"integrationModule.code", func(m *IntegrationModule) { m.Code = "a/b" }},
		{"integrationModule.code", func(m *IntegrationModule) { m.Code = ".." }},
		{"integrationModule.code", func(m *IntegrationModule) { m.Code = strings.Repeat("a", 256) }},
		{"integrationModule.name", func(m *IntegrationModule) { m.Name = " " }},
		{"integrationModule.clientId", func(m *IntegrationModule) { m.ClientID = "" }},
		{"integrationModule.logo", func(m *IntegrationModule) { m.Logo = "logo.svg" }},
		{"integrationModule.accountUrl", func(m *IntegrationModule) { m.AccountURL = "javascript:alert(1)" }},
		{tp + "makeCallUrl", func(m *IntegrationModule) { m.Telephony.MakeCallURL = "/make-call" }},
		{tp + "changeUserStatusUrl", func(m *IntegrationModule) { m.Telephony.ChangeUserStatusURL = "http://" }},
		{tp + "additionalCodes[0].userId", func(m *IntegrationModule) { m.Telephony.AdditionalCodes[0].UserID = "" }},
		{tp + "additionalCodes[1].userId", func(m *IntegrationModule) { m.Telephony.AdditionalCodes[1].UserID = "1" }},
		{tp + "additionalCodes[1].code", func(m *IntegrationModule) { m.Telephony.AdditionalCodes[1].Code = "2 00" }},
		{tp + "additionalCodes[0].code", func(m *IntegrationModule) { m.Telephony.AdditionalCodes[0].Code = "" }},
		{tp + "externalPhones[0].siteCode", func(m *IntegrationModule) { m.Telephony.ExternalPhones[0].SiteCode = "" }},
		{tp + "externalPhones[1].externalPhone", func(m *IntegrationModule) { m.Telephony.ExternalPhones[1].ExternalPhone = "" }},
	}
	for _, tt := range tests {
		m := seedModule()
		tt.edit(&m)
		err := m.Validate()
		var ve *ValidationError
		if !errors.As(err, &ve) || ve.Field != tt.field {
			t.Errorf("%s: %v", tt.field, err)
		}
	}
	m := seedModule()
	m.Telephony = nil
	if err := m.Validate(); err != nil {
		t.Error(err)
	}
}

func TestAnswerList(t *testing.T) {
	for in, want := range map[string][]string{
		``:                           nil,
		`null`:                       nil,
		`[]`:                         nil,
		`{}`:                         {},
		`["100", 101]`:               {"100", "101"},
		`{"10":"c","2":"b","0":"a"}`: {"a", "b", "c"},
		`"100"`:                      {"100"},
	} {
		got, err := answerList("x", json.RawMessage(in))
		if err != nil || !cmp.Equal(got, want) {
			t.Errorf("%s: %q %v, want %q", in, got, err, want)
		}
	}
	for _, in := range []string{`[true]`, `{"0":{}}`, `5.5`} {
		if got, err := answerList("x", json.RawMessage(in)); err == nil {
			t.Errorf("%s: %q accepted", in, got)
		}
	}
}

// formHandler checks a retailCRM POST and answers body.
func formHandler(t *testing.T, field string, check func(string), status int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.Header.Get("X-API-KEY") != "test-key" ||
			r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
			t.Errorf("%s %s %v", r.Method, r.URL, r.Header)
		}
		if err := r.ParseForm(); err != nil {
			t.Error(err)
		}
		if len(r.PostForm) != 1 || len(r.URL.Query()) != 0 {
			t.Errorf("form %v, query %v", r.PostForm, r.URL.Query())
		}
		if check != nil {
			check(r.PostForm.Get(field))
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}
}

func TestClientTelephonyMethods(t *testing.T) {
	c, mux := setup(t)
	ctx := context.Background()
	call := UploadCall{Date: time.Date(2024, 3, 1, 9, 15, 0, 0, time.UTC), Type: TypeIn, Phone: "+79121234567", ExternalID: "c1", Result: ResultAnswered}
	mux.HandleFunc("POST /api/v5/telephony/calls/upload", formHandler(t, "calls", func(v string) {
		if !strings.Contains(v, `"externalId":"c1"`) || !strings.Contains(v, `"date":"2024-03-01 09:15:00"`) {
			t.Errorf("calls %s", v)
		}
	}, 200, `{"success":true,"processedCallsCount":"1","duplicateCalls":{"0":"c0"}}`))
	res, err := c.UploadCalls(ctx, []UploadCall{call, {Date: call.Date, Type: TypeOut, Phone: "1", ExternalID: "c0"}})
	if err != nil || res.Processed != 1 || !cmp.Equal(res.Duplicates, []string{"c0"}) {
		t.Errorf("upload: %+v %v", res, err)
	}

	mux.HandleFunc("POST /api/v5/telephony/call/event", formHandler(t, "event", func(v string) {
		if !jsonEqual(t, `{"phone":"+79121234567","type":"in","codes":["100","999"],"userIds":[5]}`, v) {
			t.Errorf("event %s", v)
		}
	}, 200, `{"success":true,"notExistCodes":["999"],"notExistUsers":[]}`))
	evRes, err := c.SendCallEvent(ctx, CallEvent{Phone: "+79121234567", Type: TypeIn, Codes: []string{"100", "999"}, UserIDs: []string{"5"}})
	if err != nil || !cmp.Equal(evRes, CallEventResult{NotExistCodes: []string{"999"}}) {
		t.Errorf("event: %+v %v", evRes, err)
	}

	mux.HandleFunc("POST /api/v5/users/12/status", formHandler(t, "status", func(v string) {
		if v != "dinner" {
			t.Errorf("status %q", v)
		}
	}, 200, `{"success":true}`))
	if err := c.SetUserStatus(ctx, "12", StatusDinner); err != nil {
		t.Error(err)
	}

	mux.HandleFunc("POST /api/v5/integration-modules/my-telephony/edit", formHandler(t, "integrationModule", func(v string) {
		if !strings.Contains(v, `"clientId":"2dbh26tahjj26sg"`) {
			t.Errorf("module %s", v)
		}
	}, 201, `{"success":true}`))
	m := seedModule()
	m.Code = ""
	if err := c.EditIntegrationModule(ctx, "my-telephony", m); err != nil {
		t.Error(err)
	}
	mux.HandleFunc("GET /api/v5/integration-modules/my-telephony", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-API-KEY") != "test-key" || r.URL.RawQuery != "" {
			t.Errorf("%v %s", r.Header, r.URL)
		}
		b, _ := json.Marshal(seedModule())
		fmt.Fprintf(w, `{"success":true,"integrationModule":%s}`, b)
	})
	got, err := c.IntegrationModule(ctx, "my-telephony")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(seedModule(), got); diff != "" {
		t.Errorf("(-want +got)\n%s", diff)
	}
}

func TestClientTelephonyRefusesBeforeSending(t *testing.T) {
	c, mux := setup(t)
	sent := 0
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { sent++ })
	ctx := context.Background()
	calls := make([]UploadCall, MaxUploadCalls+1)
	for i := range calls {
		calls[i] = UploadCall{Date: time.Now(), Type: TypeIn, Phone: "1", ExternalID: fmt.Sprint(i)}
	}
	var ve *ValidationError
	if _, err := c.UploadCalls(ctx, calls); !errors.As(err, &ve) || ve.Field != "calls" {
		t.Errorf("51 calls: %v", err)
	}
	if _, err := c.UploadCalls(ctx, nil); !errors.As(err, &ve) {
		t.Errorf("no calls: %v", err)
	}
	if _, err := c.SendCallEvent(ctx, CallEvent{Phone: "1", Type: TypeAnswer}); !errors.As(err, &ve) {
		t.Errorf("answer event: %v", err)
	}
	for _, tt := range []struct{ id, status string }{{"", "free"}, {"12a", "free"}, {"../1", "free"}, {"12", "away"}} {
		if err := c.SetUserStatus(ctx, tt.id, tt.status); !errors.As(err, &ve) {
			t.Errorf("user %q status %q: %v", tt.id, tt.status, err)
		}
	}
	if err := c.EditIntegrationModule(ctx, "other", seedModule()); !errors.As(err, &ve) || ve.Field != "integrationModule.code" {
		t.Errorf("code mismatch: %v", err)
	}
	if err := c.EditIntegrationModule(ctx, "a/../b", IntegrationModule{}); !errors.As(err, &ve) {
		t.Errorf("bad code: %v", err)
	}
	if _, err := c.IntegrationModule(ctx, "a?b"); !errors.As(err, &ve) {
		t.Errorf("bad code: %v", err)
	}
	if sent != 0 {
		t.Errorf("%d requests sent", sent)
	}
	// A validation error is permanent through the generic interface.
	var r interface {
		Temporary() bool
		RetryDelay() time.Duration
	}
	if _, err := c.UploadCalls(ctx, calls); !errors.As(err, &r) || r.Temporary() || r.RetryDelay() != 0 {
		t.Errorf("validation error not classified: %v", err)
	}
}

func TestClientTelephonyBadAnswers(t *testing.T) {
	c, mux := setup(t)
	ctx := context.Background()
	mux.HandleFunc("POST /api/v5/telephony/calls/upload", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"success":true,"processedCallsCount":"many"}`))
	})
	mux.HandleFunc("GET /api/v5/integration-modules/x", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"success":true}`))
	})
	mux.HandleFunc("GET /api/v5/integration-modules/y", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(404)
		_, _ = w.Write([]byte(`{"success":false,"errorMsg":"Not found"}`))
	})
	call := UploadCall{Date: time.Now(), Type: TypeIn, Phone: "1"}
	if _, err := c.UploadCalls(ctx, []UploadCall{call}); !errors.Is(err, ErrBadResponse) {
		t.Errorf("upload: %v", err)
	}
	if _, err := c.IntegrationModule(ctx, "x"); !errors.Is(err, ErrBadResponse) {
		t.Errorf("module: %v", err)
	}
	_, err := c.IntegrationModule(ctx, "y")
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 404 || apiErr.Msg != "Not found" || apiErr.Temporary() {
		t.Errorf("unknown module: %v", err)
	}
}
