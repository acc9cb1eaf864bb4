package outbox

import (
	"errors"
	"time"

	"github.com/pult/pult/relay/partner"
)

// PermanentError stops retries: the job goes to the dead letters.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent wraps err so the job is not retried.
func Permanent(err error) error { return &PermanentError{err} }

// RetryAfterError asks for a retry no sooner than After.
type RetryAfterError struct {
	Err   error
	After time.Duration
}

func (e *RetryAfterError) Error() string { return e.Err.Error() }
func (e *RetryAfterError) Unwrap() error { return e.Err }

// RetryDelay is how long to wait before the next attempt.
func (e *RetryAfterError) RetryDelay() time.Duration { return e.After }

// verdict is what a handler's error means for its job.
type verdict struct {
	permanent bool
	after     time.Duration // wait at least this long (0: backoff decides)
	message   string        // the partner's words, if it said any
}

func classify(err error) verdict {
	var v verdict
	var pm interface{ PartnerMessage() string }
	if errors.As(err, &pm) {
		v.message = partner.Clip(pm.PartnerMessage())
	}
	var perm *PermanentError
	if errors.As(err, &perm) {
		v.permanent = true
		return v
	}
	var tmp interface{ Temporary() bool }
	if errors.As(err, &tmp) && !tmp.Temporary() && !isTransport(tmp) {
		v.permanent = true
		return v
	}
	var rd interface{ RetryDelay() time.Duration }
	if errors.As(err, &rd) {
		v.after = rd.RetryDelay()
	}
	return v
}

// isTransport tells network-level errors (which also report Timeout) from a
// partner's answer.
func isTransport(e any) bool {
	_, ok := e.(interface{ Timeout() bool })
	return ok
}
