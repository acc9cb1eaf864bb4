package relay

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pult/pult/agent/wire"
	"github.com/pult/pult/relay/call"
	"github.com/pult/pult/relay/retailcrm"
)

// The call history of a finished call: the answerer's code, times as the
// relay saw them unless the PBX measured them, the result in retailCRM's
// words.
func TestHistoryFor(t *testing.T) {
	t0 := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	at := func(sec int) *time.Time { x := t0.Add(time.Duration(sec) * time.Second); return &x }
	rec := &call.Record{ID: "c1", Direction: wire.DirectionIn, Phone: "+79121234567", Line: "+74999999999", Site: "shop1",
		State: wire.CallEnded, AnsweredBy: "b", StartedAt: t0, AnsweredAt: at(7), EndedAt: at(67),
		Legs: map[string]*call.Leg{"a": {Code: "100", UserID: "1"}, "b": {Code: "101", UserID: "2"}}}
	got := historyFor(rec)
	want := retailcrm.UploadCall{Date: t0, Type: "in", Phone: "+79121234567", Code: "101", UserID: "2", Result: "answered",
		Duration: 60, DurationWaiting: 7, ExternalID: "c1", ExternalPhone: "+74999999999", Site: "shop1"}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("answered (-want +got):\n%s", d)
	}
	rec.TalkTime, rec.WaitTime, rec.RecordURL = 208*time.Second, 12*time.Second, "https://rec.example/1.mp3"
	if got := historyFor(rec); got.Duration != 208 || got.DurationWaiting != 12 || got.RecordURL != "https://rec.example/1.mp3" {
		t.Errorf("the PBX's figures: %+v", got)
	}
	missed := &call.Record{ID: "c2", Direction: wire.DirectionOut, Phone: "+79121234567", State: wire.CallMissed,
		HangupStatus: "busy", StartedAt: t0, EndedAt: at(15), Legs: map[string]*call.Leg{"a": {Code: "100", UserID: "1"}}}
	want = retailcrm.UploadCall{Date: t0, Type: "out", Phone: "+79121234567", Code: "100", UserID: "1", Result: "busy",
		DurationWaiting: 15, ExternalID: "c2"}
	if d := cmp.Diff(want, historyFor(missed)); d != "" {
		t.Errorf("missed (-want +got):\n%s", d)
	}
	missed.HangupStatus, missed.Legs["b"] = "no answered", &call.Leg{Code: "101"}
	if got := historyFor(missed); got.Result != "no answer" || got.Code != "" {
		t.Errorf("missed by two: %+v", got)
	}
}
