package bench

import (
	"cmp"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// tally matches what the operators received against what was fired. Every
// reader must have finished.
func tally(rep *Report, calls []call, ops []*operator, start time.Time) {
	byIdx := byIndex(ops)
	var lat, posts, here, cross []time.Duration
	var worst []Outlier
	rep.EventsPosted = len(calls)
	for n, c := range calls {
		if c.err == "" || c.ok {
			posts = append(posts, c.post)
		}
		if c.retries > 0 {
			rep.PostRetries += c.retries
			rep.RetriedPosts++
		}
		if !c.ok {
			rep.HTTPErrors++
			if rep.FirstError == "" {
				rep.FirstError = c.err
			}
			continue
		}
		for _, oi := range c.ops {
			rep.Expected++
			op := byIdx[oi]
			var r *receipt
			if op != nil {
				r = op.recv[n]
			}
			if r == nil || r.count <= 0 { // none, or only one taken back
				rep.Lost++
				continue
			}
			rep.Delivered++
			rep.Duplicated += r.count - 1
			d := r.first.Sub(c.sent)
			lat = append(lat, d)
			if int(r.node) == c.node {
				here = append(here, d)
			} else {
				cross = append(cross, d)
			}
			worst = append(worst, Outlier{Call: callPrefix + fmt.Sprint(n), Operator: int(oi),
				At: c.sent.Sub(start).Seconds(), LatencyMS: ms(d), PostMS: ms(c.post)})
		}
	}
	for _, op := range ops {
		for n, r := range op.recv {
			if n >= len(calls) || !calls[n].ok || !slices.Contains(calls[n].ops, int32(op.idx)) {
				rep.Unexpected += r.count
			}
		}
		rep.Unexpected += op.bad
		rep.OtherFrames += op.other
		rep.OutOfOrder += op.order
		if op.err != nil {
			rep.Disconnects++
			if rep.FirstClose == "" {
				rep.FirstClose = fmt.Sprintf("operator %d: %v", 1000+op.idx, op.err)
			}
		}
	}
	rep.Latency = summarise(lat)
	if rep.Relays > 1 {
		h, c := summarise(here), summarise(cross)
		rep.LatencyHere, rep.LatencyCross = &h, &c
	}
	rep.PostLatency = summarise(posts)
	slices.SortFunc(worst, func(a, b Outlier) int { return cmp.Compare(b.LatencyMS, a.LatencyMS) })
	rep.Worst = worst[:min(len(worst), 5)]
}

// byIndex maps each operator's index (call.ops) to it.
func byIndex(ops []*operator) map[int32]*operator {
	m := make(map[int32]*operator, len(ops))
	for _, op := range ops {
		m[int32(op.idx)] = op
	}
	return m
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// summarise computes nearest-rank percentiles.
func summarise(ds []time.Duration) Latency {
	if len(ds) == 0 {
		return Latency{}
	}
	slices.Sort(ds)
	at := func(p float64) float64 {
		i := int(math.Ceil(p*float64(len(ds)))) - 1
		return ms(ds[max(0, min(i, len(ds)-1))])
	}
	return Latency{N: len(ds), Min: ms(ds[0]), P50: at(0.50), P90: at(0.90), P99: at(0.99), Max: ms(ds[len(ds)-1])}
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func (l Latency) String() string {
	if l.N == 0 {
		return "—"
	}
	return fmt.Sprintf("p50 %.2f ms   p90 %.2f ms   p99 %.2f ms   max %.2f ms   (min %.2f ms, n=%d)",
		l.P50, l.P90, l.P99, l.Max, l.Min, l.N)
}

// WriteText prints the report as a readable table.
func (r Report) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k, format string, a ...any) { fmt.Fprintf(tw, "%s\t"+format+"\n", append([]any{k}, a...)...) }
	who := "relay" // the process measured
	if r.Target == TargetCentrifugo {
		who = TargetCentrifugo
	}
	row("target", "%s", r.Target)
	if r.Relays > 1 {
		who = "relays (sum)"
		row("relays", "%d, one embedded JetStream cluster, replicas %d (operators and events round robin over the nodes)", r.Relays, r.Replicas)
	}
	row("operators connected", "%d (in %.1f s; RLIMIT_NOFILE %d)", r.Operators, r.ConnectS, r.NoFile)
	if r.RingMax > r.Ring {
		row("operators rung per call", "%d to %d (uniform)", r.Ring, r.RingMax)
	} else {
		row("operators rung per call", "%d", r.Ring)
	}
	row("rate target / achieved", "%.1f / %.1f events/s over %.1f s (%d posters)", r.RateTarget, r.RateAchieved, r.FiringS, r.Posters)
	row("events posted", "%d, HTTP errors %d", r.EventsPosted, r.HTTPErrors)
	if r.Relays > 1 {
		row("  posted again", "%d POSTs to another node, for %d events (answered there, not counted as errors)", r.PostRetries, r.RetriedPosts)
	}
	if r.FirstError != "" {
		row("  first HTTP error", "%s", r.FirstError)
	}
	row("webhook answer time", "%s", r.PostLatency)
	row("deliveries expected", "%d", r.Expected)
	row("delivered (unique)", "%d, %.1f/s", r.Delivered, r.PerSec)
	row("lost / duplicated", "%d / %d", r.Lost, r.Duplicated)
	row("unexpected / out of order", "%d / %d (other frames %d)", r.Unexpected, r.OutOfOrder, r.OtherFrames)
	row("disconnects", "%d %s", r.Disconnects, r.FirstClose)
	row("latency POST start→frame", "%s", r.Latency)
	if r.LatencyHere != nil && r.LatencyCross != nil {
		row("  webhook at the agent's relay", "%s", *r.LatencyHere)
		row("  webhook at another relay", "%s", *r.LatencyCross)
	}
	for i, o := range r.Worst {
		k := ""
		if i == 0 {
			k = "  slowest"
		}
		row(k, "%.2f ms  %s at op %d, fired at +%.2f s (POST answered in %.2f ms)", o.LatencyMS, o.Call, 1000+o.Operator, o.At, o.PostMS)
	}
	if r.Trace != nil {
		r.Trace.write(row)
	}
	row(who+" RSS before connecting", "%s (Go heap in use %s, %d goroutines)", mib(r.RSSBefore), mib(r.HeapBefore), r.GoroutinesBefore)
	row(who+" RSS idle, connected", "%s (%.1f KiB per connection; heap %s, %d goroutines)",
		mib(r.RSSIdle), float64(r.RSSPerConn)/1024, mib(r.HeapIdle), r.GoroutinesIdle)
	if r.IdleS > 0 {
		row(who+" CPU idle, connected", "%.2f%% of one core over %.0f s", r.IdleCPU, r.IdleS)
		row(who+" RSS steady (idle end)", "%s (%.1f KiB per connection; heap %s)", mib(r.RSSSteady), float64(r.RSSSteadyPerConn)/1024, mib(r.HeapSteady))
	}
	row(who+" RSS at end", "%s (heap %s, %d goroutines)", mib(r.RSSEnd), mib(r.HeapEnd), r.GoroutinesEnd)
	if r.Storm == nil {
		row(who+" CPU while firing", "%.1f%% of one core (bench process: %.1f%%)", r.RelayCPU, r.BenchCPU)
	}
	if s := r.Storm; s != nil && s.Kill {
		row("kill: at", "+%.1f s; relay %d of %d SIGKILLed with %d operators on it (gone %.3f s after the signal)",
			s.RestartAtS, s.KilledNode, r.Relays, s.OnKilled, s.DownS)
		row("kill: operators back", "%d of %d dropped, the last %.2f s after the kill, on another relay (failed dials %d, not resumed %d)",
			s.Reconnected, s.Dropped, s.BackS, s.FailedDials, s.NotResumed)
		if s.FirstFailed != "" {
			row("  first failed dial", "%.200s", s.FirstFailed)
		}
		if s.OtherDrops > 0 {
			row("  dropped on the others", "%d (first: %.200s)", s.OtherDrops, s.FirstOther)
		}
		if s.CaughtUpS == 0 {
			row("kill: caught up", "nothing to catch up (no card of an event answered before everyone was back came after the kill)")
		} else {
			row("kill: caught up", "%.2f s after the kill (%d cards to the moved operators delivered after it)", s.CaughtUpS, s.Missed)
		}
		row("kill: lost / duplicated", "%d / %d (whole run)", r.Lost, r.Duplicated)
		row("kill: webhooks", "%d POSTs retried on another node for %d events; %d events never accepted", r.PostRetries, r.RetriedPosts, s.RefusedWhile)
	}
	if s := r.Storm; s != nil && !s.Kill {
		row("restart: at", "+%.1f s; SIGTERM → exited %.2f s, → /healthz answered %.2f s later", s.RestartAtS, s.DownS, s.StartS)
		row("restart: operators back", "%d of %d dropped, the last %.2f s after /healthz (failed dials %d, not resumed %d)",
			s.Reconnected, s.Dropped, s.BackS, s.FailedDials, s.NotResumed)
		row("restart: caught up", "%.2f s after /healthz (%d cards of earlier events delivered after the restart)", s.CaughtUpS, s.Missed)
		row("restart: webhooks refused", "%d while the relay was down (not expected anywhere)", s.RefusedWhile)
	}
	if b := r.Board; b != nil {
		row("board: supervisors", "%d subscribed (snapshot %.1f KiB with every operator)", b.Supervisors, float64(b.SnapshotBytes)/1024)
		row("board: deltas", "%d per supervisor, %.0f bytes on average; version gaps %d", b.Deltas, b.DeltaBytes, b.Gaps)
		row("board: calls never shown", "%d; supervisor disconnects %d %s", b.Missing, b.Disconnects, b.FirstClose)
		row("board: POST start→delta", "%s", b.Latency)
		row("board: within 100 ms", "%.2f%%", b.Within100ms)
	}
	row(who+" log warnings/errors", "%d", r.RelayWarnings)
	for _, l := range r.RelayLog {
		row("", "%.160s", l)
	}
	return tw.Flush()
}

// WriteComparison prints the relay against another target (the gorilla
// baseline or Centrifugo) with ratios.
func WriteComparison(w io.Writer, pult, base Report) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "figure\t%s\t%s\t%s / %s\n", pult.Target, base.Target, pult.Target, base.Target)
	ratio := func(a, b float64) string {
		if b == 0 {
			return "—"
		}
		return fmt.Sprintf("%.2f×", a/b)
	}
	row := func(k string, a, b float64, unit string) {
		fmt.Fprintf(tw, "%s\t%.2f %s\t%.2f %s\t%s\n", k, a, unit, b, unit, ratio(a, b))
	}
	row("latency p50", pult.Latency.P50, base.Latency.P50, "ms")
	row("latency p90", pult.Latency.P90, base.Latency.P90, "ms")
	row("latency p99", pult.Latency.P99, base.Latency.P99, "ms")
	row("latency max", pult.Latency.Max, base.Latency.Max, "ms")
	row("webhook answer p99", pult.PostLatency.P99, base.PostLatency.P99, "ms")
	row("RSS per connection (settled)", float64(pult.RSSPerConn)/1024, float64(base.RSSPerConn)/1024, "KiB")
	if pult.IdleS > 0 && base.IdleS > 0 {
		row("RSS per connection (steady)", float64(pult.RSSSteadyPerConn)/1024, float64(base.RSSSteadyPerConn)/1024, "KiB")
		row("CPU idle", pult.IdleCPU, base.IdleCPU, "%")
	}
	row("CPU while firing", pult.RelayCPU, base.RelayCPU, "%")
	row("RSS at end", float64(pult.RSSEnd)/(1<<20), float64(base.RSSEnd)/(1<<20), "MiB")
	fmt.Fprintf(tw, "lost / duplicated\t%d / %d\t%d / %d\t\n", pult.Lost, pult.Duplicated, base.Lost, base.Duplicated)
	return tw.Flush()
}

// RoundOrder is the order the targets run in round r (from 0) of several:
// rotated by one each round, so that with two targets each goes first
// every other round and neither always meets the machine as the other
// left it.
func RoundOrder(targets []string, r int) []string {
	n := len(targets)
	out := make([]string, n)
	for i := range targets {
		out[i] = targets[(i+r)%n]
	}
	return out
}

// WriteMedians prints, for pult against base over several rounds (each a
// report by target), every ratio of WriteComparison round by round and its
// median: the figure to read on a machine whose neighbours come and go.
func WriteMedians(w io.Writer, rounds []map[string]Report, pult, base string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "%s / %s over %d rounds\tmedian\teach round\n", pult, base, len(rounds))
	row := func(k string, f func(Report) float64) {
		var ratios []float64
		var each []string
		for _, r := range rounds {
			a, b := f(r[pult]), f(r[base])
			if b == 0 {
				each = append(each, "—")
				continue
			}
			ratios = append(ratios, a/b)
			each = append(each, fmt.Sprintf("%.2f", a/b))
		}
		med := "—"
		if len(ratios) > 0 {
			med = fmt.Sprintf("%.2f×", median(ratios))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", k, med, strings.Join(each, " "))
	}
	row("latency p50", func(r Report) float64 { return r.Latency.P50 })
	row("latency p90", func(r Report) float64 { return r.Latency.P90 })
	row("latency p99", func(r Report) float64 { return r.Latency.P99 })
	row("webhook answer p99", func(r Report) float64 { return r.PostLatency.P99 })
	row("RSS per connection (settled)", func(r Report) float64 { return float64(r.RSSPerConn) })
	row("CPU while firing", func(r Report) float64 { return r.RelayCPU })
	var lost, dup [2]int
	for _, r := range rounds {
		lost[0], dup[0] = lost[0]+r[pult].Lost, dup[0]+r[pult].Duplicated
		lost[1], dup[1] = lost[1]+r[base].Lost, dup[1]+r[base].Duplicated
	}
	fmt.Fprintf(tw, "lost / duplicated, all rounds\t%s %d / %d, %s %d / %d\t\n", pult, lost[0], dup[0], base, lost[1], dup[1])
	return tw.Flush()
}

// median of xs (not empty); xs is sorted in place.
func median(xs []float64) float64 {
	slices.Sort(xs)
	n := len(xs)
	if n%2 == 1 {
		return xs[n/2]
	}
	return (xs[n/2-1] + xs[n/2]) / 2
}
