package hub

// Test hooks: the relay's tests (package relay, which cannot see an
// _test.go file of this package) wait on this. No production code calls it
// (TestTestHooksStayInTests).

// Barred reports whether the operator was disconnected for good (its token
// revoked): a session that registers from now on is closed at once.
func (h *Hub) Barred(opID string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	_, ok := h.barred[opID]
	return ok
}
