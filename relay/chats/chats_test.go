package chats

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pult/pult/agent/wire"
	"github.com/pult/pult/relay/operators"
	"github.com/pult/pult/relay/outbox"
	"github.com/pult/pult/relay/qolio"
)

// The flow alone, with the relay's parts faked: the end-to-end tests
// (relay/transcripts_test.go, quota_test.go) run it inside a relay with
// a fake Qolio.

type appended struct {
	op, msgID string
	st        wire.TranscriptState
}

type fakeStore struct {
	mu          sync.Mutex
	events      []appended
	transcripts map[string][]byte
}

func (f *fakeStore) Append(_ context.Context, op, typ string, data []byte, msgID string, _ time.Time) (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var st wire.TranscriptState
	if typ != wire.TypeTranscript || json.Unmarshal(data, &st) != nil {
		return 0, errors.New("not a transcript state")
	}
	f.events = append(f.events, appended{op, msgID, st})
	return uint64(len(f.events)), nil
}

func (f *fakeStore) LoadTranscript(_ context.Context, key string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.transcripts[key], nil
}

func (f *fakeStore) SaveTranscript(_ context.Context, key string, data []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.transcripts[key] = data
	return nil
}

func (f *fakeStore) CreateTranscript(_ context.Context, key string, data []byte) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.transcripts[key]; ok {
		return false, nil
	}
	f.transcripts[key] = data
	return true, nil
}

type fakeOutbox struct{ jobs []outbox.Job }

func (f *fakeOutbox) Enqueue(_ context.Context, kind, id string, payload any) error {
	b, err := json.Marshal(payload)
	f.jobs = append(f.jobs, outbox.Job{Kind: kind, ID: id, Payload: b})
	return err
}

type fakeQolio struct {
	sent []qolio.Communication
	err  error
}

func (f *fakeQolio) Send(_ context.Context, c qolio.Communication) error {
	if f.err != nil {
		return f.err
	}
	f.sent = append(f.sent, c)
	return nil
}

type fakeOps map[string]operators.Operator // by Smartsupp agent id

func (f fakeOps) BySmartsuppAgent(id string) (operators.Operator, bool) {
	op, ok := f[id]
	return op, ok
}

var anna = operators.Operator{ID: "anna", Code: "101", Name: "Anna Smirnova"}

type world struct {
	flow   *Flow
	store  *fakeStore
	outbox *fakeOutbox
	qolio  *fakeQolio
	reg    *prometheus.Registry
}

func newWorld(t *testing.T, mod func(*Config)) *world {
	t.Helper()
	w := &world{store: &fakeStore{transcripts: map[string][]byte{}}, outbox: &fakeOutbox{}, qolio: &fakeQolio{},
		reg: prometheus.NewRegistry()}
	throttled := prometheus.NewCounter(prometheus.CounterOpts{Name: "throttled"})
	w.reg.MustRegister(throttled)
	cfg := Config{
		Store: w.store, Outbox: w.outbox, Operators: fakeOps{"3": anna}, Qolio: w.qolio,
		Auth: func(rw http.ResponseWriter, r *http.Request) (operators.Operator, bool) {
			if r.Header.Get("Authorization") != "Bearer anna" {
				rw.WriteHeader(http.StatusUnauthorized)
				return operators.Operator{}, false
			}
			return anna, true
		},
		Location: time.UTC, PhoneRegion: "RU", SmartsuppToken: "hook-token", PerMinute: 2, GiveUp: time.Hour,
		Registerer: w.reg, Throttled: throttled,
	}
	if mod != nil {
		mod(&cfg)
	}
	w.flow = New(cfg)
	return w
}

func (w *world) submit(t *testing.T, sub wire.TranscriptSubmit) (int, http.Header, []byte) {
	t.Helper()
	b, _ := json.Marshal(sub)
	r := httptest.NewRequest(http.MethodPost, wire.PathTranscripts, bytes.NewReader(b))
	r.Header.Set("Authorization", "Bearer anna")
	rec := httptest.NewRecorder()
	w.flow.HandleSubmit(rec, r)
	return rec.Code, rec.Header(), rec.Body.Bytes()
}

func (w *world) hook(t *testing.T, query string, body []byte) (int, map[string]any) {
	t.Helper()
	rec := httptest.NewRecorder()
	w.flow.HandleSmartsupp(rec, httptest.NewRequest(http.MethodPost, "/hooks/smartsupp?"+query, bytes.NewReader(body)))
	var out map[string]any
	json.Unmarshal(rec.Body.Bytes(), &out)
	return rec.Code, out
}

// counted is the value of a counter of the flow's registry: name, and the
// labels' values in their order ("source", "outcome").
func (w *world) counted(t *testing.T, name string, values ...string) float64 {
	t.Helper()
	mfs, err := w.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if !slices.Contains(values, l.GetValue()) {
					continue metrics
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("no %s%q", name, values)
	return 0
}

// An operator's paste is queued once whatever times it is sent, goes to
// Qolio under the operator's extension, and the operator is told it was
// delivered.
func TestSubmitQueueSendDelivered(t *testing.T) {
	w := newWorld(t, nil)
	sub := wire.TranscriptSubmit{ID: "t1", Format: wire.FormatText, Client: "Ivan", Body: "Ivan: Hello\nAnna: Hi, how can I help?"}
	code, _, body := w.submit(t, sub)
	var st wire.TranscriptState
	if code != http.StatusAccepted || json.Unmarshal(body, &st) != nil || st.State != wire.TranscriptQueued ||
		st.CommunicationID != "pult-anna-t1" || st.Source != SourceOperator || st.Messages != 2 {
		t.Fatalf("answer %d %s", code, body)
	}
	if code, _, again := w.submit(t, sub); code != http.StatusAccepted || !bytes.Equal(again, body) {
		t.Errorf("sent again: %d %s, want the first answer", code, again)
	}
	if len(w.outbox.jobs) != 1 || w.outbox.jobs[0].Kind != Kind || !strings.HasPrefix(w.outbox.jobs[0].ID, "qolio.pult-anna-t1.") {
		t.Fatalf("jobs: %+v", w.outbox.jobs)
	}
	if err := w.flow.Send(context.Background(), w.outbox.jobs[0]); err != nil {
		t.Fatal(err)
	}
	if len(w.qolio.sent) != 1 || w.qolio.sent[0].OperatorID != "101" || w.qolio.sent[0].Parts[1].Author.ID != "101" {
		t.Fatalf("Qolio got %+v", w.qolio.sent)
	}
	if n := len(w.store.events); n != 1 || w.store.events[0].op != "anna" || w.store.events[0].st.State != wire.TranscriptDelivered {
		t.Errorf("receipts: %+v", w.store.events)
	}
	if a, d := w.counted(t, "pult_relay_transcripts_total", SourceOperator, "accepted"), w.counted(t, "pult_relay_transcripts_total", SourceOperator, "delivered"); a != 1 || d != 1 {
		t.Errorf("counted %v accepted, %v delivered", a, d)
	}
}

// A job that dies tells its operator why.
func TestDeadJobIsAFailure(t *testing.T) {
	w := newWorld(t, nil)
	w.submit(t, wire.TranscriptSubmit{ID: "t1", Format: wire.FormatText, Body: "Anna: Hi"})
	dj := outbox.DeadJob{Job: w.outbox.jobs[0], Reason: outbox.ReasonGaveUp, LastError: "503 maintenance", Died: time.Now()}
	w.flow.Dead(dj)
	w.flow.Dead(outbox.DeadJob{Job: outbox.Job{Kind: "crm.event", ID: "x"}}) // not a transcript's
	if len(w.store.events) != 1 {
		t.Fatalf("receipts: %+v", w.store.events)
	}
	st := w.store.events[0].st
	if st.State != wire.TranscriptFailed || st.ReasonCode != wire.TranscriptGaveUp || st.Reason != "Qolio did not accept it within 1h0m0s: 503 maintenance" {
		t.Errorf("failed state: %+v", st)
	}
	if f := w.counted(t, "pult_relay_transcripts_total", SourceOperator, "failed"); f != 1 {
		t.Errorf("counted %v failed", f)
	}
}

func TestSubmitQuota(t *testing.T) {
	w := newWorld(t, nil)
	for i, want := range []int{http.StatusAccepted, http.StatusAccepted, http.StatusTooManyRequests} {
		code, hdr, body := w.submit(t, wire.TranscriptSubmit{ID: "t" + string(rune('1'+i)), Format: wire.FormatText, Body: "Anna: Hi"})
		if code != want {
			t.Fatalf("submission %d: %d %s, want %d", i, code, body, want)
		}
		if want == http.StatusTooManyRequests && hdr.Get("Retry-After") == "" {
			t.Error("429 without Retry-After")
		}
	}
	if n := w.counted(t, "throttled"); n != 1 {
		t.Errorf("throttled %v", n)
	}
}

func TestSubmitRefusals(t *testing.T) {
	for _, tt := range []struct {
		name string
		sub  wire.TranscriptSubmit
		want string
	}{
		{"no id", wire.TranscriptSubmit{Format: wire.FormatText, Body: "Anna: Hi"}, "id: required"},
		{"id with a slash", wire.TranscriptSubmit{ID: "a/b", Format: wire.FormatText, Body: "Anna: Hi"}, "id: at most"},
		{"format", wire.TranscriptSubmit{ID: "t", Format: "pdf", Body: "Anna: Hi"}, `format: want "text" or "smartsupp", not "pdf"`},
		{"empty", wire.TranscriptSubmit{ID: "t", Format: wire.FormatText, Body: "  "}, "body: the transcript is empty"},
		{"title", wire.TranscriptSubmit{ID: "t", Format: wire.FormatText, Body: "Anna: Hi", Title: "a\nb"}, "title: one line"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, nil)
			code, _, body := w.submit(t, tt.sub)
			var e wire.Error
			if code != http.StatusBadRequest || json.Unmarshal(body, &e) != nil || e.Code != wire.ErrBadRequest || !strings.HasPrefix(e.Message, tt.want) {
				t.Errorf("answer %d %s, want 400 %q…", code, body, tt.want)
			}
			if len(w.outbox.jobs) != 0 {
				t.Error("a refused submission was queued")
			}
		})
	}
	w := newWorld(t, func(c *Config) { c.Qolio = nil })
	if code, _, body := w.submit(t, wire.TranscriptSubmit{ID: "t", Format: wire.FormatText, Body: "Anna: Hi"}); code != http.StatusUnprocessableEntity {
		t.Errorf("without Qolio: %d %s", code, body)
	}
}

// Smartsupp's export goes under the operator of the agent who wrote, is
// accepted once, and its operator is told it is queued.
func TestSmartsuppHook(t *testing.T) {
	seed, err := os.ReadFile(filepath.Join("..", "smartsupp", "testdata", "seed_export.json"))
	if err != nil {
		t.Fatal(err)
	}
	w := newWorld(t, nil)
	for _, tt := range []struct {
		query string
		want  int
	}{{"", http.StatusUnauthorized}, {"token=nope", http.StatusForbidden}} {
		if code, out := w.hook(t, tt.query, seed); code != tt.want {
			t.Errorf("?%s: %d %v, want %d", tt.query, code, out, tt.want)
		}
	}
	if code, out := w.hook(t, "token=hook-token", []byte(`{"channel":{}}`)); code != http.StatusBadRequest || out["field"] == nil {
		t.Errorf("a broken export: %d %v, want 400 naming the field", code, out)
	}
	code, out := w.hook(t, "token=hook-token", seed)
	if code != http.StatusOK || out["communicationId"] != "smartsupp-55039" {
		t.Fatalf("hook: %d %v", code, out)
	}
	if code, out := w.hook(t, "token=hook-token", seed); code != http.StatusOK || out["duplicate"] != true {
		t.Errorf("again: %d %v", code, out)
	}
	if len(w.outbox.jobs) != 1 || len(w.store.events) != 1 || w.store.events[0].op != "anna" || w.store.events[0].st.State != wire.TranscriptQueued {
		t.Fatalf("jobs %d, receipts %+v", len(w.outbox.jobs), w.store.events)
	}
	var j job
	var comm qolio.Communication
	if json.Unmarshal(w.outbox.jobs[0].Payload, &j) != nil || json.Unmarshal(j.Body, &comm) != nil || comm.OperatorID != "101" {
		t.Errorf("job %s", w.outbox.jobs[0].Payload)
	}
	if a := w.counted(t, "pult_relay_transcripts_total", SourceSmartsupp, "accepted"); a != 1 {
		t.Errorf("counted %v accepted", a)
	}

	w = newWorld(t, func(c *Config) { c.SmartsuppToken = "" })
	if code, _ := w.hook(t, "token=hook-token", seed); code != http.StatusNotFound {
		t.Errorf("hook off: %d", code)
	}
}
