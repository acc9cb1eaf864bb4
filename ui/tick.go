package ui

import "time"

// ticker runs f on the UI goroutine once a second until stopped: the live
// timers of cards and of the Queue window. Nothing ticks without one.
type ticker struct {
	t    *time.Ticker
	done chan struct{}
}

func (a *App) everySecond(f func()) *ticker {
	tk := &ticker{t: time.NewTicker(time.Second), done: make(chan struct{})}
	go func() {
		for {
			select {
			case <-tk.done:
				return
			case <-tk.t.C:
				a.do(f)
			}
		}
	}()
	return tk
}

func (tk *ticker) stop() {
	tk.t.Stop()
	close(tk.done)
}
