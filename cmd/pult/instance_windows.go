//go:build windows

package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/windows"
)

// instanceEndpoint is a named pipe per user and logon session,
// \\.\pipe\pult-<user SID>-<session id>, whose DACL lets only that user
// connect, and local clients only; a client hands its request over only to
// a server running as the same user (checkServer). (AF_UNIX sockets exist on
// Windows 10 1803 and later, but not under Wine; a pipe is what Windows
// programs use.)
//
// The pipe handles are overlapped: the listener waits for a client on an
// event it can interrupt, and a connected handle is an *os.File, which Go
// puts on its I/O completion port, with deadlines. (go-winio's pipes, which
// bring their own completion port, never complete an I/O under Wine 10.)
type instanceEndpoint struct {
	pipe string
	sid  string // this user's
	sddl string // the pipe's security descriptor
}

func newInstanceEndpoint(env func(string) string, stateDir string) (instanceEndpoint, error) {
	user, err := windows.GetCurrentProcessToken().GetTokenUser()
	if err != nil {
		return instanceEndpoint{}, fmt.Errorf("reading this user's SID: %w", err)
	}
	sid := user.User.Sid.String()
	var session uint32
	if err := windows.ProcessIdToSessionId(windows.GetCurrentProcessId(), &session); err != nil {
		return instanceEndpoint{}, fmt.Errorf("reading the logon session: %w", err)
	}
	return instanceEndpoint{
		pipe: fmt.Sprintf(`\\.\pipe\pult-%s-%d`, sid, session),
		sid:  sid,
		// Protected DACL: full access for this user, nobody else.
		sddl: "D:P(A;;GA;;;" + sid + ")",
	}, nil
}

func (e instanceEndpoint) String() string { return e.pipe }

func (e instanceEndpoint) dial(timeout time.Duration) (instanceConn, error) {
	name, err := windows.UTF16PtrFromString(e.pipe)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(timeout)
	for {
		h, err := windows.CreateFile(name, windows.GENERIC_READ|windows.GENERIC_WRITE, 0, nil,
			windows.OPEN_EXISTING, windows.FILE_FLAG_OVERLAPPED|windows.SECURITY_SQOS_PRESENT|windows.SECURITY_IDENTIFICATION, 0)
		switch {
		case err == nil:
			if err := e.checkServer(h); err != nil {
				windows.CloseHandle(h)
				return nil, err
			}
			return os.NewFile(uintptr(h), e.pipe), nil
		case errors.Is(err, windows.ERROR_FILE_NOT_FOUND):
			return nil, errNoInstance
		case errors.Is(err, windows.ERROR_PIPE_BUSY) && time.Now().Before(deadline):
			time.Sleep(20 * time.Millisecond) // every instance is serving a client
			continue
		}
		return nil, fmt.Errorf("opening %s: %w", e.pipe, err)
	}
}

// checkServer makes sure the pipe's server runs as this user: another user
// who created the name first would otherwise be handed this user's numbers.
func (e instanceEndpoint) checkServer(h windows.Handle) error {
	var pid uint32
	if err := windows.GetNamedPipeServerProcessId(h, &pid); err != nil {
		return fmt.Errorf("asking who serves %s: %w", e.pipe, err)
	}
	p, err := windows.OpenProcess(windows.PROCESS_QUERY_LIMITED_INFORMATION, false, pid)
	if err != nil {
		return fmt.Errorf("%s is served by process %d, which this user cannot inspect: %w", e.pipe, pid, err)
	}
	defer windows.CloseHandle(p)
	var tok windows.Token
	if err := windows.OpenProcessToken(p, windows.TOKEN_QUERY, &tok); err != nil {
		return fmt.Errorf("%s is served by process %d, which this user cannot inspect: %w", e.pipe, pid, err)
	}
	defer tok.Close()
	user, err := tok.GetTokenUser()
	if err != nil {
		return fmt.Errorf("reading the user of process %d: %w", pid, err)
	}
	if owner := user.User.Sid.String(); owner != e.sid {
		return fmt.Errorf("%s is served by process %d of another user (%s)", e.pipe, pid, owner)
	}
	return nil
}

func (e instanceEndpoint) listen() (instanceListener, error) {
	sd, err := windows.SecurityDescriptorFromString(e.sddl)
	if err != nil {
		return nil, fmt.Errorf("the pipe's security descriptor: %w", err)
	}
	l := &pipeListener{name: e.pipe, sa: &windows.SecurityAttributes{
		Length:             uint32(unsafe.Sizeof(windows.SecurityAttributes{})),
		SecurityDescriptor: sd,
	}}
	// The first instance claims the name: access is denied if it exists.
	if l.next, err = l.create(true); err != nil {
		if errors.Is(err, windows.ERROR_ACCESS_DENIED) || errors.Is(err, windows.ERROR_PIPE_BUSY) {
			return nil, errInstanceTaken
		}
		return nil, err
	}
	if l.stop, err = windows.CreateEvent(nil, 1, 0, nil); err != nil {
		windows.CloseHandle(l.next)
		return nil, fmt.Errorf("creating an event: %w", err)
	}
	return l, nil
}

// pipeListener serves one Accept at a time. It always holds a pipe instance
// waiting for the next client, so the name stays this process's.
type pipeListener struct {
	name string
	sa   *windows.SecurityAttributes
	stop windows.Handle // set by Close

	mu        sync.Mutex // guards the fields below
	next      windows.Handle
	closed    bool
	accepting bool // an Accept uses next; it frees the handles after Close
}

func (l *pipeListener) create(first bool) (windows.Handle, error) {
	name, err := windows.UTF16PtrFromString(l.name)
	if err != nil {
		return 0, err
	}
	flags := uint32(windows.PIPE_ACCESS_DUPLEX | windows.FILE_FLAG_OVERLAPPED)
	if first {
		flags |= windows.FILE_FLAG_FIRST_PIPE_INSTANCE
	}
	h, err := windows.CreateNamedPipe(name, flags,
		windows.PIPE_TYPE_BYTE|windows.PIPE_READMODE_BYTE|windows.PIPE_WAIT|windows.PIPE_REJECT_REMOTE_CLIENTS,
		windows.PIPE_UNLIMITED_INSTANCES, maxInstanceRequest, maxInstanceRequest, 0, l.sa)
	if err != nil {
		return 0, fmt.Errorf("creating %s: %w", l.name, err)
	}
	return h, nil
}

func (l *pipeListener) Accept() (instanceConn, error) {
	l.mu.Lock()
	if l.closed || l.accepting {
		l.mu.Unlock()
		return nil, net.ErrClosed
	}
	h := l.next
	l.accepting = true
	l.mu.Unlock()
	conn, err := l.accept(h)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.accepting = false
	if l.closed {
		if conn != nil {
			conn.Close()
		}
		l.free()
		return nil, net.ErrClosed
	}
	return conn, err
}

// free closes the waiting instance and the stop event (l.mu held).
func (l *pipeListener) free() {
	windows.CloseHandle(l.next)
	windows.CloseHandle(l.stop)
}

// accept waits for a client on h, the waiting instance, and makes the next.
func (l *pipeListener) accept(h windows.Handle) (instanceConn, error) {
	ev, err := windows.CreateEvent(nil, 1, 0, nil)
	if err != nil {
		return nil, fmt.Errorf("creating an event: %w", err)
	}
	defer windows.CloseHandle(ev)
	o := windows.Overlapped{HEvent: ev}
	err = windows.ConnectNamedPipe(h, &o)
	if errors.Is(err, windows.ERROR_IO_PENDING) {
		which, werr := windows.WaitForMultipleObjects([]windows.Handle{ev, l.stop}, false, windows.INFINITE)
		if werr != nil || which != windows.WAIT_OBJECT_0 {
			windows.CancelIoEx(h, &o)
			var n uint32
			windows.GetOverlappedResult(h, &o, &n, true) // the cancelled connect has ended
			if werr != nil {
				return nil, fmt.Errorf("waiting for a client: %w", werr)
			}
			return nil, net.ErrClosed
		}
		var n uint32
		err = windows.GetOverlappedResult(h, &o, &n, false)
	}
	if err != nil && !errors.Is(err, windows.ERROR_PIPE_CONNECTED) {
		windows.DisconnectNamedPipe(h) // a client that came and went: h waits again
		return nil, fmt.Errorf("waiting for a client: %w", err)
	}
	// The next instance before handing this one out.
	next, err := l.create(false)
	if err != nil {
		windows.DisconnectNamedPipe(h)
		return nil, err
	}
	l.mu.Lock()
	l.next = next
	l.mu.Unlock()
	return os.NewFile(uintptr(h), l.name), nil
}

// Close stops a waiting Accept and frees the name.
func (l *pipeListener) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return net.ErrClosed
	}
	l.closed = true
	if l.accepting {
		windows.SetEvent(l.stop) // Accept frees the handles
	} else {
		l.free()
	}
	return nil
}
