package bench

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/pult/pult/agent"
)

// stormState is what the reconnecting readers share with Run.
type stormState struct {
	dropped     atomic.Int64 // connections lost
	back        atomic.Int64 // reconnects that got their hello
	failedDials atomic.Int64
}

// StormReport is the reconnect storm (Options.Restart).
type StormReport struct {
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

// reconnectDelay is the agent's: full jitter in [0, min(30 s, 500 ms·2ⁿ)].
func reconnectDelay(attempt int) time.Duration {
	ceil := agent.DefaultMinBackoff
	for range attempt {
		if ceil >= agent.DefaultMaxBackoff/2 {
			ceil = agent.DefaultMaxBackoff
			break
		}
		ceil *= 2
	}
	return time.Duration(rand.Int64N(int64(ceil) + 1))
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
	byIdx := make(map[int32]*operator, len(ops))
	for _, op := range ops {
		byIdx[int32(op.idx)] = op
	}
	var caught time.Time
	for n, c := range calls {
		if !c.ok {
			if !c.sent.Before(r.stopAt) && c.sent.Before(r.healthy) {
				r.RefusedWhile++
			}
			continue
		}
		if !c.sent.Before(last) {
			continue
		}
		for _, oi := range c.ops {
			op := byIdx[oi]
			if op == nil || op.recv[n] == nil {
				continue
			}
			if f := op.recv[n].first; f.After(r.stopAt) {
				r.Missed++
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
