// Package transcript is the partner-neutral chat transcript the relay
// forwards to the QA platform. Chat sources (the Smartsupp export hook, an
// operator pasting a conversation) produce a [Transcript]; the QA side maps
// it onto its own wire format. Nothing here knows any partner.
//
// A Transcript is plain data; [Transcript.Validate] checks it against the
// limits below and names the offending field by its JSON name
// ("communication_id", "parts[3].body") in a *[FieldError]. [ParseText]
// reads the plain "Name: message" text operators paste.
//
// Times are UTC. Bodies are plain text: valid UTF-8, lines separated by
// "\n", no control characters other than newline and tab ([Clean] makes any
// string so).
package transcript

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Sources: who produced a transcript.
const (
	SourceSmartsupp = "smartsupp" // the Smartsupp chat export hook
	SourceOperator  = "operator"  // pasted or imported by an operator
)

// Status is how a conversation ended.
type Status string

// Statuses.
const (
	StatusClosed  Status = "closed"  // a conversation that took place and ended
	StatusMissed  Status = "missed"  // the client wrote and nobody on our side took it up
	StatusOffline Status = "offline" // the client left a message while nobody was online
)

// AuthorType says which side wrote a part.
type AuthorType string

// Author types.
const (
	AuthorClient   AuthorType = "client"
	AuthorOperator AuthorType = "operator"
	// AuthorBot is text our side sent automatically (a chat widget's
	// proactive trigger, a chatbot): the client saw it, no operator wrote it.
	// A QA platform that knows only clients and operators may show it as the
	// operator's, or drop it.
	AuthorBot AuthorType = "bot"
)

// Limits enforced by Validate.
const (
	MaxParts      = 5000     // parts in one transcript
	MaxBodyBytes  = 64 << 10 // bytes of one part's body
	MaxTotalBytes = 2 << 20  // bytes of all bodies together
	MaxIDLen      = 255      // characters of any id or reference
	MaxNameLen    = 255      // characters of a name or the title
	MaxEmailLen   = 254
	MaxPhoneLen   = 64
	MaxSourceLen  = 32
)

// Transcript is one chat conversation.
type Transcript struct {
	// CommunicationID identifies the conversation for the QA platform; sending
	// the same id again replaces the earlier copy. Required.
	CommunicationID string `json:"communication_id"`
	// Source is SourceSmartsupp, SourceOperator or another lower-case word.
	Source string `json:"source"`
	Title  string `json:"title,omitempty"`
	Status Status `json:"status"`
	// OperatorRef says who handled the conversation, in the source's terms
	// (a Smartsupp agent id, a pult operator id); the relay resolves it to
	// the QA platform's operator. It may be empty (a missed chat nobody
	// joined): the relay then needs a fallback.
	OperatorRef string    `json:"operator_ref,omitempty"`
	Client      Client    `json:"client,omitzero"`
	StartedAt   time.Time `json:"started_at,omitzero"`
	EndedAt     time.Time `json:"ended_at,omitzero"`
	Parts       []Part    `json:"parts"`
}

// Client is the other party, as far as the source knows it. All optional.
type Client struct {
	ID    string `json:"id,omitempty"`
	Name  string `json:"name,omitempty"`
	Email string `json:"email,omitempty"`
	Phone string `json:"phone,omitempty"` // as the source wrote it; not normalised
}

// Part is one message.
type Part struct {
	// ID is unique within the transcript and stable when the same
	// conversation is sent again.
	ID     string    `json:"id"`
	Author Author    `json:"author"`
	Body   string    `json:"body"`
	At     time.Time `json:"at,omitzero"` // zero when the source gave no time
}

// Author is who wrote a part.
type Author struct {
	Type AuthorType `json:"type"`
	ID   string     `json:"id,omitempty"` // in the source's terms; may be empty
	Name string     `json:"name,omitempty"`
}

// ErrTooLarge is wrapped by the *FieldError returned for input over a size
// limit.
var ErrTooLarge = errors.New("too large")

// FieldError is a transcript, or a text, that cannot be used. Field is the
// JSON name of the offending field ("parts[3].body"), or "text" and
// "operators" for ParseText's input.
type FieldError struct {
	Field  string
	Reason string
	err    error
}

func (e *FieldError) Error() string { return "transcript: " + e.Field + ": " + e.Reason }

// Unwrap returns ErrTooLarge for size refusals, else nil.
func (e *FieldError) Unwrap() error { return e.err }

func invalid(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// Validate checks t: a communication id, a source and a known status;
// between 1 and MaxParts parts, each with a unique id, a known author type
// and a non-blank body of at most MaxBodyBytes; at most MaxTotalBytes of
// bodies in all; bounded single-line ids and names; times between years 1970
// and 9999, and EndedAt not before StartedAt. It returns a *FieldError.
func (t Transcript) Validate() error {
	if err := checkLine("communication_id", t.CommunicationID, MaxIDLen, true); err != nil {
		return err
	}
	if err := checkSource(t.Source); err != nil {
		return err
	}
	if err := checkLine("title", t.Title, MaxNameLen, false); err != nil {
		return err
	}
	switch t.Status {
	case StatusClosed, StatusMissed, StatusOffline:
	case "":
		return invalid("status", "is required")
	default:
		return invalid("status", "must be %q, %q or %q", StatusClosed, StatusMissed, StatusOffline)
	}
	for _, c := range []struct {
		field, value string
		max          int
	}{
		{"operator_ref", t.OperatorRef, MaxIDLen},
		{"client.id", t.Client.ID, MaxIDLen},
		{"client.name", t.Client.Name, MaxNameLen},
		{"client.email", t.Client.Email, MaxEmailLen},
		{"client.phone", t.Client.Phone, MaxPhoneLen},
	} {
		if err := checkLine(c.field, c.value, c.max, false); err != nil {
			return err
		}
	}
	if err := checkTime("started_at", t.StartedAt); err != nil {
		return err
	}
	if err := checkTime("ended_at", t.EndedAt); err != nil {
		return err
	}
	if !t.StartedAt.IsZero() && !t.EndedAt.IsZero() && t.EndedAt.Before(t.StartedAt) {
		return invalid("ended_at", "must not be before started_at")
	}
	switch {
	case len(t.Parts) == 0:
		return invalid("parts", "must not be empty")
	case len(t.Parts) > MaxParts:
		return invalid("parts", "must have at most %d elements, not %d", MaxParts, len(t.Parts))
	}
	ids := make(map[string]int, len(t.Parts))
	total := 0
	for i, p := range t.Parts {
		f := fmt.Sprintf("parts[%d].", i)
		if err := checkLine(f+"id", p.ID, MaxIDLen, true); err != nil {
			return err
		}
		if j, dup := ids[p.ID]; dup {
			return invalid(f+"id", "%q is also the id of parts[%d]", p.ID, j)
		}
		ids[p.ID] = i
		switch p.Author.Type {
		case AuthorClient, AuthorOperator, AuthorBot:
		case "":
			return invalid(f+"author.type", "is required")
		default:
			return invalid(f+"author.type", "must be %q, %q or %q", AuthorClient, AuthorOperator, AuthorBot)
		}
		if err := checkLine(f+"author.id", p.Author.ID, MaxIDLen, false); err != nil {
			return err
		}
		if err := checkLine(f+"author.name", p.Author.Name, MaxNameLen, false); err != nil {
			return err
		}
		if err := checkBody(f+"body", p.Body); err != nil {
			return err
		}
		if err := checkTime(f+"at", p.At); err != nil {
			return err
		}
		total += len(p.Body)
	}
	if total > MaxTotalBytes {
		return &FieldError{Field: "parts", Reason: fmt.Sprintf("bodies must total at most %d bytes, not %d", MaxTotalBytes, total), err: ErrTooLarge}
	}
	return nil
}

func checkSource(s string) error {
	if s == "" {
		return invalid("source", "is required")
	}
	if len(s) > MaxSourceLen {
		return invalid("source", "must be at most %d characters", MaxSourceLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return invalid("source", "must contain only a-z, 0-9, '-' and '_'")
		}
	}
	return nil
}

// checkLine enforces a single-line text: valid UTF-8, no control
// characters, no surrounding spaces, at most max characters.
func checkLine(field, s string, max int, required bool) error {
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
	case strings.TrimSpace(s) != s:
		return invalid(field, "must not begin or end with spaces")
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return invalid(field, "must not contain control characters")
		}
	}
	return nil
}

func checkBody(field, s string) error {
	switch {
	case strings.TrimSpace(s) == "":
		return invalid(field, "must not be blank")
	case len(s) > MaxBodyBytes:
		return &FieldError{Field: field, Reason: fmt.Sprintf("must be at most %d bytes, not %d", MaxBodyBytes, len(s)), err: ErrTooLarge}
	case !utf8.ValidString(s):
		return invalid(field, "must be valid UTF-8")
	}
	for _, r := range s {
		if r != '\n' && r != '\t' && unicode.IsControl(r) {
			return invalid(field, "must not contain control characters other than newline and tab")
		}
	}
	return nil
}

func checkTime(field string, t time.Time) error {
	if t.IsZero() {
		return nil
	}
	if y := t.UTC().Year(); y < 1970 || y > 9999 {
		return invalid(field, "must be between years 1970 and 9999, not %d", y)
	}
	return nil
}

// Clean makes s a valid part body: invalid UTF-8 becomes U+FFFD, "\r\n"
// and "\r" become "\n", control characters other than newline and tab are
// dropped, spaces at the ends of lines are trimmed, runs of blank lines
// become one, and leading and trailing blank space goes. A blank s gives "".
func Clean(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = strings.ReplaceAll(s, "\r", "\n")
	s = strings.Map(func(r rune) rune {
		if r != '\n' && r != '\t' && unicode.IsControl(r) {
			return -1
		}
		return r
	}, s)
	lines := strings.Split(s, "\n")
	out := lines[:0]
	blank := false
	for _, l := range lines {
		l = strings.TrimRightFunc(l, unicode.IsSpace)
		if l == "" {
			blank = len(out) > 0
			continue
		}
		if blank {
			out = append(out, "")
			blank = false
		}
		out = append(out, l)
	}
	return strings.TrimSpace(strings.Join(out, "\n"))
}
