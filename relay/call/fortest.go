package call

import "maps"

// Test hooks: the relay's tests (package relay, which cannot see an
// _test.go file of this package) rewind a cache through these. No
// production code calls them (TestTestHooksStayInTests).

// CacheForTest is a handle on a Cache's internals for tests elsewhere.
type CacheForTest struct{ c *Cache }

// ForTest returns c's test handle.
func (c *Cache) ForTest() CacheForTest { return CacheForTest{c} }

// Rewind returns a function that puts the cache back as it is now: its
// owner then holds calls as they were before, as a relay node does after
// another one changed them.
func (t CacheForTest) Rewind() (rewind func()) {
	c := t.c
	c.mu.Lock()
	cur, prev := maps.Clone(c.cur), maps.Clone(c.prev)
	c.mu.Unlock()
	return func() {
		c.mu.Lock()
		c.cur, c.prev = cur, prev
		c.mu.Unlock()
	}
}
