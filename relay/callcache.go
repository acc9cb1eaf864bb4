package relay

import "sync"

// callCacheGeneration is how many calls one generation of the cache holds:
// the cache keeps the last one to two generations' worth of calls stored,
// minutes of calls even at a hundred new calls a second.
const callCacheGeneration = 4096

// callCache keeps the record of recent calls as this relay last stored them,
// with their revision in the calls bucket, so that the next event of a call
// does not read it back (a JetStream round trip and a JSON decode on the
// webhook's path). It is only a hint: every write of a record is a
// compare-and-set on that revision, which fails when the entry is stale
// (another relay node wrote the call, or the key expired), and an event
// that would write nothing is checked against the bucket (processCall).
//
// Two generations bound it without per-entry bookkeeping: entries go into
// cur; a full cur becomes prev, and what was prev is forgotten. A hit in
// prev moves the entry back to cur.
type callCache struct {
	mu        sync.Mutex
	size      int // entries per generation
	cur, prev map[string]cachedCall
}

type cachedCall struct {
	rec *callRecord // never changed once cached: get hands out copies
	rev uint64
}

func newCallCache(size int) *callCache {
	return &callCache{size: size, cur: make(map[string]cachedCall, size)}
}

// get returns a copy of the call's record, which the caller may change, and
// its revision.
func (c *callCache) get(key string) (*callRecord, uint64, bool) {
	c.mu.Lock()
	e, ok := c.cur[key]
	if !ok {
		if e, ok = c.prev[key]; ok {
			delete(c.prev, key)
			c.addLocked(key, e)
		}
	}
	c.mu.Unlock()
	if !ok {
		return nil, 0, false
	}
	return e.rec.clone(), e.rev, true
}

// put records that rec is stored at revision rev. It keeps a copy: the
// caller's record may change afterwards.
func (c *callCache) put(key string, rec *callRecord, rev uint64) {
	e := cachedCall{rec: rec.clone(), rev: rev}
	c.mu.Lock()
	delete(c.prev, key)
	c.addLocked(key, e)
	c.mu.Unlock()
}

// drop forgets a call whose stored revision is unknown (a write failed).
func (c *callCache) drop(key string) {
	c.mu.Lock()
	delete(c.cur, key)
	delete(c.prev, key)
	c.mu.Unlock()
}

func (c *callCache) addLocked(key string, e cachedCall) {
	if _, ok := c.cur[key]; !ok && len(c.cur) >= c.size {
		c.prev, c.cur = c.cur, make(map[string]cachedCall, c.size)
	}
	c.cur[key] = e
}

// clone copies the record deeply enough to change it: apply changes legs
// in place; the pointer fields (times, client, manager, links) are replaced,
// never changed in place.
func (c *callRecord) clone() *callRecord {
	r := *c
	r.Legs = make(map[string]*leg, len(c.Legs))
	for id, l := range c.Legs {
		lc := *l
		r.Legs[id] = &lc
	}
	return &r
}
