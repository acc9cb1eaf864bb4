package ui

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"
)

// Parking fyne's loop while nothing is shown.
//
// fyne's GLFW driver wakes 60 times a second to poll the window system and
// draw, whether or not a window is open (fyne issue 2506; the event-driven
// loop of fyne PR 5422 is not merged). For an app that sits in the tray all
// day that is a steady 1.5 % of a core for nothing. Every piece of pult's UI
// work reaches the UI goroutine through App.do, and the tray menu is served
// by pult itself (tray.go), so when no window is shown the app can park
// the loop: it runs a function on the UI goroutine that blocks until App.do
// has work. fyne's ticker then has no receiver, and since Go 1.23 an
// unreceived ticker puts nothing in the runtime's timer heap: the process
// sleeps until the relay, a timer of pult's or the tray menu wakes it.
//
// A parked loop polls no X events. No window is shown, so only one thing
// needs them: a paste in another app of what pult copied (X11 asks the
// holder of the clipboard, GLFW answers from its event polling). While pult
// holds the clipboard, the parked loop polls the window system's events
// every pasteWait (GLFW answers a paste then) without waking fyne; once
// another app holds it, it parks for good again.
// Everything fyne itself queues meanwhile (a settings change) runs when the
// loop next wakes.

// quietBeforePark is how long the loop must have had nothing shown before it
// is parked, so fyne finishes tearing down a window just closed.
const quietBeforePark = 2 * time.Second

// idler counts the work handed to the UI goroutine and wakes it when parked.
type idler struct {
	quietFor time.Duration // quietBeforePark; shorter in tests
	pending  atomic.Int64  // functions handed to App.do, not yet started
	wake     chan struct{} // capacity 1: "pending may have changed"
	parked   atomic.Bool   // parked now
	parks    atomic.Int64  // times parked
	log      *slog.Logger
}

func newIdler(log *slog.Logger) *idler {
	return &idler{quietFor: quietBeforePark, wake: make(chan struct{}, 1), log: log}
}

// handed records one more function queued for the UI goroutine; started
// is called by that function when it runs.
func (i *idler) handed() {
	i.pending.Add(1)
	select {
	case i.wake <- struct{}{}:
	default: // a wake-up is already waiting
	}
}

func (i *idler) started() { i.pending.Add(-1) }

// park blocks the calling (UI) goroutine until work is handed to it, ctx
// ends or, with a limit, the limit has passed; it says whether the limit
// did (or, on Windows, whether the window system has messages for the
// thread: waitForWork). It returns at once if work is already waiting. A
// stale wake-up only makes it look again.
func (i *idler) park(ctx context.Context, limit time.Duration) (expired bool) {
	if i.pending.Load() > 0 {
		return false
	}
	i.parks.Add(1)
	i.parked.Store(true)
	defer i.parked.Store(false)
	return waitForWork(ctx, i.wake, func() bool { return i.pending.Load() > 0 }, limit)
}

// parkWhenQuiet parks the UI loop whenever quiet (asked on the UI goroutine)
// has held for quietFor, until ctx ends. quiet also gives a limit to the
// park: 0 for as long as nothing happens, or how long the window system may
// wait for an answer (while pult holds the clipboard, see App.quiet); each
// time the limit passes, serve answers the window system without waking
// fyne, and quiet is asked again. do runs a function on the UI goroutine
// without counting it as work (fyne.Do). It returns once a park in progress
// has ended.
func (i *idler) parkWhenQuiet(ctx context.Context, do func(func()), quiet func() (bool, time.Duration), serve func()) {
	t := time.NewTimer(i.quietFor)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		done := make(chan struct{})
		do(func() {
			defer close(done)
			// After the loop has ended fyne runs f at once on this
			// goroutine: ctx, ended before the quit, keeps it off the
			// App's state then.
			if ctx.Err() != nil {
				return
			}
			since := time.Now()
			last := time.Duration(-1) // the last park's limit, for the log
			for {
				ok, limit := quiet()
				if !ok {
					break
				}
				if limit != last {
					last = limit
					if limit == 0 {
						i.log.Debug("loop parked: no window shown")
					} else {
						i.log.Debug("loop parked: no window shown; pult holds the clipboard, so it answers pastes", "within", limit)
					}
				}
				if !i.park(ctx, limit) {
					break
				}
				serve()
			}
			if last >= 0 {
				i.log.Debug("loop woken", "parked", time.Since(since).Round(time.Millisecond))
			}
		})
		select {
		case <-done:
		case <-ctx.Done():
			// The loop is ending: whatever is queued after us (the
			// quit) wakes the park, or fyne drains the queue unrun.
			return
		}
		t.Reset(i.quietFor)
	}
}
