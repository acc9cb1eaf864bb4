package store_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/pult/pult/relay/store"
)

// records is a slog handler keeping what it is given.
type records struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (r *records) Enabled(context.Context, slog.Level) bool { return true }
func (r *records) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	r.recs = append(r.recs, rec.Clone())
	r.mu.Unlock()
	return nil
}
func (r *records) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *records) WithGroup(string) slog.Handler      { return r }

func (r *records) atLeast(level slog.Level) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, rec := range r.recs {
		if rec.Level >= level {
			out = append(out, rec.Message)
		}
	}
	return out
}

// The embedded server's warnings reach the relay's log: here, a damaged
// file of the events stream found and rebuilt at start.
func TestEmbeddedServerWarningsReachTheLog(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	st, err := store.Open(ctx, store.Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Append(ctx, "op1", "status", []byte(`{"status":"busy"}`), "m1", time.Time{}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	damaged := 0
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".blk") && strings.Contains(p, "PULT_EVENTS") {
			b, _ := os.ReadFile(p)
			for i := 10; i < len(b); i += 7 {
				b[i] ^= 0xff
			}
			os.WriteFile(p, b, 0o600)
			damaged++
		}
		return nil
	})
	if damaged == 0 {
		t.Fatal("no block file of the events stream found")
	}
	logs := &records{}
	st, err = store.Open(ctx, store.Options{DataDir: dir, Logger: slog.New(logs)})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	if w := logs.atLeast(slog.LevelWarn); len(w) == 0 || !strings.Contains(strings.Join(w, "\n"), "PULT_EVENTS") {
		t.Errorf("warnings logged: %q", w)
	}
}

// startExternalNATS runs an in-process nats-server with JetStream on
// loopback (maxPayload 0: the server's default, 1 MiB), shut down when the
// test ends.
func startExternalNATS(t *testing.T, maxPayload int32) *server.Server {
	t.Helper()
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(),
		NoLog: true, NoSigs: true, MaxPayload: maxPayload})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats did not start")
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	return ns
}

// An external NATS server that would refuse the relay's largest messages
// is refused at start, with what to change.
func TestExternalServerWithSmallMaxPayloadIsRefused(t *testing.T) {
	ns := startExternalNATS(t, 0)
	st, err := store.Open(context.Background(), store.Options{URL: ns.ClientURL()})
	if err == nil {
		st.Close()
		t.Fatal("a server with max_payload 1 MiB was accepted")
	}
	if !strings.Contains(err.Error(), "max_payload: 8MB") {
		t.Errorf("error: %v", err)
	}
}

// [nats] sync reaches the embedded server.
func TestSyncPolicy(t *testing.T) {
	for _, tc := range []struct {
		o    store.Options
		want string
	}{
		{store.Options{SyncAlways: true}, "fsync before every acknowledgement"},
		{store.Options{SyncInterval: 250 * time.Millisecond}, "fsync every 250ms"},
	} {
		tc.o.DataDir = t.TempDir()
		st, err := store.Open(context.Background(), tc.o)
		if err != nil {
			t.Fatal(err)
		}
		if got := st.Durability(); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.o, got, tc.want)
		}
		st.Close()
	}
}

// FirstSince finds an operator's first event stored at or after a time,
// passing over other operators' events and older ones; none is not an
// error.
func TestFirstSince(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, store.Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	appendOne := func(op string) uint64 {
		t.Helper()
		seq, err := st.Append(ctx, op, "status", []byte(`{"status":"busy"}`), "", time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		return seq
	}
	if _, ok, err := st.FirstSince(ctx, "op1", time.Now().Add(-time.Hour)); ok || err != nil {
		t.Fatalf("empty log: ok %v, err %v", ok, err)
	}
	appendOne("op1")
	time.Sleep(50 * time.Millisecond)
	mid := time.Now()
	time.Sleep(50 * time.Millisecond)
	appendOne("op2")
	want := appendOne("op1")
	appendOne("op1")
	for _, tc := range []struct {
		op   string
		t    time.Time
		seq  uint64
		have bool
	}{
		{"op1", mid, want, true},
		{"op1", mid.Add(-time.Hour), 1, true},
		{"op2", mid, 2, true},
		{"op1", time.Now().Add(time.Minute), 0, false},
		{"op3", mid.Add(-time.Hour), 0, false},
	} {
		seq, ok, err := st.FirstSince(ctx, tc.op, tc.t)
		if err != nil || ok != tc.have || seq != tc.seq {
			t.Errorf("%s since %s: %d %v %v, want %d %v", tc.op, tc.t.Format(time.StampMilli), seq, ok, err, tc.seq, tc.have)
		}
	}
}
