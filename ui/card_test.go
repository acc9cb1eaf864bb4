package ui

import (
	"bytes"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"

	"github.com/pult/pult/agent"
	"github.com/pult/pult/agent/wire"
)

func ptime(t time.Time) *time.Time { return &t }

// demoCall is a call as the relay sends it.
func demoCall() wire.Call {
	return wire.Call{
		ID:           "call-1",
		Direction:    wire.DirectionIn,
		State:        wire.CallRinging,
		Phone:        "+79161234567",
		PhoneDisplay: "8 (916) 123-45-67",
		Line:         "+74951112233",
		LineDisplay:  "8 (495) 111-22-33",
		Site:         "Shop Moscow",
		Client:       &wire.Client{ID: "42", Name: "Иван Петров"},
		ManagerState: wire.ManagerFound,
		Manager:      &wire.Manager{ID: "7", Name: "Анна Смирнова", Code: "100", Free: true},
		StartedAt:    fixedNow.Add(-12 * time.Second),
		Links:        &wire.Links{Customer: "https://crm.example/customers/42"},
	}
}

func TestCardStates(t *testing.T) {
	newTestFyne(t)
	now := func() time.Time { return fixedNow }
	cases := map[string]func(c *wire.Call){
		"ringing": func(c *wire.Call) {},
		"ringing_pending": func(c *wire.Call) {
			c.ManagerState, c.Manager = wire.ManagerPending, nil
		},
		"ringing_you": func(c *wire.Call) { c.Manager.You = true },
		"talking": func(c *wire.Call) {
			c.State = wire.CallTalking
			c.AnsweredAt = ptime(fixedNow.Add(-83 * time.Second))
		},
		"answered_elsewhere": func(c *wire.Call) {
			c.State = wire.CallAnsweredElsewhere
			c.AnsweredBy = &wire.Party{Code: "101", Name: "Дмитрий Волков"}
		},
		"ended": func(c *wire.Call) {
			c.State = wire.CallEnded
			c.AnsweredAt = ptime(fixedNow.Add(-3 * time.Minute))
			c.EndedAt = ptime(fixedNow.Add(-45 * time.Second))
		},
		"missed_new_client": func(c *wire.Call) {
			c.State = wire.CallMissed
			c.EndedAt = ptime(fixedNow.Add(-5 * time.Second))
			c.Client, c.Manager, c.ManagerState = nil, nil, wire.ManagerNone
			c.Links = &wire.Links{NewCustomer: "https://crm.example/customers/new"}
		},
		"crm_down": func(c *wire.Call) {
			c.ManagerState, c.Manager = wire.ManagerUnavailable, nil
			c.Client, c.Links = nil, nil
		},
		"hidden_number": func(c *wire.Call) {
			c.Phone, c.PhoneDisplay, c.Client, c.Manager, c.Links = "", "", nil, nil, nil
			c.ManagerState = wire.ManagerOff
		},
		"outgoing": func(c *wire.Call) {
			c.Direction = wire.DirectionOut
			c.Site = ""
		},
	}
	for name, mod := range cases {
		t.Run(name, func(t *testing.T) {
			c := demoCall()
			mod(&c)
			k := newCallCard(newWords(nil), c, cardActions{now: now})
			w := test.NewWindow(k.obj)
			defer w.Close()
			w.Resize(fyne.NewSize(cardWidth, k.obj.MinSize().Height))
			test.AssertImageMatches(t, "card/"+name+".png", w.Canvas().Capture())
		})
	}
}

// A card follows its call: the buttons that can't work are disabled, and
// the timer shows waiting, then talking time.
func TestCardFollowsCall(t *testing.T) {
	newTestFyne(t)
	now := fixedNow
	var dialled []string
	var copied []string
	var dismissed int
	k := newCallCard(newWords(nil), demoCall(), cardActions{
		now: func() time.Time { return now },
		callBack: func(c wire.Call, done func(string, bool)) {
			dialled = append(dialled, c.Phone)
			done("The PBX refused the call: busy", true)
		},
		copy:    func(c wire.Call) { copied = append(copied, c.Phone) },
		openCRM: func(c wire.Call) {},
		dismiss: func(c wire.Call) { dismissed++ },
	})
	w := test.NewWindow(k.obj)
	defer w.Close()
	if k.timer.Text != "0:12" || k.state.Text != "Ringing" {
		t.Errorf("ringing card shows %q %q", k.state.Text, k.timer.Text)
	}
	now = now.Add(10 * time.Second)
	k.tick()
	if k.timer.Text != "0:22" {
		t.Errorf("after 10s the timer shows %q", k.timer.Text)
	}
	c := demoCall()
	c.State, c.AnsweredAt = wire.CallTalking, ptime(now)
	k.set(c)
	now = now.Add(65 * time.Second)
	k.tick()
	if k.state.Text != "Talking" || k.timer.Text != "1:05" {
		t.Errorf("talking card shows %q %q", k.state.Text, k.timer.Text)
	}
	if !k.live() || k.closeAfter() != 0 {
		t.Error("a talking card must stay")
	}
	test.Tap(k.callBtn)
	test.Tap(k.copyBtn)
	if len(dialled) != 1 || dialled[0] != "+79161234567" || len(copied) != 1 {
		t.Errorf("dialled %v copied %v", dialled, copied)
	}
	if !k.note.Visible() || k.note.Text != "The PBX refused the call: busy" {
		t.Errorf("call back outcome %q", k.note.Text)
	}
	c.State = wire.CallAnsweredElsewhere
	c.AnsweredBy = &wire.Party{Code: "101", Name: "Дмитрий Волков"}
	k.set(c)
	if k.closeAfter() != closeAfterElsewhere || k.live() {
		t.Error("answered elsewhere must close soon")
	}
	c.Phone, c.Links = "", nil
	k.set(c)
	if !k.callBtn.Disabled() || !k.copyBtn.Disabled() || !k.crmBtn.Disabled() {
		t.Error("buttons without a number or link must be disabled")
	}
}

// A second call while a card is shown: its card, on top, is shown whole in
// the window as it is, and the window grows to take both right after, on
// the UI goroutine's next turn (BENCHMARKS.md, "Issue 16: the second card").
func TestSecondCardBeforeTheWindowGrows(t *testing.T) {
	fa := newTestFyne(t)
	l := newLoop(t)
	a := New(fa, Config{Do: l.do, Now: func() time.Time { return fixedNow }})
	defer l.wait(a.cards.stopTimers)
	first, second := demoCall(), demoCall()
	second.ID = "call-2"
	var one fyne.Size
	l.wait(func() {
		a.onCall(first, time.Now())
		one = a.cards.w.Canvas().Size()
	})
	l.wait(func() {
		a.onCall(second, time.Now())
		s := a.cards
		k := s.byID[second.ID]
		if got := s.w.Canvas().Size(); got != one {
			t.Errorf("the window is %v as the second card is shown, want %v (as it was)", got, one)
		}
		if s.box.Objects[0] != k.obj || k.obj.Position().Y != 0 || s.scroll.Offset.Y != 0 ||
			k.obj.Size().Height > one.Height {
			t.Errorf("the second card is not on top and whole: at %v, size %v, scrolled %v, in %v",
				k.obj.Position(), k.obj.Size(), s.scroll.Offset, one)
		}
	})
	l.wait(func() {
		if got := a.cards.w.Canvas().Size(); got.Height <= one.Height || got != a.cards.size() {
			t.Errorf("the window is %v after the second card, want %v", got, a.cards.size())
		}
	})
}

// Calls whose frames come together (the agent's events, queued for the UI
// goroutine one after another) are applied in one turn and put on screen
// together, after the last of them: newest on top, the window sized for
// all. Each card is logged as
// shown once it is on screen, in the order the calls came; not one taken
// away before.
func TestCardsTogetherShownOnce(t *testing.T) {
	fa := newTestFyne(t)
	l := newLoop(t)
	var log bytes.Buffer
	a := New(fa, Config{Do: l.do, Now: func() time.Time { return fixedNow },
		Logger: slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	defer l.wait(a.cards.stopTimers)
	var calls []wire.Call
	for i := range 4 {
		c := demoCall()
		c.ID = fmt.Sprintf("call-%d", i)
		calls = append(calls, c)
	}
	l.wait(func() {
		for i, c := range calls {
			a.doEvent(func() { a.onCall(c, time.Now()) })
			if i == 0 {
				a.doEvent(func() {
					if s := a.cards; s.onScreen || s.byID[c.ID] == nil {
						t.Errorf("the first card: made %v, on screen %v", s.byID[c.ID] != nil, s.onScreen)
					}
				})
			}
		}
		a.doEvent(func() { a.cards.remove(calls[2].ID, true) })
	})
	l.eventually(t, "the cards shown", func() bool { return a.cards.onScreen })
	l.wait(func() {
		s := a.cards
		if len(s.waiting) != 0 || len(a.events.fs) != 0 {
			t.Errorf("%d waiting for their cards, %d events not applied", len(s.waiting), len(a.events.fs))
		}
		if len(s.box.Objects) != 3 || s.box.Objects[0] != s.byID["call-3"].obj {
			t.Errorf("%d cards in the window, the newest not on top", len(s.box.Objects))
		}
		if got := s.w.Canvas().Size(); got != s.size() {
			t.Errorf("the window is %v, want %v for its cards", got, s.size())
		}
	})
	var shown []string
	for _, m := range regexp.MustCompile(`msg="card shown" .*call=(\S+)`).FindAllStringSubmatch(log.String(), -1) {
		shown = append(shown, m[1])
	}
	if want := []string{"call-0", "call-1", "call-3"}; !slices.Equal(shown, want) {
		t.Errorf("cards logged as shown %q, want %q", shown, want)
	}
}

// The agent's events are applied in the order they came, all of them, also
// when more come than one turn takes (maxEventsPerTurn), and also those that
// come while a turn applies them.
func TestEventsAppliedInOrder(t *testing.T) {
	fa := newTestFyne(t)
	l := newLoop(t)
	a := New(fa, Config{Do: l.do, Now: func() time.Time { return fixedNow }})
	var got []int
	n := 3*maxEventsPerTurn + 5
	// Queued from one turn of the loop, so that none is applied before
	// all are queued: the one that event 0 queues comes after them.
	l.wait(func() {
		for i := range n {
			a.doEvent(func() {
				got = append(got, i)
				if i == 0 {
					a.doEvent(func() { got = append(got, n) })
				}
			})
		}
	})
	l.eventually(t, "every event", func() bool { return len(got) == n+1 })
	for i, v := range got[:n] {
		if v != i {
			t.Fatalf("events applied in the order %v", got)
		}
	}
}

// BenchmarkCallCardShown is the app's part of a screen pop: a call from the
// agent becomes a card in the calls window, with its notification and its
// entry in recent calls (fyne's test driver: widgets and layout, no GL).
// The real desktop's figure, GL included, is in BENCHMARKS.md.
func BenchmarkCallCardShown(b *testing.B) {
	fa := newTestFyne(b)
	l := newLoop(b)
	a := New(fa, Config{Do: l.do, Now: func() time.Time { return fixedNow }})
	c := demoCall()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		c.ID = fmt.Sprintf("call-%d", i)
		l.wait(func() {
			a.onCall(c, time.Now())
			a.cards.remove(c.ID, false)
		})
	}
	l.wait(a.cards.stopTimers)
}

// Preparing the first card at start-up (cardStack.warm, once the tray is
// up) shows nothing and leaves nothing behind: no window, card,
// notification, recent call or timer; the loop may still park. A call
// after it gets its card as before.
func TestCardWarmShowsNothing(t *testing.T) {
	ta := newTestApp(t, true)
	ta.online()
	var windows int
	test.AssertNotificationSent(t, nil, func() {
		ta.loop.wait(func() {
			windows = len(ta.fa.Driver().AllWindows())
			ta.a.cards.warm()
			ta.a.cards.warm() // once is enough
		})
	})
	ta.loop.wait(func() {
		s := ta.a.cards
		if n := len(ta.fa.Driver().AllWindows()); n != windows {
			t.Errorf("%d windows after warming, %d before", n, windows)
		}
		if len(s.cards) != 0 || len(s.byID) != 0 || s.ticker != nil || len(ta.a.recent.data.Calls) != 0 {
			t.Errorf("warming left cards %d, ids %d, a timer %v, recent calls %d", len(s.cards), len(s.byID), s.ticker != nil, len(ta.a.recent.data.Calls))
		}
		if !s.warmed {
			t.Error("not marked as warmed")
		}
	})
	c := demoCall()
	c.StartedAt = time.Now().UTC()
	ta.relay.Publish(wire.TypeCall, c)
	ta.loop.eventually(t, "card", func() bool { return ta.a.cards.byID[c.ID] != nil && len(ta.a.cards.cards) == 1 })
}

// In the tray the agent connects only once the calls window is prepared
// (cardStack.warm): until then no call can come to wait for it, and the
// tray says "connecting". Without a tray there is no warm-up to wait for
// (newTestApp: connected at once).
func TestCallsListenedForOnceWarm(t *testing.T) {
	ta := newTestApp(t, true, func(c *Config) { c.Tray = true })
	time.Sleep(300 * time.Millisecond)
	ta.loop.wait(func() {
		if ta.a.conn != agent.Connecting || ta.relay.Accepted() != 0 {
			t.Errorf("before the warm-up: %v, %d connections accepted", ta.a.conn, ta.relay.Accepted())
		}
	})
	ta.loop.wait(ta.a.cards.warm)
	ta.online()
	c := demoCall()
	c.StartedAt = time.Now().UTC()
	ta.relay.Publish(wire.TypeCall, c)
	ta.loop.eventually(t, "card", func() bool { return ta.a.cards.byID[c.ID] != nil && ta.a.cards.onScreen })
}

// A card sent ahead of the relay's log that the relay then could not store
// is taken away: off the calls window and out of recent calls.
func TestWithdrawnCardLeaves(t *testing.T) {
	ta := newTestApp(t, true)
	ta.online()
	c := demoCall()
	c.StartedAt = time.Now().UTC()
	ta.relay.SendAhead("k.op.1", c)
	ta.loop.eventually(t, "the card", func() bool { return ta.a.cards.byID[c.ID] != nil && len(ta.a.recent.data.Calls) == 1 })
	ta.relay.Withdraw("k.op.1", nil)
	ta.loop.eventually(t, "the card gone", func() bool {
		return ta.a.cards.byID[c.ID] == nil && len(ta.a.cards.cards) == 0 && len(ta.a.recent.data.Calls) == 0
	})
}

// The cards a connection that was not resumed catches up with come
// together, older ones among them: a call that rang and was missed
// within the batch gets its card as missed, for what is left of its
// minute, and no notification (it no longer rings); one that ended longer
// ago than its card would have stayed gets none, only its line in Recent
// calls; a call still ringing gets both.
func TestCaughtUpEndedCallIsQuiet(t *testing.T) {
	fa := newTestFyne(t)
	l := newLoop(t)
	a := New(fa, Config{Do: l.do, Now: func() time.Time { return fixedNow }})
	defer l.wait(a.cards.stopTimers)
	missed := demoCall()
	missed.ID, missed.StartedAt = "missed", fixedNow.Add(-90*time.Second)
	ended := missed
	ended.State, ended.EndedAt = wire.CallMissed, ptime(fixedNow.Add(-50*time.Second))
	over := demoCall()
	over.ID, over.StartedAt = "over", fixedNow.Add(-100*time.Second)
	overEnded := over
	overEnded.State, overEnded.AnsweredAt, overEnded.EndedAt = wire.CallEnded, ptime(fixedNow.Add(-90*time.Second)), ptime(fixedNow.Add(-30*time.Second))
	test.AssertNotificationSent(t, nil, func() {
		l.wait(func() {
			a.doEvent(func() { a.onCall(over, time.Now()) })
			a.doEvent(func() { a.onCall(missed, time.Now()) })
			a.doEvent(func() { a.onCall(overEnded, time.Now()) })
			a.doEvent(func() { a.onCall(ended, time.Now()) })
		})
		l.eventually(t, "the card shown", func() bool { return a.cards.onScreen })
	})
	l.wait(func() {
		if k := a.cards.byID["missed"]; k == nil || k.call.State != wire.CallMissed || k.closeTimer == nil {
			t.Errorf("the missed call's card: %+v", k)
		}
		// Ended 30 s ago: its card's 20 s were up before it came.
		if k := a.cards.byID["over"]; k != nil || len(a.cards.cards) != 1 {
			t.Errorf("the ended call's card: %+v; %d cards", k, len(a.cards.cards))
		}
		if len(a.recent.data.Calls) != 2 || a.recent.data.Calls[0].State != wire.CallMissed || a.recent.data.Calls[1].State != wire.CallEnded {
			t.Errorf("recent calls %+v", a.recent.data.Calls)
		}
	})
	ringing := demoCall()
	n := fyne.NewNotification(a.tr.callTitle(ringing), a.tr.callSummary(ringing))
	test.AssertNotificationSent(t, n, func() {
		l.wait(func() {
			a.doEvent(func() { a.onCall(ended, time.Now()) })
			a.doEvent(func() { a.onCall(ringing, time.Now()) })
		})
		l.eventually(t, "two cards", func() bool { return len(a.cards.cards) == 2 && len(a.cards.waiting) == 0 })
	})
}
