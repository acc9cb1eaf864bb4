// Package eventtrace times call events on their way through the relay: the
// moment a webhook's handler reaches each Point, from the request in hand to
// the answer, with the card written to the agents in between. It is how
// `pult-relay bench --trace` splits a card's latency into the relay's own
// steps and what lies outside them (the client, the network, the
// scheduler), event by event.
//
// A Recorder keeps the last events in a ring, served as JSON on the relay's
// private metrics listener (/debug/pult/events). It is off unless the
// relay's trace_events is set: then each event costs one small allocation
// and a clock reading per point; off, a Mark is a context lookup that finds
// nothing. The handler goroutine that starts an event owns it until Finish
// hands it to the ring; a Mark reaches it through the request's context.
package eventtrace

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"time"
)

// Point is a step of a call event in the relay.
type Point int

// The points, in the order an event passes them. An event that stores
// nothing new (a replay) or is refused skips some.
const (
	Received Point = iota // the handler has the request (its headers read)
	Read                  // the body read, parsed and authenticated
	Decoded               // the event decoded, its operators known
	Parsed                // the caller's number parsed
	Ready                 // the cards rendered, about to go ahead to the agents
	Sent                  // the cards written to the agents connected here
	Stored                // the record and its cards stored
	Answered              // the handler is done
	NumPoints
)

// Event is one call event's times (Unix nanoseconds; 0: not reached).
type Event struct {
	ID string           `json:"id"` // the PBX's call id
	At [NumPoints]int64 `json:"at"`
}

// MaxID bounds an event's id as kept.
const MaxID = 64

type key struct{}

// Recorder keeps the last events. A nil Recorder records nothing.
type Recorder struct {
	mu   sync.Mutex
	ring []Event
	next int // the slot the next event takes
	n    int // events kept
}

// MaxEvents bounds a Recorder.
const MaxEvents = 100_000

// New returns a Recorder of the last n events (at most MaxEvents), or nil
// when n <= 0.
func New(n int) *Recorder {
	if n <= 0 {
		return nil
	}
	return &Recorder{ring: make([]Event, min(n, MaxEvents))}
}

// Start begins an event, received now. The context carries it to Mark;
// the caller ends it with Finish. With a nil Recorder the context is
// returned as it is, with a nil event.
func (r *Recorder) Start(ctx context.Context) (context.Context, *Event) {
	if r == nil {
		return ctx, nil
	}
	e := &Event{}
	e.At[Received] = time.Now().UnixNano()
	return context.WithValue(ctx, key{}, e), e
}

// Mark notes that the event in ctx (if any) reached p now.
func Mark(ctx context.Context, p Point) {
	if e, ok := ctx.Value(key{}).(*Event); ok {
		e.At[p] = time.Now().UnixNano()
	}
}

// SetID names the event by its call id (clipped to MaxID bytes).
func (e *Event) SetID(id string) {
	if e != nil {
		e.ID = id[:min(len(id), MaxID)]
	}
}

// Finish marks the event answered and keeps it. Nothing happens for a nil
// event.
func (r *Recorder) Finish(e *Event) {
	if r == nil || e == nil {
		return
	}
	e.At[Answered] = time.Now().UnixNano()
	r.mu.Lock()
	r.ring[r.next] = *e
	r.next = (r.next + 1) % len(r.ring)
	r.n = min(r.n+1, len(r.ring))
	r.mu.Unlock()
}

// Events returns the events kept, oldest first.
func (r *Recorder) Events() []Event {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Event, 0, r.n)
	start := (r.next - r.n + len(r.ring)) % len(r.ring)
	for i := range r.n {
		out = append(out, r.ring[(start+i)%len(r.ring)])
	}
	return out
}

// ServeHTTP answers the events kept as a JSON array, oldest first (an empty
// array when the Recorder is nil: tracing is off).
func (r *Recorder) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	events := r.Events()
	if events == nil {
		events = []Event{}
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(events)
}
