package presence

// Test hooks: the relay's tests (package relay, which cannot see an
// _test.go file of this package) kill a node through this. No production
// code calls it (TestTestHooksStayInTests).

// Abandon makes the tracker write nothing more and Run end without
// removing this node's record, as if the process had been killed: the
// others see its operators go when the record expires.
func (t *Tracker) Abandon() { t.abandoned.Store(true) }
