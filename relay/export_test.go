package relay

import (
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/common/expfmt"

	"github.com/pult/pult/agent/wire"
	"github.com/pult/pult/relay/config"
)

// NewWithClock is New with the relay's clock (call times, the queue
// board's minutes and days) replaced, for tests that cross midnight.
func NewWithClock(cfg config.Config, logger *slog.Logger, now func() time.Time) *Server {
	s := New(cfg, logger)
	s.clock = now
	return s
}

// PauseAgentHandshakes makes every agent handshake call f between the
// token check and the session's start.
func (s *Server) PauseAgentHandshakes(f func()) { s.afterAgentAuth = f }

// Barred reports whether the relay has disconnected the operator for good
// (it has seen the token revoked).
func (s *Server) Barred(opID string) bool { return s.hub.Barred(opID) }

// CatchingUp reports whether a session of the operator is still catching
// up from the log.
func (s *Server) CatchingUp(opID string) bool { return s.hub.CatchingUp(opID) }

// BoardSnapshot is the queue board now, as a new subscriber would get it.
func (s *Server) BoardSnapshot() wire.QueueSnapshot { return s.board.Snapshot() }

// BoardSubscribers counts the queue board's subscriptions.
func (s *Server) BoardSubscribers() int { return s.board.Subscribers() }

// RewindCallCache returns a function that puts the call cache back as it is
// now: the relay then holds calls as they were before, as a relay node does
// after another one changed them.
func (s *Server) RewindCallCache() (rewind func()) { return s.calls.cache.ForTest().Rewind() }

// MetricsText is the relay's metrics in the text exposition format, read
// from its registry (not from any listener).
func (s *Server) MetricsText() string {
	mfs, err := s.metrics.reg.Gather()
	if err != nil {
		return "gather: " + err.Error()
	}
	var b strings.Builder
	for _, mf := range mfs {
		expfmt.MetricFamilyToText(&b, mf)
	}
	return b.String()
}

// NewWithStoragePoll is New with storage usage read every period instead of
// every few seconds.
func NewWithStoragePoll(cfg config.Config, logger *slog.Logger, every time.Duration) *Server {
	s := New(cfg, logger)
	s.storagePoll = every
	return s
}

// NewWithRecentWindow is New with sessions that are not resumed starting at
// their operator's events of the last window instead of hub.RecentWindow.
func NewWithRecentWindow(cfg config.Config, logger *slog.Logger, window time.Duration) *Server {
	s := New(cfg, logger)
	s.recentWindow = window
	return s
}

// StorageFull reports whether the relay refuses new work for storage.
func (s *Server) StorageFull() bool { return s.storage.Full() }

// NewWithPresenceTTL is New with presence records and the checkpoint lease
// expiring after ttl instead of store.PresenceTTL (every relay of a test
// cluster must use the same).
func NewWithPresenceTTL(cfg config.Config, logger *slog.Logger, ttl time.Duration) *Server {
	s := New(cfg, logger)
	s.presenceTTL = ttl
	return s
}

// AbandonOnStop makes the relay's next stop leave what a killed process
// leaves in NATS: its presence record and the checkpoint lease stay until
// they expire, and no last checkpoint is written. The rest of the stop is
// the usual one (agents' connections close, and they move to another
// relay, as they do when a relay dies).
func (s *Server) AbandonOnStop() {
	s.presence.Abandon()
	s.board.Abandon()
}

// BoardLeading reports whether this relay writes the queue board's
// checkpoints (holds the lease).
func (s *Server) BoardLeading() bool { return s.board.Leading() }

// BoardCheckpoints counts the queue board checkpoints this relay wrote.
func (s *Server) BoardCheckpoints() int64 { return s.board.Checkpoints() }

// Available is the responsible-manager rule's "signed in and free".
func (s *Server) Available(opID string) bool { return s.board.Available(opID) }
