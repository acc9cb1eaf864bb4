package relay_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pult/pult/agent"
	"github.com/pult/pult/agent/wire"
	"github.com/pult/pult/relay/config"
	"github.com/pult/pult/relay/operators"
	"github.com/pult/pult/relay/qolio"
	qfake "github.com/pult/pult/relay/qolio/fake"
)

const (
	testQolioToken     = "qolio-integration-token-0123456789"
	testSmartsuppToken = "smartsupp-hook-token-0123"
)

// qolioWorld is a relay sending transcripts to a strict fake of Qolio,
// which can be made to answer 503 (down) in front of the fake.
type qolioWorld struct {
	t     *testing.T
	r     *testRelay
	qolio *qfake.Server
	down  atomic.Bool
	url   string
}

func newQolioWorld(t *testing.T, mod func(*config.Config)) *qolioWorld {
	t.Helper()
	w := &qolioWorld{t: t, qolio: qfake.NewServer(testQolioToken)}
	t.Cleanup(w.qolio.Close)
	front := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if w.down.Load() {
			http.Error(rw, `{"message":"maintenance"}`, http.StatusServiceUnavailable)
			return
		}
		w.qolio.ServeHTTP(rw, r)
	}))
	t.Cleanup(front.Close)
	w.url = front.URL + "/api/v1/integrations/" + w.qolio.IntegrationID() + "/text"
	cfg := testConfig(t)
	cfg.Qolio.URL = w.url
	cfg.Qolio.Token = testQolioToken
	cfg.Smartsupp.Token = testSmartsuppToken
	if mod != nil {
		mod(&cfg)
	}
	w.r = startRelay(t, cfg)
	return w
}

func smartsuppFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("smartsupp", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (r *testRelay) postSmartsupp(query string, body []byte) (int, map[string]any) {
	r.t.Helper()
	resp, err := http.Post(r.URL+"/hooks/smartsupp?"+query, "application/json", bytes.NewReader(body))
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		r.t.Fatalf("smartsupp hook: answer is not JSON: %q", b)
	}
	return resp.StatusCode, out
}

// postTranscript posts a submission with an operator's token.
func (r *testRelay) postTranscript(token string, sub any) (int, []byte) {
	r.t.Helper()
	b, _ := json.Marshal(sub)
	req, _ := http.NewRequest(http.MethodPost, r.URL+wire.PathTranscripts, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

func transcriptWith(id, state string) func(agent.Event) bool {
	return func(e agent.Event) bool {
		return e.Kind == agent.EventTranscript && e.Transcript.ID == id && e.Transcript.State == state
	}
}

func ms(n int64) time.Time { return time.UnixMilli(n).Truncate(time.Second) }

// Smartsupp's example export becomes exactly this Qolio communication,
// under the operator mapped to the agent who wrote; the operator sees it
// queued, then delivered. The same chat again is one communication:
// unchanged it is not even sent, changed it replaces the first.
func TestSmartsuppHookToQolio(t *testing.T) {
	checkGoroutines(t)
	w := newQolioWorld(t, nil)
	_, tok := w.r.addOperatorWith(operators.NewOperator{Name: "John Doe", Code: "100", UserID: "1", SmartsuppAgentID: "3"})
	anna := startAgent(t, w.r.URL, tok, nil)
	anna.waitOnline()
	seed := smartsuppFixture(t, "seed_export.json")
	if status, out := w.r.postSmartsupp("token="+testSmartsuppToken, seed); status != 200 || out["communicationId"] != "smartsupp-55039" {
		t.Fatalf("hook: %d %v", status, out)
	}
	q := anna.waitFor("queued", transcriptWith("55039", wire.TranscriptQueued)).Transcript
	if q.CommunicationID != "smartsupp-55039" || q.Source != "smartsupp" || q.Messages != 4 || q.Title != "Smartsupp chat 55039" {
		t.Errorf("queued state: %+v", q)
	}
	anna.waitFor("delivered", transcriptWith("55039", wire.TranscriptDelivered))
	five := 5
	want := qolio.Communication{
		OperatorID: "100", CommunicationID: "smartsupp-55039", Type: "chat", Title: "Smartsupp chat 55039",
		Source: "smartsupp", ClientFeedback: &five, Status: "closed", Direction: "incoming",
		CustomFields: map[string]any{"chat_status": "closed"},
		Client:       &qolio.Customer{ID: "27671", FirstName: "Dusan Kmet", Email: "dusan@domain.com"},
		Parts: []qolio.Part{
			{ID: "0", Author: qolio.Author{Type: "client", ID: "27671"}, Body: "Hello", ContentType: "text/plain", CreatedAt: ms(1427470439703)},
			{ID: "2", Author: qolio.Author{Type: "operator"}, Body: "[automatic: Test Trigger] This is triggered message", ContentType: "text/plain", CreatedAt: ms(1427470449706)},
			{ID: "3", Author: qolio.Author{Type: "operator", ID: "100"}, Body: "Hi, how can i help you ?", ContentType: "text/plain", CreatedAt: ms(1427470453772)},
			{ID: "4", Author: qolio.Author{Type: "client", ID: "27671"}, Body: "tanks.", ContentType: "text/plain", CreatedAt: ms(1427470473124)},
		},
	}
	got, ok := w.qolio.Communication("smartsupp-55039")
	if !ok {
		t.Fatal("Qolio has no smartsupp-55039")
	}
	if d := cmp.Diff(want, got.Communication); d != "" {
		t.Errorf("communication (-want +got):\n%s", d)
	}
	reqs := w.qolio.Requests()
	if len(reqs) != 1 || reqs[0].Header.Get("Authorization") != testQolioToken || reqs[0].Status != 201 {
		t.Fatalf("requests: %+v", reqs)
	}

	// Smartsupp sends it again: accepted, not sent again.
	if status, out := w.r.postSmartsupp("token="+testSmartsuppToken, seed); status != 200 || out["duplicate"] != true {
		t.Fatalf("the same chat again: %d %v", status, out)
	}
	// The chat changed: it replaces the first copy.
	var m map[string]any
	json.Unmarshal(seed, &m)
	m["messages"] = append(m["messages"].([]any), map[string]any{"type": "agent", "name": "John Doe", "from": "agent:3",
		"content": "Bye!", "sentAt": 1427470476000})
	changed, _ := json.Marshal(m)
	if status, out := w.r.postSmartsupp("token="+testSmartsuppToken, changed); status != 200 {
		t.Fatalf("the changed chat: %d %v", status, out)
	}
	if _, err := w.qolio.Wait(ctxT(t), 2); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if n, comms, rep := w.qolio.Count(), w.qolio.Communications(), w.qolio.Replacements(); n != 2 || len(comms) != 1 || rep != 1 || len(comms[0].Communication.Parts) != 5 {
		t.Errorf("Qolio: %d requests, %d communications, %d replacements", n, len(comms), rep)
	}
	if m := w.r.metrics(); !strings.Contains(m, `pult_relay_transcripts_total{outcome="delivered",source="smartsupp"} 2`) {
		t.Errorf("metrics:\n%s", grep(m, "transcripts"))
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// A missed chat, an offline message, an agent without an operator: still
// sent, marked, under the configured default operator or the agent's ref.
func TestSmartsuppMissedAndUnmapped(t *testing.T) {
	checkGoroutines(t)
	w := newQolioWorld(t, nil)
	for _, name := range []string{"missed_tolerant.json", "offline.json"} {
		if status, out := w.r.postSmartsupp("token="+testSmartsuppToken, smartsuppFixture(t, name)); status != 200 {
			t.Fatalf("%s: %d %v", name, status, out)
		}
	}
	if _, err := w.qolio.Wait(ctxT(t), 2); err != nil {
		t.Fatal(err)
	}
	missed, _ := w.qolio.Communication("smartsupp-77001")
	offline, _ := w.qolio.Communication("smartsupp-88002")
	if c := missed.Communication; c.OperatorID != "smartsupp:11" || c.Status != "rejected" || c.CustomFields["chat_status"] != "missed" {
		t.Errorf("missed chat: %+v", c)
	}
	if c := offline.Communication; c.OperatorID != "smartsupp:unassigned" || c.Status != "rejected" ||
		c.CustomFields["chat_status"] != "offline" || len(c.Parts) != 1 || c.Client.Email != "eva@example.com" {
		t.Errorf("offline message: %+v", c)
	}

	w2 := newQolioWorld(t, func(c *config.Config) { c.Qolio.DefaultOperator = "support@example.com" })
	if status, _ := w2.r.postSmartsupp("token="+testSmartsuppToken, smartsuppFixture(t, "offline.json")); status != 200 {
		t.Fatal(status)
	}
	if _, err := w2.qolio.Wait(ctxT(t), 1); err != nil {
		t.Fatal(err)
	}
	if c, _ := w2.qolio.Communication("smartsupp-88002"); c.Communication.OperatorID != "support@example.com" {
		t.Errorf("default operator: %q", c.Communication.OperatorID)
	}
}

func TestSmartsuppRefusals(t *testing.T) {
	checkGoroutines(t)
	w := newQolioWorld(t, nil)
	seed := smartsuppFixture(t, "seed_export.json")
	for _, tc := range []struct {
		name, query string
		body        []byte
		status      int
		field, want string
	}{
		{"no token", "", seed, 401, "", "missing token"},
		{"wrong token", "token=guess-guess-guess-guess", seed, 403, "", "wrong token"},
		{"not JSON", "token=" + testSmartsuppToken, []byte("chat"), 400, "body", "JSON object"},
		{"no channel id", "token=" + testSmartsuppToken, []byte(`{"channel":{},"messages":[]}`), 400, "channel.id", "channel.id"},
		{"no text", "token=" + testSmartsuppToken, []byte(`{"channel":{"id":1},"messages":[{"type":"system","content":"agent.join"}]}`), 400, "messages", "no text"},
		{"too large", "token=" + testSmartsuppToken, bytes.Repeat([]byte(" "), 2<<20+1), 413, "body", "larger than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, out := w.r.postSmartsupp(tc.query, tc.body)
			msg, _ := out["error"].(string)
			if status != tc.status || !strings.Contains(msg, tc.want) || (tc.field != "" && out["field"] != tc.field) {
				t.Errorf("got %d %v, want %d naming %q (field %q)", status, out, tc.status, tc.want, tc.field)
			}
		})
	}
	if n := w.qolio.Count(); n != 0 {
		t.Errorf("Qolio got %d requests", n)
	}
}

// longChat is a pasted conversation of more than 64 KiB.
func longChat() string {
	var b strings.Builder
	for i := 0; b.Len() < 80<<10; i++ {
		if i%2 == 0 {
			b.WriteString("[12:03] Иван Петров: Где мой заказ? Он должен был прийти вчера, но его всё нет.\n")
		} else {
			b.WriteString("[12:04] Анна: Проверяю, минутку. Заказ уже в пути и приедет сегодня.\n")
		}
	}
	return b.String()
}

// An operator's transcripts, pasted text (more than a frame) or a saved
// Smartsupp export, go to Qolio under their extension, and the agent gets
// the delivery; the same submission id is accepted once.
func TestAgentTranscripts(t *testing.T) {
	checkGoroutines(t)
	w := newQolioWorld(t, nil)
	op, tok := w.r.addOperatorWith(operators.NewOperator{Name: "Анна Смирнова", Code: "100", UserID: "1"})
	anna := startAgent(t, w.r.URL, tok, nil)
	anna.waitOnline()
	ctx := ctxT(t)
	text := longChat()
	st, err := anna.a.SubmitTranscript(ctx, wire.TranscriptSubmit{ID: "t-1", Format: wire.FormatText, Title: "Заказ 42", Client: "Иван Петров", Body: text})
	if err != nil {
		t.Fatal(err)
	}
	commID := "pult-" + op.ID + "-t-1"
	if st.State != wire.TranscriptQueued || st.CommunicationID != commID || st.Source != "operator" || st.Title != "Заказ 42" || st.Messages < 600 {
		t.Errorf("answer: %+v", st)
	}
	anna.waitFor("delivered", transcriptWith("t-1", wire.TranscriptDelivered))
	got, ok := w.qolio.Communication(commID)
	if !ok {
		t.Fatal("not in Qolio")
	}
	c := got.Communication
	if c.OperatorID != "100" || c.Title != "Заказ 42" || c.Source != "operator" || len(c.Parts) != st.Messages ||
		c.Parts[0].Author.Type != "client" || c.Parts[1].Author != (qolio.Author{Type: "operator", ID: "100"}) ||
		c.Parts[1].Body != "Проверяю, минутку. Заказ уже в пути и приедет сегодня." || c.Client.FirstName != "Иван Петров" {
		t.Errorf("communication: %+v", c.Parts[:2])
	}
	if h, m, _ := c.Parts[1].CreatedAt.In(time.FixedZone("MSK", 3*3600)).Clock(); h != 12 || m != 4 {
		t.Errorf("stamp [12:04] became %v", c.Parts[1].CreatedAt)
	}

	// The same id again: the same state, nothing sent.
	status, body := w.r.postTranscript(tok, wire.TranscriptSubmit{ID: "t-1", Format: wire.FormatText, Body: "Анна: другое"})
	var again wire.TranscriptState
	json.Unmarshal(body, &again)
	if status != 202 || !again.At.Equal(st.At) || again.CommunicationID != st.CommunicationID || again.State != wire.TranscriptQueued {
		t.Errorf("same id again: %d %s", status, body)
	}

	// A Smartsupp export the operator saved. Its agent is mapped to another
	// operator, yet the chat Anna submits is hers: an operator cannot file
	// a chat under someone else's name.
	w.r.addOperatorWith(operators.NewOperator{Name: "Борис", Code: "200", UserID: "2", SmartsuppAgentID: "3"})
	status, body = w.r.postTranscript(tok, wire.TranscriptSubmit{ID: "t-2", Format: wire.FormatSmartsupp, Body: string(smartsuppFixture(t, "seed_export.json"))})
	if status != 202 {
		t.Fatalf("smartsupp format: %d %s", status, body)
	}
	anna.waitFor("delivered", transcriptWith("t-2", wire.TranscriptDelivered))
	s2, _ := w.qolio.Communication("pult-" + op.ID + "-t-2")
	if c := s2.Communication; c.OperatorID != "100" || len(c.Parts) != 4 || c.Parts[2].Author.ID != "100" || c.Source != "smartsupp" {
		t.Errorf("smartsupp format: %+v", c)
	}
	time.Sleep(200 * time.Millisecond)
	if n := w.qolio.Count(); n != 2 {
		t.Errorf("Qolio got %d requests, want 2", n)
	}
}

func TestAgentTranscriptRefusals(t *testing.T) {
	checkGoroutines(t)
	w := newQolioWorld(t, nil)
	_, tok := w.r.addOperatorWith(operators.NewOperator{Name: "Анна", Code: "100", UserID: "1"})
	for _, tc := range []struct {
		name   string
		sub    any
		status int
		want   string
	}{
		{"no id", wire.TranscriptSubmit{Format: "text", Body: "Анна: привет"}, 400, "id: required"},
		{"id with a slash", wire.TranscriptSubmit{ID: "a/b", Format: "text", Body: "Анна: привет"}, 400, "id:"},
		{"unknown format", wire.TranscriptSubmit{ID: "x", Format: "html", Body: "<p>hi</p>"}, 400, "format"},
		{"empty", wire.TranscriptSubmit{ID: "x", Format: "text", Body: "  \n"}, 400, "empty"},
		{"no speaker", wire.TranscriptSubmit{ID: "x", Format: "text", Body: "hello there"}, 400, "text:"},
		{"operator not in the text", wire.TranscriptSubmit{ID: "x", Format: "text", Body: "Иван: где заказ?"}, 400, "operators"},
		{"bad export", wire.TranscriptSubmit{ID: "x", Format: "smartsupp", Body: `{"channel":{"id":1}}`}, 400, "messages"},
		{"too large", wire.TranscriptSubmit{ID: "x", Format: "text", Body: "Анна: " + strings.Repeat("a", wire.MaxTranscript)}, 400, "limit"},
		{"not JSON", "just text", 400, "malformed JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := w.r.postTranscript(tok, tc.sub)
			var e wire.Error
			if err := json.Unmarshal(body, &e); err != nil || status != tc.status || e.Code != wire.ErrBadRequest || !strings.Contains(e.Message, tc.want) {
				t.Errorf("got %d %s, want %d bad_request naming %q", status, body, tc.status, tc.want)
			}
		})
	}
	status, body := w.r.postTranscript("pult_nobody_x", wire.TranscriptSubmit{ID: "x", Format: "text", Body: "Анна: привет"})
	var he wire.HandshakeError
	if json.Unmarshal(body, &he); status != 401 || he.Code != wire.CloseBadToken {
		t.Errorf("bad token: %d %s", status, body)
	}
	if n := w.qolio.Count(); n != 0 {
		t.Errorf("Qolio got %d requests", n)
	}

	plain := startRelay(t, testConfig(t))
	_, ptok := plain.addOperator("Анна", "100", "1")
	status, body = plain.postTranscript(ptok, wire.TranscriptSubmit{ID: "x", Format: "text", Body: "Анна: привет"})
	var e wire.Error
	if json.Unmarshal(body, &e); status != 422 || e.Code != wire.ErrNotConfigured {
		t.Errorf("not configured: %d %s", status, body)
	}
}

// Qolio refuses (4xx): the transcript fails at once and the operator is
// told Qolio's own words.
func TestQolioRefusalIsAFailedEvent(t *testing.T) {
	checkGoroutines(t)
	w := newQolioWorld(t, nil)
	_, tok := w.r.addOperatorWith(operators.NewOperator{Name: "Анна", Code: "100", UserID: "1"})
	anna := startAgent(t, w.r.URL, tok, nil)
	anna.waitOnline()
	w.qolio.Script(qfake.Answer{Status: 422, Message: "operator 100 is not in this organisation"})
	if status, body := w.r.postTranscript(tok, wire.TranscriptSubmit{ID: "t-9", Format: "text", Body: "Анна: добрый день"}); status != 202 {
		t.Fatalf("%d %s", status, body)
	}
	e := anna.waitFor("failed", transcriptWith("t-9", wire.TranscriptFailed))
	if e.Transcript.Reason != "operator 100 is not in this organisation" || e.Transcript.ReasonCode != wire.TranscriptRejected {
		t.Errorf("reason: %q (%q)", e.Transcript.Reason, e.Transcript.ReasonCode)
	}
	time.Sleep(200 * time.Millisecond)
	if n := w.qolio.Count(); n != 1 {
		t.Errorf("Qolio asked %d times; a 422 is not retried", n)
	}
	dead, _ := w.r.admin().ListDead(context.Background(), 10)
	if len(dead) != 1 || dead[0].Job.Kind != "qolio.text" || dead[0].PartnerMessage != "operator 100 is not in this organisation" {
		t.Errorf("dead letters: %+v", dead)
	}
	if m := w.r.metrics(); !strings.Contains(m, `pult_relay_transcripts_total{outcome="failed",source="operator"} 1`) {
		t.Errorf("metrics:\n%s", grep(m, "transcripts"))
	}
}

// Qolio is down for a while, the relay restarts meanwhile: the transcript
// waits in the outbox and is delivered exactly once when Qolio is back.
func TestQolioDownThenBackAcrossRestart(t *testing.T) {
	checkGoroutines(t)
	w := newQolioWorld(t, nil)
	_, tok := w.r.addOperatorWith(operators.NewOperator{Name: "Анна", Code: "100", UserID: "1"})
	w.down.Store(true)
	if status, body := w.r.postTranscript(tok, wire.TranscriptSubmit{ID: "t-5", Format: "text", Body: "Анна: добрый день\nИван: здравствуйте"}); status != 202 {
		t.Fatalf("%d %s", status, body)
	}
	waitUntil(t, "a failed attempt", func() bool {
		p, _ := w.r.admin().ListPending(context.Background(), 10)
		return len(p) == 1 && p[0].Attempts >= 2 && strings.Contains(p[0].LastError, "503")
	})
	r := w.r.restart()
	anna := startAgent(t, r.URL, tok, nil)
	anna.waitOnline()
	time.Sleep(200 * time.Millisecond)
	w.down.Store(false)
	anna.waitFor("delivered", transcriptWith("t-5", wire.TranscriptDelivered))
	time.Sleep(300 * time.Millisecond)
	comms := w.qolio.Communications()
	if len(comms) != 1 || comms[0].Versions != 1 || w.qolio.Count() != 1 {
		t.Errorf("Qolio: %d requests, %+v", w.qolio.Count(), comms)
	}
	anna.mu.Lock()
	defer anna.mu.Unlock()
	for _, e := range anna.events {
		if e.Kind == agent.EventTranscript && e.Transcript.State == wire.TranscriptFailed {
			t.Errorf("a failed event: %+v", e.Transcript)
		}
	}
}
