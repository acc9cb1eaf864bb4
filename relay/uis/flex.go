package uis

import (
	"bytes"
	"encoding/json"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/pult/pult/relay/untrusted"
)

// reader reads the body's fields tolerantly and remembers which present
// fields it could not use.
type reader struct {
	fields  map[string]json.RawMessage
	loc     *time.Location
	ignored []string
}

func (r *reader) ignore(field string) {
	switch {
	case len(r.ignored) < MaxIgnored:
		r.ignored = append(r.ignored, field)
	case len(r.ignored) == MaxIgnored:
		r.ignored = append(r.ignored, "…")
	}
}

// present returns the field's raw value; given is false when it is absent
// or null.
func (r *reader) present(field string) (json.RawMessage, bool) {
	b := bytes.TrimSpace(r.fields[field])
	if len(b) == 0 || string(b) == "null" {
		return nil, false
	}
	return b, true
}

// value reads one value as text: a string, a number as written, a boolean
// as "true" or "false", or the first non-empty value of an array; null,
// absence and an unsubstituted placeholder are "". ok is false for objects
// and anything else unusable.
func value(b json.RawMessage) (s string, ok bool) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return "", true
	}
	switch c := b[0]; {
	case c == 'n' && string(b) == "null":
		return "", true
	case c == 't' && string(b) == "true", c == 'f' && string(b) == "false":
		return string(b), true
	case c == '"':
		if err := json.Unmarshal(b, &s); err != nil {
			return "", false
		}
		if isPlaceholder(s) || strings.EqualFold(strings.TrimSpace(s), "null") {
			return "", true // left unsubstituted, or a null substituted into quotes
		}
		return s, true
	case c == '-' || '0' <= c && c <= '9':
		var n json.Number
		if err := json.Unmarshal(b, &n); err != nil {
			return "", false
		}
		return n.String(), true
	case c == '[':
		var items []json.RawMessage
		if err := json.Unmarshal(b, &items); err != nil {
			return "", false
		}
		for _, it := range items {
			if t := bytes.TrimSpace(it); len(t) > 0 && (t[0] == '[' || t[0] == '{') {
				continue // one level of arrays only
			}
			if s, ok := value(it); ok && strings.TrimSpace(s) != "" {
				return s, true
			}
		}
		return "", true
	}
	return "", false
}

// isPlaceholder reports whether s is a template variable UIS did not
// substitute, "{{name}}".
func isPlaceholder(s string) bool {
	s = strings.TrimSpace(s)
	return strings.HasPrefix(s, placeholderL) && strings.HasSuffix(s, placeholderR)
}

// required reads call_session_id, which cannot be done without.
func (r *reader) required(field string) (string, error) {
	raw := r.fields[field]
	s, ok := value(raw)
	if !ok {
		return "", invalid(field, "must be a string or an integer, not %s", untrusted.JSONKind(raw))
	}
	s = strings.TrimSpace(s)
	if s == "" {
		if t := bytes.TrimSpace(raw); len(t) > 0 && t[0] == '"' {
			var str string
			if json.Unmarshal(t, &str) == nil && isPlaceholder(str) {
				return "", invalid(field, "is required; UIS left the placeholder %s unsubstituted", untrusted.Clip(untrusted.OneLine(str), 64))
			}
		}
		return "", invalid(field, "is required")
	}
	if _, err := strconv.ParseFloat(s, 64); err == nil && strings.ContainsAny(s, ".eEnN") {
		return "", invalid(field, "must be a string or an integer, not %s", untrusted.Clip(s, 32))
	}
	if s == "true" || s == "false" {
		return "", invalid(field, "must be a string or an integer, not a boolean")
	}
	if err := checkID(field, s); err != nil {
		return "", err
	}
	return s, nil
}

// text reads a single-line text, cut to max characters.
func (r *reader) text(field string, max int) string {
	raw, given := r.present(field)
	if !given {
		return ""
	}
	s, ok := value(raw)
	if !ok {
		r.ignore(field)
		return ""
	}
	return untrusted.Clip(untrusted.OneLine(s), max)
}

// id reads an identifier; one that is too long or has spaces is ignored.
func (r *reader) id(field string) string {
	s := r.text(field, MaxIDLen+1)
	if s != "" && checkID(field, s) != nil {
		r.ignore(field)
		return ""
	}
	return s
}

// phone reads a phone number as written; one too long is ignored.
func (r *reader) phone(field string) string {
	s := r.text(field, MaxPhoneLen+1)
	if utf8.RuneCountInString(s) > MaxPhoneLen {
		r.ignore(field)
		return ""
	}
	return s
}

// list reads a list: an array of values, a single value, or a string
// holding a JSON array ("[1,2]"). A single string is split at commas and
// semicolons ("a,b", as a quoted template gives), and at spaces too with
// spaces set ("101 102"). Empty elements are dropped, at most MaxList kept.
func (r *reader) list(field string, spaces bool) []string {
	raw, given := r.present(field)
	if !given {
		return nil
	}
	var items []json.RawMessage
	if raw[0] == '"' {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			if t := strings.TrimSpace(s); strings.HasPrefix(t, "[") && json.Unmarshal([]byte(t), &items) == nil {
				raw = json.RawMessage(t)
			}
		}
	}
	single := raw[0] != '['
	if single {
		items = []json.RawMessage{raw}
	} else if items == nil && json.Unmarshal(raw, &items) != nil {
		r.ignore(field)
		return nil
	}
	var out []string
	bad := false
	for _, it := range items {
		if t := bytes.TrimSpace(it); len(t) > 0 && (t[0] == '[' || t[0] == '{') {
			bad = true
			continue
		}
		s, ok := value(it)
		if !ok {
			bad = true
			continue
		}
		pieces := []string{s}
		if single {
			pieces = strings.FieldsFunc(s, func(c rune) bool {
				return c == ',' || c == ';' || spaces && unicode.IsSpace(c)
			})
		}
		for _, p := range pieces {
			if p = untrusted.OneLine(p); p != "" && !isPlaceholder(p) {
				if len(out) == MaxList {
					r.ignore(field)
					return out
				}
				out = append(out, p)
			}
		}
	}
	if bad {
		r.ignore(field)
	}
	return out
}

// ids reads a list of identifiers, dropping any that is not one.
func (r *reader) ids(field string) []string {
	var out []string
	for _, s := range r.list(field, true) {
		if checkID(field, s) != nil {
			r.ignore(field)
			continue
		}
		out = appendNew(out, s)
	}
	return out
}

// urls reads record links, keeping absolute http(s) URLs only.
func (r *reader) urls(field string) []string {
	var out []string
	for _, s := range r.list(field, true) {
		if !isURL(s) {
			r.ignore(field)
			continue
		}
		out = appendNew(out, s)
	}
	return out
}

func isURL(s string) bool {
	if s == "" || len(s) > MaxURLLen || strings.ContainsFunc(s, func(c rune) bool { return unicode.IsSpace(c) || unicode.IsControl(c) }) {
		return false
	}
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

// boolean reads true/false, 1/0, t/f, yes/no and their strings.
func (r *reader) boolean(field string) bool {
	raw, given := r.present(field)
	if !given {
		return false
	}
	s, ok := value(raw)
	if ok {
		switch strings.ToLower(strings.TrimSpace(s)) {
		case "true", "1", "t", "yes":
			return true
		case "false", "0", "f", "no", "":
			return false
		}
	}
	r.ignore(field)
	return false
}

// duration reads seconds (a number, a fraction cut, or a numeric string)
// or "hh:mm:ss" / "mm:ss".
func (r *reader) duration(field string) time.Duration {
	raw, given := r.present(field)
	if !given {
		return 0
	}
	s, ok := value(raw)
	s = strings.TrimSpace(s)
	if !ok {
		r.ignore(field)
		return 0
	}
	if s == "" {
		return 0
	}
	var secs float64
	if strings.Contains(s, ":") {
		parts := strings.Split(s, ":")
		if len(parts) > 3 {
			r.ignore(field)
			return 0
		}
		for _, p := range parts {
			n, err := strconv.ParseUint(p, 10, 32)
			if err != nil {
				r.ignore(field)
				return 0
			}
			secs = secs*60 + float64(n)
		}
	} else {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsNaN(f) {
			r.ignore(field)
			return 0
		}
		secs = math.Trunc(f)
	}
	if secs < 0 || secs > MaxDuration.Seconds() {
		r.ignore(field)
		return 0
	}
	return time.Duration(secs) * time.Second
}

// zoned and local are the time layouts read, with and without a zone.
var (
	zoned = []string{time.RFC3339Nano, "2006-01-02 15:04:05Z07:00", "2006-01-02 15:04:05.999999999Z07:00",
		"2006-01-02 15:04:05 -0700", "2006-01-02 15:04:05 -07:00"}
	local = []string{TimeLayout, "2006-01-02 15:04:05.999999999", "2006-01-02T15:04:05",
		"2006-01-02T15:04:05.999999999", "02.01.2006 15:04:05", "2006-01-02 15:04"}
)

// time reads a time: TimeLayout (and close variants) in the reader's
// location, a time with a zone, or a Unix time in seconds, milliseconds or
// microseconds. The result is UTC; a year outside 1970–9999 is ignored.
func (r *reader) time(field string) time.Time {
	raw, given := r.present(field)
	if !given {
		return time.Time{}
	}
	s, ok := value(raw)
	s = strings.TrimSpace(s)
	if !ok {
		r.ignore(field)
		return time.Time{}
	}
	if s == "" {
		return time.Time{}
	}
	t, ok := parseTime(s, r.loc)
	if !ok || t.Year() < 1970 || t.Year() > 9999 || t.Unix() <= 0 {
		r.ignore(field)
		return time.Time{}
	}
	return t
}

func parseTime(s string, loc *time.Location) (time.Time, bool) {
	if len(s) > 64 {
		return time.Time{}, false
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		if math.IsNaN(f) || f < 1e9 || f >= 1e17 {
			return time.Time{}, false // before September 2001 in seconds: not a Unix time
		}
		switch {
		case f < 1e11:
			return time.Unix(int64(f), 0).UTC(), true
		case f < 1e14:
			return time.UnixMilli(int64(f)).UTC(), true
		default:
			return time.UnixMicro(int64(f)).UTC(), true
		}
	}
	for _, l := range zoned {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC(), true
		}
	}
	for _, l := range local {
		if t, err := time.ParseInLocation(l, s, loc); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

// direction reads direction and checks it against the event.
func (r *reader) direction(event string) (Direction, error) {
	implied := Direction("")
	switch event {
	case EventIncomingCallStarted:
		implied = DirectionIn
	case EventOutgoingCallStarted:
		implied = DirectionOut
	}
	var d Direction
	switch strings.ToLower(r.text("direction", 32)) {
	case "":
	case "in", "incoming", "inbound":
		d = DirectionIn
	case "out", "outgoing", "outbound":
		d = DirectionOut
	default:
		r.ignore("direction")
	}
	switch {
	case d == "":
		return implied, nil
	case implied != "" && d != implied:
		return "", invalid("direction", "%q contradicts the event %s", d, event)
	}
	return d, nil
}

// token reads the channel token from ud_channel_token or token, spaces
// around it trimmed and nothing else changed; both given and different is
// refused.
func (r *reader) token() (string, error) {
	var tok string
	for _, f := range []string{"ud_channel_token", "token"} {
		raw, given := r.present(f)
		if !given {
			continue
		}
		s, ok := value(raw)
		s = strings.TrimSpace(s)
		if !ok || utf8.RuneCountInString(s) > MaxTokenLen || !utf8.ValidString(s) || strings.ContainsFunc(s, unicode.IsControl) {
			r.ignore(f)
			continue
		}
		switch {
		case s == "":
		case tok == "":
			tok = s
		case s != tok:
			return "", invalid("token", "ud_channel_token and token differ")
		}
	}
	return tok, nil
}
