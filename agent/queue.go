package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/pult/pult/agent/wire"
)

// The queue board (supervisors). WatchQueue(true) subscribes now and after
// every reconnect; the agent keeps the board, applies the relay's deltas and
// delivers the whole board as an EventQueue after each change. A missed
// delta makes it subscribe again for a fresh snapshot.

const queueTimeout = 15 * time.Second

// WatchQueue turns the queue board on or off.
func (a *Agent) WatchQueue(on bool) {
	a.mu.Lock()
	a.queueOn = on
	if !on {
		a.board = nil
	}
	c := a.cur
	a.mu.Unlock()
	if c != nil {
		c.kickQueue()
	}
}

func (c *conn) kickQueue() {
	select {
	case c.queueKick <- struct{}{}:
	default:
	}
}

// queueLoop (un)subscribes on c whenever kicked, for as long as c lives.
func (a *Agent) queueLoop(c *conn, events chan<- Event) {
	subscribed := false
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-c.queueKick:
		}
		a.mu.Lock()
		on := a.queueOn
		a.mu.Unlock()
		if !on {
			if subscribed {
				var none json.RawMessage
				a.request(c, wire.TypeQueueUnsubscribe, nil, &none)
				subscribed = false
			}
			continue
		}
		var snap wire.QueueSnapshot
		err := a.request(c, wire.TypeQueueSubscribe, nil, &snap)
		if c.ctx.Err() != nil {
			return
		}
		if err != nil {
			var werr *wire.Error
			if errors.As(err, &werr) && werr.Code == wire.ErrForbidden {
				a.mu.Lock()
				a.queueOn = false
				a.mu.Unlock()
			}
			a.log.Warn("queue board not available", "err", err)
			emit(c.ctx, events, Event{Kind: EventQueue, Err: err.Error()})
			continue
		}
		subscribed = true
		a.mu.Lock()
		if !a.queueOn {
			a.mu.Unlock()
			c.kickQueue() // switched off meanwhile: unsubscribe
			continue
		}
		a.board = &snap
		board := cloneBoard(&snap)
		a.mu.Unlock()
		emit(c.ctx, events, Event{Kind: EventQueue, Queue: board})
	}
}

// queueDelta applies a "queue" frame read on c.
func (a *Agent) queueDelta(c *conn, env wire.Envelope, events chan<- Event) {
	var d wire.QueueDelta
	if err := json.Unmarshal(env.Data, &d); err != nil {
		a.log.Warn("skipping a malformed queue delta", "err", err)
		return
	}
	a.mu.Lock()
	if a.board == nil {
		a.mu.Unlock()
		return // not watching (or a snapshot is on its way)
	}
	if !a.board.Apply(d) {
		a.log.Info("queue delta out of order: subscribing again", "have", a.board.Version, "got", d.Version)
		a.board = nil
		a.mu.Unlock()
		c.kickQueue()
		return
	}
	board := cloneBoard(a.board)
	a.mu.Unlock()
	emit(c.ctx, events, Event{Kind: EventQueue, Queue: board, QueueDelta: &d})
}

func cloneBoard(s *wire.QueueSnapshot) *wire.QueueSnapshot {
	b := *s
	b.Operators = slices.Clone(s.Operators)
	b.Waiting = slices.Clone(s.Waiting)
	b.History = slices.Clone(s.History)
	return &b
}

// SetOperatorStatus sets another operator's status (supervisors): the same
// path as the operator's own change. Never queued: offline it fails with
// ErrOffline.
func (a *Agent) SetOperatorStatus(ctx context.Context, operatorID string, st wire.Status) (wire.StatusInfo, error) {
	if !st.Valid() {
		return wire.StatusInfo{}, fmt.Errorf("cannot set status %q: want free, busy, dinner or break", st)
	}
	a.mu.Lock()
	c := a.cur
	a.mu.Unlock()
	if c == nil {
		return wire.StatusInfo{}, fmt.Errorf("%w: the status was not changed", ErrOffline)
	}
	var info wire.StatusInfo
	err := a.requestCtx(ctx, c, wire.TypeOperatorStatusSet, wire.OperatorStatus{OperatorID: operatorID, Status: st}, &info)
	return info, err
}

// request sends a request on c and decodes its reply into out.
func (a *Agent) request(c *conn, typ string, data, out any) error {
	return a.requestCtx(c.ctx, c, typ, data, out)
}

func (a *Agent) requestCtx(ctx context.Context, c *conn, typ string, data, out any) error {
	id := newID()
	frame, err := a.encode(typ, id, data)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, queueTimeout)
	defer cancel()
	ch, err := a.send(ctx, c, frame, id)
	if err != nil {
		if errors.Is(err, errConnLost) {
			return fmt.Errorf("%w: %s not sent", ErrOffline, typ)
		}
		return err
	}
	env, err := c.await(ctx, id, ch)
	if err != nil {
		if errors.Is(err, errConnLost) {
			return fmt.Errorf("%w: the connection dropped before the answer to %s", ErrNoReply, typ)
		}
		return fmt.Errorf("%w: %s: %v", ErrNoReply, typ, err)
	}
	return decodeReply(env, out)
}
