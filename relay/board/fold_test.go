package board

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pult/pult/agent/wire"
	"github.com/pult/pult/relay/call"
	"github.com/pult/pult/relay/operators"
	"github.com/pult/pult/relay/store"
)

var (
	anna  = operators.Operator{ID: "a", Name: "Anna", Code: "100", UserID: "1"}
	boris = operators.Operator{ID: "b", Name: "Boris", Code: "101", UserID: "2"}
	vera  = operators.Operator{ID: "v", Name: "Vera", Code: "102", UserID: "3"}
)

// foldBoard is a board without a store, driven by hand: the fold alone.
type foldBoard struct {
	*Board
	t   *testing.T
	seq uint64
	now time.Time
	rec map[string]*call.Record // the relay's records, as processCall keeps them
}

func newFoldBoard(t *testing.T, start time.Time) *foldBoard {
	fb := &foldBoard{t: t, now: start, rec: map[string]*call.Record{}}
	msk, err := moscow()
	if err != nil {
		t.Fatal(err)
	}
	fb.Board = New(Config{Log: slog.New(slog.DiscardHandler), Location: msk, ServiceLevel: 20 * time.Second, Now: func() time.Time { return fb.now }})
	for _, op := range []operators.Operator{anna, boris, vera} {
		op.CreatedAt = start.Add(-time.Hour)
		fb.putOperatorLocked(op)
		fb.st.Ops[op.ID].Connected = true
	}
	return fb
}

// event applies a PBX event at now+after to the call's record, as
// processCall does, and folds the change in.
func (fb *foldBoard) event(after time.Duration, id, dir, typ, status string, ops ...operators.Operator) {
	fb.t.Helper()
	fb.now = fb.now.Add(after)
	ev := call.Event{Type: typ, CallID: id, HangupStatus: status, At: fb.now, Direction: dir}
	for _, op := range ops {
		ev.Operators = append(ev.Operators, person(op))
	}
	rec := fb.rec[id]
	if rec == nil {
		rec = &call.Record{Key: "k-" + id, ID: id, Direction: wire.DirectionIn, Phone: "+79120000000", PhoneDisplay: "8 (912) 000-00-00",
			State: wire.CallRinging, Legs: map[string]*call.Leg{}, StartedAt: fb.now}
		if typ == call.Out {
			rec.Direction = wire.DirectionOut
		}
		fb.rec[id] = rec
	}
	if !rec.Apply(ev) && rec.Version > 0 {
		return
	}
	if rec.Version == 0 {
		rec.Version = 1
	}
	rec.At = fb.now
	fb.seq++
	fb.fold(rec)
}

// fold folds a version of a record in, as stored and read back.
func (fb *foldBoard) fold(rec *call.Record) {
	fb.t.Helper()
	data, err := json.Marshal(rec)
	if err != nil {
		fb.t.Fatal(err)
	}
	c, err := decodeChange(data, time.Time{})
	if err != nil {
		fb.t.Fatal(err)
	}
	fb.mu.Lock()
	fb.applyChangeLocked(fb.seq, c)
	fb.mu.Unlock()
}

func clone(r *call.Record) *call.Record {
	c := *r
	c.Legs = map[string]*call.Leg{}
	for k, v := range r.Legs {
		l := *v
		c.Legs[k] = &l
	}
	return &c
}

func (fb *foldBoard) tick(after time.Duration) {
	fb.now = fb.now.Add(after)
	fb.mu.Lock()
	fb.advanceLocked(fb.now)
	fb.mu.Unlock()
}

func (fb *foldBoard) snap() wire.QueueSnapshot {
	fb.mu.Lock()
	defer fb.mu.Unlock()
	fb.flushLocked()
	return fb.snapshotLocked()
}

func (fb *foldBoard) counters(id string) wire.QueueCounters {
	for _, op := range fb.snap().Operators {
		if op.ID == id {
			return op.Counters
		}
	}
	fb.t.Fatalf("operator %s not on the board", id)
	return wire.QueueCounters{}
}

func (fb *foldBoard) opCall(id string) *wire.QueueCall {
	for _, op := range fb.snap().Operators {
		if op.ID == id {
			return op.Call
		}
	}
	return nil
}

func TestFoldCounts(t *testing.T) {
	t0 := time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC) // 12:00 in Moscow
	fb := newFoldBoard(t, t0)

	// c1 rings Anna and Boris; Boris answers after 8 s; Vera takes it over
	// (a transfer) 60 s later; it ends 30 s after that.
	fb.event(0, "c1", "", call.Ring, "", anna, boris)
	s := fb.snap()
	if len(s.Waiting) != 1 || s.Waiting[0].ID != "c1" || !cmp.Equal(s.Waiting[0].Ringing, []string{"100", "101"}) {
		t.Fatalf("waiting after the ring: %+v", s.Waiting)
	}
	fb.event(8*time.Second, "c1", "", call.Answer, "", boris)
	if c := fb.opCall("b"); c == nil || c.State != wire.CallTalking || c.ID != "c1" {
		t.Fatalf("Boris's call: %+v", c)
	}
	if len(fb.snap().Waiting) != 0 {
		t.Fatal("an answered call is still waiting")
	}
	fb.event(60*time.Second, "c1", "", call.Answer, "", vera)
	if fb.opCall("b") != nil {
		t.Error("Boris still on the call after the transfer")
	}
	if c := fb.opCall("v"); c == nil || c.State != wire.CallTalking || !c.Since.Equal(fb.now) {
		t.Errorf("Vera's call: %+v", c)
	}
	fb.event(30*time.Second, "c1", "", call.Hangup, "answered", vera)
	if fb.opCall("v") != nil {
		t.Error("Vera still on the call after the hangup")
	}

	// c2 rings Anna only and is missed after 25 s.
	fb.event(time.Minute, "c2", "", call.Ring, "", anna)
	fb.event(25*time.Second, "c2", "", call.Hangup, "no answered")

	// c3 rings Anna, moves on to Vera (Anna's leg stops: missed there),
	// Vera answers after 30 s (too late for the service level), the PBX
	// says so only at the hangup.
	fb.event(time.Minute, "c3", "", call.Ring, "", anna)
	fb.event(5*time.Second, "c3", "", call.Ring, "", vera)
	fb.event(5*time.Second, "c3", "", call.Hangup, "no answered", anna)
	if s := fb.snap(); len(s.Waiting) != 1 || !cmp.Equal(s.Waiting[0].Ringing, []string{"102"}) {
		t.Fatalf("c3 waiting after Anna's leg stopped: %+v", s.Waiting)
	}
	fb.event(20*time.Second, "c3", "", call.Hangup, "answered", vera)

	// c4: Boris dials out; the callee answers; it ends.
	fb.event(time.Minute, "c4", "", call.Out, "", boris)
	if c := fb.opCall("b"); c == nil || c.State != wire.CallRinging || c.Direction != wire.DirectionOut {
		t.Fatalf("Boris dialling: %+v", c)
	}
	fb.event(10*time.Second, "c4", "", call.Answer, "", boris)
	fb.event(50*time.Second, "c4", "", call.Hangup, "answered", boris)

	// c5 rings Anna and Boris, Anna answers: answered elsewhere for Boris,
	// not missed.
	fb.event(time.Minute, "c5", "", call.Ring, "", anna, boris)
	fb.event(3*time.Second, "c5", "", call.Answer, "", anna)
	fb.event(40*time.Second, "c5", "", call.Hangup, "answered", anna)

	tot := fb.snap().Totals
	want := wire.QueueCounters{Incoming: 4, Answered: 3, Missed: 1, Outgoing: 1, AnsweredInTime: 2,
		WaitTotalSeconds: 8 + 25 + 30 + 3, WaitMaxSeconds: 30,
		// c1 90 s; c3's talk is unknown (answered only at the hangup); c5 40 s
		TalkTotalSeconds: 90 + 40, TalkedCalls: 2}
	if d := cmp.Diff(want, tot); d != "" {
		t.Errorf("totals (-want +got):\n%s", d)
	}
	for id, want := range map[string]wire.QueueCounters{
		// rung by c1, c2, c3, c5; missed c2 (25 s) and c3 (rang 10 s); answered c5
		"a": {Incoming: 4, Answered: 1, Missed: 2, AnsweredInTime: 1, WaitTotalSeconds: 25 + 10 + 3, WaitMaxSeconds: 25, TalkTotalSeconds: 40, TalkedCalls: 1},
		// answered c1 (8 s), talked 60 s until the transfer; rung by c5; dialled c4
		"b": {Incoming: 2, Answered: 1, Outgoing: 1, AnsweredInTime: 1, WaitTotalSeconds: 8, WaitMaxSeconds: 8, TalkTotalSeconds: 60, TalkedCalls: 1},
		// took c1 over (answered, no queue wait), talked 30 s; answered c3 at its hangup (wait 30 s, talk unknown)
		"v": {Incoming: 2, Answered: 2, AnsweredInTime: 1, WaitTotalSeconds: 30, WaitMaxSeconds: 30, TalkTotalSeconds: 30, TalkedCalls: 1},
	} {
		if d := cmp.Diff(want, fb.counters(id)); d != "" {
			t.Errorf("%s's counters (-want +got):\n%s", id, d)
		}
	}
}

func TestFoldMidnightAndHistory(t *testing.T) {
	// 23:58:00 in Moscow.
	t0 := time.Date(2026, 11, 21, 20, 58, 0, 0, time.UTC)
	fb := newFoldBoard(t, t0)
	fb.event(10*time.Second, "late", "", call.Ring, "", anna)
	fb.event(5*time.Second, "other", "", call.Ring, "", boris)
	fb.event(5*time.Second, "other", "", call.Answer, "", boris)
	s := fb.snap()
	if s.Day != "2026-11-21" || s.Totals.Incoming != 2 || s.Totals.Answered != 1 {
		t.Fatalf("before midnight: day %s totals %+v", s.Day, s.Totals)
	}
	// 00:00:30: a new day; "late" still waits and is counted missed today.
	fb.tick(2*time.Minute + 10*time.Second)
	s = fb.snap()
	if s.Day != "2026-11-22" || (s.Totals != wire.QueueCounters{}) {
		t.Fatalf("after midnight: day %s totals %+v", s.Day, s.Totals)
	}
	for _, op := range s.Operators {
		if (op.Counters != wire.QueueCounters{}) {
			t.Errorf("%s's counters not reset: %+v", op.ID, op.Counters)
		}
	}
	if len(s.Waiting) != 1 || s.Waiting[0].ID != "late" {
		t.Errorf("the call waiting over midnight is gone: %+v", s.Waiting)
	}
	fb.event(0, "late", "", call.Hangup, "no answered")
	if tot := fb.snap().Totals; tot.Missed != 1 || tot.Incoming != 0 {
		t.Errorf("the call missed after midnight: %+v", tot)
	}
	// One sample per minute closed: 23:58 (2 waiting at most), 23:59 (1).
	h := fb.snap().History
	if len(h) != 2 || h[0].Waiting != 2 || h[1].Waiting != 1 || !h[0].At.Equal(t0) {
		t.Errorf("history: %+v", h)
	}
	// Hours later, the history holds at most MaxQueueHistory samples.
	fb.tick(10 * time.Hour)
	if h := fb.snap().History; len(h) != wire.MaxQueueHistory || h[len(h)-1].Waiting != 0 {
		t.Errorf("history after 10 h: %d samples", len(h))
	}
}

// Two nodes fold the same changes, one with its clock past midnight
// before the last change reaches it, one after: their new days count the
// same (the change made before midnight counts in neither).
func TestFoldMidnightSameOnEveryNode(t *testing.T) {
	t0 := time.Date(2026, 11, 21, 20, 59, 40, 0, time.UTC) // 23:59:40 in Moscow
	late, early := newFoldBoard(t, t0), newFoldBoard(t, t0)
	for _, fb := range []*foldBoard{late, early} {
		fb.event(0, "c1", "", call.Ring, "", anna, boris)
		fb.event(5*time.Second, "c2", "", call.Ring, "", vera)
	}
	// The answer to c1, made at 23:59:55, reaches early's node after its
	// clock passed midnight, and late's before.
	early.tick(20 * time.Second) // 00:00:05
	early.now = early.now.Add(-10 * time.Second)
	early.event(0, "c1", "", call.Answer, "", anna)
	late.event(10*time.Second, "c1", "", call.Answer, "", anna)
	late.tick(10 * time.Second) // 00:00:05
	for _, fb := range []*foldBoard{late, early} {
		fb.now = t0.Add(30 * time.Second) // 00:00:10
		fb.event(0, "c2", "", call.Hangup, "no answered")
		fb.event(5*time.Second, "c1", "", call.Hangup, "answered")
	}
	sl, se := late.snap(), early.snap()
	if sl.Day != "2026-11-22" || se.Day != sl.Day {
		t.Fatalf("days: %s and %s", sl.Day, se.Day)
	}
	if d := cmp.Diff(sl.Totals, se.Totals); d != "" {
		t.Errorf("totals (-late +early):\n%s", d)
	}
	if sl.Totals.Answered != 0 || sl.Totals.Missed != 1 || sl.Totals.TalkedCalls != 1 {
		t.Errorf("the new day's totals: %+v", sl.Totals)
	}
	for _, id := range []string{"a", "b", "v"} {
		if d := cmp.Diff(late.counters(id), early.counters(id)); d != "" {
			t.Errorf("%s's counters (-late +early):\n%s", id, d)
		}
	}
}

// A replay of a finished call (the PBX resending its hangup later) counts
// nothing twice; a late change does not undo a newer one.
func TestFoldIgnoresReplays(t *testing.T) {
	fb := newFoldBoard(t, time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC))
	fb.event(0, "c1", "", call.Ring, "", anna)
	first := *clone(fb.rec["c1"])
	fb.event(5*time.Second, "c1", "", call.Hangup, "no answered")
	final := *clone(fb.rec["c1"])
	fb.mu.Lock()
	fb.applyChangeLocked(10, queueChange{At: fb.now.Add(time.Hour), Call: final}) // replayed an hour later
	fb.applyChangeLocked(11, queueChange{At: fb.now, Call: first})                // an old version
	fb.mu.Unlock()
	// The responsible manager found after the end: a version of its own.
	settled := clone(&final)
	settled.Version++
	settled.At = fb.now.Add(2 * time.Second)
	settled.ManagerState = wire.ManagerFound
	settled.Manager = &wire.Manager{Name: "Olga"}
	fb.seq = 12
	fb.fold(settled)
	if tot := fb.snap().Totals; tot.Incoming != 1 || tot.Missed != 1 {
		t.Errorf("totals after replays: %+v", tot)
	}
	if len(fb.snap().Waiting) != 0 {
		t.Error("an old version brought the call back")
	}
}

// A version that changes nothing the board shows (the responsible manager
// found while the call rings) changes nothing on it.
func TestFoldManagerVersion(t *testing.T) {
	fb := newFoldBoard(t, time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC))
	fb.event(0, "c1", "", call.Ring, "", anna)
	before := fb.snap()
	settled := clone(fb.rec["c1"])
	settled.Version++
	settled.At = fb.now.Add(300 * time.Millisecond)
	settled.ManagerState = wire.ManagerFound
	settled.Manager = &wire.Manager{Name: "Olga"}
	fb.seq++
	fb.fold(settled)
	after := fb.snap()
	before.Version, after.Version, before.At, after.At = 0, 0, time.Time{}, time.Time{}
	if d := cmp.Diff(before, after); d != "" {
		t.Errorf("the board changed (-before +after):\n%s", d)
	}
}

// A record reads as the fold's change: its own time, else when it was
// stored (records of relays before call.Record.At); what the board does not
// show is dropped.
func TestDecodeChange(t *testing.T) {
	stored := time.Date(2026, 11, 21, 9, 0, 1, 0, time.UTC)
	at := stored.Add(-time.Second)
	for _, tc := range []struct {
		name string
		rec  call.Record
		want time.Time
	}{
		{"with its time", call.Record{Key: "k", ID: "c", At: at, Manager: &wire.Manager{Name: "Olga"}, Client: &wire.Client{Name: "Ivan"}}, at},
		{"from an earlier relay", call.Record{Key: "k", ID: "c", Manager: &wire.Manager{Name: "Olga"}}, stored},
	} {
		data, err := json.Marshal(tc.rec)
		if err != nil {
			t.Fatal(err)
		}
		c, err := decodeChange(data, stored)
		if err != nil {
			t.Fatal(err)
		}
		if !c.At.Equal(tc.want) || c.Call.Manager != nil || c.Call.Client != nil || c.Call.Links != nil || c.Call.ID != "c" {
			t.Errorf("%s: got at %v, %+v", tc.name, c.At, c.Call)
		}
	}
	if _, err := decodeChange([]byte(`{"key":`), stored); err == nil {
		t.Error("a truncated record decoded")
	}
}

// Deltas carry only what changed, and applying them to a snapshot gives
// the board.
func TestFoldDeltas(t *testing.T) {
	fb := newFoldBoard(t, time.Date(2026, 11, 21, 9, 0, 0, 30e9, time.UTC))
	fb.mu.Lock()
	fb.flushLocked()
	client := fb.snapshotLocked()
	fb.mu.Unlock()
	step := func(f func()) wire.QueueDelta {
		f()
		fb.mu.Lock()
		got := fb.collectLocked()
		fb.mu.Unlock()
		if len(got) != 1 {
			t.Fatalf("%d deltas, want 1", len(got))
		}
		if !client.Apply(got[0]) {
			t.Fatalf("delta %d does not follow %d", got[0].Version, client.Version)
		}
		return got[0]
	}
	d := step(func() { fb.event(0, "c1", "", call.Ring, "", anna) })
	if len(d.Operators) != 1 || d.Operators[0].ID != "a" || len(d.Waiting) != 1 || d.Totals == nil || d.Sample != nil {
		t.Errorf("ring delta: %+v", d)
	}
	d = step(func() { fb.event(time.Second, "c1", "", call.Answer, "", anna) })
	if len(d.Operators) != 1 || len(d.Gone) != 1 || len(d.Waiting) != 0 {
		t.Errorf("answer delta: %+v", d)
	}
	d = step(func() { fb.tick(time.Minute) })
	if d.Sample == nil || len(d.Operators) != 0 || d.Totals != nil {
		t.Errorf("minute delta: %+v", d)
	}
	want := fb.snap()
	client.At, want.At = time.Time{}, time.Time{}
	if dd := cmp.Diff(want, client); dd != "" {
		t.Errorf("snapshot + deltas differ from the board (-board +client):\n%s", dd)
	}
}

// A viewer that falls behind is dropped; the others go on.
func TestSlowViewerDropped(t *testing.T) {
	fb := newFoldBoard(t, time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC))
	slow, err := fb.subscribeSSE("sup")
	if err != nil {
		t.Fatal(err)
	}
	fast, _ := fb.subscribeSSE("sup")
	for i := range viewerQueue + 5 {
		fb.event(time.Second, fmt.Sprintf("c%d", i), "", call.Ring, "", anna)
		fb.mu.Lock()
		fb.flushLocked()
		fb.mu.Unlock()
		select {
		case <-fast.sse:
		default:
		}
	}
	select {
	case <-slow.gone:
	default:
		t.Fatal("the slow viewer was not dropped")
	}
	select {
	case <-fast.gone:
		t.Fatal("the viewer that kept up was dropped")
	default:
	}
	fb.unsubscribeSSE(slow)
	fb.unsubscribeSSE(fast)
	if fb.viewers != 0 || len(fb.subs) != 0 {
		t.Errorf("viewers %d, subs %d after unsubscribing", fb.viewers, len(fb.subs))
	}
}

// The board rebuilt from the queue stream alone (no checkpoint) is the
// board that was checkpointed, and both are the board that ran.
func TestBoardRebuildsFromStream(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, store.Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	t0 := time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC)
	script := newFoldBoard(t, t0) // makes the records; its own fold is not used
	revs := map[string]uint64{}
	emit := func(after time.Duration, id, typ, status string, ops ...operators.Operator) {
		script.now = script.now.Add(after)
		rec := script.rec[id]
		if rec == nil {
			rec = &call.Record{Key: "k-" + id, ID: id, Direction: wire.DirectionIn, Phone: "+79120000000",
				State: wire.CallRinging, Legs: map[string]*call.Leg{}, StartedAt: script.now}
			script.rec[id] = rec
		}
		ev := call.Event{Type: typ, CallID: id, HangupStatus: status, At: script.now}
		for _, op := range ops {
			ev.Operators = append(ev.Operators, person(op))
		}
		rec.Apply(ev)
		rec.At = script.now
		b, _ := json.Marshal(rec)
		rev, err := st.CommitCall(ctx, rec.Key, b, revs[id], nil)
		if err != nil {
			t.Fatal(err)
		}
		revs[id] = rev
	}
	emit(0, "c1", call.Ring, "", anna, boris)
	emit(4*time.Second, "c1", call.Answer, "", boris)
	emit(90*time.Second, "c1", call.Answer, "", anna)
	emit(30*time.Second, "c1", call.Hangup, "answered", anna)
	emit(2*time.Minute, "c2", call.Ring, "", vera)
	emit(40*time.Second, "c2", call.Hangup, "no answered")
	emit(3*time.Minute, "c3", call.Ring, "", anna)
	now := script.now.Add(30 * time.Second)

	run := func() wire.QueueSnapshot {
		t.Helper()
		msk, _ := moscow()
		b := New(Config{Log: slog.New(slog.DiscardHandler), Store: st, Location: msk, ServiceLevel: 20 * time.Second, Now: func() time.Time { return now }})
		var ops []operators.Operator
		for _, op := range []operators.Operator{anna, boris, vera} {
			op.CreatedAt = t0.Add(-time.Hour)
			ops = append(ops, op)
		}
		if err := b.Open(ctx, ops); err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- b.Run(rctx) }()
		select {
		case <-b.Ready():
		case <-time.After(10 * time.Second):
			t.Fatal("the board did not catch up")
		}
		s := b.Snapshot()
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		s.At, s.Version = time.Time{}, 0
		return s
	}
	first := run()
	if first.Totals.Incoming != 3 || first.Totals.Missed != 1 || len(first.Waiting) != 1 || len(first.History) != 8 {
		t.Fatalf("the board: totals %+v, waiting %d, history %d", first.Totals, len(first.Waiting), len(first.History))
	}
	fromCheckpoint := run()
	if d := cmp.Diff(first, fromCheckpoint); d != "" {
		t.Errorf("from the checkpoint (-first +again):\n%s", d)
	}
	// An unreadable checkpoint counts as none: the board is rebuilt from
	// the stream alone.
	if err := st.SaveBoardCheckpoint(ctx, []byte("{}")); err != nil {
		t.Fatal(err)
	}
	fromStream := run()
	if d := cmp.Diff(first, fromStream); d != "" {
		t.Errorf("rebuilt from the stream (-first +rebuilt):\n%s", d)
	}
}

// moscow is the call center's zone in these tests (UTC+3 all year).
func moscow() (*time.Location, error) { return time.FixedZone("MSK", 3*3600), nil }

// person is the operator as a call record knows them.
func person(op operators.Operator) call.Person {
	return call.Person{ID: op.ID, Code: op.Code, Name: op.Name, UserID: op.UserID}
}

// A board with thousands of calls live checkpoints less often than every
// checkpointEvery, as its size says, and never less often than
// checkpointMax.
func TestCheckpointGap(t *testing.T) {
	fb := newFoldBoard(t, time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC))
	size := func() int {
		fb.mu.Lock()
		st := fb.st.clone()
		fb.mu.Unlock()
		data, err := json.Marshal(&st)
		if err != nil {
			t.Fatal(err)
		}
		return len(data)
	}
	if gap := checkpointGap(size()); gap != checkpointEvery {
		t.Errorf("no calls: %s, want %s", gap, checkpointEvery)
	}
	for i := range 5000 {
		fb.event(time.Millisecond, fmt.Sprintf("c%d", i), "", call.Ring, "", anna, boris)
	}
	n := size()
	gap := checkpointGap(n)
	t.Logf("5 000 calls ringing: a checkpoint of %d bytes, every %s", n, gap)
	if want := time.Duration(n) * time.Second / checkpointRate; gap != want || gap <= checkpointEvery {
		t.Errorf("5 000 calls (%d bytes): %s, want %s", n, gap, want)
	}
	if gap := checkpointGap(1 << 30); gap != checkpointMax {
		t.Errorf("1 GiB: %s, want %s", gap, checkpointMax)
	}
}
