package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// The single-instance socket: a running app listens on a unix socket in the
// runtime dir; a second `pult` (or a tel: link) sends it one JSON line and
// exits.

type instanceRequest struct {
	Dial string `json:"dial,omitempty"`
}

const maxInstanceRequest = 1 << 10

func instancePath(env func(string) string, stateDir string) string {
	if dir := env("XDG_RUNTIME_DIR"); dir != "" {
		return filepath.Join(dir, "pult.sock")
	}
	return filepath.Join(stateDir, "pult.sock")
}

var errNoInstance = errors.New("no running pult")

func isNoInstance(err error) bool { return errors.Is(err, errNoInstance) }

// sendToInstance passes a request to the running app, or returns
// errNoInstance.
func sendToInstance(path, dial string) error {
	conn, err := net.DialTimeout("unix", path, time.Second)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) {
			return errNoInstance
		}
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(3 * time.Second))
	b, _ := json.Marshal(instanceRequest{Dial: dial})
	if _, err := conn.Write(append(b, '\n')); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return fmt.Errorf("no answer: %w", err)
	}
	if line != "ok\n" {
		return fmt.Errorf("refused: %s", line)
	}
	return nil
}

// listenInstance claims the socket, replacing a stale one left by a crash.
func listenInstance(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	l, err := net.Listen("unix", path)
	if err != nil && errors.Is(err, syscall.EADDRINUSE) {
		// Nobody answered sendToInstance, so it is stale.
		os.Remove(path)
		l, err = net.Listen("unix", path)
	}
	if err != nil {
		return nil, err
	}
	os.Chmod(path, 0o600)
	return l, nil
}

// serveInstance answers requests until ctx ends.
func serveInstance(ctx context.Context, l net.Listener, open func(number string), log *slog.Logger) {
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	for {
		conn, err := l.Accept()
		if err != nil {
			return
		}
		func() {
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(3 * time.Second))
			line, err := bufio.NewReader(&limitedConn{conn, maxInstanceRequest}).ReadBytes('\n')
			var req instanceRequest
			if err == nil {
				err = json.Unmarshal(line, &req)
			}
			if err != nil {
				log.Warn("bad instance request", "err", err)
				fmt.Fprintf(conn, "bad request\n")
				return
			}
			open(req.Dial)
			fmt.Fprintf(conn, "ok\n")
		}()
	}
}

type limitedConn struct {
	net.Conn
	n int
}

func (l *limitedConn) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, errors.New("request too large")
	}
	if len(p) > l.n {
		p = p[:l.n]
	}
	n, err := l.Conn.Read(p)
	l.n -= n
	return n, err
}
