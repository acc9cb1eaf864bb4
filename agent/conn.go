package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/pult/pult/agent/wire"
)

// conn is one websocket connection. Its reader goroutine reads every frame;
// its writer goroutine makes every write (requests, pongs, the close frame).
// ctx is done when the connection is over, for whatever reason.
type conn struct {
	ws     *websocket.Conn
	ctx    context.Context
	cancel context.CancelFunc
	send   chan []byte // frames for the writer
	pongs  chan string // pong payloads for the writer
	// queueKick wakes queueLoop to (un)subscribe the queue board.
	queueKick chan struct{}

	mu      sync.Mutex
	err     error                         // why the connection ended (first reason wins)
	pending map[string]chan wire.Envelope // request id → its waiter
}

// fail ends the connection with err (unless it already ended).
func (c *conn) fail(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	c.mu.Unlock()
	c.cancel()
}

// close ends a connection whose goroutines never started.
func (c *conn) close() {
	c.cancel()
	c.ws.Close()
}

func (c *conn) error() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		return errConnLost
	}
	return c.err
}

// connect dials relay r and reads hello. On success the returned conn has
// no goroutines yet: serve starts them.
func (a *Agent) connect(ctx context.Context, r relay) (*conn, wire.Hello, error) {
	a.mu.Lock()
	pos := a.pos
	a.mu.Unlock()
	q := url.Values{}
	q.Set(wire.QueryPreview, "1") // cards ahead of the log: see reader
	if pos.Epoch != "" {          // resume even from 0: events may have come while we were away
		q.Set(wire.QuerySince, strconv.FormatUint(pos.Seq, 10))
		q.Set(wire.QueryEpoch, pos.Epoch)
	}
	target := r.ws + "?" + q.Encode()
	h := http.Header{}
	h.Set("Authorization", "Bearer "+a.cfg.Token)
	h.Set(wire.HeaderProtocol, strconv.Itoa(wire.ProtocolVersion))

	// gorilla honours ctx only while dialing TCP; close the socket on
	// cancellation so a stalled handshake does not hold Run up.
	var raw atomic.Pointer[net.Conn]
	d := websocket.Dialer{
		Proxy:            http.ProxyFromEnvironment,
		HandshakeTimeout: a.handshakeTimeout,
		TLSClientConfig:  a.cfg.TLS,
		NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			nc, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err == nil {
				raw.Store(&nc)
			}
			return nc, err
		},
	}
	stop := context.AfterFunc(ctx, func() {
		if nc := raw.Load(); nc != nil {
			(*nc).Close()
		}
	})
	defer stop()

	a.log.Debug("connecting", "url", r.ws, "since", pos.Seq, "epoch", pos.Epoch)
	ws, resp, err := d.DialContext(ctx, target, h)
	if err != nil {
		return nil, wire.Hello{}, handshakeError(resp, err)
	}

	cctx, cancel := context.WithCancel(ctx)
	c := &conn{
		ws:      ws,
		ctx:     cctx,
		cancel:  cancel,
		send:    make(chan []byte, 16),
		pongs:   make(chan string, 1),
		pending: make(map[string]chan wire.Envelope),

		queueKick: make(chan struct{}, 1),
	}
	ws.SetReadLimit(int64(a.readLimit()))
	ws.SetPingHandler(func(data string) error {
		ws.SetReadDeadline(time.Now().Add(a.pongWait))
		select {
		case c.pongs <- data:
		default: // a pong is already due; the relay pings again
		}
		return nil
	})
	ws.SetPongHandler(func(string) error {
		ws.SetReadDeadline(time.Now().Add(a.pongWait))
		return nil
	})
	// The writer echoes the close frame; the reader must not write.
	ws.SetCloseHandler(func(int, string) error { return nil })

	ws.SetReadDeadline(time.Now().Add(a.pongWait))
	_, data, err := ws.ReadMessage()
	if err != nil {
		c.close()
		return nil, wire.Hello{}, a.readError(err)
	}
	var env wire.Envelope
	var hello wire.Hello
	if err := json.Unmarshal(data, &env); err != nil || env.Type != wire.TypeHello {
		c.close()
		return nil, wire.Hello{}, fmt.Errorf("relay protocol error: the first frame is not a hello")
	}
	if err := json.Unmarshal(env.Data, &hello); err != nil {
		c.close()
		return nil, wire.Hello{}, fmt.Errorf("relay protocol error: malformed hello: %v", err)
	}
	return c, hello, nil
}

// handshakeError explains a failed websocket dial. 401, 403 and 426 are stop
// errors even without a HandshakeError body: retrying the same token or
// build cannot help.
func handshakeError(resp *http.Response, err error) error {
	if resp == nil {
		return fmt.Errorf("cannot reach the relay: %w", err)
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	switch resp.StatusCode {
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusUpgradeRequired:
		var he wire.HandshakeError
		if json.Unmarshal(body, &he) == nil && wire.IsStop(he.Code) {
			return stopError(he.Code, he.Reason)
		}
		code := wire.CloseBadToken
		switch resp.StatusCode {
		case http.StatusForbidden:
			code = wire.CloseRevoked
		case http.StatusUpgradeRequired:
			code = wire.CloseProtocol
		}
		return stopError(code, "")
	case http.StatusNotFound:
		return fmt.Errorf("relay answered HTTP 404 at %s: is the URL that of a pult relay?", wire.Path)
	case http.StatusTooManyRequests:
		var he wire.HandshakeError
		if json.Unmarshal(body, &he) == nil && he.Reason != "" {
			return &throttledError{fmt.Errorf("relay refused the connection: %s", he.Reason)}
		}
		return &throttledError{errors.New("relay refused the connection: HTTP 429 (too many requests)")}
	}
	return fmt.Errorf("relay refused the connection: HTTP %d", resp.StatusCode)
}

// throttledError is a connection the relay ended or refused because of its
// quotas (wire.CloseRateLimited, HTTP 429): the agent waits at least
// wire.ThrottledWait before it tries again, however long it was online.
type throttledError struct{ error }

func (e *throttledError) Unwrap() error { return e.error }

// readError explains why reading ended.
func (a *Agent) readError(err error) error {
	var ce *websocket.CloseError
	var ne net.Error
	switch {
	case errors.As(err, &ce):
		if wire.IsStop(ce.Code) {
			return stopError(ce.Code, ce.Text)
		}
		if ce.Code == websocket.CloseAbnormalClosure { // no close frame: the link broke
			return fmt.Errorf("connection to the relay lost: %s", ce.Text)
		}
		if ce.Code == wire.CloseRateLimited {
			return &throttledError{fmt.Errorf("relay closed the connection: %s (%s)", wire.CloseText(ce.Code), ce.Text)}
		}
		if ce.Text != "" {
			return fmt.Errorf("relay closed the connection: %s (%s)", wire.CloseText(ce.Code), ce.Text)
		}
		return fmt.Errorf("relay closed the connection: %s", wire.CloseText(ce.Code))
	case errors.Is(err, websocket.ErrReadLimit):
		return fmt.Errorf("relay sent a frame larger than the %d-byte limit", a.readLimit())
	case errors.As(err, &ne) && ne.Timeout():
		return fmt.Errorf("no message or ping from the relay for %s", a.pongWait)
	}
	return fmt.Errorf("connection to the relay lost: %w", err)
}

// serve runs an established connection until it ends and returns why.
func (a *Agent) serve(ctx context.Context, c *conn, r relay, hello wire.Hello, events chan<- Event) error {
	var wg sync.WaitGroup
	wg.Go(func() { a.writer(c) })
	defer func() {
		a.mu.Lock()
		if a.cur == c {
			a.cur = nil
			a.state = Offline
		}
		a.mu.Unlock()
		c.cancel()
		wg.Wait()
	}()

	if !emit(c.ctx, events, Event{Kind: EventHello, Hello: &hello}) {
		return c.error()
	}
	a.mu.Lock()
	a.cur, a.state = c, Online
	a.hello, a.hasHello = hello, true
	item := a.queued
	a.mu.Unlock()
	a.log.Info("online", "url", r.ws, "operator", hello.Operator.ID, "resumed", hello.Resumed)
	emit(c.ctx, events, Event{Kind: EventConn, Conn: Online, Relay: r.host})

	// Flush the outbox; a SetStatus from now on sends by itself (the check
	// of a.queued and a.cur happen under the same lock).
	if item != nil {
		frame, err := a.encode(wire.TypeSetStatus, item.ID, wire.SetStatus{Status: item.Status, At: item.At})
		if err == nil {
			a.log.Info("sending queued status change", "id", item.ID, "status", item.Status)
			select {
			case c.send <- frame:
			case <-c.ctx.Done():
			}
		} else {
			a.log.Error("dropping unsendable queued status change", "err", err)
		}
	}

	wg.Go(func() { a.reader(c, events) })
	wg.Go(func() { a.flushTranscripts(c, events) })
	wg.Go(func() { a.queueLoop(c, events) })
	a.mu.Lock()
	if a.queueOn {
		c.kickQueue()
	}
	a.mu.Unlock()
	<-c.ctx.Done()
	return c.error()
}

// reader reads frames until the connection fails.
func (a *Agent) reader(c *conn, events chan<- Event) {
	for {
		_, data, err := c.ws.ReadMessage()
		if err != nil {
			c.fail(a.readError(err))
			return
		}
		c.ws.SetReadDeadline(time.Now().Add(a.pongWait))
		var env wire.Envelope
		if err := json.Unmarshal(data, &env); err != nil {
			a.log.Warn("ignoring a malformed frame from the relay", "err", err)
			continue
		}
		switch env.Type {
		case wire.TypeReply, wire.TypeError:
			a.handleReply(c, env, events)
			continue
		case wire.TypeHello:
			a.log.Warn("ignoring a second hello")
			continue
		case wire.TypeQueue:
			a.queueDelta(c, env, events)
			continue
		case wire.TypeStored, wire.TypeWithdrawn:
			if ev, ok := a.ahead.Settle(env, a.log); ok && !emit(c.ctx, events, ev) {
				return
			}
			continue
		}
		ev, err := decodeEvent(env)
		if err == nil && ev.Kind == EventCall {
			// Cards ahead of the log, and cards older than the one shown.
			if ev = a.ahead.Filter(env, ev); ev.Kind == 0 && ev.Seq == 0 {
				continue
			}
		}
		if err != nil {
			a.log.Warn("skipping an event", "type", env.Type, "seq", env.Seq, "err", err)
			if env.Seq == 0 {
				continue
			}
			ev = Event{Seq: env.Seq} // kind 0: not delivered, but the position moves past it
		}
		if !emit(c.ctx, events, ev) {
			return
		}
	}
}

// decodeEvent turns a call, status or notice frame into an Event.
func decodeEvent(env wire.Envelope) (Event, error) {
	ev := Event{Seq: env.Seq}
	var v any
	switch env.Type {
	case wire.TypeCall:
		ev.Kind, ev.Call = EventCall, new(wire.Call)
		v = ev.Call
	case wire.TypeStatus:
		ev.Kind, ev.Status = EventStatus, new(wire.StatusInfo)
		v = ev.Status
	case wire.TypeNotice:
		ev.Kind, ev.Notice = EventNotice, new(wire.Notice)
		v = ev.Notice
	case wire.TypeTranscript:
		ev.Kind, ev.Transcript = EventTranscript, new(wire.TranscriptState)
		v = ev.Transcript
	default:
		return Event{}, fmt.Errorf("unknown frame type %q", env.Type)
	}
	if err := json.Unmarshal(env.Data, v); err != nil {
		return Event{}, fmt.Errorf("malformed %s data: %v", env.Type, err)
	}
	return ev, nil
}

// writer makes every write on c until the connection ends, then sends a
// close frame and closes the socket (which also stops the reader).
func (a *Agent) writer(c *conn) {
	defer c.ws.Close()
	for {
		var err error
		select {
		case frame := <-c.send:
			c.ws.SetWriteDeadline(time.Now().Add(a.writeWait))
			err = c.ws.WriteMessage(websocket.TextMessage, frame)
		case p := <-c.pongs:
			c.ws.SetWriteDeadline(time.Now().Add(a.writeWait))
			err = c.ws.WriteMessage(websocket.PongMessage, []byte(p))
		case <-c.ctx.Done():
			c.ws.SetWriteDeadline(time.Now().Add(closeWait))
			c.ws.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
			return
		}
		if err != nil {
			c.fail(fmt.Errorf("writing to the relay: %w", err))
			return
		}
	}
}

// readLimit is the largest frame the agent reads.
func (a *Agent) readLimit() int { return max(a.cfg.MaxFrame, wire.MaxRelayFrame) }
