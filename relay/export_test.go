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

// StorageFull reports whether the relay refuses new work for storage.
func (s *Server) StorageFull() bool { return s.storage.Full() }
