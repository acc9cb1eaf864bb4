package relay

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pult/pult/agent/wire"
	"github.com/pult/pult/relay/retailcrm"
)

var (
	anna  = Operator{ID: "a", Name: "Anna", Code: "100", UserID: "1"}
	boris = Operator{ID: "b", Name: "Boris", Code: "101", UserID: "2"}
	vera  = Operator{ID: "v", Name: "Vera", Code: "102", UserID: "3"}
)

func views(c *callRecord) map[string]wire.CallState {
	out := map[string]wire.CallState{}
	for _, id := range c.operators() {
		out[id] = c.cardFor(id, Operator{ID: id}).State
	}
	return out
}

func TestCallStates(t *testing.T) {
	t0 := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	ev := func(typ string, status string, ops ...Operator) callEvent {
		return callEvent{Type: typ, HangupStatus: status, Operators: ops, At: t0}
	}
	type step struct {
		ev   callEvent
		want map[string]wire.CallState
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"answered by one of two, then ended", []step{
			{ev(evRing, "", anna, boris), map[string]wire.CallState{"a": wire.CallRinging, "b": wire.CallRinging}},
			{ev(evAnswer, "", boris), map[string]wire.CallState{"a": wire.CallAnsweredElsewhere, "b": wire.CallTalking}},
			{ev(evHangup, "answered", boris), map[string]wire.CallState{"a": wire.CallAnsweredElsewhere, "b": wire.CallEnded}},
		}},
		{"missed by everyone", []step{
			{ev(evRing, "", anna, boris), map[string]wire.CallState{"a": wire.CallRinging, "b": wire.CallRinging}},
			{ev(evHangup, "no answered"), map[string]wire.CallState{"a": wire.CallMissed, "b": wire.CallMissed}},
		}},
		{"answer known only at hangup (plain retailCRM PBX)", []step{
			{ev(evRing, "", anna, boris), map[string]wire.CallState{"a": wire.CallRinging, "b": wire.CallRinging}},
			{ev(evHangup, "answered", anna), map[string]wire.CallState{"a": wire.CallEnded, "b": wire.CallAnsweredElsewhere}},
		}},
		{"ring moves on: first leg stops, second answers", []step{
			{ev(evRing, "", anna), map[string]wire.CallState{"a": wire.CallRinging}},
			{ev(evRing, "", vera), map[string]wire.CallState{"a": wire.CallRinging, "v": wire.CallRinging}},
			{ev(evHangup, "no answered", anna), map[string]wire.CallState{"a": wire.CallMissed, "v": wire.CallRinging}},
			{ev(evHangup, "answered", vera), map[string]wire.CallState{"a": wire.CallAnsweredElsewhere, "v": wire.CallEnded}},
		}},
		{"a late ring after the end changes nothing", []step{
			{ev(evRing, "", anna), map[string]wire.CallState{"a": wire.CallRinging}},
			{ev(evHangup, "busy"), map[string]wire.CallState{"a": wire.CallMissed}},
			{ev(evAnswer, "", anna), map[string]wire.CallState{"a": wire.CallMissed}},
		}},
		{"a final hangup ends every leg (UIS's call_finished)", []step{
			{ev(evRing, "", anna, boris, vera), map[string]wire.CallState{"a": wire.CallRinging, "b": wire.CallRinging, "v": wire.CallRinging}},
			{callEvent{Type: evHangup, HangupStatus: "no answered", Operators: []Operator{anna}, EndsCall: true, At: t0},
				map[string]wire.CallState{"a": wire.CallMissed, "b": wire.CallMissed, "v": wire.CallMissed}},
		}},
		{"answered by someone without an operator", []step{
			{ev(evRing, "", anna, boris), map[string]wire.CallState{"a": wire.CallRinging, "b": wire.CallRinging}},
			{ev(evAnswer, ""), map[string]wire.CallState{"a": wire.CallAnsweredElsewhere, "b": wire.CallAnsweredElsewhere}},
			{callEvent{Type: evHangup, HangupStatus: "answered", EndsCall: true, At: t0},
				map[string]wire.CallState{"a": wire.CallAnsweredElsewhere, "b": wire.CallAnsweredElsewhere}},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &callRecord{State: wire.CallRinging, Legs: map[string]*leg{}}
			for i, s := range tc.steps {
				c.apply(s.ev)
				if d := cmp.Diff(s.want, views(c)); d != "" {
					t.Fatalf("step %d (%s): views (-want +got):\n%s", i, s.ev.Type, d)
				}
			}
		})
	}
}

func TestApplyIsIdempotent(t *testing.T) {
	c := &callRecord{State: wire.CallRinging, Legs: map[string]*leg{}}
	e := callEvent{Type: evRing, Operators: []Operator{anna}}
	if !c.apply(e) {
		t.Fatal("first ring did not change the call")
	}
	v := c.Version
	if c.apply(e) || c.Version != v {
		t.Fatal("the same ring twice changed the call")
	}
}

func TestCardMarksYou(t *testing.T) {
	c := &callRecord{State: wire.CallRinging, Legs: map[string]*leg{}, Manager: &wire.Manager{Name: "Anna", Code: "100"}}
	c.apply(callEvent{Type: evRing, Operators: []Operator{anna, boris}})
	if !c.cardFor("a", anna).Manager.You || c.cardFor("b", boris).Manager.You {
		t.Fatal("manager.you should be true only for the manager's own card")
	}
}

func TestCallKey(t *testing.T) {
	if callKey("x", "+7") == callKey("", "+7") || callKey("x", "") != callKey("x", "+7") {
		t.Fatal("call keys: by id when given, by number otherwise")
	}
}

// The call history of a finished call: the answerer's code, times as the
// relay saw them unless the PBX measured them, the result in retailCRM's
// words.
func TestHistoryFor(t *testing.T) {
	s := &Server{}
	t0 := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	at := func(sec int) *time.Time { x := t0.Add(time.Duration(sec) * time.Second); return &x }
	rec := &callRecord{ID: "c1", Direction: wire.DirectionIn, Phone: "+79121234567", Line: "+74999999999", Site: "shop1",
		State: wire.CallEnded, AnsweredBy: "b", StartedAt: t0, AnsweredAt: at(7), EndedAt: at(67),
		Legs: map[string]*leg{"a": {Code: "100", UserID: "1"}, "b": {Code: "101", UserID: "2"}}}
	got := s.historyFor(rec)
	want := retailcrm.UploadCall{Date: t0, Type: "in", Phone: "+79121234567", Code: "101", UserID: "2", Result: "answered",
		Duration: 60, DurationWaiting: 7, ExternalID: "c1", ExternalPhone: "+74999999999", Site: "shop1"}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("answered (-want +got):\n%s", d)
	}
	rec.TalkTime, rec.WaitTime, rec.RecordURL = 208*time.Second, 12*time.Second, "https://rec.example/1.mp3"
	if got := s.historyFor(rec); got.Duration != 208 || got.DurationWaiting != 12 || got.RecordURL != "https://rec.example/1.mp3" {
		t.Errorf("the PBX's figures: %+v", got)
	}
	missed := &callRecord{ID: "c2", Direction: wire.DirectionOut, Phone: "+79121234567", State: wire.CallMissed,
		HangupStatus: "busy", StartedAt: t0, EndedAt: at(15), Legs: map[string]*leg{"a": {Code: "100", UserID: "1"}}}
	want = retailcrm.UploadCall{Date: t0, Type: "out", Phone: "+79121234567", Code: "100", UserID: "1", Result: "busy",
		DurationWaiting: 15, ExternalID: "c2"}
	if d := cmp.Diff(want, s.historyFor(missed)); d != "" {
		t.Errorf("missed (-want +got):\n%s", d)
	}
	missed.HangupStatus, missed.Legs["b"] = "no answered", &leg{Code: "101"}
	if got := s.historyFor(missed); got.Result != "no answer" || got.Code != "" {
		t.Errorf("missed by two: %+v", got)
	}
}
