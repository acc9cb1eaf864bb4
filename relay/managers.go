package relay

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/pult/pult/agent/wire"
	"github.com/pult/pult/relay/call"
	"github.com/pult/pult/relay/retailcrm"
)

// managerSource asks the CRM for a number's responsible manager.
type managerSource interface {
	Manager(ctx context.Context, phone string) (*retailcrm.ManagerResult, error)
}

// limitedManagers takes a token from each limiter (strictest last) before
// asking; a lookup that would wait past its deadline fails at once.
type limitedManagers struct {
	src      managerSource
	limiters []*rate.Limiter
}

func (l limitedManagers) Manager(ctx context.Context, phone string) (*retailcrm.ManagerResult, error) {
	for _, lim := range l.limiters {
		if err := lim.Wait(ctx); err != nil {
			return nil, fmt.Errorf("retailcrm rate limit: %w", err)
		}
	}
	return l.src.Manager(ctx, phone)
}

// managers caches responsible-manager lookups per number for a short while
// and folds concurrent lookups of one number into one request.
type managers struct {
	src managerSource
	ttl time.Duration

	mu       sync.Mutex
	cache    map[string]cachedManager
	inflight map[string]*lookup
}

type cachedManager struct {
	res *retailcrm.ManagerResult
	at  time.Time
}

type lookup struct {
	done chan struct{}
	res  *retailcrm.ManagerResult
	err  error
}

func newManagers(src managerSource, ttl time.Duration) *managers {
	return &managers{src: src, ttl: ttl, cache: map[string]cachedManager{}, inflight: map[string]*lookup{}}
}

// cached returns a fresh cached answer.
func (m *managers) cached(phone string) (*retailcrm.ManagerResult, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.cache[phone]
	if !ok || time.Since(c.at) > m.ttl {
		return nil, false
	}
	return c.res, true
}

// get asks the CRM (once for concurrent callers) and caches success.
func (m *managers) get(ctx context.Context, phone string) (*retailcrm.ManagerResult, error) {
	if res, ok := m.cached(phone); ok {
		return res, nil
	}
	m.mu.Lock()
	l, ok := m.inflight[phone]
	if !ok {
		l = &lookup{done: make(chan struct{})}
		m.inflight[phone] = l
		m.mu.Unlock()
		l.res, l.err = m.src.Manager(ctx, phone)
		m.mu.Lock()
		delete(m.inflight, phone)
		if l.err == nil && m.ttl > 0 {
			m.cache[phone] = cachedManager{res: l.res, at: time.Now()}
			if len(m.cache) > 10000 {
				m.evict()
			}
		}
		m.mu.Unlock()
		close(l.done)
		return l.res, l.err
	}
	m.mu.Unlock()
	select {
	case <-l.done:
		return l.res, l.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// evict drops expired entries; called with mu held.
func (m *managers) evict() {
	for k, c := range m.cache {
		if time.Since(c.at) > m.ttl {
			delete(m.cache, k)
		}
	}
}

// setManager copies a CRM answer onto a call record; free says whether the
// manager can take a call now (see calls.routable).
func setManager(c *call.Record, res *retailcrm.ManagerResult, free bool) {
	c.Manager, c.Client, c.Links = nil, nil, nil
	if res == nil {
		c.ManagerState = wire.ManagerNone
		return
	}
	if cu := res.Customer; cu != nil {
		c.Client = &wire.Client{ID: cu.ID, Name: cu.FullName(), Email: cu.Email}
	}
	if m := res.Manager; m != nil {
		c.Manager = &wire.Manager{ID: m.ID, Name: m.FullName(), Code: m.Code, Email: m.Email, Free: free}
		c.ManagerState = wire.ManagerFound
	} else {
		c.ManagerState = wire.ManagerNone
	}
	l := res.Links
	if l != (retailcrm.Links{}) {
		c.Links = &wire.Links{Customer: l.Customer, NewOrder: l.NewOrder, LastOrder: l.LastOrder, NewCustomer: l.NewCustomer}
	}
}

// errNoCRM is the outcome of a lookup that a relay without retailCRM
// resumes (its configuration changed while the call waited).
var errNoCRM = errors.New("retailCRM is not configured")

// resumeLookups finishes the responsible-manager lookups that a stop, clean
// or not, left pending: every stored call still waiting for one gets its
// outcome, on the same event streams as its first card. A few run at once;
// they share the lookups' rate limit and cache.
func (c *calls) resumeLookups(ctx context.Context) {
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	n := 0
	err := c.store.CallKeys(ctx, func(key string) bool {
		rec, _, _, err := c.loadCall(ctx, key, loadStored)
		if err != nil || rec == nil || rec.ManagerState != wire.ManagerPending {
			return true
		}
		n++
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return false
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if c.mgr == nil {
				c.settleManager(ctx, key, nil, errNoCRM)
				return
			}
			c.resolveManager(ctx, key, rec.Phone)
		}()
		return true
	})
	if err != nil && ctx.Err() == nil {
		c.log.Warn("pending manager lookups not resumed", "err", err)
	}
	wg.Wait()
	if n > 0 {
		c.log.Info("resumed pending manager lookups", "calls", n)
	}
}

// routable applies retailCRM's rule for naming a responsible manager to
// route a call to, with the relay's facts: the manager is a pult operator
// (by CRM user id, else extension code) who is signed in and free (unless
// ignoreStatus), and there is an extension code to route to. It returns
// that code.
func (c *calls) routable(m *retailcrm.Manager, ignoreStatus bool) (code string, ok bool) {
	op, found := c.ops.ByUserID(m.ID)
	if !found && m.Code != "" {
		op, found = c.ops.ByCode(m.Code)
	}
	code = m.Code
	if found && op.Code != "" {
		code = op.Code
	}
	if code == "" {
		return "", false
	}
	if ignoreStatus {
		return code, true
	}
	return code, found && c.board.Available(op.ID)
}

// managerFree says whether the manager a lookup named could take a call now.
func (c *calls) managerFree(res *retailcrm.ManagerResult) bool {
	if res == nil || res.Manager == nil {
		return false
	}
	_, ok := c.routable(res.Manager, false)
	return ok
}
