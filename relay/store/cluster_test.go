package store_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/pult/pult/relay/looptest"
	"github.com/pult/pult/relay/store"
)

// Three embedded servers on loopback form one JetStream cluster: every
// stream and bucket has three copies, what one node writes the others read
// at once, and a single node's data scaled from 1 to 3 copies keeps it.
func TestEmbeddedCluster(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	addrs := looptest.Addrs(t, 3)
	var routes []string
	for _, a := range addrs {
		routes = append(routes, "nats-route://"+a)
	}
	dirs := []string{t.TempDir(), t.TempDir(), t.TempDir()}
	open := func(i, replicas int) (*store.Store, error) {
		return store.Open(ctx, store.Options{DataDir: dirs[i], MaxBytes: 256 << 20, Replicas: replicas, Logger: testLog(i),
			Cluster: &store.Cluster{Name: "pult-test", ServerName: fmt.Sprintf("n%d", i), Listen: addrs[i], Routes: routes}})
	}

	openAll := func(replicas int) []*store.Store {
		t.Helper()
		stores := make([]*store.Store, 3)
		errs := make([]error, 3)
		var wg sync.WaitGroup
		for i := range 3 {
			wg.Go(func() { stores[i], errs[i] = open(i, replicas) })
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("node %d: %v", i, err)
			}
		}
		return stores
	}
	// Node 0 ran alone, as a single relay does.
	alone, err := store.Open(ctx, store.Options{DataDir: dirs[0], MaxBytes: 256 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alone.Append(ctx, "op1", "test", []byte(`{"n":0}`), "", time.Time{}); err != nil {
		t.Fatal(err)
	}
	if _, err := alone.SaveStatus(ctx, "op1", []byte(`"busy"`), 0); err != nil {
		t.Fatal(err)
	}
	alone.Close()

	// A cluster with one copy of everything: node 0's data is copied in.
	stores := openAll(1)
	if ev, err := stores[1].Next(ctx, "op1", 0); err != nil || ev == nil || string(ev.Data) != `{"n":0}` {
		t.Fatalf("the single node's event in the cluster: %v %v", ev, err)
	}
	if b, _, err := stores[2].LoadStatus(ctx, "op1"); err != nil || string(b) != `"busy"` {
		t.Fatalf("the single node's status in the cluster: %q %v", b, err)
	}
	seq, err := stores[0].Append(ctx, "op1", "test", []byte(`{"n":1}`), "", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range stores {
		s.Close()
	}

	// Started again with three copies: nothing lost.
	stores = openAll(3)
	defer func() {
		for _, s := range stores {
			s.Close()
		}
	}()
	for i, s := range stores {
		ev, err := s.Next(ctx, "op1", seq-1)
		if err != nil || ev == nil || string(ev.Data) != `{"n":1}` {
			t.Errorf("node %d reads the single node's event: %v %v", i, ev, err)
		}
	}
	// Every node finds an operator's recent events by time (the stream's
	// leader answers).
	since := time.Now()
	recent, err := stores[2].Append(ctx, "op1", "test", []byte(`{"n":2}`), "", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range stores {
		if got, ok, err := s.FirstSince(ctx, "op1", since.Add(-time.Second)); err != nil || !ok || got > recent {
			t.Errorf("node %d: the operator's first recent event %d %v %v, want at most %d", i, got, ok, err, recent)
		}
		if got, ok, err := s.FirstSince(ctx, "op1", since); err != nil || !ok || got != recent {
			t.Errorf("node %d: the operator's first event since the append %d %v %v, want %d", i, got, ok, err, recent)
		}
	}
	usage, err := stores[1].Usage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(usage) < 10 {
		t.Errorf("usage: %v", usage)
	}
	// The account counts every copy: its budget is max_store_bytes on each
	// of the three servers.
	var streams uint64
	for _, u := range usage {
		if u.Name == store.AccountName {
			if u.MaxBytes != 3*(256<<20) || u.Bytes < streams {
				t.Errorf("account usage %d of %d; the streams hold %d", u.Bytes, u.MaxBytes, streams)
			}
			t.Logf("account usage %d, the streams' %d", u.Bytes, streams)
		} else {
			streams += u.Bytes
		}
	}
	if n, err := stores[2].StreamReplicas(ctx); err != nil || len(n) == 0 {
		t.Fatalf("replicas: %v %v", n, err)
	} else {
		for name, r := range n {
			if r != 3 {
				t.Errorf("%s has %d copies, want 3", name, r)
			}
		}
	}

	// A call committed on one node is read on another, and a commit from
	// a stale revision on a third is refused, its card not stored.
	rev, err := stores[0].CommitCall(ctx, "c.cl", []byte(`{"v":1}`), 0, []store.Append{{Operator: "op3", Type: "call", Data: []byte(`1`), MsgID: "c.cl.1"}})
	if err != nil {
		t.Fatal(err)
	}
	if data, r, err := stores[1].LoadCall(ctx, "c.cl"); err != nil || string(data) != `{"v":1}` || r != rev {
		t.Fatalf("the call on another node: %s %d %v", data, r, err)
	}
	if _, err := stores[2].CommitCall(ctx, "c.cl", []byte(`{"v":1}`), 0, []store.Append{{Operator: "op3", Type: "call", Data: []byte(`2`), MsgID: "c.cl.1b"}}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("a stale commit on a third node: %v", err)
	}
	var cards []string
	for after := uint64(0); ; {
		ev, err := stores[2].Next(ctx, "op3", after)
		if err != nil {
			t.Fatal(err)
		}
		if ev == nil {
			break
		}
		cards, after = append(cards, string(ev.Data)), ev.Seq
	}
	if len(cards) != 1 || cards[0] != "1" {
		t.Fatalf("op3's cards %q, want the first commit's alone", cards)
	}

	// A reply saved on one node is read on another at once.
	for i := range 20 {
		id := fmt.Sprintf("req-%d", i)
		if err := stores[i%3].SaveReply(ctx, "op1", id, []byte(`"ok"`)); err != nil {
			t.Fatal(err)
		}
		if b, err := stores[(i+1)%3].LoadReply(ctx, "op1", id); err != nil || string(b) != `"ok"` {
			t.Fatalf("reply %s on the next node: %q %v", id, b, err)
		}
		seq, err := stores[i%3].Append(ctx, "op2", "test", []byte("x"), "", time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		if ev, err := stores[(i+2)%3].Next(ctx, "op2", seq-1); err != nil || ev == nil || ev.Seq != seq {
			t.Fatalf("event %d on another node: %v %v", seq, ev, err)
		}
	}
}

// testLog is a node's log: on stderr with PULT_TEST_LOG set, else nowhere.
func testLog(node int) *slog.Logger {
	if os.Getenv("PULT_TEST_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, nil)).With("node", node)
}
