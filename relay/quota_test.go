package relay_test

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/pult/pult/agent/wire"
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
