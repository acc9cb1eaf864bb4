package relay

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pult/pult/relay/store"
)

// TestStorageGuardTransitions: refusing starts at 90% of a guarded store
// (the outbox with room for its largest job), ends below 80%, and each
// change is logged once, not at every check; logs that drop their oldest
// (the events) never make the relay refuse; dead letters at their limit
// are logged once.
func TestStorageGuardTransitions(t *testing.T) {
	var mu sync.Mutex
	var us []store.Usage
	set := func(u ...store.Usage) { mu.Lock(); us = u; mu.Unlock() }
	var logs bytes.Buffer
	g := newStorageGuard(slog.New(slog.NewTextHandler(&logs, nil)), func(context.Context) ([]store.Usage, error) {
		mu.Lock()
		defer mu.Unlock()
		return us, nil
	}, 0, prometheus.NewRegistry())
	ctx := context.Background()
	const mib = 1 << 20
	outbox := func(used uint64) store.Usage {
		return store.Usage{Name: store.OutboxStream, Bytes: used * mib, MaxBytes: 100 * mib, Guarded: true, Largest: 8 * mib}
	}
	events := store.Usage{Name: store.EventsStream, Bytes: 100 * mib, MaxBytes: 100 * mib}

	for _, step := range []struct {
		outbox uint64
		full   bool
	}{{10, false}, {81, false}, {82, true}, {90, true}, {75, true}, {72, true}, {71, false}, {50, false}} {
		set(events, outbox(step.outbox))
		g.check(ctx)
		g.check(ctx)
		if g.Full() != step.full {
			t.Errorf("outbox at %d MiB of 100 (+8 for a job): full = %v, want %v", step.outbox, g.Full(), step.full)
		}
	}
	if n := strings.Count(logs.String(), "storage nearly full"); n != 1 {
		t.Errorf("logged %d times that storage is full, want once:\n%s", n, logs.String())
	}
	if n := strings.Count(logs.String(), "storage has room again"); n != 1 {
		t.Errorf("logged %d times that storage has room, want once:\n%s", n, logs.String())
	}

	// The account's store counts too.
	set(store.Usage{Name: store.AccountName, Bytes: 95, MaxBytes: 100, Guarded: true})
	g.check(ctx)
	if !g.Full() {
		t.Error("the account's store at 95% does not refuse")
	}

	logs.Reset()
	dead := store.Usage{Name: store.DeadStream, Msgs: 100, MaxMsgs: 100, MaxBytes: 100 * mib}
	for range 3 {
		set(dead)
		g.check(ctx)
	}
	if n := strings.Count(logs.String(), "dead letters at their limit"); n != 1 {
		t.Errorf("dead letters at their limit logged %d times, want once:\n%s", n, logs.String())
	}
}
