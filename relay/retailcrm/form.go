package retailcrm

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ErrBodyTooLarge is wrapped by the *ValidationError returned for a request
// body over the limit; a handler answers it with 413.
var ErrBodyTooLarge = errors.New("request body too large")

// ValidationError is an input that retailCRM would refuse. Field names the
// offending parameter the way retailCRM's "errors" object does ("phone",
// "codes[2]", "calls[3].result"); it is empty for problems with the request
// as a whole (body size, content type).
type ValidationError struct {
	Field   string
	Msg     string
	Missing bool // the parameter Field is not in the request at all
	err     error
}

func (e *ValidationError) Error() string {
	if e.Field == "" {
		return e.Msg
	}
	return e.Field + ": " + e.Msg
}

func (e *ValidationError) Unwrap() error { return e.err }

// Errors is e as retailCRM's "errors" object: {Field: Msg}, or nil when the
// error concerns no single field.
func (e *ValidationError) Errors() map[string]string {
	if e.Field == "" {
		return nil
	}
	return map[string]string{e.Field: e.Msg}
}

func invalid(field, format string, args ...any) *ValidationError {
	return &ValidationError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// APIKeyFrom returns the API key a request carries: the X-API-KEY header, else
// the apiKey query parameter, else the apiKey form field if the body has
// already been parsed (by ParseCallEvent, ParseCallsUpload or
// http.Request.ParseForm). It does not read the body itself, so call it after
// parsing when keys in form bodies must be accepted. The caller compares the
// key (in constant time).
func APIKeyFrom(r *http.Request) string {
	if k := strings.TrimSpace(r.Header.Get(HeaderAPIKey)); k != "" {
		return k
	}
	if r.URL != nil {
		if k := strings.TrimSpace(r.URL.Query().Get(ParamAPIKey)); k != "" {
			return k
		}
	}
	if r.PostForm != nil {
		return strings.TrimSpace(r.PostForm.Get(ParamAPIKey))
	}
	return ""
}

// ReadForm parses a POST body the way retailCRM accepts it: urlencoded (the
// Python, Go and PHP v6 clients) or multipart (PHP v5 hands curl an array),
// at most maxBody bytes (DefaultMaxBody when 0). It stores the fields in
// r.PostForm, so APIKeyFrom sees a key sent there, and leaves a re-readable
// copy of the body in r.Body. A body already parsed is not read again. A
// server reads the form first, then authenticates, then decodes the fields
// ([DecodeCallEvent], [DecodeCallsUpload]).
func ReadForm(r *http.Request, maxBody int64) (url.Values, error) {
	if r.PostForm != nil {
		return r.PostForm, nil
	}
	if maxBody <= 0 {
		maxBody = DefaultMaxBody
	}
	tooLarge := &ValidationError{Msg: fmt.Sprintf("request body exceeds %d bytes", maxBody), err: ErrBodyTooLarge}
	if r.ContentLength > maxBody {
		return nil, tooLarge
	}
	var body []byte
	if r.Body != nil && r.Body != http.NoBody {
		b, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
		if err != nil {
			return nil, &ValidationError{Msg: "cannot read request body: " + err.Error(), err: err}
		}
		if int64(len(b)) > maxBody {
			return nil, tooLarge
		}
		body = b
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	vals := url.Values{}
	if len(body) > 0 {
		mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
		switch {
		case err != nil && r.Header.Get("Content-Type") != "":
			return nil, invalid("", "malformed Content-Type: %v", err)
		case mt == contentTypeForm:
			vals, err = url.ParseQuery(string(body))
			if err != nil {
				return nil, invalid("", "malformed form body: %v", err)
			}
		case mt == contentTypeFormMul:
			if params["boundary"] == "" {
				return nil, invalid("", "multipart body without a boundary")
			}
			form, err := multipart.NewReader(bytes.NewReader(body), params["boundary"]).ReadForm(maxBody)
			if err != nil {
				return nil, invalid("", "malformed multipart body: %v", err)
			}
			vals = url.Values(form.Value)
			_ = form.RemoveAll()
		default:
			return nil, invalid("", "Content-Type must be %s or %s", contentTypeForm, contentTypeFormMul)
		}
	}
	r.PostForm = vals
	return vals, nil
}

// formJSON returns the one value of the form field name, which must be there.
func formJSON(form url.Values, name string) (string, error) {
	vs := form[name]
	switch {
	case len(vs) == 0 || strings.TrimSpace(vs[0]) == "":
		return "", &ValidationError{Field: name, Msg: "Parameter '" + name + "' is missing", Missing: true}
	case len(vs) > 1:
		return "", invalid(name, "parameter %q is given %d times", name, len(vs))
	}
	return vs[0], nil
}

// checkText enforces what every string we accept must be: valid UTF-8, no
// control characters, at most max characters, and present when required.
func checkText(field, s string, max int, required bool) error {
	switch {
	case s == "":
		if required {
			return invalid(field, "is required")
		}
		return nil
	case !utf8.ValidString(s):
		return invalid(field, "must be valid UTF-8")
	case utf8.RuneCountInString(s) > max:
		return invalid(field, "must be at most %d characters", max)
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return invalid(field, "must not contain control characters")
		}
	}
	return nil
}

// checkCode enforces an extension code: 1–32 ASCII letters or digits.
func checkCode(field, s string, required bool) error {
	if s == "" {
		if required {
			return invalid(field, "is required")
		}
		return nil
	}
	if len(s) > MaxCodeLen {
		return invalid(field, "must be at most %d characters", MaxCodeLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return invalid(field, "must contain only digits and letters")
		}
	}
	return nil
}

func oneOf(field, s string, allowed ...string) error {
	for _, a := range allowed {
		if s == a {
			return nil
		}
	}
	return invalid(field, "must be one of %s", strings.Join(quoteAll(allowed), ", "))
}

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = fmt.Sprintf("%q", s)
	}
	return out
}
