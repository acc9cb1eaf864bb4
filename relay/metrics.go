package relay

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/pult/pult/relay/board"
	"github.com/pult/pult/relay/outbox"
)

type metrics struct {
	reg            *prometheus.Registry
	connections    prometheus.Gauge
	operators      prometheus.Gauge
	eventsIn       *prometheus.CounterVec
	eventsOut      prometheus.Counter
	latency        prometheus.Histogram
	outboxDead     *prometheus.CounterVec
	outboxAttempts *prometheus.CounterVec
	managerLookups *prometheus.CounterVec
	callsUploaded  prometheus.Counter
	throttled      *prometheus.CounterVec
}

// Quotas, the limit label of pult_relay_throttled_total.
const (
	limitRequestRate = "request_rate" // a session closed for its request rate
	limitSessions    = "sessions"     // a handshake refused for the sessions cap
	limitTranscripts = "transcripts"  // a transcript refused for the per-minute cap
)

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pult_relay_connections", Help: "Open agent websocket connections.",
		}),
		operators: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pult_relay_connected_operators", Help: "Operators with at least one agent connected.",
		}),
		eventsIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pult_relay_events_in_total", Help: "Events accepted from partners, by source.",
		}, []string{"source"}),
		eventsOut: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pult_relay_events_out_total", Help: "Event frames queued to agents (live and catch-up).",
		}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "pult_relay_delivery_latency_seconds",
			Help:    "From a webhook reaching the relay to its event frame queued to a connected agent.",
			Buckets: []float64{.0005, .001, .002, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}),
		outboxDead: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pult_relay_outbox_dead_total", Help: "Outbox jobs that became dead letters, by kind.",
		}, []string{"kind"}),
		outboxAttempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pult_relay_outbox_attempts_total", Help: "Outbound partner call attempts, by kind and outcome (ok, retry, dead).",
		}, []string{"kind", "outcome"}),
		managerLookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pult_relay_manager_lookups_total", Help: "Responsible-manager lookups, by result (cached, found, none, error).",
		}, []string{"result"}),
		callsUploaded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pult_relay_calls_uploaded_total", Help: "Calls of the call history retailCRM accepted (duplicates included).",
		}),
		throttled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pult_relay_throttled_total",
			Help: "Quota refusals ([limits]), by limit: request_rate (session closed), sessions (handshake refused), transcripts (submission refused).",
		}, []string{"limit"}),
	}
	for _, l := range []string{limitRequestRate, limitSessions, limitTranscripts} {
		m.throttled.WithLabelValues(l)
	}
	m.reg.MustRegister(m.connections, m.operators, m.eventsIn, m.eventsOut, m.latency, m.outboxDead, m.outboxAttempts,
		m.managerLookups, m.callsUploaded, m.throttled,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// trackBoard adds the queue board's checkpoints written by this node and
// whether it holds the checkpoint lease.
func (m *metrics) trackBoard(b *board.Board) {
	m.reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "pult_relay_board_checkpoints_total", Help: "Queue board checkpoints this node wrote (only the checkpoint lease's holder writes them).",
		}, func() float64 { return float64(b.Checkpoints()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "pult_relay_board_checkpoint_lease", Help: "1 while this node holds the queue board's checkpoint lease, else 0.",
		}, func() float64 {
			if b.Leading() {
				return 1
			}
			return 0
		}),
	)
}

// trackOutbox adds the outbox's depth and dead letters, by kind, and a zero
// for every kind's counters; call it once every kind is handled.
func (m *metrics) trackOutbox(o *outbox.Outbox) {
	kinds := o.Kinds()
	for _, k := range kinds {
		m.outboxDead.WithLabelValues(k)
		for _, out := range []outbox.Outcome{outbox.OutcomeOK, outbox.OutcomeRetry, outbox.OutcomeDead} {
			m.outboxAttempts.WithLabelValues(k, string(out))
		}
	}
	m.reg.MustRegister(&outboxCollector{stats: o.Stats, kinds: kinds})
}

var (
	descOutboxDepth = prometheus.NewDesc("pult_relay_outbox_depth",
		"Outbound partner calls waiting or in progress, by kind.", []string{"kind"}, nil)
	descOutboxOldest = prometheus.NewDesc("pult_relay_outbox_oldest_job_age_seconds",
		"Time since the oldest waiting outbound call was queued (0 when none).", nil, nil)
	descOutboxDeadLetters = prometheus.NewDesc("pult_relay_outbox_dead_letters",
		"Dead letters kept (given-up outbound calls not yet retried or dropped), by kind.", []string{"kind"}, nil)
)

// outboxCollector reads the outbox's JetStream state at scrape time.
type outboxCollector struct {
	stats func(context.Context) (outbox.Stats, error)
	kinds []string
}

func (c *outboxCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descOutboxDepth
	ch <- descOutboxOldest
	ch <- descOutboxDeadLetters
}

func (c *outboxCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	st, err := c.stats(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(descOutboxDepth, err)
		return
	}
	for kind, n := range withKinds(st.DepthByKind, c.kinds) {
		ch <- prometheus.MustNewConstMetric(descOutboxDepth, prometheus.GaugeValue, float64(n), kind)
	}
	for kind, n := range withKinds(st.DeadByKind, c.kinds) {
		ch <- prometheus.MustNewConstMetric(descOutboxDeadLetters, prometheus.GaugeValue, float64(n), kind)
	}
	ch <- prometheus.MustNewConstMetric(descOutboxOldest, prometheus.GaugeValue, st.OldestAge.Seconds())
}

// withKinds adds a zero for every registered kind missing from counts.
func withKinds(counts map[string]int, kinds []string) map[string]int {
	out := make(map[string]int, len(counts)+len(kinds))
	for _, k := range kinds {
		out[k] = 0
	}
	for k, n := range counts {
		out[k] = n
	}
	return out
}
