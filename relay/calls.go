package relay

import (
	"crypto/sha256"
	"encoding/hex"
	"sort"
	"time"

	"github.com/pult/pult/agent/wire"
)

// Call events, whatever PBX they came from.
const (
	evRing   = "in"     // ringing at the named operators
	evOut    = "out"    // an operator dials out
	evAnswer = "answer" // the named operator answered
	evHangup = "hangup" // the call (or the named legs) ended
)

// callEvent is a PBX event in the relay's own terms.
type callEvent struct {
	Type         string
	CallID       string // PBX's id; "" means "match by number"
	Phone        string // the other party, as given
	Line         string // external number called
	Site         string
	Operators    []Operator // the legs concerned
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
	Source    string // who sent it: sourceRetailCRM, sourceUIS
}

// callRecord is the relay's durable view of one call, stored in the calls
// bucket. Legs are the operators it rang (or who dialled out).
type callRecord struct {
	Key          string            `json:"key"`
	ID           string            `json:"id"`
	Direction    string            `json:"direction"`
	Phone        string            `json:"phone"`
	PhoneDisplay string            `json:"phoneDisplay"`
	Line         string            `json:"line,omitempty"`
	LineDisplay  string            `json:"lineDisplay,omitempty"`
	Site         string            `json:"site,omitempty"`
	State        wire.CallState    `json:"state"` // ringing, talking, ended, missed
	Legs         map[string]*leg   `json:"legs"`
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
	// For the call history (retailCRM calls/upload).
	Source    string        `json:"source,omitempty"`    // the PBX kind that reported it
	TalkTime  time.Duration `json:"talkTime,omitempty"`  // as the PBX measured it; 0 unknown
	WaitTime  time.Duration `json:"waitTime,omitempty"`  // as the PBX measured it; 0 unknown
	RecordURL string        `json:"recordUrl,omitempty"` // the recording
}

// answeredOutside is AnsweredBy when somebody without an operator (a PBX
// employee pult does not know) answered: answered elsewhere for every leg.
const answeredOutside = "-"

type leg struct {
	Code    string `json:"code"`
	Name    string `json:"name"`
	UserID  string `json:"userId"`
	Stopped bool   `json:"stopped,omitempty"` // stopped ringing here while the call went on
}

// callKey names a call in the calls bucket: by the PBX's id, or by the
// number when the PBX sends none (retailCRM makes callExternalId optional).
func callKey(callID, phone string) string {
	src := "id:" + callID
	if callID == "" {
		src = "phone:" + phone
	}
	h := sha256.Sum256([]byte(src))
	return "c." + hex.EncodeToString(h[:16])
}

// apply changes the record by one event and reports which operators' cards
// changed. A record in a final state only takes a new ring as a new call.
func (c *callRecord) apply(ev callEvent) (changed bool) {
	before := c.fingerprint()
	addLegs := func() {
		for _, op := range ev.Operators {
			if l, ok := c.Legs[op.ID]; ok {
				l.Stopped = false
				continue
			}
			c.Legs[op.ID] = &leg{Code: op.Code, Name: op.Name, UserID: op.UserID}
		}
	}
	switch ev.Type {
	case evRing, evOut:
		if !c.State.Final() {
			addLegs()
		}
	case evAnswer:
		if c.State.Final() {
			break
		}
		addLegs()
		switch {
		case len(ev.Operators) > 0:
			c.AnsweredBy = ev.Operators[0].ID
		case c.AnsweredBy == "":
			c.AnsweredBy = answeredOutside
		}
		c.State = wire.CallTalking
		if c.AnsweredAt == nil {
			t := ev.At
			c.AnsweredAt = &t
		}
	case evHangup:
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
			if c.AnsweredBy == "" || (c.AnsweredBy == answeredOutside && len(ev.Operators) > 0) {
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
func (c *callRecord) pickAnswerer(named []Operator) string {
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

func (c *callRecord) fingerprint() string {
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
func (c *callRecord) operators() []string {
	ids := make([]string, 0, len(c.Legs))
	for id := range c.Legs {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// cardFor is the call as one operator sees it.
func (c *callRecord) cardFor(opID string, me Operator) wire.Call {
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
	if c.AnsweredBy != "" && c.AnsweredBy != answeredOutside {
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
