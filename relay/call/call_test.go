package call

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pult/pult/agent/wire"
)

var (
	anna  = Person{ID: "a", Name: "Anna", Code: "100", UserID: "1"}
	boris = Person{ID: "b", Name: "Boris", Code: "101", UserID: "2"}
	vera  = Person{ID: "v", Name: "Vera", Code: "102", UserID: "3"}
)

func views(c *Record) map[string]wire.CallState {
	out := map[string]wire.CallState{}
	for _, id := range c.Operators() {
		out[id] = c.CardFor(id, Person{ID: id}).State
	}
	return out
}

func TestCallStates(t *testing.T) {
	t0 := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	ev := func(typ string, status string, ops ...Person) Event {
		return Event{Type: typ, HangupStatus: status, Operators: ops, At: t0}
	}
	type step struct {
		ev   Event
		want map[string]wire.CallState
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"answered by one of two, then ended", []step{
			{ev(Ring, "", anna, boris), map[string]wire.CallState{"a": wire.CallRinging, "b": wire.CallRinging}},
			{ev(Answer, "", boris), map[string]wire.CallState{"a": wire.CallAnsweredElsewhere, "b": wire.CallTalking}},
			{ev(Hangup, "answered", boris), map[string]wire.CallState{"a": wire.CallAnsweredElsewhere, "b": wire.CallEnded}},
		}},
		{"missed by everyone", []step{
			{ev(Ring, "", anna, boris), map[string]wire.CallState{"a": wire.CallRinging, "b": wire.CallRinging}},
			{ev(Hangup, "no answered"), map[string]wire.CallState{"a": wire.CallMissed, "b": wire.CallMissed}},
		}},
		{"answer known only at hangup (plain retailCRM PBX)", []step{
			{ev(Ring, "", anna, boris), map[string]wire.CallState{"a": wire.CallRinging, "b": wire.CallRinging}},
			{ev(Hangup, "answered", anna), map[string]wire.CallState{"a": wire.CallEnded, "b": wire.CallAnsweredElsewhere}},
		}},
		{"ring moves on: first leg stops, second answers", []step{
			{ev(Ring, "", anna), map[string]wire.CallState{"a": wire.CallRinging}},
			{ev(Ring, "", vera), map[string]wire.CallState{"a": wire.CallRinging, "v": wire.CallRinging}},
			{ev(Hangup, "no answered", anna), map[string]wire.CallState{"a": wire.CallMissed, "v": wire.CallRinging}},
			{ev(Hangup, "answered", vera), map[string]wire.CallState{"a": wire.CallAnsweredElsewhere, "v": wire.CallEnded}},
		}},
		{"a late ring after the end changes nothing", []step{
			{ev(Ring, "", anna), map[string]wire.CallState{"a": wire.CallRinging}},
			{ev(Hangup, "busy"), map[string]wire.CallState{"a": wire.CallMissed}},
			{ev(Answer, "", anna), map[string]wire.CallState{"a": wire.CallMissed}},
		}},
		{"a final hangup ends every leg (UIS's call_finished)", []step{
			{ev(Ring, "", anna, boris, vera), map[string]wire.CallState{"a": wire.CallRinging, "b": wire.CallRinging, "v": wire.CallRinging}},
			{Event{Type: Hangup, HangupStatus: "no answered", Operators: []Person{anna}, EndsCall: true, At: t0},
				map[string]wire.CallState{"a": wire.CallMissed, "b": wire.CallMissed, "v": wire.CallMissed}},
		}},
		{"answered by someone without an operator", []step{
			{ev(Ring, "", anna, boris), map[string]wire.CallState{"a": wire.CallRinging, "b": wire.CallRinging}},
			{ev(Answer, ""), map[string]wire.CallState{"a": wire.CallAnsweredElsewhere, "b": wire.CallAnsweredElsewhere}},
			{Event{Type: Hangup, HangupStatus: "answered", EndsCall: true, At: t0},
				map[string]wire.CallState{"a": wire.CallAnsweredElsewhere, "b": wire.CallAnsweredElsewhere}},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &Record{State: wire.CallRinging, Legs: map[string]*Leg{}}
			for i, s := range tc.steps {
				c.Apply(s.ev)
				if d := cmp.Diff(s.want, views(c)); d != "" {
					t.Fatalf("step %d (%s): views (-want +got):\n%s", i, s.ev.Type, d)
				}
			}
		})
	}
}

func TestApplyIsIdempotent(t *testing.T) {
	c := &Record{State: wire.CallRinging, Legs: map[string]*Leg{}}
	e := Event{Type: Ring, Operators: []Person{anna}}
	if !c.Apply(e) {
		t.Fatal("first ring did not change the call")
	}
	v := c.Version
	if c.Apply(e) || c.Version != v {
		t.Fatal("the same ring twice changed the call")
	}
}

func TestCardMarksYou(t *testing.T) {
	c := &Record{State: wire.CallRinging, Legs: map[string]*Leg{}, Manager: &wire.Manager{Name: "Anna", Code: "100"}}
	c.Apply(Event{Type: Ring, Operators: []Person{anna, boris}})
	if !c.CardFor("a", anna).Manager.You || c.CardFor("b", boris).Manager.You {
		t.Fatal("manager.you should be true only for the manager's own card")
	}
}
