package relay_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pult/pult/agent/wire"
	"github.com/pult/pult/relay"
	"github.com/pult/pult/relay/config"
	qfake "github.com/pult/pult/relay/qolio/fake"
)

// bigTranscript is a pasted chat of about n bytes in a few long messages.
func bigTranscript(n int) string {
	var b strings.Builder
	for i := 0; ; i++ {
		who := "Анна"
		if i%2 == 1 {
			who = "Клиент"
		}
		line := fmt.Sprintf("%s: сообщение номер %d, %s\n", who, i, strings.Repeat("x", 20000))
		if b.Len()+len(line) > n {
			return b.String()
		}
		b.WriteString(line)
	}
}

// TestStorageFullRefusesThenRecovers fills the outbox's share of a small
// storage budget with transcripts Qolio does not take, and checks that the
// relay then refuses new work with 503 in each caller's shape, says so in
// a metric, takes work again by itself once Qolio drained the outbox, and
// lost nothing it had accepted.
func TestStorageFullRefusesThenRecovers(t *testing.T) {
	checkGoroutines(t)
	q := qfake.NewServer(testQolioToken)
	t.Cleanup(q.Close)
	var down atomic.Bool
	front := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if down.Load() {
			http.Error(rw, `{"message":"maintenance"}`, http.StatusServiceUnavailable)
			return
		}
		q.ServeHTTP(rw, r)
	}))
	t.Cleanup(front.Close)
	cfg := testConfig(t)
	cfg.Qolio.URL = front.URL + "/api/v1/integrations/" + q.IntegrationID() + "/text"
	cfg.Qolio.Token = testQolioToken
	cfg.Smartsupp.Token = testSmartsuppToken
	cfg.Limits.MaxStoreBytes = config.MinStoreBytes // the outbox gets 25%: 32 MiB
	cfg.Limits.TranscriptsPerMinute = 1000
	r := startRelayWith(t, cfg, func(cfg config.Config) *relay.Server {
		return relay.NewWithStoragePoll(cfg, testLogger(t), 250*time.Millisecond)
	})
	op, tok := r.addOperator("Анна", "100", "10")
	anna := startAgent(t, r.URL, tok, nil)
	anna.waitOnline()

	down.Store(true)
	body := bigTranscript(wire.MaxTranscript)
	var transcripts, calls []string // accepted
	full := false
	for i := 0; i < 80 && !full; i++ {
		id := fmt.Sprintf("t-%d", i)
		status, answer := r.postTranscript(tok, wire.TranscriptSubmit{ID: id, Format: wire.FormatText, Body: body})
		switch status {
		case http.StatusAccepted:
			transcripts = append(transcripts, id)
		case http.StatusServiceUnavailable:
			var we wire.Error
			if err := json.Unmarshal(answer, &we); err != nil || we.Code != wire.ErrUnavailable || !strings.Contains(we.Message, "storage") {
				t.Errorf("transcript refused with %s; want a wire.Error %q about storage", answer, wire.ErrUnavailable)
			}
			full = true
			continue
		default:
			t.Fatalf("transcript %s: HTTP %d %s", id, status, answer)
		}
		callID := fmt.Sprintf("full-%d", i)
		if status, _ := r.callEvent(map[string]any{"type": "in", "phone": "+79121234567", "codes": []string{"100"}, "callExternalId": callID}); status == http.StatusOK {
			calls = append(calls, callID)
		} else if status != http.StatusServiceUnavailable {
			t.Fatalf("call event: HTTP %d", status)
		}
	}
	if !full {
		t.Fatalf("%d transcripts accepted and the relay never said its storage was full", len(transcripts))
	}
	t.Logf("%d transcripts and %d calls accepted before the storage was full", len(transcripts), len(calls))
	if !r.srv.StorageFull() {
		t.Error("StorageFull is false after a 503")
	}

	// Every kind of new work is refused, each in its caller's shape.
	status, answer := r.callEvent(map[string]any{"type": "in", "phone": "+79121234567", "codes": []string{"100"}, "callExternalId": "refused"})
	if status != http.StatusServiceUnavailable || answer["success"] != false || !strings.Contains(fmt.Sprint(answer["errorMsg"]), "storage") {
		t.Errorf("PBX call event while full: HTTP %d %v; want 503 in retailCRM's error shape", status, answer)
	}
	status, hook := r.postSmartsupp("token="+testSmartsuppToken, []byte(`{}`))
	if status != http.StatusServiceUnavailable || !strings.Contains(fmt.Sprint(hook["error"]), "storage") {
		t.Errorf("Smartsupp hook while full: HTTP %d %v", status, hook)
	}
	_, err := anna.a.SetStatus(t.Context(), wire.StatusBusy)
	if we := (*wire.Error)(nil); !errors.As(err, &we) || we.Code != wire.ErrUnavailable {
		t.Errorf("status change while full: %v; want a wire.Error %q", err, wire.ErrUnavailable)
	}
	m := r.srv.MetricsText()
	for _, want := range []string{"pult_relay_storage_full 1", `pult_relay_storage_refused_total{what="transcript"} 1`, `pult_relay_storage_refused_total{what="agent_request"} 1`} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %q:\n%s", want, grep(m, "storage"))
		}
	}

	// Qolio is back: the outbox drains and the relay takes work again by
	// itself.
	down.Store(false)
	deadline := time.Now().Add(60 * time.Second)
	for r.srv.StorageFull() {
		if time.Now().After(deadline) {
			t.Fatalf("still full a minute after Qolio came back:\n%s", grep(r.srv.MetricsText(), "storage"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if status, answer := r.callEvent(map[string]any{"type": "in", "phone": "+79121234567", "codes": []string{"100"}, "callExternalId": "after"}); status != http.StatusOK {
		t.Fatalf("call event after recovery: HTTP %d %v", status, answer)
	}
	calls = append(calls, "after")
	if status, answer := r.postTranscript(tok, wire.TranscriptSubmit{ID: "after", Format: wire.FormatText, Body: "Анна: добрый день"}); status != http.StatusAccepted {
		t.Fatalf("transcript after recovery: HTTP %d %s", status, answer)
	}
	transcripts = append(transcripts, "after")
	if _, err := anna.a.SetStatus(t.Context(), wire.StatusBusy); err != nil {
		t.Errorf("status change after recovery: %v", err)
	}

	// Nothing accepted was lost.
	for _, id := range calls {
		anna.waitFor("card "+id, callWith(id, wire.CallRinging))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := q.Wait(ctx, len(transcripts)); err != nil {
		t.Fatalf("Qolio got %d requests, want %d: %v", q.Count(), len(transcripts), err)
	}
	for _, id := range transcripts {
		if _, ok := q.Communication("pult-" + op.ID + "-" + id); !ok {
			t.Errorf("transcript %s never reached Qolio", id)
		}
	}
}
