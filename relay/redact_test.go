package relay_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pult/pult/relay"
	"github.com/pult/pult/relay/config"
)

// lockedBuffer is a log destination for concurrent writers.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A PBX that cannot be reached: the relay's log and the outbox record name
// the change-status URL without its query, so neither holds the clientId
// (the key of the PBX's make-call URL) nor anything else of the query.
func TestUnreachablePBXLeaksNoClientID(t *testing.T) {
	checkGoroutines(t)
	var logs lockedBuffer
	cfg := testConfig(t)
	cfg.PBX.ChangeStatusURL = "http://127.0.0.1:1/change-status" // nothing listens on port 1
	cfg.Outbox.MaxBackoff = config.Duration{Duration: 200 * time.Millisecond}
	r := startRelayWith(t, cfg, func(c config.Config) *relay.Server {
		return relay.New(c, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	})
	r.addOperator("Anna", "100", "1")
	q := url.Values{"clientId": {testClientID}, "userId": {"1"}, "code": {"100"}, "status": {"busy"}}
	if status, body := r.get("/retailcrm/change-status", q); status != 200 {
		t.Fatalf("change-status: %d %s", status, body)
	}
	var lastErr string
	waitUntil(t, "a failed attempt recorded", func() bool {
		p, err := r.admin().ListPending(context.Background(), 10)
		if err != nil || len(p) != 1 || p[0].Attempts < 2 {
			return false
		}
		lastErr = p[0].LastError
		return true
	})
	if !strings.Contains(lastErr, "127.0.0.1:1/change-status") {
		t.Errorf("the outbox record does not say where: %q", lastErr)
	}
	for _, secret := range []string{testClientID, "clientId=", "userId="} {
		if strings.Contains(lastErr, secret) {
			t.Errorf("the outbox record holds %q: %q", secret, lastErr)
		}
		if strings.Contains(logs.String(), secret) {
			t.Errorf("the log holds %q:\n%s", secret, logs.String())
		}
	}
	if !strings.Contains(logs.String(), "127.0.0.1:1/change-status") {
		t.Errorf("the log never named the failing URL:\n%s", logs.String())
	}
}
