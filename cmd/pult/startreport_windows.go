//go:build windows

package main

import (
	"unsafe"

	"golang.org/x/sys/windows"
)

var (
	user32               = windows.NewLazySystemDLL("user32.dll")
	procMessageBoxW      = user32.NewProc("MessageBoxW")
	procGetConsoleWindow = windows.NewLazySystemDLL("kernel32.dll").NewProc("GetConsoleWindow")
)

// newStartReporter reports the desktop app's start failures where pult has
// no console (pult.exe, a GUI program: stderr goes nowhere); nil when it has
// one (pult-cli.exe in a terminal), where stderr says it all.
// PULT_TEST_NO_MESSAGEBOX=1, set only by tests, skips the message box
// (nobody would close it) and keeps the log line.
func newStartReporter(env func(string) string) *startReporter {
	if hwnd, _, _ := procGetConsoleWindow.Call(); hwnd != 0 {
		return nil
	}
	r := &startReporter{logPath: startLogPath(env), show: messageBox}
	if env("PULT_TEST_NO_MESSAGEBOX") != "" {
		r.show = nil
	}
	return r
}

const (
	mbOK        = 0x00000000
	mbIconError = 0x00000010
	mbTopmost   = 0x00040000
	mbSetFore   = 0x00010000
)

// messageBox shows an error box and waits until it is closed.
func messageBox(title, text string) {
	t, err1 := windows.UTF16PtrFromString(title)
	m, err2 := windows.UTF16PtrFromString(text)
	if err1 != nil || err2 != nil {
		return // a NUL inside: the log has it
	}
	procMessageBoxW.Call(0, uintptr(unsafe.Pointer(m)), uintptr(unsafe.Pointer(t)), mbOK|mbIconError|mbTopmost|mbSetFore)
}
