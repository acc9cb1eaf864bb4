//go:build ci || !(linux || windows) || (linux && wayland)

package ui

// ownsClipboard: fyne's test driver keeps the clipboard in memory, and on
// Windows and macOS the system keeps a copied text. (A native Wayland build,
// which pult does not make, would need a check like clipboard_x11.go's.)
func ownsClipboard() bool { return false }

// pollWindowSystem: nothing waits on pult's loop here.
func pollWindowSystem() {}
