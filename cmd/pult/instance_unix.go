//go:build !windows

package main

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// instanceEndpoint is a unix socket, pult.sock, in a folder of its own that
// only this user can enter: $XDG_RUNTIME_DIR/pult, or <state dir>/run. The
// folder (0700, this user's, not a symlink) makes the socket private from
// the moment it exists, whatever the umask; the socket is 0600 too.
//
// The running app holds an exclusive flock on pult.lock in the same folder
// for its whole life, and only the holder of the lock creates or removes the
// socket. So a socket found by the lock's new holder is stale (its app has
// ended: the kernel released the lock), and two apps starting at once
// cannot remove each other's: the second finds the lock taken.
type instanceEndpoint struct{ dir string }

const (
	instanceSocket = "pult.sock"
	instanceLock   = "pult.lock"
)

func newInstanceEndpoint(env func(string) string, stateDir string) (instanceEndpoint, error) {
	if dir := env("XDG_RUNTIME_DIR"); dir != "" {
		return instanceEndpoint{filepath.Join(dir, "pult")}, nil
	}
	return instanceEndpoint{filepath.Join(stateDir, "run")}, nil
}

func (e instanceEndpoint) path() string   { return filepath.Join(e.dir, instanceSocket) }
func (e instanceEndpoint) String() string { return e.path() }

func (e instanceEndpoint) dial(timeout time.Duration) (instanceConn, error) {
	conn, err := net.DialTimeout("unix", e.path(), timeout)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) || errors.Is(err, syscall.ECONNREFUSED) {
		return nil, errNoInstance // none, or a socket left by a crash
	}
	if err != nil {
		return nil, err
	}
	return conn, nil
}

// unixListener is the socket and the lock that makes it this app's.
type unixListener struct {
	*net.UnixListener
	lock *os.File
}

func (l *unixListener) Accept() (instanceConn, error) { return l.AcceptUnix() }

// Close removes the socket, then lets the lock go.
func (l *unixListener) Close() error {
	err := l.UnixListener.Close()
	l.lock.Close()
	return err
}

// listen takes the lock, then (re)creates the socket: errInstanceTaken when
// another app holds the lock.
func (e instanceEndpoint) listen() (instanceListener, error) {
	if err := privateDir(e.dir); err != nil {
		return nil, err
	}
	lock, err := os.OpenFile(filepath.Join(e.dir, instanceLock), os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, err
	}
	if err := flock(lock); err != nil {
		lock.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, errInstanceTaken
		}
		return nil, fmt.Errorf("locking %s: %w", lock.Name(), err)
	}
	// Ours now: a socket still there was left by an app that ended.
	if err := os.Remove(e.path()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		lock.Close()
		return nil, err
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: e.path(), Net: "unix"})
	if err != nil {
		lock.Close()
		return nil, err
	}
	if err := os.Chmod(e.path(), 0o600); err != nil {
		l.Close()
		lock.Close()
		return nil, err
	}
	return &unixListener{UnixListener: l, lock: lock}, nil
}

// flock takes f's exclusive lock without waiting, retrying on EINTR.
func flock(f *os.File) error {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err != syscall.EINTR {
			return err
		}
	}
}

// privateDir makes dir (and its parents) and checks that it is a folder of
// this user's, not a symlink, that nobody else can enter (a looser mode is
// tightened: the folder is ours).
func privateDir(dir string) error {
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a folder (a symlink?)", dir)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Getuid() {
		return fmt.Errorf("%s belongs to another user (uid %d)", dir, st.Uid)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return err
		}
	}
	return nil
}
