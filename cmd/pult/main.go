// Command pult is the call-center operator's desktop agent: run alone it
// is the tray app (package ui); with a subcommand it is the CLI.
package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"

	// First of all: hold back what packages log while they initialise
	// (fyne's locale complaints), so the CLI prints only its own words.
	"github.com/pult/pult/cmd/pult/internal/quietstart"
)

func main() {
	startLog(os.Getenv, os.Stderr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := runReporting(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr, newStartReporter(os.Getenv))
	stop()
	os.Exit(code)
}

// startLog sends the standard logger (fyne's errors) to stderr from now on.
// What was logged while the packages initialised is shown only with
// PULT_DEBUG: it is fyne's view of the locale, which pult reads itself.
func startLog(env func(string) string, stderr io.Writer) {
	held := quietstart.Release(stderr)
	if env("PULT_DEBUG") != "" {
		stderr.Write(held)
	}
}
