package transcript

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

// FuzzParseText feeds arbitrary pasted text. ParseText must not panic, must
// refuse with a *FieldError, and what it accepts must pass Validate, have at
// least one operator part, keep parts in line order and encode as JSON. The
// seed corpus is the fixtures plus testdata/fuzz/FuzzParseText.
func FuzzParseText(f *testing.F) {
	for _, name := range []string{"chat_plain.txt", "chat_stamped.txt", "chat_no_speaker.txt"} {
		f.Add(string(fixture(f, name)))
	}
	opts := TextOptions{
		CommunicationID: "fuzz", OperatorRef: "op", Operators: []string{"Анна", "Anna", "Support Bot", "Op"},
		Date: time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC), Location: msk,
	}
	f.Fuzz(func(t *testing.T, text string) {
		tr, err := ParseText(strings.NewReader(text), opts)
		if err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error is %T, not *FieldError: %v", err, err)
			}
			return
		}
		if err := tr.Validate(); err != nil {
			t.Fatalf("accepted an invalid transcript: %v", err)
		}
		operator := false
		for _, p := range tr.Parts {
			operator = operator || p.Author.Type == AuthorOperator
			if Clean(p.Body) != p.Body {
				t.Fatalf("body not clean: %q", p.Body)
			}
		}
		if !operator {
			t.Fatal("accepted a transcript with no operator part")
		}
		if _, err := json.Marshal(tr); err != nil {
			t.Fatalf("cannot encode: %v", err)
		}
	})
}

// FuzzClean checks that Clean's output is a valid body or empty, and that
// cleaning twice changes nothing.
func FuzzClean(f *testing.F) {
	for _, s := range []string{"", "a\r\n\r\n\r\nb", " \x00 ", "x\xff\u0085y\t"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c := Clean(s)
		if Clean(c) != c {
			t.Fatalf("Clean is not idempotent: %q → %q → %q", s, c, Clean(c))
		}
		if c != "" && len(c) <= MaxBodyBytes {
			if err := checkBody("body", c); err != nil {
				t.Fatalf("Clean(%q) = %q: %v", s, c, err)
			}
		}
	})
}
