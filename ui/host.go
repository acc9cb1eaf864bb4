package ui

import "errors"

// ErrNoTrayHost: there is no system tray to put the icon in.
var ErrNoTrayHost = errors.New("no system tray")
