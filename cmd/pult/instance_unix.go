//go:build !windows

package main

import (
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// instanceEndpoint is a unix socket in the runtime dir (or the state dir),
// mode 0600 in a 0700 directory: only this user can connect.
type instanceEndpoint struct{ path string }

func newInstanceEndpoint(env func(string) string, stateDir string) (instanceEndpoint, error) {
	if dir := env("XDG_RUNTIME_DIR"); dir != "" {
		return instanceEndpoint{filepath.Join(dir, "pult.sock")}, nil
	}
	return instanceEndpoint{filepath.Join(stateDir, "pult.sock")}, nil
}

func (e instanceEndpoint) String() string { return e.path }

func (e instanceEndpoint) dial(timeout time.Duration) (instanceConn, error) {
	conn, err := net.DialTimeout("unix", e.path, timeout)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) || errors.Is(err, syscall.ECONNREFUSED) {
		return nil, errNoInstance // none, or a socket left by a crash
	}
	if err != nil {
		return nil, err
	}
	return conn, nil
}

type unixListener struct{ *net.UnixListener }

func (l unixListener) Accept() (instanceConn, error) { return l.AcceptUnix() }

// listen claims the socket, replacing a stale one left by a crash.
func (e instanceEndpoint) listen() (instanceListener, error) {
	if err := os.MkdirAll(filepath.Dir(e.path), 0o700); err != nil {
		return nil, err
	}
	l, err := net.Listen("unix", e.path)
	if errors.Is(err, syscall.EADDRINUSE) {
		if conn, derr := e.dial(time.Second); derr == nil {
			conn.Close()
			return nil, errInstanceTaken
		}
		os.Remove(e.path)
		l, err = net.Listen("unix", e.path)
	}
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(e.path, 0o600); err != nil {
		l.Close()
		return nil, err
	}
	return unixListener{l.(*net.UnixListener)}, nil
}
