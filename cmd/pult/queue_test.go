package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/pult/pult/agent/agenttest"
	"github.com/pult/pult/agent/wire"
)

func cliBoard(now time.Time) *wire.QueueSnapshot {
	return &wire.QueueSnapshot{
		Version: 3, At: now, Day: "2026-11-21", TimeZone: "UTC", ServiceLevelSeconds: 20,
		Operators: []wire.QueueOperator{
			{ID: "op-1", Name: "Анна Смирнова", Code: "100", Status: wire.StatusBusy, Since: now.Add(-5 * time.Minute), Connected: true,
				Call:     &wire.QueueCall{ID: "c0", Direction: wire.DirectionIn, PhoneDisplay: "8 (912) 000-00-01", State: wire.CallTalking, Since: now.Add(-62 * time.Second)},
				Counters: wire.QueueCounters{Incoming: 4, Answered: 3, Missed: 1, TalkTotalSeconds: 300, TalkedCalls: 2}},
			{ID: "op-2", Name: "Дмитрий Волков", Code: "101", Status: wire.StatusBreak, Since: now.Add(-20 * time.Minute), Connected: true},
		},
		Waiting: []wire.WaitingCall{{ID: "c1", PhoneDisplay: "8 (916) 123-45-67", Site: "Shop", LineDisplay: "8 (495) 111-22-33", Since: now.Add(-42 * time.Second), Ringing: []string{"101"}}},
		Totals:  wire.QueueCounters{Incoming: 10, Answered: 8, Missed: 2, Outgoing: 3, AnsweredInTime: 7, WaitTotalSeconds: 100, WaitMaxSeconds: 41, TalkTotalSeconds: 800, TalkedCalls: 8},
	}
}

func TestWriteBoard(t *testing.T) {
	now := time.Date(2026, 11, 21, 13, 5, 0, 0, time.UTC)
	var sb strings.Builder
	writeBoard(&sb, cliBoard(now), now)
	out := sb.String()
	for _, want := range []string{
		"service level 70% within 20 s",
		"Waiting: 1", "8 (916) 123-45-67  Shop 8 (495) 111-22-33  waiting 0:42  rings 101",
		"Анна Смирнова", "8 (912) 000-00-01 talking 1:02", "busy", "5:00",
		"Дмитрий Волков", "break", "20:00",
		"incoming 10, answered 8, missed 2, outgoing 3; wait avg 0:10, longest 0:41; talk avg 1:40",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("board lacks %q:\n%s", want, out)
		}
	}
}

func TestQueueCLI(t *testing.T) {
	r := agenttest.New(t)
	env := testEnv(t, "PULT_RELAY", r.URL, "PULT_TOKEN", agenttest.Token)
	// An operator gets a clear refusal.
	runCLI(t, env, "", "queue").expect(t, exitError, "", "the queue board is not available: the queue board is for supervisors")

	r.SetBoard(cliBoard(time.Now()))
	res := runCLI(t, env, "", "queue", "--json")
	var snap wire.QueueSnapshot
	if err := json.Unmarshal([]byte(res.stdout), &snap); err != nil || res.code != exitOK || snap.Version != 3 || len(snap.Operators) != 2 {
		t.Fatalf("queue --json: %d %v %q", res.code, err, res.stderr)
	}

	// Live: the board is printed again after each change, until interrupted.
	ctx, cancel := context.WithCancel(context.Background())
	var out, errb syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"queue"}, func(k string) string { return env[k] }, strings.NewReader(""), &out, &errb)
	}()
	r.Wait(t, 10*time.Second, "subscribed", func() bool { return r.QueueSubscriptions() >= 2 })
	for !strings.Contains(out.String(), "Waiting: 1") {
		time.Sleep(10 * time.Millisecond)
	}
	r.SendQueue(wire.QueueDelta{Version: 4, At: time.Now(), Gone: []string{"c1"}})
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), "Waiting: 0") {
		if time.Now().After(deadline) {
			t.Fatalf("the delta was not shown:\n%s", out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if code := <-done; code != exitOK {
		t.Errorf("queue exited %d: %s", code, errb.String())
	}
}
