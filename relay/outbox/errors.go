package outbox

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/pult/pult/relay/retryafter"
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

// RetryAfter is how long to wait before the next attempt.
func (e *RetryAfterError) RetryAfter() time.Duration { return e.After }

// StatusError is a partner's answer other than 2xx, classified for the
// outbox: 408, 425, 429 and 5xx are temporary; every other status (other
// 4xx, and 3xx since redirects are not followed) cannot succeed by retrying.
type StatusError struct {
	Partner    string        // e.g. "pbx"; prefixes the message when set
	StatusCode int           // HTTP status
	Message    string        // the partner's own words from the body, if any
	After      time.Duration // from Retry-After
}

func (e *StatusError) Error() string {
	var b strings.Builder
	if e.Partner != "" {
		b.WriteString(e.Partner + ": ")
	}
	fmt.Fprintf(&b, "HTTP %d", e.StatusCode)
	if t := http.StatusText(e.StatusCode); t != "" {
		b.WriteString(" " + t)
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	return b.String()
}

// Temporary reports whether the same request may succeed later.
func (e *StatusError) Temporary() bool {
	switch c := e.StatusCode; {
	case c >= 500, c == http.StatusRequestTimeout, c == http.StatusTooEarly, c == http.StatusTooManyRequests:
		return true
	}
	return false
}

// RetryAfter is the partner's Retry-After, or 0.
func (e *StatusError) RetryAfter() time.Duration { return e.After }

// PartnerMessage is what the partner said.
func (e *StatusError) PartnerMessage() string { return e.Message }

// maxErrorBody bounds how much of an error answer is read.
const maxErrorBody = 16 << 10

// CheckResponse returns nil for a 2xx answer and a *StatusError otherwise,
// with the partner's message taken from the body and its Retry-After. It
// reads (part of) the body of an error answer; the caller still closes it.
func CheckResponse(partner string, resp *http.Response) error {
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	return &StatusError{
		Partner:    partner,
		StatusCode: resp.StatusCode,
		Message:    MessageFromBody(body),
		After:      retryafter.Parse(resp.Header.Get("Retry-After"), time.Now(), 365*24*time.Hour),
	}
}

// maxMessage bounds a partner message kept with a job, in bytes.
const maxMessage = 500

// MessageFromBody extracts a partner's error message from an answer body:
// the errorMsg, message, error, error_description or detail of a JSON object
// (with retailCRM-style "errors" appended), or short plain text. HTML pages
// give nothing.
func MessageFromBody(body []byte) string {
	body = bytes.TrimSpace(body)
	if len(body) == 0 || body[0] == '<' || !utf8.Valid(body) {
		return ""
	}
	if body[0] == '{' {
		var obj map[string]any
		if json.Unmarshal(body, &obj) != nil {
			return clip(string(body))
		}
		msg := ""
		for _, k := range []string{"errorMsg", "message", "error", "error_description", "detail", "description"} {
			switch v := obj[k].(type) {
			case string:
				msg = v
			case map[string]any:
				if s, ok := v["message"].(string); ok {
					msg = s
				}
			}
			if msg != "" {
				break
			}
		}
		if details := flatten(obj["errors"]); details != "" {
			if msg == "" {
				msg = details
			} else {
				msg += " (" + details + ")"
			}
		}
		return clip(msg)
	}
	return clip(string(body))
}

func flatten(v any) string {
	var parts []string
	switch e := v.(type) {
	case map[string]any:
		for k, x := range e {
			parts = append(parts, k+": "+fmt.Sprint(x))
		}
	case []any:
		for _, x := range e {
			parts = append(parts, fmt.Sprint(x))
		}
	case string:
		parts = append(parts, e)
	}
	slices.Sort(parts) // map order is random; keep the message stable
	return strings.Join(parts, "; ")
}

// clip collapses whitespace and cuts s to maxMessage bytes on a rune boundary.
func clip(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) <= maxMessage {
		return s
	}
	cut := maxMessage
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

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
		v.message = clip(pm.PartnerMessage())
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
	// RetryAfter() is this package's name; RetryDelay() is the one partner
	// packages use when a field already takes the name RetryAfter
	// (retailcrm.APIError). The first found in the chain wins.
	var ra interface{ RetryAfter() time.Duration }
	var rd interface{ RetryDelay() time.Duration }
	switch {
	case errors.As(err, &ra):
		v.after = ra.RetryAfter()
	case errors.As(err, &rd):
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
