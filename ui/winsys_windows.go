//go:build !ci && windows

package ui

import (
	"context"
	"time"
	"unsafe"

	"github.com/go-gl/glfw/v3.3/glfw"
	"golang.org/x/sys/windows"
)

// On Windows the tray icon is a window of fyne's (main) thread: the
// notification area tells it about clicks with window messages, and its menu
// runs inside that thread's message loop, GLFW's event polling. So the parked
// loop waits for window messages as well as for pult's work, and serves the
// messages (pollWindowSystem) as they come.

// ownsClipboard: Windows keeps a copied text itself.
func ownsClipboard() bool { return false }

// pollWindowSystem dispatches the thread's pending window messages, the
// tray's among them (UI goroutine).
func pollWindowSystem() { glfw.PollEvents() }

var procMsgWait = windows.NewLazySystemDLL("user32.dll").NewProc("MsgWaitForMultipleObjectsEx")

const (
	qsAllInput          = 0x04FF // QS_ALLINPUT
	mwmoInputAvailable  = 0x0004 // MWMO_INPUTAVAILABLE: also messages already seen by a peek
	waitObject0         = 0      // WAIT_OBJECT_0
	waitObject0Messages = 1      // WAIT_OBJECT_0 + nCount: the thread has messages
)

// waitForWork blocks the (UI) thread until hasWork (checked after each
// wake-up), ctx ends (false), the limit passes or the thread has window
// messages to dispatch (true: the caller serves them and parks again).
func waitForWork(ctx context.Context, wake <-chan struct{}, hasWork func() bool, limit time.Duration) (expired bool) {
	ev, err := windows.CreateEvent(nil, 0, 0, nil) // auto-reset
	if err != nil {
		return true // not parked: the caller polls and asks again
	}
	defer windows.CloseHandle(ev)
	// Wake-ups arrive on a channel; the thread can only wait on handles.
	done := make(chan struct{})
	relayed := make(chan struct{})
	defer func() { close(done); <-relayed }()
	go func() {
		defer close(relayed)
		for {
			select {
			case <-wake:
				windows.SetEvent(ev)
			case <-ctx.Done():
				windows.SetEvent(ev)
				return
			case <-done:
				return
			}
		}
	}()
	var deadline time.Time
	if limit > 0 {
		deadline = time.Now().Add(limit)
	}
	for !hasWork() {
		if ctx.Err() != nil {
			return false
		}
		ms := uint32(windows.INFINITE)
		if limit > 0 {
			left := time.Until(deadline)
			if left <= 0 {
				return true
			}
			ms = uint32(left.Milliseconds()) + 1
		}
		r, _, _ := procMsgWait.Call(1, uintptr(unsafe.Pointer(&ev)), uintptr(ms), qsAllInput, mwmoInputAvailable)
		switch uint32(r) {
		case waitObject0: // a wake-up: look again
		case waitObject0Messages, uint32(windows.WAIT_TIMEOUT):
			return true
		default: // WAIT_FAILED: do not spin on it
			return true
		}
	}
	return false
}
