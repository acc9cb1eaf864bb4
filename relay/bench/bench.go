// Package bench is a load tool for the relay: it starts a relay as a child
// process (so its memory and CPU are its own), adds and connects simulated
// operators over websockets, fires retailCRM-style call events at the real
// webhook at a fixed rate, and measures how fast and how completely the
// call cards reach the operators.
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

	"github.com/pult/pult/agent/wire"
	"github.com/pult/pult/relay"
	"github.com/pult/pult/relay/retailcrm"
)

// Options of a run. Zero fields take the defaults in brackets.
type Options struct {
	Operators int           // simulated operators, all connected [1000]
	Rate      float64       // call events per second [200]
	Duration  time.Duration // how long events are fired [30s]
	Ring      int           // operators rung by each call, chosen at random [1]
	Posters   int           // concurrent webhook posters [8]
	Drain     time.Duration // wait after the last event for late frames [5s]
	Settle    time.Duration // pause before each idle RSS reading [2s]
	// Supervisors subscribed to the queue board while the calls are fired
	// [0: none]; the report then has the board's latency.
	Supervisors int

	// RelayBin is the pult-relay binary run as "serve --config FILE"
	// [this executable].
	RelayBin string
	// Command, when set, builds the relay's command line instead; it gets
	// the generated config's path. Stdout, Stderr and (when nil) Env and
	// SysProcAttr are set by Run.
	Command func(configPath string) *exec.Cmd

	Progress io.Writer // phase messages [discarded]
}

func (o *Options) defaults() error {
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
	case o.Posters < 1 || o.Posters > 1000:
		return errors.New("posters: want 1 to 1000")
	case o.Drain < 0 || o.Settle < 0:
		return errors.New("drain and settle must not be negative")
	case o.Supervisors < 0 || o.Supervisors > 100:
		return errors.New("supervisors: want 0 to 100")
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
	Operators int     `json:"operators"`
	Ring      int     `json:"ring"`
	Posters   int     `json:"posters"`
	NoFile    uint64  `json:"noFileLimit"`
	ConnectS  float64 `json:"connectSeconds"` // time to connect every operator

	RateTarget   float64 `json:"rateTarget"`
	RateAchieved float64 `json:"rateAchieved"`  // events posted / max(duration, firing wall time)
	FiringS      float64 `json:"firingSeconds"` // first POST start to last POST answer
	EventsPosted int     `json:"eventsPosted"`
	HTTPErrors   int     `json:"httpErrors"`
	FirstError   string  `json:"firstHttpError,omitempty"`
	PostLatency  Latency `json:"webhookAnswerMs"` // POST round trip

	Expected    int       `json:"expectedDeliveries"` // one card per rung operator per accepted event
	Delivered   int       `json:"delivered"`          // unique (call, operator) cards received
	Lost        int       `json:"lost"`               // expected but never received
	Duplicated  int       `json:"duplicated"`         // receipts beyond the first of a (call, operator)
	Unexpected  int       `json:"unexpected"`         // cards for a call that did not ring that operator
	OtherFrames int       `json:"otherFrames"`        // frames other than hello and call
	OutOfOrder  int       `json:"outOfOrder"`         // frames whose seq did not increase
	Disconnects int       `json:"disconnects"`        // connections that closed before the end
	FirstClose  string    `json:"firstDisconnect,omitempty"`
	PerSec      float64   `json:"deliveriesPerSecond"` // delivered / the same window as RateAchieved
	Latency     Latency   `json:"latencyMs"`           // POST start → frame at the operator
	Worst       []Outlier `json:"slowest"`

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
}

// receipt is a card for one call at one operator.
type receipt struct {
	first time.Time
	count int
}

// operator is one simulated agent connection with its own reader.
type operator struct {
	idx   int
	conn  *websocket.Conn
	done  chan struct{}
	recv  map[int]*receipt // call number → receipt; only the reader touches it until done
	other int
	bad   int // call frames whose id is not one of ours
	order int
	last  uint64
	err   error
}

// Run performs one benchmark. It always stops the relay and removes its
// temporary folder before returning.
func Run(ctx context.Context, o Options) (rep Report, err error) {
	if err := o.defaults(); err != nil {
		return rep, fmt.Errorf("bench: %w", err)
	}
	rep.Operators, rep.Ring, rep.Posters, rep.RateTarget = o.Operators, o.Ring, o.Posters, o.Rate
	progress := func(format string, a ...any) { fmt.Fprintf(o.Progress, format+"\n", a...) }

	if rep.NoFile, err = raiseNoFile(); err != nil {
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

	progress("starting the relay…")
	rp, err := startRelay(ctx, o, dir)
	if err != nil {
		return rep, err
	}
	defer func() {
		if serr := rp.stop(); serr != nil && err == nil {
			err = serr
		}
	}()

	progress("adding %d operators…", o.Operators)
	tokens, err := addOperators(ctx, rp, o.Operators)
	if err != nil {
		return rep, err
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
	if rep.RSSBefore, err = rss(rp.pid); err != nil {
		return rep, fmt.Errorf("bench: relay RSS: %w", err)
	}
	rep.HeapBefore, rep.GoroutinesBefore = rp.goStats(ctx)

	progress("connecting %d operators…", o.Operators)
	var stopping atomic.Bool
	t0 := time.Now()
	ops, err := connect(ctx, rp, tokens, &stopping)
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
	if rep.RSSIdle, err = rss(rp.pid); err != nil {
		return rep, fmt.Errorf("bench: relay RSS: %w", err)
	}
	rep.HeapIdle, rep.GoroutinesIdle = rp.goStats(ctx)
	rep.RSSPerConn = (rep.RSSIdle - rep.RSSBefore) / int64(o.Operators)

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
	relayT0, _ := cpuTicks(rp.pid)
	benchT0, _ := cpuTicks(0)
	calls, fireStart, fireEnd := fire(ctx, rp, o)
	relayT1, _ := cpuTicks(rp.pid)
	benchT1, _ := cpuTicks(0)
	wall := fireEnd.Sub(fireStart).Seconds()
	if wall > 0 {
		rep.RelayCPU = float64(relayT1-relayT0) / clockTicks / wall * 100
		rep.BenchCPU = float64(benchT1-benchT0) / clockTicks / wall * 100
	}
	rep.FiringS = wall

	progress("draining for %s…", o.Drain)
	if !sleep(ctx, o.Drain) {
		return rep, ctx.Err()
	}
	if !rp.alive() {
		return rep, fmt.Errorf("%w (%v):\n%s", errRelayDied, rp.waitErr, rp.logTail(20))
	}
	if rep.RSSEnd, err = rss(rp.pid); err != nil {
		return rep, fmt.Errorf("bench: relay RSS: %w", err)
	}
	rep.HeapEnd, rep.GoroutinesEnd = rp.goStats(ctx)
	stopping.Store(true)
	if !closeAll(ops) {
		return rep, errors.New("bench: operator readers did not stop within 10s of closing")
	}
	if len(sups) > 0 && !closeSupervisors(sups) {
		return rep, errSupervisorsStuck
	}
	rep.RelayWarnings, rep.RelayLog = rp.logFindings(5)
	tally(&rep, calls, ops, fireStart)
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
	ac := &relay.AdminClient{BaseURL: rp.baseURL, Token: rp.adminToken,
		HTTP: &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 8}}}
	tokens := make([]string, n)
	errs := make([]error, n)
	parallel(n, 8, func(i int) {
		if ctx.Err() != nil {
			errs[i] = ctx.Err()
			return
		}
		added, err := ac.AddOperator(ctx, relay.NewOperator{
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
// caller can close them.
func connect(ctx context.Context, rp *relayProc, tokens []string, stopping *atomic.Bool) ([]*operator, error) {
	wsURL := "ws" + strings.TrimPrefix(rp.baseURL, "http") + wire.Path
	d := &websocket.Dialer{HandshakeTimeout: 15 * time.Second, ReadBufferSize: 2048, WriteBufferSize: 512}
	ops := make([]*operator, len(tokens))
	errs := make([]error, len(tokens))
	parallel(len(tokens), 32, func(i int) {
		if ctx.Err() != nil {
			errs[i] = ctx.Err()
			return
		}
		h := http.Header{}
		h.Set("Authorization", "Bearer "+tokens[i])
		h.Set(wire.HeaderProtocol, strconv.Itoa(wire.ProtocolVersion))
		conn, resp, err := d.DialContext(ctx, wsURL, h)
		if err != nil {
			if resp != nil {
				err = fmt.Errorf("%w (HTTP %d)", err, resp.StatusCode)
			}
			errs[i] = err
			return
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
		if err != nil {
			conn.Close()
			errs[i] = fmt.Errorf("hello: %w", err)
			return
		}
		conn.SetReadDeadline(time.Time{})
		op := &operator{idx: i, conn: conn, done: make(chan struct{}), recv: map[int]*receipt{}}
		ops[i] = op
		go op.read(stopping)
	})
	ops = slices.DeleteFunc(ops, func(op *operator) bool { return op == nil })
	for i, err := range errs {
		if err != nil {
			return ops, fmt.Errorf("bench: connect operator %d: %w", 1000+i, err)
		}
	}
	return ops, nil
}

// read is the operator's only reader: it answers pings (the library does)
// and records each call card's first arrival.
func (op *operator) read(stopping *atomic.Bool) {
	defer close(op.done)
	var card struct {
		ID string `json:"id"`
	}
	for {
		_, b, err := op.conn.ReadMessage()
		now := time.Now()
		if err != nil {
			if !stopping.Load() {
				op.err = err
			}
			return
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
		if env.Type != wire.TypeCall {
			op.other++
			continue
		}
		card.ID = ""
		json.Unmarshal(env.Data, &card)
		n, ok := callNumber(card.ID)
		if !ok {
			op.bad++
			continue
		}
		r := op.recv[n]
		if r == nil {
			r = &receipt{first: now}
			op.recv[n] = r
		}
		r.count++
	}
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
		op.conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
		op.conn.Close()
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
				post(ctx, hc, rp, n, &calls[n])
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
			calls[next].ops = pick(o.Operators, o.Ring)
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
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, rp.baseURL+retailcrm.PathCallEvent, strings.NewReader(form))
	if err != nil {
		c.sent, c.err = time.Now(), err.Error()
		return
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-API-KEY", rp.pbxKey)
	c.sent = time.Now()
	resp, err := hc.Do(req)
	if err != nil {
		c.post = time.Since(c.sent)
		c.err = err.Error()
		return
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	c.post = time.Since(c.sent)
	var ans struct {
		Success       bool     `json:"success"`
		NotExistCodes []string `json:"notExistCodes"`
	}
	json.Unmarshal(body, &ans)
	c.ok = resp.StatusCode == http.StatusOK && ans.Success && len(ans.NotExistCodes) == 0
	if !c.ok {
		c.err = fmt.Sprintf("HTTP %d: %.200s", resp.StatusCode, strings.TrimSpace(string(body)))
	}
}
