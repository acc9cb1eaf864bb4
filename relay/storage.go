package relay

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pult/pult/agent/wire"
	"github.com/pult/pult/relay/retailcrm"
	"github.com/pult/pult/relay/store"
)

// Storage thresholds: at refuseAt of a guarded stream's or bucket's limit
// (or of the account's store) the relay refuses new work, and takes it
// again once every one is below resumeBelow, so that it does not flap at
// the edge. The outbox counts with room for one more of its largest jobs
// (store.Usage.Headroom): a transcript can be megabytes.
const (
	refuseAt    = 0.90
	resumeBelow = 0.80
	// storagePoll is how often JetStream's usage is read; between reads
	// the last answer is used.
	storagePoll = 2 * time.Second
	// fullRetryAfter is the Retry-After of a refusal for storage.
	fullRetryAfter = 30 * time.Second
)

// storageGuard reads JetStream's usage of every stream and bucket
// periodically and says when the relay must refuse new work: before a
// write would fail, not after. Its state changes are logged once each.
type storageGuard struct {
	log   *slog.Logger
	usage func(context.Context) ([]store.Usage, error)
	every time.Duration

	full atomic.Bool

	// Owned by check (one goroutine at a time).
	worst    string // the fullest guarded store at the last check
	deadFull bool   // the dead letters are at their limit
	failing  bool   // the last read failed

	ratio     *prometheus.GaugeVec   // pult_relay_storage_used_ratio{store}
	fullGauge prometheus.Gauge       // pult_relay_storage_full
	refused   *prometheus.CounterVec // pult_relay_storage_refused_total{what}
}

func newStorageGuard(log *slog.Logger, usage func(context.Context) ([]store.Usage, error), every time.Duration, reg prometheus.Registerer) *storageGuard {
	if every <= 0 {
		every = storagePoll
	}
	g := &storageGuard{
		log: log.With("component", "storage"), usage: usage, every: every,
		ratio: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pult_relay_storage_used_ratio",
			Help: "Share of its limit each JetStream stream or bucket uses (bytes, or messages for the dead letters), and the account's store (store=\"account\").",
		}, []string{"store"}),
		fullGauge: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pult_relay_storage_full",
			Help: "1 while the relay refuses new work because a stream, bucket or the JetStream store is at 90% of its limit.",
		}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pult_relay_storage_refused_total",
			Help: "Requests refused with 503 (or an unavailable error) while storage was full, by what: webhook, pbx_api, transcript, agent_request.",
		}, []string{"what"}),
	}
	reg.MustRegister(g.ratio, g.fullGauge, g.refused)
	return g
}

// Full reports whether new work must be refused.
func (g *storageGuard) Full() bool { return g != nil && g.full.Load() }

// Run checks the usage every period until ctx ends.
func (g *storageGuard) Run(ctx context.Context) error {
	t := time.NewTicker(g.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			g.check(ctx)
		}
	}
}

// check reads the usage once and updates the state, the metrics and the log.
func (g *storageGuard) check(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	us, err := g.usage(ctx)
	if err != nil {
		if ctx.Err() == nil && !g.failing {
			g.log.Warn("cannot read JetStream's storage usage; keeping the last state", "err", err)
		}
		g.failing = true
		return
	}
	if g.failing {
		g.log.Info("JetStream's storage usage readable again")
		g.failing = false
	}
	worst, worstRatio := "", 0.0
	for _, u := range us {
		r := u.Ratio()
		g.ratio.WithLabelValues(u.Name).Set(r)
		if u.Name == store.DeadStream {
			g.checkDead(u)
		}
		if h := u.Headroom(); u.Guarded && h > worstRatio {
			worst, worstRatio = u.Name, h
		}
	}
	was := g.full.Load()
	switch {
	case !was && worstRatio >= refuseAt:
		g.full.Store(true)
		g.fullGauge.Set(1)
		g.worst = worst
		g.log.Error("storage nearly full: refusing new work (webhooks, PBX events, transcripts, agent requests get 503) until space returns",
			"store", worst, "used", percent(worstRatio), "refuse_at", percent(refuseAt), "resume_below", percent(resumeBelow))
	case was && worstRatio < resumeBelow:
		g.full.Store(false)
		g.fullGauge.Set(0)
		g.log.Info("storage has room again: taking new work", "fullest", worst, "used", percent(worstRatio), "was_full", g.worst)
	}
}

// checkDead logs once when the dead letters reach their limit, after which
// JetStream drops the oldest for each new one.
func (g *storageGuard) checkDead(u store.Usage) {
	at := u.Ratio() >= 1 || (u.MaxBytes > 0 && float64(u.Bytes) >= refuseAt*float64(u.MaxBytes))
	switch {
	case at && !g.deadFull:
		g.log.Warn("dead letters at their limit: each new one drops the oldest; retry or drop them (pult-relay outbox dead)",
			"dead_letters", u.Msgs, "max", u.MaxMsgs, "bytes", u.Bytes, "max_bytes", u.MaxBytes)
	case !at && g.deadFull:
		g.log.Info("dead letters below their limit again", "dead_letters", u.Msgs)
	}
	g.deadFull = at
}

func percent(r float64) string { return strconv.FormatFloat(r*100, 'f', 1, 64) + "%" }

// storageFullMessage is what a refused caller reads.
const storageFullMessage = "the relay's storage is nearly full; it takes no new work until space is freed — try again later"

// refuseWhenFull answers new work with 503 while storage is full, each in
// its caller's shape: the retailCRM API's error on /api/, a wire.Error on
// the agents' transcript endpoint, the webhooks' {"error"} on /hooks/,
// plain text on the CRM's change-status URL. Reads (and the agents'
// websocket, the wallboard, health, administration) go through.
func (s *Server) refuseWhenFull(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.storage.Full() {
			next.ServeHTTP(w, r)
			return
		}
		p := r.URL.Path
		var what string
		switch {
		case r.Method == http.MethodPost && strings.HasPrefix(p, "/api/"):
			what = "pbx_api"
		case r.Method == http.MethodPost && strings.HasPrefix(p, "/hooks/"):
			what = "webhook"
		case r.Method == http.MethodPost && p == wire.PathTranscripts:
			what = "transcript"
		case p == "/retailcrm/change-status":
			what = "webhook"
		default:
			next.ServeHTTP(w, r)
			return
		}
		s.storage.refused.WithLabelValues(what).Inc()
		w.Header().Set("Retry-After", strconv.Itoa(int(fullRetryAfter/time.Second)))
		switch {
		case what == "pbx_api":
			retailcrm.WriteError(w, http.StatusServiceUnavailable, storageFullMessage, nil)
		case what == "transcript":
			writeJSON(w, http.StatusServiceUnavailable, &wire.Error{Code: wire.ErrUnavailable, Message: storageFullMessage})
		case p == "/retailcrm/change-status":
			http.Error(w, storageFullMessage, http.StatusServiceUnavailable)
		default:
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": storageFullMessage})
		}
	})
}

// refuseRequestWhenFull is the agent requests' refusal while storage is
// full (nil when it is not).
func (s *Server) refuseRequestWhenFull() *wire.Error {
	if !s.storage.Full() {
		return nil
	}
	s.storage.refused.WithLabelValues("agent_request").Inc()
	return &wire.Error{Code: wire.ErrUnavailable, Message: storageFullMessage}
}
