package qolio_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/pult/pult/relay/qolio"
	"github.com/pult/pult/relay/qolio/fake"
)

const token = "289a2b91a681031fc576e3c66e155761"

var msk = time.FixedZone("MSK", 3*3600)

// retryable is what an outbox adapter looks for.
type retryable interface {
	Temporary() bool
	RetryDelay() time.Duration
}

func intp(n int) *int { return &n }

func sample() qolio.Communication {
	return qolio.Communication{
		OperatorID:      "anna@example.ru",
		UID:             "pult-chat-1911",
		CommunicationID: "1911-1498-11",
		Type:            qolio.TypeChat,
		Title:           "Добрый вечер. Я хочу приобрести холодильник",
		Source:          "telegram",
		NPS:             intp(8),
		ClientFeedback:  intp(1),
		Status:          qolio.StatusClosed,
		Direction:       qolio.DirectionIncoming,
		Parts: []qolio.Part{
			{ID: "m1", Author: qolio.Author{Type: qolio.AuthorClient}, Body: "Добрый вечер. Я хочу приобрести холодильник",
				CreatedAt: time.Date(2020, 1, 17, 8, 15, 30, 0, msk)},
			{ID: "m2", Author: qolio.Author{Type: qolio.AuthorOperator, ID: "123"}, Body: "<p>Здравствуйте!</p>", ContentType: qolio.ContentTextHTML,
				CreatedAt: time.Date(2020, 1, 17, 8, 16, 0, 0, msk), UpdatedAt: time.Date(2020, 1, 17, 9, 30, 28, 0, msk)},
		},
		CustomFields: map[string]any{"reopens_count": 3},
		Client:       &qolio.Customer{ID: "375299933332", FirstName: "Ольга", PhoneNumber: "+375299933332"},
	}
}

func newFake(t *testing.T) (*fake.Server, *qolio.Client) {
	t.Helper()
	f := fake.NewServer(token)
	t.Cleanup(f.Close)
	return f, &qolio.Client{URL: f.URL(), Token: token, HTTP: f.Client()}
}

var timeEqual = cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })

func TestSendWire(t *testing.T) {
	f, c := newFake(t)
	if err := c.Send(context.Background(), sample()); err != nil {
		t.Fatal(err)
	}
	reqs := f.Requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests", len(reqs))
	}
	r := reqs[0]
	if r.Method != "POST" || r.Path != "/api/v1/integrations/"+f.IntegrationID()+"/text" || r.Status != 201 {
		t.Errorf("%s %s → %d %s", r.Method, r.Path, r.Status, r.Refusal)
	}
	if got := r.Header.Get("Authorization"); got != token {
		t.Errorf("Authorization = %q, want the bare token", got)
	}
	if got := r.Header.Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type = %q", got)
	}
	want := `{
		"operator_id": "anna@example.ru", "uid": "pult-chat-1911", "communication_id": "1911-1498-11",
		"communication_type": "chat", "title": "Добрый вечер. Я хочу приобрести холодильник",
		"source": "telegram", "nps": 8, "client_feedback": 1, "status": "closed", "direction": "incoming",
		"communication_parts": [
			{"communication_part_id": "m1", "author": {"type": "client"}, "body": "Добрый вечер. Я хочу приобрести холодильник",
			 "created_at": "2020-01-17T08:15:30+03:00"},
			{"communication_part_id": "m2", "author": {"type": "operator", "id": "123"}, "body": "<p>Здравствуйте!</p>",
			 "content_type": "text/html", "created_at": "2020-01-17T08:16:00+03:00", "updated_at": "2020-01-17T09:30:28+03:00"}
		],
		"custom_fields": {"reopens_count": 3},
		"client": {"id": "375299933332", "first_name": "Ольга", "phone_number": "+375299933332"}
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
	st, ok := f.Communication("1911-1498-11")
	if !ok || st.Versions != 1 {
		t.Fatalf("stored %v %+v", ok, st)
	}
	wantComm := sample()
	wantComm.CustomFields = map[string]any{"reopens_count": float64(3)}
	if diff := cmp.Diff(wantComm, st.Communication, timeEqual); diff != "" {
		t.Errorf("stored (-want +got)\n%s", diff)
	}
}

func TestResendReplaces(t *testing.T) {
	f, c := newFake(t)
	ctx := context.Background()
	first := sample()
	first.Status = qolio.StatusOpened
	first.Parts = first.Parts[:1]
	if err := c.Send(ctx, first); err != nil {
		t.Fatal(err)
	}
	second := sample()
	second.Parts[0].Body = "edited"
	second.Parts = append(second.Parts, qolio.Part{ID: "m3", Author: qolio.Author{Type: qolio.AuthorClient}, Body: "Спасибо",
		CreatedAt: time.Date(2020, 1, 17, 8, 20, 0, 0, msk)})
	for range 2 {
		if err := c.Send(ctx, second); err != nil {
			t.Fatal(err)
		}
	}
	if got := f.Replacements(); got != 2 {
		t.Errorf("Replacements = %d, want 2", got)
	}
	all := f.Communications()
	if len(all) != 1 || all[0].Versions != 3 {
		t.Fatalf("stored %+v", all)
	}
	got := all[0].Communication
	if got.Status != qolio.StatusClosed || len(got.Parts) != 3 || got.Parts[0].Body != "edited" {
		t.Errorf("not replaced: %+v", got)
	}
	if st := f.Requests()[1].Status; st != 200 {
		t.Errorf("replacement answered %d", st)
	}
	// A part left out of a re-send stays: Qolio only adds and updates parts.
	third := sample()
	third.Parts = third.Parts[2-1:]
	if err := c.Send(ctx, third); err != nil {
		t.Fatal(err)
	}
	if st, _ := f.Communication("1911-1498-11"); len(st.Communication.Parts) != 3 {
		t.Errorf("parts after a shorter re-send: %d", len(st.Communication.Parts))
	}
}

func TestValidation(t *testing.T) {
	tests := []struct {
		field string
		edit  func(*qolio.Communication)
	}{
		{"operator_id", func(c *qolio.Communication) { c.OperatorID = "" }},
		{"operator_id", func(c *qolio.Communication) { c.OperatorID = "  " }},
		{"communication_id", func(c *qolio.Communication) { c.CommunicationID = "" }},
		{"communication_id", func(c *qolio.Communication) { c.CommunicationID = strings.Repeat("я", 256) }},
		{"uid", func(c *qolio.Communication) { c.UID = "a\nb" }},
		{"communication_type", func(c *qolio.Communication) { c.Type = "call" }},
		{"status", func(c *qolio.Communication) { c.Status = "done" }},
		{"direction", func(c *qolio.Communication) { c.Direction = "outgoing" }},
		{"title", func(c *qolio.Communication) { c.Title = "\xff" }},
		{"communication_parts[0].communication_part_id", func(c *qolio.Communication) { c.Parts[0].ID = "" }},
		{"communication_parts[1].communication_part_id", func(c *qolio.Communication) { c.Parts[1].ID = "m1" }},
		{"communication_parts[0].author.type", func(c *qolio.Communication) { c.Parts[0].Author.Type = "" }},
		{"communication_parts[0].author.type", func(c *qolio.Communication) { c.Parts[0].Author.Type = "bot" }},
		{"communication_parts[1].content_type", func(c *qolio.Communication) { c.Parts[1].ContentType = "text/markdown" }},
		{"communication_parts[0].created_at", func(c *qolio.Communication) { c.Parts[0].CreatedAt = time.Time{} }},
		{"communication_parts[0].updated_at", func(c *qolio.Communication) { c.Parts[0].UpdatedAt = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }},
		{"communication_parts[0].body", func(c *qolio.Communication) { c.Parts[0].Body = "\xc3" }},
		{"custom_fields", func(c *qolio.Communication) { c.CustomFields = map[string]any{"f": func() {}} }},
		{"client.email", func(c *qolio.Communication) { c.Client.Email = "a\x00b" }},
	}
	f, c := newFake(t)
	for _, tt := range tests {
		comm := sample()
		tt.edit(&comm)
		err := c.Send(context.Background(), comm)
		var ve *qolio.ValidationError
		if !errors.As(err, &ve) || ve.Field != tt.field {
			t.Errorf("%s: err = %v", tt.field, err)
			continue
		}
		if !strings.Contains(err.Error(), tt.field) {
			t.Errorf("message does not name the field: %v", err)
		}
		var r retryable
		if !errors.As(err, &r) || r.Temporary() {
			t.Errorf("%s: validation error is not a permanent retryable-interface error", tt.field)
		}
	}
	if n := f.Count(); n != 0 {
		t.Errorf("%d requests sent for invalid communications", n)
	}
	// Parts without a body, type, status or direction are fine.
	comm := sample()
	comm.Type, comm.Status, comm.Direction, comm.NPS, comm.Client = "", "", "", nil, nil
	comm.Parts[0].Body = ""
	if err := c.Send(context.Background(), comm); err != nil {
		t.Error(err)
	}
}

func TestConfigRefusals(t *testing.T) {
	f, _ := newFake(t)
	for _, c := range []*qolio.Client{
		{URL: "", Token: token},
		{URL: "api.qolio.ru/api/v1/integrations/x/text", Token: token},
		{URL: "ftp://api.qolio.ru/api/v1/integrations/x/text", Token: token},
		{URL: f.BaseURL() + "/api/v1/integrations/x/calls", Token: token},
		{URL: f.BaseURL() + "/api/v1/integrations//text", Token: token},
		{URL: f.URL() + "?token=x", Token: token},
		{URL: strings.Replace(f.URL(), "http://", "http://u:p@", 1), Token: token},
		{URL: f.URL(), Token: ""},
		{URL: f.URL(), Token: "a\r\nX-Evil: 1"},
	} {
		if err := c.Send(context.Background(), sample()); err == nil {
			t.Errorf("%q / %q accepted", c.URL, c.Token)
		}
	}
	if n := f.Count(); n != 0 {
		t.Errorf("%d requests sent", n)
	}
	// An on-premises installation under a prefix is fine.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/dealapp/api/v1/integrations/abc/text" {
			t.Errorf("path %s", r.URL.Path)
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	c := &qolio.Client{URL: srv.URL + "/dealapp/api/v1/integrations/abc/text", Token: token}
	if err := c.Send(context.Background(), sample()); err != nil {
		t.Error(err)
	}
}

func TestErrors(t *testing.T) {
	f, c := newFake(t)
	ctx := context.Background()
	date := time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)
	tests := []struct {
		name      string
		answer    fake.Answer
		status    int
		msg       string
		temporary bool
		after     time.Duration // lower bound
	}{
		{"refused", fake.Answer{Status: 422, Message: "operator not found"}, 422, "operator not found", false, 0},
		{"forbidden", fake.Answer{Status: 403, Message: "integration disabled"}, 403, "integration disabled", false, 0},
		{"rate limited", fake.Answer{Status: 429, Message: "slow down", RetryAfter: "7"}, 429, "slow down", true, 7 * time.Second},
		{"maintenance", fake.Answer{Status: 503, RetryAfter: date}, 503, "fake: scripted Service Unavailable", true, 80 * time.Second},
		{"server error", fake.Answer{Status: 500}, 500, "fake: scripted Internal Server Error", true, 0},
		{"bad gateway", fake.Answer{Status: 502, Message: "upstream"}, 502, "upstream", true, 0},
		{"not implemented", fake.Answer{Status: 501}, 501, "fake: scripted Not Implemented", false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.Script(tt.answer)
			err := c.Send(ctx, sample())
			var apiErr *qolio.APIError
			if !errors.As(err, &apiErr) {
				t.Fatalf("err = %T %v", err, err)
			}
			if apiErr.Status != tt.status || apiErr.Message != tt.msg {
				t.Errorf("got %d %q", apiErr.Status, apiErr.Message)
			}
			var r retryable
			if !errors.As(err, &r) || r.Temporary() != tt.temporary {
				t.Errorf("Temporary = %v, want %v", apiErr.Temporary(), tt.temporary)
			}
			if tt.after > 0 && (r.RetryDelay() < tt.after || r.RetryDelay() > tt.after+20*time.Second) {
				t.Errorf("RetryDelay = %v, want about %v", r.RetryDelay(), tt.after)
			}
			if tt.after == 0 && r.RetryDelay() != 0 {
				t.Errorf("RetryDelay = %v", r.RetryDelay())
			}
			if strings.Contains(err.Error(), token) {
				t.Errorf("error leaks the token: %v", err)
			}
		})
	}
	// A scripted 2xx still stores.
	f.Script(fake.Answer{Status: 202})
	if err := c.Send(ctx, sample()); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.Communication("1911-1498-11"); !ok {
		t.Error("not stored")
	}
	// The fake's own refusals carry its message.
	bad := &qolio.Client{URL: f.URL(), Token: "wrong", HTTP: f.Client()}
	err := bad.Send(ctx, sample())
	var apiErr *qolio.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 401 || apiErr.Message != "invalid token" || apiErr.Temporary() {
		t.Errorf("wrong token: %v", err)
	}
}

func TestHang(t *testing.T) {
	f, c := newFake(t)
	f.Script(fake.Answer{Hang: true})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := c.Send(ctx, sample())
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want DeadlineExceeded", err)
	}
	var r retryable
	if errors.As(err, &r) {
		t.Errorf("a transport failure looks like a partner answer: %v", err)
	}
	if strings.Contains(err.Error(), f.IntegrationID()) {
		t.Errorf("error names the integration URL: %v", err)
	}
	reqs, werr := f.Wait(context.Background(), 1)
	if werr != nil || reqs[0].Status != fake.StatusClientGone {
		t.Errorf("recorded %+v %v", reqs, werr)
	}
	// The next request is answered normally.
	if err := c.Send(context.Background(), sample()); err != nil {
		t.Error(err)
	}
}

func TestHangReleasedByClose(t *testing.T) {
	f := fake.NewServer(token)
	f.Script(fake.Answer{Hang: true})
	c := &qolio.Client{URL: f.URL(), Token: token, HTTP: f.Client()}
	done := make(chan error, 1)
	go func() { done <- c.Send(context.Background(), sample()) }()
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

func TestRedirectNotFollowed(t *testing.T) {
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("followed a redirect; Authorization %q", r.Header.Get("Authorization"))
	}))
	defer evil.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, evil.URL+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	defer srv.Close()
	c := &qolio.Client{URL: srv.URL + "/api/v1/integrations/x/text", Token: token}
	err := c.Send(context.Background(), sample())
	var apiErr *qolio.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 307 || apiErr.Temporary() {
		t.Errorf("err = %v", err)
	}
}

func TestErrorBodies(t *testing.T) {
	tests := []struct {
		body string
		ct   string
		want string
	}{
		{`{"message":"Operator not found"}`, "application/json", "Operator not found"},
		{`{"error":"invalid token"}`, "application/json", "invalid token"},
		{`{"error":{"message":"quota exceeded","code":7}}`, "application/json", "quota exceeded"},
		{`{"errors":[{"status":"422","title":"Invalid","detail":"can't be blank","source":{"pointer":"/data/attributes/operator_id"}}]}`, "application/vnd.api+json", "operator_id: can't be blank"},
		{`{"errors":{"operator_id":["can't be blank"],"communication_type":["is not included in the list"]}}`, "application/json", "communication_type: is not included in the list; operator_id: can't be blank"},
		{`{"errors":["first","second"]}`, "application/json", "first; second"},
		{`{"message":"bad","errors":["bad"]}`, "application/json", "bad"},
		{"Too many\nrequests\x00", "text/plain", "Too many requests"},
		{`<html><body>502</body></html>`, "text/html", "Bad Request"},
		{``, "", "Bad Request"},
		{`{"success":false}`, "application/json", "Bad Request"},
		{`{"message":"` + strings.Repeat("x", 3000) + `"}`, "application/json", strings.Repeat("x", 512) + "…"},
	}
	for _, tt := range tests {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", tt.ct)
			w.WriteHeader(400)
			_, _ = w.Write([]byte(tt.body))
		}))
		c := &qolio.Client{URL: srv.URL + "/api/v1/integrations/x/text", Token: token}
		err := c.Send(context.Background(), sample())
		srv.Close()
		var apiErr *qolio.APIError
		if !errors.As(err, &apiErr) || apiErr.Message != tt.want {
			t.Errorf("%.60q: got %v, want message %q", tt.body, err, tt.want)
		}
	}
}

func TestHugeAnswerIsBounded(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(500)
		chunk := []byte(strings.Repeat("x", 64<<10))
		for range 64 { // 4 MiB
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}))
	defer srv.Close()
	c := &qolio.Client{URL: srv.URL + "/api/v1/integrations/x/text", Token: token}
	err := c.Send(context.Background(), sample())
	var apiErr *qolio.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 500 || len(apiErr.Message) > 1100 {
		t.Errorf("err = %.200v", err)
	}
}

func TestRatePeak(t *testing.T) {
	f, c := newFake(t)
	for i := range 6 {
		comm := sample()
		comm.CommunicationID = "c" + string(rune('0'+i))
		if err := c.Send(context.Background(), comm); err != nil {
			t.Fatal(err)
		}
	}
	if got := f.MaxPerSecond(); got != 6 {
		t.Errorf("MaxPerSecond = %d, want 6", got)
	}
	if got := f.Count(); got != 6 {
		t.Errorf("Count = %d", got)
	}
	if got := len(f.Communications()); got != 6 {
		t.Errorf("%d stored", got)
	}
}
