package bench

import (
	"context"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pult/pult/agent"
	"github.com/pult/pult/relay/eventtrace"
)

// buildRelay builds cmd/pult-relay into a temporary folder. A test binary
// is not the relay, so Run cannot exec itself here.
func buildRelay(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go command is not on PATH; cannot build cmd/pult-relay for the benchmark test")
	}
	out, err := exec.Command(goBin, "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		t.Fatal("go env GOMOD: not inside a module")
	}
	bin := filepath.Join(t.TempDir(), "pult-relay")
	cmd := exec.Command(goBin, "build", "-o", bin, "./cmd/pult-relay")
	cmd.Dir = filepath.Dir(gomod)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/pult-relay: %v\n%s", err, b)
	}
	return bin
}

func TestRunSmall(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a relay process")
	}
	bin := buildRelay(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var progress strings.Builder
	profiles := t.TempDir()
	rep, err := Run(ctx, Options{
		Operators: 5, Rate: 20, Duration: 2 * time.Second, Ring: 2,
		Drain: 2 * time.Second, Settle: 200 * time.Millisecond, Supervisors: 1,
		RelayBin: bin, Progress: &progress, ProfileDir: profiles, Trace: true,
	})
	if err != nil {
		t.Fatalf("Run: %v\nprogress:\n%s", err, progress.String())
	}
	// Heap, goroutines and profiles come from the relay's metrics_listen.
	if rep.HeapBefore <= 0 || rep.GoroutinesBefore <= 0 {
		t.Errorf("relay heap and goroutines not read from /metrics: %d %d", rep.HeapBefore, rep.GoroutinesBefore)
	}
	for _, name := range []string{"heap-settled", "goroutine-settled", "cpu-firing"} {
		if fi, err := os.Stat(filepath.Join(profiles, name+".pprof")); err != nil || fi.Size() == 0 {
			t.Errorf("profile %s: %v", name, err)
		}
	}
	var text strings.Builder
	rep.WriteText(&text)
	t.Logf("report:\n%s", text.String())

	if rep.EventsPosted < 30 || rep.HTTPErrors != 0 {
		t.Errorf("posted %d events with %d HTTP errors (%s); want about 40 and none", rep.EventsPosted, rep.HTTPErrors, rep.FirstError)
	}
	if rep.Expected != 2*rep.EventsPosted {
		t.Errorf("expected deliveries %d, want 2 per event (%d)", rep.Expected, 2*rep.EventsPosted)
	}
	if rep.Lost != 0 || rep.Duplicated != 0 || rep.Unexpected != 0 {
		t.Errorf("lost %d, duplicated %d, unexpected %d; want none", rep.Lost, rep.Duplicated, rep.Unexpected)
	}
	if rep.Delivered != rep.Expected || rep.Latency.N != rep.Delivered {
		t.Errorf("delivered %d of %d with %d latencies", rep.Delivered, rep.Expected, rep.Latency.N)
	}
	if rep.Latency.Min <= 0 || rep.Latency.Max < rep.Latency.P50 {
		t.Errorf("latencies %+v; want all > 0", rep.Latency)
	}
	if rep.Disconnects != 0 || rep.OutOfOrder != 0 {
		t.Errorf("disconnects %d (%s), out of order %d", rep.Disconnects, rep.FirstClose, rep.OutOfOrder)
	}
	if rep.RSSBefore <= 0 || rep.RSSIdle <= 0 || rep.RSSEnd <= 0 {
		t.Errorf("relay RSS not measured: %d %d %d", rep.RSSBefore, rep.RSSIdle, rep.RSSEnd)
	}
	if b := rep.Board; b == nil || b.Supervisors != 1 || b.Missing != 0 || b.Gaps != 0 || b.Disconnects != 0 ||
		b.Latency.N != rep.EventsPosted || b.Latency.Min <= 0 || b.SnapshotBytes == 0 {
		t.Errorf("board: %+v", rep.Board)
	}
	if rep.RelayWarnings != 0 {
		t.Errorf("the relay logged %d warnings: %q", rep.RelayWarnings, rep.RelayLog)
	}
	checkTrace(t, rep)
}

// checkTrace: every event was traced through the relay's steps, and each
// card's steps add up to its latency.
func checkTrace(t *testing.T, rep Report) {
	t.Helper()
	tr := rep.Trace
	if tr == nil || tr.Events != rep.EventsPosted || len(tr.Steps) != len(traceSteps) || len(tr.Slowest) == 0 {
		t.Fatalf("trace %+v, want every one of %d events", tr, rep.EventsPosted)
	}
	for _, s := range tr.Steps {
		if s.Latency.N != tr.Events || s.Latency.P50 < 0 {
			t.Errorf("step %q: %+v, want one time per event", s.Name, s.Latency)
		}
	}
	for _, e := range tr.Slowest {
		sum := 0.0
		for _, v := range e.Steps[:cardSteps] {
			sum += v
		}
		if math.Abs(sum-e.Total) > 1e-6 {
			t.Errorf("%s: steps add up to %.6f ms, the card took %.6f ms", e.Call, sum, e.Total)
		}
	}
}

func TestSummarise(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	l := summarise(ds)
	if l.N != 100 || l.Min != 1 || l.P50 != 50 || l.P90 != 90 || l.P99 != 99 || l.Max != 100 {
		t.Errorf("summarise = %+v", l)
	}
	if (summarise(nil) != Latency{}) {
		t.Error("summarise(nil) is not zero")
	}
}

func TestRoundOrder(t *testing.T) {
	two := []string{TargetPult, TargetCentrifugo}
	for r, want := range [][]string{{TargetPult, TargetCentrifugo}, {TargetCentrifugo, TargetPult}, {TargetPult, TargetCentrifugo}} {
		if got := RoundOrder(two, r); !slices.Equal(got, want) {
			t.Errorf("round %d: %q, want %q", r, got, want)
		}
	}
	if got := RoundOrder([]string{"a", "b", "c"}, 1); !slices.Equal(got, []string{"b", "c", "a"}) {
		t.Errorf("three targets, round 1: %q", got)
	}
}

// TestWriteMedians: each ratio round by round and the median of them; a
// round where the other target measured 0 has no ratio.
func TestWriteMedians(t *testing.T) {
	rep := func(p50, p99, cpu float64, lost int) Report {
		return Report{Latency: Latency{P50: p50, P99: p99}, RelayCPU: cpu, Lost: lost}
	}
	rounds := []map[string]Report{
		{TargetPult: rep(1, 4, 30, 0), TargetCentrifugo: rep(2, 2, 15, 0)},
		{TargetPult: rep(1, 3, 30, 1), TargetCentrifugo: rep(1, 6, 0, 0)},
		{TargetPult: rep(3, 1, 30, 0), TargetCentrifugo: rep(1, 1, 10, 2)},
	}
	var b strings.Builder
	if err := WriteMedians(&b, rounds, TargetPult, TargetCentrifugo); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`pult / centrifugo over 3 rounds`),
		regexp.MustCompile(`latency p50\s+1\.00×\s+0\.50 1\.00 3\.00\n`),
		regexp.MustCompile(`latency p99\s+1\.00×\s+2\.00 0\.50 1\.00\n`),
		regexp.MustCompile(`CPU while firing\s+2\.50×\s+2\.00 — 3\.00\n`),
		regexp.MustCompile(`lost / duplicated, all rounds\s+pult 1 / 0, centrifugo 2 / 0`),
	} {
		if !want.MatchString(out) {
			t.Errorf("no %s in\n%s", want, out)
		}
	}
}

func TestCallNumber(t *testing.T) {
	for id, want := range map[string]int{"b-0": 0, "b-42": 42} {
		if n, ok := callNumber(id); !ok || n != want {
			t.Errorf("callNumber(%q) = %d, %v", id, n, ok)
		}
	}
	for _, id := range []string{"", "b-", "x-1", "b--1", "b-1a"} {
		if _, ok := callNumber(id); ok {
			t.Errorf("callNumber(%q) accepted", id)
		}
	}
}

func TestPickDistinct(t *testing.T) {
	for range 100 {
		p := pick(5, 5)
		seen := map[int32]bool{}
		for _, i := range p {
			if i < 0 || i >= 5 || seen[i] {
				t.Fatalf("pick(5,5) = %v", p)
			}
			seen[i] = true
		}
	}
}

// TestRunRestartAndBaseline keeps the reconnect storm and the gorilla
// baseline working (a smoke run, no timing asserted).
func TestRunRestartAndBaseline(t *testing.T) {
	if testing.Short() {
		t.Skip("starts relay processes")
	}
	bin := buildRelay(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := Run(ctx, Options{
		Operators: 5, Rate: 20, Duration: 3 * time.Second, Ring: 2, Restart: true,
		Drain: 2 * time.Second, Settle: 200 * time.Millisecond, Idle: 300 * time.Millisecond,
		RelayBin: bin,
	})
	if err != nil {
		t.Fatalf("Run with --restart: %v", err)
	}
	if s := rep.Storm; s == nil || s.Reconnected != 5 || s.NotResumed != 0 || rep.Lost != 0 || rep.Duplicated != 0 || rep.OutOfOrder != 0 {
		t.Errorf("restart: storm %+v, lost %d, duplicated %d, out of order %d", rep.Storm, rep.Lost, rep.Duplicated, rep.OutOfOrder)
	}
	if rep.IdleS <= 0 || rep.RSSSteady <= 0 {
		t.Errorf("idle window not measured: %v s, RSS %d", rep.IdleS, rep.RSSSteady)
	}
	base, err := Run(ctx, Options{
		Operators: 5, Rate: 20, Duration: time.Second, Ring: 2, Target: TargetGorilla,
		Drain: time.Second, Settle: 200 * time.Millisecond, RelayBin: bin,
	})
	if err != nil {
		t.Fatalf("Run --target gorilla: %v", err)
	}
	if base.HTTPErrors != 0 || base.Lost != 0 || base.Delivered != base.Expected || base.Expected == 0 {
		t.Errorf("baseline: %d HTTP errors (%s), delivered %d of %d, lost %d", base.HTTPErrors, base.FirstError, base.Delivered, base.Expected, base.Lost)
	}
	var b strings.Builder
	if err := WriteComparison(&b, rep, base); err != nil || !strings.Contains(b.String(), "latency p99") {
		t.Errorf("comparison: %v\n%s", err, b.String())
	}
}

// TestRunClusterKill runs the failover at a tiny size: three relays as
// one embedded cluster (replicas 3), one killed with SIGKILL a third into
// the firing. Every operator it had is back on another relay, resumed;
// nothing is lost or received twice, and every event is accepted (posted
// again to another relay when one failed).
func TestRunClusterKill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster of relay processes")
	}
	bin := buildRelay(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var progress strings.Builder
	start := time.Now()
	// Drain 15 s: when the killed relay held a surviving relay's live feed
	// (its ordered consumer), that relay's cards wait until nats.go notices
	// the missed heartbeats and makes the consumer again, about 10 s; they
	// are late then, not lost (BENCHMARKS.md, the failover).
	rep, err := Run(ctx, Options{
		Operators: 30, Rate: 20, Duration: 2 * time.Second, Cluster: 3, Kill: true,
		Drain: 15 * time.Second, Settle: 200 * time.Millisecond, RelayBin: bin, Progress: &progress,
	})
	if err != nil {
		t.Fatalf("Run --cluster 3 --kill: %v\nprogress:\n%s", err, progress.String())
	}
	var text strings.Builder
	rep.WriteText(&text)
	t.Logf("in %s, report:\n%s", time.Since(start).Round(time.Millisecond), text.String())
	s := rep.Storm
	if s == nil || !s.Kill {
		t.Fatalf("no failover report: %+v", s)
	}
	if rep.Relays != 3 || rep.Replicas != 3 {
		t.Errorf("relays %d, replicas %d; want 3 and 3", rep.Relays, rep.Replicas)
	}
	if s.OnKilled == 0 || s.Dropped != s.OnKilled || s.Reconnected != s.Dropped || s.NotResumed != 0 {
		t.Errorf("%d operators on the killed relay, %d dropped, %d back, %d not resumed; want all back and resumed",
			s.OnKilled, s.Dropped, s.Reconnected, s.NotResumed)
	}
	if s.BackS <= 0 {
		t.Errorf("back %.2f s after the kill", s.BackS)
	}
	if rep.EventsPosted != 40 || rep.HTTPErrors != 0 || s.RefusedWhile != 0 {
		t.Errorf("posted %d events, %d never accepted (%s); want 40, none", rep.EventsPosted, rep.HTTPErrors, rep.FirstError)
	}
	if rep.Lost != 0 || rep.Duplicated != 0 || rep.Unexpected != 0 || rep.OutOfOrder != 0 {
		t.Errorf("lost %d, duplicated %d, unexpected %d, out of order %d; want none",
			rep.Lost, rep.Duplicated, rep.Unexpected, rep.OutOfOrder)
	}
	if rep.Delivered != rep.Expected || rep.Expected != rep.EventsPosted || rep.Disconnects != 0 {
		t.Errorf("delivered %d of %d (events %d), disconnects %d (%s)", rep.Delivered, rep.Expected, rep.EventsPosted, rep.Disconnects, rep.FirstClose)
	}
	// Operators and webhooks round robin: some cards were made at their
	// agent's relay, most at another.
	if h, c := rep.LatencyHere, rep.LatencyCross; h == nil || c == nil || h.N == 0 || c.N == 0 || h.N+c.N != rep.Latency.N {
		t.Errorf("latency at the agent's relay %+v, elsewhere %+v, of %d cards", h, c, rep.Latency.N)
	}
}

func TestClusterConfig(t *testing.T) {
	got := clusterConfig(3, "127.0.0.1:2", []string{"127.0.0.1:1", "127.0.0.1:2"})
	want := `replicas = 3

[nats.cluster]
name = "pult-bench"
listen = "127.0.0.1:2"
routes = ["nats-route://127.0.0.1:1", "nats-route://127.0.0.1:2"]
`
	if got != want {
		t.Errorf("clusterConfig =\n%s\nwant\n%s", got, want)
	}
}

// The operators' reconnection is paced as the agent's: with three relays,
// the next two right after a short jitter, then a growing backoff by round.
func TestRetryAsTheAgent(t *testing.T) {
	r := agent.NewRetry(3)
	var got []int
	for i, stable := 0, true; i < 8; i, stable = i+1, false {
		got = append(got, r.Failed(stable))
	}
	if want := []int{0, 0, 0, 0, 0, 1, 0, 0}; !slices.Equal(got, want) {
		t.Errorf("exponents %v, want %v", got, want)
	}
	one := agent.NewRetry(1)
	got = got[:0]
	for i, stable := 0, true; i < 4; i, stable = i+1, false {
		got = append(got, one.Failed(stable))
	}
	if want := []int{0, 1, 2, 3}; !slices.Equal(got, want) {
		t.Errorf("one relay: exponents %v, want %v", got, want)
	}
}

// TestTallyTrace: the relay's times joined with the bench's by call id;
// an event the relay did not trace, or that nobody received, is left out;
// a step not reached is listed as missing, not counted.
func TestTallyTrace(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	at := func(us int) int64 { return t0.Add(time.Duration(us) * time.Microsecond).UnixNano() }
	calls := []call{
		{ops: []int32{0}, sent: t0, post: 2 * time.Millisecond, ok: true},
		{ops: []int32{0}, sent: t0, post: time.Millisecond, ok: true}, // not traced
		{ops: []int32{1}, sent: t0, post: time.Millisecond, ok: true}, // not received
	}
	ops := []*operator{
		{idx: 0, recv: map[int]*receipt{0: {first: t0.Add(900 * time.Microsecond), count: 1}, 1: {first: t0, count: 1}}},
		{idx: 1, recv: map[int]*receipt{}},
	}
	var e eventtrace.Event
	e.ID = "b-0"
	e.At = [eventtrace.NumPoints]int64{at(300), at(350), at(400), at(500), at(550), 0, at(1200), at(1250)}
	tr := tallyTrace(map[string]eventtrace.Event{"b-0": e, "b-2": {ID: "b-2", At: e.At}}, calls, ops)
	if tr.Events != 1 || len(tr.Slowest) != 1 {
		t.Fatalf("trace %+v, want b-0 alone", tr)
	}
	got := tr.Slowest[0]
	want := []float64{0.3, 0.05, 0.05, 0.1, 0.05, 0, 0, 0, 0.05, 0.75}
	for i := range want {
		if math.Abs(got.Steps[i]-want[i]) > 1e-9 {
			t.Errorf("step %d (%s): %.3f ms, want %.3f", i, traceSteps[i].name, got.Steps[i], want[i])
		}
	}
	// Not sent ahead: the two steps from "sent", and the one to it, are missing.
	if !slices.Equal(got.Missing, []int{5, 6, 7}) || tr.Steps[5].Latency.N != 0 || tr.Steps[0].Latency.N != 1 {
		t.Errorf("missing %v, steps %+v", got.Missing, tr.Steps)
	}
	if math.Abs(got.Total-0.9) > 1e-9 {
		t.Errorf("total %.3f ms, want 0.9", got.Total)
	}
}

// TestTallyByRelay splits a cluster's card latencies by where the webhook
// was answered: at the relay the operator's agent was connected to when
// the card came, or at another one. A single relay gets no split.
func TestTallyByRelay(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	calls := []call{
		{ops: []int32{0, 1}, sent: t0, ok: true, node: 0}, // op 0 on node 0: here; op 1 on node 2: elsewhere
		{ops: []int32{1}, sent: t0, ok: true, node: 2},    // here
		{ops: []int32{0}, sent: t0, ok: true, node: 1},    // elsewhere
		{ops: []int32{0}, sent: t0, ok: true, node: 0},    // lost: in neither
	}
	ops := []*operator{
		{idx: 0, recv: map[int]*receipt{0: {first: ms(1), count: 1, node: 0}, 2: {first: ms(7), count: 1, node: 0}}},
		{idx: 1, recv: map[int]*receipt{0: {first: ms(5), count: 1, node: 2}, 1: {first: ms(2), count: 1, node: 2}}},
	}
	rep := Report{Relays: 3}
	tally(&rep, calls, ops, t0)
	if rep.Lost != 1 || rep.Latency.N != 4 || rep.LatencyHere == nil || rep.LatencyCross == nil {
		t.Fatalf("lost %d, latency %+v, here %v, elsewhere %v", rep.Lost, rep.Latency, rep.LatencyHere, rep.LatencyCross)
	}
	if h, c := *rep.LatencyHere, *rep.LatencyCross; h.N != 2 || h.Min != 1 || h.Max != 2 || c.N != 2 || c.Min != 5 || c.Max != 7 {
		t.Errorf("here %+v, elsewhere %+v; want 1 and 2 ms here, 5 and 7 ms elsewhere", h, c)
	}
	var text strings.Builder
	rep.WriteText(&text)
	if !strings.Contains(text.String(), "webhook at the agent's relay") || !strings.Contains(text.String(), "webhook at another relay") {
		t.Errorf("the report does not show the split:\n%s", text.String())
	}

	one := Report{Relays: 1}
	tally(&one, calls, ops, t0)
	if one.LatencyHere != nil || one.LatencyCross != nil {
		t.Errorf("a single relay's report is split: %v %v", one.LatencyHere, one.LatencyCross)
	}
}
