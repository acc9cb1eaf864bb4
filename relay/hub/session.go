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

	"github.com/pult/pult/agent/wire"
	"github.com/pult/pult/relay/store"
)

type session struct {
	hub  *Hub
	op   wire.Operator
	conn *websocket.Conn
	log  *slog.Logger
	ctx  context.Context // cancelled when the session ends

	send chan []byte // frames for the writer
	done chan struct{}

	closeOnce sync.Once
	closeCode int
	closeText string

	mu         sync.Mutex // guards cursor, catchingUp, pending
	cursor     uint64     // last seq queued for this session
	catchingUp bool
	pending    []store.Event

	sem  chan struct{} // bounds requests in flight
	reqs sync.WaitGroup
}

// close asks the writer to send a close frame and end the session.
func (s *session) close(code int, text string) {
	s.closeOnce.Do(func() {
		s.closeCode, s.closeText = code, text
		close(s.done)
	})
}

// enqueue queues a frame without blocking; a full queue means the agent is
// not keeping up, and it is told to reconnect (and will resume).
func (s *session) enqueue(frame []byte) {
	select {
	case s.send <- frame:
	default:
		s.close(wire.CloseSlow, "send queue full")
	}
}

// Send implements Peer.
func (s *session) Send(frame []byte) bool {
	select {
	case <-s.done:
		return false
	default:
	}
	select {
	case s.send <- frame:
		return true
	default:
		s.close(wire.CloseSlow, "send queue full")
		return false
	}
}

// Context implements Peer.
func (s *session) Context() context.Context { return s.ctx }

// Operator implements Peer.
func (s *session) Operator() wire.Operator { return s.op }

// enqueueWait queues a frame, waiting while the writer drains the queue.
func (s *session) enqueueWait(frame []byte) bool {
	select {
	case s.send <- frame:
		return true
	case <-s.done:
		return false
	}
}

// deliver is called by the hub, under the hub's lock, for each live event.
func (s *session) deliver(ev store.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.catchingUp {
		s.pending = append(s.pending, ev)
		return
	}
	if ev.Seq <= s.cursor {
		return
	}
	s.cursor = ev.Seq
	s.enqueue(eventFrame(ev))
	s.observe(ev)
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
		ev, err := s.hub.cfg.Log.Next(s.ctx, s.op.ID, cursor)
		if err != nil {
			if s.ctx.Err() == nil {
				s.log.Warn("catch-up failed", "err", err)
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

// eventFrame builds the envelope around stored event data without
// re-encoding it.
func eventFrame(ev store.Event) []byte {
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

// writer owns every write on the connection.
func (s *session) writer() {
	ping := time.NewTicker(s.hub.cfg.PingPeriod)
	defer ping.Stop()
	for {
		select {
		case frame := <-s.send:
			s.conn.SetWriteDeadline(time.Now().Add(wire.WriteWait))
			if err := s.conn.WriteMessage(websocket.TextMessage, frame); err != nil {
				s.close(websocket.CloseAbnormalClosure, "")
				s.conn.Close() // unblock the reader
				return
			}
		case <-ping.C:
			if err := s.conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(wire.WriteWait)); err != nil {
				s.close(websocket.CloseAbnormalClosure, "")
				s.conn.Close()
				return
			}
		case <-s.done:
			if s.closeCode != websocket.CloseAbnormalClosure {
				msg := websocket.FormatCloseMessage(s.closeCode, s.closeText)
				s.conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
			}
			// Give the reader a moment to see the peer's close reply, then unblock it.
			s.conn.SetReadDeadline(time.Now().Add(time.Second))
			return
		}
	}
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
				s.log.Info("frame over the limit refused", "limit", s.hub.cfg.MaxFrame)
				s.close(websocket.CloseMessageTooBig, fmt.Sprintf("frame exceeds %d bytes", s.hub.cfg.MaxFrame))
			}
			return
		}
		s.conn.SetReadDeadline(time.Now().Add(pongWait))
		if mt != websocket.TextMessage {
			s.reply("", wire.TypeError, &wire.Error{Code: wire.ErrBadRequest, Message: "frames must be JSON text"})
			continue
		}
		s.dispatch(data)
	}
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
