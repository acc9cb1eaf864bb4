package agent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/pult/pult/agent/phone"
	"github.com/pult/pult/agent/wire"
)

// newID returns a random request id of 16 hex characters.
func newID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// encode builds a request frame, refusing one larger than MaxFrame: the relay
// would close the connection over it.
func (a *Agent) encode(typ, id string, data any) ([]byte, error) {
	frame, err := wire.Encode(typ, id, 0, data)
	if err != nil {
		return nil, err
	}
	if len(frame) > a.cfg.MaxFrame {
		return nil, fmt.Errorf("%w: the %s request is %d bytes, the limit is %d", ErrFrameTooLarge, typ, len(frame), a.cfg.MaxFrame)
	}
	return frame, nil
}

// SetStatus sets the operator's status and returns the relay's answer.
//
// The change is first put in the outbox (replacing any older queued change).
// Online, it is sent at once and removed when answered. Otherwise — or if the
// connection drops before the answer — SetStatus returns an error wrapping
// ErrQueued; the change is sent with its original id and time after the next
// hello, and its outcome arrives as an EventReceipt. A refusal comes back as
// an error wrapping *wire.Error.
func (a *Agent) SetStatus(ctx context.Context, st wire.Status) (wire.StatusInfo, error) {
	if !st.Valid() {
		return wire.StatusInfo{}, fmt.Errorf("cannot set status %q: want free, busy, dinner or break", st)
	}
	item := &statusItem{ID: newID(), Status: st, At: time.Now().UTC()}
	frame, err := a.encode(wire.TypeSetStatus, item.ID, wire.SetStatus{Status: st, At: item.At})
	if err != nil {
		return wire.StatusInfo{}, err
	}
	a.mu.Lock()
	a.queued = item
	a.saveOutboxLocked()
	c := a.cur
	a.mu.Unlock()
	if c == nil {
		a.log.Info("status change queued until the relay is reachable", "id", item.ID, "status", st)
		return wire.StatusInfo{}, &queuedError{status: st, why: "relay unreachable"}
	}

	ch, err := a.send(ctx, c, frame, item.ID)
	if err == nil {
		var env wire.Envelope
		env, err = c.await(ctx, item.ID, ch)
		if err == nil {
			var info wire.StatusInfo
			if err := decodeReply(env, &info); err != nil {
				return wire.StatusInfo{}, fmt.Errorf("status %s: %w", st, err)
			}
			return info, nil
		}
	} else if ctx.Err() != nil {
		// Never handed to the connection: take it back unless replaced.
		a.mu.Lock()
		if a.queued == item {
			a.queued = nil
			a.saveOutboxLocked()
		}
		a.mu.Unlock()
		return wire.StatusInfo{}, fmt.Errorf("status %s not sent: %w", st, ctx.Err())
	}
	if errors.Is(err, errConnLost) {
		a.mu.Lock()
		still := a.queued == item
		a.mu.Unlock()
		if still {
			return wire.StatusInfo{}, &queuedError{status: st, why: "connection to the relay lost"}
		}
		return wire.StatusInfo{}, fmt.Errorf("status %s: %w before the answer; a newer change replaced it", st, errConnLost)
	}
	// ctx ended while waiting: the change was sent and stays in the outbox
	// until answered (the answer arrives as an EventReceipt).
	return wire.StatusInfo{}, fmt.Errorf("status %s sent, answer not awaited: %w", st, err)
}

// Dial asks the PBX, through the relay, to call number. The number is checked
// locally first. Offline, Dial fails at once with ErrOffline: calls are never
// queued. A refusal (invalid number, PBX down, …) is an error wrapping
// *wire.Error; no answer within Config.DialTimeout is ErrNoReply.
func (a *Agent) Dial(ctx context.Context, number string) (wire.DialResult, error) {
	n, err := phone.Parse(number, "")
	if err != nil {
		return wire.DialResult{}, fmt.Errorf("cannot dial: %w", err)
	}
	a.mu.Lock()
	c := a.cur
	a.mu.Unlock()
	if c == nil {
		return wire.DialResult{}, ErrOffline
	}
	id := newID()
	frame, err := a.encode(wire.TypeDial, id, wire.Dial{Phone: n.E164})
	if err != nil {
		return wire.DialResult{}, err
	}
	wctx, cancel := context.WithTimeout(ctx, a.cfg.DialTimeout)
	defer cancel()
	ch, err := a.send(wctx, c, frame, id)
	if err != nil {
		if errors.Is(err, errConnLost) {
			return wire.DialResult{}, ErrOffline
		}
		return wire.DialResult{}, fmt.Errorf("dial %s not sent: %w", n.National, err)
	}
	env, err := c.await(wctx, id, ch)
	switch {
	case errors.Is(err, errConnLost):
		return wire.DialResult{}, fmt.Errorf("%w: the connection dropped before the answer; the call to %s may or may not have been placed", ErrNoReply, n.National)
	case err != nil && ctx.Err() == nil:
		return wire.DialResult{}, fmt.Errorf("%w within %s: the call to %s may or may not have been placed", ErrNoReply, a.cfg.DialTimeout, n.National)
	case err != nil:
		return wire.DialResult{}, err
	}
	var res wire.DialResult
	if err := decodeReply(env, &res); err != nil {
		return wire.DialResult{}, fmt.Errorf("dial %s: %w", n.National, err)
	}
	return res, nil
}

// Callback asks Calltouch, through the relay, to call the client at number
// back (at cb.At, or now) and connect the call center. Like Dial it is never
// queued: offline it fails at once with ErrOffline. Calltouch's refusals
// come back as an error wrapping *wire.Error with the reason in plain words.
func (a *Agent) Callback(ctx context.Context, cb wire.Callback) (wire.CallbackResult, error) {
	n, err := phone.Parse(cb.Phone, "")
	if err != nil {
		return wire.CallbackResult{}, fmt.Errorf("cannot order a callback: %w", err)
	}
	cb.Phone = n.E164
	a.mu.Lock()
	c := a.cur
	a.mu.Unlock()
	if c == nil {
		return wire.CallbackResult{}, fmt.Errorf("%w: the callback was not ordered", ErrOffline)
	}
	id := newID()
	frame, err := a.encode(wire.TypeCallback, id, cb)
	if err != nil {
		return wire.CallbackResult{}, err
	}
	wctx, cancel := context.WithTimeout(ctx, a.cfg.DialTimeout)
	defer cancel()
	ch, err := a.send(wctx, c, frame, id)
	if err != nil {
		if errors.Is(err, errConnLost) {
			return wire.CallbackResult{}, fmt.Errorf("%w: the callback was not ordered", ErrOffline)
		}
		return wire.CallbackResult{}, fmt.Errorf("callback to %s not sent: %w", n.National, err)
	}
	env, err := c.await(wctx, id, ch)
	switch {
	case errors.Is(err, errConnLost):
		return wire.CallbackResult{}, fmt.Errorf("%w: the connection dropped before the answer; the callback to %s may or may not have been ordered", ErrNoReply, n.National)
	case err != nil && ctx.Err() == nil:
		return wire.CallbackResult{}, fmt.Errorf("%w within %s: the callback to %s may or may not have been ordered", ErrNoReply, a.cfg.DialTimeout, n.National)
	case err != nil:
		return wire.CallbackResult{}, err
	}
	var res wire.CallbackResult
	if err := decodeReply(env, &res); err != nil {
		return wire.CallbackResult{}, fmt.Errorf("callback to %s: %w", n.National, err)
	}
	return res, nil
}

// send registers a waiter for id and hands frame to c's writer.
func (a *Agent) send(ctx context.Context, c *conn, frame []byte, id string) (chan wire.Envelope, error) {
	ch := make(chan wire.Envelope, 1)
	c.mu.Lock()
	c.pending[id] = ch
	c.mu.Unlock()
	select {
	case c.send <- frame:
		return ch, nil
	case <-c.ctx.Done():
		c.forget(id)
		return nil, errConnLost
	case <-ctx.Done():
		c.forget(id)
		return nil, ctx.Err()
	}
}

// await waits for the answer to request id.
func (c *conn) await(ctx context.Context, id string, ch chan wire.Envelope) (wire.Envelope, error) {
	defer c.forget(id)
	select {
	case env := <-ch:
		return env, nil
	case <-c.ctx.Done():
		select {
		case env := <-ch: // answered just before the end
			return env, nil
		default:
			return wire.Envelope{}, errConnLost
		}
	case <-ctx.Done():
		return wire.Envelope{}, ctx.Err()
	}
}

func (c *conn) forget(id string) {
	c.mu.Lock()
	delete(c.pending, id)
	c.mu.Unlock()
}

// handleReply routes an answer to its waiter. An answer to the queued status
// change also removes it from the outbox; if nobody waits for it any more
// (SetStatus returned ErrQueued), it becomes an EventReceipt.
func (a *Agent) handleReply(c *conn, env wire.Envelope, events chan<- Event) {
	c.mu.Lock()
	ch, waiting := c.pending[env.ID]
	delete(c.pending, env.ID)
	c.mu.Unlock()

	a.mu.Lock()
	item := a.queued
	matched := item != nil && env.ID != "" && item.ID == env.ID
	if matched {
		a.queued = nil
		a.saveOutboxLocked()
	}
	a.mu.Unlock()

	if waiting {
		ch <- env // buffered; never blocks
		return
	}
	if !matched {
		a.log.Debug("answer to an unknown or abandoned request", "id", env.ID, "type", env.Type)
		return
	}
	r := &Receipt{ID: item.ID, Status: item.Status, At: item.At}
	var info wire.StatusInfo
	err := decodeReply(env, &info)
	var we *wire.Error
	switch {
	case err == nil:
		r.Applied = &info
		a.log.Info("queued status change applied", "id", item.ID, "status", item.Status)
	case errors.As(err, &we):
		r.Refused = we
		a.log.Warn("queued status change refused", "id", item.ID, "status", item.Status, "code", we.Code, "reason", we.Message)
	default:
		r.Refused = &wire.Error{Code: wire.ErrInternal, Message: err.Error()}
		a.log.Warn("queued status change: malformed answer", "id", item.ID, "err", err)
	}
	emit(c.ctx, events, Event{Kind: EventReceipt, Receipt: r})
}

// decodeReply decodes a reply into out, or an error frame into *wire.Error.
func decodeReply(env wire.Envelope, out any) error {
	if env.Type == wire.TypeError {
		we := &wire.Error{}
		if err := json.Unmarshal(env.Data, we); err != nil || (we.Code == "" && we.Message == "") {
			we = &wire.Error{Code: wire.ErrInternal, Message: "the relay refused the request without saying why"}
		}
		if we.Message == "" {
			we.Message = we.Code
		}
		return we
	}
	if err := json.Unmarshal(env.Data, out); err != nil {
		return fmt.Errorf("malformed answer from the relay: %v", err)
	}
	return nil
}
