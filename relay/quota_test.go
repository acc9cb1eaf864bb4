package relay_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/pult/pult/agent"
	"github.com/pult/pult/agent/wire"
	"github.com/pult/pult/relay/config"
)

// TestQuotaAbusiveTokenThrottled: one operator's token flooding requests is
// closed with wire.CloseRateLimited, and its sessions beyond the cap are
// refused with 429, while another operator's call cards still arrive on
// time and its normal requests are not counted against it.
func TestQuotaAbusiveTokenThrottled(t *testing.T) {
	checkGoroutines(t)
	cfg := testConfig(t)
	cfg.Limits.RequestsPerSecond = 5
	cfg.Limits.Burst = 20
	cfg.Limits.SessionsPerOperator = 2
	r := startRelay(t, cfg)
	_, abuser := r.addOperator("Mallory", "666", "66")
	_, good := r.addOperator("Alice", "100", "10")

	victim := startAgent(t, r.URL, good, nil)
	victim.waitOnline()
	// Normal use, a burst's worth at most, is not throttled.
	for i := range 10 {
		st := wire.StatusBusy
		if i%2 == 0 {
			st = wire.StatusFree
		}
		if _, err := victim.a.SetStatus(t.Context(), st); err != nil {
			t.Fatalf("status change %d: %v", i, err)
		}
	}

	// The abuser's two sessions are let in; a third is refused.
	flood, _, err := wsDial(t, r.URL, abuser, strconv.Itoa(wire.ProtocolVersion))
	if err != nil {
		t.Fatal(err)
	}
	second, _, err := wsDial(t, r.URL, abuser, strconv.Itoa(wire.ProtocolVersion))
	if err != nil {
		t.Fatal(err)
	}
	_, resp, err := wsDial(t, r.URL, abuser, strconv.Itoa(wire.ProtocolVersion))
	if err == nil {
		t.Fatal("a third session was accepted with sessions_per_operator = 2")
	}
	if status, code := handshakeCode(t, resp); status != http.StatusTooManyRequests || code != wire.CloseTooManySessions || resp.Header.Get("Retry-After") == "" {
		t.Errorf("third session: HTTP %d, code %d, Retry-After %q; want 429, %d and a Retry-After", status, code, resp.Header.Get("Retry-After"), wire.CloseTooManySessions)
	}
	second.Close()

	// The flood: requests as fast as the socket takes them, until the
	// relay closes the session.
	var wg sync.WaitGroup
	closed := make(chan *websocket.CloseError, 1)
	wg.Go(func() {
		for {
			_, _, err := flood.ReadMessage()
			if err != nil {
				var ce *websocket.CloseError
				errors.As(err, &ce)
				closed <- ce
				return
			}
		}
	})
	wg.Go(func() {
		for i := 0; ; i++ {
			frame, _ := wire.Encode(wire.TypeSetStatus, fmt.Sprintf("flood-%d", i), 0, wire.SetStatus{Status: wire.StatusBusy, At: time.Now()})
			if flood.WriteMessage(websocket.TextMessage, frame) != nil {
				return
			}
		}
	})

	// Meanwhile the other operator's calls arrive on time.
	var worst time.Duration
	for i := range 10 {
		id := fmt.Sprintf("q-%d", i)
		start := time.Now()
		if status, body := r.callEvent(map[string]any{"type": "in", "phone": "+79121234567", "codes": []string{"100"}, "callExternalId": id}); status != http.StatusOK {
			t.Fatalf("call event: HTTP %d %v", status, body)
		}
		victim.waitFor("card "+id, callWith(id, wire.CallRinging))
		worst = max(worst, time.Since(start))
	}
	// A generous bound: a card takes milliseconds; seconds would mean the
	// flood held it up.
	if worst > 2*time.Second {
		t.Errorf("slowest call card took %s with the flood going on", worst)
	}

	select {
	case ce := <-closed:
		if ce == nil || ce.Code != wire.CloseRateLimited || !strings.Contains(ce.Text, "requests per second") {
			t.Errorf("flooding session ended with %v; want close %d with a reason", ce, wire.CloseRateLimited)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the flooding session was not closed")
	}
	flood.Close()
	wg.Wait()

	if victim.hellos() != 1 {
		t.Errorf("the well-behaved agent reconnected: %d connections", victim.hellos())
	}
	m := r.srv.MetricsText()
	for _, want := range []string{`pult_relay_throttled_total{limit="request_rate"} 1`, `pult_relay_throttled_total{limit="sessions"} 1`} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %q:\n%s", want, grep(m, "throttled"))
		}
	}
}

// TestQuotaTranscriptsPerMinute: an operator's submissions beyond
// transcripts_per_minute get 429 with Retry-After and a wire.Error; a
// re-sent accepted one is still answered; another operator is not
// affected; the agent keeps a refused transcript to send it later.
func TestQuotaTranscriptsPerMinute(t *testing.T) {
	checkGoroutines(t)
	w := newQolioWorld(t, func(cfg *config.Config) { cfg.Limits.TranscriptsPerMinute = 2 })
	_, mallory := w.r.addOperator("Mallory", "666", "66")
	_, alice := w.r.addOperator("Alice", "100", "10")
	for i := range 2 {
		if status, body := w.r.postTranscript(mallory, wire.TranscriptSubmit{ID: fmt.Sprintf("m-%d", i), Format: wire.FormatText, Body: "Mallory: привет"}); status != http.StatusAccepted {
			t.Fatalf("submission %d: HTTP %d %s", i, status, body)
		}
	}
	req, _ := http.NewRequest(http.MethodPost, w.r.URL+wire.PathTranscripts,
		strings.NewReader(`{"id":"m-2","format":"text","body":"Mallory: ещё"}`))
	req.Header.Set("Authorization", "Bearer "+mallory)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var we wire.Error
	json.NewDecoder(resp.Body).Decode(&we)
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || we.Code != wire.ErrRateLimited || !strings.Contains(we.Message, "2 transcripts a minute") {
		t.Errorf("third submission in a minute: HTTP %d %+v; want 429 %q", resp.StatusCode, we, wire.ErrRateLimited)
	}
	if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || ra < 1 || ra > 60 {
		t.Errorf("Retry-After = %q", resp.Header.Get("Retry-After"))
	}
	// A re-sent accepted submission is answered as before, not counted.
	if status, body := w.r.postTranscript(mallory, wire.TranscriptSubmit{ID: "m-0", Format: wire.FormatText, Body: "Mallory: привет"}); status != http.StatusAccepted {
		t.Errorf("re-sent accepted submission: HTTP %d %s", status, body)
	}
	// Another operator's quota is its own.
	if status, body := w.r.postTranscript(alice, wire.TranscriptSubmit{ID: "a-0", Format: wire.FormatText, Body: "Alice: привет"}); status != http.StatusAccepted {
		t.Errorf("another operator: HTTP %d %s", status, body)
	}
	// The agent keeps what the relay refused for its quota.
	ag := startAgent(t, w.r.URL, mallory, func(c *agent.Config) { c.StateDir = t.TempDir() })
	ag.waitOnline()
	_, err = ag.a.SubmitTranscript(t.Context(), wire.TranscriptSubmit{ID: "m-3", Format: wire.FormatText, Body: "Mallory: и ещё"})
	if !errors.Is(err, agent.ErrQueued) {
		t.Errorf("SubmitTranscript over the quota: %v; want it kept (ErrQueued)", err)
	}
	if q := ag.a.QueuedTranscripts(); len(q) != 1 || q[0].ID != "m-3" {
		t.Errorf("kept transcripts: %+v", q)
	}
	if m := w.r.srv.MetricsText(); !strings.Contains(m, `pult_relay_throttled_total{limit="transcripts"} 2`) {
		t.Errorf("metrics:\n%s", grep(m, "throttled"))
	}
}
