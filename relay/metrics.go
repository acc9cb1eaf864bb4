package relay

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

type metrics struct {
	reg            *prometheus.Registry
	connections    prometheus.Gauge
	operators      prometheus.Gauge
	eventsIn       *prometheus.CounterVec
	eventsOut      prometheus.Counter
	latency        prometheus.Histogram
	outboxDead     prometheus.Counter
	managerLookups *prometheus.CounterVec
}

func newMetrics(outboxDepth func(context.Context) (int, error)) *metrics {
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
		outboxDead: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pult_relay_outbox_dead_total", Help: "Outbox jobs given up.",
		}),
		managerLookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pult_relay_manager_lookups_total", Help: "Responsible-manager lookups, by result (cached, found, none, error).",
		}, []string{"result"}),
	}
	depth := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "pult_relay_outbox_depth", Help: "Outbound partner calls waiting or in progress.",
	}, func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		n, err := outboxDepth(ctx)
		if err != nil {
			return -1
		}
		return float64(n)
	})
	m.reg.MustRegister(m.connections, m.operators, m.eventsIn, m.eventsOut, m.latency, m.outboxDead, m.managerLookups, depth,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}
