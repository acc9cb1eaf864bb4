package transcript

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/pult/pult/relay/untrusted"
)

// MaxText is the most ParseText reads: 1 MiB.
const MaxText = 1 << 20

// maxSpeakerLen and maxSpeakerWords bound what may stand before the colon of
// a "Name: message" line; longer prefixes are text ("Our address for the
// delivery: …").
const (
	maxSpeakerLen   = 64
	maxSpeakerWords = 4
)

// TextOptions tell ParseText what the text cannot.
type TextOptions struct {
	// CommunicationID becomes the transcript's id. Required.
	CommunicationID string
	// OperatorRef is the pult operator who submits the text: it becomes
	// the transcript's OperatorRef and the author id of operator parts.
	OperatorRef string
	// Operators are the display names the operator side appears under in
	// the text ("Anna", "Anna Smirnova", "Support"). At least one is
	// required. Names match whole, ignoring case, runs of spaces and the
	// difference between "ё" and "е".
	Operators []string
	// Client is the client's display name, when known. When empty, the
	// first speaker who is not an operator is the client.
	Client string
	// Date is the day for stamps without a date ("[12:03]"), read in
	// Location. When zero, such parts get no time.
	Date time.Time
	// Location is where stamps without a zone were written; nil means UTC.
	Location *time.Location
}

// ParseText reads a conversation an operator pasted: at most MaxText bytes
// of lines such as
//
//	Anna: Hello! How can I help?
//	[12:03] Ivan Petrov: My order has not arrived.
//	2024-05-01 12:04:05 Anna: Let me check.
//	It left the warehouse yesterday.
//
// A line starts a new message when it is "Name: message" (an optional time
// stamp first, then a name of at most 64 characters and 4 words, a colon,
// then a space or the end of the line) and the name is one of
// opts.Operators (an operator part), or the client's name (a client part).
// "Name:message" without the space counts only for a name already known
// (an operator's, or the client's once established), so "http://…" and
// "12:30" stay text.
// The client is opts.Client, or else the first speaker who is not an
// operator; another name later ("Address: 5 Main St") does not start a
// message. Every other line, including blank ones, continues the message
// before it; runs of blank lines become one blank line and blank lines at
// the ends of a message go (see Clean). Messages left empty are dropped.
//
// Stamps are optional: "[12:03]", "12:03:04", "(2024-05-01 12:03)",
// "2024-05-01T12:03:04", "01.05.2024 12:03", with brackets or not, followed
// by a space. A stamp with a date is read in opts.Location; a stamp with
// only a time takes the date of the last dated stamp, else opts.Date (else
// the part has no time), and moves to the next day when the clock jumps
// back more than 12 hours (a conversation past midnight).
//
// The transcript has Source SourceOperator, Status StatusClosed, the
// client's name as written, StartedAt and EndedAt from the earliest and
// latest stamps, and parts numbered "1", "2", … in order. It is validated
// before it is returned; a failure is a *FieldError: "text" for the text
// (too large, wrapping ErrTooLarge; not starting with a speaker; no
// message), "operators" for the names (none given; none found in the
// text), or the transcript field ("parts[2].body") with the line the
// message starts on. A text that does not start with a speaker is refused
// rather than guessed.
func ParseText(r io.Reader, opts TextOptions) (Transcript, error) {
	ops := map[string]bool{}
	for _, o := range opts.Operators {
		if k := nameKey(o); k != "" {
			ops[k] = true
		}
	}
	if len(ops) == 0 {
		return Transcript{}, invalid("operators", "at least one operator name is required")
	}
	if r == nil {
		return Transcript{}, invalid("text", "contains no messages")
	}
	data, err := io.ReadAll(io.LimitReader(r, MaxText+1))
	if err != nil {
		return Transcript{}, fmt.Errorf("transcript: read text: %w", err)
	}
	if len(data) > MaxText {
		return Transcript{}, &FieldError{Field: "text", Reason: fmt.Sprintf("must be at most %d bytes", MaxText), err: ErrTooLarge}
	}
	loc := opts.Location
	if loc == nil {
		loc = time.UTC
	}
	text := strings.ToValidUTF8(string(data), "\uFFFD")
	text = strings.TrimPrefix(text, "\uFEFF")
	text = strings.ReplaceAll(text, "\r\n", "\n")
	text = strings.ReplaceAll(text, "\r", "\n")

	p := textParser{ops: ops, loc: loc, clientKey: nameKey(opts.Client), clientName: untrusted.OneLine(opts.Client)}
	if !opts.Date.IsZero() {
		d := opts.Date.In(loc)
		p.day = civilDate{d.Year(), d.Month(), d.Day()}
	}
	for n, line := range strings.Split(text, "\n") {
		if err := p.line(n+1, line); err != nil {
			return Transcript{}, err
		}
	}

	t := Transcript{
		CommunicationID: opts.CommunicationID,
		Source:          SourceOperator,
		Status:          StatusClosed,
		OperatorRef:     opts.OperatorRef,
		Client:          Client{Name: p.clientName},
	}
	var starts []int
	fromOperator := false
	for _, m := range p.msgs {
		body := Clean(strings.Join(m.lines, "\n"))
		if body == "" {
			continue
		}
		part := Part{ID: strconv.Itoa(len(t.Parts) + 1), Author: m.author, Body: body, At: m.at}
		if part.Author.Type == AuthorOperator {
			part.Author.ID = opts.OperatorRef
			fromOperator = true
		}
		t.Parts = append(t.Parts, part)
		starts = append(starts, m.start)
		if !m.at.IsZero() {
			if t.StartedAt.IsZero() || m.at.Before(t.StartedAt) {
				t.StartedAt = m.at
			}
			if m.at.After(t.EndedAt) {
				t.EndedAt = m.at
			}
		}
	}
	switch {
	case len(t.Parts) == 0:
		return Transcript{}, invalid("text", "contains no messages")
	case !fromOperator:
		return Transcript{}, invalid("operators", "no message is from %s (speakers found: %s)", quoteList(opts.Operators, 5), quoteList(p.speakers, 5))
	}
	if err := t.Validate(); err != nil {
		if fe, ok := err.(*FieldError); ok {
			if i, ok := partIndex(fe.Field); ok && i < len(starts) {
				fe.Reason += fmt.Sprintf(" (the message on line %d)", starts[i])
			}
		}
		return Transcript{}, err
	}
	return t, nil
}

type civilDate struct {
	y int
	m time.Month
	d int
}

type message struct {
	start  int // line number
	author Author
	at     time.Time
	lines  []string
}

type textParser struct {
	ops        map[string]bool
	loc        *time.Location
	clientKey  string // nameKey of the client, "" until known
	clientName string // as first written
	speakers   []string

	day      civilDate // for time-only stamps; zero when unknown
	dayShift int
	last     time.Time // the latest time-only stamp, for midnight

	msgs []message
}

func (p *textParser) line(n int, line string) error {
	st, rest, stamped := parseStamp(strings.TrimLeftFunc(line, unicode.IsSpace))
	if !stamped {
		rest = strings.TrimLeftFunc(line, unicode.IsSpace)
	}
	if name, body, spaced, ok := splitSpeaker(rest); ok {
		k := nameKey(name)
		typ := AuthorType("")
		switch {
		case p.ops[k]:
			typ = AuthorOperator
		case !spaced && p.clientKey != k:
			// "Name:text" only for names already known
		case p.clientKey == "" || p.clientKey == k:
			typ = AuthorClient
			if p.clientKey == "" {
				p.clientKey = k
			}
			if p.clientName == "" {
				p.clientName = name
			}
		}
		if typ != "" {
			if len(p.speakers) < 10 && !containsKey(p.speakers, k) {
				p.speakers = append(p.speakers, name)
			}
			var at time.Time
			if stamped {
				at = p.time(st)
			}
			p.msgs = append(p.msgs, message{start: n, author: Author{Type: typ, Name: name}, at: at, lines: []string{body}})
			return nil
		}
	}
	if len(p.msgs) == 0 {
		if strings.TrimSpace(line) == "" {
			return nil
		}
		if name, _, spaced, ok := splitSpeaker(rest); ok && spaced {
			return invalid("text", "line %d: %q is neither an operator nor the client %q", n, name, p.clientName)
		}
		return invalid("text", "line %d: want \"Name: message\" (a speaker's name, a colon and a space)", n)
	}
	m := &p.msgs[len(p.msgs)-1]
	m.lines = append(m.lines, line)
	return nil
}

// time turns a stamp into an instant; zero when it has no date and none is
// known.
func (p *textParser) time(st stamp) time.Time {
	if st.hasDate {
		p.day = st.date
		p.dayShift = 0
		p.last = time.Date(st.date.y, st.date.m, st.date.d, st.h, st.min, st.s, 0, p.loc)
		return p.last.UTC()
	}
	if p.day == (civilDate{}) {
		return time.Time{}
	}
	at := time.Date(p.day.y, p.day.m, p.day.d+p.dayShift, st.h, st.min, st.s, 0, p.loc)
	if !p.last.IsZero() && p.last.Sub(at) > 12*time.Hour {
		p.dayShift++
		at = at.AddDate(0, 0, 1)
	}
	p.last = at
	return at.UTC()
}

// splitSpeaker splits "Name: message" into its name and message; spaced
// is false for "Name:message", which only known names may use.
func splitSpeaker(s string) (name, body string, spaced, ok bool) {
	i := strings.IndexByte(s, ':')
	if i <= 0 {
		return "", "", false, false
	}
	rest := s[i+1:]
	spaced = rest == "" || rest[0] == ' ' || rest[0] == '\t'
	name = untrusted.OneLine(s[:i])
	if !looksLikeName(name) {
		return "", "", false, false
	}
	return name, strings.TrimLeft(rest, " \t"), spaced, true
}

func looksLikeName(s string) bool {
	if s == "" || utf8.RuneCountInString(s) > maxSpeakerLen || strings.Count(s, " ")+1 > maxSpeakerWords {
		return false
	}
	if r, _ := utf8.DecodeRuneInString(s); !unicode.IsLetter(r) && !unicode.IsDigit(r) {
		return false // "- Price: 500", "* Note: …"
	}
	letter := false
	for _, r := range s {
		switch {
		case unicode.IsLetter(r):
			letter = true
		case r == '?' || r == '!' || r == '/' || r == '"' || r == '«' || r == '»':
			return false
		}
	}
	return letter
}

// nameKey is how names compare: spaces folded, case and ё ignored.
func nameKey(s string) string {
	s = strings.ToLower(untrusted.OneLine(s))
	return strings.ReplaceAll(s, "ё", "е")
}

func containsKey(names []string, k string) bool {
	for _, n := range names {
		if nameKey(n) == k {
			return true
		}
	}
	return false
}

func quoteList(ss []string, max int) string {
	var q []string
	for _, s := range ss {
		if s = untrusted.OneLine(s); s == "" {
			continue
		}
		if len(q) == max {
			q = append(q, "…")
			break
		}
		q = append(q, strconv.Quote(s))
	}
	if len(q) == 0 {
		return "none"
	}
	return strings.Join(q, ", ")
}

// partIndex reads i from a field named "parts[i]…".
func partIndex(field string) (int, bool) {
	rest, ok := strings.CutPrefix(field, "parts[")
	if !ok {
		return 0, false
	}
	end := strings.IndexByte(rest, ']')
	if end < 0 {
		return 0, false
	}
	i, err := strconv.Atoi(rest[:end])
	return i, err == nil && i >= 0
}

// stamp is a time stamp at the start of a line.
type stamp struct {
	hasDate   bool
	date      civilDate
	h, min, s int
}

// parseStamp reads an optional "[date time]" or "date time" stamp (date
// optional) at the start of s and returns what follows it, spaces and a
// dash separator skipped. It needs a space (or the end) after the stamp.
func parseStamp(s string) (st stamp, rest string, ok bool) {
	var closer byte
	if s != "" && (s[0] == '[' || s[0] == '(') {
		closer = ']'
		if s[0] == '(' {
			closer = ')'
		}
		s = s[1:]
	}
	if d, n, ok := scanDate(s); ok {
		st.hasDate, st.date = true, d
		s = s[n:]
		switch {
		case strings.HasPrefix(s, ", "):
			s = s[2:]
		case s != "" && (s[0] == ' ' || s[0] == 'T'):
			s = s[1:]
		default:
			return stamp{}, "", false
		}
	}
	h, m, sec, n, ok := scanClock(s)
	if !ok {
		return stamp{}, "", false
	}
	st.h, st.min, st.s = h, m, sec
	s = s[n:]
	if closer != 0 {
		if s == "" || s[0] != closer {
			return stamp{}, "", false
		}
		s = s[1:]
	}
	if s != "" && s[0] != ' ' && s[0] != '\t' {
		return stamp{}, "", false
	}
	s = strings.TrimLeft(s, " \t")
	for _, dash := range []string{"- ", "– ", "— "} {
		if strings.HasPrefix(s, dash) {
			s = strings.TrimLeft(s[len(dash):], " \t")
			break
		}
	}
	return st, s, true
}

// scanDate reads "2006-01-02" or "02.01.2006".
func scanDate(s string) (civilDate, int, bool) {
	var y, m, d int
	switch {
	case len(s) >= 10 && s[4] == '-' && s[7] == '-':
		y, m, d = atoi(s[0:4]), atoi(s[5:7]), atoi(s[8:10])
	case len(s) >= 10 && s[2] == '.' && s[5] == '.':
		d, m, y = atoi(s[0:2]), atoi(s[3:5]), atoi(s[6:10])
	default:
		return civilDate{}, 0, false
	}
	if y < 1970 || y > 9999 || m < 1 || m > 12 || d < 1 {
		return civilDate{}, 0, false
	}
	if t := time.Date(y, time.Month(m), d, 0, 0, 0, 0, time.UTC); t.Day() != d {
		return civilDate{}, 0, false // 31.02
	}
	return civilDate{y, time.Month(m), d}, 10, true
}

// scanClock reads "15:04" or "15:04:05" (the hour may have one digit).
func scanClock(s string) (h, m, sec, n int, ok bool) {
	i := 0
	for i < len(s) && i < 2 && isDigit(s[i]) {
		i++
	}
	if i == 0 || i >= len(s) || s[i] != ':' {
		return 0, 0, 0, 0, false
	}
	h = atoi(s[:i])
	if len(s) < i+3 {
		return 0, 0, 0, 0, false
	}
	m = atoi(s[i+1 : i+3])
	n = i + 3
	if len(s) >= n+3 && s[n] == ':' {
		sec = atoi(s[n+1 : n+3])
		n += 3
	}
	if h < 0 || h > 23 || m < 0 || m > 59 || sec < 0 || sec > 59 {
		return 0, 0, 0, 0, false
	}
	if n < len(s) && isDigit(s[n]) {
		return 0, 0, 0, 0, false // "12:345"
	}
	return h, m, sec, n, true
}

// atoi reads a run of ASCII digits; -1 when s has anything else.
func atoi(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return -1
		}
		n = n*10 + int(s[i]-'0')
	}
	return n
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
