//go:build !ci

package ui

import (
	"log/slog"

	"fyne.io/fyne/v2"
)

// notesQueued is how many notifications may wait for the desktop's
// notification service before more are dropped (and logged).
const notesQueued = 16

// notifier sends the app's OS notifications from a goroutine of its own,
// one after another, in order. On Linux fyne's SendNotification is a D-Bus
// call that waits for the desktop's notification service to answer: 3–16 ms
// here, 20–57 ms on a loaded machine (BENCHMARKS.md, "Issue 16: the second
// card"). Made on the UI goroutine, it held the loop: a new card was
// drawn, then nothing else happened until the service answered. Should the
// service not answer at all, notifications beyond notesQueued are dropped
// and logged rather than wait. q is the UI goroutine's; the goroutine
// started on the first notification only reads it, and lives as long as
// the process.
type notifier struct {
	q chan *fyne.Notification
}

// send queues n. UI goroutine.
func (nt *notifier) send(fa fyne.App, log *slog.Logger, n *fyne.Notification) {
	if nt.q == nil {
		nt.q = make(chan *fyne.Notification, notesQueued)
		go func(q <-chan *fyne.Notification) {
			for n := range q {
				fa.SendNotification(n)
			}
		}(nt.q)
	}
	select {
	case nt.q <- n:
	default:
		log.Warn("notification dropped: the desktop's notification service is not answering")
	}
}
