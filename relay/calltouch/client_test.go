package calltouch_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/pult/pult/relay/calltouch"
	"github.com/pult/pult/relay/calltouch/fake"
)

const (
	token    = "6PHx/MzrTUSBXVXTQfKJ0DkCFgWUxmBeVLPECltd3tUHh"
	routeKey = "routekey_1"
)

type retryable interface {
	Temporary() bool
	RetryDelay() time.Duration
}

func newFake(t *testing.T) (*fake.Server, *calltouch.Client) {
	t.Helper()
	f := fake.NewServer(token, routeKey)
	t.Cleanup(f.Close)
	return f, &calltouch.Client{BaseURL: f.URL(), Token: token, RouteKey: routeKey, HTTP: f.Client()}
}

func full() calltouch.Request {
	at := time.Date(2021, 2, 1, 14, 10, 0, 0, time.UTC) // 17:10 in Moscow
	return calltouch.Request{
		Phone: "79992223344",
		Fields: []calltouch.Field{
			{Name: "Имя", Value: "Иван"}, {Name: "Фамилия", Value: "Иванов"}, {Name: "Отчество", Value: "Иванович"},
			{Name: "Город", Value: "Москва"}, {Name: "Тема", Value: "Заявка на консультацию"},
		},
		SessionID:    "11223344",
		ScheduleTime: &at,
		UTMSource:    "source", UTMMedium: "medium", UTMCampaign: "campaign", UTMContent: "content", UTMTerm: "term",
		CallURL: "https://shop.example.ru/contacts",
		Tags:    []string{"tag1", "tag2", "tag3", "tag10"},
		UnitID:  112233,
	}
}

func TestCreateWire(t *testing.T) {
	f, c := newFake(t)
	f.AddSession("11223344")
	res, err := c.Create(context.Background(), full())
	if err != nil {
		t.Fatal(err)
	}
	if res.WidgetRequestID == "" {
		t.Error("no widgetRequestId")
	}
	reqs := f.Requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests", len(reqs))
	}
	r := reqs[0]
	if r.Method != "POST" || r.Path != "/widget-service/v1/api/widget-request/user-form/create" || r.Status != 200 {
		t.Errorf("%s %s → %d %s", r.Method, r.Path, r.Status, r.Refusal)
	}
	if r.Header.Get("Access-Token") != token || r.Header.Get("Content-Type") != "application/json" {
		t.Errorf("headers %v", r.Header)
	}
	if r.Header.Get("Authorization") != "" {
		t.Error("sent an Authorization header too")
	}
	// The seed's example with every parameter.
	want := `{
	   "routeKey": "routekey_1", "phone": "79992223344",
	   "fields": [{"name": "Имя", "value": "Иван"}, {"name": "Фамилия", "value": "Иванов"}, {"name": "Отчество", "value": "Иванович"},
	              {"name": "Город", "value": "Москва"}, {"name": "Тема", "value": "Заявка на консультацию"}],
	   "sessionId": "11223344", "scheduleTime": "2021-02-01 17:10:00",
	   "utmMedium": "medium", "utmSource": "source", "utmCampaign": "campaign", "utmContent": "content", "utmTerm": "term",
	   "callUrl": "https://shop.example.ru/contacts",
	   "tags": ["tag1", "tag2", "tag3", "tag10"], "unitId": 112233
	}`
	var got, exp any
	if err := json.Unmarshal(r.Body, &got); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(want), &exp); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(exp, got); diff != "" {
		t.Errorf("body (-want +got)\n%s", diff)
	}
	created := f.Created()
	if len(created) != 1 || created[0].ID != res.WidgetRequestID || created[0].RouteKey != routeKey {
		t.Fatalf("created %+v, result %+v", created, res)
	}
	wantReq := full()
	if diff := cmp.Diff(wantReq, created[0].Request, cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })); diff != "" {
		t.Errorf("created (-want +got)\n%s", diff)
	}

	// The minimal request; a request's own route key wins.
	f.AddRouteKey("other")
	if _, err := c.Create(context.Background(), calltouch.Request{Phone: "79992223345", RouteKey: "other"}); err != nil {
		t.Fatal(err)
	}
	if got := string(f.Requests()[1].Body); got != `{"routeKey":"other","phone":"79992223345"}` {
		t.Errorf("minimal body %s", got)
	}
}

func TestScheduleLocation(t *testing.T) {
	f, c := newFake(t)
	at := time.Date(2024, 6, 1, 21, 30, 0, 0, time.UTC)
	if _, err := c.Create(context.Background(), calltouch.Request{Phone: "79161234567", ScheduleTime: &at}); err != nil {
		t.Fatal(err)
	}
	c.Location = time.UTC
	if _, err := c.Create(context.Background(), calltouch.Request{Phone: "79161234568", ScheduleTime: &at}); err != nil {
		t.Fatal(err)
	}
	cr := f.Created()
	if cr[0].Schedule != "2024-06-02 00:30:00" || cr[1].Schedule != "2024-06-01 21:30:00" {
		t.Errorf("schedules %q %q", cr[0].Schedule, cr[1].Schedule)
	}
}

func TestValidation(t *testing.T) {
	long := func(n int) string { return strings.Repeat("ж", n) }
	tests := []struct {
		field string
		edit  func(*calltouch.Request)
	}{
		{"phone", func(r *calltouch.Request) { r.Phone = "" }},
		{"phone", func(r *calltouch.Request) { r.Phone = "9992223344" }},
		{"phone", func(r *calltouch.Request) { r.Phone = "89992223344" }},
		{"phone", func(r *calltouch.Request) { r.Phone = "+79992223344" }},
		{"phone", func(r *calltouch.Request) { r.Phone = "799922233445" }},
		{"phone", func(r *calltouch.Request) { r.Phone = "78001234567" }},
		{"phone", func(r *calltouch.Request) { r.Phone = "78041234567" }},
		{"phone", func(r *calltouch.Request) { r.Phone = "77011234567" }}, // Kazakhstan
		{"phone", func(r *calltouch.Request) { r.Phone = "7999222334a" }},
		{"routeKey", func(r *calltouch.Request) { r.RouteKey = long(256) }},
		{"routeKey", func(r *calltouch.Request) { r.RouteKey = " " }},
		{"fields", func(r *calltouch.Request) { r.Fields = append(r.Fields, calltouch.Field{Name: "6", Value: "6"}) }},
		{"fields[0].name", func(r *calltouch.Request) { r.Fields[0].Name = "" }},
		{"fields[1].value", func(r *calltouch.Request) { r.Fields[1].Value = long(256) }},
		{"fields[2].value", func(r *calltouch.Request) { r.Fields[2].Value = "a\x00" }},
		{"tags", func(r *calltouch.Request) { r.Tags = strings.Split("1 2 3 4 5 6 7 8 9 10 11", " ") }},
		{"tags[0]", func(r *calltouch.Request) { r.Tags[0] = long(101) }},
		{"tags[1]", func(r *calltouch.Request) { r.Tags[1] = "" }},
		{"sessionId", func(r *calltouch.Request) { r.SessionID = long(101) }},
		{"scheduleTime", func(r *calltouch.Request) { r.ScheduleTime = &time.Time{} }},
		{"utmTerm", func(r *calltouch.Request) { r.UTMTerm = "\xff" }},
		{"callUrl", func(r *calltouch.Request) { r.CallURL = "/contacts" }},
		{"unitId", func(r *calltouch.Request) { r.UnitID = -1 }},
	}
	f, c := newFake(t)
	for _, tt := range tests {
		r := full()
		tt.edit(&r)
		_, err := c.Create(context.Background(), r)
		var ve *calltouch.ValidationError
		if !errors.As(err, &ve) || ve.Field != tt.field {
			t.Errorf("%s: err = %v", tt.field, err)
			continue
		}
		if err := r.Validate(); err == nil {
			t.Errorf("%s: Validate accepts what Create refuses", tt.field)
		}
		var rt retryable
		if !errors.As(err, &rt) || rt.Temporary() {
			t.Errorf("%s: not a permanent error", tt.field)
		}
	}
	// Boundaries that are fine.
	ok := full()
	ok.SessionID = ""
	ok.RouteKey = long(255)
	ok.Fields[0] = calltouch.Field{Name: long(255), Value: "x"}
	ok.Tags = strings.Split("1 2 3 4 5 6 7 8 9 "+long(100), " ")
	if err := ok.Validate(); err != nil {
		t.Error(err)
	}
	for _, p := range []string{"79992223344", "74951234567", "73832123456", "78123456789", "78612345678"} {
		if err := calltouch.CheckPhone(p); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
	// No route key anywhere.
	noKey := &calltouch.Client{BaseURL: f.URL(), Token: token, HTTP: f.Client()}
	var ve *calltouch.ValidationError
	if _, err := noKey.Create(context.Background(), calltouch.Request{Phone: "79992223344"}); !errors.As(err, &ve) || ve.Field != "routeKey" {
		t.Errorf("no route key: %v", err)
	}
	if n := f.Count(); n != 0 {
		t.Errorf("%d requests sent for invalid input", n)
	}
}

func TestNormalizePhone(t *testing.T) {
	for in, want := range map[string]string{
		"+7 (999) 222-33-44": "79992223344",
		"8 999 222 33 44":    "79992223344",
		"9992223344":         "79992223344",
		"7-495-123-45-67":    "74951234567",
		"8 (812) 123.45.67":  "78121234567",
	} {
		got, err := calltouch.NormalizePhone(in)
		if err != nil || got != want {
			t.Errorf("NormalizePhone(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "8 800 555 35 35", "+8 999 222 33 44", "call me", "+44 20 7946 0958", "99922233", "+7 999 222-33-44 ext 5"} {
		if got, err := calltouch.NormalizePhone(in); err == nil {
			t.Errorf("NormalizePhone(%q) = %q", in, got)
		}
	}
}

func TestErrorCodes(t *testing.T) {
	f, c := newFake(t)
	tests := []struct {
		code    int
		phrase  string
		already bool
	}{
		{1, "bug in pult", false},
		{10001, "no callback minutes left on the Calltouch account", false},
		{10002, "callback service is switched off", false},
		{10003, "route key", false},
		{10004, "visitor session", false},
		{10005, "this visitor session is reached", true},
		{10006, "this phone number is reached", true},
		{10007, "minimum interval", true},
		{10013, "phone number as invalid", false},
		{10099, "code 10099", false},
	}
	for _, tt := range tests {
		f.Script(fake.Answer{Code: tt.code})
		_, err := c.Create(context.Background(), calltouch.Request{Phone: "79992223344"})
		var apiErr *calltouch.APIError
		if !errors.As(err, &apiErr) {
			t.Fatalf("%d: err = %T %v", tt.code, err, err)
		}
		if apiErr.Status != 400 || apiErr.Code != tt.code || apiErr.Temporary() || apiErr.AlreadyRequested() != tt.already {
			t.Errorf("%d: %+v temporary=%v already=%v", tt.code, apiErr, apiErr.Temporary(), apiErr.AlreadyRequested())
		}
		if !strings.Contains(apiErr.OperatorMessage(), tt.phrase) {
			t.Errorf("%d: operator message %q", tt.code, apiErr.OperatorMessage())
		}
		if m := fake.Message(tt.code); m != "" && (apiErr.Message != m || !strings.Contains(err.Error(), m)) {
			t.Errorf("%d: Calltouch's message lost: %v", tt.code, err)
		}
	}
	// A 5xx carrying a documented code is still permanent.
	f.Script(fake.Answer{Status: 500, Code: 10001})
	_, err := c.Create(context.Background(), calltouch.Request{Phone: "79992223344"})
	var apiErr *calltouch.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 500 || apiErr.Temporary() {
		t.Errorf("500 with a code: %v", err)
	}
}

func TestFakeRules(t *testing.T) {
	f, c := newFake(t)
	f.SetRateLimit(0)
	ctx := context.Background()
	code := func(err error) int {
		var apiErr *calltouch.APIError
		if !errors.As(err, &apiErr) {
			t.Fatalf("err = %T %v", err, err)
		}
		return apiErr.Code
	}
	if _, err := c.Create(ctx, calltouch.Request{Phone: "79992223344", RouteKey: "missing"}); code(err) != calltouch.CodeNoWidget {
		t.Errorf("unknown route key: %v", err)
	}
	if _, err := c.Create(ctx, calltouch.Request{Phone: "79992223344", SessionID: "42"}); code(err) != calltouch.CodeNoSession {
		t.Errorf("unknown session: %v", err)
	}
	f.SetPhoneInterval(time.Hour)
	if _, err := c.Create(ctx, calltouch.Request{Phone: "79992223344"}); err != nil {
		t.Fatal(err)
	}
	_, err := c.Create(ctx, calltouch.Request{Phone: "79992223344"})
	if code(err) != calltouch.CodeTooFrequent {
		t.Errorf("repeat: %v", err)
	}
	var apiErr *calltouch.APIError
	if errors.As(err, &apiErr); !apiErr.AlreadyRequested() {
		t.Error("10007 is not AlreadyRequested")
	}
	f.SetPhoneInterval(0)
	f.SetPhoneLimit(2)
	if _, err := c.Create(ctx, calltouch.Request{Phone: "79992223344"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Create(ctx, calltouch.Request{Phone: "79992223344"}); code(err) != calltouch.CodePhoneLimit {
		t.Errorf("phone limit: %v", err)
	}
	f.AddSession("42")
	f.SetSessionLimit(1)
	if _, err := c.Create(ctx, calltouch.Request{Phone: "79992223344", SessionID: "42"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Create(ctx, calltouch.Request{Phone: "79992223346", SessionID: "42"}); code(err) != calltouch.CodeSessionLimit {
		t.Errorf("session limit: %v", err)
	}
	if n := len(f.Created()); n != 3 {
		t.Errorf("%d created", n)
	}
	// A wrong token.
	bad := &calltouch.Client{BaseURL: f.URL(), Token: "nope", RouteKey: routeKey, HTTP: f.Client()}
	_, err = bad.Create(ctx, calltouch.Request{Phone: "79992223344"})
	if !errors.As(err, &apiErr) || apiErr.Status != 403 || apiErr.Temporary() || !strings.Contains(apiErr.OperatorMessage(), "token") || apiErr.Message != "Invalid credentials" {
		t.Errorf("wrong token: %v", err)
	}
	if strings.Contains(err.Error(), "nope") {
		t.Errorf("error leaks the token: %v", err)
	}
}

func TestRateLimit(t *testing.T) {
	f, c := newFake(t)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Go(func() {
			_, err := c.Create(context.Background(), calltouch.Request{Phone: "7999222330" + string(rune('0'+i))})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	ok, limited := 0, 0
	for err := range errs {
		var rt retryable
		switch {
		case err == nil:
			ok++
		case errors.As(err, &rt) && rt.Temporary():
			limited++
		default:
			t.Errorf("unexpected %v", err)
		}
	}
	if ok != 5 || limited != 3 {
		t.Errorf("%d accepted, %d limited; want 5 and 3", ok, limited)
	}
	if f.MaxPerSecond() != 8 || f.Count() != 8 {
		t.Errorf("MaxPerSecond %d, Count %d", f.MaxPerSecond(), f.Count())
	}
	f.SetRateLimit(0)
	for i := range 7 {
		if _, err := c.Create(context.Background(), calltouch.Request{Phone: "7999222331" + string(rune('0'+i))}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestTemporaryFailures(t *testing.T) {
	f, c := newFake(t)
	date := time.Now().Add(2 * time.Minute).UTC().Format(http.TimeFormat)
	tests := []struct {
		answer    fake.Answer
		temporary bool
		after     time.Duration
	}{
		{fake.Answer{Status: 429, RetryAfter: "4"}, true, 4 * time.Second},
		{fake.Answer{Status: 503, RetryAfter: date}, true, 110 * time.Second},
		{fake.Answer{Status: 500}, true, 0},
		{fake.Answer{Status: 504, Message: "gateway timeout"}, true, 0},
		{fake.Answer{Status: 404}, false, 0},
	}
	for _, tt := range tests {
		f.Script(tt.answer)
		_, err := c.Create(context.Background(), calltouch.Request{Phone: "79992223344"})
		var rt retryable
		if !errors.As(err, &rt) || rt.Temporary() != tt.temporary {
			t.Errorf("%+v: err %v", tt.answer, err)
			continue
		}
		if got := rt.RetryDelay(); got < tt.after || got > tt.after+20*time.Second {
			t.Errorf("%+v: RetryAfter %v", tt.answer, got)
		}
	}
	// A hang ends with the caller's context, as a transport error.
	f.Script(fake.Answer{Hang: true})
	ctx, cancel := context.WithTimeout(context.Background(), 80*time.Millisecond)
	defer cancel()
	_, err := c.Create(ctx, calltouch.Request{Phone: "79992223344"})
	var rt retryable
	if !errors.Is(err, context.DeadlineExceeded) || errors.As(err, &rt) {
		t.Errorf("hang: %v", err)
	}
	if reqs, err := f.Wait(context.Background(), len(tests)+1); err != nil || reqs[len(tests)].Status != fake.StatusClientGone {
		t.Errorf("hang not recorded: %v", err)
	}
}

func TestAnswerShapes(t *testing.T) {
	tests := []struct {
		name   string
		status int
		body   string
		id     string
		code   int
		msg    string
		bad    bool
	}{
		{"data id", 200, `{"data":{"widgetRequestId":242839778}}`, "242839778", 0, "", false},
		{"string id", 200, `{"data":{"widgetRequestId":"abc"},"success":true}`, "abc", 0, "", false},
		{"top-level id", 201, `{"widgetRequestId":5}`, "5", 0, "", false},
		{"empty", 200, ``, "", 0, "", false},
		{"html", 200, `<html>ok</html>`, "", 0, "", true},
		{"truncated", 200, `{"data":{`, "", 0, "", true},
		{"error on 200", 200, `{"data":{"apiErrorData":{"errorCode":10003,"errorMessage":"нет виджета"}}}`, "", 10003, "нет виджета", false},
		{"top-level error", 400, `{"apiErrorData":{"errorCode":"10001","errorMessage":"мало минут"}}`, "", 10001, "мало минут", false},
		{"flat error", 400, `{"errorCode":10006,"errorMessage":"лимит"}`, "", 10006, "лимит", false},
		{"violations", 400, `{"data":{"validationErrorData":{"violations":[{"propertyPath":"phone","message":"Некорректный номер"}]}}}`, "", 0, "phone: Некорректный номер", false},
		{"message", 403, `{"message":"Invalid credentials"}`, "", 0, "Invalid credentials", false},
		{"html error", 502, `<html>Bad Gateway</html>`, "", 0, "Bad Gateway", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tt.status)
				_, _ = w.Write([]byte(tt.body))
			}))
			defer srv.Close()
			c := &calltouch.Client{BaseURL: srv.URL + "/", Token: token, RouteKey: routeKey}
			res, err := c.Create(context.Background(), calltouch.Request{Phone: "79992223344"})
			switch {
			case tt.bad:
				if !errors.Is(err, calltouch.ErrBadResponse) {
					t.Errorf("err = %v, want ErrBadResponse", err)
				}
			case tt.code == 0 && tt.msg == "":
				if err != nil || res.WidgetRequestID != tt.id {
					t.Errorf("got %+v, %v", res, err)
				}
			default:
				var apiErr *calltouch.APIError
				if !errors.As(err, &apiErr) || apiErr.Code != tt.code || apiErr.Message != tt.msg {
					t.Errorf("err = %#v", err)
				}
			}
		})
	}
}

func TestRedirectNotFollowed(t *testing.T) {
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("followed a redirect; token %q", r.Header.Get("Access-Token"))
	}))
	defer evil.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, evil.URL+r.URL.Path, http.StatusPermanentRedirect)
	}))
	defer srv.Close()
	c := &calltouch.Client{BaseURL: srv.URL, Token: token, RouteKey: routeKey}
	_, err := c.Create(context.Background(), calltouch.Request{Phone: "79992223344"})
	var apiErr *calltouch.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 308 || apiErr.Temporary() {
		t.Errorf("err = %v", err)
	}
}

func TestFakeRefusesStrictly(t *testing.T) {
	f, _ := newFake(t)
	f.SetRateLimit(0)
	post := func(ct, tok, body string) (int, string) {
		req, _ := http.NewRequest("POST", f.URL()+calltouch.PathCreate, strings.NewReader(body))
		if ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		if tok != "" {
			req.Header.Set("Access-Token", tok)
		}
		resp, err := f.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	js := "application/json"
	tests := []struct {
		ct, tok, body string
		status        int
		want          string
	}{
		{js, "", `{"routeKey":"routekey_1","phone":"79992223344"}`, 403, "Invalid credentials"},
		{"application/x-www-form-urlencoded", token, `{"routeKey":"routekey_1","phone":"79992223344"}`, 415, "Content-Type"},
		{js, token, ``, 400, `"errorCode":1`},
		{js, token, `{"routeKey":`, 400, `"errorCode":1`},
		{js, token, `{"routeKey":"routekey_1"}`, 400, `"propertyPath":"phone"`},
		{js, token, `{"routeKey":"routekey_1","phone":79992223344}`, 400, `"propertyPath":"phone"`},
		{js, token, `{"routeKey":"routekey_1","phone":"88002223344"}`, 400, `"propertyPath":"phone"`},
		{js, token, `{"routeKey":"routekey_1","phone":"78042223344"}`, 400, `"propertyPath":"phone"`},
		{js, token, `{"phone":"79992223344"}`, 400, `"propertyPath":"routeKey"`},
		{js, token, `{"routeKey":"routekey_1","phone":"79992223344","route_key":"x"}`, 400, `"propertyPath":"route_key"`},
		{js, token, `{"routeKey":"routekey_1","phone":"79992223344","fields":[{"name":"a","value":""}]}`, 400, `fields[0].value`},
		{js, token, `{"routeKey":"routekey_1","phone":"79992223344","fields":[{"name":"1","value":"1"},{"name":"2","value":"2"},{"name":"3","value":"3"},{"name":"4","value":"4"},{"name":"5","value":"5"},{"name":"6","value":"6"}]}`, 400, `"propertyPath":"fields"`},
		{js, token, `{"routeKey":"routekey_1","phone":"79992223344","tags":["` + strings.Repeat("t", 101) + `"]}`, 400, `tags[0]`},
		{js, token, `{"routeKey":"routekey_1","phone":"79992223344","scheduleTime":"01-02-2021 17:10:00"}`, 400, `scheduleTime`},
		{js, token, `{"routeKey":"routekey_1","phone":"79992223344","unitId":"5"}`, 400, `unitId`},
		{js, token, `{"routeKey":"routekey_1","phone":"79992223344","utmCampaign":["a"]}`, 400, `utmCampaign`},
		{js + ";charset=UTF-8", token, `{"routeKey":"routekey_1","phone":"79992223344","sessionId":null}`, 200, `widgetRequestId`},
	}
	for _, tt := range tests {
		status, body := post(tt.ct, tt.tok, tt.body)
		if status != tt.status || !strings.Contains(body, tt.want) {
			t.Errorf("%.80s: %d %s; want %d with %s", tt.body, status, body, tt.status, tt.want)
		}
	}
	for _, r := range f.Requests() {
		if (r.Status != 200) != (r.Refusal != "") {
			t.Errorf("refusal recorded wrongly: %d %q", r.Status, r.Refusal)
		}
	}
}

func TestHangReleasedByClose(t *testing.T) {
	f := fake.NewServer(token, routeKey)
	f.Script(fake.Answer{Hang: true})
	c := &calltouch.Client{BaseURL: f.URL(), Token: token, RouteKey: routeKey, HTTP: f.Client()}
	done := make(chan error, 1)
	go func() {
		_, err := c.Create(context.Background(), calltouch.Request{Phone: "79992223344"})
		done <- err
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for f.Count() == 0 {
		select {
		case <-ctx.Done():
			t.Fatal("request never arrived")
		case <-time.After(5 * time.Millisecond):
		}
	}
	f.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Error("a hung request succeeded")
		}
	case <-ctx.Done():
		t.Fatal("Close did not release the hung request")
	}
}
