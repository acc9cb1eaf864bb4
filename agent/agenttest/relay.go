// Package agenttest is a small hand-written relay speaking the wire protocol,
// for tests of the agent and of programs built on it. It keeps one operator,
// an in-memory event log with sequence numbers, request-id deduplication and
// resume, and lets a test drop or close connections and send raw frames.
package agenttest

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/pult/pult/agent/phone"
	"github.com/pult/pult/agent/wire"
)

// Token is the token a new Relay accepts.
const Token = "test-token-0123456789"

// Handshake is what an agent sent when connecting.
type Handshake struct {
	Since, Epoch string // query parameters ("" when absent)
	Preview      string // the preview query parameter (cards ahead of the log)
	Protocol     string // Pult-Protocol header
	Accepted     bool
}

// Handler answers a request: typ is wire.TypeReply or wire.TypeError, or ""
// to leave the request unanswered. It runs on the connection's goroutine.
type Handler func(req wire.Envelope) (typ string, data any)

// Relay is a fake relay on an httptest server.
type Relay struct {
	URL      string // http://127.0.0.1:port
	Operator wire.Operator

	srv *httptest.Server

	mu         sync.Mutex
	token      string
	maxFrame   int
	epoch      string
	status     wire.StatusInfo
	log        []wire.Envelope // published events, seq ascending
	lastSeq    uint64
	conn       *websocket.Conn
	handshakes []Handshake
	requests   []wire.Envelope
	replies    map[string][]byte // request id → its answer frame
	refuse     *refusal
	handler    Handler
	pongs      chan string
	changed    chan struct{} // closed and replaced on every change worth waiting for

	board       *wire.QueueSnapshot // the queue board; nil: queue.subscribe is forbidden
	subscribers int                 // queue.subscribe requests answered

	transcripts       map[string]wire.TranscriptSubmit // by submission id
	transcriptPosts   int
	transcriptRefusal *wire.Error
	transcriptStatus  int // the refusal's HTTP status (422 when 0)
}

type refusal struct {
	status int
	body   *wire.HandshakeError
}

// New starts a fake relay; it is closed when the test ends.
func New(t testing.TB) *Relay {
	r := &Relay{
		Operator: wire.Operator{ID: "op-1", Name: "Anna", Code: "100", UserID: "7", Role: wire.RoleOperator},
		token:    Token,
		maxFrame: wire.DefaultMaxFrame,
		epoch:    "epoch-1",
		status:   wire.StatusInfo{Status: wire.StatusFree, Since: time.Unix(1700000000, 0).UTC(), Source: "relay"},
		replies:  make(map[string][]byte),
		pongs:    make(chan string, 8),
		changed:  make(chan struct{}),

		transcripts: make(map[string]wire.TranscriptSubmit),
	}
	mux := http.NewServeMux()
	mux.HandleFunc(wire.Path, r.serveAgent)
	mux.HandleFunc(wire.PathMe, r.serveMe)
	mux.HandleFunc("POST "+wire.PathTranscripts, r.serveTranscript)
	r.srv = httptest.NewServer(mux)
	r.URL = r.srv.URL
	t.Cleanup(r.Close)
	return r
}

// Close drops the connection and stops the server.
func (r *Relay) Close() {
	r.Drop()
	r.srv.Close()
}

func (r *Relay) notifyLocked() {
	close(r.changed)
	r.changed = make(chan struct{})
}

// Wait polls cond (called under no lock) until it holds or timeout passes.
func (r *Relay) Wait(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		r.mu.Lock()
		ch := r.changed
		r.mu.Unlock()
		if cond() {
			return
		}
		select {
		case <-ch:
		case <-time.After(10 * time.Millisecond):
		case <-deadline:
			t.Fatalf("agenttest: timed out after %s waiting for %s", timeout, what)
		}
	}
}

// SetToken changes the accepted token.
func (r *Relay) SetToken(tok string) { r.mu.Lock(); r.token = tok; r.mu.Unlock() }

// SetMaxFrame sets the read limit for agent frames.
func (r *Relay) SetMaxFrame(n int) { r.mu.Lock(); r.maxFrame = n; r.mu.Unlock() }

// SetHandler replaces the default request handler (nil restores it). Request
// ids are still deduplicated: a repeated id gets the first answer.
func (r *Relay) SetHandler(h Handler) { r.mu.Lock(); r.handler = h; r.mu.Unlock() }

// Refuse makes later handshakes (and /v1/me) fail with status and body; a
// zero status accepts again.
func (r *Relay) Refuse(status int, body *wire.HandshakeError) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if status == 0 {
		r.refuse = nil
		return
	}
	r.refuse = &refusal{status, body}
}

// SetEpoch recreates the event log under a new epoch, as a relay whose
// storage was wiped would.
func (r *Relay) SetEpoch(epoch string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.epoch, r.log, r.lastSeq = epoch, nil, 0
}

// Status is the operator's current status at the relay.
func (r *Relay) Status() wire.StatusInfo { r.mu.Lock(); defer r.mu.Unlock(); return r.status }

// Handshakes lists every handshake so far.
func (r *Relay) Handshakes() []Handshake {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Handshake(nil), r.handshakes...)
}

// Accepted counts the handshakes that got a hello.
func (r *Relay) Accepted() int {
	n := 0
	for _, h := range r.Handshakes() {
		if h.Accepted {
			n++
		}
	}
	return n
}

// Requests lists every request frame received, repeats included.
func (r *Relay) Requests() []wire.Envelope {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]wire.Envelope(nil), r.requests...)
}

// Connected reports whether an agent is connected.
func (r *Relay) Connected() bool { r.mu.Lock(); defer r.mu.Unlock(); return r.conn != nil }

// Publish appends an event to the log (next seq, skipping one number to show
// seqs need not be contiguous) and sends it to the connected agent.
func (r *Relay) Publish(typ string, data any) uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	env := r.appendLocked(typ, "", data)
	if r.conn != nil {
		frame, _ := json.Marshal(env)
		r.writeLocked(websocket.TextMessage, frame)
	}
	return r.lastSeq
}

// SendAhead sends a call card ahead of the log, as id (see "Cards ahead of
// the log" in package wire); Store then logs it, as the relay does once it
// has stored it.
func (r *Relay) SendAhead(id string, c wire.Call) error {
	frame, err := wire.Encode(wire.TypeCall, id, 0, c)
	if err != nil {
		return err
	}
	return r.SendRaw(frame)
}

// Store appends a call card to the log as id without sending it: a card
// sent ahead, now stored. Stored then tells the agent, unless it is away
// (its catch-up has it, with the id).
func (r *Relay) Store(id string, data wire.Call) uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.appendLocked(wire.TypeCall, id, data).Seq
}

// appendLocked appends an event to the log with the next seq (skipping one
// number: seqs need not be contiguous).
func (r *Relay) appendLocked(typ, id string, data any) wire.Envelope {
	r.lastSeq += 2
	b, err := json.Marshal(data)
	if err != nil {
		panic(err)
	}
	env := wire.Envelope{V: wire.ProtocolVersion, Type: typ, ID: id, Seq: r.lastSeq, Data: b}
	r.log = append(r.log, env)
	return env
}

// Stored tells the agent that the card sent ahead as id is stored at seq.
func (r *Relay) Stored(id string, seq uint64) error {
	frame, _ := wire.Encode(wire.TypeStored, id, seq, nil)
	return r.SendRaw(frame)
}

// Withdraw takes back the card sent ahead as id, with the card before
// (nil: none).
func (r *Relay) Withdraw(id string, before *wire.Call) error {
	var data any
	if before != nil {
		data = before
	}
	frame, err := wire.Encode(wire.TypeWithdrawn, id, 0, data)
	if err != nil {
		return err
	}
	return r.SendRaw(frame)
}

// SetOperator changes who the token belongs to (from the next hello on).
func (r *Relay) SetOperator(op wire.Operator) {
	r.mu.Lock()
	r.Operator = op
	r.mu.Unlock()
}

// SetBoard sets the queue board queue.subscribe answers with (nil: forbidden,
// as for an operator).
func (r *Relay) SetBoard(b *wire.QueueSnapshot) {
	r.mu.Lock()
	r.board = b
	r.mu.Unlock()
}

// QueueSubscriptions counts the queue.subscribe requests answered.
func (r *Relay) QueueSubscriptions() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.subscribers
}

// SendQueue sends a live (not logged) queue delta to the connected agent,
// and applies it to the board.
func (r *Relay) SendQueue(d wire.QueueDelta) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.board != nil {
		r.board.Apply(d)
	}
	frame, err := wire.Encode(wire.TypeQueue, "", 0, d)
	if err != nil {
		return err
	}
	return r.writeLocked(websocket.TextMessage, frame)
}

// Resend sends an already published event again (a duplicate).
func (r *Relay) Resend(seq uint64) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, env := range r.log {
		if env.Seq == seq {
			frame, _ := json.Marshal(env)
			return r.writeLocked(websocket.TextMessage, frame)
		}
	}
	return fmt.Errorf("agenttest: no event %d", seq)
}

// SendRaw writes frame as a text message to the connected agent.
func (r *Relay) SendRaw(frame []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.writeLocked(websocket.TextMessage, frame)
}

// Ping pings the agent and waits for its pong.
func (r *Relay) Ping(timeout time.Duration) error {
	r.mu.Lock()
	err := r.writeLocked(websocket.PingMessage, []byte("hi"))
	r.mu.Unlock()
	if err != nil {
		return err
	}
	select {
	case p := <-r.pongs:
		if p != "hi" {
			return fmt.Errorf("agenttest: pong %q, want %q", p, "hi")
		}
		return nil
	case <-time.After(timeout):
		return errors.New("agenttest: no pong")
	}
}

// CloseWith closes the connection with a close frame.
func (r *Relay) CloseWith(code int, reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.conn == nil {
		return
	}
	r.writeLocked(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason))
	r.conn.Close()
	r.conn = nil
	r.notifyLocked()
}

// Drop cuts the TCP connection without a close frame.
func (r *Relay) Drop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.conn != nil {
		r.conn.Close()
		r.conn = nil
		r.notifyLocked()
	}
}

func (r *Relay) writeLocked(typ int, data []byte) error {
	if r.conn == nil {
		return errors.New("agenttest: no agent connected")
	}
	if typ == websocket.TextMessage || typ == websocket.BinaryMessage {
		r.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
		return r.conn.WriteMessage(typ, data)
	}
	return r.conn.WriteControl(typ, data, time.Now().Add(5*time.Second))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// authLocked checks the request like a relay would; ok=false means it wrote
// the refusal.
func (r *Relay) authLocked(w http.ResponseWriter, req *http.Request) bool {
	if r.refuse != nil {
		if r.refuse.body == nil {
			w.WriteHeader(r.refuse.status)
		} else {
			writeJSON(w, r.refuse.status, r.refuse.body)
		}
		return false
	}
	if req.Header.Get("Authorization") != "Bearer "+r.token {
		writeJSON(w, http.StatusUnauthorized, &wire.HandshakeError{Code: wire.CloseBadToken, Reason: wire.CloseText(wire.CloseBadToken)})
		return false
	}
	if p := req.Header.Get(wire.HeaderProtocol); p != "" && p != strconv.Itoa(wire.ProtocolVersion) {
		writeJSON(w, http.StatusUpgradeRequired, &wire.HandshakeError{Code: wire.CloseProtocol, Reason: wire.CloseText(wire.CloseProtocol)})
		return false
	}
	return true
}

func (r *Relay) serveMe(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.authLocked(w, req) {
		writeJSON(w, http.StatusOK, r.Operator)
	}
}

// serveTranscript accepts a transcript once per id (a re-sent id gets the
// same answer), as the relay does; delivery events are the test's to Publish.
func (r *Relay) serveTranscript(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.refuse != nil {
		writeJSON(w, r.refuse.status, r.refuse.body)
		return
	}
	if !r.authLocked(w, req) {
		return
	}
	r.transcriptPosts++
	r.notifyLocked()
	var t wire.TranscriptSubmit
	if err := json.NewDecoder(http.MaxBytesReader(w, req.Body, wire.MaxTranscript+4096)).Decode(&t); err != nil || t.ID == "" {
		writeJSON(w, http.StatusBadRequest, &wire.Error{Code: wire.ErrBadRequest, Message: "malformed transcript"})
		return
	}
	if r.transcriptRefusal != nil {
		status := r.transcriptStatus
		if status == 0 {
			status = http.StatusUnprocessableEntity
		}
		writeJSON(w, status, r.transcriptRefusal)
		return
	}
	r.transcripts[t.ID] = t
	writeJSON(w, http.StatusAccepted, wire.TranscriptState{ID: t.ID, CommunicationID: "pult-" + t.ID, Title: t.Title,
		Source: "operator", State: wire.TranscriptQueued, At: time.Now().UTC()})
}

// Transcripts returns the accepted transcripts by id, and how many POSTs came.
func (r *Relay) Transcripts() (map[string]wire.TranscriptSubmit, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]wire.TranscriptSubmit, len(r.transcripts))
	for k, v := range r.transcripts {
		out[k] = v
	}
	return out, r.transcriptPosts
}

// RefuseTranscripts makes later transcript submissions fail with e (nil
// accepts again).
func (r *Relay) RefuseTranscripts(e *wire.Error) { r.RefuseTranscriptsWith(0, e) }

// RefuseTranscriptsWith is RefuseTranscripts with an HTTP status (429, 503:
// "try later"; 0: 422).
func (r *Relay) RefuseTranscriptsWith(status int, e *wire.Error) {
	r.mu.Lock()
	r.transcriptRefusal, r.transcriptStatus = e, status
	r.mu.Unlock()
}

func (r *Relay) serveAgent(w http.ResponseWriter, req *http.Request) {
	q := req.URL.Query()
	hs := Handshake{Since: q.Get(wire.QuerySince), Epoch: q.Get(wire.QueryEpoch), Preview: q.Get(wire.QueryPreview),
		Protocol: req.Header.Get(wire.HeaderProtocol)}
	r.mu.Lock()
	if hs.Protocol == "" {
		r.handshakes = append(r.handshakes, hs)
		r.notifyLocked()
		r.mu.Unlock()
		writeJSON(w, http.StatusUpgradeRequired, &wire.HandshakeError{Code: wire.CloseProtocol, Reason: "missing " + wire.HeaderProtocol})
		return
	}
	if !r.authLocked(w, req) {
		r.handshakes = append(r.handshakes, hs)
		r.notifyLocked()
		r.mu.Unlock()
		return
	}
	maxFrame := r.maxFrame
	r.mu.Unlock()

	up := websocket.Upgrader{}
	ws, err := up.Upgrade(w, req, nil)
	if err != nil {
		return
	}
	ws.SetReadLimit(int64(maxFrame))
	ws.SetPongHandler(func(p string) error {
		select {
		case r.pongs <- p:
		default:
		}
		return nil
	})

	r.mu.Lock()
	if r.conn != nil { // one agent at a time, like a relay replacing a stale session
		r.conn.Close()
	}
	r.conn = ws
	since, _ := strconv.ParseUint(hs.Since, 10, 64)
	resumed := hs.Since != "" && hs.Epoch == r.epoch
	hello := wire.Hello{Protocol: wire.ProtocolVersion, Operator: r.Operator, Status: r.status, Epoch: r.epoch, Resumed: resumed, ServerTime: time.Now().UTC()}
	frame, _ := wire.Encode(wire.TypeHello, "", 0, hello)
	r.writeLocked(websocket.TextMessage, frame)
	if resumed {
		for _, env := range r.log {
			if env.Seq > since {
				b, _ := json.Marshal(env)
				r.writeLocked(websocket.TextMessage, b)
			}
		}
	}
	hs.Accepted = true
	r.handshakes = append(r.handshakes, hs)
	r.notifyLocked()
	r.mu.Unlock()

	defer func() {
		r.mu.Lock()
		if r.conn == ws {
			r.conn = nil
			r.notifyLocked()
		}
		r.mu.Unlock()
		ws.Close()
	}()
	for {
		_, data, err := ws.ReadMessage()
		if err != nil {
			return
		}
		var env wire.Envelope
		if err := json.Unmarshal(data, &env); err != nil {
			return
		}
		r.mu.Lock()
		r.requests = append(r.requests, env)
		answer, seen := r.replies[env.ID]
		custom := r.handler
		r.notifyLocked()
		r.mu.Unlock()
		if !seen {
			var typ string
			var data any
			if custom != nil {
				typ, data = custom(env)
			} else {
				r.mu.Lock()
				typ, data = r.defaultHandlerLocked(env)
				r.mu.Unlock()
			}
			if typ == "" { // the handler chose not to answer
				continue
			}
			answer, _ = wire.Encode(typ, env.ID, 0, data)
			r.mu.Lock()
			if prev, ok := r.replies[env.ID]; ok {
				answer = prev
			} else {
				r.replies[env.ID] = answer
			}
			r.mu.Unlock()
		}
		r.mu.Lock()
		if r.conn == ws {
			r.writeLocked(websocket.TextMessage, answer)
		}
		r.notifyLocked()
		r.mu.Unlock()
	}
}

// defaultHandlerLocked applies status changes and accepts valid dials.
func (r *Relay) defaultHandlerLocked(req wire.Envelope) (string, any) {
	switch req.Type {
	case wire.TypeSetStatus:
		var s wire.SetStatus
		if err := json.Unmarshal(req.Data, &s); err != nil || !s.Status.Valid() {
			return wire.TypeError, &wire.Error{Code: wire.ErrInvalidStatus, Message: "invalid status"}
		}
		r.status = wire.StatusInfo{Status: s.Status, Since: s.At, Source: "agent"}
		return wire.TypeReply, r.status
	case wire.TypeDial:
		var d wire.Dial
		if err := json.Unmarshal(req.Data, &d); err != nil {
			return wire.TypeError, &wire.Error{Code: wire.ErrBadRequest, Message: "malformed dial"}
		}
		n, err := phone.Parse(d.Phone, "")
		if err != nil {
			return wire.TypeError, &wire.Error{Code: wire.ErrInvalidNumber, Message: err.Error()}
		}
		return wire.TypeReply, wire.DialResult{Phone: n.E164, Display: n.National}
	case wire.TypeQueueSubscribe:
		if r.board == nil {
			return wire.TypeError, &wire.Error{Code: wire.ErrForbidden, Message: "the queue board is for supervisors"}
		}
		r.subscribers++
		return wire.TypeReply, r.board
	case wire.TypeQueueUnsubscribe:
		return wire.TypeReply, nil
	case wire.TypeOperatorStatusSet:
		var os wire.OperatorStatus
		if err := json.Unmarshal(req.Data, &os); err != nil || !os.Status.Valid() {
			return wire.TypeError, &wire.Error{Code: wire.ErrInvalidStatus, Message: "invalid status"}
		}
		if r.board == nil {
			return wire.TypeError, &wire.Error{Code: wire.ErrForbidden, Message: "only supervisors set others' status"}
		}
		return wire.TypeReply, wire.StatusInfo{Status: os.Status, Since: time.Now().UTC(), Source: "supervisor"}
	case wire.TypeCallback:
		var cb wire.Callback
		if err := json.Unmarshal(req.Data, &cb); err != nil {
			return wire.TypeError, &wire.Error{Code: wire.ErrBadRequest, Message: "malformed callback"}
		}
		n, err := phone.Parse(cb.Phone, "")
		if err != nil {
			return wire.TypeError, &wire.Error{Code: wire.ErrInvalidNumber, Message: err.Error()}
		}
		return wire.TypeReply, wire.CallbackResult{Phone: n.E164, Display: n.National, At: cb.At}
	}
	return wire.TypeError, &wire.Error{Code: wire.ErrBadRequest, Message: "unknown request " + strings.TrimSpace(req.Type)}
}
