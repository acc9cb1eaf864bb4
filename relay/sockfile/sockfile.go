// Package sockfile listens on a unix socket file that only this user may
// connect to, and that one process at a time owns: the relay's admin socket.
//
// Listen is race-free where a plain net.Listen followed by a chmod is not.
// The socket is bound in a fresh folder of mode 0700 next to its final path,
// so between bind and chmod nobody else can reach it whatever the umask (the
// umask is process-wide: changing it would race with every other goroutine
// creating files); it is then made 0600 and renamed into place, which is
// atomic and replaces a socket left behind by a process that died. A lock
// file beside the socket (flock, released by the kernel when its holder
// dies) says whether its owner is alive; on top of that a socket on which a
// process still answers is never replaced, so an owner that does not take
// the lock is not robbed of its socket either.
package sockfile

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"time"
)

// MaxPath is the longest socket path the system takes: sun_path (108 bytes
// on Linux and Windows, 104 on macOS and the BSDs) less its final NUL.
var MaxPath = maxPath(runtime.GOOS)

func maxPath(goos string) int {
	switch goos {
	case "darwin", "ios", "freebsd", "openbsd", "netbsd", "dragonfly":
		return 103
	}
	return 107
}

// ErrInUse is Listen's error when another live process owns the socket.
var ErrInUse = errors.New("in use by another process")

// CheckPath reports a path too long to be bound.
func CheckPath(path string) error {
	if len(path) > MaxPath {
		return fmt.Errorf("the socket path %s is %d bytes long; sockets take at most %d", path, len(path), MaxPath)
	}
	return nil
}

// Listener is a listening socket file. Close stops it and removes the file
// (unless it is no longer the one Listen made); Release lets another process
// own the path. Between the two, the owner may finish its work on whatever
// the socket guards (a data folder) while a newcomer is still refused.
type Listener struct {
	net.Listener
	// Stale reports that Listen replaced a socket left by a process that
	// died without removing it.
	Stale bool

	path   string
	fi     os.FileInfo // the socket file as Listen made it
	unlock func()
	closed sync.Once
	err    error
	freed  sync.Once
}

// Listen makes a socket at path, mode 0600, in an existing folder. It fails
// with ErrInUse when another live process owns the path, and refuses to
// replace anything at path that is not a socket.
func Listen(path string) (*Listener, error) {
	if err := CheckPath(path); err != nil {
		return nil, err
	}
	dir := filepath.Dir(path)
	unlock, err := lock(path + ".lock")
	if err != nil {
		return nil, err
	}
	l := &Listener{path: path, unlock: unlock}
	ok := false
	defer func() {
		if !ok {
			unlock()
		}
	}()
	if l.Stale, err = probe(path); err != nil {
		return nil, err
	}

	// The private folder's socket path is as long as path at most when
	// path's file name has 10 bytes or more (admin.sock): "/.xxxxxxx/s".
	tmpDir, err := privateDir(dir)
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmpDir)
	tmp := filepath.Join(tmpDir, "s")
	if err := CheckPath(tmp); err != nil {
		return nil, err
	}
	ul, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, err
	}
	ul.SetUnlinkOnClose(false) // the file moves; Close removes it by its final name
	if err := os.Chmod(tmp, 0o600); err != nil {
		ul.Close()
		return nil, err
	}
	if err := os.Rename(tmp, path); err != nil {
		ul.Close()
		return nil, err
	}
	if l.fi, err = os.Lstat(path); err != nil {
		ul.Close()
		return nil, err
	}
	l.Listener = ul
	ok = true
	return l, nil
}

// Path is where the socket is.
func (l *Listener) Path() string { return l.path }

// Addr is the socket's address: its final path, not the one it was bound at.
func (l *Listener) Addr() net.Addr { return &net.UnixAddr{Name: l.path, Net: "unix"} }

// Close stops listening and removes the socket file if it is still the one
// Listen made. It may be called more than once.
func (l *Listener) Close() error {
	l.closed.Do(func() {
		l.err = l.Listener.Close()
		if fi, err := os.Lstat(l.path); err == nil && os.SameFile(fi, l.fi) {
			os.Remove(l.path)
		}
	})
	return l.err
}

// Release closes the listener if it is open and releases the path's lock:
// another process may own it now. It may be called more than once.
func (l *Listener) Release() {
	l.Close()
	l.freed.Do(l.unlock)
}

// probe looks at what is at path: nothing (false), a socket nobody answers
// on (true: stale), or a live socket or something else (an error).
func probe(path string) (stale bool, err error) {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return false, fmt.Errorf("%s exists and is not a socket; remove it", path)
	}
	c, err := net.DialTimeout("unix", path, 2*time.Second)
	switch {
	case err == nil:
		c.Close()
		return false, fmt.Errorf("%s: %w (it answers)", path, ErrInUse)
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, fs.ErrNotExist):
		return true, nil
	}
	return false, fmt.Errorf("%s: cannot tell whether a process owns it: %w", path, err)
}

// privateDir makes a new folder of mode 0700 in dir, named so that a
// socket "s" in it has a path no longer than dir/admin.sock.
func privateDir(dir string) (string, error) {
	for range 100 {
		p := filepath.Join(dir, fmt.Sprintf(".%07x", rand.Uint32()&0xfffffff))
		err := os.Mkdir(p, 0o700)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		return p, err
	}
	return "", fmt.Errorf("%s: no free temporary name", dir)
}
