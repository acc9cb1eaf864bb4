package ui

import (
	"runtime"
	"sync"
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/theme"

	"github.com/pult/pult/agent/credentials"
)

// loop is the tests' UI goroutine: fyne's test driver runs fyne.Do at once
// on the caller's goroutine, so the app's work is serialised here instead.
type loop struct {
	mu    sync.Mutex
	queue []func()
	wake  chan struct{}
	done  chan struct{}
	quit  chan struct{}
}

func newLoop(t testing.TB) *loop {
	l := &loop{wake: make(chan struct{}, 1), done: make(chan struct{}), quit: make(chan struct{})}
	go l.run()
	t.Cleanup(func() {
		// Let queued work (timers firing late) drain, then stop.
		l.wait(func() {})
		close(l.quit)
		<-l.done
	})
	return l
}

func (l *loop) run() {
	defer close(l.done)
	for {
		l.mu.Lock()
		q := l.queue
		l.queue = nil
		l.mu.Unlock()
		for _, f := range q {
			f()
		}
		if len(q) > 0 {
			continue
		}
		select {
		case <-l.wake:
		case <-l.quit:
			return
		}
	}
}

// do queues f (Config.Do).
func (l *loop) do(f func()) {
	l.mu.Lock()
	l.queue = append(l.queue, f)
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// wait runs f on the loop and waits for it.
func (l *loop) wait(f func()) {
	done := make(chan struct{})
	l.do(func() { f(); close(done) })
	<-done
}

// eventually polls cond on the loop until it holds.
func (l *loop) eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var ok bool
		l.wait(func() { ok = cond() })
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// memCreds is an in-memory sign-in store (the keyring is tested in
// agent/credentials).
type memCreds struct {
	mu         sync.Mutex
	url, token string
	insecure   bool
	saveErr    error
}

func (m *memCreds) Load() (Login, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.token == "" {
		return Login{RelayURL: m.url, Insecure: m.insecure}, credentials.ErrNotSignedIn
	}
	return Login{RelayURL: m.url, Token: m.token, Insecure: m.insecure}, nil
}

func (m *memCreds) Save(l Login) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.saveErr != nil {
		return m.saveErr
	}
	m.url, m.token, m.insecure = l.RelayURL, l.Token, l.Insecure
	return nil
}

func (m *memCreds) Delete() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.token = ""
	return nil
}

func (m *memCreds) get() (string, string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.url, m.token
}

// fixedNow is the tests' wall clock.
var fixedNow = time.Date(2026, 11, 20, 14, 30, 0, 0, time.UTC)

// newTestFyne starts fyne's test app with the real default theme, so the
// golden images look like the app.
func newTestFyne(t testing.TB) fyne.App {
	fa := test.NewTempApp(t)
	fa.Settings().SetTheme(theme.DefaultTheme())
	return fa
}

// checkGoroutines fails the test if it leaves goroutines running.
func checkGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(10 * time.Second)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("%d goroutines left running (before: %d):\n%s", runtime.NumGoroutine(), before, buf)
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}
