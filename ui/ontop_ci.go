//go:build ci

package ui

import "fyne.io/fyne/v2"

// showWithoutFocus: fyne's headless test driver has no window manager.
func showWithoutFocus(w fyne.Window) { w.Show() }
