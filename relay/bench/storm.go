package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"
)

// stormState is what the reconnecting readers share with Run.
type stormState struct {
	dropped     atomic.Int64 // connections lost
	back        atomic.Int64 // reconnects that got their hello
	failedDials atomic.Int64

	// With Kill: connections lost on the relays that were not killed,
	// and the first one's reason.
	victim      atomic.Int32 // the killed node, -1 before the kill
	otherDrops  atomic.Int64
	firstOther  atomic.Pointer[string]
	firstFailed atomic.Pointer[string] // the first failed dial's reason
}

// StormReport is the reconnect storm (Options.Restart) or the failover
// (Options.Kill). With Kill the times count from the SIGKILL, as there is
// no relay to wait for: BackS is SIGKILL → the last moved operator's hello,
// CaughtUpS SIGKILL → the last card of an event accepted (answered 2xx)
// before everyone was back.
type StormReport struct {
	Kill       bool `json:"kill,omitempty"`       // a cluster node killed, not the relay restarted
	KilledNode int  `json:"killedNode,omitempty"` // 1-based
	OnKilled   int  `json:"onKilledNode,omitempty"`
	// With Kill: connections lost on the other relays (they moved too),
	// the first one's reason, and the first failed dial's.
	OtherDrops  int    `json:"droppedOnOthers,omitempty"`
	FirstOther  string `json:"firstDropOnOthers,omitempty"`
	FirstFailed string `json:"firstFailedDial,omitempty"`

	RestartAtS    float64 `json:"restartAtSeconds"` // after the first event was fired
	DownS         float64 `json:"downSeconds"`      // SIGTERM sent → the old relay exited
	StartS        float64 `json:"startSeconds"`     // old relay exited → new one answers /healthz
	Dropped       int     `json:"dropped"`          // connections the restart closed
	BackS         float64 `json:"backSeconds"`      // /healthz answered → the last operator's hello
	CaughtUpS     float64 `json:"caughtUpSeconds"`  // /healthz answered → the last card of an event accepted before everyone was back
	Missed        int     `json:"missedDeliveries"` // cards of events accepted before everyone was back, received after the restart
	FailedDials   int     `json:"failedDials"`      // dial attempts refused or failed while reconnecting
	NotResumed    int     `json:"notResumed"`       // reconnects the relay did not resume
	Reconnected   int     `json:"reconnected"`      // operators back
	RefusedWhile  int     `json:"httpErrorsWhileDown"`
	healthy, back time.Time
	stopAt        time.Time
}

// dropOn records a connection to node lost with err.
func (st *stormState) dropOn(node int, err error) {
	v := st.victim.Load()
	if v < 0 || node == int(v) {
		return
	}
	st.otherDrops.Add(1)
	if st.firstOther.Load() == nil {
		s := fmt.Sprintf("relay %d: %v", node+1, err)
		st.firstOther.CompareAndSwap(nil, &s)
	}
}

// killStorm kills the cluster's last node with SIGKILL a third into the
// firing and waits until every operator it had is back on another node
// (or two minutes have passed).
func killStorm(ctx context.Context, rp *relayProc, o Options, st *stormState, ops []*operator, progress func(string, ...any)) (*StormReport, error) {
	nodes := rp.nodes()
	victim := len(nodes) - 1
	r := &StormReport{Kill: true, KilledNode: victim + 1, RestartAtS: o.Duration.Seconds() / 3}
	if !sleep(ctx, o.Duration/3) {
		return r, ctx.Err()
	}
	for _, op := range ops {
		if int(op.node.Load()) == victim {
			r.OnKilled++
		}
	}
	progress("killing relay %d (SIGKILL) with %d of %d operators on it…", victim+1, r.OnKilled, len(ops))
	r.stopAt = time.Now()
	st.victim.Store(int32(victim))
	if err := nodes[victim].kill(); err != nil {
		return r, err
	}
	r.DownS = time.Since(r.stopAt).Seconds()
	r.healthy = r.stopAt // the times count from the kill
	deadline := time.Now().Add(2 * time.Minute)
	for (st.back.Load() < int64(r.OnKilled) || st.back.Load() < st.dropped.Load()) && time.Now().Before(deadline) {
		if !sleep(ctx, 5*time.Millisecond) {
			return r, ctx.Err()
		}
	}
	r.back = time.Now()
	r.Dropped = int(st.dropped.Load())
	r.Reconnected = int(st.back.Load())
	r.FailedDials = int(st.failedDials.Load())
	r.OtherDrops = int(st.otherDrops.Load())
	if s := st.firstOther.Load(); s != nil {
		r.FirstOther = *s
	}
	if s := st.firstFailed.Load(); s != nil {
		r.FirstFailed = *s
	}
	progress("%d of %d dropped operators back on the other relays %.2f s after the kill", r.Reconnected, r.Dropped, r.back.Sub(r.stopAt).Seconds())
	return r, nil
}

// restartStorm restarts the relay a third into the firing and waits until
// every operator has reconnected (or a minute has passed).
func restartStorm(ctx context.Context, rp *relayProc, o Options, st *stormState, n int, progress func(string, ...any)) (*StormReport, error) {
	r := &StormReport{RestartAtS: o.Duration.Seconds() / 3}
	if !sleep(ctx, o.Duration/3) {
		return r, ctx.Err()
	}
	progress("restarting the relay under %d connected operators…", n)
	r.stopAt = time.Now()
	stopped, healthy, err := rp.restart(ctx)
	if err != nil {
		return r, err
	}
	r.healthy = healthy
	r.DownS = stopped.Sub(r.stopAt).Seconds()
	r.StartS = healthy.Sub(stopped).Seconds()
	deadline := time.Now().Add(time.Minute)
	for st.back.Load() < int64(n) && time.Now().Before(deadline) {
		if !sleep(ctx, 5*time.Millisecond) {
			return r, ctx.Err()
		}
	}
	r.back = time.Now()
	r.Dropped = int(st.dropped.Load())
	r.Reconnected = int(st.back.Load())
	r.FailedDials = int(st.failedDials.Load())
	progress("%d of %d operators back %.2f s after the relay answered", r.Reconnected, n, r.back.Sub(healthy).Seconds())
	return r, nil
}

// tallyStorm fills in the storm's figures from what the readers recorded.
func tallyStorm(r *StormReport, calls []call, ops []*operator) {
	var last time.Time
	for _, op := range ops {
		r.NotResumed += op.notResumed
		if op.backAt.After(last) {
			last = op.backAt
		}
	}
	if !last.IsZero() {
		r.BackS = last.Sub(r.healthy).Seconds()
	}
	byIdx := byIndex(ops)
	var caught time.Time
	for n, c := range calls {
		if !c.ok {
			if r.Kill || !c.sent.Before(r.stopAt) && c.sent.Before(r.healthy) {
				r.RefusedWhile++
			}
			continue
		}
		accepted := c.sent // the restart: posted before everyone was back
		if r.Kill {
			accepted = c.sent.Add(c.post) // the kill: answered 2xx before
		}
		if !accepted.Before(last) {
			continue
		}
		for _, oi := range c.ops {
			op := byIdx[oi]
			if op == nil || op.recv[n] == nil {
				continue
			}
			if f := op.recv[n].first; f.After(r.stopAt) {
				if !r.Kill || op.drops > 0 {
					r.Missed++ // with Kill: the moved operators' only
				}
				if f.After(caught) {
					caught = f
				}
			}
		}
	}
	if !caught.IsZero() {
		r.CaughtUpS = max(0, caught.Sub(r.healthy).Seconds())
	}
}

// profile saves one of the relay's pprof profiles (seconds > 0 for CPU) as
// DIR/NAME.pprof.
func (p *relayProc) profile(ctx context.Context, dir, name, kind string, d time.Duration) {
	if p.pprofAddr == "" {
		return
	}
	u := "http://" + p.pprofAddr + "/debug/pprof/" + kind
	if d > 0 {
		u += fmt.Sprintf("?seconds=%d", int(d.Round(time.Second)/time.Second))
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	resp, err := (&http.Client{Timeout: d + 30*time.Second}).Do(req)
	if err != nil {
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return
	}
	os.MkdirAll(dir, 0o755)
	f, err := os.Create(filepath.Join(dir, name+".pprof"))
	if err != nil {
		return
	}
	defer f.Close()
	io.Copy(f, resp.Body)
}
