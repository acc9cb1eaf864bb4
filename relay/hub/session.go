package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/time/rate"

	"github.com/pult/pult/agent/wire"
	"github.com/pult/pult/relay/store"
)

type session struct {
	hub    *Hub
	op     wire.Operator
	conn   *websocket.Conn
	ctx    context.Context // cancelled when the session ends
	cancel context.CancelFunc
	idx    int // position in hub.all; guarded by hub.mu

	quietListed bool // in hub.quiet; guarded by hub.mu

	done  chan struct{} // closed when the session starts closing
	space chan struct{} // capacity 1: the writer took a batch (enqueueWait)
	wdone chan struct{} // closed when the last writer has finished

	mu         sync.Mutex // guards everything below
	queue      [][]byte   // frames not yet taken by a writer
	pingDue    bool       // the sweeper asked for a ping
	writing    bool       // a writer goroutine owns the connection's writes
	closing    bool       // close was asked; nothing more is queued
	finished   bool       // the writer is done for good (wdone is closed)
	closeCode  int
	closeText  string
	cursor     uint64 // last seq queued for this session
	catchingUp bool
	pending    []store.Event
	ahead      bool                  // the agent takes cards ahead of the log
	shownAhead map[string]shownAhead // cards sent ahead, not yet stored, by id

	sem     chan struct{} // bounds requests in flight
	limiter *rate.Limiter // the session's request rate; nil: none (used by the reader only)
	reqs    sync.WaitGroup
}

func (s *session) logger() *slog.Logger { return s.hub.log.With("operator", s.op.ID) }

// close asks the writer to send a close frame and end the session.
func (s *session) close(code int, text string) {
	s.mu.Lock()
	s.closeLocked(code, text)
	s.mu.Unlock()
}

func (s *session) closeLocked(code int, text string) {
	if s.closing {
		return
	}
	s.closing = true
	s.closeCode, s.closeText = code, text
	s.queue = nil // not sent: the agent resumes from its position
	close(s.done)
	s.kickLocked()
}

// kickLocked makes sure a writer runs for what has been queued. Writers
// are not kept per session: one is started when there is something to
// write and ends when the queue is empty, so an idle session holds no
// goroutine and no write buffer, and there is never more than one writer
// per websocket.
func (s *session) kickLocked() {
	if s.writing || s.finished {
		return
	}
	s.writing = true
	go s.write()
}

// enqueueLocked queues a frame without blocking and makes sure a writer
// takes it.
func (s *session) enqueueLocked(frame []byte) bool {
	if !s.appendLocked(frame) {
		return false
	}
	s.kickLocked()
	return true
}

// appendLocked adds a frame to the queue unless the session is closing; a
// full queue means the agent is not keeping up, and it is told to
// reconnect (and will resume).
func (s *session) appendLocked(frame []byte) bool {
	if s.closing {
		return false
	}
	if len(s.queue) >= s.hub.cfg.SendQueue {
		s.closeLocked(wire.CloseSlow, "send queue full")
		return false
	}
	s.queue = append(s.queue, frame)
	return true
}

// Send implements Peer.
func (s *session) Send(frame []byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.enqueueLocked(frame)
}

// Context implements Peer.
func (s *session) Context() context.Context { return s.ctx }

// Operator implements Peer.
func (s *session) Operator() wire.Operator { return s.op }

// enqueueWait queues a frame, waiting while the writer drains the queue.
func (s *session) enqueueWait(frame []byte) bool {
	for {
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			return false
		}
		if len(s.queue) < s.hub.cfg.SendQueue {
			s.queue = append(s.queue, frame)
			s.kickLocked()
			s.mu.Unlock()
			return true
		}
		s.mu.Unlock()
		select {
		case <-s.space:
		case <-s.done:
			return false
		}
	}
}

// ping is called by the hub's sweeper once per ping period.
func (s *session) ping() {
	s.mu.Lock()
	if !s.closing {
		s.pingDue = true
		s.kickLocked()
		if len(s.shownAhead) > 0 {
			s.expireAheadLocked(time.Now())
		}
	}
	s.mu.Unlock()
}

// deliver is called by the hub, under the hub's lock, for each live event.
// It reports whether a frame was left waiting for the hub's flush.
func (s *session) deliver(ev store.Event) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.catchingUp {
		s.pending = append(s.pending, ev)
		return false
	}
	if ev.Seq <= s.cursor {
		return false
	}
	s.cursor = ev.Seq
	if _, ok := s.shownAhead[ev.MsgID]; ok && ev.MsgID != "" {
		s.forgetAheadLocked(ev.MsgID)
		// Counted when sent ahead; the agent has the card, so this frame
		// only moves its position and need not wake a writer.
		return s.enqueueQuietLocked(aheadFrame(wire.TypeStored, ev.MsgID, ev.Seq, nil))
	}
	if s.enqueueLocked(eventFrame(ev)) {
		s.observe(ev)
	}
	return false
}

// enqueueQuietLocked queues a frame that may wait (a "stored" frame) without
// starting a writer: it goes out with the session's next write, or when the
// hub flushes quiet frames (within Config.StoredWait). It reports whether the
// session must be listed for that flush: no writer will take the frame.
// Waking a writer goroutine for each stored frame costs about what the card
// itself did, at the moment the next card is being sent.
func (s *session) enqueueQuietLocked(frame []byte) bool {
	return s.appendLocked(frame) && !s.writing && !s.finished
}

// flushQuiet writes the frames left waiting by enqueueQuietLocked, from the
// hub's flush, when no writer has taken them meanwhile.
func (s *session) flushQuiet() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.writing || s.finished || s.closing || len(s.queue) == 0 {
		return
	}
	batch := s.queue
	s.queue = nil
	s.writeNowLocked(batch...)
}

// maxAhead bounds the cards a session has been sent ahead and not yet
// seen stored; past it, cards wait for the live feed.
const maxAhead = 256

// shownAhead is a card sent ahead: when, and the card to withdraw it to.
type shownAhead struct {
	at     time.Time
	before []byte
}

// sendAhead sends a card ahead of the log (see Hub.SendAhead). A card
// already sent ahead (a retry of the same change) is not sent again. When
// no writer runs, the caller writes it itself, at once: a hand-over to a
// writer goroutine costs more than the write (at most aheadWriteWait; a
// socket that cannot take it by then ends the session, and the agent
// resumes from the log).
func (s *session) sendAhead(c store.Ahead, frame []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.ahead || s.catchingUp || s.closing || len(s.shownAhead) >= maxAhead {
		return
	}
	if _, ok := s.shownAhead[c.MsgID]; ok {
		return
	}
	if s.shownAhead == nil {
		s.shownAhead = make(map[string]shownAhead)
	}
	s.shownAhead[c.MsgID] = shownAhead{at: time.Now(), before: c.Before}
	if s.writing || s.finished {
		if s.enqueueLocked(frame) {
			s.observe(store.Event{Received: c.Received})
		}
		return
	}
	// No writer: what is queued are quiet frames, which can follow the
	// card (it has no seq; they only move the agent's position).
	batch := append([][]byte{frame}, s.queue...)
	s.queue = nil
	if s.writeNowLocked(batch...) {
		s.observe(store.Event{Received: c.Received})
	}
}

// writeNowLocked writes frames from the calling goroutine, with s.mu held
// and no writer running; the lock is released during the write, which is
// bounded by aheadWriteWait (a socket that cannot take the frames by then
// ends the session, and the agent resumes from the log). Anything queued
// meanwhile is left to a writer.
func (s *session) writeNowLocked(frames ...[]byte) bool {
	s.writing = true
	s.mu.Unlock()
	s.conn.SetWriteDeadline(time.Now().Add(aheadWriteWait))
	var err error
	for _, f := range frames {
		if err = s.conn.WriteMessage(websocket.TextMessage, f); err != nil {
			break
		}
	}
	s.mu.Lock()
	s.writing = false
	if err != nil {
		s.closeLocked(websocket.CloseAbnormalClosure, "")
		s.conn.Close() // unblock the reader
	}
	if len(s.queue) > 0 || s.pingDue || s.closing {
		// A close asked during the write found the writing flag set:
		// the writer that finishes the session starts here.
		s.kickLocked()
	}
	return err == nil
}

// aheadWriteWait bounds a write made at once by sendAhead or flushQuiet.
const aheadWriteWait = 50 * time.Millisecond

// forgetAheadLocked drops a card sent ahead; an idle session keeps no map.
func (s *session) forgetAheadLocked(id string) {
	delete(s.shownAhead, id)
	if len(s.shownAhead) == 0 {
		s.shownAhead = nil
	}
}

// expireAheadLocked withdraws the cards sent ahead longer than
// Config.AheadExpiry ago and still not seen stored.
func (s *session) expireAheadLocked(now time.Time) {
	for id, a := range s.shownAhead {
		if now.Sub(a.at) > s.hub.cfg.AheadExpiry {
			s.forgetAheadLocked(id)
			s.enqueueLocked(aheadFrame(wire.TypeWithdrawn, id, 0, a.before))
		}
	}
}

// withdraw takes back a card sent ahead (see Hub.Withdraw), under the
// hub's lock.
func (s *session) withdraw(c store.Ahead) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.shownAhead[c.MsgID]; !ok {
		return
	}
	s.forgetAheadLocked(c.MsgID)
	s.enqueueLocked(aheadFrame(wire.TypeWithdrawn, c.MsgID, 0, c.Before))
}

func (s *session) observe(ev store.Event) {
	m := s.hub.cfg.Metrics
	if m.EventsOut != nil {
		m.EventsOut.Inc()
	}
	if m.DeliveryLatency != nil && !ev.Received.IsZero() {
		m.DeliveryLatency.Observe(time.Since(ev.Received).Seconds())
	}
}

// catchUp sends the events the agent missed, then the live events that
// arrived meanwhile, then hands over to live delivery.
func (s *session) catchUp() {
	s.mu.Lock()
	need := s.catchingUp
	cursor := s.cursor
	s.mu.Unlock()
	if !need {
		return
	}
	for {
		ev, err := s.next(cursor)
		if err != nil {
			if s.ctx.Err() == nil {
				s.logger().Warn("catch-up failed", "err", err)
				s.close(wire.CloseGoingAway, "catch-up failed")
			}
			return
		}
		if ev == nil {
			break
		}
		if !s.enqueueWait(eventFrame(*ev)) {
			return
		}
		if m := s.hub.cfg.Metrics.EventsOut; m != nil {
			m.Inc()
		}
		cursor = ev.Seq
	}
	for {
		s.mu.Lock()
		batch := s.pending
		s.pending = nil
		if len(batch) == 0 {
			s.cursor = cursor
			s.catchingUp = false
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		for _, ev := range batch {
			if ev.Seq <= cursor {
				continue
			}
			if !s.enqueueWait(eventFrame(ev)) {
				return
			}
			s.observe(ev)
			cursor = ev.Seq
		}
	}
}

// next reads the operator's next event after cursor for the catch-up,
// trying again for a while when the read fails: while a cluster elects
// the log's new leader (a relay was killed) reads fail for a moment, and
// ending the session for that only sends the agent to reconnect and catch
// up again, later.
func (s *session) next(cursor uint64) (*store.Event, error) {
	wait := catchUpRetry
	for try := 1; ; try++ {
		ev, err := s.hub.cfg.Log.Next(s.ctx, s.op.ID, cursor)
		if err == nil || try == catchUpTries || s.ctx.Err() != nil {
			return ev, err
		}
		select {
		case <-time.After(wait):
		case <-s.ctx.Done():
			return nil, err
		}
		wait *= 2
	}
}

// A catch-up read is tried catchUpTries times, waiting catchUpRetry and
// then twice as long each time (about 3 s in all).
const (
	catchUpTries = 5
	catchUpRetry = 200 * time.Millisecond
)

// eventFrame builds the envelope around stored event data without
// re-encoding it. A call card carries its id in the log, which names it
// when it was sent ahead.
func eventFrame(ev store.Event) []byte {
	if ev.Type == wire.TypeCall && ev.MsgID != "" {
		return aheadFrame(ev.Type, ev.MsgID, ev.Seq, ev.Data)
	}
	b := make([]byte, 0, len(ev.Data)+64)
	b = append(b, `{"v":`...)
	b = strconv.AppendInt(b, wire.ProtocolVersion, 10)
	b = append(b, `,"type":`...)
	b = strconv.AppendQuote(b, ev.Type)
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, ev.Seq, 10)
	if len(ev.Data) > 0 {
		b = append(b, `,"data":`...)
		b = append(b, ev.Data...)
	}
	return append(b, '}')
}

// aheadFrame builds a frame with an id: a card (typ call; sent ahead: no
// seq), a "stored" (seq, no data) or a "withdrawn" (data: the card before,
// or none).
func aheadFrame(typ, id string, seq uint64, data []byte) []byte {
	q, _ := json.Marshal(id) // a string: never fails
	b := make([]byte, 0, len(data)+len(q)+64)
	b = append(b, `{"v":`...)
	b = strconv.AppendInt(b, wire.ProtocolVersion, 10)
	b = append(b, `,"type":`...)
	b = strconv.AppendQuote(b, typ)
	b = append(b, `,"id":`...)
	b = append(b, q...)
	if seq > 0 {
		b = append(b, `,"seq":`...)
		b = strconv.AppendUint(b, seq, 10)
	}
	if len(data) > 0 {
		b = append(b, `,"data":`...)
		b = append(b, data...)
	}
	return append(b, '}')
}

// write is the session's writer while there is something to write: it
// takes the queued frames (and a due ping) in batches, and ends when the
// queue is empty. The writer that finds the session closing sends the
// close frame and closes wdone.
func (s *session) write() {
	for {
		s.mu.Lock()
		if s.closing {
			s.finished, s.writing = true, false
			code, text := s.closeCode, s.closeText
			s.mu.Unlock()
			if code != websocket.CloseAbnormalClosure {
				msg := websocket.FormatCloseMessage(code, text)
				s.conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
			}
			// Give the reader a moment to see the peer's close reply, then unblock it.
			s.conn.SetReadDeadline(time.Now().Add(time.Second))
			close(s.wdone)
			return
		}
		batch, ping := s.queue, s.pingDue
		s.queue, s.pingDue = nil, false
		if len(batch) == 0 && !ping {
			s.writing = false
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		select {
		case s.space <- struct{}{}:
		default:
		}
		if err := s.writeBatch(batch, ping); err != nil {
			s.close(websocket.CloseAbnormalClosure, "")
			s.conn.Close() // unblock the reader
		}
	}
}

func (s *session) writeBatch(batch [][]byte, ping bool) error {
	deadline := time.Now().Add(wire.WriteWait)
	if ping {
		if err := s.conn.WriteControl(websocket.PingMessage, nil, deadline); err != nil {
			return err
		}
	}
	if len(batch) == 0 {
		return nil
	}
	s.conn.SetWriteDeadline(deadline)
	for _, frame := range batch {
		if err := s.conn.WriteMessage(websocket.TextMessage, frame); err != nil {
			return err
		}
	}
	return nil
}

// reader reads requests until the connection fails or closes.
func (s *session) reader() {
	pongWait := s.hub.cfg.PongWait
	s.conn.SetReadDeadline(time.Now().Add(pongWait))
	s.conn.SetPongHandler(func(string) error {
		s.conn.SetReadDeadline(time.Now().Add(pongWait))
		return nil
	})
	for {
		mt, data, err := s.conn.ReadMessage()
		if err != nil {
			if errors.Is(err, websocket.ErrReadLimit) {
				s.logger().Info("frame over the limit refused", "limit", s.hub.cfg.MaxFrame)
				s.close(websocket.CloseMessageTooBig, fmt.Sprintf("frame exceeds %d bytes", s.hub.cfg.MaxFrame))
			}
			return
		}
		s.conn.SetReadDeadline(time.Now().Add(pongWait))
		if s.overRate() {
			// Discard what still comes until the agent answers the close
			// (or the writer's deadline passes), so that closing the
			// socket on unread data does not reset it before the agent
			// has read why.
			for {
				if _, _, err := s.conn.ReadMessage(); err != nil {
					return
				}
			}
		}
		if mt != websocket.TextMessage {
			s.reply("", wire.TypeError, &wire.Error{Code: wire.ErrBadRequest, Message: "frames must be JSON text"})
			continue
		}
		s.dispatch(data)
	}
}

// overRate takes the frame's token of the session's request rate; when
// there is none it closes the session with wire.CloseRateLimited, and the
// reader stops: what the session sends next would only be refused too. The
// agent reconnects later and resumes.
func (s *session) overRate() bool {
	if s.limiter == nil || s.limiter.Allow() {
		return false
	}
	reason := fmt.Sprintf("more than %g requests per second (burst %d)", float64(s.limiter.Limit()), s.limiter.Burst())
	s.logger().Warn("session closed: over its request rate", "limit", float64(s.limiter.Limit()), "burst", s.limiter.Burst())
	if f := s.hub.cfg.OnThrottled; f != nil {
		f(s.op.ID, wire.CloseRateLimited)
	}
	s.close(wire.CloseRateLimited, reason)
	return true
}

func (s *session) dispatch(data []byte) {
	var env wire.Envelope
	if err := json.Unmarshal(data, &env); err != nil {
		s.reply("", wire.TypeError, &wire.Error{Code: wire.ErrBadRequest, Message: "malformed JSON frame: " + err.Error()})
		return
	}
	if !ValidID(env.ID) {
		s.reply("", wire.TypeError, &wire.Error{Code: wire.ErrBadRequest, Message: "request id must be 1–64 characters of letters, digits, '.', '_', ':' or '-'"})
		return
	}
	if env.V != wire.ProtocolVersion {
		s.reply(env.ID, wire.TypeError, &wire.Error{Code: wire.ErrBadRequest, Message: fmt.Sprintf("envelope version %d is not %d", env.V, wire.ProtocolVersion)})
		return
	}
	select {
	case s.sem <- struct{}{}:
	default:
		s.reply(env.ID, wire.TypeError, &wire.Error{Code: wire.ErrBadRequest, Message: "too many requests in flight"})
		return
	}
	s.reqs.Add(1)
	go func() {
		defer s.reqs.Done()
		defer func() { <-s.sem }()
		typ, out := s.hub.cfg.Handler.HandleRequest(s.ctx, s.op, env.Type, env.ID, env.Data)
		if typ != NoReply {
			s.reply(env.ID, typ, out)
		}
	}()
}

func (s *session) reply(id, typ string, data any) {
	frame, err := wire.Encode(typ, id, 0, data)
	if err != nil {
		frame, _ = wire.Encode(wire.TypeError, id, 0, &wire.Error{Code: wire.ErrInternal, Message: "could not encode the reply"})
	}
	s.enqueueWait(frame)
}
