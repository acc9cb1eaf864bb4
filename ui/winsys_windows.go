//go:build !ci && windows

package ui

import (
	"time"

	"github.com/go-gl/glfw/v3.3/glfw"
)

// On Windows the tray icon is a window of fyne's (main) thread: the
// notification area tells it about clicks with window messages, and its menu
// runs inside that thread's message loop, GLFW's event polling. A parked loop
// must still poll, so it parks in spells of windowSystemWait and serves the
// messages between them: a tray click waits at most that long, and the idle
// app wakes 20 times a second instead of fyne's 60 with a redraw each.
const windowSystemWait = 50 * time.Millisecond

// ownsClipboard: Windows keeps a copied text itself.
func ownsClipboard() bool { return false }

// pollWindowSystem dispatches the thread's pending window messages, the
// tray's among them (UI goroutine).
func pollWindowSystem() { glfw.PollEvents() }
