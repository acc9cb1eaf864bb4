// Package bench is a load tool for the relay: it starts a relay as a child
// process (so its memory and CPU are its own), adds and connects simulated
// operators over websockets, fires retailCRM-style call events at the real
// webhook at a fixed rate, and measures how fast and how completely the
// call cards reach the
//
// Latency is measured from the moment a webhook POST starts to the moment
// the operator's reader has the call frame, both on this process's
// monotonic clock.
package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/pult/pult/agent"
	"github.com/pult/pult/agent/wire"
	"github.com/pult/pult/relay"
	"github.com/pult/pult/relay/admin"
	"github.com/pult/pult/relay/eventtrace"
	"github.com/pult/pult/relay/operators"
	"github.com/pult/pult/relay/retailcrm"
)

// Options of a run. Zero fields take the defaults in brackets.
type Options struct {
	Operators int           // simulated operators, all connected [1000]
	Rate      float64       // call events per second [200]
	Duration  time.Duration // how long events are fired [30s]
	Ring      int           // operators rung by each call, chosen at random [1]
	RingMax   int           // when above Ring: each call rings Ring to RingMax operators, uniformly [0]
	Posters   int           // concurrent webhook posters [8]
	Drain     time.Duration // wait after the last event for late frames [5s]
	Settle    time.Duration // pause before each idle RSS reading [2s]
	// Supervisors subscribed to the queue board while the calls are fired
	// [0: none]; the report then has the board's latency.
	Supervisors int
	// Idle, when set, is a window with every operator connected and no
	// load, before the firing: the relay's CPU over it and its RSS at its
	// end ("steady") are reported. Longer than wire.PingPeriod (25 s) to
	// include every connection's ping.
	Idle time.Duration
	// Restart restarts the relay (SIGTERM, then the same config and data)
	// a third into the firing: the operators reconnect as the agent does
	// (full-jitter backoff from 500 ms, resuming from their last seq) and
	// the report has the reconnect storm's figures.
	Restart bool
	// Cluster, when 3 or more, starts that many relays as one embedded
	// JetStream cluster on loopback with three copies of everything
	// ([nats] replicas = 3, [nats.cluster]); the operators are added on
	// the first, connected to the nodes round robin (each then tries the
	// others in a random order, as the agent given every relay does), and
	// events are posted to the nodes round robin, again to another node
	// when one fails, as a PBX would. 0 or 1: a single relay.
	Cluster int
	// Kill (with Cluster) kills one node with SIGKILL a third into the
	// firing: its operators move to the others and resume; the report has
	// the failover's figures (Report.Storm).
	Kill bool
	// Target is TargetPult (the relay), TargetGorilla (the baseline) or
	// TargetCentrifugo (Centrifugo, see CentrifugoBin).
	Target string
	// CentrifugoBin is the Centrifugo binary run for TargetCentrifugo
	// (see InstallCentrifugo).
	CentrifugoBin string
	// ProfileDir, when set, gets pprof profiles of the relay (not of the
	// baseline): CPU over the idle window and over the firing, heap and
	// goroutines at the end of the idle settle.
	ProfileDir string
	// Trace has the relay time each event's steps (its trace_events) and
	// adds where the card's time went to the report (Report.Trace); for
	// --target pult only, and it costs the relay a little.
	Trace bool
	// Sync is the relay's [nats] sync ("always" or an interval; "" the
	// relay's default), to measure what durability costs.
	Sync string
	// StoredOnly has the simulated agents take call cards only once
	// stored, as agents before cards ahead of the log did; by default
	// they ask for them ahead (wire.QueryPreview), as pult's agent does.
	StoredOnly bool

	// RelayBin is the pult-relay binary run as "serve --config FILE"
	// [this executable].
	RelayBin string
	// Command, when set, builds the relay's command line instead; it gets
	// the generated config's path. Stdout, Stderr and (when nil) Env and
	// SysProcAttr are set by Run.
	Command func(configPath string) *exec.Cmd

	Progress io.Writer // phase messages [discarded]
}

// Targets.
const (
	TargetPult       = "pult"
	TargetGorilla    = "gorilla"
	TargetCentrifugo = "centrifugo"
)

func (o *Options) defaults() error {
	if o.Target == "" {
		o.Target = TargetPult
	}
	if o.Operators == 0 {
		o.Operators = 1000
	}
	if o.Rate == 0 {
		o.Rate = 200
	}
	if o.Duration == 0 {
		o.Duration = 30 * time.Second
	}
	if o.Ring == 0 {
		o.Ring = 1
	}
	if o.Posters == 0 {
		o.Posters = 8
	}
	if o.Drain == 0 {
		o.Drain = 5 * time.Second
	}
	if o.Settle == 0 {
		o.Settle = 2 * time.Second
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	switch {
	case o.Operators < 1 || o.Operators > 100000:
		return errors.New("operators: want 1 to 100000")
	case o.Rate < 0 || o.Rate > 100000 || math.IsNaN(o.Rate):
		return errors.New("rate: want 0 to 100000 events/s")
	case o.Duration < 0 || o.Duration > 24*time.Hour:
		return errors.New("duration: want up to 24h")
	case o.Ring < 1 || o.Ring > o.Operators || o.Ring > retailcrm.MaxCodes:
		return fmt.Errorf("ring: want 1 to min(operators, %d)", retailcrm.MaxCodes)
	case o.RingMax != 0 && (o.RingMax < o.Ring || o.RingMax > o.Operators || o.RingMax > retailcrm.MaxCodes):
		return fmt.Errorf("ring-max: want ring to min(operators, %d)", retailcrm.MaxCodes)
	case o.Posters < 1 || o.Posters > 1000:
		return errors.New("posters: want 1 to 1000")
	case o.Drain < 0 || o.Settle < 0:
		return errors.New("drain and settle must not be negative")
	case o.Supervisors < 0 || o.Supervisors > 100:
		return errors.New("supervisors: want 0 to 100")
	case o.Target != TargetPult && o.Target != TargetGorilla && o.Target != TargetCentrifugo:
		return errors.New("target: want pult, gorilla or centrifugo")
	case o.Target == TargetGorilla && (o.Supervisors > 0 || o.Restart):
		return errors.New("the gorilla baseline has no queue board and no persistence: no --supervisors, no --restart")
	case o.Target == TargetCentrifugo && (o.Supervisors > 0 || o.Restart || o.Sync != ""):
		return errors.New("centrifugo has no queue board and its memory engine no persistence: no --supervisors, --restart or --sync")
	case o.Idle < 0:
		return errors.New("idle must not be negative")
	case o.Cluster < 0 || o.Cluster == 2 || o.Cluster > 7:
		return fmt.Errorf("cluster: want %d to 7 relays (or 0: one)", clusterReplicas)
	case o.Cluster > 1 && o.Target != TargetPult:
		return errors.New("cluster: the relay only (--target pult)")
	case o.Cluster > 1 && o.Restart:
		return errors.New("cluster: no --restart (--kill kills a node)")
	case o.Kill && o.Cluster < clusterReplicas:
		return errors.New("kill: needs a cluster (--cluster 3)")
	}
	if o.Cluster == 1 {
		o.Cluster = 0
	}
	return nil
}

// Latency summarises a set of durations, in milliseconds.
type Latency struct {
	N   int     `json:"n"`
	Min float64 `json:"min"`
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// Outlier is one slow delivery.
type Outlier struct {
	Call      string  `json:"call"`
	Operator  int     `json:"operator"`  // index: code 1000+index
	At        float64 `json:"at"`        // seconds after the first event was fired
	LatencyMS float64 `json:"latencyMs"` // POST start → frame at the operator
	PostMS    float64 `json:"postMs"`    // how long that POST took to answer
}

// Report is the outcome of a run.
type Report struct {
	Target    string  `json:"target"`
	Relays    int     `json:"relays"`             // relay processes: 1, or a cluster's nodes
	Replicas  int     `json:"replicas,omitempty"` // copies of every stream, with a cluster
	Operators int     `json:"operators"`
	Ring      int     `json:"ring"`
	RingMax   int     `json:"ringMax,omitempty"`
	Posters   int     `json:"posters"`
	NoFile    uint64  `json:"noFileLimit"`
	ConnectS  float64 `json:"connectSeconds"` // time to connect every operator

	RateTarget   float64 `json:"rateTarget"`
	RateAchieved float64 `json:"rateAchieved"`  // events posted / max(duration, firing wall time)
	FiringS      float64 `json:"firingSeconds"` // first POST start to last POST answer
	EventsPosted int     `json:"eventsPosted"`
	HTTPErrors   int     `json:"httpErrors"`
	PostRetries  int     `json:"postRetries,omitempty"` // POSTs sent again to another node (a cluster)
	RetriedPosts int     `json:"eventsRetried,omitempty"`
	FirstError   string  `json:"firstHttpError,omitempty"`
	PostLatency  Latency `json:"webhookAnswerMs"` // POST round trip

	Expected    int     `json:"expectedDeliveries"` // one card per rung operator per accepted event
	Delivered   int     `json:"delivered"`          // unique (call, operator) cards received
	Lost        int     `json:"lost"`               // expected but never received
	Duplicated  int     `json:"duplicated"`         // receipts beyond the first of a (call, operator)
	Unexpected  int     `json:"unexpected"`         // cards for a call that did not ring that operator
	OtherFrames int     `json:"otherFrames"`        // frames other than hello and call
	OutOfOrder  int     `json:"outOfOrder"`         // frames whose seq did not increase
	Disconnects int     `json:"disconnects"`        // connections that closed before the end
	FirstClose  string  `json:"firstDisconnect,omitempty"`
	PerSec      float64 `json:"deliveriesPerSecond"` // delivered / the same window as RateAchieved
	Latency     Latency `json:"latencyMs"`           // POST start → frame at the operator
	// With a cluster, Latency split by where the webhook was answered: by
	// the relay the operator's agent is connected to, or by another one
	// (the card then crosses to the agent's relay over NATS).
	LatencyHere  *Latency  `json:"latencyWebhookHereMs,omitempty"`
	LatencyCross *Latency  `json:"latencyWebhookElsewhereMs,omitempty"`
	Worst        []Outlier `json:"slowest"`
	// Trace is where the cards' time went, with Options.Trace.
	Trace *TraceReport `json:"trace,omitempty"`

	RSSBefore  int64 `json:"rssBeforeBytes"` // operators added, none connected
	RSSIdle    int64 `json:"rssIdleBytes"`   // all connected, no load
	RSSEnd     int64 `json:"rssEndBytes"`    // after the load and the drain
	RSSPerConn int64 `json:"rssPerConnBytes"`
	// The relay's Go heap in use and goroutines at the same three moments.
	HeapBefore       int64   `json:"heapBeforeBytes"`
	HeapIdle         int64   `json:"heapIdleBytes"`
	HeapEnd          int64   `json:"heapEndBytes"`
	GoroutinesBefore int     `json:"goroutinesBefore"`
	GoroutinesIdle   int     `json:"goroutinesIdle"`
	GoroutinesEnd    int     `json:"goroutinesEnd"`
	RelayCPU         float64 `json:"relayCpuPercent"` // of one core, while firing
	BenchCPU         float64 `json:"benchCpuPercent"` // this process, same window

	// With Idle: the relay's CPU over the idle window (% of one core), its
	// RSS at the end of it and per connection against RSSBefore.
	IdleS            float64 `json:"idleSeconds,omitempty"`
	IdleCPU          float64 `json:"idleCpuPercent,omitempty"`
	RSSSteady        int64   `json:"rssSteadyBytes,omitempty"`
	RSSSteadyPerConn int64   `json:"rssSteadyPerConnBytes,omitempty"`
	HeapSteady       int64   `json:"heapSteadyBytes,omitempty"`

	Storm *StormReport `json:"restart,omitempty"` // with Restart

	RelayWarnings int      `json:"relayLogWarnings"`
	RelayLog      []string `json:"relayLogSample,omitempty"`

	Board *BoardReport `json:"board,omitempty"` // with Supervisors
}

// call is one fired event. Written by the dispatcher (ops) and one poster
// (the rest); read once every poster has finished.
type call struct {
	ops  []int32
	sent time.Time
	post time.Duration
	ok   bool
	err  string // why the POST failed
	// POSTs of this event sent again (to another node of a cluster)
	// after one failed; sent and post are the first's start and the
	// answered one's end.
	retries int
	node    int // the node (index into relayProc.nodes) that answered
}

// receipt is a card for one call at one operator.
type receipt struct {
	first time.Time
	count int
	node  int32 // the node the operator was connected to at first
}

// operator is one simulated agent connection with its own reader.
type operator struct {
	idx      int
	stopping *atomic.Bool
	mu       sync.Mutex // guards conn, replaced by a reconnect
	conn     *websocket.Conn
	epoch    string
	done     chan struct{}
	recv     map[int]*receipt // call number → receipt; only the reader touches it until done
	other    int
	bad      int // call frames whose id is not one of ours
	order    int
	last     uint64
	err      error
	// cards, when not nil, has the operator take cards ahead of the log
	// and count the cards shown by the agent's own rules (agent.CardFilter).
	cards *agent.CardFilter

	drops      int       // connections lost and redialled (with Restart)
	backAt     time.Time // when the last reconnect's hello arrived
	notResumed int       // reconnects whose hello said resumed=false

	// route is the nodes (indexes into relayProc.nodes) in the order this
	// operator tries them, as the agent's: its first node (round robin),
	// then the others shuffled. at is the current one; node is the node of
	// the current connection, read by the kill.
	route []int
	at    int
	node  atomic.Int32
}

// Run performs one benchmark. It always stops the relay and removes its
// temporary folder before returning.
func Run(ctx context.Context, o Options) (rep Report, err error) {
	if err := o.defaults(); err != nil {
		return rep, fmt.Errorf("bench: %w", err)
	}
	rep.Target, rep.Operators, rep.Ring, rep.RingMax, rep.Posters, rep.RateTarget = o.Target, o.Operators, o.Ring, o.RingMax, o.Posters, o.Rate
	rep.Relays = max(1, o.Cluster)
	if o.Cluster > 0 {
		rep.Replicas = clusterReplicas
	}
	progress := func(format string, a ...any) { fmt.Fprintf(o.Progress, format+"\n", a...) }

	if rep.NoFile, err = relay.RaiseNoFile(); err != nil {
		return rep, fmt.Errorf("bench: raise RLIMIT_NOFILE: %w", err)
	}
	if need := uint64(o.Operators) + 64; rep.NoFile != 0 && rep.NoFile < need {
		return rep, fmt.Errorf("bench: %d operators need about %d file descriptors; the limit is %d", o.Operators, need, rep.NoFile)
	}
	dir, err := os.MkdirTemp("", "pult-bench-")
	if err != nil {
		return rep, fmt.Errorf("bench: %w", err)
	}
	defer os.RemoveAll(dir)

	var rp *relayProc
	switch {
	case o.Target == TargetCentrifugo:
		progress("starting %s…", o.Target)
		rp, err = startCentrifugo(ctx, o, dir)
	case o.Cluster > 0:
		progress("starting %d relays, one embedded JetStream cluster (replicas %d)…", o.Cluster, clusterReplicas)
		rp, err = startCluster(ctx, o, dir)
	default:
		progress("starting %s…", o.Target)
		rp, err = startRelay(ctx, o, dir)
	}
	if err != nil {
		return rep, err
	}
	defer func() {
		if serr := rp.stop(); serr != nil && err == nil {
			err = serr
		}
	}()

	var tokens []string
	switch {
	case rp.centrifugo:
		tokens = centrifugoTokens(rp.hmacSecret, o.Operators)
	case rp.baseline:
		for i := range o.Operators {
			tokens = append(tokens, strconv.Itoa(1000+i)) // the code; no auth
		}
	default:
		progress("adding %d operators…", o.Operators)
		if tokens, err = addOperators(ctx, rp, o.Operators); err != nil {
			return rep, err
		}
	}
	var supTokens []string
	if o.Supervisors > 0 {
		if supTokens, err = addSupervisors(ctx, rp, o.Supervisors); err != nil {
			return rep, err
		}
	}
	if !sleep(ctx, o.Settle) {
		return rep, ctx.Err()
	}
	if rep.RSSBefore, err = rp.rss(); err != nil {
		return rep, fmt.Errorf("bench: relay RSS: %w", err)
	}
	rep.HeapBefore, rep.GoroutinesBefore = rp.goStatsAll(ctx)

	progress("connecting %d operators…", o.Operators)
	var stopping atomic.Bool
	t0 := time.Now()
	var storm *stormState
	if o.Restart || o.Kill {
		storm = &stormState{}
		storm.victim.Store(-1)
	}
	ops, err := connect(ctx, rp, tokens, !o.StoredOnly && o.Target == TargetPult, &stopping, storm)
	rep.ConnectS = time.Since(t0).Seconds()
	defer func() {
		// Close every connection and wait for its reader (bounded).
		stopping.Store(true)
		closeAll(ops)
	}()
	if err != nil {
		return rep, err
	}
	if !sleep(ctx, o.Settle) {
		return rep, ctx.Err()
	}
	if rep.RSSIdle, err = rp.rss(); err != nil {
		return rep, fmt.Errorf("bench: relay RSS: %w", err)
	}
	rep.HeapIdle, rep.GoroutinesIdle = rp.goStatsAll(ctx)
	rep.RSSPerConn = (rep.RSSIdle - rep.RSSBefore) / int64(o.Operators)
	if o.ProfileDir != "" {
		rp.profile(ctx, o.ProfileDir, "heap-settled", "heap", 0)
		rp.profile(ctx, o.ProfileDir, "goroutine-settled", "goroutine", 0)
	}
	if o.Idle > 0 {
		progress("idle for %s with %d operators connected…", o.Idle, len(ops))
		var idleProf sync.WaitGroup
		if o.ProfileDir != "" {
			idleProf.Go(func() { rp.profile(ctx, o.ProfileDir, "cpu-idle", "profile", o.Idle) })
		}
		t0, _ := rp.cpuTicks()
		w0 := time.Now()
		if !sleep(ctx, o.Idle) {
			return rep, ctx.Err()
		}
		t1, _ := rp.cpuTicks()
		rep.IdleS = time.Since(w0).Seconds()
		rep.IdleCPU = float64(t1-t0) / clockTicks / rep.IdleS * 100
		idleProf.Wait()
		if rep.RSSSteady, err = rp.rss(); err != nil {
			return rep, fmt.Errorf("bench: relay RSS: %w", err)
		}
		rep.HeapSteady, _ = rp.goStatsAll(ctx)
		rep.RSSSteadyPerConn = (rep.RSSSteady - rep.RSSBefore) / int64(o.Operators)
		if o.ProfileDir != "" {
			// With heap-settled as -base: what the idle relay allocated.
			rp.profile(ctx, o.ProfileDir, "heap-idle", "heap", 0)
		}
	}

	var sups []*supervisor
	if len(supTokens) > 0 {
		progress("subscribing %d supervisor(s) to the queue board…", len(supTokens))
		sups, err = subscribeBoards(ctx, rp, supTokens, &stopping)
		defer func() {
			stopping.Store(true)
			closeSupervisors(sups)
		}()
		if err != nil {
			return rep, err
		}
	}

	progress("firing %.0f events/s for %s, ringing %d operator(s) each…", o.Rate, o.Duration, o.Ring)
	var fireProf sync.WaitGroup
	if o.ProfileDir != "" && !o.Restart {
		fireProf.Go(func() { rp.profile(ctx, o.ProfileDir, "cpu-firing", "profile", o.Duration) })
	}
	relayT0, _ := rp.cpuTicks()
	benchT0, _ := cpuTicks(0)
	var restartErr error
	stormDone := make(chan struct{})
	switch {
	case o.Restart:
		go func() {
			defer close(stormDone)
			rep.Storm, restartErr = restartStorm(ctx, rp, o, storm, len(ops), progress)
		}()
	case o.Kill:
		go func() {
			defer close(stormDone)
			rep.Storm, restartErr = killStorm(ctx, rp, o, storm, ops, progress)
		}()
	default:
		close(stormDone)
	}
	calls, fireStart, fireEnd := fire(ctx, rp, o)
	<-stormDone
	if restartErr != nil {
		return rep, restartErr
	}
	relayT1, _ := rp.cpuTicks()
	benchT1, _ := cpuTicks(0)
	fireProf.Wait()
	wall := fireEnd.Sub(fireStart).Seconds()
	if wall > 0 && !o.Restart && !o.Kill { // a restarted relay is another process; a killed one's CPU is gone
		rep.RelayCPU = float64(relayT1-relayT0) / clockTicks / wall * 100
		rep.BenchCPU = float64(benchT1-benchT0) / clockTicks / wall * 100
	}
	rep.FiringS = wall

	progress("draining for %s…", o.Drain)
	if !sleep(ctx, o.Drain) {
		return rep, ctx.Err()
	}
	for _, n := range rp.nodes() {
		if !n.killed && !n.alive() {
			return rep, fmt.Errorf("%w (%v):\n%s", errRelayDied, n.waitErr, n.logTail(20))
		}
	}
	var traced map[string]eventtrace.Event
	if o.Trace && o.Target == TargetPult {
		if traced, err = fetchTrace(ctx, rp); err != nil {
			return rep, err
		}
	}
	if rep.RSSEnd, err = rp.rss(); err != nil {
		return rep, fmt.Errorf("bench: relay RSS: %w", err)
	}
	rep.HeapEnd, rep.GoroutinesEnd = rp.goStatsAll(ctx)
	stopping.Store(true)
	if !closeAll(ops) {
		return rep, errors.New("bench: operator readers did not stop within 10s of closing")
	}
	if len(sups) > 0 && !closeSupervisors(sups) {
		return rep, errSupervisorsStuck
	}
	for _, n := range rp.nodes() {
		w, l := n.logFindings(5)
		rep.RelayWarnings += w
		rep.RelayLog = append(rep.RelayLog, l...)
	}
	rep.RelayLog = rep.RelayLog[:min(len(rep.RelayLog), 5)]
	tally(&rep, calls, ops, fireStart)
	if traced != nil {
		rep.Trace = tallyTrace(traced, calls, ops)
	}
	if rep.Storm != nil {
		tallyStorm(rep.Storm, calls, ops)
	}
	if len(sups) > 0 {
		br := tallyBoard(calls, sups)
		rep.Board = &br
	}
	// Rates are over the nominal window, or the real one when posting ran
	// late: n events paced at r/s span (n-1)/r, not n/r.
	if window := max(wall, o.Duration.Seconds()); window > 0 {
		rep.RateAchieved = float64(rep.EventsPosted) / window
		rep.PerSec = float64(rep.Delivered) / window
	}
	return rep, nil
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// addOperators adds operators with codes 1000+i and user ids i+1 and
// returns their tokens.
func addOperators(ctx context.Context, rp *relayProc, n int) ([]string, error) {
	ac := &admin.Client{Socket: rp.adminSocket}
	tokens := make([]string, n)
	errs := make([]error, n)
	parallel(n, 8, func(i int) {
		if ctx.Err() != nil {
			errs[i] = ctx.Err()
			return
		}
		added, err := ac.AddOperator(ctx, operators.NewOperator{
			Name: "Bench operator " + strconv.Itoa(i+1), Code: strconv.Itoa(1000 + i), UserID: strconv.Itoa(i + 1),
		})
		tokens[i], errs[i] = added.Token, err
	})
	for i, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("bench: add operator %d: %w", 1000+i, err)
		}
	}
	return tokens, nil
}

// parallel runs f(0..n-1) on at most workers goroutines.
func parallel(n, workers int, f func(i int)) {
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				f(i)
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}

// connect opens one websocket per token, reads each hello, and starts the
// readers. On error the operators connected so far are returned too, so the
// caller can close them. ahead: the operators take cards ahead of the log.
func connect(ctx context.Context, rp *relayProc, tokens []string, ahead bool, stopping *atomic.Bool, storm *stormState) ([]*operator, error) {
	ops := make([]*operator, len(tokens))
	errs := make([]error, len(tokens))
	parallel(len(tokens), 32, func(i int) {
		if ctx.Err() != nil {
			errs[i] = ctx.Err()
			return
		}
		op := &operator{idx: i, done: make(chan struct{}), recv: map[int]*receipt{}, stopping: stopping}
		if ahead {
			op.cards = new(agent.CardFilter)
		}
		if n := len(rp.nodes()); n > 1 {
			// The first node round robin, then the others in a random
			// order: the agent given every relay starts on a random one.
			op.route = []int{i % n}
			for _, k := range rand.Perm(n - 1) {
				op.route = append(op.route, (i%n+1+k)%n)
			}
		}
		errs[i] = op.dial(ctx, rp, tokens[i])
		for try := 0; errs[i] != nil && len(op.route) > 1 && try < 10 && !errors.Is(errs[i], errStopping); try++ {
			// A node may not know an operator added on another one yet.
			if !sleep(ctx, 200*time.Millisecond) {
				break
			}
			errs[i] = op.dial(ctx, rp, tokens[i])
		}
		if errs[i] != nil {
			return
		}
		ops[i] = op
		go op.read(ctx, rp, tokens[i], stopping, storm)
	})
	ops = slices.DeleteFunc(ops, func(op *operator) bool { return op == nil })
	for i, err := range errs {
		if err != nil {
			return ops, fmt.Errorf("bench: connect operator %d: %w", 1000+i, err)
		}
	}
	return ops, nil
}

var errStopping = errors.New("bench: stopping")

var dialer = &websocket.Dialer{HandshakeTimeout: 15 * time.Second, ReadBufferSize: 2048, WriteBufferSize: 512}

// dial connects (resuming from op.last when op.epoch is known), reads the
// hello and makes the connection the operator's.
func (op *operator) dial(ctx context.Context, rp *relayProc, token string) error {
	if rp.centrifugo {
		return op.dialCentrifugo(ctx, rp, token)
	}
	node := 0
	if len(op.route) > 0 {
		node = op.route[op.at]
	}
	q := url.Values{}
	if op.cards != nil {
		q.Set(wire.QueryPreview, "1")
	}
	if op.epoch != "" {
		q.Set(wire.QuerySince, strconv.FormatUint(op.last, 10))
		q.Set(wire.QueryEpoch, op.epoch)
	}
	u := "ws" + strings.TrimPrefix(rp.nodes()[node].baseURL, "http") + wire.Path + "?" + q.Encode()
	h := http.Header{}
	h.Set("Authorization", "Bearer "+token)
	h.Set(wire.HeaderProtocol, strconv.Itoa(wire.ProtocolVersion))
	conn, resp, err := dialer.DialContext(ctx, u, h)
	if err != nil {
		if resp != nil {
			err = fmt.Errorf("%w (HTTP %d)", err, resp.StatusCode)
		}
		return err
	}
	conn.SetReadDeadline(time.Now().Add(15 * time.Second))
	var env wire.Envelope
	_, b, err := conn.ReadMessage()
	if err == nil {
		err = json.Unmarshal(b, &env)
	}
	if err == nil && env.Type != wire.TypeHello {
		err = fmt.Errorf("first frame is %q, not hello", env.Type)
	}
	var hello wire.Hello
	if err == nil && !rp.baseline {
		err = json.Unmarshal(env.Data, &hello)
	}
	if err != nil {
		conn.Close()
		return fmt.Errorf("hello: %w", err)
	}
	conn.SetReadDeadline(time.Time{})
	if op.epoch != "" && !hello.Resumed {
		op.notResumed++
	}
	if !hello.Resumed {
		op.last = hello.Position
	}
	op.epoch = hello.Epoch
	op.mu.Lock()
	defer op.mu.Unlock()
	if op.stopping.Load() { // closeAll has run or is waiting for this lock
		conn.Close()
		return errStopping
	}
	op.conn = conn
	op.node.Store(int32(node))
	return nil
}

// read is the operator's only reader: it answers pings (the library does)
// and records each call card's first arrival. With a storm it reconnects
// as the agent does when the connection drops.
func (op *operator) read(ctx context.Context, rp *relayProc, token string, stopping *atomic.Bool, storm *stormState) {
	defer close(op.done)
	for {
		var err error
		if rp.centrifugo {
			err = op.readCentrifugo()
		} else {
			err = op.readConn()
		}
		if stopping.Load() {
			return
		}
		if storm == nil {
			op.err = err
			return
		}
		op.drops++
		storm.dropped.Add(1)
		storm.dropOn(int(op.node.Load()), err)
		rt := agent.NewRetry(len(op.route)) // paced as the agent
		for stable := true; ; stable = false {
			if !sleep(ctx, agent.Backoff(rt.Failed(stable), agent.DefaultMinBackoff, agent.DefaultMaxBackoff)) || stopping.Load() {
				return
			}
			if len(op.route) > 1 {
				op.at = (op.at + 1) % len(op.route) // another relay, as the agent
			}
			derr := op.dial(ctx, rp, token)
			if derr == nil {
				break
			}
			storm.failedDials.Add(1)
			if storm.firstFailed.Load() == nil {
				s := derr.Error()
				storm.firstFailed.CompareAndSwap(nil, &s)
			}
		}
		op.backAt = time.Now()
		storm.back.Add(1)
	}
}

// readConn reads until the connection fails.
func (op *operator) readConn() error {
	op.mu.Lock()
	conn := op.conn
	op.mu.Unlock()
	for {
		_, b, err := conn.ReadMessage()
		now := time.Now()
		if err != nil {
			return err
		}
		var env wire.Envelope
		if json.Unmarshal(b, &env) != nil {
			op.other++
			continue
		}
		if env.Seq != 0 {
			if env.Seq <= op.last {
				op.order++
			}
			op.last = env.Seq
		}
		switch env.Type {
		case wire.TypeStored, wire.TypeWithdrawn:
			op.other++
			if op.cards == nil {
				continue
			}
			// A card taken back (the relay could not store it) was not
			// received; one withdrawn to a card of the call is no new one.
			if ev, ok := op.cards.Settle(env, discard); ok && ev.Kind == agent.EventCallWithdrawn {
				if n, ok := callNumber(ev.Call.ID); ok && op.recv[n] != nil {
					op.recv[n].count--
				}
			}
			continue
		case wire.TypeCall:
		default:
			op.other++
			continue
		}
		var card wire.Call
		json.Unmarshal(env.Data, &card)
		if op.cards != nil {
			// As the agent: a card shown ahead and met stored, one shared
			// late or re-sent, or one older than the card shown, is not
			// shown again.
			if ev := op.cards.Filter(env, agent.Event{Kind: agent.EventCall, Seq: env.Seq, Call: &card}); ev.Kind != agent.EventCall {
				continue
			}
		}
		op.receive(card.ID, now)
	}
}

// discard is the log of the bench's agents' card filters.
var discard = slog.New(slog.DiscardHandler)

// receive counts a card of call id that arrived at now (a call frame whose
// id is not one of the bench's counts as bad). Only the reader calls it.
func (op *operator) receive(id string, now time.Time) {
	n, ok := callNumber(id)
	if !ok {
		op.bad++
		return
	}
	r := op.recv[n]
	if r == nil {
		r = &receipt{}
		op.recv[n] = r
	}
	if r.count == 0 { // the first, or the first since one was taken back
		r.first, r.node = now, op.node.Load()
	}
	r.count++
}

const callPrefix = "b-"

func callNumber(id string) (int, bool) {
	s, ok := strings.CutPrefix(id, callPrefix)
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	return n, err == nil && n >= 0
}

// closeAll closes every connection and waits up to 10s for the readers. It
// reports whether every reader has finished.
func closeAll(ops []*operator) bool {
	msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bench done")
	for _, op := range ops {
		op.mu.Lock()
		op.conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
		op.conn.Close()
		op.mu.Unlock()
	}
	deadline := time.After(10 * time.Second)
	for _, op := range ops {
		select {
		case <-op.done:
		case <-deadline:
			return false
		}
	}
	return true
}

// fire posts events at o.Rate for o.Duration from o.Posters goroutines. A
// paced dispatcher hands out call numbers on schedule; a poster records the
// time just before its POST starts.
func fire(ctx context.Context, rp *relayProc, o Options) (calls []call, start, end time.Time) {
	total := int(math.Round(o.Rate * o.Duration.Seconds()))
	calls = make([]call, total)
	hc := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{
		MaxIdleConns: o.Posters, MaxIdleConnsPerHost: o.Posters, DisableCompression: true}}
	defer hc.CloseIdleConnections()
	jobs := make(chan int, o.Posters)
	var wg sync.WaitGroup
	for range o.Posters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range jobs {
				if rp.centrifugo {
					postCentrifugo(ctx, hc, rp, n, &calls[n])
				} else {
					post(ctx, hc, rp, n, &calls[n])
				}
			}
		}()
	}

	tick := time.Duration(float64(time.Second) / math.Max(o.Rate, 1))
	tick = min(max(tick, time.Millisecond), 10*time.Millisecond)
	t := time.NewTicker(tick)
	defer t.Stop()
	start = time.Now()
	next := 0
dispatch:
	for next < total {
		due := min(total, int(time.Since(start).Seconds()*o.Rate)+1)
		for ; next < due; next++ {
			k := o.Ring
			if o.RingMax > o.Ring {
				k += rand.IntN(o.RingMax - o.Ring + 1)
			}
			calls[next].ops = pick(o.Operators, k)
			select {
			case jobs <- next:
			case <-ctx.Done():
				break dispatch
			}
		}
		if next >= total {
			break
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			break dispatch
		}
	}
	close(jobs)
	wg.Wait()
	return calls[:next], start, time.Now()
}

// pick chooses k distinct operators out of n.
func pick(n, k int) []int32 {
	out := make([]int32, 0, k)
	for len(out) < k {
		i := int32(rand.IntN(n))
		if !slices.Contains(out, i) {
			out = append(out, i)
		}
	}
	return out
}

func post(ctx context.Context, hc *http.Client, rp *relayProc, n int, c *call) {
	codes := make([]string, len(c.ops))
	for i, op := range c.ops {
		codes[i] = strconv.Itoa(1000 + int(op))
	}
	ev, _ := json.Marshal(map[string]any{
		"type": "in", "phone": fmt.Sprintf("+79%09d", rand.IntN(1_000_000_000)),
		"codes": codes, "callExternalId": callPrefix + strconv.Itoa(n),
	})
	form := url.Values{"event": {string(ev)}}.Encode()
	nodes := rp.nodes()
	c.sent = time.Now()
	deadline := c.sent.Add(postRetryFor)
	for try := 0; ; try++ {
		c.node = (n + try) % len(nodes)
		retry := postOnce(ctx, hc, nodes[c.node], rp.pbxKey, form, c)
		c.post = time.Since(c.sent)
		if c.ok || !retry || len(nodes) == 1 || ctx.Err() != nil || time.Now().After(deadline) {
			return
		}
		// As a PBX given several relays: at once to the next one; after
		// a whole round, a pause.
		c.retries++
		if (try+1)%len(nodes) == 0 && !sleep(ctx, 100*time.Millisecond) {
			return
		}
	}
}

// postRetryFor is how long an event is posted again to other nodes of a
// cluster after a failure.
const postRetryFor = 30 * time.Second

// postOnce posts form to one relay; it reports whether a failure is worth
// trying on another relay (no answer, or a 5xx).
func postOnce(ctx context.Context, hc *http.Client, rp *relayProc, key, form string, c *call) (retry bool) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, rp.baseURL+retailcrm.PathCallEvent, strings.NewReader(form))
	if err != nil {
		c.err = err.Error()
		return false
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-API-KEY", key)
	resp, err := hc.Do(req)
	if err != nil {
		c.err = err.Error()
		return true
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	var ans struct {
		Success       bool     `json:"success"`
		NotExistCodes []string `json:"notExistCodes"`
	}
	json.Unmarshal(body, &ans)
	c.ok = resp.StatusCode == http.StatusOK && ans.Success && len(ans.NotExistCodes) == 0
	if !c.ok {
		c.err = fmt.Sprintf("HTTP %d: %.200s", resp.StatusCode, strings.TrimSpace(string(body)))
	} else {
		c.err = ""
	}
	return resp.StatusCode >= 500
}
