//go:build windows

package main

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"time"

	"github.com/Microsoft/go-winio"
	"golang.org/x/sys/windows"
)

// instanceEndpoint is a named pipe per user and logon session,
// \\.\pipe\pult-<user SID>-<session id>, whose DACL lets only that user
// connect. (AF_UNIX sockets exist on Windows 10 1803 and later, but not
// under Wine, and a pipe is what Windows programs use for this.)
type instanceEndpoint struct {
	pipe string
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
		// Protected DACL: full access for this user, nobody else.
		sddl: "D:P(A;;GA;;;" + sid + ")",
	}, nil
}

func (e instanceEndpoint) String() string { return e.pipe }

func (e instanceEndpoint) dial(timeout time.Duration) (net.Conn, error) {
	conn, err := winio.DialPipe(e.pipe, &timeout)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errNoInstance
	}
	return conn, err
}

func (e instanceEndpoint) listen() (net.Listener, error) {
	l, err := winio.ListenPipe(e.pipe, &winio.PipeConfig{SecurityDescriptor: e.sddl})
	// The first instance of a pipe is created with FILE_FLAG_FIRST_PIPE_INSTANCE:
	// access is denied when the name exists already.
	if errors.Is(err, windows.ERROR_ACCESS_DENIED) || errors.Is(err, windows.ERROR_PIPE_BUSY) {
		return nil, errInstanceTaken
	}
	return l, err
}
