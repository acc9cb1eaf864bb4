// Package call is the relay's record of one call and its state machine: an
// Event, whatever PBX reported it, changes a Record (Apply), and the Record
// renders the card each operator sees (CardFor). Records are stored in the
// calls bucket as JSON (this package's field names are that format) and
// kept, as last stored, in a Cache. The package holds no goroutine; a Cache
// is safe for concurrent use, a Record is not (its owner, the webhook being
// processed, changes a Clone).
package call

import (
	"crypto/rand"
	"encoding/hex"
	"sort"
	"sync"
	"time"

	"github.com/pult/pult/agent/wire"
)

// Call events, whatever PBX they came from.
const (
	Ring   = "in"     // ringing at the named operators
	Out    = "out"    // an operator dials out
	Answer = "answer" // the named operator answered
	Hangup = "hangup" // the call (or the named legs) ended
)

// Person is an operator as a call knows them: a leg, or who answered.
type Person struct {
	ID     string // the relay's operator id
	Code   string // PBX extension
	Name   string
	UserID string // CRM user id
}

// Event is a PBX event in the relay's own terms.
type Event struct {
	Type         string
	CallID       string // PBX's id; "" means "match by number"
	Phone        string // the other party, as given
	Line         string // external number called
	Site         string
	Operators    []Person // the legs concerned
	HangupStatus string
	At           time.Time
	// Direction, when set, is the direction of a call first seen by this
	// event (a PBX that names it); otherwise "out" events make outgoing
	// calls and everything else incoming ones.
	Direction string
	// EndsCall makes a hangup end the whole call even when it names only
	// some of the legs still ringing (UIS's call_finished is final).
	EndsCall bool
	// What the PBX measured, kept for the call history (0 / "" unknown).
	TalkTime  time.Duration
	WaitTime  time.Duration
	RecordURL string
	Source    string // who sent it (the PBX kind)
}

// Record is the relay's durable view of one call, stored in the calls
// bucket. Legs are the operators it rang (or who dialled out).
type Record struct {
	Key          string            `json:"key"`
	ID           string            `json:"id"`
	Direction    string            `json:"direction"`
	Phone        string            `json:"phone"`
	PhoneDisplay string            `json:"phoneDisplay"`
	Line         string            `json:"line,omitempty"`
	LineDisplay  string            `json:"lineDisplay,omitempty"`
	Site         string            `json:"site,omitempty"`
	State        wire.CallState    `json:"state"` // ringing, talking, ended, missed
	Legs         map[string]*Leg   `json:"legs"`
	AnsweredBy   string            `json:"answeredBy,omitempty"` // operator id
	HangupStatus string            `json:"hangupStatus,omitempty"`
	StartedAt    time.Time         `json:"startedAt"`
	AnsweredAt   *time.Time        `json:"answeredAt,omitempty"`
	EndedAt      *time.Time        `json:"endedAt,omitempty"`
	Client       *wire.Client      `json:"client,omitempty"`
	Manager      *wire.Manager     `json:"manager,omitempty"`
	ManagerState wire.ManagerState `json:"managerState"`
	Links        *wire.Links       `json:"links,omitempty"`
	Version      int               `json:"version"`
	// At is when the relay received what made this version (the event's
	// At; for a version the relay made itself, the responsible manager
	// found, when it made it). Zero in records of relays before it.
	At time.Time `json:"at,omitzero"`
	// For the call history (retailCRM calls/upload).
	Source    string        `json:"source,omitempty"`    // the PBX kind that reported it
	TalkTime  time.Duration `json:"talkTime,omitempty"`  // as the PBX measured it; 0 unknown
	WaitTime  time.Duration `json:"waitTime,omitempty"`  // as the PBX measured it; 0 unknown
	RecordURL string        `json:"recordUrl,omitempty"` // the recording
}

// AnsweredOutside is AnsweredBy when somebody without an operator (a PBX
// employee pult does not know) answered: answered elsewhere for every leg.
const AnsweredOutside = "-"

type Leg struct {
	Code    string `json:"code"`
	Name    string `json:"name"`
	UserID  string `json:"userId"`
	Stopped bool   `json:"stopped,omitempty"` // stopped ringing here while the call went on
}

// NewID is an id for a call whose PBX gave none: "pult-" and 16 random hex
// digits.
func NewID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return "pult-" + hex.EncodeToString(b)
}

// apply changes the record by one event and reports which operators' cards
// changed. A record in a final state only takes a new ring as a new call.
func (c *Record) Apply(ev Event) (changed bool) {
	before := c.fingerprint()
	addLegs := func() {
		for _, op := range ev.Operators {
			if l, ok := c.Legs[op.ID]; ok {
				l.Stopped = false
				continue
			}
			c.Legs[op.ID] = &Leg{Code: op.Code, Name: op.Name, UserID: op.UserID}
		}
	}
	switch ev.Type {
	case Ring, Out:
		if !c.State.Final() {
			addLegs()
		}
	case Answer:
		if c.State.Final() {
			break
		}
		addLegs()
		switch {
		case len(ev.Operators) > 0:
			c.AnsweredBy = ev.Operators[0].ID
		case c.AnsweredBy == "":
			c.AnsweredBy = AnsweredOutside
		}
		c.State = wire.CallTalking
		if c.AnsweredAt == nil {
			t := ev.At
			c.AnsweredAt = &t
		}
	case Hangup:
		if c.State.Final() {
			break
		}
		named := map[string]bool{}
		for _, op := range ev.Operators {
			named[op.ID] = true
		}
		active := 0
		for id, l := range c.Legs {
			if !l.Stopped && !named[id] {
				active++
			}
		}
		// A hangup naming only some of the legs that still ring stops just
		// those legs (the PBX moved the call on), unless it says the call
		// was answered there.
		if len(named) > 0 && active > 0 && c.State == wire.CallRinging && ev.HangupStatus != "answered" && !ev.EndsCall {
			for id := range named {
				if l, ok := c.Legs[id]; ok {
					l.Stopped = true
				}
			}
			break
		}
		c.HangupStatus = ev.HangupStatus
		t := ev.At
		c.EndedAt = &t
		switch {
		case c.State == wire.CallTalking:
			c.State = wire.CallEnded
		case ev.HangupStatus == "answered":
			c.State = wire.CallEnded
			if c.AnsweredAt == nil {
				c.AnsweredAt = &t
			}
			if c.AnsweredBy == "" || (c.AnsweredBy == AnsweredOutside && len(ev.Operators) > 0) {
				c.AnsweredBy = c.pickAnswerer(ev.Operators)
			}
		default:
			c.State = wire.CallMissed
		}
	}
	if ev.TalkTime > 0 {
		c.TalkTime = ev.TalkTime
	}
	if ev.WaitTime > 0 {
		c.WaitTime = ev.WaitTime
	}
	if ev.RecordURL != "" {
		c.RecordURL = ev.RecordURL
	}
	changed = c.fingerprint() != before
	if changed {
		c.Version++
	}
	return changed
}

// pickAnswerer chooses who answered from a hangup's named operators, or the
// only leg when none are named.
func (c *Record) pickAnswerer(named []Person) string {
	for _, op := range named {
		if _, ok := c.Legs[op.ID]; ok {
			return op.ID
		}
	}
	if len(named) > 0 {
		return named[0].ID
	}
	if len(c.Legs) == 1 {
		for id := range c.Legs {
			return id
		}
	}
	return ""
}

func (c *Record) fingerprint() string {
	ids := make([]string, 0, len(c.Legs))
	for id, l := range c.Legs {
		s := id
		if l.Stopped {
			s += "!"
		}
		ids = append(ids, s)
	}
	sort.Strings(ids)
	fp := string(c.State) + "|" + c.AnsweredBy + "|" + c.HangupStatus + "|" + string(c.ManagerState)
	for _, s := range ids {
		fp += "|" + s
	}
	return fp
}

// operators returns the ids of every leg, sorted.
func (c *Record) Operators() []string {
	ids := make([]string, 0, len(c.Legs))
	for id := range c.Legs {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// cardFor is the call as one operator sees it.
func (c *Record) CardFor(opID string, me Person) wire.Call {
	card := wire.Call{
		ID: c.ID, Direction: c.Direction, Phone: c.Phone, PhoneDisplay: c.PhoneDisplay,
		Line: c.Line, LineDisplay: c.LineDisplay, Site: c.Site, Client: c.Client,
		ManagerState: c.ManagerState, HangupStatus: c.HangupStatus,
		StartedAt: c.StartedAt, AnsweredAt: c.AnsweredAt, EndedAt: c.EndedAt, Links: c.Links,
	}
	if c.Manager != nil {
		m := *c.Manager
		m.You = (m.Code != "" && m.Code == me.Code) || (m.ID != "" && m.ID == me.UserID)
		card.Manager = &m
	}
	if c.AnsweredBy != "" && c.AnsweredBy != AnsweredOutside {
		p := wire.Party{You: c.AnsweredBy == opID}
		if l, ok := c.Legs[c.AnsweredBy]; ok {
			p.Code, p.Name = l.Code, l.Name
		}
		card.AnsweredBy = &p
	}
	l := c.Legs[opID]
	switch c.State {
	case wire.CallRinging:
		card.State = wire.CallRinging
		if l != nil && l.Stopped {
			card.State = wire.CallMissed
		}
	case wire.CallTalking:
		card.State = wire.CallTalking
		if c.AnsweredBy != opID {
			card.State = wire.CallAnsweredElsewhere
		}
	case wire.CallEnded:
		card.State = wire.CallEnded
		if c.AnsweredBy != "" && c.AnsweredBy != opID {
			card.State = wire.CallAnsweredElsewhere
		}
	default:
		card.State = wire.CallMissed
	}
	return card
}

// CacheGeneration is how many calls one generation of the cache holds:
// the cache keeps the last one to two generations' worth of calls stored,
// minutes of calls even at a hundred new calls a second.
const CacheGeneration = 4096

// Cache keeps the record of recent calls as this relay last stored them,
// with their revision in the calls bucket, so that the next event of a call
// does not read it back (a JetStream round trip and a JSON decode on the
// webhook's path). It is only a hint: every write of a record is a
// compare-and-set on that revision, which fails when the entry is stale
// (another relay node wrote the call, or the key expired), and an event
// that would write nothing is checked against the bucket (processCall).
//
// Two generations bound it without per-entry bookkeeping: entries go into
// cur; a full cur becomes prev, and what was prev is forgotten. A hit in
// prev moves the entry back to cur.
type Cache struct {
	mu        sync.Mutex
	size      int // entries per generation
	cur, prev map[string]cachedCall
}

type cachedCall struct {
	rec *Record // never changed once cached: get hands out copies
	rev uint64
}

func NewCache(size int) *Cache {
	return &Cache{size: size, cur: make(map[string]cachedCall, size)}
}

// get returns a copy of the call's record, which the caller may change, and
// its revision.
func (c *Cache) Get(key string) (*Record, uint64, bool) {
	c.mu.Lock()
	e, ok := c.cur[key]
	if !ok {
		if e, ok = c.prev[key]; ok {
			delete(c.prev, key)
			c.addLocked(key, e)
		}
	}
	c.mu.Unlock()
	if !ok {
		return nil, 0, false
	}
	return e.rec.Clone(), e.rev, true
}

// put records that rec is stored at revision rev. It keeps a copy: the
// caller's record may change afterwards.
func (c *Cache) Put(key string, rec *Record, rev uint64) {
	e := cachedCall{rec: rec.Clone(), rev: rev}
	c.mu.Lock()
	delete(c.prev, key)
	c.addLocked(key, e)
	c.mu.Unlock()
}

// drop forgets a call whose stored revision is unknown (a write failed).
func (c *Cache) Drop(key string) {
	c.mu.Lock()
	delete(c.cur, key)
	delete(c.prev, key)
	c.mu.Unlock()
}

func (c *Cache) addLocked(key string, e cachedCall) {
	if _, ok := c.cur[key]; !ok && len(c.cur) >= c.size {
		c.prev, c.cur = c.cur, make(map[string]cachedCall, c.size)
	}
	c.cur[key] = e
}

// clone copies the record deeply enough to change it: apply changes legs
// in place; the pointer fields (times, client, manager, links) are replaced,
// never changed in place.
func (c *Record) Clone() *Record {
	r := *c
	r.Legs = make(map[string]*Leg, len(c.Legs))
	for id, l := range c.Legs {
		lc := *l
		r.Legs[id] = &lc
	}
	return &r
}
