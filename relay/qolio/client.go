package qolio

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/pult/pult/relay/partner"
	"github.com/pult/pult/relay/untrusted"
)

// MaxResponseBody bounds the answers Client reads.
const MaxResponseBody = 1 << 20

const userAgent = "pult-relay"

var defaultHTTP = &http.Client{Timeout: 20 * time.Second}

// textPath is the shape of an integration's text URL path; a prefix before
// /api is allowed for on-premises installations.
var textPath = regexp.MustCompile(`^(/[^?#]*)?/api/v1/integrations/[^/?#]+/text$`)

// Client sends communications to one Qolio text integration. Set URL and
// Token; a Client is safe for concurrent use once configured.
type Client struct {
	// URL is the integration's full text URL as Qolio gives it, e.g.
	// https://api.qolio.ru/api/v1/integrations/<id>/text.
	URL string
	// Token is the integration's Authorization Token, sent as the whole
	// Authorization header value.
	Token string
	// HTTP is the client used; nil means one with a 20 s timeout. Redirects
	// are never followed, so the token cannot leak to another host.
	HTTP *http.Client
}

// APIError is an answer from Qolio with a status other than 2xx.
type APIError struct {
	Status  int    // HTTP status
	Message string // Qolio's message, or the status text when it gave none
	// RetryAfterDur is the wait Qolio asked for (Retry-After), on temporary
	// failures; 0 when not given.
	RetryAfterDur time.Duration
}

func (e *APIError) Error() string {
	return fmt.Sprintf("qolio: %d: %s", e.Status, e.Message)
}

// Temporary reports whether retrying later may succeed: 408, 425, 429 and
// every 5xx but 501. Anything else (bad token, unknown integration, refused
// body, redirects) fails the same way every time.
func (e *APIError) Temporary() bool { return partner.TemporaryStatus(e.Status) }

// RetryDelay is how long Qolio asked to wait before retrying; 0 when it did
// not say. APIError and ValidationError are partner.Errors.
func (e *APIError) RetryDelay() time.Duration { return e.RetryAfterDur }

// PartnerMessage is Qolio's message.
func (e *APIError) PartnerMessage() string { return e.Message }

// endpoint checks the configured URL.
func (c *Client) endpoint() (string, error) {
	u, err := url.Parse(strings.TrimSpace(c.URL))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", errors.New("qolio: URL must be an absolute http or https URL")
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", errors.New("qolio: URL must not carry credentials, a query or a fragment")
	}
	if !textPath.MatchString(u.Path) {
		return "", errors.New("qolio: URL must be the integration's text URL, …/api/v1/integrations/<id>/text")
	}
	return u.String(), nil
}

// Send validates comm and posts it. Sending a communication_id again
// replaces the communication, so Send is safe to retry. See the package
// documentation for the errors.
func (c *Client) Send(ctx context.Context, comm Communication) error {
	body, err := Encode(comm)
	if err != nil {
		return err
	}
	u, err := c.endpoint()
	if err != nil {
		return err
	}
	token := strings.TrimSpace(c.Token)
	if token == "" {
		return errors.New("qolio: Token is not set")
	}
	if strings.ContainsFunc(token, unicode.IsControl) {
		return errors.New("qolio: Token must not contain control characters")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("qolio: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", token)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", userAgent)

	hc := *defaultHTTP
	if c.HTTP != nil {
		hc = *c.HTTP
	}
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := hc.Do(req)
	if err != nil {
		// Strip the URL from *url.Error: it names the integration.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("qolio: send %s: %w", comm.CommunicationID, err)
	}
	defer resp.Body.Close()
	answer, readErr := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBody))
	if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		// The body of a success is not documented and not needed.
		return nil
	}
	apiErr := &APIError{Status: resp.StatusCode}
	if readErr == nil {
		apiErr.Message = errorMessage(answer)
	}
	if resp.StatusCode >= 300 && resp.StatusCode <= 399 {
		apiErr.Message = "unexpected redirect"
	}
	if apiErr.Message == "" {
		apiErr.Message = http.StatusText(resp.StatusCode)
	}
	if apiErr.Message == "" {
		apiErr.Message = "HTTP status " + strconv.Itoa(resp.StatusCode)
	}
	if apiErr.Temporary() {
		apiErr.RetryAfterDur = partner.ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now(), partner.MaxRetryAfter)
	}
	return apiErr
}

// errorMessage digs the partner's message out of an error body: JSON with
// "message", "error" (text or {"message"}), "errors" (texts, JSON:API
// objects with title/detail, or a field → messages map), or short plain
// text. "" when there is nothing readable.
func errorMessage(b []byte) string {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return ""
	}
	if b[0] != '{' {
		if b[0] == '<' || b[0] == '[' {
			return "" // an HTML error page or something unreadable
		}
		return clean(string(b))
	}
	var raw struct {
		Message json.RawMessage `json:"message"`
		Error   json.RawMessage `json:"error"`
		Errors  json.RawMessage `json:"errors"`
		Detail  json.RawMessage `json:"detail"`
	}
	if json.Unmarshal(b, &raw) != nil {
		return ""
	}
	var parts []string
	add := func(s string) {
		if s = clean(s); s != "" {
			parts = append(parts, s)
		}
	}
	add(text(raw.Message))
	if e := bytes.TrimSpace(raw.Error); len(e) > 0 && e[0] == '{' {
		var o struct {
			Message json.RawMessage `json:"message"`
		}
		_ = json.Unmarshal(e, &o)
		add(text(o.Message))
	} else {
		add(text(raw.Error))
	}
	add(text(raw.Detail))
	if e := bytes.TrimSpace(raw.Errors); len(e) > 0 {
		switch e[0] {
		case '[':
			var list []json.RawMessage
			_ = json.Unmarshal(e, &list)
			for _, item := range list {
				item = bytes.TrimSpace(item)
				if len(item) > 0 && item[0] == '{' {
					var o struct {
						Title  json.RawMessage `json:"title"`
						Detail json.RawMessage `json:"detail"`
						Msg    json.RawMessage `json:"message"`
						Source struct {
							Pointer string `json:"pointer"`
						} `json:"source"`
					}
					_ = json.Unmarshal(item, &o)
					s := text(o.Detail)
					if s == "" {
						s = text(o.Msg)
					}
					if s == "" {
						s = text(o.Title)
					}
					if p := strings.TrimPrefix(o.Source.Pointer, "/data/attributes"); p != "" && s != "" {
						s = strings.TrimPrefix(p, "/") + ": " + s
					}
					add(s)
				} else {
					add(text(item))
				}
			}
		case '{':
			var m map[string]json.RawMessage
			_ = json.Unmarshal(e, &m)
			keys := make([]string, 0, len(m))
			for k := range m {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			for _, k := range keys {
				add(k + ": " + text(m[k]))
			}
		default:
			add(text(e))
		}
	}
	// Drop repeats (a "message" that is also the first of "errors").
	var out []string
	for _, p := range parts {
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return untrusted.Truncate(strings.Join(out, "; "), 1024)
}

// text reads a JSON string, number or list of strings as text.
func text(b json.RawMessage) string {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || string(b) == "null" {
		return ""
	}
	switch b[0] {
	case '"':
		var s string
		_ = json.Unmarshal(b, &s)
		return s
	case '[':
		var l []json.RawMessage
		_ = json.Unmarshal(b, &l)
		var out []string
		for _, x := range l {
			if s := text(x); s != "" {
				out = append(out, s)
			}
		}
		return strings.Join(out, ", ")
	case '{', 't', 'f':
		return ""
	}
	return string(b)
}

// clean makes partner text safe to log: one line, printable, bounded.
func clean(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == unicode.ReplacementChar {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(s, " "))
	return untrusted.Truncate(strings.Join(strings.Fields(s), " "), 512)
}

// Every failure this client reports with a type of its own is a partner.Error.
var (
	_ partner.Error = (*APIError)(nil)
	_ partner.Error = (*ValidationError)(nil)
)
