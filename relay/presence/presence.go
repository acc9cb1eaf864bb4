// Package presence tells every relay node of a cluster which operators have
// an agent connected to any node.
//
// Each node keeps one record in the store's presence bucket: the operators
// with a session on it, and since when. The record is written when that set
// changes (changes within coalesce of each other make one write) and
// rewritten every TTL/3 as a heartbeat (see coalesce); the bucket's TTL
// (25 s by default, so that it is gone within 30 s) drops the record of a
// node that stopped writing — one killed, or cut off from NATS — and the
// expiry reaches every watcher as a delete. A node that stops cleanly
// removes its record at once. One record per node, not one key
// per operator: a heartbeat is one write whatever the number of operators.
//
// Every node watches the other nodes' records, and knows its own sessions
// first hand (they count at once, without waiting for the record's round
// trip), and counts an operator online while any node has them; when that
// changes it tells the board (Sink.SetPresence). The times it gives are in
// the records — when an operator's first session on a node began, when
// their last one there ended — so every node's board says the same; only a
// node gone without a word (its record expired, or deleted at a clean stop)
// is dated by the store, as every node sees it.
//
// The node id is random per start (Node): a restarted relay never confuses
// its record with the one its previous life left behind, which expires on
// its own.
//
// Goroutines: Run owns the writes (and the heartbeat) and starts the watch;
// Local is called from any goroutine (the hub's presence callbacks). The
// sets, this node's and the others', are under the tracker's lock, which is
// also held while the sink is told, so the sink hears changes in order.
package presence

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// A change of this node's operators waits coalesce for others before the
// record is written, or longer for a large record: writes after changes
// stay under writeRate bytes a second (10 000 operators connecting at once
// after a failover make a write every ~0.5 s, not 10 000 writes).
const (
	coalesce  = 100 * time.Millisecond
	writeRate = 1 << 20
)

// Store is where the records are kept.
type Store interface {
	PresenceTTL() time.Duration
	PutPresence(ctx context.Context, node string, data []byte) error
	DeletePresence(ctx context.Context, node string) error
	WatchPresence(ctx context.Context, fn func(node string, data []byte, at time.Time), synced func()) error
}

// Sink hears when an operator comes online on the cluster (online, since
// when their first session of the ones now open began) or goes offline
// (at when the store recorded it).
type Sink interface {
	SetPresence(opID string, online bool, at time.Time)
}

// record is a node's presence record.
type record struct {
	Ops map[string]time.Time `json:"ops"` // operator id → since when connected here
	// Gone are operators whose last session here ended lately, and when:
	// the others date their going by it.
	Gone map[string]time.Time `json:"gone,omitempty"`
}

// Tracker is the presence of one relay node, and what it sees of the others.
type Tracker struct {
	log   *slog.Logger
	store Store
	sink  Sink
	node  string
	now   func() time.Time

	mu    sync.Mutex
	local map[string]time.Time // operators with a session here, since when
	gone  map[string]time.Time // operators whose last session here ended lately, when
	dirty chan struct{}
	beat  time.Duration // heartbeat; a gone operator stays in the record this long

	// abandoned: Run ends without removing the record (a test's kill).
	abandoned atomic.Bool
	synced    chan struct{}
	syncOnce  sync.Once

	nodes  map[string]*record // other nodes' records
	online map[string]bool    // operators online on the cluster
}

// Config configures a Tracker.
type Config struct {
	Log   *slog.Logger
	Store Store
	Sink  Sink
	Node  string           // this node's id (Node() when empty)
	Now   func() time.Time // time.Now when nil
}

// Node is a fresh node id: the host's name (for people reading logs) and
// random hex.
func Node() string {
	host, _ := os.Hostname()
	host = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' {
			return r
		}
		return -1
	}, host)
	if len(host) > 32 {
		host = host[:32]
	}
	var b [6]byte
	rand.Read(b[:])
	if host == "" {
		return hex.EncodeToString(b[:])
	}
	return host + "-" + hex.EncodeToString(b[:])
}

// New makes a tracker; Run starts it.
func New(cfg Config) *Tracker {
	if cfg.Node == "" {
		cfg.Node = Node()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Tracker{
		log: cfg.Log.With("component", "presence", "node", cfg.Node), store: cfg.Store, sink: cfg.Sink, node: cfg.Node, now: cfg.Now,
		local: map[string]time.Time{}, gone: map[string]time.Time{}, dirty: make(chan struct{}, 1), synced: make(chan struct{}),
		nodes: map[string]*record{}, online: map[string]bool{}, beat: max(cfg.Store.PresenceTTL()/3, 10*time.Millisecond),
	}
}

// Node is this node's id.
func (t *Tracker) Node() string { return t.node }

// Local records whether an operator has sessions on this node now: it is
// the hub's OnPresence, and sessions counts them (the hub's Connected).
// The count is read under the tracker's lock rather than when the hub
// calls, so that calls racing each other leave the last word to the truth.
func (t *Tracker) Local(opID string, sessions func() int) {
	t.mu.Lock()
	n := sessions()
	_, had := t.local[opID]
	now := t.now().UTC()
	switch {
	case n > 0 && !had:
		t.local[opID] = now
		delete(t.gone, opID)
	case n <= 0 && had:
		delete(t.local, opID)
		t.gone[opID] = now
	default:
		t.mu.Unlock()
		return
	}
	t.recountLocked(opID, now)
	t.mu.Unlock()
	select {
	case t.dirty <- struct{}{}:
	default:
	}
}

// Elsewhere appends to nodes the other nodes whose record holds the
// operator, and reports whether any node is known to hold them (this one
// included). An operator who connected to another node lately may not be
// in its record here yet.
func (t *Tracker) Elsewhere(opID string, nodes []string) ([]string, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for node, r := range t.nodes {
		if _, ok := r.Ops[opID]; ok {
			nodes = append(nodes, node)
		}
	}
	_, here := t.local[opID]
	return nodes, here || len(nodes) > 0
}

// Synced is closed once the records as they were when Run started have
// been seen.
func (t *Tracker) Synced() <-chan struct{} { return t.synced }

// Run writes this node's record (on change, and every TTL/3) and watches
// every node's until ctx ends; then it removes this node's record.
func (t *Tracker) Run(ctx context.Context) error {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	werr := make(chan error, 1)
	go func() {
		werr <- t.store.WatchPresence(wctx, t.apply, func() { t.syncOnce.Do(func() { close(t.synced) }) })
	}()

	beat := t.beat
	heartbeat := time.NewTicker(beat)
	defer heartbeat.Stop()
	var runErr error
	written := false
	size := 0 // of the last record written
	put := func() {
		if t.abandoned.Load() {
			return // a killed process writes nothing more
		}
		t.mu.Lock()
		for id, at := range t.gone {
			if t.now().Sub(at) > beat {
				delete(t.gone, id)
			}
		}
		data, err := json.Marshal(record{Ops: t.local, Gone: t.gone})
		t.mu.Unlock()
		if err != nil {
			t.log.Error("presence record not encoded", "err", err)
			return
		}
		wc, wcancel := context.WithTimeout(ctx, beat)
		defer wcancel()
		if err := t.store.PutPresence(wc, t.node, data); err != nil {
			if ctx.Err() == nil {
				t.log.Warn("presence record not written; the next heartbeat will", "err", err)
			}
			return
		}
		written, size = true, len(data)
	}
	put()
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case err := <-werr:
			werr = nil
			if err == nil && ctx.Err() == nil {
				err = errors.New("presence: the watch ended")
			}
			runErr = err
			break loop
		case <-t.dirty:
			select { // more changes within coalesce make one write
			case <-ctx.Done():
				break loop
			case <-time.After(max(coalesce, time.Duration(size)*time.Second/writeRate)):
			}
			put()
			heartbeat.Reset(beat)
		case <-heartbeat.C:
			put()
		}
	}
	cancel()
	if werr != nil {
		if err := <-werr; err != nil && runErr == nil && ctx.Err() == nil {
			runErr = err
		}
	}
	if written && !t.abandoned.Load() {
		dctx, dcancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
		defer dcancel()
		if err := t.store.DeletePresence(dctx, t.node); err != nil {
			t.log.Warn("presence record not removed; it expires on its own", "err", err)
		}
	}
	return runErr
}

// apply takes another node's record (nil data: gone) and tells the sink of
// every operator whose presence on the cluster changed. This node's own
// record is known first hand.
func (t *Tracker) apply(node string, data []byte, at time.Time) {
	if node == t.node {
		return
	}
	r := &record{}
	if data != nil {
		if err := json.Unmarshal(data, r); err != nil {
			t.log.Warn("presence record unreadable; taken as empty", "of", node, "err", err)
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	old := t.nodes[node]
	if len(r.Ops) == 0 {
		delete(t.nodes, node)
	} else {
		t.nodes[node] = r
	}
	if old != nil {
		for id := range old.Ops {
			if _, still := r.Ops[id]; !still {
				when := at
				if g, ok := r.Gone[id]; ok {
					when = g
				}
				t.recountLocked(id, when)
			}
		}
	}
	for id := range r.Ops {
		t.recountLocked(id, at)
	}
}

// recountLocked tells the sink if the operator's presence on the cluster
// changed: online since their earliest session on any node, offline at.
func (t *Tracker) recountLocked(opID string, at time.Time) {
	since, on := t.local[opID]
	for _, r := range t.nodes {
		if s, ok := r.Ops[opID]; ok && (!on || s.Before(since)) {
			since, on = s, true
		}
	}
	if on == t.online[opID] {
		return
	}
	if on {
		t.online[opID] = true
		t.sink.SetPresence(opID, true, since)
	} else {
		delete(t.online, opID)
		t.sink.SetPresence(opID, false, at)
	}
}
