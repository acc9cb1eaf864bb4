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

// CatchingUp reports whether a session of the operator is still catching
// up from the log (cards ahead of the log are not sent to it meanwhile).
func (h *Hub) CatchingUp(opID string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.sessions[opID] {
		s.mu.Lock()
		c := s.catchingUp
		s.mu.Unlock()
		if c {
			return true
		}
	}
	return false
}
