//go:build windows

package ui

// TrayHost: every Windows desktop has a notification area, which
// fyne.io/systray uses directly (Shell_NotifyIcon); there is no bus to ask.
// busAddr is ignored.
func TrayHost(busAddr string) error { return nil }
