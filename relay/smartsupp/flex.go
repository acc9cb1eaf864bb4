package smartsupp

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/pult/pult/relay/untrusted"
)

// reader reads raw JSON values tolerantly and remembers which present
// fields it could not use.
type reader struct {
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

// isNull reports whether b is absent or JSON null.
func isNull(b json.RawMessage) bool {
	b = bytes.TrimSpace(b)
	return len(b) == 0 || string(b) == "null"
}

// scalar reads a JSON string or number as text (numbers as written); null
// and absence are "", ok is false for anything else.
func scalar(b json.RawMessage) (s string, ok bool) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || string(b) == "null" {
		return "", true
	}
	switch c := b[0]; {
	case c == '"':
		if err := json.Unmarshal(b, &s); err != nil {
			return "", false
		}
		return s, true
	case c == '-' || '0' <= c && c <= '9':
		var n json.Number
		if err := json.Unmarshal(b, &n); err != nil {
			return "", false
		}
		return n.String(), true
	}
	return "", false
}

// text reads a single-line text: a string or a number, spaces folded,
// control characters dropped.
func (r *reader) text(field string, b json.RawMessage) string {
	s, ok := scalar(b)
	if !ok {
		r.ignore(field)
		return ""
	}
	return untrusted.OneLine(s)
}

// body reads a multi-line text (a message), kept as sent.
func (r *reader) body(field string, b json.RawMessage) string {
	s, ok := scalar(b)
	if !ok {
		r.ignore(field)
		return ""
	}
	return s
}

// boolean reads true/false, 1/0 and their strings; null is false.
func (r *reader) boolean(field string, b json.RawMessage) bool {
	b = bytes.TrimSpace(b)
	switch string(b) {
	case "", "null", "false", "0", `"false"`, `"0"`, `""`:
		return false
	case "true", "1", `"true"`, `"1"`:
		return true
	}
	r.ignore(field)
	return false
}

// count reads a non-negative integer given as a number (a fraction is cut)
// or a numeric string; null is 0.
func (r *reader) count(field string, b json.RawMessage) int64 {
	s, ok := scalar(b)
	if !ok {
		r.ignore(field)
		return 0
	}
	n, ok := number(s)
	if !ok || n < 0 || n > maxCount {
		r.ignore(field)
		return 0
	}
	return n
}

// maxCount keeps counts and seconds within what time.Duration and int hold.
const maxCount = 1 << 40

// number reads an integer, or a number with a fraction (cut), of at most
// 2^53 in size; "" is 0.
func number(s string) (int64, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, true
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n, -1<<53 <= n && n <= 1<<53
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || math.Abs(f) > 1<<53 {
		return 0, false
	}
	return int64(f), true
}

// seconds reads a count of seconds as a duration.
func (r *reader) seconds(field string, b json.RawMessage) time.Duration {
	return time.Duration(r.count(field, b)) * time.Second
}

// instant reads a time: milliseconds since the epoch as Smartsupp sends it
// (a number or a numeric string; a value under 1e11 is taken as seconds,
// since no millisecond time after March 1973 is that small), or an RFC 3339
// string. Times outside years 1970–9999 are ignored. The result is UTC.
func (r *reader) instant(field string, b json.RawMessage) time.Time {
	s, ok := scalar(b)
	if !ok {
		r.ignore(field)
		return time.Time{}
	}
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}
	}
	var t time.Time
	if n, ok := number(s); ok {
		if n < 1e11 {
			n *= 1000
		}
		t = time.UnixMilli(n)
	} else if p, err := time.Parse(time.RFC3339Nano, s); err == nil {
		t = p
	} else {
		r.ignore(field)
		return time.Time{}
	}
	if y := t.UTC().Year(); y < 1970 || y > 9999 || t.Unix() <= 0 {
		r.ignore(field)
		return time.Time{}
	}
	return t.UTC()
}

// fit is s when it has at most max characters, else "": ids are not cut.
func fit(s string, max int) string {
	if utf8.RuneCountInString(s) > max {
		return ""
	}
	return s
}
