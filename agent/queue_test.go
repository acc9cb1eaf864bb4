package agent

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/pult/pult/agent/agenttest"
	"github.com/pult/pult/agent/wire"
)

func testBoard() *wire.QueueSnapshot {
	now := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	return &wire.QueueSnapshot{
		Version: 7, At: now, Day: "2026-11-21", TimeZone: "Europe/Moscow", ServiceLevelSeconds: 20,
		Operators: []wire.QueueOperator{
			{ID: "op-1", Name: "Anna", Code: "100", Status: wire.StatusFree, Since: now, Connected: true},
			{ID: "op-2", Name: "Dmitry", Code: "101", Status: wire.StatusOffline, Since: now},
		},
		Totals: wire.QueueCounters{Incoming: 3, Answered: 2, Missed: 1, AnsweredInTime: 2, WaitTotalSeconds: 30},
	}
}

func TestQueueBoard(t *testing.T) {
	checkLeaks(t)
	r := agenttest.New(t)
	r.SetBoard(testBoard())
	a, rec := newTestAgent(t, r, nil)
	a.WatchQueue(true) // before Run: subscribes once online
	start(t, a)
	lastBoard := func() *wire.QueueSnapshot {
		ev, ok := rec.last(EventQueue)
		if !ok {
			return nil
		}
		return ev.Queue
	}
	waitFor(t, "the snapshot", func() bool { b := lastBoard(); return b != nil && b.Version == 7 })

	// Deltas: only what changed, applied in order.
	r.SendQueue(wire.QueueDelta{Version: 8, At: time.Now(), Waiting: []wire.WaitingCall{{ID: "c1", Phone: "+79161234567", Since: time.Now()}}})
	r.SendQueue(wire.QueueDelta{Version: 9, At: time.Now(), Operators: []wire.QueueOperator{{ID: "op-2", Name: "Dmitry", Code: "101", Status: wire.StatusBusy, Connected: true}}})
	waitFor(t, "two deltas", func() bool { b := lastBoard(); return b != nil && b.Version == 9 })
	b := lastBoard()
	if len(b.Waiting) != 1 || b.Operators[1].Status != wire.StatusBusy || len(b.Operators) != 2 {
		t.Errorf("board after deltas: %+v", b)
	}
	if ev, _ := rec.last(EventQueue); ev.QueueDelta == nil || ev.QueueDelta.Version != 9 {
		t.Error("the event does not carry its delta")
	}
	// A gap: subscribe again for a fresh snapshot.
	subs := r.QueueSubscriptions()
	r.SendQueue(wire.QueueDelta{Version: 11, At: time.Now()})
	waitFor(t, "resubscribed", func() bool { return r.QueueSubscriptions() == subs+1 })
	// A reconnect subscribes again too.
	r.Drop()
	waitFor(t, "resubscribed after reconnect", func() bool { return r.QueueSubscriptions() == subs+2 })

	// Supervisors set others' status.
	info, err := a.SetOperatorStatus(context.Background(), "op-2", wire.StatusFree)
	if err != nil || info.Status != wire.StatusFree || info.Source != "supervisor" {
		t.Errorf("SetOperatorStatus = %+v, %v", info, err)
	}
	// Off: no more boards.
	a.WatchQueue(false)
	n := rec.count(EventQueue, 0)
	r.SendQueue(wire.QueueDelta{Version: 12, At: time.Now()})
	time.Sleep(50 * time.Millisecond)
	if rec.count(EventQueue, 0) != n {
		t.Error("board events after WatchQueue(false)")
	}
}

func TestQueueForbidden(t *testing.T) {
	checkLeaks(t)
	r := agenttest.New(t) // no board: an operator
	a, rec := newTestAgent(t, r, nil)
	start(t, a)
	waitOnline(t, a)
	a.WatchQueue(true)
	waitFor(t, "the refusal", func() bool { ev, ok := rec.last(EventQueue); return ok && ev.Err != "" })
	if ev, _ := rec.last(EventQueue); ev.Queue != nil {
		t.Error("a board for an operator")
	}
	_, err := a.SetOperatorStatus(context.Background(), "op-2", wire.StatusFree)
	var werr *wire.Error
	if !errors.As(err, &werr) || werr.Code != wire.ErrForbidden {
		t.Errorf("SetOperatorStatus as an operator = %v", err)
	}
}
