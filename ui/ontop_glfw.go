//go:build !ci

package ui

import (
	"fyne.io/fyne/v2"
	"github.com/go-gl/glfw/v3.3/glfw"
)

// showWithoutFocus shows w above other windows without taking the keyboard
// focus from what the operator is typing in. fyne has no API for either;
// GLFW's window hints apply to windows created next, and fyne creates a
// window's native side on its first Show, on this (the main) thread. A window
// already created is only shown again.
func showWithoutFocus(w fyne.Window) {
	glfw.WindowHint(glfw.Floating, glfw.True)
	glfw.WindowHint(glfw.FocusOnShow, glfw.False)
	w.Show()
	glfw.WindowHint(glfw.Floating, glfw.False)
	glfw.WindowHint(glfw.FocusOnShow, glfw.True)
}
