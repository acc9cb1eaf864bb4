package wire

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

func TestQueueApply(t *testing.T) {
	at := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	s := QueueSnapshot{Version: 5, Day: "2026-11-21",
		Operators: []QueueOperator{{ID: "a", Status: StatusFree}, {ID: "b", Status: StatusBusy}},
		Waiting:   []WaitingCall{{ID: "c1"}},
	}
	if s.Apply(QueueDelta{Version: 7}) || s.Version != 5 {
		t.Fatal("a delta that skips a version was applied")
	}
	ok := s.Apply(QueueDelta{Version: 6, At: at,
		Operators: []QueueOperator{{ID: "b", Status: StatusBreak}, {ID: "c", Status: StatusFree}},
		Removed:   []string{"a"},
		Waiting:   []WaitingCall{{ID: "c2"}},
		Gone:      []string{"c1"},
		Totals:    &QueueCounters{Incoming: 2},
		Sample:    &QueueSample{At: at, Waiting: 1, ServiceLevel: 1},
	})
	want := QueueSnapshot{Version: 6, At: at, Day: "2026-11-21",
		Operators: []QueueOperator{{ID: "b", Status: StatusBreak}, {ID: "c", Status: StatusFree}},
		Waiting:   []WaitingCall{{ID: "c2"}},
		Totals:    QueueCounters{Incoming: 2},
		History:   []QueueSample{{At: at, Waiting: 1, ServiceLevel: 1}},
	}
	if !ok || !reflect.DeepEqual(s, want) {
		t.Errorf("after Apply:\n got %+v\nwant %+v", s, want)
	}
	// History stays bounded.
	for i := 0; i < MaxQueueHistory+10; i++ {
		s.Apply(QueueDelta{Version: s.Version + 1, Sample: &QueueSample{Waiting: i}})
	}
	if len(s.History) != MaxQueueHistory || s.History[len(s.History)-1].Waiting != MaxQueueHistory+9 {
		t.Errorf("history %d long, last %+v", len(s.History), s.History[len(s.History)-1])
	}
}

func TestCountersAverages(t *testing.T) {
	c := QueueCounters{Answered: 3, Missed: 1, AnsweredInTime: 2, WaitTotalSeconds: 40, TalkTotalSeconds: 300, TalkedCalls: 2}
	if c.AvgWait() != 10*time.Second || c.AvgTalk() != 150*time.Second || c.ServiceLevel() != 0.5 {
		t.Errorf("averages %v %v %v", c.AvgWait(), c.AvgTalk(), c.ServiceLevel())
	}
	if (QueueCounters{}).ServiceLevel() != 1 || (QueueCounters{}).AvgWait() != 0 {
		t.Error("empty counters")
	}
}

func TestEnvelopeRoundTrip(t *testing.T) {
	b, err := Encode(TypeQueue, "", 0, QueueDelta{Version: 3})
	if err != nil {
		t.Fatal(err)
	}
	var env Envelope
	if err := json.Unmarshal(b, &env); err != nil || env.V != ProtocolVersion || env.Type != TypeQueue || env.Seq != 0 {
		t.Fatalf("envelope %+v %v", env, err)
	}
	var d QueueDelta
	if err := json.Unmarshal(env.Data, &d); err != nil || d.Version != 3 {
		t.Errorf("delta %+v %v", d, err)
	}
}
