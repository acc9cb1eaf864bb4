package retailcrm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/pult/pult/relay/untrusted"
)

// FlexString decodes a JSON string or number as a string: retailCRM (and the
// PBXes imitating it) send ids and extension codes either way. null decodes
// to "". Booleans, arrays and objects are refused.
type FlexString string

// UnmarshalJSON implements json.Unmarshaler.
func (s *FlexString) UnmarshalJSON(b []byte) error {
	v, err := flexString(b)
	if err != nil {
		return err
	}
	*s = FlexString(v)
	return nil
}

// flexString reads a JSON string or number; null and absence are "".
func flexString(b []byte) (string, error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || string(b) == "null" {
		return "", nil
	}
	switch c := b[0]; {
	case c == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return "", err
		}
		return s, nil
	case c == '-' || '0' <= c && c <= '9':
		var n json.Number
		if err := json.Unmarshal(b, &n); err != nil {
			return "", err
		}
		return n.String(), nil
	}
	return "", fmt.Errorf("want a string or a number, got %s", untrusted.JSONKind(b))
}

// jsonString reads a JSON string (null and absence are ""); integer numbers
// too when numbers is set (ids, codes and phones arrive as both).
func jsonString(field string, b json.RawMessage, numbers bool) (string, error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || string(b) == "null" {
		return "", nil
	}
	if b[0] != '"' && !numbers {
		return "", invalid(field, "must be a string, not %s", untrusted.JSONKind(b))
	}
	s, err := flexString(b)
	if err != nil {
		return "", invalid(field, "must be a string or a number, not %s", untrusted.JSONKind(b))
	}
	if b[0] != '"' && strings.ContainsAny(s, ".eE") {
		return "", invalid(field, "must be a string or an integer, not %s", s)
	}
	return s, nil
}

// jsonList reads a list of strings or numbers; a single string or number is a
// list of one, null, absence and "" an empty list.
func jsonList(field string, b json.RawMessage, max int) ([]string, error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || string(b) == "null" {
		return nil, nil
	}
	if b[0] != '[' {
		s, err := jsonString(field, b, true)
		if err != nil || s == "" {
			return nil, err
		}
		return []string{s}, nil
	}
	var raw []json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, invalid(field, "must be an array of strings")
	}
	if len(raw) > max {
		return nil, invalid(field, "must have at most %d elements", max)
	}
	if len(raw) == 0 {
		return nil, nil
	}
	out := make([]string, len(raw))
	for i, r := range raw {
		ef := fmt.Sprintf("%s[%d]", field, i)
		if string(bytes.TrimSpace(r)) == "null" {
			return nil, invalid(ef, "must not be null")
		}
		s, err := jsonString(ef, r, true)
		if err != nil {
			return nil, err
		}
		out[i] = s
	}
	return out, nil
}

// jsonInt reads a non-negative integer given as a JSON number or a numeric
// string; null, absence and "" are 0.
func jsonInt(field string, b json.RawMessage, max int) (int, error) {
	s, err := jsonString(field, b, true)
	if err != nil {
		return 0, invalid(field, "must be an integer")
	}
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, invalid(field, "must be an integer, not %q", untrusted.Truncate(s, 32))
	}
	if n < 0 || n > int64(max) {
		return 0, invalid(field, "must be between 0 and %d", max)
	}
	return int(n), nil
}

// idValue is how we send an id: a JSON number when it is one, else a string.
func idValue(s string) any {
	if s != "" && len(s) <= 18 && strings.Trim(s, "0123456789") == "" && (s == "0" || s[0] != '0') {
		return json.Number(s)
	}
	return s
}
