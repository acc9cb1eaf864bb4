//go:build !ci && linux && !wayland

package ui

/*
#cgo LDFLAGS: -lX11
#include <X11/Xlib.h>

// pult_unseen keeps w, not mapped yet, from being seen once it is:
// override-redirect (the window manager leaves it alone: no frame, no
// taskbar entry, no focus) and moved off every screen. It saves where w
// was in *x, *y.
static void pult_unseen(Display *d, Window w, int *x, int *y) {
	XWindowAttributes wa;
	if (XGetWindowAttributes(d, w, &wa)) {
		*x = wa.x;
		*y = wa.y;
	}
	XSetWindowAttributes a;
	a.override_redirect = True;
	XChangeWindowAttributes(d, w, CWOverrideRedirect, &a);
	XMoveWindow(d, w, -16384, -16384);
	XFlush(d);
}

// pult_seen undoes pult_unseen once w is unmapped again.
static void pult_seen(Display *d, Window w, int x, int y) {
	XSetWindowAttributes a;
	a.override_redirect = False;
	XChangeWindowAttributes(d, w, CWOverrideRedirect, &a);
	XMoveWindow(d, w, x, y);
}
*/
import "C"

import (
	"log/slog"
	"unsafe"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/driver"
	"github.com/go-gl/glfw/v3.3/glfw"
)

// unseenShows: X11 lets pult keep a window from being seen while shown.
const unseenShows = true

// showUnseen shows w, never shown yet, for the first time, as
// showWithoutFocus does, where nothing can see it, then hides it: fyne
// makes its native window, GL context and shaders, and paints its content
// once, which is what made the first card slow (BENCHMARKS.md, "Issue 16:
// the first card"). hook, w's content layout, hands over the native window
// after fyne has created it and before fyne maps it; it is then made
// override-redirect (the window manager never sees it: no frame, no
// taskbar entry, no focus) and moved off every screen. Once hidden again
// it is put back as it was, an ordinary window where GLFW created it, and
// place puts it where it is to appear (fyne shows it again where it was,
// and the window manager, which places a window mapped for the first time,
// has not placed this one); fyne is then told where it is. It reports
// whether it did all that; false if GLFW failed. Should fyne map the
// window without handing it over first (a fyne that creates windows
// otherwise), w is hidden at once and that is logged. UI goroutine (fyne's
// main thread, as GLFW needs).
func showUnseen(w fyne.Window, hook *nativeHook, place func(), log *slog.Logger) bool {
	var (
		dpy  *C.Display
		win  C.Window
		x, y C.int
	)
	// go-gl reports a GLFW error by panicking; the first card then pays
	// for what is not done, as before.
	defer func() {
		recover()
		hook.fn = nil
		made := false
		w.(driver.NativeWindow).RunNative(func(native any) {
			c, _ := native.(driver.X11WindowContext)
			made = c.WindowHandle != 0
		})
		if !made {
			return
		}
		w.Hide()
		if win == 0 {
			log.Warn("the calls window was shown to prepare it: fyne did not hand it over first")
			return
		}
		C.pult_seen(dpy, win, x, y)
		place()
		C.XSync(dpy, C.False)
		glfw.PollEvents() // fyne learns where the window is
	}()
	d := glfw.GetX11Display()
	if d == nil {
		return false
	}
	dpy = (*C.Display)(unsafe.Pointer(d))
	hook.fn = func(native any) bool {
		c, ok := native.(driver.X11WindowContext)
		if !ok || c.WindowHandle == 0 {
			return false
		}
		win = C.Window(c.WindowHandle)
		C.pult_unseen(dpy, win, &x, &y)
		return true
	}
	showWithoutFocus(w)
	return win != 0
}
