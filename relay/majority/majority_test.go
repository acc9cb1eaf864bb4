package majority_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pult/pult/relay/majority"
)

// switchable is a Checker whose answer the test sets.
type switchable struct{ down atomic.Bool }

func (s *switchable) ReachesMajority(context.Context) error {
	if s.down.Load() {
		return errors.New("no meta leader")
	}
	return nil
}

// A node is cut off only after its checks keep failing for After, is told
// once, and is told once again when the majority is back; a short blip
// (an election) changes nothing.
func TestWatch(t *testing.T) {
	var c switchable
	var mu sync.Mutex
	var got []string
	note := func(s string) func() {
		return func() { mu.Lock(); got = append(got, s); mu.Unlock() }
	}
	w := &majority.Watch{Check: &c, Every: 10 * time.Millisecond, After: 150 * time.Millisecond, OnLost: note("lost"), OnBack: note("back")}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	seen := func() []string { mu.Lock(); defer mu.Unlock(); return append([]string(nil), got...) }

	// A blip shorter than After.
	c.down.Store(true)
	time.Sleep(60 * time.Millisecond)
	c.down.Store(false)
	time.Sleep(200 * time.Millisecond)
	if s := seen(); len(s) != 0 || w.Lost() {
		t.Fatalf("after a short blip: %v, lost %v", s, w.Lost())
	}

	// Cut off for good.
	c.down.Store(true)
	for deadline := time.Now().Add(5 * time.Second); !w.Lost(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("never cut off")
		}
	}
	time.Sleep(100 * time.Millisecond)
	c.down.Store(false)
	for deadline := time.Now().Add(5 * time.Second); w.Lost(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("never back")
		}
	}
	time.Sleep(50 * time.Millisecond)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if s := seen(); len(s) != 2 || s[0] != "lost" || s[1] != "back" {
		t.Fatalf("told %v, want [lost back]", s)
	}
}
