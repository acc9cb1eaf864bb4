// Package smartsupp reads the body of Smartsupp's chat export hook: Smartsupp
// POSTs every finished chat, missed chat and offline message as JSON to a URL
// of the customer's choosing (a PRO feature, set up by e-mail with Smartsupp
// support). [Parse] reads the body into an [Export]; [Export.Transcript]
// turns it into the partner-neutral transcript.Transcript the relay forwards
// to the QA platform.
//
// The hook carries no signature or token of its own: authenticating it (a
// secret in the URL) and bounding the body are the caller's job.
//
// Parsing is tolerant: ids and counts may be numbers or strings, any field
// may be null or missing, times may be milliseconds (as documented), seconds
// or RFC 3339. A present field that cannot be used is left at its zero value
// and listed in Export.Ignored. Only what makes the export useless is
// refused, with a *[FieldError] naming the field: a body that is not a JSON
// object, no channel id, no messages array.
package smartsupp

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/pult/pult/relay/untrusted"
)

// Message types (messages[].type).
const (
	MessageVisitor = "visitor"
	MessageAgent   = "agent"
	MessageSystem  = "system" // an event such as "agent.join" or "close.visitorClose", not text
)

// Prefixes of messages[].from: "visitor:<id>", "agent:<id>", or "system".
const (
	FromVisitor = "visitor:"
	FromAgent   = "agent:"
	FromSystem  = "system"
)

// Limits.
const (
	MaxMessages           = 10000        // messages in one export; more is refused
	MaxChannelID          = 128          // characters of channel.id
	MaxIgnored            = 32           // entries in Export.Ignored (then "…")
	MaxVariables          = 100          // visitor.variables kept
	MaxPaths              = 100          // paths kept
	CommunicationIDPrefix = "smartsupp-" // + channel.id: the transcript's CommunicationID
	titlePrefix           = "Smartsupp chat "
	truncatedMark         = "\n…"
)

// Export is one chat as the hook sends it.
type Export struct {
	AccountID string
	BeginAt   time.Time // UTC; zero when not given
	EndAt     time.Time // UTC; zero when not given
	Channel   Channel
	Visitor   Visitor
	Paths     []Path
	Messages  []Message
	// Ignored names the fields that were present but unusable and were left
	// at their zero value ("visitor.variables", "messages[3].sentAt"), in
	// order, at most MaxIgnored of them: for the log.
	Ignored []string
}

// Channel is the conversation and Smartsupp's figures about it.
type Channel struct {
	ID            string // required; numeric in practice
	IsChat        bool   // the visitor and an agent both wrote
	IsMissed      bool   // the agent did not answer the visitor's last message
	IsTriggered   bool   // the chat has at least one triggered (automatic) message
	IsOffline     bool   // the visitor left an offline message
	IsCompleted   bool   // closed, every visitor message answered
	IsDropped     bool   // nobody took the chat
	Duration      time.Duration
	AvgResponse   time.Duration
	FirstResponse time.Duration
	MessagesCount int
	WordsCount    int
	Rating        int // 0 when the visitor gave none
	RatingDesc    string
}

// Visitor is the client as Smartsupp knows them.
type Visitor struct {
	ID          string
	Name        string
	Email       string
	Note        string
	Group       string
	IPAddress   string
	City        string
	CountryCode string
	Country     string
	UserAgent   string
	Platform    string
	Referer     string
	// Variables are the site's own visitor variables by key
	// ({"userId": {"label": "User ID", "value": "1234"}}).
	Variables map[string]Variable
}

// Variable is one visitor variable; a number value is kept as written.
type Variable struct {
	Label string
	Value string
}

// Path is a page the visitor saw.
type Path struct {
	URL   string
	Title string
}

// Message is one entry of messages: text from the visitor or an agent, or
// an event (Type MessageSystem). An entry that is not an object is kept as
// an empty Message, so indexes match the body's.
type Message struct {
	Type        string    // MessageVisitor, MessageAgent, MessageSystem, or as sent
	Name        string    // the author's display name; may be empty
	From        string    // "visitor:<id>", "agent:<id>" or "system"
	Content     string    // the text, or the event's name for system messages
	SentAt      time.Time // UTC; zero when not given
	TriggeredBy string    // the trigger's name for automatic messages
}

// AgentID is the agent's id when m is from "agent:<id>", else "".
func (m Message) AgentID() string {
	if id, ok := cutPrefixFold(m.From, FromAgent); ok {
		return strings.TrimSpace(id)
	}
	return ""
}

// FieldError is an export that cannot be used. Field names the offending
// field the way the JSON does ("channel.id", "messages"), or is "body".
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string { return "smartsupp: " + e.Field + ": " + e.Reason }

func invalid(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

type exportJSON struct {
	AccountID json.RawMessage `json:"accountId"`
	BeginAt   json.RawMessage `json:"beginAt"`
	EndAt     json.RawMessage `json:"endAt"`
	Channel   json.RawMessage `json:"channel"`
	Visitor   json.RawMessage `json:"visitor"`
	Paths     json.RawMessage `json:"paths"`
	Messages  json.RawMessage `json:"messages"`
}

type channelJSON struct {
	ID            json.RawMessage `json:"id"`
	IsChat        json.RawMessage `json:"isChat"`
	IsMissed      json.RawMessage `json:"isMissed"`
	IsTriggered   json.RawMessage `json:"isTriggered"`
	IsOffline     json.RawMessage `json:"isOffline"`
	IsCompleted   json.RawMessage `json:"isCompleted"`
	IsDropped     json.RawMessage `json:"isDropped"`
	Duration      json.RawMessage `json:"duration"`
	AvgResponse   json.RawMessage `json:"avgResponse"`
	FirstResponse json.RawMessage `json:"firstResponse"`
	MessagesCount json.RawMessage `json:"messagesCount"`
	WordsCount    json.RawMessage `json:"wordsCount"`
	Rating        json.RawMessage `json:"rating"`
	RatingDesc    json.RawMessage `json:"ratingDesc"`
}

type visitorJSON struct {
	ID          json.RawMessage `json:"id"`
	Name        json.RawMessage `json:"name"`
	Email       json.RawMessage `json:"email"`
	Note        json.RawMessage `json:"note"`
	Group       json.RawMessage `json:"group"`
	IPAddress   json.RawMessage `json:"ipAddress"`
	City        json.RawMessage `json:"city"`
	CountryCode json.RawMessage `json:"countryCode"`
	Country     json.RawMessage `json:"country"`
	UserAgent   json.RawMessage `json:"userAgent"`
	Platform    json.RawMessage `json:"platform"`
	Referer     json.RawMessage `json:"referer"`
	Variables   json.RawMessage `json:"variables"`
}

type pathJSON struct {
	URL   json.RawMessage `json:"url"`
	Title json.RawMessage `json:"title"`
}

type messageJSON struct {
	Type        json.RawMessage `json:"type"`
	Name        json.RawMessage `json:"name"`
	From        json.RawMessage `json:"from"`
	Content     json.RawMessage `json:"content"`
	SentAt      json.RawMessage `json:"sentAt"`
	TriggeredBy json.RawMessage `json:"triggeredBy"`
}

// Parse reads an export hook body. It refuses, with a *FieldError, a body
// that is not a JSON object ("body"), a channel that is missing or not an
// object ("channel"), a channel id that is missing, empty, not a string or
// an integer, longer than MaxChannelID or not printable ("channel.id"), and
// messages that are missing, not an array or more than MaxMessages
// ("messages"). Everything else is read as well as it can be; see the
// package comment. Single-line texts have their spaces folded and control
// characters dropped; message contents and the visitor's note are kept as
// sent.
func Parse(body []byte) (Export, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return Export{}, invalid("body", "is empty")
	}
	if body[0] != '{' {
		return Export{}, invalid("body", "must be a JSON object, not %s", untrusted.JSONKind(body))
	}
	var j exportJSON
	if err := json.Unmarshal(body, &j); err != nil {
		return Export{}, invalid("body", "is not valid JSON")
	}
	var r reader
	var e Export

	if isNull(j.Channel) {
		return Export{}, invalid("channel", "is required")
	}
	var cj channelJSON
	if err := json.Unmarshal(j.Channel, &cj); err != nil {
		return Export{}, invalid("channel", "must be an object, not %s", untrusted.JSONKind(j.Channel))
	}
	id, err := channelID(cj.ID)
	if err != nil {
		return Export{}, err
	}
	if isNull(j.Messages) {
		return Export{}, invalid("messages", "is required")
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(j.Messages, &raws); err != nil {
		return Export{}, invalid("messages", "must be an array, not %s", untrusted.JSONKind(j.Messages))
	}
	if len(raws) > MaxMessages {
		return Export{}, invalid("messages", "must have at most %d elements, not %d", MaxMessages, len(raws))
	}

	e.AccountID = r.text("accountId", j.AccountID)
	e.BeginAt = r.instant("beginAt", j.BeginAt)
	e.EndAt = r.instant("endAt", j.EndAt)
	e.Channel = Channel{
		ID:            id,
		IsChat:        r.boolean("channel.isChat", cj.IsChat),
		IsMissed:      r.boolean("channel.isMissed", cj.IsMissed),
		IsTriggered:   r.boolean("channel.isTriggered", cj.IsTriggered),
		IsOffline:     r.boolean("channel.isOffline", cj.IsOffline),
		IsCompleted:   r.boolean("channel.isCompleted", cj.IsCompleted),
		IsDropped:     r.boolean("channel.isDropped", cj.IsDropped),
		Duration:      r.seconds("channel.duration", cj.Duration),
		AvgResponse:   r.seconds("channel.avgResponse", cj.AvgResponse),
		FirstResponse: r.seconds("channel.firstResponse", cj.FirstResponse),
		MessagesCount: int(r.count("channel.messagesCount", cj.MessagesCount)),
		WordsCount:    int(r.count("channel.wordsCount", cj.WordsCount)),
		Rating:        int(r.count("channel.rating", cj.Rating)),
		RatingDesc:    r.text("channel.ratingDesc", cj.RatingDesc),
	}
	e.Visitor = r.visitor(j.Visitor)
	e.Paths = r.paths(j.Paths)
	e.Messages = make([]Message, 0, len(raws))
	for i, raw := range raws {
		f := fmt.Sprintf("messages[%d]", i)
		var mj messageJSON
		if isNull(raw) || bytes.TrimSpace(raw)[0] != '{' || json.Unmarshal(raw, &mj) != nil {
			r.ignore(f)
			e.Messages = append(e.Messages, Message{})
			continue
		}
		e.Messages = append(e.Messages, Message{
			Type:        strings.ToLower(r.text(f+".type", mj.Type)),
			Name:        r.text(f+".name", mj.Name),
			From:        r.text(f+".from", mj.From),
			Content:     r.body(f+".content", mj.Content),
			SentAt:      r.instant(f+".sentAt", mj.SentAt),
			TriggeredBy: r.text(f+".triggeredBy", mj.TriggeredBy),
		})
	}
	e.Ignored = r.ignored
	return e, nil
}

// channelID reads channel.id, which names the conversation.
func channelID(b json.RawMessage) (string, error) {
	if isNull(b) {
		return "", invalid("channel.id", "is required")
	}
	s, ok := scalar(b)
	if !ok {
		return "", invalid("channel.id", "must be a string or an integer, not %s", untrusted.JSONKind(b))
	}
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return "", invalid("channel.id", "is required")
	case bytes.TrimSpace(b)[0] != '"' && strings.ContainsAny(s, ".eE"):
		return "", invalid("channel.id", "must be a string or an integer, not %s", s)
	case len([]rune(s)) > MaxChannelID:
		return "", invalid("channel.id", "must be at most %d characters", MaxChannelID)
	}
	for _, c := range s {
		if unicode.IsSpace(c) || unicode.IsControl(c) || c == '\uFFFD' {
			return "", invalid("channel.id", "must not contain spaces or control characters")
		}
	}
	return s, nil
}

func (r *reader) visitor(b json.RawMessage) Visitor {
	if isNull(b) {
		return Visitor{}
	}
	var vj visitorJSON
	if bytes.TrimSpace(b)[0] != '{' || json.Unmarshal(b, &vj) != nil {
		r.ignore("visitor")
		return Visitor{}
	}
	return Visitor{
		ID:          r.text("visitor.id", vj.ID),
		Name:        r.text("visitor.name", vj.Name),
		Email:       r.text("visitor.email", vj.Email),
		Note:        r.body("visitor.note", vj.Note),
		Group:       r.text("visitor.group", vj.Group),
		IPAddress:   r.text("visitor.ipAddress", vj.IPAddress),
		City:        r.text("visitor.city", vj.City),
		CountryCode: r.text("visitor.countryCode", vj.CountryCode),
		Country:     r.text("visitor.country", vj.Country),
		UserAgent:   r.text("visitor.userAgent", vj.UserAgent),
		Platform:    r.text("visitor.platform", vj.Platform),
		Referer:     r.text("visitor.referer", vj.Referer),
		Variables:   r.variables(vj.Variables),
	}
}

// variables reads {"key": {"label": …, "value": …}}; a bare value is taken
// as the value.
func (r *reader) variables(b json.RawMessage) map[string]Variable {
	if isNull(b) {
		return nil
	}
	var raw map[string]json.RawMessage
	if bytes.TrimSpace(b)[0] != '{' || json.Unmarshal(b, &raw) != nil {
		r.ignore("visitor.variables")
		return nil
	}
	if len(raw) == 0 {
		return nil
	}
	out := make(map[string]Variable, min(len(raw), MaxVariables))
	for _, k := range slices.Sorted(maps.Keys(raw)) {
		v := raw[k]
		f := "visitor.variables." + k
		if len(out) == MaxVariables {
			r.ignore("visitor.variables")
			break
		}
		if t := bytes.TrimSpace(v); len(t) > 0 && t[0] == '{' {
			var lv struct {
				Label json.RawMessage `json:"label"`
				Value json.RawMessage `json:"value"`
			}
			if json.Unmarshal(t, &lv) != nil {
				r.ignore(f)
				continue
			}
			out[k] = Variable{Label: r.text(f+".label", lv.Label), Value: r.text(f+".value", lv.Value)}
			continue
		}
		if _, ok := scalar(v); !ok {
			r.ignore(f)
			continue
		}
		out[k] = Variable{Value: r.text(f, v)}
	}
	return out
}

func (r *reader) paths(b json.RawMessage) []Path {
	if isNull(b) {
		return nil
	}
	var raws []json.RawMessage
	if json.Unmarshal(b, &raws) != nil {
		r.ignore("paths")
		return nil
	}
	var out []Path
	for i, raw := range raws {
		if len(out) == MaxPaths {
			r.ignore("paths")
			break
		}
		f := fmt.Sprintf("paths[%d]", i)
		var pj pathJSON
		if isNull(raw) || bytes.TrimSpace(raw)[0] != '{' || json.Unmarshal(raw, &pj) != nil {
			r.ignore(f)
			continue
		}
		out = append(out, Path{URL: r.text(f+".url", pj.URL), Title: r.text(f+".title", pj.Title)})
	}
	return out
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return s[len(prefix):], true
	}
	return "", false
}
