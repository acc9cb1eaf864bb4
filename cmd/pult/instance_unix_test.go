//go:build !windows

package main

import (
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// newTestEndpoint is an endpoint of the test's own.
func newTestEndpoint(t *testing.T) instanceEndpoint {
	t.Helper()
	dir := t.TempDir()
	env := func(k string) string {
		if k == "XDG_RUNTIME_DIR" {
			return dir
		}
		return ""
	}
	ep, err := newInstanceEndpoint(env, dir)
	if err != nil {
		t.Fatal(err)
	}
	return ep
}

// The socket is private from the moment it exists: it lives in a folder of
// its own that only this user can enter, made or tightened to 0700, whatever
// the state folder's mode; a symlink in its place is refused.
func TestInstanceSocketPrivate(t *testing.T) {
	stateDir := filepath.Join(t.TempDir(), "pult")
	if err := os.Mkdir(stateDir, 0o755); err != nil {
		t.Fatal(err)
	}
	ep, err := newInstanceEndpoint(func(string) string { return "" }, stateDir)
	if err != nil {
		t.Fatal(err)
	}
	l, err := ep.listen()
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	dir := filepath.Dir(ep.String())
	if fi, err := os.Lstat(dir); err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
		t.Fatalf("the socket's folder %s: %v, %v; want a 0700 folder", dir, fi.Mode(), err)
	}
	if fi, err := os.Lstat(ep.String()); err != nil || fi.Mode()&fs.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket %s: %v, %v; want a 0600 socket", ep, fi.Mode(), err)
	}
	l.Close()

	// A looser folder is tightened.
	os.Chmod(dir, 0o755)
	if l, err = ep.listen(); err != nil {
		t.Fatal(err)
	}
	l.Close()
	if fi, _ := os.Lstat(dir); fi.Mode().Perm() != 0o700 {
		t.Errorf("folder left %v", fi.Mode().Perm())
	}

	// A symlink to somewhere else is not followed.
	other := t.TempDir()
	os.RemoveAll(dir)
	if err := os.Symlink(other, dir); err != nil {
		t.Fatal(err)
	}
	if l, err := ep.listen(); err == nil {
		l.Close()
		t.Fatal("listen through a symlinked folder")
	}
	if entries, _ := os.ReadDir(other); len(entries) != 0 {
		t.Errorf("files made through the symlink: %v", entries)
	}
}

// Apps starting at once, with a socket left by a crash: exactly one gets the
// endpoint and keeps it (nobody removes its socket), the others are told it
// is taken.
func TestInstanceStartRace(t *testing.T) {
	for round := range 30 {
		ep := newTestEndpoint(t)
		// A stale socket, as a crash leaves it.
		if err := os.MkdirAll(filepath.Dir(ep.String()), 0o700); err != nil {
			t.Fatal(err)
		}
		stale, err := net.ListenUnix("unix", &net.UnixAddr{Name: ep.String(), Net: "unix"})
		if err != nil {
			t.Fatal(err)
		}
		stale.SetUnlinkOnClose(false)
		stale.Close()

		const apps = 8
		start := make(chan struct{})
		got := make(chan instanceListener, apps)
		errs := make(chan error, apps)
		var wg sync.WaitGroup
		for range apps {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				l, err := ep.listen()
				if err != nil {
					errs <- err
					return
				}
				got <- l
			}()
		}
		close(start)
		wg.Wait()
		close(got)
		close(errs)
		var winners []instanceListener
		for l := range got {
			winners = append(winners, l)
		}
		for err := range errs {
			if !errors.Is(err, errInstanceTaken) {
				t.Errorf("round %d: listen = %v, want errInstanceTaken", round, err)
			}
		}
		if len(winners) != 1 {
			for _, l := range winners {
				l.Close()
			}
			t.Fatalf("round %d: %d apps got the endpoint, want 1", round, len(winners))
		}
		// The winner's socket is the one in place.
		accepted := make(chan error, 1)
		go func() {
			c, err := winners[0].Accept()
			if err == nil {
				c.Close()
			}
			accepted <- err
		}()
		c, err := ep.dial(time.Second)
		if err != nil {
			t.Fatalf("round %d: the winner's socket is gone: %v", round, err)
		}
		c.Close()
		if err := <-accepted; err != nil {
			t.Fatalf("round %d: accept: %v", round, err)
		}
		winners[0].Close()
	}
}

// A pult that holds the lock but never listens (stuck while starting) is
// waited for, then reported, and its lock is not broken.
func TestInstanceLockedNotListening(t *testing.T) {
	ep := newTestEndpoint(t)
	if err := privateDir(ep.dir); err != nil {
		t.Fatal(err)
	}
	lock, err := os.OpenFile(filepath.Join(ep.dir, instanceLock), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := flock(lock); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, _, err = claimInstance(ep, "")
	var silent errInstanceSilent
	if !errors.As(err, &silent) || time.Since(start) < claimWait {
		t.Fatalf("claim = %v after %v, want errInstanceSilent after %v", err, time.Since(start), claimWait)
	}
	if _, err := os.Stat(ep.String()); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a socket was made under another app's lock: %v", err)
	}
}
