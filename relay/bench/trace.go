package bench

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pult/pult/relay/eventtrace"
)

// With Options.Trace the relay keeps every event's times at each step
// (relay/eventtrace, its trace_events) and the bench joins them, by call
// id, with its own: when the POST started, when the first operator had the
// card, when the answer came. Relay and bench read the same clock (one
// machine), so each event's latency splits into the steps below, and what
// lies outside the relay's steps (the client, the network, the scheduler
// waking the handler or the agent's reader) is seen apart from them.

// TraceReport is where a run's card latency went, step by step.
type TraceReport struct {
	Events  int           `json:"events"` // events traced by the relay and delivered
	Steps   []TraceStep   `json:"steps"`
	Slowest []TracedEvent `json:"slowest"` // the slowest cards, each step's share
}

// TraceStep is one step's time over the traced events.
type TraceStep struct {
	Name    string  `json:"name"`
	Latency Latency `json:"ms"`
}

// TracedEvent is one event's steps, in milliseconds, as TraceReport.Steps
// names them. A step can be slightly negative: the first agent may read its
// card before the relay, writing it to the others, notes it sent.
type TracedEvent struct {
	Call    string    `json:"call"`
	Total   float64   `json:"totalMs"` // POST start → frame at the first operator
	Steps   []float64 `json:"stepsMs"`
	Missing []int     `json:"missing,omitempty"` // steps not reached (no agent here, say): 0 in Steps
}

// traceSteps are the steps of a card: from the POST's start at the bench
// to the frame read by the agent, then the rest of the event (stored,
// answered). Each is the time between two points; bench-side points are
// the negative ones.
// The first cardSteps add up to the card's latency.
var traceSteps = []struct {
	name     string
	from, to int
}{
	{"POST start → handler (client, network, HTTP read, scheduling)", atPostStart, int(eventtrace.Received)},
	{"body read and parsed, authenticated", int(eventtrace.Received), int(eventtrace.Read)},
	{"event decoded, operators found", int(eventtrace.Read), int(eventtrace.Decoded)},
	{"caller's number parsed", int(eventtrace.Decoded), int(eventtrace.Parsed)},
	{"record updated, cards rendered", int(eventtrace.Parsed), int(eventtrace.Ready)},
	{"cards written to the agents' sockets", int(eventtrace.Ready), int(eventtrace.Sent)},
	{"socket → frame read by the agent", int(eventtrace.Sent), atFrame},
	{"cards written → stored (JetStream acks)", int(eventtrace.Sent), int(eventtrace.Stored)},
	{"stored → handler done", int(eventtrace.Stored), int(eventtrace.Answered)},
	{"handler done → answer read by the PBX", int(eventtrace.Answered), atPostEnd},
}

const cardSteps = 7

// The bench's own points.
const (
	atPostStart = -1 - iota
	atFrame
	atPostEnd
)

// traceEvents is how many events the relay keeps for a run of o.
func traceEvents(o Options) int {
	return min(int(o.Rate*o.Duration.Seconds()*1.2)+1000, eventtrace.MaxEvents)
}

// fetchTrace reads the events the relays kept.
func fetchTrace(ctx context.Context, rp *relayProc) (map[string]eventtrace.Event, error) {
	out := map[string]eventtrace.Event{}
	for _, n := range rp.nodes() {
		if n.killed {
			continue
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, n.metricsURL+"/debug/pult/events", nil)
		if err != nil {
			return nil, err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, fmt.Errorf("bench: trace: %w", err)
		}
		var evs []eventtrace.Event
		err = json.NewDecoder(io.LimitReader(resp.Body, 256<<20)).Decode(&evs)
		resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("bench: trace from %s: %w", n.metricsURL, err)
		}
		for _, e := range evs {
			out[e.ID] = e
		}
	}
	return out, nil
}

// tallyTrace joins the relay's events with the bench's calls.
func tallyTrace(traced map[string]eventtrace.Event, calls []call, ops []*operator) *TraceReport {
	byIdx := byIndex(ops)
	steps := make([][]time.Duration, len(traceSteps))
	var events []TracedEvent
	for n, c := range calls {
		e, ok := traced[callPrefix+strconv.Itoa(n)]
		if !ok || !c.ok || c.retries > 0 {
			continue
		}
		var frame time.Time // the first operator to have the card
		for _, oi := range c.ops {
			if op := byIdx[oi]; op != nil {
				if r := op.recv[n]; r != nil && r.count > 0 && (frame.IsZero() || r.first.Before(frame)) {
					frame = r.first
				}
			}
		}
		if frame.IsZero() {
			continue
		}
		at := func(p int) int64 {
			switch p {
			case atPostStart:
				return c.sent.UnixNano()
			case atFrame:
				return frame.UnixNano()
			case atPostEnd:
				return c.sent.Add(c.post).UnixNano()
			}
			return e.At[p]
		}
		// Wall-clock times throughout (the relay's are), so the steps
		// add up to the total.
		te := TracedEvent{Call: e.ID, Total: ms(time.Duration(frame.UnixNano() - c.sent.UnixNano())), Steps: make([]float64, len(traceSteps))}
		for i, s := range traceSteps {
			from, to := at(s.from), at(s.to)
			if from == 0 || to == 0 {
				te.Missing = append(te.Missing, i)
				continue
			}
			d := time.Duration(to - from)
			steps[i] = append(steps[i], d)
			te.Steps[i] = ms(d)
		}
		events = append(events, te)
	}
	tr := &TraceReport{Events: len(events)}
	for i, s := range traceSteps {
		tr.Steps = append(tr.Steps, TraceStep{Name: s.name, Latency: summarise(steps[i])})
	}
	slices.SortFunc(events, func(a, b TracedEvent) int { return cmp.Compare(b.Total, a.Total) })
	tr.Slowest = events[:min(len(events), 5)]
	return tr
}

// write prints the steps' percentiles and the slowest events.
func (tr *TraceReport) write(row func(k, format string, a ...any)) {
	row("where the time went", "%d events traced by the relay (--trace; one clock, the relay's steps and the bench's)", tr.Events)
	for _, s := range tr.Steps {
		l := s.Latency
		if l.N == 0 {
			row("  "+s.Name, "—")
			continue
		}
		row("  "+s.Name, "p50 %.3f ms   p90 %.3f ms   p99 %.3f ms", l.P50, l.P90, l.P99)
	}
	for i, e := range tr.Slowest {
		k := ""
		if i == 0 {
			k = "  slowest, step by step"
		}
		parts := make([]string, len(e.Steps))
		for j, v := range e.Steps {
			parts[j] = strconv.FormatFloat(v, 'f', 2, 64)
			if slices.Contains(e.Missing, j) {
				parts[j] = "—"
			}
		}
		row(k, "%.2f ms  %s: %s (then stored %s, done %s, answer read %s)", e.Total, e.Call,
			strings.Join(parts[:cardSteps], " + "), parts[cardSteps], parts[cardSteps+1], parts[cardSteps+2])
	}
}
