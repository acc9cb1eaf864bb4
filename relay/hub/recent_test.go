package hub

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/pult/pult/agent/wire"
	"github.com/pult/pult/relay/store"
)

// timedLog is a log in memory whose events carry the time they were
// stored; appended to while the hub runs, as the store is.
type timedLog struct {
	mu     sync.Mutex
	events []store.Event // in seq order; Received is when it was stored
	broken bool          // FirstSince fails
	sought int           // FirstSince calls
}

func (l *timedLog) add(op string, at time.Time) store.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	ev := store.Event{Seq: uint64(len(l.events) + 1), Operator: op, Type: wire.TypeStatus, Data: []byte(`{}`), Received: at}
	l.events = append(l.events, ev)
	return ev
}

func (l *timedLog) Next(_ context.Context, op string, after uint64) (*store.Event, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, ev := range l.events {
		if ev.Seq > after && ev.Operator == op {
			return &ev, nil
		}
	}
	return nil, nil
}

func (l *timedLog) FirstSince(_ context.Context, op string, t time.Time) (uint64, bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sought++
	if l.broken {
		return 0, false, errors.New("no leader (test)")
	}
	for _, ev := range l.events {
		if ev.Operator == op && !ev.Received.Before(t) {
			return ev.Seq, true, nil
		}
	}
	return 0, false, nil
}

func (l *timedLog) EventBounds(context.Context) (uint64, uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return 1, uint64(len(l.events)), nil
}

func (*timedLog) Epoch() string { return "e1" }

// TestNotResumedStartsAtRecentEvents: a session that is not resumed gets
// its operator's events of the last RecentWindow after hello (which says
// Resumed=false and the position before the first of them), then live
// ones, each once; not older ones, nor another operator's. A session
// resumed from a position gets what follows it, as before. When the log
// cannot say where the recent events start, the handshake is refused
// with 503 and Retry-After, as when it cannot say whether to resume.
func TestNotResumedStartsAtRecentEvents(t *testing.T) {
	log := &timedLog{}
	now := time.Now()
	log.add("op", now.Add(-10*time.Minute)) // 1: before the window
	log.add("op", now.Add(-time.Minute))    // 2
	log.add("other", now.Add(-time.Minute)) // 3
	log.add("op", now.Add(-time.Second))    // 4
	h := newHub(t, Config{Log: log, PingPeriod: time.Hour}, 4)
	base := serve(t, h, "op")
	seqs := func(c *websocket.Conn, n int) []uint64 {
		t.Helper()
		var got []uint64
		for range n {
			got = append(got, read(t, c).Seq)
		}
		return got
	}
	// nothing: no further frame within a moment (none was sent twice).
	nothing := func(c *websocket.Conn) {
		t.Helper()
		c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		if _, b, err := c.ReadMessage(); err == nil {
			t.Fatalf("one more frame: %s", b)
		}
	}

	for _, tc := range []struct {
		query string
		want  string
	}{
		{"", "[2,4,5]"}, // the first connection: no position
		{"?" + wire.QuerySince + "=9&" + wire.QueryEpoch + "=old", "[2,4,5,7]"}, // a new log
	} {
		c, hello := dialHello(t, base+tc.query)
		if hello.Resumed || hello.Position != 1 {
			t.Fatalf("%q: hello resumed %v at %d, want not resumed at 1", tc.query, hello.Resumed, hello.Position)
		}
		// An event stored after the session registered comes once, live.
		h.Deliver(log.add("op", time.Now())) // 5, then 7
		log.add("other", time.Now())         // 6, then 8
		if got := jsonOf(seqs(c, strings.Count(tc.want, ",")+1)); got != tc.want {
			t.Fatalf("%q: events %s, want %s", tc.query, got, tc.want)
		}
		nothing(c)
	}

	c, hello := dialHello(t, base+"?"+wire.QuerySince+"=4&"+wire.QueryEpoch+"=e1")
	if !hello.Resumed || hello.Position != 4 {
		t.Fatalf("resumed: hello %+v", hello)
	}
	if got := seqs(c, 2); jsonOf(got) != "[5,7]" {
		t.Fatalf("resumed: events %v, want [5,7]", got)
	}
	nothing(c)

	log.mu.Lock()
	log.broken = true
	log.mu.Unlock()
	_, resp, err := websocket.DefaultDialer.Dial(base, nil)
	if err == nil {
		t.Fatal("a session whose start is unknown was accepted")
	}
	if resp == nil || resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("refused with %+v", resp)
	}
	// A resumed session does not need the search.
	if _, hello := dialHello(t, base+"?"+wire.QuerySince+"=8&"+wire.QueryEpoch+"=e1"); !hello.Resumed {
		t.Fatalf("resumed with the search broken: %+v", hello)
	}
}

func jsonOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestNotResumedQuietLogNotSearched: when the log has had no event for
// RecentWindow (or none at all), a session that is not resumed starts at
// the end without searching it — a storm of first connections to a quiet
// relay costs no lookups. Once an event comes live, the next one searches
// again, and gets it.
func TestNotResumedQuietLogNotSearched(t *testing.T) {
	for _, tc := range []struct {
		name string
		old  int // events stored, all long ago
	}{{"an empty log", 0}, {"a log quiet for longer than the window", 2}} {
		t.Run(tc.name, func(t *testing.T) {
			log := &timedLog{}
			long := time.Now().Add(-time.Hour)
			for range tc.old {
				log.add("op", long)
			}
			cfg := Config{Log: log, PingPeriod: time.Hour}
			if tc.old > 0 {
				cfg.LastStoredAt = long
			}
			h := newHub(t, cfg, uint64(tc.old))
			base := serve(t, h, "op")
			sought := func() int {
				log.mu.Lock()
				defer log.mu.Unlock()
				return log.sought
			}

			c, hello := dialHello(t, base)
			if hello.Position != uint64(tc.old) || sought() != 0 {
				t.Fatalf("hello at %d after %d searches, want at %d after none", hello.Position, sought(), tc.old)
			}
			ev := log.add("op", time.Now())
			h.Deliver(ev)
			if got := read(t, c).Seq; got != ev.Seq {
				t.Fatalf("live event %d, want %d", got, ev.Seq)
			}
			c2, hello2 := dialHello(t, base)
			if sought() != 1 || hello2.Position != ev.Seq-1 {
				t.Fatalf("after a live event: hello at %d after %d searches, want at %d after one", hello2.Position, sought(), ev.Seq-1)
			}
			if got := read(t, c2).Seq; got != ev.Seq {
				t.Fatalf("recent event %d, want %d", got, ev.Seq)
			}
		})
	}
}
