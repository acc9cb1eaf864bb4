// Package board is the queue board: the supervisors' live view of every
// operator (status and since when, connected or not, the call they are on),
// the calls waiting, today's counters and a per-minute history, and the
// wallboard page that shows it on a TV.
//
// Where it comes from. Every change of a call (whatever PBX reported it) is
// stored as a new version of the call's record, with the time the relay
// received what changed it (call.Record.At); the records are the board's
// input (the store's TailCalls: in the order stored, each with its
// sequence). One goroutine per relay node tails them and folds each version
// into the board (applyChange): what a call was and what it is now tell what
// happened — it rang (incoming), was answered (answered, wait, in time or
// not), moved to another operator (a transfer: the first operator's talk
// ends), ended (talk time) or was missed. A version that changes nothing the
// board shows (the responsible manager found) changes nothing on it.
// Statuses come from the status bucket (a KV watch), operators from the
// registry, presence from package presence (SetPresence): an operator is
// online while an agent of theirs is connected to any relay node.
//
// Several nodes. Every node folds the same records into a board of its
// own, and the fold is deterministic: it runs on the times carried by the
// changes (and on the clock's ticks between them, which trail the clock by
// lateness), and a change made on a day already closed counts in no day
// (applyChangeLocked), so every node's counters are the same. Presence,
// with its times, comes from the presence bucket every node watches.
//
// Restarts. Every few seconds, and at shutdown, the board's state and the
// last record's sequence applied are checkpointed in the pult_queue bucket — by one
// node at a time: the holder of the checkpoint lease (a key of the presence
// bucket that expires unless its holder renews it every third of its TTL;
// another node takes it when it lapses). A relay that starts loads the
// checkpoint, whoever wrote it, and replays the records after it (those of
// the last replayWindow if there is no checkpoint), before it accepts
// connections.
// Presence in the checkpoint is not trusted: the presence watch says who
// is connected now, and one back within presenceGrace keeps its "online
// since".
//
// Delivery. Changes mark operators, waiting calls and totals dirty; a
// flusher turns what is dirty into one QueueDelta — only entries that differ
// from what subscribers were last sent — numbered by a single board version
// shared by every subscriber, encodes it once and queues it to each without
// waiting (a websocket subscriber's session send queue, an SSE viewer's
// channel). Bursts that arrive while a flush runs are coalesced into the
// next one. A subscriber that cannot keep up is dropped: a websocket session
// is closed with wire.CloseSlow (the hub's slow-peer policy; the agent
// reconnects, resumes its stream and subscribes again), an SSE viewer's
// stream ends (the page reconnects and starts from a fresh snapshot).
//
// Goroutines: Run (one per node) owns the records' tail, the status watch,
// the clock, the checkpoint lease and the checkpoints; every other method
// may be called from any goroutine (the webhook's, a session's, the HTTP
// server's, the presence watch's) and takes the board's lock. Subscribers are reached without waiting: a websocket
// session through hub.Peer.Send, an SSE viewer through its channel, read by
// the HTTP handler serving it (Handler).
package board

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pult/pult/agent/wire"
	"github.com/pult/pult/relay/call"
	"github.com/pult/pult/relay/hub"
	"github.com/pult/pult/relay/operators"
)

const (
	boardSchema     = 2 // 2: the input is the records (1: the former queue stream)
	checkpointEvery = 10 * time.Second
	// A large state (thousands of calls live: 200 calls a second of
	// three minutes each are 36 000) is checkpointed less often: its writes
	// stay under checkpointRate bytes a second, but at least every
	// checkpointMax (the records a restart replays). Encoding and storing a
	// checkpoint of megabytes stalls the node's cards for tens of
	// milliseconds (BENCHMARKS.md, session 11).
	checkpointRate  = 64 << 10
	checkpointMax   = 5 * time.Minute
	presenceGrace   = 2 * time.Minute  // a reconnect within it keeps "online since"
	staleRinging    = 30 * time.Minute // a ringing call with no news for this long is dropped
	staleTalking    = 8 * time.Hour    // a call talked with no news for this long is dropped
	boardTick       = time.Second
	defaultLeaseTTL = 25 * time.Second // the store's PresenceTTL
	// lateness is how far the board's clock trails the node's: a minute
	// (a day) is closed by the clock only this long after it ended, so a
	// change made in it reaches every node's fold before any node closes
	// it, and every node samples and counts it alike (see clockNow).
	lateness          = 5 * time.Second
	endedMemory       = 10 * time.Minute // how long a call over is remembered, to ignore its late changes
	maxBoardViewers   = 32               // concurrent /board/events streams
	maxTokenViewers   = 4                // of them with one token (a few screens each)
	viewerQueue       = 256              // frames buffered per SSE viewer before it counts as slow
	queueFactMaxBytes = 1 << 20
	// replayWindow is how far back a board without a checkpoint rebuilds
	// from: today and the per-minute history, across a midnight.
	replayWindow = 48 * time.Hour
)

// queueChange is one version of a call's record, as the fold takes it.
type queueChange struct {
	At   time.Time   `json:"at"` // when the relay received what changed the call
	Call call.Record `json:"call"`
}

// decodeChange reads a version of a call's record (stored: when the store
// stored it, the time of a record from relays that did not say). What the
// board does not show is dropped: the checkpoint keeps the live calls.
func decodeChange(data []byte, stored time.Time) (queueChange, error) {
	var c queueChange
	if err := json.Unmarshal(data, &c.Call); err != nil {
		return c, err
	}
	c.At = c.Call.At
	if c.At.IsZero() {
		c.At = stored
	}
	c.Call.Client, c.Call.Manager, c.Call.Links = nil, nil, nil
	return c, nil
}

// boardState is what the fold computes and the checkpoint keeps.
type boardState struct {
	Schema    int                  `json:"schema"`
	Stream    time.Time            `json:"stream"`  // creation of the stream of the records: its identity
	Applied   uint64               `json:"applied"` // last record's sequence folded in
	Clock     time.Time            `json:"clock"`   // the latest time the fold has seen
	Day       string               `json:"day"`
	Minute    time.Time            `json:"minute"`    // start of the minute being sampled
	MinuteMax int                  `json:"minuteMax"` // most calls waiting in it so far
	History   []wire.QueueSample   `json:"history"`
	Totals    wire.QueueCounters   `json:"totals"`
	Ops       map[string]*opState  `json:"ops"`
	Calls     map[string]*liveCall `json:"calls"` // calls not over, by call key
	// Ended are calls over in the last endedMemory, by key: a change of
	// theirs that arrives late (overtaken in the records) is ignored.
	Ended map[string]endedCall `json:"ended"`
}

type endedCall struct {
	ID      string    `json:"id"`
	Version int       `json:"version"`
	At      time.Time `json:"at"`
}

// opState leaves zero fields out of the checkpoint: most operators have
// some, and the checkpoint holds every operator.
type opState struct {
	Counters     wire.QueueCounters `json:"counters,omitzero"`
	Connected    bool               `json:"connected,omitzero"`
	OnlineSince  time.Time          `json:"onlineSince,omitzero"`
	OfflineSince time.Time          `json:"offlineSince,omitzero"`
}

// liveCall is a call not over yet, and what has been counted of it.
type liveCall struct {
	Rec         call.Record     `json:"rec"`
	LastAt      time.Time       `json:"lastAt"`
	Rung        map[string]bool `json:"rung"`   // operators counted as rung (or dialling)
	Missed      map[string]bool `json:"missed"` // operators counted as having missed it
	Answerer    string          `json:"answerer,omitempty"`
	TalkFrom    time.Time       `json:"talkFrom"` // since when Answerer talks
	Transferred bool            `json:"transferred,omitempty"`
}

// boardSub is one subscriber: a supervisor's websocket session or an SSE
// viewer of the wallboard.
type boardSub struct {
	op    string
	peer  hub.Peer    // websocket
	sse   chan []byte // SSE frames
	gone  chan struct{}
	after func() bool // stops the session watch
}

// Board is the queue board of one relay node.
type Board struct {
	log          *slog.Logger
	loc          *time.Location
	serviceLevel time.Duration
	now          func() time.Time
	store        Store
	auth         func(*http.Request) (operators.Operator, error)
	longBreak    time.Duration
	page         wallboardPage

	kick     chan struct{}
	ready    chan struct{}
	readyOne sync.Once

	node      string
	leaseTTL  time.Duration
	lease     leaseState   // Run's
	leading   atomic.Bool  // holds the checkpoint lease
	saved     atomic.Int64 // checkpoints written
	savedSize int          // Run's: the last checkpoint's size, encoded
	abandoned atomic.Bool  // Run ends without a last checkpoint nor releasing the lease

	mu      sync.Mutex
	st      boardState
	changed bool // since the last checkpoint
	info    map[string]operators.Operator
	online  map[string]time.Time // operators online on the cluster, since when (SetPresence)
	status  map[string]wire.StatusInfo
	waiting map[string]wire.WaitingCall // by call id
	opCalls map[string]map[string]bool  // operator id → keys of their live calls
	target  uint64                      // the last record's sequence at start: ready once applied
	since   time.Time                   // with no checkpoint, the records replayed are those stored since

	// What subscribers have been sent: the snapshot is made of these.
	version    uint64
	pubOps     map[string]wire.QueueOperator
	pubWaiting map[string]wire.WaitingCall
	pubTotals  wire.QueueCounters
	pubDay     string
	// What changed since the last flush.
	dirtyOps     map[string]bool
	dirtyWaiting map[string]bool
	samples      []wire.QueueSample

	subs    map[*boardSub]struct{}
	wsSubs  map[hub.Peer]*boardSub
	viewers int            // /board/events streams
	byToken map[string]int // of them, by operator (token)
	closed  bool
}

// Store is what the board keeps in, and reads from, the relay's store.
type Store interface {
	CallsInfo(ctx context.Context) (last uint64, lastStored, created time.Time, err error)
	TailCalls(ctx context.Context, from uint64, since time.Time, fn func(seq uint64, stored time.Time, data []byte)) error
	LoadBoardCheckpoint(ctx context.Context) ([]byte, error)
	SaveBoardCheckpoint(ctx context.Context, data []byte) error
	// The checkpoint lease: TakeLease when nobody holds it, RenewLease
	// (with the revision last returned) to keep it, ReleaseLease to give
	// it up. Take and Renew return revision 0 when another holds it.
	TakeLease(ctx context.Context, name, holder string) (rev uint64, err error)
	RenewLease(ctx context.Context, name, holder string, rev uint64) (uint64, error)
	ReleaseLease(ctx context.Context, name string, rev uint64) error
	Statuses(ctx context.Context) (map[string][]byte, error)
	WatchStatuses(ctx context.Context, fn func(opID string, data []byte)) error
}

// Config configures a Board.
type Config struct {
	Log          *slog.Logger
	Store        Store
	Location     *time.Location   // where "today" is
	ServiceLevel time.Duration    // a call answered within it counts as in time
	LongBreak    time.Duration    // the wallboard marks breaks longer than this
	Now          func() time.Time // the clock (time.Now when nil)
	// Auth identifies a wallboard viewer from the request (the bearer
	// check); the board requires a supervisor.
	Auth func(*http.Request) (operators.Operator, error)
	// Node names this relay node as the checkpoint lease's holder.
	Node string
	// LeaseTTL is how long the checkpoint lease lasts unless renewed (the
	// store's; defaultLeaseTTL when 0); it is renewed every third of it.
	LeaseTTL time.Duration
}

// New makes a board; Open loads it, Run keeps it up to date.
func New(cfg Config) *Board {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = defaultLeaseTTL
	}
	return &Board{
		log: cfg.Log.With("component", "queue"), store: cfg.Store, loc: cfg.Location, serviceLevel: cfg.ServiceLevel, now: cfg.Now,
		auth: cfg.Auth, longBreak: cfg.LongBreak, node: cfg.Node, leaseTTL: cfg.LeaseTTL,
		kick: make(chan struct{}, 1), ready: make(chan struct{}),
		st:   freshState(),
		info: map[string]operators.Operator{}, status: map[string]wire.StatusInfo{}, online: map[string]time.Time{},
		waiting: map[string]wire.WaitingCall{}, opCalls: map[string]map[string]bool{},
		pubOps: map[string]wire.QueueOperator{}, pubWaiting: map[string]wire.WaitingCall{},
		dirtyOps: map[string]bool{}, dirtyWaiting: map[string]bool{},
		subs: map[*boardSub]struct{}{}, wsSubs: map[hub.Peer]*boardSub{}, byToken: map[string]int{},
	}
}

func freshState() boardState {
	return boardState{Schema: boardSchema, Ops: map[string]*opState{}, Calls: map[string]*liveCall{}, Ended: map[string]endedCall{}}
}

// Open loads the checkpoint (unless it belongs to another incarnation of
// the records' stream) and the operators and their statuses.
func (b *Board) Open(ctx context.Context, ops []operators.Operator) error {
	last, lastStored, created, err := b.store.CallsInfo(ctx)
	if err != nil {
		return fmt.Errorf("queue: %w", err)
	}
	created = created.UTC()
	st := freshState()
	data, err := b.store.LoadBoardCheckpoint(ctx)
	switch {
	case err != nil:
		return fmt.Errorf("queue: %w", err)
	case data != nil:
		var cp boardState
		switch jerr := json.Unmarshal(data, &cp); {
		case jerr != nil || cp.Schema != boardSchema:
			b.log.Warn("queue checkpoint unreadable or of an earlier version; rebuilding the board from the calls' records", "err", jerr)
		case !cp.Stream.Equal(created):
			b.log.Info("the calls' records were recreated; rebuilding the board from them")
		default:
			st = cp
			if st.Ops == nil {
				st.Ops = map[string]*opState{}
			}
			if st.Calls == nil {
				st.Calls = map[string]*liveCall{}
			}
			if st.Ended == nil {
				st.Ended = map[string]endedCall{}
			}
		}
	}
	st.Stream = created
	for _, o := range st.Ops {
		if o.Connected { // nobody is connected to a relay that just started
			o.Connected, o.OfflineSince = false, st.Clock
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.st = st
	b.target = last
	if st.Applied == 0 {
		b.since = b.now().Add(-replayWindow)
		if lastStored.Before(b.since) {
			b.target = 0 // nothing to replay
		}
	}
	for _, op := range ops {
		b.putOperatorLocked(op)
	}
	for key, lc := range b.st.Calls {
		b.refreshCallLocked(key, lc)
	}
	if err := b.loadStatuses(ctx); err != nil {
		return err
	}
	if b.st.Applied >= b.target {
		b.readyOne.Do(func() { close(b.ready) })
	}
	b.log.Info("queue board loaded", "from_seq", b.st.Applied, "records_last", last, "calls_live", len(b.st.Calls))
	return nil
}

func (b *Board) loadStatuses(ctx context.Context) error {
	all, err := b.store.Statuses(ctx)
	if err != nil {
		return fmt.Errorf("queue: %w", err)
	}
	for id, data := range all {
		var si wire.StatusInfo
		if json.Unmarshal(data, &si) == nil {
			b.status[id] = si
		}
	}
	return nil
}

// Ready is closed once the board has caught up with the records as they
// were when the relay started.
func (b *Board) Ready() <-chan struct{} { return b.ready }

// Run follows the records, the statuses and the clock until ctx ends, then
// writes a last checkpoint and ends every subscription.
func (b *Board) Run(ctx context.Context) error {
	b.mu.Lock()
	from, since := uint64(0), b.since
	if b.st.Applied > 0 {
		from = b.st.Applied + 1
	}
	b.mu.Unlock()
	tctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 2)
	go func() { errc <- b.store.TailCalls(tctx, from, since, b.applyMsg) }()
	go func() { errc <- b.watchStatuses(tctx) }()

	tick := time.NewTicker(boardTick)
	defer tick.Stop()
	lastSave := time.Now()
	// Only the holder of the checkpoint lease writes checkpoints: every
	// node folds the same records, one writes what it folded.
	leaseTick := time.NewTicker(b.leaseTTL / 3)
	defer leaseTick.Stop()
	b.lead(ctx)
	var runErr error
	running := 2
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case err := <-errc:
			running--
			if ctx.Err() != nil {
				break loop // stopping: an input ended because of it
			}
			if err != nil || running == 0 {
				runErr = err
				if err == nil && ctx.Err() == nil {
					runErr = errors.New("queue: the board's inputs ended")
				}
				break loop
			}
		case <-b.kick:
			b.mu.Lock()
			b.flushLocked()
			b.mu.Unlock()
		case <-tick.C:
			b.mu.Lock()
			b.advanceLocked(b.clockNow())
			b.pruneLocked()
			b.flushLocked()
			b.mu.Unlock()
			if b.lease.held && time.Since(lastSave) >= checkpointGap(b.savedSize) {
				lastSave = time.Now()
				b.checkpoint(ctx)
			}
		case <-leaseTick.C:
			if held := b.lease.held; b.lead(ctx) && !held {
				lastSave = time.Time{} // a new holder checkpoints at once
			}
		}
	}
	cancel()
	for ; running > 0; running-- {
		if err := <-errc; err != nil && runErr == nil && ctx.Err() == nil {
			runErr = err
		}
	}
	if b.lease.held && !b.abandoned.Load() {
		sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
		b.checkpoint(sctx)
		if err := b.store.ReleaseLease(sctx, checkpointLease, b.lease.rev); err != nil {
			b.log.Warn("checkpoint lease not released; it expires on its own", "err", err)
		}
		scancel()
	}
	b.leading.Store(false)
	b.CloseAll()
	return runErr
}

// checkpointLease is the name of the lease whose holder writes the
// checkpoints.
const checkpointLease = "board-checkpoint"

// leaseState is the checkpoint lease as this node holds it (Run's).
type leaseState struct {
	held bool
	rev  uint64 // its revision when last taken or renewed; 0 when lost
}

// lead takes the checkpoint lease, or renews it when held, and reports
// whether this node holds it now.
func (b *Board) lead(ctx context.Context) bool {
	lctx, cancel := context.WithTimeout(ctx, b.leaseTTL/3)
	defer cancel()
	was := b.lease.held
	var rev uint64
	var err error
	if b.lease.rev != 0 {
		// Held, or held until an error said nothing of it: renew.
		rev, err = b.store.RenewLease(lctx, checkpointLease, b.node, b.lease.rev)
	}
	if err == nil && rev == 0 {
		rev, err = b.store.TakeLease(lctx, checkpointLease, b.node)
	}
	switch {
	case err == nil && rev != 0:
		b.lease = leaseState{held: true, rev: rev}
		if !was {
			b.log.Info("this node writes the queue board's checkpoints now", "node", b.node)
		}
	case err == nil:
		if was {
			b.log.Warn("checkpoint lease lost; another node writes the checkpoints", "node", b.node)
		}
		b.lease = leaseState{}
	default:
		// Unknown (NATS unreachable): the lease may lapse meanwhile, so
		// this node stops writing until it has renewed it (or taken it
		// again).
		if was && ctx.Err() == nil {
			b.log.Warn("checkpoint lease not renewed", "err", err)
		}
		b.lease.held = false
	}
	b.leading.Store(b.lease.held)
	return b.lease.held
}

// clone copies the state deeply enough to encode it while the fold goes on:
// call records are replaced, never changed in place.
func (st *boardState) clone() boardState {
	c := *st
	c.History = slices.Clone(st.History)
	c.Ops = make(map[string]*opState, len(st.Ops))
	for id, o := range st.Ops {
		oc := *o
		c.Ops[id] = &oc
	}
	c.Calls = make(map[string]*liveCall, len(st.Calls))
	for k, lc := range st.Calls {
		l := *lc
		l.Rung, l.Missed = maps.Clone(lc.Rung), maps.Clone(lc.Missed)
		c.Calls[k] = &l
	}
	c.Ended = maps.Clone(st.Ended)
	return c
}

// checkpointGap is the time between checkpoints after one of size bytes.
func checkpointGap(size int) time.Duration {
	return min(max(checkpointEvery, time.Duration(size)*time.Second/checkpointRate), checkpointMax)
}

// checkpoint stores the state if it changed since the last one.
func (b *Board) checkpoint(ctx context.Context) {
	b.mu.Lock()
	if !b.changed {
		b.mu.Unlock()
		return
	}
	st := b.st.clone() // encoded outside the lock: deltas do not wait for it
	b.changed = false
	b.mu.Unlock()
	data, err := json.Marshal(&st)
	if err != nil {
		b.log.Error("queue checkpoint not encoded", "err", err)
		return
	}
	b.savedSize = len(data)
	if err := b.store.SaveBoardCheckpoint(ctx, data); err == nil {
		b.saved.Add(1)
	} else {
		b.log.Warn("queue checkpoint not stored; the next one will be", "err", err)
		b.mu.Lock()
		b.changed = true
		b.mu.Unlock()
	}
}

func (b *Board) watchStatuses(ctx context.Context) error {
	return b.store.WatchStatuses(ctx, func(opID string, data []byte) {
		var si wire.StatusInfo
		if json.Unmarshal(data, &si) != nil {
			return
		}
		b.mu.Lock()
		b.status[opID] = si
		b.markOpLocked(opID)
		b.mu.Unlock()
		b.signal()
	})
}

func (b *Board) signal() {
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

// applyMsg folds one version of a call's record.
func (b *Board) applyMsg(seq uint64, stored time.Time, data []byte) {
	c, err := decodeChange(data, stored)
	b.mu.Lock()
	if seq > b.st.Applied {
		if err != nil {
			b.log.Warn("call record skipped: unreadable", "seq", seq, "err", err)
			b.st.Applied = seq
		} else {
			b.applyChangeLocked(seq, c)
		}
	}
	if b.st.Applied >= b.target {
		b.readyOne.Do(func() { close(b.ready) })
	}
	b.mu.Unlock()
	b.signal()
}

// PutOperator adds or updates an operator from the registry.
func (b *Board) PutOperator(op operators.Operator) {
	b.mu.Lock()
	b.putOperatorLocked(op)
	b.mu.Unlock()
	b.signal()
}

func (b *Board) putOperatorLocked(op operators.Operator) {
	b.info[op.ID] = op
	if !op.Role.Agent() {
		// A wallboard is a screen, not someone on the board.
		delete(b.st.Ops, op.ID)
	} else if !op.Revoked() && b.st.Ops[op.ID] == nil {
		// Online already if presence came first (an operator added on
		// another node, whose agent connected there at once).
		o := &opState{}
		if since, on := b.online[op.ID]; on {
			o.Connected, o.OnlineSince = true, since
		}
		b.st.Ops[op.ID] = o
	}
	b.markOpLocked(op.ID)
	if op.Revoked() {
		for sub := range b.subs {
			if sub.op == op.ID {
				b.dropLocked(sub)
			}
		}
	}
}

// SetPresence says whether an operator has an agent connected to any node
// of the cluster (package presence tells), and since when: online, when
// their first session began; offline, when the store learnt they were
// gone. Every node hears the same, so every board says the same.
func (b *Board) SetPresence(opID string, on bool, at time.Time) {
	at = at.UTC()
	b.mu.Lock()
	if on {
		b.online[opID] = at
	} else {
		delete(b.online, opID)
	}
	o := b.st.Ops[opID]
	if o != nil && o.Connected != on {
		o.Connected = on
		if on {
			if o.OnlineSince.IsZero() || o.OfflineSince.IsZero() || at.Sub(o.OfflineSince) > presenceGrace {
				o.OnlineSince = at
			}
		} else {
			o.OfflineSince = at
		}
		b.changed = true
		b.markOpLocked(opID)
	}
	b.mu.Unlock()
	b.signal()
}

func (b *Board) markOpLocked(id string) { b.dirtyOps[id] = true }

// Available reports whether the operator is signed in (an agent of theirs
// is connected to any node of the cluster) and free: what retailCRM asks of
// a responsible manager before it routes a call to them.
func (b *Board) Available(opID string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if o := b.st.Ops[opID]; o == nil || !o.Connected {
		return false
	}
	st, ok := b.status[opID]
	return !ok || st.Status == wire.StatusFree
}

func (b *Board) op(id string) *opState {
	o := b.st.Ops[id]
	if o == nil {
		o = &opState{}
		b.st.Ops[id] = o
	}
	return o
}

// countAnswer counts an incoming call answered by id after waiting wait.
func (b *Board) countAnswer(c *wire.QueueCounters, wait time.Duration) {
	c.Answered++
	b.countWait(c, wait)
	if wait <= b.serviceLevel {
		c.AnsweredInTime++
	}
}

func (b *Board) countWait(c *wire.QueueCounters, wait time.Duration) {
	s := int64(max(0, wait.Round(time.Second)/time.Second))
	c.WaitTotalSeconds += s
	c.WaitMaxSeconds = max(c.WaitMaxSeconds, s)
}

func countTalk(c *wire.QueueCounters, talk time.Duration) {
	c.TalkTotalSeconds += int64(max(0, talk.Round(time.Second)/time.Second))
	c.TalkedCalls++
}

// applyChangeLocked folds one call change. A change made on a day the
// board has closed already (it reached this node after its clock passed
// midnight) changes the call but no counter: a node whose clock had not
// passed midnight yet counts it in the old day, which it then closes, so
// both end up with the same new day. Which day a change counts in depends
// on the change alone, not on when a node folds it.
func (b *Board) applyChangeLocked(seq uint64, c queueChange) {
	if b.st.Day == "" || c.At.In(b.loc).Format(time.DateOnly) >= b.st.Day {
		b.foldLocked(seq, c)
		return
	}
	totals := b.st.Totals
	counters := make(map[string]wire.QueueCounters, len(b.st.Ops))
	for id, o := range b.st.Ops {
		counters[id] = o.Counters
	}
	b.foldLocked(seq, c)
	b.st.Totals = totals
	for id, o := range b.st.Ops {
		o.Counters = counters[id]
	}
}

// foldLocked folds one call change: what the call was (the live entry) and
// what it is now tell what happened.
func (b *Board) foldLocked(seq uint64, c queueChange) {
	b.st.Applied = seq
	b.changed = true
	at := c.At.UTC()
	b.advanceLocked(at)
	rec := c.Call
	if rec.Legs == nil {
		rec.Legs = map[string]*call.Leg{}
	}
	key := rec.Key
	lc := b.st.Calls[key]
	if lc != nil && (lc.Rec.ID != rec.ID || !lc.Rec.StartedAt.Equal(rec.StartedAt)) {
		b.dropCallLocked(key) // the key holds a new call; the old one ended unseen
		lc = nil
	}
	if lc != nil && rec.Version <= lc.Rec.Version {
		return // seen already (a replay, or overtaken by a later change)
	}
	if lc == nil {
		if e, ok := b.st.Ended[key]; ok && e.ID == rec.ID && rec.Version <= e.Version {
			return // a late change of a call that is over
		}
		if rec.State.Final() && (rec.EndedAt == nil || !rec.EndedAt.Equal(c.At)) {
			return // the replay of a call that is over: counted when it ended
		}
		lc = &liveCall{Rung: map[string]bool{}, Missed: map[string]bool{}}
		b.st.Calls[key] = lc
		if rec.Direction == wire.DirectionOut {
			b.st.Totals.Outgoing++
		} else {
			b.st.Totals.Incoming++
		}
	}
	lc.Rec, lc.LastAt = rec, at
	in := rec.Direction != wire.DirectionOut
	for _, id := range rec.Operators() {
		if lc.Rung[id] {
			continue
		}
		lc.Rung[id] = true
		if in {
			b.op(id).Counters.Incoming++
		} else {
			b.op(id).Counters.Outgoing++
		}
		b.markOpLocked(id)
	}
	// Answered, by whom, and transfers.
	if rec.AnsweredBy != "" && rec.AnsweredAt != nil {
		answered := rec.AnsweredAt.UTC()
		wait := answered.Sub(rec.StartedAt)
		switch {
		case lc.Answerer == "":
			lc.Answerer, lc.TalkFrom = rec.AnsweredBy, answered
			if in {
				b.countAnswer(&b.st.Totals, wait)
				if rec.AnsweredBy != call.AnsweredOutside {
					b.countAnswer(&b.op(rec.AnsweredBy).Counters, wait)
				}
			}
		case lc.Answerer == rec.AnsweredBy:
		case lc.Answerer == call.AnsweredOutside:
			// Who answered became known later (a hangup naming them):
			// theirs from the first answer on.
			lc.Answerer = rec.AnsweredBy
			if in {
				b.countAnswer(&b.op(rec.AnsweredBy).Counters, wait)
			}
		default:
			// Another operator answers a call in progress: a transfer. The
			// first one's talk ends now; the new one took an answered call
			// that waited no longer in the queue.
			if in && lc.Answerer != call.AnsweredOutside {
				countTalk(&b.op(lc.Answerer).Counters, at.Sub(lc.TalkFrom))
			}
			b.markOpLocked(lc.Answerer)
			lc.Answerer, lc.TalkFrom, lc.Transferred = rec.AnsweredBy, at, true
			if in && rec.AnsweredBy != call.AnsweredOutside {
				b.countAnswer(&b.op(rec.AnsweredBy).Counters, 0)
			}
		}
		b.markOpLocked(lc.Answerer)
	}
	// A leg that stopped ringing while the call went on was missed there.
	if in && rec.State == wire.CallRinging {
		for id, l := range rec.Legs {
			if l.Stopped && !lc.Missed[id] {
				lc.Missed[id] = true
				o := b.op(id)
				o.Counters.Missed++
				b.countWait(&o.Counters, at.Sub(rec.StartedAt))
				b.markOpLocked(id)
			}
		}
	}
	if !rec.State.Final() {
		b.refreshCallLocked(key, lc)
		return
	}
	ended := at
	if rec.EndedAt != nil {
		ended = rec.EndedAt.UTC()
	}
	switch {
	case !in:
	case rec.State == wire.CallEnded && lc.Answerer != "":
		// The talk time is known when the PBX measured it or the answer
		// came before the end; a PBX that says who answered only at the
		// hangup leaves it unknown.
		if rec.TalkTime > 0 || (rec.AnsweredAt != nil && ended.After(rec.AnsweredAt.UTC())) {
			total := ended.Sub(rec.AnsweredAt.UTC())
			if rec.TalkTime > 0 {
				total = rec.TalkTime
			}
			countTalk(&b.st.Totals, total)
			if lc.Answerer != call.AnsweredOutside {
				mine := ended.Sub(lc.TalkFrom)
				if !lc.Transferred && rec.TalkTime > 0 {
					mine = rec.TalkTime
				}
				countTalk(&b.op(lc.Answerer).Counters, mine)
			}
		}
	case rec.State == wire.CallMissed:
		wait := ended.Sub(rec.StartedAt)
		if rec.WaitTime > 0 {
			wait = rec.WaitTime
		}
		b.st.Totals.Missed++
		b.countWait(&b.st.Totals, wait)
		for _, id := range rec.Operators() {
			if !lc.Missed[id] {
				lc.Missed[id] = true
				o := b.op(id)
				o.Counters.Missed++
				b.countWait(&o.Counters, wait)
				b.markOpLocked(id)
			}
		}
	}
	b.st.Ended[key] = endedCall{ID: rec.ID, Version: rec.Version, At: at}
	b.dropCallLocked(key)
}

// refreshCallLocked updates the waiting list and the operators' current
// calls from a live call.
func (b *Board) refreshCallLocked(key string, lc *liveCall) {
	rec := &lc.Rec
	if rec.Direction != wire.DirectionOut && rec.State == wire.CallRinging {
		w := wire.WaitingCall{ID: rec.ID, Phone: rec.Phone, PhoneDisplay: rec.PhoneDisplay, Line: rec.Line,
			LineDisplay: rec.LineDisplay, Site: rec.Site, Since: rec.StartedAt.UTC()}
		for _, id := range rec.Operators() {
			if l := rec.Legs[id]; !l.Stopped {
				w.Ringing = append(w.Ringing, l.Code)
			}
		}
		slices.Sort(w.Ringing)
		b.waiting[rec.ID] = w
		b.dirtyWaiting[rec.ID] = true
		b.st.MinuteMax = max(b.st.MinuteMax, len(b.waiting))
	} else if _, ok := b.waiting[rec.ID]; ok {
		delete(b.waiting, rec.ID)
		b.dirtyWaiting[rec.ID] = true
	}
	for id := range rec.Legs {
		b.linkLocked(id, key)
	}
	if lc.Answerer != "" && lc.Answerer != call.AnsweredOutside {
		b.linkLocked(lc.Answerer, key)
	}
}

func (b *Board) linkLocked(opID, key string) {
	m := b.opCalls[opID]
	if m == nil {
		m = map[string]bool{}
		b.opCalls[opID] = m
	}
	m[key] = true
	b.markOpLocked(opID)
}

// dropCallLocked forgets a call that is over.
func (b *Board) dropCallLocked(key string) {
	lc := b.st.Calls[key]
	if lc == nil {
		return
	}
	delete(b.st.Calls, key)
	if _, ok := b.waiting[lc.Rec.ID]; ok {
		delete(b.waiting, lc.Rec.ID)
		b.dirtyWaiting[lc.Rec.ID] = true
	}
	for id, m := range b.opCalls {
		if m[key] {
			delete(m, key)
			if len(m) == 0 {
				delete(b.opCalls, id)
			}
			b.markOpLocked(id)
		}
	}
}

// pruneLocked drops calls the PBX stopped telling about (a lost hangup),
// uncounted, and forgets calls over for longer than endedMemory.
func (b *Board) pruneLocked() {
	for key, e := range b.st.Ended {
		if b.st.Clock.Sub(e.At) > endedMemory {
			delete(b.st.Ended, key)
		}
	}
	for key, lc := range b.st.Calls {
		limit := staleTalking
		if lc.Rec.State == wire.CallRinging && lc.Answerer == "" {
			limit = staleRinging
		}
		if b.st.Clock.Sub(lc.LastAt) > limit {
			b.log.Info("queue: call dropped from the board after no news", "call", lc.Rec.ID, "state", lc.Rec.State, "since", lc.LastAt)
			b.dropCallLocked(key)
			b.changed = true
		}
	}
}

// currentCall is the call an operator is on: talking, else dialling out.
func (b *Board) currentCall(opID string) *wire.QueueCall {
	var best *wire.QueueCall
	for key := range b.opCalls[opID] {
		lc := b.st.Calls[key]
		if lc == nil {
			continue
		}
		rec := &lc.Rec
		qc := wire.QueueCall{ID: rec.ID, Direction: rec.Direction, Phone: rec.Phone, PhoneDisplay: rec.PhoneDisplay}
		switch {
		case lc.Answerer == opID && rec.State == wire.CallTalking:
			qc.State, qc.Since = wire.CallTalking, lc.TalkFrom
		case rec.Direction == wire.DirectionOut && rec.State == wire.CallRinging && rec.Legs[opID] != nil && !rec.Legs[opID].Stopped:
			qc.State, qc.Since = wire.CallRinging, rec.StartedAt.UTC()
		default:
			continue
		}
		if best == nil || (qc.State == wire.CallTalking && best.State != wire.CallTalking) ||
			(qc.State == best.State && (qc.Since.After(best.Since) || (qc.Since.Equal(best.Since) && qc.ID < best.ID))) {
			c := qc
			best = &c
		}
	}
	return best
}

// clockNow is where the clock's ticks bring the board: the node's clock,
// less lateness. Changes bring it to their own time (applyChangeLocked).
// The clock decides when a minute's sample is taken and when the day
// ends; with every node trailing by lateness, a change folded within
// lateness of its time (the usual: milliseconds) lands in the same minute
// and day on every node, whichever node's clock is ahead.
func (b *Board) clockNow() time.Time { return b.now().Add(-lateness) }

// advanceLocked moves the board's clock to t: it closes the minutes passed
// (one history sample each) and starts a new day at local midnight.
func (b *Board) advanceLocked(t time.Time) {
	t = t.UTC()
	if !t.After(b.st.Clock) {
		return
	}
	// The clock alone does not make a checkpoint due: one that is a little
	// behind is brought forward on the restart's first tick. A new minute's
	// sample does.
	b.st.Clock = t
	m := t.Truncate(time.Minute)
	if b.st.Minute.IsZero() {
		b.st.Minute, b.st.MinuteMax = m, len(b.waiting)
		b.rolloverLocked(m)
		b.changed = true
		return
	}
	for b.st.Minute.Before(m) {
		b.changed = true
		if m.Sub(b.st.Minute) > wire.MaxQueueHistory*time.Minute {
			// A long silence (the relay was down): its minutes are unknown.
			b.st.Minute, b.st.MinuteMax = m.Add(-wire.MaxQueueHistory*time.Minute), len(b.waiting)
			b.rolloverLocked(b.st.Minute)
			continue
		}
		s := wire.QueueSample{At: b.st.Minute, Waiting: b.st.MinuteMax, ServiceLevel: b.st.Totals.ServiceLevel()}
		b.st.History = append(b.st.History, s)
		if n := len(b.st.History); n > wire.MaxQueueHistory {
			b.st.History = slices.Delete(b.st.History, 0, n-wire.MaxQueueHistory)
		}
		b.samples = append(b.samples, s)
		b.st.Minute, b.st.MinuteMax = b.st.Minute.Add(time.Minute), len(b.waiting)
		b.rolloverLocked(b.st.Minute)
	}
}

// rolloverLocked starts a new day's counters when t is on a later local day.
func (b *Board) rolloverLocked(t time.Time) {
	day := t.In(b.loc).Format(time.DateOnly)
	if day == b.st.Day {
		return
	}
	if b.st.Day != "" && day < b.st.Day {
		return
	}
	b.st.Day = day
	b.st.Totals = wire.QueueCounters{}
	for id, o := range b.st.Ops {
		o.Counters = wire.QueueCounters{}
		b.markOpLocked(id)
	}
}

// opView is an operator's board entry; false when they are not on the board.
func (b *Board) opView(id string) (wire.QueueOperator, bool) {
	info, ok := b.info[id]
	if !ok || info.Revoked() || !info.Role.Agent() {
		return wire.QueueOperator{}, false
	}
	o := b.op(id)
	v := wire.QueueOperator{ID: id, Name: info.Name, Code: info.Code, Role: info.Role, Connected: o.Connected, Counters: o.Counters}
	if o.Connected {
		st, ok := b.status[id]
		if !ok {
			st = wire.StatusInfo{Status: wire.StatusFree, Since: info.CreatedAt}
		}
		v.Status, v.Since = st.Status, st.Since.UTC()
		if o.OnlineSince.After(v.Since) {
			v.Since = o.OnlineSince
		}
		v.Call = b.currentCall(id)
	} else {
		v.Status, v.Since = wire.StatusOffline, o.OfflineSince
		if v.Since.IsZero() {
			v.Since = info.CreatedAt.UTC()
		}
		v.Call = b.currentCall(id) // a call goes on even if the app is closed
	}
	return v, true
}

func opEqual(a, b wire.QueueOperator) bool {
	if (a.Call == nil) != (b.Call == nil) || (a.Call != nil && *a.Call != *b.Call) {
		return false
	}
	a.Call, b.Call = nil, nil
	return a == b
}

func waitingEqual(a, b wire.WaitingCall) bool {
	return slices.Equal(a.Ringing, b.Ringing) && a.ID == b.ID && a.Phone == b.Phone && a.PhoneDisplay == b.PhoneDisplay &&
		a.Line == b.Line && a.LineDisplay == b.LineDisplay && a.Site == b.Site && a.Since.Equal(b.Since)
}

// collectLocked turns what is dirty into deltas (several when more than one
// minute closed: a delta carries one sample), bringing pub* up to date.
func (b *Board) collectLocked() []wire.QueueDelta {
	now := b.now().UTC()
	d := wire.QueueDelta{At: now}
	for id := range b.dirtyOps {
		v, ok := b.opView(id)
		pub, had := b.pubOps[id]
		switch {
		case !ok && had:
			d.Removed = append(d.Removed, id)
			delete(b.pubOps, id)
		case ok && (!had || !opEqual(pub, v)):
			d.Operators = append(d.Operators, v)
			b.pubOps[id] = v
		}
	}
	b.dirtyOps = emptied(b.dirtyOps)
	for id := range b.dirtyWaiting {
		w, ok := b.waiting[id]
		pub, had := b.pubWaiting[id]
		switch {
		case !ok && had:
			d.Gone = append(d.Gone, id)
			delete(b.pubWaiting, id)
		case ok && (!had || !waitingEqual(pub, w)):
			d.Waiting = append(d.Waiting, w)
			b.pubWaiting[id] = w
		}
	}
	b.dirtyWaiting = emptied(b.dirtyWaiting)
	if b.st.Totals != b.pubTotals {
		t := b.st.Totals
		d.Totals = &t
		b.pubTotals = t
	}
	if b.st.Day != b.pubDay {
		d.Day = b.st.Day
		b.pubDay = b.st.Day
	}
	slices.SortFunc(d.Operators, func(x, y wire.QueueOperator) int { return cmp.Or(cmp.Compare(x.Code, y.Code), cmp.Compare(x.ID, y.ID)) })
	slices.Sort(d.Removed)
	slices.SortFunc(d.Waiting, waitingOrder)
	slices.Sort(d.Gone)
	samples := b.samples
	b.samples = nil
	empty := len(d.Operators) == 0 && len(d.Removed) == 0 && len(d.Waiting) == 0 && len(d.Gone) == 0 && d.Totals == nil && d.Day == ""
	var out []wire.QueueDelta
	if !empty || len(samples) > 0 {
		if len(samples) > 0 {
			d.Sample = &samples[0]
			samples = samples[1:]
		}
		b.version++
		d.Version = b.version
		out = append(out, d)
	}
	for i := range samples {
		b.version++
		out = append(out, wire.QueueDelta{Version: b.version, At: now, Sample: &samples[i]})
	}
	return out
}

// emptied empties a dirty set for the next flush. A map keeps the room it
// grew to, and ranging over it costs that room even when it is empty: a set
// that once held every operator (at start, at a new day) would make every
// later flush scan thousands of empty slots, so a large one is replaced.
func emptied(m map[string]bool) map[string]bool {
	if len(m) > 64 {
		return map[string]bool{}
	}
	clear(m)
	return m
}

func waitingOrder(x, y wire.WaitingCall) int {
	return cmp.Or(x.Since.Compare(y.Since), cmp.Compare(x.ID, y.ID))
}

// flushLocked sends what changed to every subscriber.
func (b *Board) flushLocked() {
	deltas := b.collectLocked()
	if len(b.subs) == 0 {
		return
	}
	for _, d := range deltas {
		data, err := json.Marshal(d)
		if err != nil {
			b.log.Error("queue delta not encoded", "err", err)
			continue
		}
		var wsFrame, sseFrame []byte
		for sub := range b.subs {
			if sub.peer != nil {
				if wsFrame == nil {
					wsFrame = envelope(wire.TypeQueue, "", data)
				}
				if !sub.peer.Send(wsFrame) {
					b.dropLocked(sub)
				}
				continue
			}
			if sseFrame == nil {
				sseFrame = sseEvent("delta", data)
			}
			select {
			case sub.sse <- sseFrame:
			default:
				b.log.Info("queue: a wallboard viewer fell behind; its stream ends", "operator", sub.op)
				b.dropLocked(sub)
			}
		}
	}
}

// envelope builds a frame around JSON data without re-encoding it.
func envelope(typ, id string, data []byte) []byte {
	b := make([]byte, 0, len(data)+64)
	b = append(b, `{"v":`...)
	b = strconv.AppendInt(b, wire.ProtocolVersion, 10)
	b = append(b, `,"type":`...)
	b = strconv.AppendQuote(b, typ)
	if id != "" {
		b = append(b, `,"id":`...)
		b = strconv.AppendQuote(b, id)
	}
	b = append(b, `,"data":`...)
	b = append(b, data...)
	return append(b, '}')
}

func sseEvent(name string, data []byte) []byte {
	b := make([]byte, 0, len(data)+32)
	b = append(b, "event: "...)
	b = append(b, name...)
	b = append(b, "\ndata: "...)
	b = append(b, data...)
	return append(b, "\n\n"...)
}

// snapshotLocked is the board as subscribers were last sent it. Callers
// flush first, so it is the board now.
func (b *Board) snapshotLocked() wire.QueueSnapshot {
	s := wire.QueueSnapshot{
		Version: b.version, At: b.now().UTC(), Day: b.pubDay, TimeZone: b.loc.String(),
		ServiceLevelSeconds: int(b.serviceLevel / time.Second), Totals: b.pubTotals,
		Operators: make([]wire.QueueOperator, 0, len(b.pubOps)), Waiting: make([]wire.WaitingCall, 0, len(b.pubWaiting)),
		History: slices.Clone(b.st.History),
	}
	if s.History == nil {
		s.History = []wire.QueueSample{}
	}
	for _, v := range b.pubOps {
		s.Operators = append(s.Operators, v)
	}
	slices.SortFunc(s.Operators, func(x, y wire.QueueOperator) int { return cmp.Or(cmp.Compare(x.Code, y.Code), cmp.Compare(x.ID, y.ID)) })
	for _, w := range b.pubWaiting {
		s.Waiting = append(s.Waiting, w)
	}
	slices.SortFunc(s.Waiting, waitingOrder)
	return s
}

// SubscribeWS subscribes a supervisor's session: the reply to the request
// (the snapshot) is queued on the session under the board's lock, so no
// delta can overtake it. A session subscribed already starts over.
func (b *Board) SubscribeWS(peer hub.Peer, id string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return errors.New("the relay is shutting down")
	}
	if old := b.wsSubs[peer]; old != nil {
		b.dropLocked(old)
	}
	b.advanceLocked(b.clockNow())
	b.flushLocked()
	data, err := json.Marshal(b.snapshotLocked())
	if err != nil {
		return err
	}
	sub := &boardSub{op: peer.Operator().ID, peer: peer}
	if !peer.Send(envelope(wire.TypeReply, id, data)) {
		return nil // the session is over (or was too slow)
	}
	b.subs[sub] = struct{}{}
	b.wsSubs[peer] = sub
	sub.after = context.AfterFunc(peer.Context(), func() {
		b.mu.Lock()
		b.dropLocked(sub)
		b.mu.Unlock()
	})
	return nil
}

// UnsubscribeWS ends a session's subscription (if any).
func (b *Board) UnsubscribeWS(peer hub.Peer) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if sub := b.wsSubs[peer]; sub != nil {
		b.dropLocked(sub)
	}
}

var (
	errTooManyViewers = errors.New("too many wallboard viewers")
	// errTooManyForToken: one token (one leaked URL) cannot take every
	// place.
	errTooManyForToken = fmt.Errorf("this token has %d boards open already", maxTokenViewers)
)

// subscribeSSE subscribes a wallboard viewer; its first frame is the
// snapshot. The viewer reads frames from sub.sse until sub.gone is closed,
// then calls unsubscribeSSE.
func (b *Board) subscribeSSE(opID string) (*boardSub, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, errors.New("the relay is shutting down")
	}
	if b.viewers >= maxBoardViewers {
		return nil, errTooManyViewers
	}
	if b.byToken[opID] >= maxTokenViewers {
		return nil, errTooManyForToken
	}
	b.advanceLocked(b.clockNow())
	b.flushLocked()
	data, err := json.Marshal(b.snapshotLocked())
	if err != nil {
		return nil, err
	}
	sub := &boardSub{op: opID, sse: make(chan []byte, viewerQueue), gone: make(chan struct{})}
	sub.sse <- sseEvent("snapshot", data)
	b.subs[sub] = struct{}{}
	b.viewers++
	b.byToken[opID]++
	return sub, nil
}

func (b *Board) unsubscribeSSE(sub *boardSub) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.subs[sub]; ok {
		b.dropLocked(sub)
	}
	b.viewers--
	if b.byToken[sub.op]--; b.byToken[sub.op] <= 0 {
		delete(b.byToken, sub.op)
	}
}

func (b *Board) dropLocked(sub *boardSub) {
	if _, ok := b.subs[sub]; !ok {
		return
	}
	delete(b.subs, sub)
	if sub.peer != nil {
		if b.wsSubs[sub.peer] == sub {
			delete(b.wsSubs, sub.peer)
		}
		if sub.after != nil {
			sub.after()
		}
	}
	if sub.gone != nil {
		close(sub.gone)
	}
}

// CloseAll ends every subscription (shutdown): SSE viewers' streams end.
func (b *Board) CloseAll() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	for sub := range b.subs {
		b.dropLocked(sub)
	}
}

// Leading reports whether this node holds the checkpoint lease (writes the
// checkpoints).
func (b *Board) Leading() bool { return b.leading.Load() }

// Checkpoints counts the checkpoints this node has written (tests,
// metrics).
func (b *Board) Checkpoints() int64 { return b.saved.Load() }
