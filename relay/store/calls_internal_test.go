package store

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// A call's record and its cards are stored together, on the condition that
// the record is at the revision read: a stale commit stores neither. A
// record left in the former bucket is read (revision 0) and moves into
// the stream with its next version; CallKeys lists every call once.
func TestCommitCall(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := Open(ctx, Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	card := func(op, id string) []Append {
		return []Append{{Operator: op, Type: "call", Data: []byte(`{"id":"` + id + `"}`), MsgID: id}}
	}
	cards := func(op string) []string {
		var out []string
		for after := uint64(0); ; {
			ev, err := s.Next(ctx, op, after)
			if err != nil {
				t.Fatal(err)
			}
			if ev == nil {
				return out
			}
			out = append(out, string(ev.Data))
			after = ev.Seq
		}
	}

	// A new call.
	rev1, err := s.CommitCall(ctx, "c.new", []byte(`{"v":1}`), 0, card("op1", "new-1"))
	if err != nil {
		t.Fatal(err)
	}
	if data, rev, err := s.LoadCall(ctx, "c.new"); err != nil || string(data) != `{"v":1}` || rev != rev1 {
		t.Fatalf("load: %s %d %v, want revision %d", data, rev, err, rev1)
	}
	// Created again (another relay thought it new too): refused, its card
	// not stored.
	if _, err := s.CommitCall(ctx, "c.new", []byte(`{"v":1,"other":true}`), 0, card("op1", "new-1b")); !errors.Is(err, ErrConflict) {
		t.Fatalf("a second create: %v, want ErrConflict", err)
	}
	// The next version, then a stale one.
	rev2, err := s.CommitCall(ctx, "c.new", []byte(`{"v":2}`), rev1, card("op1", "new-2"))
	if err != nil || rev2 <= rev1 {
		t.Fatalf("version 2: %d %v", rev2, err)
	}
	if _, err := s.CommitCall(ctx, "c.new", []byte(`{"v":2,"stale":true}`), rev1, card("op1", "new-2b")); !errors.Is(err, ErrConflict) {
		t.Fatalf("a stale commit: %v, want ErrConflict", err)
	}
	if got, want := cards("op1"), []string{`{"id":"new-1"}`, `{"id":"new-2"}`}; !slices.Equal(got, want) {
		t.Errorf("cards stored %q, want %q", got, want)
	}
	if data, rev, _ := s.LoadCall(ctx, "c.new"); string(data) != `{"v":2}` || rev != rev2 {
		t.Errorf("after the refusals: %s %d", data, rev)
	}

	// A record of an earlier relay, in the bucket.
	if _, err := s.calls.Put(ctx, "c.old", []byte(`{"v":7}`)); err != nil {
		t.Fatal(err)
	}
	data, rev, err := s.LoadCall(ctx, "c.old")
	if err != nil || string(data) != `{"v":7}` || rev != 0 {
		t.Fatalf("the bucket's record: %s %d %v", data, rev, err)
	}
	rev8, err := s.CommitCall(ctx, "c.old", []byte(`{"v":8}`), 0, card("op2", "old-8"))
	if err != nil {
		t.Fatal(err)
	}
	if data, rev, _ := s.LoadCall(ctx, "c.old"); string(data) != `{"v":8}` || rev != rev8 {
		t.Errorf("the moved record: %s %d", data, rev)
	}
	var keys []string
	if err := s.CallKeys(ctx, func(k string) bool { keys = append(keys, k); return true }); err != nil {
		t.Fatal(err)
	}
	slices.Sort(keys)
	if want := []string{"c.new", "c.old"}; !slices.Equal(keys, want) {
		t.Errorf("CallKeys %q, want %q", keys, want)
	}
	// Records are not events: an operator's feed holds cards only.
	if got := cards("op2"); !slices.Equal(got, []string{`{"id":"old-8"}`}) {
		t.Errorf("op2's events %q", got)
	}
}

// The calls' former bucket is read only: full of an earlier relay's
// records, it must not make the relay refuse new work (the storage guard
// watches guarded stores only); every bucket written to is guarded.
func TestFormerCallsBucketNotGuarded(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := Open(ctx, Options{DataDir: t.TempDir(), MaxBytes: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	usage, err := s.Usage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, u := range usage {
		seen[u.Name] = u.Guarded
	}
	if guarded, ok := seen[bucketCalls]; !ok || guarded {
		t.Errorf("%s: listed %v, guarded %v; want listed, not guarded", bucketCalls, ok, guarded)
	}
	for _, b := range []string{bucketStatus, bucketRequests, bucketTrans, bucketQueue} {
		if !seen[b] {
			t.Errorf("%s is not guarded", b)
		}
	}
}

// The queue board's former input, a stream of its own that earlier relays
// wrote every call change to: a single relay drops it at start; in a
// cluster (upgraded a node at a time, the others still writing to it) it is
// kept in its share of the budget until it is empty, then dropped.
func TestFormerQueueRetired(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir := t.TempDir()
	const budget = 64 << 20
	s := openTest(t, dir, Options{MaxBytes: budget})
	former := func() (jetstream.Stream, bool) {
		t.Helper()
		st, err := s.js.Stream(ctx, formerQueueStream)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return nil, false
		} else if err != nil {
			t.Fatal(err)
		}
		return st, true
	}
	earlier := func() { // as a relay before this version made it and wrote to it
		t.Helper()
		// (Its share was 10% then; this store's have the whole budget.)
		if _, err := s.js.CreateStream(ctx, jetstream.StreamConfig{Name: formerQueueStream, Subjects: []string{"pult.queue.call"},
			Storage: jetstream.FileStorage, MaxBytes: -1, MaxAge: 48 * time.Hour}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.js.Publish(ctx, "pult.queue.call", []byte(`{"at":"2026-12-03T19:00:00Z","call":{}}`)); err != nil {
			t.Fatal(err)
		}
	}
	earlier()
	clustered := Options{MaxBytes: budget, Cluster: &Cluster{}}
	if err := s.retireFormerQueue(ctx, clustered); err != nil {
		t.Fatal(err)
	}
	st, ok := former()
	if !ok {
		t.Fatal("in a cluster, the former queue stream was dropped while written to")
	}
	if got, want := st.CachedInfo().Config.MaxBytes, int64(budget/100); got != want {
		t.Errorf("kept with %d bytes, want %d (its share)", got, want)
	}
	us, err := s.Usage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(us, func(u Usage) bool { return u.Name == formerQueueStream && u.MaxBytes == budget/100 }) {
		t.Errorf("the kept former queue stream is not in Usage: %+v", us)
	}
	if err := st.Purge(ctx); err != nil { // its age limit passed: empty
		t.Fatal(err)
	}
	if err := s.retireFormerQueue(ctx, clustered); err != nil {
		t.Fatal(err)
	}
	if _, ok := former(); ok {
		t.Error("in a cluster, the empty former queue stream was kept")
	}
	earlier()
	s.Close()
	s = openTest(t, dir, Options{MaxBytes: budget})
	defer s.Close()
	if _, ok := former(); ok {
		t.Error("a single relay kept the former queue stream")
	}
}

// CallsInfo names the latest record, whatever call it is of.
func TestCallsInfo(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := openTest(t, t.TempDir(), Options{})
	defer s.Close()
	last, _, created, err := s.CallsInfo(ctx)
	if err != nil || last != 0 || created.IsZero() {
		t.Fatalf("no records: last %d, created %v, %v", last, created, err)
	}
	var revs []uint64
	for _, key := range []string{"k1", "k2"} {
		rev, err := s.CommitCall(ctx, key, []byte(`{}`), 0, []Append{{Operator: "op", Type: "call", Data: []byte(`{}`)}})
		if err != nil {
			t.Fatal(err)
		}
		revs = append(revs, rev)
	}
	if _, err := s.Append(ctx, "op", "status", []byte(`{}`), "", time.Time{}); err != nil { // not a record
		t.Fatal(err)
	}
	last, stored, again, err := s.CallsInfo(ctx)
	if err != nil || last != revs[1] || stored.IsZero() || !again.Equal(created) {
		t.Errorf("last %d (want %d), stored %v, created %v (was %v), %v", last, revs[1], stored, again, created, err)
	}
}
