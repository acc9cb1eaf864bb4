// Package quietstart holds back what the standard logger writes while the
// program's packages initialise, until main decides where it belongs.
//
// fyne's lang package reads the locale when it is initialised and logs
// "Fyne error: Error parsing user locale C" for a locale such as C.UTF-8,
// before main runs: noise on every command of the CLI. cmd/pult imports
// this package for its side effect; Go initialises it before fyne's lang
// (a package is initialised once its imports are, in import path order:
// this one needs only io, log and sync, while lang waits for
// golang.org/x/text and text/template, which sort after it), and main
// calls Release once it knows whether it runs the CLI or the desktop app.
// TestQuietStart in cmd/pult checks the order holds.
package quietstart

import (
	"bytes"
	"io"
	"log"
	"sync"
)

var held = &buffer{}

func init() { log.SetOutput(held) }

// Release points the standard logger at w from now on and returns what was
// held until now.
func Release(w io.Writer) []byte {
	log.SetOutput(w)
	return held.take()
}

// buffer is a bounded, locked buffer: a logger may be used from several
// goroutines, and nothing at start-up should hold much.
type buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

const maxHeld = 64 << 10

func (b *buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.b.Len()+len(p) <= maxHeld {
		b.b.Write(p)
	}
	return len(p), nil
}

func (b *buffer) take() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := bytes.Clone(b.b.Bytes())
	b.b.Reset()
	return out
}
