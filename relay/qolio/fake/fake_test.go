package fake

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/pult/pult/relay/qolio"
)

const tok = "t0ken"

type answer struct {
	status int
	body   map[string]any
	header http.Header
}

func post(t *testing.T, s *Server, method, url string, header map[string]string, body string) answer {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	a := answer{status: resp.StatusCode, header: resp.Header}
	if err := json.NewDecoder(resp.Body).Decode(&a.body); err != nil {
		t.Fatalf("answer is not JSON: %v", err)
	}
	return a
}

var good = map[string]string{"Content-Type": "application/json", "Authorization": tok}

const minimal = `{"operator_id":"7001","communication_id":"c1"}`

func TestRefusals(t *testing.T) {
	s := NewServer(tok)
	defer s.Close()
	part := func(p string) string {
		return `{"operator_id":"1","communication_id":"c","communication_parts":[` + p + `]}`
	}
	tests := []struct {
		name   string
		method string
		url    string
		header map[string]string
		body   string
		status int
		field  string
	}{
		{"GET", "GET", s.URL(), good, "", 405, ""},
		{"other integration", "POST", s.BaseURL() + "/api/v1/integrations/nope/text", good, minimal, 404, ""},
		{"calls path", "POST", strings.TrimSuffix(s.URL(), "/text") + "/calls", good, minimal, 404, ""},
		{"query", "POST", s.URL() + "?a=1", good, minimal, 400, ""},
		{"no auth", "POST", s.URL(), map[string]string{"Content-Type": "application/json"}, minimal, 401, ""},
		{"bearer", "POST", s.URL(), map[string]string{"Content-Type": "application/json", "Authorization": "Bearer " + tok}, minimal, 401, ""},
		{"wrong token", "POST", s.URL(), map[string]string{"Content-Type": "application/json", "Authorization": "x"}, minimal, 401, ""},
		{"form", "POST", s.URL(), map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Authorization": tok}, minimal, 415, ""},
		{"latin1", "POST", s.URL(), map[string]string{"Content-Type": "application/json; charset=latin1", "Authorization": tok}, minimal, 415, ""},
		{"empty", "POST", s.URL(), good, "", 400, ""},
		{"not JSON", "POST", s.URL(), good, "operator_id=1", 400, ""},
		{"array", "POST", s.URL(), good, "[]", 400, ""},
		{"too big", "POST", s.URL(), good, `{"operator_id":"1","title":"` + strings.Repeat("x", maxBody) + `"}`, 413, ""},
		{"no operator", "POST", s.URL(), good, `{"communication_id":"c"}`, 422, "operator_id"},
		{"blank operator", "POST", s.URL(), good, `{"operator_id":" "}`, 422, "operator_id"},
		{"numeric operator", "POST", s.URL(), good, `{"operator_id":7001}`, 422, "operator_id"},
		{"unknown field", "POST", s.URL(), good, `{"operator_id":"1","operatorId":"1"}`, 422, "operatorId"},
		{"type", "POST", s.URL(), good, `{"operator_id":"1","communication_type":"call"}`, 422, "communication_type"},
		{"status", "POST", s.URL(), good, `{"operator_id":"1","status":"done"}`, 422, "status"},
		{"direction", "POST", s.URL(), good, `{"operator_id":"1","direction":"outgoing"}`, 422, "direction"},
		{"nps", "POST", s.URL(), good, `{"operator_id":"1","nps":"high"}`, 422, "nps"},
		{"custom fields", "POST", s.URL(), good, `{"operator_id":"1","custom_fields":[1]}`, 422, "custom_fields"},
		{"client field", "POST", s.URL(), good, `{"operator_id":"1","client":{"name":"x"}}`, 422, "client.name"},
		{"parts object", "POST", s.URL(), good, `{"operator_id":"1","communication_parts":{}}`, 422, "communication_parts"},
		{"no author", "POST", s.URL(), good, part(`{"body":"x","created_at":"2020-01-17T08:15:30+03:00"}`), 422, "communication_parts[0].author"},
		{"author type", "POST", s.URL(), good, part(`{"author":{"type":"bot"},"created_at":"2020-01-17T08:15:30+03:00"}`), 422, "communication_parts[0].author.type"},
		{"author id number", "POST", s.URL(), good, part(`{"author":{"type":"client","id":5},"created_at":"2020-01-17T08:15:30+03:00"}`), 422, "communication_parts[0].author.id"},
		{"content type", "POST", s.URL(), good, part(`{"author":{"type":"client"},"content_type":"text/markdown","created_at":"2020-01-17T08:15:30+03:00"}`), 422, "communication_parts[0].content_type"},
		{"no created_at", "POST", s.URL(), good, part(`{"author":{"type":"client"}}`), 422, "communication_parts[0].created_at"},
		{"bad created_at", "POST", s.URL(), good, part(`{"author":{"type":"client"},"created_at":"2020-01-17 08:15:30"}`), 422, "communication_parts[0].created_at"},
		{"bad updated_at", "POST", s.URL(), good, part(`{"author":{"type":"client"},"created_at":"2020-01-17T08:15:30Z","updated_at":1579248930}`), 422, "communication_parts[0].updated_at"},
	}
	for _, tt := range tests {
		a := post(t, s, tt.method, tt.url, tt.header, tt.body)
		if a.status != tt.status {
			t.Errorf("%s: status %d %v, want %d", tt.name, a.status, a.body, tt.status)
			continue
		}
		msg, _ := a.body["message"].(string)
		if msg == "" {
			t.Errorf("%s: no message: %v", tt.name, a.body)
		}
		if tt.field != "" {
			errs, _ := a.body["errors"].(map[string]any)
			if _, ok := errs[tt.field]; !ok {
				t.Errorf("%s: errors %v do not name %s", tt.name, a.body, tt.field)
			}
		}
	}
	if n := len(s.Communications()); n != 0 {
		t.Errorf("%d communications stored from refused requests", n)
	}
	for _, r := range s.Requests() {
		if r.Refusal == "" {
			t.Errorf("refusal not recorded: %s %s %d", r.Method, r.Path, r.Status)
		}
	}
}

func TestAccepts(t *testing.T) {
	s := NewServer(tok)
	defer s.Close()
	// Qolio's own example (with operator_id added), which repeats a part id,
	// gives nps as a number and omits communication_type's friends.
	example := `{
	  "operator_id": "anna@example.ru",
	  "client_id": "375299933332",
	  "communication_id": "1911-1498-11",
	  "communication_type": "chat",
	  "title": "Добрый вечер",
	  "source": "chat",
	  "nps": 8,
	  "client_feedback": "1",
	  "status": "closed",
	  "direction": "incoming",
	  "communication_parts": [
	    {"communication_part_id": "2202737122", "author": {"type": "client"}, "body": "Добрый вечер", "created_at": "2020-01-17T08:15:30+03:00"},
	    {"communication_part_id": "2202737122", "author": {"type": "client"}, "body": "Интересует модель X", "created_at": "2020-01-17T08:15:30+03:00", "updated_at": "2020-01-17T09:30:28+03:00"},
	    {"communication_part_id": "2202737122", "author": {"id": "123", "type": "operator"}, "body": "Здравствуйте!", "content_type": "text/plain", "created_at": "2020-01-17T08:15:30.123+03:00", "updated_at": "2020-01-17T08:15:30+03:00"}
	  ],
	  "custom_fields": {"reopens_count": 3}
	}`
	hdr := map[string]string{"Content-Type": "application/json; charset=utf-8", "Authorization": tok}
	if a := post(t, s, "POST", s.URL(), hdr, example); a.status != 201 {
		t.Fatalf("example: %d %v", a.status, a.body)
	}
	if a := post(t, s, "POST", s.URL(), hdr, example); a.status != 200 {
		t.Fatalf("example again: %d %v", a.status, a.body)
	}
	st, ok := s.Communication("1911-1498-11")
	if !ok || st.Versions != 2 || len(st.Communication.Parts) != 3 || *st.Communication.ClientFeedback != 1 || *st.Communication.NPS != 8 {
		t.Fatalf("stored %+v", st)
	}
	if s.Replacements() != 1 {
		t.Errorf("Replacements = %d", s.Replacements())
	}
	// Without a communication_id each body is a new communication.
	for range 2 {
		if a := post(t, s, "POST", s.URL(), good, `{"operator_id":"1"}`); a.status != 201 {
			t.Fatalf("anonymous: %d %v", a.status, a.body)
		}
	}
	if n := len(s.Communications()); n != 3 || s.Replacements() != 1 {
		t.Errorf("%d stored, %d replacements", n, s.Replacements())
	}
}

func TestScriptOrderAndWait(t *testing.T) {
	s := NewServer(tok)
	defer s.Close()
	s.Script(Answer{Status: 429, RetryAfter: "3"}, Answer{Status: 500, Message: "boom"})
	a := post(t, s, "POST", s.URL(), good, "garbage is not read when scripted")
	if a.status != 429 || a.header.Get("Retry-After") != "3" {
		t.Errorf("first: %d %v", a.status, a.header)
	}
	if a := post(t, s, "POST", s.URL(), good, minimal); a.status != 500 || a.body["message"] != "boom" {
		t.Errorf("second: %d %v", a.status, a.body)
	}
	if a := post(t, s, "POST", s.URL(), good, minimal); a.status != 201 {
		t.Errorf("third: %d %v", a.status, a.body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	reqs, err := s.Wait(ctx, 3)
	if err != nil || len(reqs) != 3 {
		t.Fatalf("%v %d", err, len(reqs))
	}
	short, cancel2 := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel2()
	if _, err := s.Wait(short, 4); err == nil {
		t.Error("Wait for a request that never comes returned")
	}
}

func TestMergeParts(t *testing.T) {
	p := func(id, body string) qolio.Part { return qolio.Part{ID: id, Body: body} }
	old := []qolio.Part{p("a", "1"), p("b", "2"), p("a", "3")}
	got := mergeParts(old, []qolio.Part{p("a", "1'"), p("c", "4"), p("a", "3'"), p("a", "5"), p("", "6")})
	want := []qolio.Part{p("a", "1'"), p("b", "2"), p("a", "3'"), p("c", "4"), p("a", "5"), p("", "6")}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got)\n%s", diff)
	}
	if old[0].Body != "1" {
		t.Error("merge changed the stored slice")
	}
}
