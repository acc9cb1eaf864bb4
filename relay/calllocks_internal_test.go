package relay

import (
	"testing"
	"time"
)

// TestCallLocks: a call's changes wait for each other, another call's do
// not, and the map keeps only the calls being changed.
func TestCallLocks(t *testing.T) {
	var l callLocks
	unlockA := l.lock("a")

	other := make(chan struct{})
	go func() { l.lock("b")(); close(other) }()
	select {
	case <-other:
	case <-time.After(5 * time.Second):
		t.Fatal("a change of call b waited for call a's")
	}

	same := make(chan struct{})
	go func() { l.lock("a")(); close(same) }()
	select {
	case <-same:
		t.Fatal("two changes of call a at once")
	case <-time.After(50 * time.Millisecond):
	}
	unlockA()
	select {
	case <-same:
	case <-time.After(5 * time.Second):
		t.Fatal("the second change of call a never ran")
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.m) != 0 {
		t.Errorf("%d locks kept after every change ended", len(l.m))
	}
}
