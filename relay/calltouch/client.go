package calltouch

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/pult/pult/relay/partner"
	"github.com/pult/pult/relay/untrusted"
)

// DefaultBaseURL is Calltouch's API host.
const DefaultBaseURL = "https://api.calltouch.ru"

// PathCreate is the callback request method.
const PathCreate = "/widget-service/v1/api/widget-request/user-form/create"

// HeaderToken carries the API token.
const HeaderToken = "Access-Token"

// MaxResponseBody bounds the answers Client reads.
const MaxResponseBody = 1 << 20

// ErrBadResponse is wrapped by errors about answers that are not Calltouch's
// JSON.
var ErrBadResponse = errors.New("calltouch: malformed response")

// Calltouch's error codes (errorCode).
const (
	CodeBadJSON      = 1     // the JSON is malformed or the request empty
	CodeNoMinutes    = 10001 // not enough callback minutes
	CodeServiceOff   = 10002 // the callback service is not enabled
	CodeNoWidget     = 10003 // no enabled widget with that route key
	CodeNoSession    = 10004 // the session was not found
	CodeSessionLimit = 10005 // too many requests in this session (sessionId given)
	CodePhoneLimit   = 10006 // too many requests to this phone (no sessionId)
	CodeTooFrequent  = 10007 // the minimum interval between requests for this phone or session has not passed
	CodeInvalidPhone = 10013 // the phone number is not valid; observed from Calltouch, not in its documentation
)

const (
	userAgent = "pult-relay"
)

var defaultHTTP = &http.Client{Timeout: 15 * time.Second}

// Client creates callback requests in one Calltouch project. Set Token and
// RouteKey; a Client is safe for concurrent use once configured.
type Client struct {
	// BaseURL is Calltouch's API root; empty means DefaultBaseURL.
	BaseURL string
	// Token is the project's API token, sent in the Access-Token header.
	Token string
	// RouteKey is the "site form" widget's key, used when a Request has
	// none.
	RouteKey string
	// Location is the zone scheduleTime is written in; nil means Moscow.
	Location *time.Location
	// HTTP is the client used; nil means one with a 15 s timeout. Redirects
	// are never followed, so the token cannot leak to another host.
	HTTP *http.Client
}

// Result is a created callback request.
type Result struct {
	// WidgetRequestID is Calltouch's id of the request (data.widgetRequestId);
	// empty when Calltouch did not give one.
	WidgetRequestID string
}

// Violation is one field Calltouch refused.
type Violation struct {
	Field   string // propertyPath
	Message string
}

// APIError is an error answer from Calltouch.
type APIError struct {
	Status     int         // HTTP status
	Code       int         // Calltouch's errorCode; 0 when it gave none
	Message    string      // Calltouch's own text (often Russian), or the status text
	Violations []Violation // fields Calltouch refused, when it listed them
	// RetryAfterDur is the wait Calltouch asked for (Retry-After), on
	// temporary failures; 0 when not given.
	RetryAfterDur time.Duration
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "calltouch: %d", e.Status)
	if e.Code != 0 {
		fmt.Fprintf(&b, ": code %d", e.Code)
	}
	b.WriteString(": " + e.OperatorMessage())
	if e.Message != "" && e.Message != e.OperatorMessage() {
		b.WriteString(" (Calltouch: " + e.Message + ")")
	}
	return b.String()
}

// Temporary reports whether retrying later may succeed: no documented error
// code (those all need a person, or mean Calltouch already holds a recent
// request), and a status of 408, 425, 429 or 5xx other than 501.
func (e *APIError) Temporary() bool {
	if e.Code != 0 || len(e.Violations) > 0 {
		return false
	}
	return partner.TemporaryStatus(e.Status)
}

// RetryDelay is how long Calltouch asked to wait before retrying; 0 when it
// did not say. APIError and ValidationError are partner.Errors.
func (e *APIError) RetryDelay() time.Duration { return e.RetryAfterDur }

// PartnerMessage is what an operator should read (OperatorMessage).
func (e *APIError) PartnerMessage() string { return e.OperatorMessage() }

// AlreadyRequested reports a refusal because Calltouch recently accepted
// requests for this phone or session (10005, 10006, 10007): a callback is
// already on its way. A retry of our own request that timed out typically
// lands here, so a caller may count it as delivered.
func (e *APIError) AlreadyRequested() bool {
	return e.Code == CodeSessionLimit || e.Code == CodePhoneLimit || e.Code == CodeTooFrequent
}

// OperatorMessage says in plain English what went wrong and, where a person
// can, what to do.
func (e *APIError) OperatorMessage() string {
	switch e.Code {
	case CodeBadJSON:
		return "Calltouch could not read the request (malformed or empty JSON); this is a bug in pult, please report it"
	case CodeNoMinutes:
		return "no callback minutes left on the Calltouch account; top up the callback balance in Calltouch"
	case CodeServiceOff:
		return "the callback service is switched off on the Calltouch account; enable it in Calltouch"
	case CodeNoWidget:
		return `no enabled Calltouch "site form" widget has this route key; check the route key and that the widget is on`
	case CodeNoSession:
		return "Calltouch does not know this visitor session (it must belong to the site of the API token); send the request without it"
	case CodeSessionLimit:
		return "Calltouch's limit of callback requests for this visitor session is reached; a callback is already requested"
	case CodePhoneLimit:
		return "Calltouch's limit of callback requests to this phone number is reached; a callback is already requested"
	case CodeTooFrequent:
		return "a callback to this phone number or session was requested moments ago; Calltouch refuses repeats until its minimum interval passes"
	case CodeInvalidPhone:
		return "Calltouch refused the phone number as invalid"
	case 0:
	default:
		return fmt.Sprintf("Calltouch refused the request with code %d", e.Code)
	}
	if len(e.Violations) > 0 {
		parts := make([]string, len(e.Violations))
		for i, v := range e.Violations {
			parts[i] = v.Message
			if v.Field != "" {
				parts[i] = v.Field + ": " + v.Message
			}
		}
		return "Calltouch refused the request: " + strings.Join(parts, "; ")
	}
	switch s := e.Status; {
	case s == http.StatusUnauthorized || s == http.StatusForbidden:
		return "Calltouch refused the API token; check the token in pult's settings"
	case s == http.StatusTooManyRequests:
		return "too many requests to Calltouch (it allows 5 per second from one address); the request will be retried"
	case s >= 300 && s <= 399:
		return "Calltouch answered with an unexpected redirect; check the API address"
	case e.Temporary():
		return "Calltouch is unavailable right now; the request will be retried"
	}
	return "Calltouch refused the request (HTTP " + strconv.Itoa(e.Status) + ")"
}

func (c *Client) endpoint() (string, error) {
	base := strings.TrimSpace(c.BaseURL)
	if base == "" {
		base = DefaultBaseURL
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", errors.New("calltouch: BaseURL must be an absolute http or https URL")
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", errors.New("calltouch: BaseURL must not carry credentials, a query or a fragment")
	}
	u.Path = strings.TrimRight(u.Path, "/") + PathCreate
	u.RawPath = ""
	return u.String(), nil
}

// Create validates req and asks Calltouch to call the client back. See the
// package documentation for the errors.
func (c *Client) Create(ctx context.Context, req Request) (Result, error) {
	body, err := Encode(req, c.RouteKey, c.Location)
	if err != nil {
		return Result{}, err
	}
	u, err := c.endpoint()
	if err != nil {
		return Result{}, err
	}
	token := strings.TrimSpace(c.Token)
	if token == "" {
		return Result{}, errors.New("calltouch: Token is not set")
	}
	if strings.ContainsFunc(token, unicode.IsControl) {
		return Result{}, errors.New("calltouch: Token must not contain control characters")
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return Result{}, fmt.Errorf("calltouch: %w", err)
	}
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("Accept", "application/json")
	hreq.Header.Set(HeaderToken, token)
	hreq.Header.Set("User-Agent", userAgent)

	hc := *defaultHTTP
	if c.HTTP != nil {
		hc = *c.HTTP
	}
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := hc.Do(hreq)
	if err != nil {
		return Result{}, fmt.Errorf("calltouch: create: %w", err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBody+1))
	if err != nil && resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		return Result{}, fmt.Errorf("calltouch: create: reading answer: %w", err)
	}
	tooBig := len(answer) > MaxResponseBody
	parsed, perr := parseAnswer(answer)
	if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		switch {
		case tooBig:
			return Result{}, fmt.Errorf("%w: answer exceeds %d bytes", ErrBadResponse, MaxResponseBody)
		case perr != nil:
			return Result{}, fmt.Errorf("%w: %v", ErrBadResponse, perr)
		case parsed.code == 0 && len(parsed.violations) == 0:
			return Result{WidgetRequestID: parsed.id}, nil
		}
	}
	apiErr := &APIError{Status: resp.StatusCode}
	if perr == nil && !tooBig {
		apiErr.Code, apiErr.Message, apiErr.Violations = parsed.code, parsed.msg, parsed.violations
	}
	if apiErr.Message == "" && (resp.StatusCode < 200 || resp.StatusCode > 299) {
		apiErr.Message = http.StatusText(resp.StatusCode)
	}
	if apiErr.Temporary() {
		apiErr.RetryAfterDur = partner.ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now(), partner.MaxRetryAfter)
	}
	return Result{}, apiErr
}

type answer struct {
	id         string
	code       int
	msg        string
	violations []Violation
}

// parseAnswer reads Calltouch's envelope, under "data" or at the top level.
// An empty body is an empty answer.
func parseAnswer(b []byte) (answer, error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return answer{}, nil
	}
	if b[0] != '{' {
		return answer{}, errors.New("answer is not a JSON object")
	}
	type level struct {
		WidgetRequestID json.RawMessage `json:"widgetRequestId"`
		APIErrorData    *struct {
			ErrorCode    json.RawMessage `json:"errorCode"`
			ErrorMessage json.RawMessage `json:"errorMessage"`
		} `json:"apiErrorData"`
		ValidationErrorData *struct {
			Violations []struct {
				PropertyPath json.RawMessage `json:"propertyPath"`
				Message      json.RawMessage `json:"message"`
			} `json:"violations"`
		} `json:"validationErrorData"`
		ErrorCode    json.RawMessage `json:"errorCode"`
		ErrorMessage json.RawMessage `json:"errorMessage"`
		Message      json.RawMessage `json:"message"`
		Error        json.RawMessage `json:"error"`
	}
	var top struct {
		level
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(b, &top); err != nil {
		return answer{}, fmt.Errorf("answer is not valid JSON: %v", err)
	}
	levels := []level{top.level}
	if d := bytes.TrimSpace(top.Data); len(d) > 0 && d[0] == '{' {
		var data level
		if err := json.Unmarshal(d, &data); err != nil {
			return answer{}, fmt.Errorf("data: %v", err)
		}
		levels = []level{data, top.level}
	}
	var a answer
	for _, l := range levels {
		if a.id == "" {
			a.id = text(l.WidgetRequestID)
		}
		if e := l.APIErrorData; e != nil {
			if a.code == 0 {
				a.code = code(e.ErrorCode)
			}
			if a.msg == "" {
				a.msg = text(e.ErrorMessage)
			}
		}
		if a.code == 0 {
			a.code = code(l.ErrorCode)
		}
		if v := l.ValidationErrorData; v != nil && a.violations == nil {
			for _, x := range v.Violations {
				a.violations = append(a.violations, Violation{Field: text(x.PropertyPath), Message: text(x.Message)})
			}
			if a.violations == nil {
				a.violations = []Violation{{Message: "invalid request"}}
			}
		}
		for _, m := range []json.RawMessage{l.ErrorMessage, l.Message, l.Error} {
			if a.msg == "" {
				a.msg = text(m)
			}
		}
	}
	if a.msg == "" && len(a.violations) > 0 {
		parts := make([]string, len(a.violations))
		for i, v := range a.violations {
			parts[i] = strings.TrimPrefix(v.Field+": "+v.Message, ": ")
		}
		a.msg = untrusted.Truncate(strings.Join(parts, "; "), 1024)
	}
	return a, nil
}

// text reads a JSON string or number as one clean, bounded line.
func text(b json.RawMessage) string {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return ""
	}
	var s string
	switch {
	case b[0] == '"':
		_ = json.Unmarshal(b, &s)
	case b[0] == '-' || (b[0] >= '0' && b[0] <= '9'):
		s = string(b)
	default:
		return ""
	}
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(s, " "))
	return untrusted.Truncate(strings.Join(strings.Fields(s), " "), 512)
}

func code(b json.RawMessage) int {
	n, err := strconv.Atoi(text(b))
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// Every failure this client reports with a type of its own is a partner.Error.
var (
	_ partner.Error = (*APIError)(nil)
	_ partner.Error = (*ValidationError)(nil)
)
