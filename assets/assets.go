// Package assets holds pult's embedded images: the application icon and the
// tray icons, one per state (drawn by gen.go; `go generate ./assets`).
package assets

import _ "embed"

//go:generate go run gen.go

// Icon is the application icon, 256×256 PNG.
//
//go:embed icon.png
var Icon []byte

// Tray icons, 64×64 PNG. Each state has its own shape as well as colour.
var (
	//go:embed tray-free.png
	TrayFree []byte
	//go:embed tray-busy.png
	TrayBusy []byte
	//go:embed tray-dinner.png
	TrayDinner []byte
	//go:embed tray-break.png
	TrayBreak []byte
	//go:embed tray-offline.png
	TrayOffline []byte
)
