package board

import "github.com/pult/pult/agent/wire"

// Test hooks: the relay's tests (package relay, which cannot see an
// _test.go file of this package) watch and stop the board through these.
// No production code calls them (TestTestHooksStayInTests).

// Snapshot is the board now, as a new subscriber would get it.
func (b *Board) Snapshot() wire.QueueSnapshot {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.advanceLocked(b.clockNow())
	b.flushLocked()
	return b.snapshotLocked()
}

// Subscribers counts the subscriptions.
func (b *Board) Subscribers() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.subs)
}

// Abandon makes Run end without a last checkpoint and without releasing
// the checkpoint lease, as if the process had been killed.
func (b *Board) Abandon() { b.abandoned.Store(true) }
