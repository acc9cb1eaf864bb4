// Package partner is the HTTP convention pult's partner clients share —
// retailcrm, qolio, calltouch, and the PBX's own URLs called by the relay —
// and that the outbox acts on: which answers are worth retrying
// ([TemporaryStatus], one list), how long a partner asks to wait
// ([ParseRetryAfter]), what a partner said ([MessageFromBody]), and the
// methods every partner failure offers (see [Error]). It holds no state and
// starts no goroutine; it imports nothing of pult's.
package partner

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Error is what every partner package's typed errors offer, so that the
// outbox (and anyone else) can act on a failure without knowing the
// partner:
//
//   - Temporary: retrying the same request later may succeed (for an HTTP
//     answer, [TemporaryStatus]); false means it never will (a refusal of
//     the input, say), and the job becomes a dead letter at once.
//   - RetryDelay: how long the partner asked to wait (its Retry-After), 0
//     when it did not say.
//   - PartnerMessage: the partner's own words, kept with a dead letter for
//     the administrator.
//
// Transport failures (connection refused, timeouts) are not Errors: they
// are retried.
type Error interface {
	error
	Temporary() bool
	RetryDelay() time.Duration
	PartnerMessage() string
}

// TemporaryStatus reports whether an HTTP answer with this status may be
// different if the same request is sent again later: 408 Request Timeout,
// 425 Too Early, 429 Too Many Requests and 5xx — but 501 Not Implemented,
// which will not be implemented by then. Every other status (other 4xx, and
// 3xx since partners' redirects are not followed) is final.
func TemporaryStatus(code int) bool {
	switch {
	case code == http.StatusRequestTimeout, code == http.StatusTooEarly, code == http.StatusTooManyRequests:
		return true
	case code >= 500 && code <= 599 && code != http.StatusNotImplemented:
		return true
	}
	return false
}

// MaxRetryAfter caps a partner's Retry-After: a partner asking for days is
// asked again sooner.
const MaxRetryAfter = time.Hour

// ParseRetryAfter reads a Retry-After header value — delay-seconds or an
// HTTP date, relative to now — capped at limit. It returns 0 when v is
// absent, malformed, not positive or in the past.
func ParseRetryAfter(v string, now time.Time, limit time.Duration) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		if n > int64(limit/time.Second) {
			return limit
		}
		d = time.Duration(n) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return max(0, min(d, limit))
}

// StatusError is an answer other than 2xx from a partner without a client
// package of its own (the PBX's make-call and change-status URLs). It is an
// [Error].
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

// Temporary is [TemporaryStatus] of the answer.
func (e *StatusError) Temporary() bool { return TemporaryStatus(e.StatusCode) }

// RetryDelay is the partner's Retry-After, or 0.
func (e *StatusError) RetryDelay() time.Duration { return e.After }

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
		After:      ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now(), 365*24*time.Hour),
	}
}

// MaxMessage bounds a partner message kept with a job, in bytes.
const MaxMessage = 500

// MessageFromBody extracts a partner's error message from an answer body:
// the errorMsg, message, error, error_description or detail of a JSON object
// (with retailCRM-style "errors" appended), or short plain text. HTML pages
// give nothing. The result is at most MaxMessage bytes, on one line.
func MessageFromBody(body []byte) string {
	body = bytes.TrimSpace(body)
	if len(body) == 0 || body[0] == '<' || !utf8.Valid(body) {
		return ""
	}
	if body[0] == '{' {
		var obj map[string]any
		if json.Unmarshal(body, &obj) != nil {
			return Clip(string(body))
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
		return Clip(msg)
	}
	return Clip(string(body))
}

// FieldErrors is a partner's per-field errors as one line, "field: message"
// sorted by field, for PartnerMessage.
func FieldErrors(errs map[string]string) string {
	parts := make([]string, 0, len(errs))
	for k, v := range errs {
		parts = append(parts, k+": "+v)
	}
	slices.Sort(parts)
	return strings.Join(parts, "; ")
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

// Clip collapses whitespace and cuts s to MaxMessage bytes on a rune
// boundary.
func Clip(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) <= MaxMessage {
		return s
	}
	cut := MaxMessage
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// TransportError is an HTTP client's error without the request's query: a
// *url.Error quotes the whole URL, and queries carry secrets (the PBX's
// clientId, an apiKey) and customers' phone numbers, which must reach no
// log and no outbox record. The result is still a *url.Error, so timeouts
// and context errors stay recognisable.
func TransportError(err error) error {
	var ue *url.Error
	if !errors.As(err, &ue) {
		return err
	}
	where := "(unparsable URL)"
	if u, perr := url.Parse(ue.URL); perr == nil {
		u.RawQuery, u.ForceQuery, u.Fragment, u.User = "", false, "", nil
		where = u.String()
	}
	return &url.Error{Op: ue.Op, URL: where, Err: ue.Err}
}
