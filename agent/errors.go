package agent

import (
	"errors"
	"fmt"

	"github.com/pult/pult/agent/wire"
)

// Sentinel errors. Compare with errors.Is; the returned errors wrap them with
// details a person can act on.
var (
	// ErrOffline: a dial was attempted while not connected. Dials are never
	// queued: a call placed minutes later would surprise everybody.
	ErrOffline = errors.New("not connected to the relay: the call was not placed")
	// ErrQueued: a status change could not be confirmed now and stays in the
	// outbox; it is sent (with its original id) once the connection is back
	// and its outcome arrives as an EventReceipt.
	ErrQueued = errors.New("status change queued")
	// ErrNoReply: a request was sent but its answer never came (timeout or
	// the connection dropped); its effect is unknown.
	ErrNoReply = errors.New("no reply from the relay")
	// ErrFrameTooLarge: an outgoing frame would exceed Config.MaxFrame.
	ErrFrameTooLarge = errors.New("request exceeds the frame size limit")
	// ErrUnreachable: Check could not reach the relay at all.
	ErrUnreachable = errors.New("relay unreachable")
	// ErrNotRelay: something answered at the URL, but not a pult relay.
	ErrNotRelay = errors.New("not a pult relay")
	// ErrCleartext: the relay URL is http:// or ws:// to another machine and
	// Config.Insecure is not set; nothing was sent. The error is a
	// *CleartextError.
	ErrCleartext = errors.New("the token would be sent unencrypted")
)

// CleartextError refuses a relay URL that would carry the token
// unencrypted to another machine (see IsLoopback). errors.Is(err,
// ErrCleartext) is true for it.
type CleartextError struct {
	URL  string // the relay URL (or the address a relay redirected to)
	Host string // the machine the token would go to
}

func (e *CleartextError) Error() string {
	return fmt.Sprintf("relay URL %s would send your token unencrypted to %s; use https:// (wss://), or --insecure if you accept that risk", e.URL, e.Host)
}

// Is makes errors.Is(err, ErrCleartext) true.
func (e *CleartextError) Is(target error) bool { return target == ErrCleartext }

// errConnLost is what a waiter sees when its connection ends before the reply.
var errConnLost = errors.New("connection to the relay lost")

// StopError is returned by Run (and Check) when the relay says "do not
// retry": the token is unknown (wire.CloseBadToken), revoked
// (wire.CloseRevoked) or this build's protocol is refused (wire.CloseProtocol).
type StopError struct {
	Code   int    // a wire close code for which wire.IsStop is true
	Reason string // human text from the relay, or wire.CloseText(Code)
}

func (e *StopError) Error() string {
	return fmt.Sprintf("relay refused this agent: %s (code %d)", e.Reason, e.Code)
}

func stopError(code int, reason string) *StopError {
	if reason == "" {
		reason = wire.CloseText(code)
	}
	return &StopError{Code: code, Reason: reason}
}

// queuedError is returned by SetStatus when the change went to the outbox.
type queuedError struct {
	status wire.Status
	why    string
}

func (e *queuedError) Error() string {
	return fmt.Sprintf("%s: status %s will be sent when the connection is back", e.why, e.status)
}

func (e *queuedError) Unwrap() error { return ErrQueued }
