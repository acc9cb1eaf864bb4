// Package majority watches whether a relay whose JetStream is a cluster
// still reaches the cluster's majority. A node cut off from it (a network
// split, or the other nodes down) is connected to its own NATS server but
// can store nothing and receives no new events: its agents must move to a
// relay that can. The watch tells the relay when that starts and ends.
//
// Run owns the watch: one goroutine checks every Every and calls OnLost and
// OnBack from that goroutine, each once per change.
package majority

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"
)

// Checker answers whether the cluster's majority is in reach (the store's
// ReachesMajority).
type Checker interface {
	ReachesMajority(ctx context.Context) error
}

// Defaults of a Watch.
const (
	DefaultEvery = time.Second
	// DefaultAfter is how long checks must keep failing before the node
	// counts as cut off, so that a moment's loss of a route moves nobody.
	DefaultAfter = 10 * time.Second
)

// Watch checks the majority periodically.
type Watch struct {
	Check  Checker
	Every  time.Duration // between checks (DefaultEvery when 0)
	After  time.Duration // failing this long means cut off (DefaultAfter when 0)
	OnLost func()        // the node is cut off
	OnBack func()        // the node reaches the majority again
	Logger *slog.Logger

	lost atomic.Bool
}

// Lost reports whether the node is cut off from the majority now.
func (w *Watch) Lost() bool { return w.lost.Load() }

// Run checks until ctx ends.
func (w *Watch) Run(ctx context.Context) error {
	every, after := w.Every, w.After
	if every <= 0 {
		every = DefaultEvery
	}
	if after <= 0 {
		after = DefaultAfter
	}
	log := w.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t := time.NewTicker(every)
	defer t.Stop()
	var failingSince time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		cctx, cancel := context.WithTimeout(ctx, max(every, 2*time.Second))
		err := w.Check.ReachesMajority(cctx)
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		now := time.Now()
		switch {
		case err == nil && w.lost.Load():
			w.lost.Store(false)
			failingSince = time.Time{}
			log.Info("this relay reaches its cluster's majority again: agents may connect")
			if w.OnBack != nil {
				w.OnBack()
			}
		case err == nil:
			failingSince = time.Time{}
		case failingSince.IsZero():
			failingSince = now
		case !w.lost.Load() && now.Sub(failingSince) >= after:
			w.lost.Store(true)
			log.Warn("this relay is cut off from its cluster's majority: it closes its agents' sessions so that they move to another relay, and refuses new ones until the majority is back",
				"failing_for", now.Sub(failingSince).Round(time.Second), "err", err)
			if w.OnLost != nil {
				w.OnLost()
			}
		}
	}
}
