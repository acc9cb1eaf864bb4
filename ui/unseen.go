package ui

import (
	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/driver"
)

// nativeHook is the calls window's content layout: its one object, the
// scroll of cards, fills the window. It is also how showUnseen reaches the
// window's native side between its creation and its mapping: fyne 2.7.1
// creates a window's native side only in the window's first Show, hidden,
// then asks its content's minimum size (window.create → fitContent), then
// maps it. While fn is set, MinSize hands it the window's native context
// (driver.NativeWindow) until fn says it had a native window. UI goroutine,
// as fyne lays out there.
type nativeHook struct {
	w  fyne.Window
	fn func(native any) bool
}

func (h *nativeHook) MinSize(objects []fyne.CanvasObject) fyne.Size {
	if h.fn != nil {
		if nw, ok := h.w.(driver.NativeWindow); ok {
			nw.RunNative(func(native any) {
				if h.fn != nil && h.fn(native) {
					h.fn = nil
				}
			})
		}
	}
	return objects[0].MinSize()
}

func (h *nativeHook) Layout(objects []fyne.CanvasObject, size fyne.Size) {
	objects[0].Move(fyne.NewPos(0, 0))
	objects[0].Resize(size)
}
