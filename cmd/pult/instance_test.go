package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestInstanceHandOff(t *testing.T) {
	ep := newTestEndpoint(t)
	l, handed, err := claimInstance(ep, "")
	if err != nil || handed {
		t.Fatalf("first claim: handed %v, %v", handed, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	opened := make(chan string, 2)
	done := make(chan struct{})
	go func() {
		defer close(done)
		serveInstance(ctx, l, func(n string) { opened <- n }, slog.New(slog.DiscardHandler))
	}()
	defer func() { cancel(); <-done }()

	for _, n := range []string{"+79161234567", ""} {
		l2, handed, err := claimInstance(ep, n)
		if err != nil || !handed || l2 != nil {
			t.Fatalf("second claim (%q): handed %v, %v", n, handed, err)
		}
		select {
		case got := <-opened:
			if got != n {
				t.Errorf("the running app opened %q, want %q", got, n)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the running app was not told")
		}
	}

	// A bad request is refused, and the app goes on serving.
	conn, err := ep.dial(time.Second)
	if err != nil {
		t.Fatal(err)
	}
	conn.Write([]byte("not json\n"))
	b := make([]byte, 64)
	conn.SetDeadline(time.Now().Add(3 * time.Second))
	n, _ := conn.Read(b)
	conn.Close()
	if string(b[:n]) != "bad request\n" {
		t.Errorf("a bad request got %q", b[:n])
	}
	if _, handed, err := claimInstance(ep, "1"); err != nil || !handed {
		t.Errorf("after a bad request: handed %v, %v", handed, err)
	}
	<-opened
}

// A listener that takes the request but never answers is reported as such.
func TestInstanceSilent(t *testing.T) {
	ep := newTestEndpoint(t)
	l, err := ep.listen()
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close() // held open, never answered
		}
	}()
	_, _, err = claimInstance(ep, "")
	var silent errInstanceSilent
	if !errors.As(err, &silent) {
		t.Fatalf("claim = %v, want errInstanceSilent", err)
	}
}

// Once the first app has ended, the next one claims the endpoint, even if
// the first left a socket behind (a crash).
func TestInstanceAfterExit(t *testing.T) {
	ep := newTestEndpoint(t)
	l, _, err := claimInstance(ep, "")
	if err != nil {
		t.Fatal(err)
	}
	if ul, ok := l.(interface{ SetUnlinkOnClose(bool) }); ok {
		ul.SetUnlinkOnClose(false) // a unix socket left behind, as after a crash
	}
	l.Close()
	l, handed, err := claimInstance(ep, "")
	if err != nil || handed {
		t.Fatalf("claim after exit: handed %v, %v", handed, err)
	}
	l.Close()
}

// A failure to set the endpoint up is said as such, not taken for another
// pult.
func TestInstanceSetupFailure(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o600)
	ep, err := newInstanceEndpoint(func(string) string { return "" }, filepath.Join(file, "pult"))
	if err != nil {
		t.Skipf("no endpoint under a file on this platform: %v", err)
	}
	if strings.HasPrefix(ep.String(), `\\.\pipe\`) {
		t.Skip("a named pipe does not live in the state dir")
	}
	_, handed, err := claimInstance(ep, "")
	if err == nil || handed {
		t.Fatalf("claim under a file: handed %v, %v", handed, err)
	}
	if !strings.Contains(err.Error(), "cannot set up the single-instance endpoint") || strings.Contains(err.Error(), "another pult") {
		t.Errorf("claim under a file = %v", err)
	}
}
