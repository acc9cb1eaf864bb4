//go:build !ci

package ui

import (
	"time"

	"github.com/go-gl/glfw/v3.3/glfw"
)

// prepareGL makes a GL context in a window that is never shown, and drops
// it: the first context of a process loads the graphics driver (with
// Mesa's software renderer about 60 ms of the first card, and 60 MiB of
// RSS, 47 of them the driver's shared libraries), which stays loaded for
// the card window's context. cardStack.warm does it where it cannot make
// the card window itself unseen (showUnseen: not X11). The window is never
// mapped: no flash, no focus, no taskbar entry. It returns how long that
// took (UI goroutine: fyne's main thread, as GLFW needs).
func prepareGL() (took time.Duration) {
	start := time.Now()
	// go-gl reports a GLFW error by panicking; the card then pays the
	// cost itself, as before.
	defer func() {
		recover()
		took = time.Since(start)
	}()
	glfw.WindowHint(glfw.Visible, glfw.False)
	w, err := glfw.CreateWindow(1, 1, "pult", nil, nil)
	glfw.WindowHint(glfw.Visible, glfw.True)
	if err != nil {
		return
	}
	w.Destroy()
	return
}
