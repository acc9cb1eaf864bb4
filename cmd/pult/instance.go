package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"
)

// One app per user session. The running app listens on an instance endpoint
// (a unix socket on Linux, a named pipe on Windows: instance_unix.go,
// instance_windows.go); a second `pult` (or a tel: link) sends it one JSON
// line, reads "ok" and exits.
//
// Each platform provides
//
//	newInstanceEndpoint(env, stateDir) (instanceEndpoint, error)
//	(instanceEndpoint) dial(timeout) (instanceConn, error)      // errNoInstance: nobody listens
//	(instanceEndpoint) listen() (instanceListener, error)       // errInstanceTaken: somebody does
//	(instanceEndpoint) String() string
//
// Any other error from them is a failure to set the hand-off up, never a
// sign of another instance.

// instanceConn is one connection between two pults.
type instanceConn interface {
	io.ReadWriteCloser
	SetDeadline(time.Time) error
}

// instanceListener accepts connections until it is closed.
type instanceListener interface {
	Accept() (instanceConn, error)
	Close() error
}

type instanceRequest struct {
	Dial string `json:"dial,omitempty"`
}

const maxInstanceRequest = 1 << 10

// claimWait bounds how long claimInstance waits for another pult that holds
// the endpoint to start listening (or to finish ending).
const claimWait = 3 * time.Second

var (
	// errNoInstance: no pult listens on the endpoint.
	errNoInstance = errors.New("no running pult")
	// errInstanceTaken: the endpoint is held by a live listener.
	errInstanceTaken = errors.New("the endpoint is taken")
)

// errInstanceSilent: a pult holds the endpoint but does not answer.
type errInstanceSilent struct{ err error }

func (e errInstanceSilent) Error() string {
	return fmt.Sprintf("another pult is running but did not answer: %v", e.err)
}
func (e errInstanceSilent) Unwrap() error { return e.err }

// claimInstance makes this process the user's one pult, or hands dial (a
// number or "") to the one already running. It returns a listener for
// serveInstance when this process is the first, or handed=true when the
// request went to the running app. An error is either errInstanceSilent or
// a failure to set the endpoint up.
func claimInstance(ep instanceEndpoint, dial string) (l instanceListener, handed bool, err error) {
	// Another pult may hold the endpoint without listening yet (starting)
	// or any more (ending): try again for a while.
	deadline := time.Now().Add(claimWait)
	for {
		err := sendToInstance(ep, dial)
		switch {
		case err == nil:
			return nil, true, nil
		case !errors.Is(err, errNoInstance):
			return nil, false, err
		}
		l, err = ep.listen()
		switch {
		case err == nil:
			return l, false, nil
		case errors.Is(err, errInstanceTaken) && time.Now().Before(deadline):
			time.Sleep(20 * time.Millisecond)
			continue // another pult started in between: hand to it
		case errors.Is(err, errInstanceTaken):
			return nil, false, errInstanceSilent{fmt.Errorf("it holds %s but does not listen", ep)}
		}
		return nil, false, fmt.Errorf("cannot set up the single-instance endpoint %s: %w", ep, err)
	}
}

// sendToInstance passes a request to the running app. It returns
// errNoInstance when there is none, errInstanceSilent when it does not
// answer, or an error saying why the endpoint could not be tried.
func sendToInstance(ep instanceEndpoint, dial string) error {
	conn, err := ep.dial(time.Second)
	if errors.Is(err, errNoInstance) {
		return err
	}
	if err != nil {
		return fmt.Errorf("cannot reach the single-instance endpoint %s: %w", ep, err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(3 * time.Second))
	b, _ := json.Marshal(instanceRequest{Dial: dial})
	if _, err := conn.Write(append(b, '\n')); err != nil {
		return errInstanceSilent{err}
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return errInstanceSilent{fmt.Errorf("no answer: %w", err)}
	}
	if line != "ok\n" {
		return errInstanceSilent{fmt.Errorf("refused: %q", line)}
	}
	return nil
}

// serveInstance answers requests until ctx ends.
func serveInstance(ctx context.Context, l instanceListener, open func(number string), log *slog.Logger) {
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	for {
		conn, err := l.Accept()
		if errors.Is(err, net.ErrClosed) || ctx.Err() != nil {
			return
		}
		if err != nil {
			log.Warn("single-instance endpoint", "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			continue
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
			log.Info("handed over by another pult", "dial", req.Dial != "")
			open(req.Dial)
			fmt.Fprintf(conn, "ok\n")
		}()
	}
}

type limitedConn struct {
	r io.Reader
	n int
}

func (l *limitedConn) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, errors.New("request too large")
	}
	if len(p) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= n
	return n, err
}
