package ui

import (
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/container"

	"github.com/pult/pult/agent/wire"
)

const (
	cardWidth     = 400
	maxCardsShown = 640 // px of cards before the stack scrolls
	maxDismissed  = 500 // remembered dismissed call ids
)

// cardStack is the calls window: every live call's card, newest on
// top, in one small always-on-top window that does not take the
// keyboard focus. Several calls at once stack; the window hides when the
// last card goes.
//
// The agent's events are applied in batches (App.applyEvents): every
// frame come by the time the UI goroutine takes them. The new cards of a
// batch are put on screen together once the batch is applied (showNew):
// calls whose frames come together are laid out and painted once, so the
// second card does not wait for the first one's paint (BENCHMARKS.md,
// "Session 12 — desktop").
type cardStack struct {
	a         *App
	w         fyne.Window
	box       *fyne.Container
	scroll    *container.Scroll
	cards     []*callCard
	byID      map[string]*callCard
	dismissed map[string]time.Time
	ticker    *ticker
	warmed    bool
	hook      *nativeHook // the window's content layout (showUnseen)
	onScreen  bool        // the window is shown (a card is on screen)
	batching  bool        // in batch: new cards wait for its end
	// waiting is what runs once new cards are on screen (update).
	waiting []shownWaiter
	// ready is closed once the window is prepared (warm) or will not be:
	// the agent starts listening for calls then (App.startSession).
	ready   chan struct{}
	isReady bool // ready is closed (readyForCalls)
}

// shownWaiter is what runs once k is on screen.
type shownWaiter struct {
	k *callCard
	f func()
}

func newCardStack(a *App) *cardStack {
	return &cardStack{a: a, byID: map[string]*callCard{}, dismissed: map[string]time.Time{}, ready: make(chan struct{})}
}

// update shows c: a new card, or the existing card moved on. For a new
// card, shown runs once it is on screen; not if it is gone before
// (dismissed, withdrawn).
func (s *cardStack) update(c wire.Call, shown func()) {
	if k := s.byID[c.ID]; k != nil {
		k.set(c)
		if !s.scheduleClose(k) {
			// Its time was up before it came (a call that rang and ended
			// within a connection's catch-up): in Recent calls only.
			s.remove(c.ID, false)
			return
		}
		if len(s.waiting) == 0 { // else showNew lays the window out
			s.layout()
		}
		return
	}
	if _, gone := s.dismissed[c.ID]; gone || !s.worthShowing(c) {
		return
	}
	k := newCallCard(s.a.tr, c, s.actions())
	s.cards = append(s.cards, k)
	s.byID[c.ID] = k
	s.ensureWindow()
	// Newest on top: a new call is what needs the operator now.
	s.box.Objects = append([]fyne.CanvasObject{k.obj}, s.box.Objects...)
	s.scheduleClose(k) // worthShowing left it time
	s.waiting = append(s.waiting, shownWaiter{k, shown})
	if !s.batching {
		s.showNew()
	}
}

// batch runs f, which applies the agent's events, and then puts the cards
// it made on screen together (showNew). UI goroutine.
func (s *cardStack) batch(f func()) {
	s.batching = true
	defer func() {
		s.batching = false
		if len(s.waiting) > 0 {
			s.showNew()
		}
	}()
	f()
}

// showNew puts the cards made since it last ran on screen, with one layout
// and one paint, and runs what waits for them. UI goroutine.
func (s *cardStack) showNew() {
	waiting := s.waiting
	s.waiting = nil
	if len(s.cards) > 0 {
		// Laid out, not refreshed: Refresh would redraw every card already
		// shown, their icons decoded again, for the ones that are new.
		s.box.Layout.Layout(s.box.Objects, s.box.Size())
		canvas.Refresh(s.box)
		s.scroll.ScrollToTop()
		if s.onScreen && s.size().Height > s.w.Canvas().Size().Height {
			// The window is on screen and must grow to take the new cards
			// (at the second card, as a rule: two cards reach
			// maxCardsShown). They, on top, are drawn first in the window
			// as it is, and the window grows right after: growing a shown
			// window costs a relayout and, with a software renderer, a new
			// back buffer (10–16 ms here), which made the second card the
			// slowest of the later ones (BENCHMARKS.md, "Issue 16: the
			// second card").
			s.show()
			s.a.do(s.layout)
		} else {
			s.layout()
			s.show()
		}
	}
	for _, w := range waiting {
		if s.byID[w.k.call.ID] == w.k {
			w.f()
		}
	}
}

// worthShowing: a call replayed after an outage gets a card only if it is
// recent: ringing or talking for less than two minutes, or missed a moment
// ago. Older ones are only in Recent calls.
func (s *cardStack) worthShowing(c wire.Call) bool {
	if !c.State.Final() {
		return s.a.fresh(c)
	}
	if c.State != wire.CallMissed || c.EndedAt == nil {
		return false
	}
	return s.a.serverNow().Sub(*c.EndedAt) < closeAfterMissed
}

func (s *cardStack) actions() cardActions {
	a := s.a
	return cardActions{
		callBack: func(c wire.Call, done func(string, bool)) {
			a.dial(c.Phone, func(res wire.DialResult, err error) {
				if err != nil {
					done(a.tr.dialError(err), true)
					return
				}
				done(a.tr.T("dial.pbxCalling", "Number", res.Display), false)
			})
		},
		callback: func(c wire.Call) { a.openCallback(c.Phone) },
		copy:     func(c wire.Call) { a.copyText(c.Phone) },
		openCRM:  func(c wire.Call) { a.openURL(crmLink(c)) },
		dismiss:  func(c wire.Call) { s.remove(c.ID, true) },
		now:      a.serverNow,
	}
}

// scheduleClose closes a card a while after its call is over for us,
// counted from the call's end. It reports false when that time is up
// already (the card came late: a catch-up's); the caller removes it.
func (s *cardStack) scheduleClose(k *callCard) bool {
	if k.closeTimer != nil {
		k.closeTimer.Stop()
		k.closeTimer = nil
	}
	d := k.closeAfter()
	if d == 0 {
		return true
	}
	if e := k.call.EndedAt; e != nil {
		if past := s.a.serverNow().Sub(*e); past > 0 {
			if d -= past; d <= 0 {
				return false
			}
		}
	}
	id, state := k.call.ID, k.call.State
	k.closeTimer = time.AfterFunc(d, func() {
		s.a.do(func() {
			if cur := s.byID[id]; cur == k && cur.call.State == state {
				s.remove(id, false)
			}
		})
	})
	return true
}

// remove takes a card away; dismissed cards stay away if their call moves on.
func (s *cardStack) remove(id string, dismissed bool) {
	k := s.byID[id]
	if k == nil {
		return
	}
	if k.closeTimer != nil {
		k.closeTimer.Stop()
	}
	delete(s.byID, id)
	for i, c := range s.cards {
		if c == k {
			s.cards = append(s.cards[:i], s.cards[i+1:]...)
			break
		}
	}
	s.box.Remove(k.obj)
	if dismissed {
		s.dismissed[id] = time.Now()
		s.pruneDismissed()
	}
	s.layout()
	if len(s.cards) == 0 {
		s.w.Hide()
		s.onScreen = false
	}
}

func (s *cardStack) pruneDismissed() {
	if len(s.dismissed) <= maxDismissed {
		return
	}
	var oldestID string
	var oldest time.Time
	for id, at := range s.dismissed {
		if oldestID == "" || at.Before(oldest) {
			oldestID, oldest = id, at
		}
	}
	delete(s.dismissed, oldestID)
}

// clear removes every card (sign out).
func (s *cardStack) clear() {
	for len(s.cards) > 0 {
		s.remove(s.cards[0].call.ID, false)
	}
}

// warm does, once and before any call, the work that made the first card
// of a run slow (BENCHMARKS.md, "Issue 16: the first card"): a card laid
// out for nothing loads and measures every font the card uses (fyne parses
// each style's faces, its emoji font and a fallback from the system's on
// first use: 50–220 ms here); then, with that card as its content, the
// calls window is made, shown where nothing can see it and hidden again
// (prepareWindow): its window, GL context and shaders, and its first
// paint, which loads the graphics driver and compiles the drawing
// pipelines. Where a window cannot be shown unseen (not X11), a GL
// context made and dropped loads the graphics driver at least
// (prepareGL), and the rest is left to the first card. Nothing can be
// seen, flash or take the focus. UI goroutine; the app calls it once the
// tray item is up, so the tray comes no later.
//
// The agent starts listening for calls once it is done (ready): its GL
// part holds the UI goroutine for 220–340 ms here, and a card whose frame
// came meanwhile waited for it, while one that came before it paid for it
// (358–587 ms either way). A call that rings meanwhile is sent on
// connection, as the relay resumes the agent's stream (BENCHMARKS.md,
// "Session 12 — desktop").
func (s *cardStack) warm() {
	// After the loop has ended fyne runs queued work off its thread: the
	// app is ending then (as in tray.attach), and GLFW must not be called.
	if s.warmed || s.a.tray.ended.Load() {
		return
	}
	s.warmed = true
	start := time.Now()
	now := s.a.serverNow()
	k := newCallCard(s.a.tr, wire.Call{
		ID: "warm", Direction: wire.DirectionIn, State: wire.CallRinging, StartedAt: now,
		Phone: "+79160000000", Line: "+74950000000", Site: "pult",
		Client: &wire.Client{Name: "pult"}, ManagerState: wire.ManagerPending,
	}, cardActions{now: s.a.serverNow})
	k.obj.Resize(fyne.NewSize(cardWidth, k.obj.MinSize().Height))
	text := time.Since(start)
	// The GL part as work of its own: a tray click that came meanwhile is
	// answered first.
	s.a.do(func() {
		if s.a.tray.ended.Load() {
			return
		}
		start := time.Now()
		by := "window"
		if !s.prepareWindow(k) {
			prepareGL()
			by = "driver"
		}
		s.a.log.Debug("first card prepared", "text", text.Round(time.Millisecond),
			"gl", time.Since(start).Round(time.Millisecond), "by", by)
		s.readyForCalls()
	})
}

// readyForCalls lets the agent listen for calls (ready), once. UI
// goroutine.
func (s *cardStack) readyForCalls() {
	if !s.isReady {
		s.isReady = true
		close(s.ready)
	}
}

// prepareWindow makes the calls window's native side before any call
// (showUnseen), with k, a card for nothing, as its only card for the first
// paint; k is gone from it afterwards. It reports whether it did: not
// where windows cannot be shown unseen (unseenShows). UI goroutine.
func (s *cardStack) prepareWindow(k *callCard) bool {
	if !unseenShows {
		return false
	}
	s.ensureWindow()
	s.box.Objects = []fyne.CanvasObject{k.obj}
	s.layout()
	// Centred, as window managers commonly place a new window of its size
	// (Openbox, for one, put the first card there before).
	ok := showUnseen(s.w, s.hook, s.w.CenterOnScreen, s.a.log)
	s.box.Objects = nil
	return ok
}

func (s *cardStack) ensureWindow() {
	if s.w != nil {
		return
	}
	s.w = s.a.fa.NewWindow("pult — " + s.a.tr.T("window.calls"))
	s.w.SetIcon(AppIcon)
	s.box = container.NewVBox()
	s.scroll = container.NewVScroll(s.box)
	s.hook = &nativeHook{w: s.w}
	s.w.SetContent(container.New(s.hook, s.scroll))
	s.w.SetCloseIntercept(func() {
		// Closing the window dismisses every card, live ones included:
		// they come back only for a new call.
		for len(s.cards) > 0 {
			s.remove(s.cards[0].call.ID, true)
		}
	})
	s.a.bindKeys(s.w, func() {
		if n := len(s.cards); n > 0 {
			s.remove(s.cards[n-1].call.ID, true)
		}
	})
}

// layout sizes the window to its cards and runs the timer while a card
// needs it.
func (s *cardStack) layout() {
	if s.w == nil {
		return
	}
	size := s.size()
	s.scroll.SetMinSize(size)
	s.w.Resize(size)
	live := false
	for _, k := range s.cards {
		live = live || k.live()
	}
	if live {
		s.startTimers()
	} else {
		s.stopTimers()
	}
}

// size is the window's size for its cards.
func (s *cardStack) size() fyne.Size {
	size := s.box.MinSize()
	size.Width = fyne.Max(size.Width, cardWidth)
	size.Height = fyne.Min(size.Height, maxCardsShown)
	return size
}

func (s *cardStack) show() {
	s.onScreen = true
	showWithoutFocus(s.w)
}

// startTimers ticks once a second while a live card is shown; nothing runs
// when no call is live.
func (s *cardStack) startTimers() {
	if s.ticker != nil {
		return
	}
	s.ticker = s.a.everySecond(func() {
		for _, k := range s.cards {
			k.tick()
		}
	})
}

func (s *cardStack) stopTimers() {
	if s.ticker != nil {
		s.ticker.stop()
		s.ticker = nil
	}
}

// serverNow is the relay's clock, which stamps the calls.
func (a *App) serverNow() time.Time { return a.cfg.Now().Add(a.skew) }
