// Package hub serves connected agents: one websocket session per connection,
// each with one reader goroutine; a writer goroutine runs only while the
// session has something to write (never more than one per websocket: a card
// ahead or a "stored" frame for an idle session is written by the goroutine
// that has it — the webhook's, the hub's flush — holding the session's
// writing flag), and one sweeper per hub schedules every session's pings.
// Events come from a single live tail of the relay's event log and are
// fanned out to the sessions of their operator; a session that connects
// with a position first catches up from the log, so it receives exactly the
// events it missed, in order, none twice. A session whose position cannot be
// resumed (the agent's first connection, a new log, an expired position)
// catches up the same way from just before its operator's first event of the
// last RecentWindow, so that a call ringing when the agent connects is shown.
package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/pult/pult/agent/wire"
	"github.com/pult/pult/relay/store"
)

// Log is the part of the store the hub reads.
type Log interface {
	Next(ctx context.Context, op string, after uint64) (*store.Event, error)
	// FirstSince is the sequence of the operator's first event stored at
	// or after t; ok is false when there is none.
	FirstSince(ctx context.Context, op string, t time.Time) (seq uint64, ok bool, err error)
	EventBounds(ctx context.Context) (first, last uint64, err error)
	Epoch() string
}

// Handler answers agent requests. It returns the reply type (wire.TypeReply
// or wire.TypeError) and its data, or NoReply when it has queued the reply
// itself through the request's Peer. It must honour ctx, which ends with
// the session.
type Handler interface {
	HandleRequest(ctx context.Context, op wire.Operator, typ, id string, data json.RawMessage) (string, any)
}

// NoReply is the reply type of a request the handler answered itself with
// Peer.Send (so that nothing it sends later can overtake the reply).
const NoReply = ""

// Peer is the session a request came from, for handlers that keep sending
// to it (the queue board).
type Peer interface {
	// Send queues a frame without waiting. A full send queue means the
	// agent is not keeping up: the session is closed with wire.CloseSlow
	// (the agent resumes after reconnecting) and Send reports false, as it
	// does once the session has ended.
	Send(frame []byte) bool
	// Context ends with the session.
	Context() context.Context
	// Operator is who the session belongs to.
	Operator() wire.Operator
}

type peerKey struct{}

// PeerFrom returns the session of a request's context.
func PeerFrom(ctx context.Context) (Peer, bool) {
	p, ok := ctx.Value(peerKey{}).(Peer)
	return p, ok
}

// Metrics the hub updates; any field may be nil.
type Metrics struct {
	Connections     prometheus.Gauge
	Operators       prometheus.Gauge
	EventsOut       prometheus.Counter
	DeliveryLatency prometheus.Observer
}

// Config of a Hub.
type Config struct {
	Log         Log
	Handler     Handler
	Logger      *slog.Logger
	Metrics     Metrics
	MaxFrame    int           // read limit; wire.DefaultMaxFrame when 0
	SendQueue   int           // frames buffered per session before it counts as slow (256)
	MaxInFlight int           // concurrent requests per session (8)
	PingPeriod  time.Duration // wire.PingPeriod when 0
	PongWait    time.Duration // wire.PongWait when 0
	AheadExpiry time.Duration // AheadExpiry when 0
	StoredWait  time.Duration // StoredWait when 0
	// RecentWindow is how far back a session that is not resumed starts
	// (RecentWindow when 0).
	RecentWindow time.Duration
	// LastStoredAt is when the log's last event (New's last) was stored;
	// zero when unknown. With it, a session that is not resumed while the
	// log has had no event for RecentWindow starts at the end without
	// searching the log.
	LastStoredAt time.Time
	// RequestRate and RequestBurst bound the requests one session may
	// send (every text frame counts; pings and pongs do not); a session
	// over the limit is closed with wire.CloseRateLimited. Zero: no limit.
	RequestRate  rate.Limit
	RequestBurst int
	// MaxSessions caps an operator's concurrent sessions on this hub: one
	// more is refused at the handshake with HTTP 429 and
	// wire.CloseTooManySessions. Zero: no cap.
	MaxSessions int
	// OnThrottled, if set, is called when a session is closed for its
	// request rate or a handshake is refused for the sessions cap, with
	// the reason (wire.CloseRateLimited or wire.CloseTooManySessions).
	OnThrottled func(opID string, code int)
	// OnPresence is called, on a goroutine of its own, after an operator's
	// first session opened or the last closed, with a way to count the
	// operator's sessions (Connected). Calls may arrive out of order: the
	// count, made when the callee needs it, is the truth.
	OnPresence func(opID string, sessions func() int)
}

// Hub holds the sessions.
type Hub struct {
	cfg      Config
	log      *slog.Logger
	upgrader websocket.Upgrader

	mu            sync.Mutex
	sessions      map[string]map[*session]struct{}
	opening       map[string]int    // handshakes in progress, by operator (MaxSessions)
	barred        map[string]barred // operators disconnected with a stop code (revoked), for good
	all           []*session        // every session, for the sweeper
	sweepAt       int               // where the sweeper's next batch starts in all
	sweeping      bool              // the sweeper runs (while there are sessions)
	quiet         []*session        // sessions with frames left for flushQuiet
	quietTimer    *time.Timer       // runs flushQuiet; set while quiet is not empty
	lastDelivered uint64
	lastAt        time.Time // when the event at lastDelivered was stored or delivered; zero: unknown
	delivered     recentIDs // ids of the cards the live feed delivered lately
	closed        bool
	wg            sync.WaitGroup
}

// Buffer sizes of a websocket connection.
const (
	readBufferSize  = 512
	writeBufferSize = 4096
)

// New makes a hub whose live feed starts after sequence last.
func New(cfg Config, last uint64) *Hub {
	if cfg.MaxFrame <= 0 {
		cfg.MaxFrame = wire.DefaultMaxFrame
	}
	if cfg.SendQueue <= 0 {
		cfg.SendQueue = 256
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = 8
	}
	if cfg.PingPeriod <= 0 {
		cfg.PingPeriod = wire.PingPeriod
	}
	if cfg.PongWait <= 0 {
		cfg.PongWait = wire.PongWait
	}
	if cfg.AheadExpiry <= 0 {
		cfg.AheadExpiry = AheadExpiry
	}
	if cfg.StoredWait <= 0 {
		cfg.StoredWait = StoredWait
	}
	if cfg.RecentWindow <= 0 {
		cfg.RecentWindow = RecentWindow
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Hub{
		cfg: cfg,
		log: cfg.Logger.With("component", "hub"),
		upgrader: websocket.Upgrader{
			// An idle connection keeps only its read buffer; requests are
			// small, and a larger frame is read in several fills. Write
			// buffers are taken from the pool for one message at a time.
			ReadBufferSize:  readBufferSize,
			WriteBufferSize: writeBufferSize,
			WriteBufferPool: &sync.Pool{},
			// Agents are native apps, not browsers; they send no Origin.
			CheckOrigin: func(r *http.Request) bool { return r.Header.Get("Origin") == "" },
		},
		sessions:      make(map[string]map[*session]struct{}),
		opening:       make(map[string]int),
		barred:        make(map[string]barred),
		lastDelivered: last,
		lastAt:        cfg.LastStoredAt,
	}
}

// Deliver fans one event of the live feed out to its operator's sessions.
// Events must arrive in sequence order (the store's Tail guarantees it).
func (h *Hub) Deliver(ev store.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if ev.Seq > h.lastDelivered {
		h.lastDelivered = ev.Seq
		h.lastAt = time.Now() // no earlier than it was stored
	}
	if ev.MsgID != "" && ev.Type == wire.TypeCall {
		h.delivered.add(ev.MsgID)
	}
	for s := range h.sessions[ev.Operator] {
		if s.deliver(ev) && !s.quietListed {
			s.quietListed = true
			h.quiet = append(h.quiet, s)
		}
	}
	if len(h.quiet) > 0 && h.quietTimer == nil && !h.closed {
		h.quietTimer = time.AfterFunc(h.cfg.StoredWait, h.flushQuiet)
	}
}

// StoredWait bounds how long a "stored" frame waits for its session's next
// write before the hub writes it (Config.StoredWait): how far the agent's
// saved position may lag behind the cards it was sent ahead.
const StoredWait = 250 * time.Millisecond

// flushQuiet writes the frames left waiting (session.enqueueQuietLocked),
// one session after another from the timer's goroutine: one goroutine
// woken per Config.StoredWait instead of a writer per frame.
func (h *Hub) flushQuiet() {
	h.mu.Lock()
	list := h.quiet
	h.quiet, h.quietTimer = nil, nil
	for _, s := range list {
		s.quietListed = false
	}
	h.mu.Unlock()
	for _, s := range list {
		s.flushQuiet()
	}
}

// AheadExpiry is how long a card sent ahead may wait for the live feed to
// show it stored (Config.AheadExpiry): past it (checked at the session's
// pings) it is withdrawn to the card before. A store whose outcome was not
// known (a timeout) is either in the log by then or was lost, and the
// PBX's retry sends it again.
const AheadExpiry = 30 * time.Second

// SendAhead sends cards, before they are stored, to the sessions of their
// operators that asked for them (and are not catching up: those get the
// stored card in order). When the card is stored the live feed sends a
// "stored" frame in its place; when it is not, Withdraw takes it back.
func (h *Hub) SendAhead(cards []store.Ahead) {
	type target struct {
		s     *session
		c     *store.Ahead
		frame []byte
	}
	var targets []target
	h.mu.Lock()
	for i := range cards {
		if h.delivered.has(cards[i].MsgID) {
			continue // stored and delivered already (shared by another relay, late)
		}
		var frame []byte
		for s := range h.sessions[cards[i].Operator] {
			if frame == nil {
				frame = aheadFrame(wire.TypeCall, cards[i].MsgID, 0, cards[i].Data)
			}
			targets = append(targets, target{s, &cards[i], frame})
		}
	}
	h.mu.Unlock()
	for _, t := range targets {
		t.s.sendAhead(*t.c, t.frame)
	}
}

// recentIDs remembers the last recentCap ids added.
type recentIDs struct {
	set  map[string]struct{}
	ring [recentCap]string
	next int
}

const recentCap = 1024

func (r *recentIDs) add(id string) {
	if r.set == nil {
		r.set = make(map[string]struct{}, recentCap)
	}
	if r.has(id) {
		return // once in the ring: evicting an older slot must not drop it
	}
	delete(r.set, r.ring[r.next])
	r.ring[r.next] = id
	r.set[id] = struct{}{}
	r.next = (r.next + 1) % recentCap
}

func (r *recentIDs) has(id string) bool {
	_, ok := r.set[id]
	return ok
}

// Withdraw takes back cards sent ahead that were not stored: the sessions
// that were shown one get a "withdrawn" frame with c.Before.
func (h *Hub) Withdraw(cards []store.Ahead) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range cards {
		for s := range h.sessions[c.Operator] {
			s.withdraw(c)
		}
	}
}

// presence tells OnPresence the operator's sessions changed.
func (h *Hub) presence(opID string) {
	h.cfg.OnPresence(opID, func() int { return h.Connected(opID) })
}

// Connected counts the operator's sessions on this node.
func (h *Hub) Connected(opID string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.sessions[opID])
}

// Disconnect closes every session of an operator with a close code.
//
// A stop code (wire.IsStop: the token was revoked) also bars the operator
// from the hub for good: a session whose handshake passed the token check
// before the revocation, and registers after this call, is closed the same
// way before anything is sent to it.
func (h *Hub) Disconnect(opID string, code int, reason string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if wire.IsStop(code) {
		h.barred[opID] = barred{code, reason}
	}
	for s := range h.sessions[opID] {
		s.close(code, reason)
	}
}

// CloseAll closes every session with a close code that is not a stop
// code: the agents reconnect, to another relay if they know one. New
// sessions are still accepted.
func (h *Hub) CloseAll(code int, reason string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, set := range h.sessions {
		for s := range set {
			s.close(code, reason)
			n++
		}
	}
	return n
}

// Shutdown closes every session with CloseGoingAway and waits for them.
func (h *Hub) Shutdown(ctx context.Context) error {
	h.mu.Lock()
	h.closed = true
	if h.quietTimer != nil {
		h.quietTimer.Stop() // the sessions are closing: nothing to flush
		h.quietTimer = nil
	}
	for _, set := range h.sessions {
		for s := range set {
			s.close(wire.CloseGoingAway, "relay shutting down")
		}
	}
	h.mu.Unlock()
	done := make(chan struct{})
	go func() { h.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Position is where an agent asks to resume, and whether it takes call
// cards ahead of the log (wire.QueryPreview).
type Position struct {
	Since uint64
	Epoch string
	Ahead bool
}

// ParsePosition reads since, epoch and preview from a handshake query.
func ParsePosition(r *http.Request) (Position, error) {
	q := r.URL.Query()
	var p Position
	if s := q.Get(wire.QuerySince); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return p, errors.New("since must be a non-negative integer")
		}
		p.Since = n
	}
	p.Epoch = q.Get(wire.QueryEpoch)
	if len(p.Epoch) > 32 {
		return p, errors.New("epoch is too long")
	}
	switch q.Get(wire.QueryPreview) {
	case "", "0":
	case "1":
		p.Ahead = true
	default:
		return p, errors.New("preview must be 1 or 0")
	}
	return p, nil
}

// Serve upgrades an authenticated request and starts the session; it
// returns once the session runs (on a goroutine of its own, tracked by
// Shutdown), so that the HTTP server's per-request buffers and its deep
// handler stack are not held for the life of the connection.
// hello is filled in with Epoch and Resumed by the hub.
func (h *Hub) Serve(w http.ResponseWriter, r *http.Request, op wire.Operator, pos Position, hello wire.Hello) {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		http.Error(w, "relay shutting down", http.StatusServiceUnavailable)
		return
	}
	if max := h.cfg.MaxSessions; max > 0 && len(h.sessions[op.ID])+h.opening[op.ID] >= max {
		h.mu.Unlock()
		h.log.Warn("session refused: the operator has as many sessions as allowed", "operator", op.ID, "limit", max)
		if h.cfg.OnThrottled != nil {
			h.cfg.OnThrottled(op.ID, wire.CloseTooManySessions)
		}
		w.Header().Set("Retry-After", strconv.Itoa(int(wire.ThrottledWait/time.Second)))
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(http.StatusTooManyRequests)
		json.NewEncoder(w).Encode(&wire.HandshakeError{Code: wire.CloseTooManySessions,
			Reason: fmt.Sprintf("%d sessions are open with this token already (the relay's limit); close one, or try again later", max)})
		return
	}
	h.opening[op.ID]++
	h.wg.Add(1)
	h.mu.Unlock()

	resume, err := h.resumable(r.Context(), pos)
	from := pos.Since
	if err == nil && !resume {
		from, err = h.recentStart(r.Context(), op.ID)
	}
	if err != nil {
		// The log cannot say whether pos is still in it (a cluster
		// electing the events stream's leader after losing a node), or
		// where the operator's recent events start: refused, so that the
		// agent tries again, here or on another relay, rather than being
		// told to start from the tail and missing what it had not
		// received, or a call ringing now.
		h.mu.Lock()
		h.doneOpening(op.ID)
		h.mu.Unlock()
		h.wg.Done()
		h.log.Warn("session refused: the event log cannot be read to resume", "operator", op.ID, "err", err)
		w.Header().Set("Retry-After", "1")
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(http.StatusServiceUnavailable)
		json.NewEncoder(w).Encode(&wire.HandshakeError{Code: wire.CloseGoingAway,
			Reason: "the relay cannot read its event log just now; try again"})
		return
	}

	conn, err := h.upgrader.Upgrade(w, r, nil)
	if err != nil {
		h.mu.Lock()
		h.doneOpening(op.ID)
		h.mu.Unlock()
		h.wg.Done()
		return // the upgrader has answered
	}
	conn.SetReadLimit(int64(h.cfg.MaxFrame))
	ctx, cancel := context.WithCancel(context.Background())
	s := &session{
		hub:    h,
		op:     op,
		conn:   conn,
		cancel: cancel,
		done:   make(chan struct{}),
		space:  make(chan struct{}, 1),
		wdone:  make(chan struct{}),
		sem:    make(chan struct{}, h.cfg.MaxInFlight),
		ahead:  pos.Ahead,
	}
	if h.cfg.RequestRate > 0 {
		s.limiter = rate.NewLimiter(h.cfg.RequestRate, max(h.cfg.RequestBurst, 1))
	}
	s.ctx = context.WithValue(ctx, peerKey{}, Peer(s))

	hello.Epoch = h.cfg.Log.Epoch()
	hello.Resumed = resume
	hello.Protocol = wire.ProtocolVersion
	catchUp := h.register(s, from, hello)
	go s.run(catchUp)
}

// run reads until the connection ends, then cleans the session up.
func (s *session) run(catchUp bool) {
	h := s.hub
	defer h.wg.Done()
	var catchUpDone chan struct{}
	if catchUp {
		catchUpDone = make(chan struct{})
		go func() { defer close(catchUpDone); s.catchUp() }()
	}
	s.reader()
	s.close(websocket.CloseNormalClosure, "")
	s.cancel()
	if catchUpDone != nil {
		<-catchUpDone
	}
	s.reqs.Wait()
	<-s.wdone
	h.unregister(s)
	s.conn.Close()
}

// resumable reports whether pos is a position in this log that has not
// expired. An error is the log's bounds not read: whether pos can be
// resumed is not known.
func (h *Hub) resumable(ctx context.Context, pos Position) (bool, error) {
	if pos.Epoch == "" || pos.Epoch != h.cfg.Log.Epoch() {
		return false, nil
	}
	h.mu.Lock()
	last := h.lastDelivered
	h.mu.Unlock()
	if pos.Since > last {
		// Not delivered yet as far as this node knows: ask the log itself.
		_, l, err := h.cfg.Log.EventBounds(ctx)
		if err != nil {
			return false, err
		}
		return pos.Since <= l, nil
	}
	if pos.Since == last {
		return true, nil
	}
	first, _, err := h.cfg.Log.EventBounds(ctx)
	if err != nil {
		return false, err
	}
	return pos.Since+1 >= first, nil
}

// RecentWindow is how far back a session that is not resumed starts
// (Config.RecentWindow): its operator's events of that long ago on are
// sent, as if the agent had been connected all along — a call ringing
// now is shown, one ended meanwhile arrives with its end.
const RecentWindow = 2 * time.Minute

// recentLookup bounds the search for where a session that is not resumed
// starts.
const recentLookup = 5 * time.Second

// recentStart is where a session that is not resumed starts: just before
// the operator's first event of the last RecentWindow, or, when it has
// none, the end of the log as the live feed knows it before the search.
// Either is at most the live feed's position when the session registers;
// events stored meanwhile come in its catch-up.
func (h *Hub) recentStart(ctx context.Context, opID string) (uint64, error) {
	h.mu.Lock()
	last, lastAt := h.lastDelivered, h.lastAt
	h.mu.Unlock()
	if last == 0 || (!lastAt.IsZero() && time.Since(lastAt) > h.cfg.RecentWindow) {
		// Nothing stored in the window, for anyone (a storm of first
		// connections to a quiet relay searches nothing); what is stored
		// from now on comes live.
		return last, nil
	}
	ctx, cancel := context.WithTimeout(ctx, recentLookup)
	defer cancel()
	seq, ok, err := h.cfg.Log.FirstSince(ctx, opID, time.Now().Add(-h.cfg.RecentWindow))
	if err != nil {
		return 0, err
	}
	if ok && seq-1 < last {
		return seq - 1, nil
	}
	// None, or not delivered live yet: the live feed brings it.
	return last, nil
}

// register adds the session to the live feed and queues hello as its first
// frame, both under the hub's lock so no live event can precede hello or
// fall between hello's position and the feed. The session's events start
// after from: the agent's position when resumed, recentStart's when not.
// It reports whether the session must catch up from the log.
func (h *Hub) register(s *session, from uint64, hello wire.Hello) (catchUp bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s.cursor = from
	s.catchingUp = from < h.lastDelivered
	hello.Position = s.cursor
	s.mu.Lock()
	if b, ok := h.barred[s.op.ID]; ok {
		// Closed before hello is queued: a writer started for hello
		// could send it before the close.
		s.closeLocked(b.code, b.reason)
	} else {
		first, _ := wire.Encode(wire.TypeHello, "", 0, hello)
		s.enqueueLocked(first) // the queue is empty: never refused
	}
	s.mu.Unlock()
	s.idx = len(h.all)
	h.all = append(h.all, s)
	if !h.sweeping {
		h.sweeping = true
		go h.sweep()
	}
	h.doneOpening(s.op.ID)
	set := h.sessions[s.op.ID]
	if set == nil {
		set = make(map[*session]struct{})
		h.sessions[s.op.ID] = set
		if h.cfg.Metrics.Operators != nil {
			h.cfg.Metrics.Operators.Inc()
		}
		if h.cfg.OnPresence != nil {
			go h.presence(s.op.ID)
		}
	}
	set[s] = struct{}{}
	if h.cfg.Metrics.Connections != nil {
		h.cfg.Metrics.Connections.Inc()
	}
	return s.catchingUp
}

// barred is why an operator may not have sessions any more.
type barred struct {
	code   int
	reason string
}

// doneOpening ends a handshake counted in opening; h.mu is held.
func (h *Hub) doneOpening(opID string) {
	if h.opening[opID] <= 1 {
		delete(h.opening, opID)
	} else {
		h.opening[opID]--
	}
}

func (h *Hub) unregister(s *session) {
	h.mu.Lock()
	defer h.mu.Unlock()
	set := h.sessions[s.op.ID]
	if _, ok := set[s]; !ok {
		return
	}
	delete(set, s)
	last := len(h.all) - 1
	h.all[s.idx] = h.all[last]
	h.all[s.idx].idx = s.idx
	h.all[last] = nil
	h.all = h.all[:last]
	if len(h.all) == 0 {
		h.all = nil
	}
	if h.cfg.Metrics.Connections != nil {
		h.cfg.Metrics.Connections.Dec()
	}
	if len(set) == 0 {
		delete(h.sessions, s.op.ID)
		if h.cfg.Metrics.Operators != nil {
			h.cfg.Metrics.Operators.Dec()
		}
		if h.cfg.OnPresence != nil {
			go h.presence(s.op.ID)
		}
	}
}

// sweepBatch is about how many sessions one tick of the sweeper pings. Each
// ping wakes the session's writer goroutine: hundreds woken at once would
// queue the goroutines delivering events behind them for milliseconds.
const sweepBatch = 32

// sweepTick is the sweeper's tick for n sessions: sweepBatch of them per
// tick, but no shorter than 10 ms (each tick wakes the process) and no
// longer than a second or the ping period (a session is pinged at most
// once a tick).
func (h *Hub) sweepTick(n int) time.Duration {
	return min(max(h.cfg.PingPeriod*sweepBatch/time.Duration(max(n, 1)), 10*time.Millisecond), time.Second, h.cfg.PingPeriod)
}

// sweep pings every session once per PingPeriod from one goroutine: each
// tick takes the next few sessions, so the pings of many connections are
// spread evenly over the period instead of each session keeping a ticker of
// its own. It ends when the last session has gone (a new session starts it
// again) or the hub shuts down.
func (h *Hub) sweep() {
	h.mu.Lock()
	tick := h.sweepTick(len(h.all))
	h.mu.Unlock()
	t := time.NewTicker(tick)
	defer t.Stop()
	var batch []*session
	credit := 0.0 // sessions owed to the sweep, fractional
	for range t.C {
		h.mu.Lock()
		if h.closed || len(h.all) == 0 {
			h.sweeping = false
			h.mu.Unlock()
			return
		}
		credit += float64(len(h.all)) * float64(tick) / float64(h.cfg.PingPeriod)
		if next := h.sweepTick(len(h.all)); next != tick {
			tick = next
			t.Reset(tick)
		}
		n := min(int(credit), len(h.all))
		credit -= float64(n)
		batch = batch[:0]
		for range n {
			if h.sweepAt >= len(h.all) {
				h.sweepAt = 0
			}
			batch = append(batch, h.all[h.sweepAt])
			h.sweepAt++
		}
		h.mu.Unlock()
		for i, s := range batch {
			s.ping()
			batch[i] = nil
		}
	}
}

var idPattern = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,64}$`)

// ValidID reports whether a request id is acceptable.
func ValidID(id string) bool { return idPattern.MatchString(id) }
