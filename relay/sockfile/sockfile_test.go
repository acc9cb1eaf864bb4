package sockfile

import (
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func accept(t *testing.T, l net.Listener) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		if c, err := l.Accept(); err == nil {
			c.Close()
		}
	}()
	c, err := net.Dial("unix", l.(*Listener).Path())
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	c.Close()
	<-done
}

func TestListenMode0600AndRemovedOnClose(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "admin.sock")
	l, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, want a socket with 0600", fi.Mode())
	}
	if l.Stale {
		t.Error("a fresh socket reported as stale")
	}
	accept(t, l)
	if l.Addr().String() != path {
		t.Errorf("Addr %s, want %s", l.Addr(), path)
	}
	// Nothing else is left in the folder but the socket and its lock.
	ents, _ := os.ReadDir(dir)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if strings.Join(names, " ") != "admin.sock admin.sock.lock" {
		t.Errorf("folder holds %v", names)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l.Close() // twice is fine
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket left after Close: %v", err)
	}
	// Closed but not released: the path is still owned.
	if _, err := Listen(path); !errors.Is(err, ErrInUse) {
		t.Errorf("Listen before Release: %v, want ErrInUse", err)
	}
	l.Release()
	l.Release() // twice is fine
	// And it can be made again.
	l, err = Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	l.Release()
}

// A socket left by a process that died (nobody answers, no lock held) is
// replaced.
func TestListenReplacesStaleSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "admin.sock")
	old, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	old.SetUnlinkOnClose(false)
	old.Close() // the file stays, as after a SIGKILL
	if _, err := os.Lstat(path); err != nil {
		t.Fatal(err)
	}
	l, err := Listen(path)
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	defer l.Release()
	if !l.Stale {
		t.Error("Stale not reported")
	}
	accept(t, l)
}

// A live owner keeps its socket: through the lock, and, for a process that
// does not take it, because it answers.
func TestListenDoesNotStealLiveSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "admin.sock")
	first, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Release()
	if _, err := Listen(path); !errors.Is(err, ErrInUse) {
		t.Fatalf("second Listen: %v, want ErrInUse", err)
	}
	accept(t, first) // still the first one's

	other := filepath.Join(t.TempDir(), "admin.sock")
	plain, err := net.Listen("unix", other) // no lock file
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if _, err := Listen(other); !errors.Is(err, ErrInUse) {
		t.Fatalf("Listen over an answering socket: %v, want ErrInUse", err)
	}
}

func TestListenRefuses(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "admin.sock")
	os.WriteFile(file, []byte("not a socket"), 0o600)
	if _, err := Listen(file); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("over a regular file: %v", err)
	}
	long := filepath.Join(dir, strings.Repeat("d", MaxPath), "admin.sock")
	if _, err := Listen(long); err == nil || !strings.Contains(err.Error(), "at most") {
		t.Errorf("too long: %v", err)
	}
	if err := CheckPath("/" + strings.Repeat("x", MaxPath-1)); err != nil {
		t.Errorf("a path of MaxPath bytes refused: %v", err)
	}
	// The longest path accepted binds for real.
	base := t.TempDir()
	pad := MaxPath - len(base) - len("/admin.sock") - 1
	if pad < 1 {
		t.Skip("temporary folder too deep")
	}
	deep := filepath.Join(base, strings.Repeat("p", pad))
	if err := os.Mkdir(deep, 0o700); err != nil {
		t.Fatal(err)
	}
	l, err := Listen(filepath.Join(deep, "admin.sock"))
	if err != nil {
		t.Fatalf("a path of %d bytes: %v", len(filepath.Join(deep, "admin.sock")), err)
	}
	l.Release()
}

func TestLockReleasedWithListener(t *testing.T) {
	path := filepath.Join(t.TempDir(), "admin.sock")
	l, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	l.Release()
	unlock, err := lock(path + ".lock")
	if err != nil {
		t.Fatalf("lock still held: %v", err)
	}
	unlock()
}
