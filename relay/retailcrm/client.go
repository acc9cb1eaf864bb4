package retailcrm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/pult/pult/relay/partner"
	"github.com/pult/pult/relay/untrusted"
)

// ErrBadResponse is wrapped by errors about answers that are not retailCRM's
// JSON (garbage, oversized, missing "success").
var ErrBadResponse = errors.New("retailcrm: malformed response")

// userAgent identifies the relay to retailCRM.
const userAgent = "pult-relay"

// defaultHTTP is used when Client.HTTP is nil.
var defaultHTTP = &http.Client{Timeout: 15 * time.Second}

// Client calls retailCRM's API v5. The zero value is not usable: set BaseURL
// and APIKey. A Client is safe for concurrent use; do not change its fields
// while it is in use.
type Client struct {
	// BaseURL is the account, e.g. https://example.retailcrm.ru; a trailing
	// slash or a trailing /api/v5 is tolerated.
	BaseURL string
	// APIKey is sent in the X-API-KEY header, never in the URL.
	APIKey string
	// HTTP is the client used; nil means one with a 15 s timeout. Redirects
	// are never followed, so the key cannot leak to another host.
	HTTP *http.Client
}

// APIError is an answer from retailCRM with success:false or a non-2xx
// status.
type APIError struct {
	StatusCode int
	Msg        string            // errorMsg, or the HTTP status text
	Errors     map[string]string // errors, when given
	RetryAfter time.Duration     // from Retry-After, on 429 and 503
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "retailcrm: %d: %s", e.StatusCode, e.Msg)
	if len(e.Errors) > 0 {
		keys := make([]string, 0, len(e.Errors))
		for k := range e.Errors {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for i, k := range keys {
			sep := "; "
			if i == 0 {
				sep = " ("
			}
			fmt.Fprintf(&b, "%s%s: %s", sep, k, e.Errors[k])
		}
		b.WriteString(")")
	}
	return b.String()
}

// Temporary reports whether retrying later may succeed: retailCRM asked to
// slow down (429 rate limit, 503 overloaded or in maintenance; wait
// RetryAfter if set), or failed on its side (408, 425, any other 5xx but
// 501). Everything else — a refused key, refused input, success:false, a
// redirect — fails the same way every time.
func (e *APIError) Temporary() bool { return partner.TemporaryStatus(e.StatusCode) }

// PartnerMessage is retailCRM's errorMsg with its per-field errors.
func (e *APIError) PartnerMessage() string {
	if len(e.Errors) == 0 {
		return e.Msg
	}
	return e.Msg + " (" + partner.FieldErrors(e.Errors) + ")"
}

// endpoint is the URL of an API path like "/telephony/manager".
func (c *Client) endpoint(path string) (*url.URL, error) {
	base := strings.TrimSpace(c.BaseURL)
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("retailcrm: BaseURL must be an absolute http or https URL")
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, errors.New("retailcrm: BaseURL must not carry a query, fragment or credentials")
	}
	p := strings.TrimRight(u.Path, "/")
	p = strings.TrimSuffix(p, APIPrefix)
	u.Path = strings.TrimRight(p, "/") + APIPrefix + path
	u.RawPath = ""
	return u, nil
}

// newRequest builds an API request: GET with params in the query, or POST
// with params as a urlencoded form (where objects are one JSON field each).
func (c *Client) newRequest(ctx context.Context, method, path string, params url.Values) (*http.Request, error) {
	if c.APIKey == "" {
		return nil, errors.New("retailcrm: APIKey is not set")
	}
	u, err := c.endpoint(path)
	if err != nil {
		return nil, err
	}
	var body io.Reader
	switch method {
	case http.MethodGet:
		u.RawQuery = params.Encode()
	case http.MethodPost:
		body = strings.NewReader(params.Encode())
	default:
		return nil, fmt.Errorf("retailcrm: unsupported method %s", method)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, fmt.Errorf("retailcrm: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", contentTypeForm)
	}
	req.Header.Set(HeaderAPIKey, c.APIKey)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", userAgent)
	return req, nil
}

// do sends an API request and decodes a successful answer into out (which
// may be nil). Failures are *APIError (retailCRM said no), errors wrapping
// ErrBadResponse, or transport errors (context errors stay matchable with
// errors.Is).
func (c *Client) do(ctx context.Context, method, path string, params url.Values, out any) error {
	req, err := c.newRequest(ctx, method, path, params)
	if err != nil {
		return err
	}
	hc := *defaultHTTP
	if c.HTTP != nil {
		hc = *c.HTTP
	}
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := hc.Do(req)
	if err != nil {
		// Its URL's query names a customer's phone number.
		return fmt.Errorf("retailcrm: %s %s: %w", method, path, partner.TransportError(err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBody+1))
	if err != nil {
		return fmt.Errorf("retailcrm: %s %s: reading answer: %w", method, path, err)
	}
	if len(body) > MaxResponseBody {
		return fmt.Errorf("%w: %s %s: answer exceeds %d bytes", ErrBadResponse, method, path, MaxResponseBody)
	}
	env, envErr := decodeEnvelope(body)
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		apiErr := &APIError{StatusCode: resp.StatusCode, Msg: http.StatusText(resp.StatusCode)}
		if resp.StatusCode >= 300 && resp.StatusCode < 400 {
			apiErr.Msg = "unexpected redirect"
		}
		if envErr == nil {
			if env.msg != "" {
				apiErr.Msg = env.msg
			}
			apiErr.Errors = env.errors
		}
		if apiErr.Msg == "" {
			apiErr.Msg = "HTTP status " + strconv.Itoa(resp.StatusCode)
		}
		if apiErr.Temporary() {
			apiErr.RetryAfter = partner.ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now(), partner.MaxRetryAfter)
		}
		return apiErr
	}
	if envErr != nil {
		return fmt.Errorf("%w: %s %s: %v", ErrBadResponse, method, path, envErr)
	}
	if !env.success {
		msg := env.msg
		if msg == "" {
			msg = "success is false"
		}
		return &APIError{StatusCode: resp.StatusCode, Msg: msg, Errors: env.errors}
	}
	if out != nil {
		if err := json.Unmarshal(body, out); err != nil {
			return fmt.Errorf("%w: %s %s: %v", ErrBadResponse, method, path, err)
		}
	}
	return nil
}

type envelope struct {
	success bool
	msg     string
	errors  map[string]string
}

// decodeEnvelope reads success, errorMsg and errors from any retailCRM answer,
// tolerating errors given as an object or a list.
func decodeEnvelope(body []byte) (envelope, error) {
	var raw struct {
		Success  json.RawMessage `json:"success"`
		ErrorMsg json.RawMessage `json:"errorMsg"`
		Errors   json.RawMessage `json:"errors"`
	}
	t := bytes.TrimSpace(body)
	if len(t) == 0 || t[0] != '{' {
		return envelope{}, errors.New("answer is not a JSON object")
	}
	if err := json.Unmarshal(t, &raw); err != nil {
		return envelope{}, fmt.Errorf("answer is not valid JSON: %v", err)
	}
	var env envelope
	switch string(bytes.TrimSpace(raw.Success)) {
	case "true":
		env.success = true
	case "false":
	case "":
		return envelope{}, errors.New(`answer has no "success"`)
	default:
		return envelope{}, errors.New(`"success" is not a boolean`)
	}
	env.msg, _ = flexString(raw.ErrorMsg)
	env.msg = untrusted.Truncate(env.msg, 1024)
	env.errors = decodeErrors(raw.Errors)
	return env, nil
}

func decodeErrors(b json.RawMessage) map[string]string {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return nil
	}
	out := map[string]string{}
	add := func(k string, v json.RawMessage) {
		s, err := flexString(v)
		if err != nil {
			s = string(bytes.TrimSpace(v))
		}
		out[untrusted.Truncate(k, 256)] = untrusted.Truncate(s, 1024)
	}
	switch b[0] {
	case '{':
		var m map[string]json.RawMessage
		if json.Unmarshal(b, &m) == nil {
			for k, v := range m {
				add(k, v)
			}
		}
	case '[':
		var l []json.RawMessage
		if json.Unmarshal(b, &l) == nil {
			for i, v := range l {
				add(strconv.Itoa(i), v)
			}
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// Every failure this client reports with a type of its own is a partner.Error.
var (
	_ partner.Error = (*APIError)(nil)
	_ partner.Error = (*ValidationError)(nil)
)
