// Package agent is the operator's side of pult without any GUI: one
// websocket connection to the relay (or to one of several, moving to another
// when it is lost) that reconnects with backoff and resumes the event stream,
// status changes (with an on-disk outbox for changes made
// while offline) and click-to-call. The tray app and the CLI drive it; it
// reads no flags or environment and never logs the token.
//
// Every long-lived part lives inside [Agent.Run]; when Run returns, nothing
// it started is still running.
package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pult/pult/agent/wire"
)

// Defaults for Config fields left zero.
const (
	DefaultMinBackoff  = 500 * time.Millisecond
	DefaultMaxBackoff  = 30 * time.Second
	DefaultDialTimeout = 20 * time.Second
)

// Timing that is not configurable (tests in this package shorten some).
const (
	handshakeTimeout = 15 * time.Second
	// stableAfter: a connection that stayed online this long resets the
	// backoff, so a later drop reconnects quickly again.
	stableAfter = 10 * time.Second
	// closeWait bounds writing our close frame when a connection ends.
	closeWait = time.Second
)

// Config configures an Agent. Only RelayURL and Token are required.
type Config struct {
	// RelayURL is the relay's base URL: http(s)://host[:port][/prefix] or
	// ws(s)://…; wire.Path is appended. It may list up to MaxRelays relays
	// of one cluster, separated by commas ("https://a:8700,https://b:8700"):
	// the agent starts on a random one and, when it loses it or cannot reach
	// it, moves on to the next in a shuffled order, resuming the event
	// stream where it was (the relays share it). One name behind a load
	// balancer is one URL. Each URL is checked on its own (the clear-text
	// rule below included); the same relay listed twice is refused.
	RelayURL string
	Token    string
	// Insecure allows http:// or ws:// RelayURLs to other machines, which
	// sends the token unencrypted. Without it such a URL is refused
	// (*CleartextError); loopback (IsLoopback) is always allowed, and so is
	// https or wss. The choice is the operator's (pult login --insecure).
	Insecure bool
	// StateDir holds the outbox (outbox.json) and, with Resume, the stream
	// position (state.json). "" keeps both in memory only.
	StateDir string
	// Resume persists the stream position in StateDir so a restarted process
	// resumes where the last one stopped. Needs StateDir.
	Resume bool
	Logger *slog.Logger
	// MinBackoff and MaxBackoff bound the reconnect delay: capped exponential
	// with full jitter. Defaults 500ms and 30s.
	MinBackoff, MaxBackoff time.Duration
	// MaxFrame is the largest frame written; default wire.DefaultMaxFrame.
	// Frames read may be up to the larger of MaxFrame and wire.MaxRelayFrame
	// (a supervisor's queue snapshot). Larger outgoing requests fail with
	// ErrFrameTooLarge; a larger incoming frame ends the connection.
	MaxFrame int
	// DialTimeout is how long Dial waits for the relay's answer (default 20s).
	DialTimeout time.Duration
	// TLS configures https and wss connections (the certificate authorities
	// trusted, say); nil uses the system's.
	TLS *tls.Config
	// OnEvent receives every event in order, from one goroutine. The stream
	// position advances only after it returns, so an event whose OnEvent did
	// not return before the process died is delivered again. It must not
	// block for long (Run waits for it, and reading pauses once 64 events are
	// pending); in particular it must not wait for SetStatus or Dial.
	OnEvent func(Event)
}

// ConnState is the state of the relay connection.
type ConnState int

const (
	Stopped    ConnState = iota // Run is not running
	Connecting                  // dialing and waiting for hello
	Online                      // hello received; requests are possible
	Offline                     // connection lost or refused; waiting to retry
	AuthFailed                  // stop: the token is unknown or revoked; Run returned
	Outdated                    // stop: the relay refused this protocol version; Run returned
)

var connStateNames = [...]string{"stopped", "connecting", "online", "offline", "auth_failed", "outdated"}

func (s ConnState) String() string {
	if s >= 0 && int(s) < len(connStateNames) {
		return connStateNames[s]
	}
	return fmt.Sprintf("ConnState(%d)", int(s))
}

// MarshalText makes a ConnState a JSON string.
func (s ConnState) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// EventKind tells which field of an Event is set.
type EventKind int

const (
	EventConn       EventKind = iota + 1 // Conn (+ Err, RetryIn when Offline or stopped)
	EventHello                           // Hello: first frame of every connection
	EventCall                            // Call, Seq
	EventStatus                          // Status, Seq
	EventNotice                          // Notice, Seq
	EventReceipt                         // Receipt: outcome of a queued status change
	EventTranscript                      // Transcript: a transcript's delivery state (Seq when from the relay's stream)
	EventQueue                           // Queue: the whole board after a change (+ QueueDelta), or Err
	// EventCallWithdrawn: Call (its ID only). A card the relay sent ahead
	// of its log (Seq 0) could not be stored, and the operator had no card
	// for the call before: take it away. (When there was one, an EventCall
	// brings it back instead.)
	EventCallWithdrawn
)

var eventKindNames = [...]string{"", "connection", "hello", "call", "status", "notice", "receipt", "transcript", "queue", "call_withdrawn"}

func (k EventKind) String() string {
	if k > 0 && int(k) < len(eventKindNames) {
		return eventKindNames[k]
	}
	return fmt.Sprintf("EventKind(%d)", int(k))
}

// MarshalText makes an EventKind a JSON string.
func (k EventKind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// Event is one thing that happened, delivered to Config.OnEvent.
type Event struct {
	Kind EventKind
	Seq  uint64 // stream position of call, status and notice events (0: a card sent ahead of the log)

	Conn    ConnState     // EventConn
	Err     string        // EventConn: why offline or stopped
	RetryIn time.Duration // EventConn, Offline: delay before the next attempt
	// Relay is the host[:port] of the relay of an EventConn: the one being
	// dialed (Connecting), the one the agent is on (Online), the one lost or
	// refused (Offline and the stop states).
	Relay string

	Hello      *wire.Hello
	Call       *wire.Call
	Status     *wire.StatusInfo
	Notice     *wire.Notice
	Receipt    *Receipt
	Transcript *wire.TranscriptState
	Queue      *wire.QueueSnapshot // EventQueue: the board, a copy of the agent's
	QueueDelta *wire.QueueDelta    // EventQueue: the change that led to it (nil after a snapshot)
}

// Receipt is the outcome of a status change that SetStatus could not confirm
// (it returned an error wrapping ErrQueued) and that was later answered.
type Receipt struct {
	ID     string      `json:"id"`     // the request id, unchanged since the operator's choice
	Status wire.Status `json:"status"` // what the operator chose
	At     time.Time   `json:"at"`     // when the operator chose it
	// Exactly one of Applied and Refused is set.
	Applied *wire.StatusInfo `json:"applied,omitempty"` // the relay's answer
	Refused *wire.Error      `json:"refused,omitempty"` // the relay's refusal; the change is dropped
}

// position is the last processed event of the relay's stream.
type position struct {
	Seq   uint64 `json:"seq"`
	Epoch string `json:"epoch"`
}

// statusItem is the queued status change (only the latest is kept).
type statusItem struct {
	ID     string      `json:"id"`
	Status wire.Status `json:"status"`
	At     time.Time   `json:"at"`
}

// relay is one of the relays the agent knows.
type relay struct {
	base *url.URL // the relay's base URL
	ws   string   // ws(s)://host/prefix/v1/agent, without query
	host string   // base.Host: which relay, for people
}

// Agent is one operator's connection to a relay. Create it with New, run it
// with Run; the other methods are safe to call from any goroutine.
type Agent struct {
	cfg     Config
	relays  []relay // as configured
	order   []int   // indexes into relays: the order they are tried in
	http    *http.Client
	log     *slog.Logger
	running atomic.Bool

	// Timing; constants outside tests.
	pongWait, writeWait, stableAfter, handshakeTimeout, throttledWait, transcriptRetry time.Duration

	mu       sync.Mutex
	state    ConnState
	at       int // index into order: the relay the agent is on or trying
	hello    wire.Hello
	hasHello bool
	cur      *conn // the online connection, nil otherwise
	pos      position
	queued   *statusItem
	queueOn  bool                // WatchQueue
	board    *wire.QueueSnapshot // the board, while watching

	ahead CardFilter // cards sent ahead of the relay's log, not yet stored
}

// New checks cfg and loads the outbox (and, with Resume, the position) from
// StateDir. It does not connect: Run does.
func New(cfg Config) (*Agent, error) {
	// The one gate for the websocket and every HTTP request: they all go
	// to these.
	bases, err := relayURLs(cfg.RelayURL, cfg.Insecure, false)
	if err != nil {
		return nil, err
	}
	if err := checkToken(cfg.Token); err != nil {
		return nil, err
	}
	if cfg.Resume && cfg.StateDir == "" {
		return nil, errors.New("agent: Resume needs a StateDir")
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = DefaultMinBackoff
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = cfg.MinBackoff
	}
	if cfg.MaxFrame <= 0 {
		cfg.MaxFrame = wire.DefaultMaxFrame
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	a := &Agent{
		cfg:              cfg,
		order:            rand.Perm(len(bases)), // start on a random relay
		http:             &http.Client{Transport: transport(cfg.TLS), CheckRedirect: refuseCleartextRedirect(cfg.Insecure)},
		log:              cfg.Logger.With("component", "agent"),
		pongWait:         wire.PongWait,
		writeWait:        wire.WriteWait,
		stableAfter:      stableAfter,
		handshakeTimeout: handshakeTimeout,
		throttledWait:    wire.ThrottledWait,
		transcriptRetry:  transcriptRetry,
	}
	for _, b := range bases {
		a.relays = append(a.relays, relay{base: b, ws: wsURL(b), host: b.Host})
	}
	if err := a.loadState(); err != nil {
		return nil, err
	}
	return a, nil
}

func checkToken(token string) error {
	if token == "" {
		return errors.New("agent: empty token")
	}
	if strings.ContainsFunc(token, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return errors.New("agent: the token contains spaces or control characters")
	}
	return nil
}

// State is the current connection state.
func (a *Agent) State() ConnState {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.state
}

// Relay is the host[:port] of the relay the agent is on (Online), trying
// (Connecting) or last tried; "" before Run.
func (a *Agent) Relay() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.state == Stopped {
		return ""
	}
	return a.relays[a.order[a.at]].host
}

// Relays lists the configured relays' URLs, normalised, in the order of
// Config.RelayURL.
func (a *Agent) Relays() []string {
	out := make([]string, len(a.relays))
	for i, r := range a.relays {
		out[i] = r.base.String()
	}
	return out
}

// current is the relay the agent is on or trying.
func (a *Agent) current() relay {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.relays[a.order[a.at]]
}

// Hello returns the hello of the latest connection, if there was one.
func (a *Agent) Hello() (wire.Hello, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.hello, a.hasHello
}

// Run connects to the relay and keeps the connection up, reconnecting with
// backoff and resuming the event stream, until ctx is cancelled (it then
// returns nil) or the relay says stop (it returns a *StopError and the state
// is AuthFailed or Outdated). Events are delivered to Config.OnEvent while
// Run runs; when it returns, every goroutine it started has ended. Run must
// not be called again before it returned.
func (a *Agent) Run(ctx context.Context) error {
	if !a.running.CompareAndSwap(false, true) {
		return errors.New("agent: Run is already running")
	}
	defer a.running.Store(false)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	events := make(chan Event, 64)
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.dispatch(ctx, events)
	}()

	err := a.loop(ctx, events)
	a.http.CloseIdleConnections()

	close(events) // every sender has returned: loop waited for its connections
	<-done
	a.mu.Lock()
	if err == nil {
		a.state = Stopped
	}
	a.mu.Unlock()
	return err
}

// loop is Run's body: connect, serve, back off, repeat (see retry).
func (a *Agent) loop(ctx context.Context, events chan<- Event) error {
	rt := NewRetry(len(a.relays))
	for {
		r := a.current()
		a.setState(ctx, events, Event{Kind: EventConn, Conn: Connecting, Relay: r.host})
		c, hello, err := a.connect(ctx, r)
		if ctx.Err() != nil {
			if c != nil {
				c.close()
			}
			return nil
		}
		var online time.Duration
		if err == nil {
			start := time.Now()
			err = a.serve(ctx, c, r, hello, events)
			online = time.Since(start)
			if ctx.Err() != nil {
				return nil
			}
		}
		if se := (*StopError)(nil); errors.As(err, &se) {
			st := AuthFailed
			if se.Code == wire.CloseProtocol {
				st = Outdated
			}
			a.log.Error("relay refused this agent; not retrying", "relay", r.host, "code", se.Code, "reason", se.Reason)
			a.setState(ctx, events, Event{Kind: EventConn, Conn: st, Err: se.Error(), Relay: r.host})
			return se
		}
		throttled := (*throttledError)(nil)
		isThrottled := errors.As(err, &throttled)
		wait := backoff(rt.Failed(online >= a.stableAfter && !isThrottled), a.cfg.MinBackoff, a.cfg.MaxBackoff, rand.Int64N)
		if isThrottled {
			// The relay's quota: reconnecting at once would only be
			// refused again. Jitter spreads the agents it throttled.
			wait = a.throttledWait + wait
		}
		a.log.Warn("relay connection down", "relay", r.host, "err", err, "retry_in", wait)
		a.setState(ctx, events, Event{Kind: EventConn, Conn: Offline, Err: err.Error(), RetryIn: wait, Relay: r.host})
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil
		}
		a.mu.Lock()
		a.at = (a.at + 1) % len(a.order) // another relay, if there are several
		a.mu.Unlock()
	}
}

// setState records ev.Conn and publishes ev.
func (a *Agent) setState(ctx context.Context, events chan<- Event, ev Event) {
	a.mu.Lock()
	a.state = ev.Conn
	a.mu.Unlock()
	emit(ctx, events, ev)
}

// emit queues ev for OnEvent unless ctx ends first.
func emit(ctx context.Context, events chan<- Event, ev Event) bool {
	select {
	case events <- ev:
		return true
	case <-ctx.Done():
		return false
	}
}

// dispatch is the one goroutine that calls OnEvent. It drops events at or
// before the processed position, and advances the position after OnEvent
// returned. Once ctx is cancelled it discards what is left: unprocessed events
// are resent by the relay after the next resume.
func (a *Agent) dispatch(ctx context.Context, events <-chan Event) {
	for ev := range events {
		if ctx.Err() != nil {
			continue
		}
		if ev.Kind == EventHello {
			a.applyHello(ev.Hello)
		}
		if ev.Seq > 0 {
			a.mu.Lock()
			old := ev.Seq <= a.pos.Seq
			a.mu.Unlock()
			if old {
				a.log.Debug("dropping an event already processed", "seq", ev.Seq)
				continue
			}
		}
		if ev.Kind != 0 && a.cfg.OnEvent != nil {
			a.cfg.OnEvent(ev)
		}
		if ev.Seq > 0 {
			a.mu.Lock()
			a.pos.Seq = ev.Seq
			a.savePositionLocked()
			a.mu.Unlock()
		}
	}
}

// applyHello moves the position to hello's epoch: a new epoch means the
// relay's log was recreated and old sequence numbers mean nothing.
func (a *Agent) applyHello(h *wire.Hello) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if h.Epoch != a.pos.Epoch {
		if a.pos.Seq > 0 {
			a.log.Warn("relay event log was recreated; starting over", "old_epoch", a.pos.Epoch, "epoch", h.Epoch)
		}
		a.pos = position{Epoch: h.Epoch, Seq: h.Position}
		a.savePositionLocked()
		return
	}
	if !h.Resumed {
		if a.pos.Seq > 0 {
			a.log.Warn("relay could not resume from our position; some events may be missing", "seq", a.pos.Seq)
		}
		// Events of this connection follow h.Position: resume from there.
		a.pos.Seq = h.Position
		a.savePositionLocked()
	}
}

// Retry paces reconnection. With several relays, a relay lost or not
// reached is followed by the next one in the agent's order after only a
// short jitter (backoff 0: up to MinBackoff); the backoff proper grows by
// round, once every relay has been tried, so no relay is hammered and a
// healthy one is found quickly. With one relay each attempt is a round.
// (pult-relay bench paces its simulated agents with it too.)
type Retry struct {
	relays  int // how many relays there are
	attempt int // failed rounds: the backoff's exponent
	tried   int // relays tried in this round
}

// NewRetry paces reconnection among relays relays (at least 1).
func NewRetry(relays int) *Retry { return &Retry{relays: max(1, relays)} }

// Failed records a failed attempt (or a connection that ended; stable if it
// stayed up long enough to start afresh) and returns the backoff exponent
// of the delay before the next attempt (see Backoff).
func (r *Retry) Failed(stable bool) int {
	if stable {
		r.attempt, r.tried = 0, 0
	}
	r.tried++
	if r.tried < r.relays {
		return 0 // on to another relay
	}
	n := r.attempt
	r.attempt++
	r.tried = 0
	return n
}

// Backoff is the delay before a reconnect with backoff exponent n (see
// Retry), as the agent waits: uniformly random in [0, min(max, min·2ⁿ)].
func Backoff(n int, min, max time.Duration) time.Duration {
	return backoff(n, min, max, rand.Int64N)
}

// backoff is the delay before reconnect attempt n (0-based): uniformly random
// in [0, min(max, min·2ⁿ)] ("full jitter"). rnd(k) returns a value in [0, k).
func backoff(n int, min, max time.Duration, rnd func(int64) int64) time.Duration {
	ceil := backoffCeil(n, min, max)
	if ceil <= 0 {
		return 0
	}
	return time.Duration(rnd(int64(ceil) + 1))
}

// backoffCeil is min(max, min·2ⁿ) without overflow.
func backoffCeil(n int, min, max time.Duration) time.Duration {
	d := min
	for i := 0; i < n && d < max; i++ {
		d *= 2
	}
	if d > max || d <= 0 {
		d = max
	}
	return d
}

// transport is an HTTP transport like the default one, with tlsConfig.
func transport(tlsConfig *tls.Config) *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if tlsConfig != nil {
		tr.TLSClientConfig = tlsConfig.Clone()
	}
	return tr
}
