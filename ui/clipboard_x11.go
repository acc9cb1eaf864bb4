//go:build !ci && linux && !wayland

package ui

/*
#cgo LDFLAGS: -lX11
#include <X11/Xlib.h>
#include <X11/Xlibint.h>

// pult_owns_clipboard: is the CLIPBOARD selection held by a window of this
// X client (GLFW's helper window, which serves fyne's clipboard)? A window
// belongs to the client whose resource-id base its id carries.
static int pult_owns_clipboard(Display *d) {
	Window owner = XGetSelectionOwner(d, XInternAtom(d, "CLIPBOARD", False));
	return owner != None && (owner & ~d->resource_mask) == d->resource_base;
}
*/
import "C"

import (
	"unsafe"

	"github.com/go-gl/glfw/v3.3/glfw"
)

// ownsClipboard says whether pult holds the clipboard (UI goroutine). Under
// X11 the holder answers every paste itself, from its event loop: while it
// does, that loop may not sleep for long (idle.go).
func ownsClipboard() (owns bool) {
	// go-gl reports a GLFW error by panicking; not knowing means not
	// holding it, as before anything was copied.
	defer func() {
		if recover() != nil {
			owns = false
		}
	}()
	d := glfw.GetX11Display()
	if d == nil {
		return false
	}
	return C.pult_owns_clipboard((*C.Display)(unsafe.Pointer(d))) != 0
}

// pollWindowSystem handles the window system's pending events, a paste
// request among them, as fyne's loop does each frame (UI goroutine).
func pollWindowSystem() { glfw.PollEvents() }
