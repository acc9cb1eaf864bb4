//go:build !windows

package main

// newStartReporter: on Linux and macOS the desktop app is started from a
// session that keeps its stderr (the journal, the terminal), so nothing
// more is needed.
func newStartReporter(env func(string) string) *startReporter { return nil }
