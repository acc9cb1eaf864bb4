//go:build !windows

package ui

import (
	"fmt"

	"github.com/godbus/dbus/v5"
)

// TrayHost checks that a tray icon can be shown: a session bus at busAddr
// (DBUS_SESSION_BUS_ADDRESS) with a StatusNotifier host on it. Without
// both, the tray icon (fyne.io/systray) would fail silently (or panic on
// quit), so the app runs with a main window instead.
func TrayHost(busAddr string) error {
	if busAddr == "" {
		return fmt.Errorf("%w: no session bus (DBUS_SESSION_BUS_ADDRESS is not set)", ErrNoTrayHost)
	}
	conn, err := dbus.Connect(busAddr)
	if err != nil {
		return fmt.Errorf("%w: session bus unreachable: %v", ErrNoTrayHost, err)
	}
	defer conn.Close()
	var has bool
	err = conn.BusObject().Call("org.freedesktop.DBus.NameHasOwner", 0, "org.kde.StatusNotifierWatcher").Store(&has)
	if err != nil {
		return fmt.Errorf("%w: asking the session bus: %v", ErrNoTrayHost, err)
	}
	if !has {
		return fmt.Errorf("%w: no StatusNotifier host on the session bus", ErrNoTrayHost)
	}
	return nil
}
