// Package untrusted makes text and JSON values from outside (partners'
// webhooks and answers, pasted transcripts) fit to store, log and show:
// one line, bounded, and described in plain words when they are not what
// was expected.
package untrusted

import (
	"bytes"
	"strings"
	"unicode"
	"unicode/utf8"
)

// OneLine folds runs of spaces and drops control characters; invalid UTF-8
// becomes U+FFFD.
func OneLine(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) {
			return ' '
		}
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, s)
	return strings.Join(strings.Fields(s), " ")
}

// Clip cuts s to at most max characters, without a space left at the cut.
func Clip(s string, max int) string {
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	n := 0
	for i := range s {
		if n == max {
			return strings.TrimSpace(s[:i])
		}
		n++
	}
	return s
}

// Truncate cuts s to at most n bytes, at a character boundary, and marks
// the cut with "…".
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// JSONKind names the kind of a JSON value, for an error saying what came
// instead of what was expected: "an object", "null", "nothing"…
func JSONKind(b []byte) string {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return "nothing"
	}
	switch b[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}
