// Package sim holds strict simulators of the partners around retailCRM's
// telephony integration: CRM plays retailCRM's API (what the relay calls),
// PBX plays a PBX integrated with retailCRM (what the relay sends makeCall
// and changeStatus queries to). Both are plain http.Handlers, usable on any
// mux or listener: tests mount them on httptest servers, the product's demo
// on loopback listeners. They refuse what the real partner would refuse, and
// a little more: anything a correct relay never sends (unknown parameters, a
// key in the URL, an unescaped "+") is an error too, so tests notice.
//
// Both record every request and let tests wait for them without sleeping;
// knobs (delay, hang, forced failures) are safe for concurrent use.
package sim

import (
	"context"
	"net/http/httptest"
	"sync"
	"time"
)

// StatusClientGone is recorded for a request whose client went away before
// the simulator answered (after SetHang or during SetDelay).
const StatusClientGone = 499

// NewCRMServer starts an httptest server (plain HTTP on loopback) serving c.
// The caller closes it.
func NewCRMServer(c *CRM) *httptest.Server { return httptest.NewServer(c) }

// NewPBXServer starts an httptest server serving p. The caller closes it.
func NewPBXServer(p *PBX) *httptest.Server { return httptest.NewServer(p) }

// knobs are the behaviours shared by both simulators.
type knobs struct {
	delay time.Duration
	hang  bool
}

// stall applies hang and delay; false means the client went away.
func (k knobs) stall(ctx context.Context) bool {
	if k.hang {
		<-ctx.Done()
		return false
	}
	if k.delay > 0 {
		t := time.NewTimer(k.delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return false
		}
	}
	return ctx.Err() == nil
}

// notifier wakes waiters when records change. Its owner's mutex guards it.
type notifier struct{ ch chan struct{} }

func (n *notifier) wait() <-chan struct{} {
	if n.ch == nil {
		n.ch = make(chan struct{})
	}
	return n.ch
}

func (n *notifier) broadcast() {
	if n.ch != nil {
		close(n.ch)
		n.ch = nil
	}
}

// waitFor blocks until check, run under mu, reports done, or ctx ends.
func waitFor(ctx context.Context, mu *sync.Mutex, n *notifier, check func() bool) error {
	for {
		mu.Lock()
		if check() {
			mu.Unlock()
			return nil
		}
		ch := n.wait()
		mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
