package ui

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"
)

// waitFor polls cond until it holds or a second has passed.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 1s: %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// startParking runs parkWhenQuiet on a test loop and stops it at cleanup.
func startParking(t *testing.T, quiet func() (bool, time.Duration), serve func()) (*idler, *loop) {
	l := newLoop(t)
	i := newIdler(slog.New(slog.DiscardHandler))
	i.quietFor = 5 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		i.parkWhenQuiet(ctx, l.do, quiet, serve)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return i, l
}

// hand queues f as App.do does.
func hand(i *idler, l *loop, f func()) {
	i.handed()
	l.do(func() {
		i.started()
		f()
	})
}

func TestParkedLoopWakesForWork(t *testing.T) {
	i, l := startParking(t, func() (bool, time.Duration) { return true, 0 }, func() {})
	waitFor(t, "the loop parked", i.parked.Load)

	// The parked loop runs nothing else…
	var plain atomic.Bool
	l.do(func() { plain.Store(true) })
	time.Sleep(20 * time.Millisecond)
	if plain.Load() {
		t.Fatal("a function not handed through the idler ran while the loop was parked")
	}

	// …until work is handed to it: then it runs, with what queued before.
	ran := make(chan struct{})
	hand(i, l, func() { close(ran) })
	select {
	case <-ran:
	case <-time.After(time.Second):
		t.Fatal("handed work did not wake the parked loop")
	}
	if !plain.Load() {
		t.Error("work queued while parked did not run on waking")
	}
	if i.parked.Load() {
		t.Error("still parked while running work")
	}

	// Quiet again, it parks again.
	n := i.parks.Load()
	waitFor(t, "parked again", func() bool { return i.parks.Load() > n && i.parked.Load() })
	if p := i.pending.Load(); p != 0 {
		t.Errorf("pending = %d after the work ran", p)
	}
}

func TestLoopNotParkedWhileSomethingIsShown(t *testing.T) {
	var asked atomic.Int64
	i, _ := startParking(t, func() (bool, time.Duration) { asked.Add(1); return false, 0 }, func() {})
	waitFor(t, "quiet asked three times", func() bool { return asked.Load() >= 3 })
	if n := i.parks.Load(); n != 0 {
		t.Fatalf("parked %d times with a window shown", n)
	}
}

func TestParkReturnsAtOnceWithWorkWaiting(t *testing.T) {
	i := newIdler(slog.New(slog.DiscardHandler))
	i.handed() // queued, not started yet
	done := make(chan struct{})
	go func() {
		defer close(done)
		i.park(context.Background(), 0)
	}()
	select {
	case <-done:
	case <-time.After(time.Second):
		t.Fatal("park blocked with work waiting")
	}
	if i.parks.Load() != 0 {
		t.Error("counted as parked")
	}
}

func TestParkEndsWithItsContext(t *testing.T) {
	i := newIdler(slog.New(slog.DiscardHandler))
	i.handed()
	i.started() // leaves a stale wake-up behind
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		i.park(ctx, 0)
	}()
	waitFor(t, "parked", i.parked.Load)
	time.Sleep(5 * time.Millisecond) // the stale wake-up is consumed, not obeyed
	if !i.parked.Load() {
		t.Fatal("a stale wake-up ended the park")
	}
	cancel()
	select {
	case <-done:
	case <-time.After(time.Second):
		t.Fatal("park outlived its context")
	}
}

// Holding the clipboard, the parked loop answers the window system every
// limit, asks again whether it still holds it, and parks for good once it
// does not; nothing else runs meanwhile.
func TestParkedLoopServesWhileHoldingTheClipboard(t *testing.T) {
	var holding atomic.Bool
	holding.Store(true)
	var serves, fullParks atomic.Int64
	i, l := startParking(t, func() (bool, time.Duration) {
		if holding.Load() {
			return true, 5 * time.Millisecond
		}
		fullParks.Add(1)
		return true, 0
	}, func() { serves.Add(1) })
	waitFor(t, "served three times", func() bool { return serves.Load() >= 3 })
	var plain atomic.Bool
	l.do(func() { plain.Store(true) })
	time.Sleep(20 * time.Millisecond)
	if plain.Load() {
		t.Fatal("the loop ran other work between serving")
	}
	holding.Store(false)
	waitFor(t, "a park without a limit", func() bool { return fullParks.Load() > 0 && i.parked.Load() })
	n := serves.Load()
	time.Sleep(30 * time.Millisecond)
	if serves.Load() != n {
		t.Error("still serving after the clipboard went to another app")
	}
	hand(i, l, func() {})
	waitFor(t, "the plain function run once woken", plain.Load)
}

func TestParkLimitExpires(t *testing.T) {
	i := newIdler(slog.New(slog.DiscardHandler))
	start := time.Now()
	if !i.park(context.Background(), 10*time.Millisecond) {
		t.Fatal("a limited park did not say its limit expired")
	}
	if d := time.Since(start); d < 10*time.Millisecond {
		t.Fatalf("parked %s, limit 10ms", d)
	}
}
