package qolio

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/pult/pult/relay/untrusted"
)

// Communication types (communication_type).
const (
	TypeChat   = "chat"
	TypeTicket = "ticket"
	TypeEmail  = "email"
)

// Statuses of a dialogue (status).
const (
	StatusAccepted = "accepted"
	StatusRejected = "rejected"
	StatusOpened   = "opened"
	StatusClosed   = "closed"
)

// Directions (direction); "outcoming" is Qolio's spelling.
const (
	DirectionIncoming  = "incoming"
	DirectionOutcoming = "outcoming"
	DirectionLocal     = "local"
)

// Authors of a part (communication_parts[].author.type).
const (
	AuthorClient   = "client"
	AuthorOperator = "operator"
)

// Content types of a part's body (communication_parts[].content_type);
// Qolio assumes text/plain when none is given.
const (
	ContentTextPlain = "text/plain"
	ContentTextHTML  = "text/html"
)

// Limits pult enforces. Qolio documents none; these are generous but finite.
const (
	MaxIDLen       = 255     // operator_id, uid, communication_id, part and author ids, client fields
	MaxTitleLen    = 1024    // title, source (characters)
	MaxParts       = 10000   // communication_parts
	MaxRequestBody = 8 << 20 // the whole JSON body, bytes
)

// Communication is the body of POST …/integrations/{id}/text: one chat,
// ticket or e-mail thread. Only OperatorID is required by Qolio; pult also
// requires CommunicationID (Qolio's idempotency key) so a retry replaces
// rather than duplicates.
type Communication struct {
	OperatorID      string // operator_id: e-mail, SIP number or directory id of the operator (required)
	UID             string // uid: external id, returned by Qolio as integration_uid
	CommunicationID string // communication_id: unique; re-sending it replaces the communication
	Type            string // communication_type: TypeChat, TypeTicket, TypeEmail; "" not given
	Title           string // title; Qolio uses the first part's body when empty
	Source          string // source: the channel's name (telegram, viber, …), any value
	NPS             *int   // nps: Net Promoter Score; nil not given
	ClientFeedback  *int   // client_feedback: the client's rating; nil not given
	Status          string // status: StatusAccepted … StatusClosed; "" not given
	Direction       string // direction: DirectionIncoming, DirectionOutcoming, DirectionLocal; "" not given
	Parts           []Part // communication_parts: the messages, in order
	// CustomFields (custom_fields) carries anything outside the schema; values
	// must be JSON-encodable.
	CustomFields map[string]any
	// ClientID (client_id) is Qolio's deprecated way to name the client; prefer
	// Client.ID.
	ClientID string
	Client   *Customer // client: who the operator talked to; nil not given
}

// Part is one message of a communication (communication_parts[]).
type Part struct {
	ID          string    // communication_part_id: the message's id in our system (required by pult)
	Author      Author    // who wrote it
	Body        string    // body: the text (or HTML when ContentType is ContentTextHTML)
	ContentType string    // content_type: ContentTextPlain or ContentTextHTML; "" means text/plain
	CreatedAt   time.Time // created_at (required), sent as RFC 3339 in its own location
	UpdatedAt   time.Time // updated_at; zero not given
}

// Author says who wrote a part.
type Author struct {
	Type string // AuthorClient or AuthorOperator (required)
	// ID is the client's or operator's id; empty means client_id or
	// operator_id of the communication.
	ID string
}

// Customer is the communication's "client" object.
type Customer struct {
	ID          string // id: the client's id in our system (phone number, id or hash)
	CompanyName string // company_name
	FirstName   string // first_name
	LastName    string // last_name
	Email       string // email
	PhoneNumber string // phone_number
}

// ValidationError is a communication Qolio (or pult's stricter rules) would
// refuse; nothing was sent. Field names the JSON field the way Qolio spells
// it, e.g. "communication_parts[2].author.type".
type ValidationError struct {
	Field string
	Msg   string
}

func (e *ValidationError) Error() string {
	if e.Field == "" {
		return "qolio: " + e.Msg
	}
	return "qolio: " + e.Field + ": " + e.Msg
}

// Temporary is false: the same input is refused every time.
func (e *ValidationError) Temporary() bool { return false }

// RetryDelay is 0: there is nothing to wait for.
func (e *ValidationError) RetryDelay() time.Duration { return 0 }

// PartnerMessage is the refusal, naming the field.
func (e *ValidationError) PartnerMessage() string { return e.Error() }

func invalid(field, format string, args ...any) *ValidationError {
	return &ValidationError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// Validate checks c against Qolio's schema and pult's rules; it returns a
// *ValidationError naming the first bad field.
func (c *Communication) Validate() error {
	if err := checkID("operator_id", c.OperatorID, true); err != nil {
		return err
	}
	if err := checkID("uid", c.UID, false); err != nil {
		return err
	}
	if err := checkID("communication_id", c.CommunicationID, true); err != nil {
		return err
	}
	if err := oneOf("communication_type", c.Type, false, TypeChat, TypeTicket, TypeEmail); err != nil {
		return err
	}
	if err := checkLine("title", c.Title, MaxTitleLen); err != nil {
		return err
	}
	if err := checkLine("source", c.Source, MaxTitleLen); err != nil {
		return err
	}
	if err := oneOf("status", c.Status, false, StatusAccepted, StatusRejected, StatusOpened, StatusClosed); err != nil {
		return err
	}
	if err := oneOf("direction", c.Direction, false, DirectionIncoming, DirectionOutcoming, DirectionLocal); err != nil {
		return err
	}
	if len(c.Parts) > MaxParts {
		return invalid("communication_parts", "must have at most %d parts", MaxParts)
	}
	seen := make(map[string]int, len(c.Parts))
	for i := range c.Parts {
		p := &c.Parts[i]
		f := func(name string) string { return fmt.Sprintf("communication_parts[%d].%s", i, name) }
		if err := checkID(f("communication_part_id"), p.ID, true); err != nil {
			return err
		}
		if j, dup := seen[p.ID]; dup {
			return invalid(f("communication_part_id"), "%q is already the id of communication_parts[%d]; a re-send would merge them", p.ID, j)
		}
		seen[p.ID] = i
		if err := oneOf(f("author.type"), p.Author.Type, true, AuthorClient, AuthorOperator); err != nil {
			return err
		}
		if err := checkID(f("author.id"), p.Author.ID, false); err != nil {
			return err
		}
		if !utf8.ValidString(p.Body) {
			return invalid(f("body"), "must be valid UTF-8")
		}
		if err := oneOf(f("content_type"), p.ContentType, false, ContentTextPlain, ContentTextHTML); err != nil {
			return err
		}
		if err := checkTime(f("created_at"), p.CreatedAt, true); err != nil {
			return err
		}
		if err := checkTime(f("updated_at"), p.UpdatedAt, false); err != nil {
			return err
		}
	}
	for k := range c.CustomFields {
		if err := checkID("custom_fields", k, true); err != nil {
			return invalid("custom_fields", "keys must be non-empty text without control characters")
		}
	}
	if c.CustomFields != nil {
		if _, err := json.Marshal(c.CustomFields); err != nil {
			return invalid("custom_fields", "cannot be encoded as JSON: %v", err)
		}
	}
	if err := checkID("client_id", c.ClientID, false); err != nil {
		return err
	}
	if cl := c.Client; cl != nil {
		for _, f := range []struct{ name, v string }{
			{"client.id", cl.ID}, {"client.company_name", cl.CompanyName}, {"client.first_name", cl.FirstName},
			{"client.last_name", cl.LastName}, {"client.email", cl.Email}, {"client.phone_number", cl.PhoneNumber},
		} {
			if err := checkID(f.name, f.v, false); err != nil {
				return err
			}
		}
	}
	return nil
}

// Encode validates c and returns the JSON body Qolio expects.
func Encode(c Communication) ([]byte, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	b, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("qolio: encode communication: %w", err)
	}
	if len(b) > MaxRequestBody {
		return nil, invalid("", "the communication encodes to %d bytes, over the %d-byte limit", len(b), MaxRequestBody)
	}
	return b, nil
}

// wire forms. Times are RFC 3339 strings in the time's own location, to the
// second, like Qolio's example ("2020-01-17T08:15:30+03:00").
type wireComm struct {
	OperatorID        string         `json:"operator_id"`
	UID               string         `json:"uid,omitempty"`
	CommunicationID   string         `json:"communication_id,omitempty"`
	CommunicationType string         `json:"communication_type,omitempty"`
	Title             string         `json:"title,omitempty"`
	Source            string         `json:"source,omitempty"`
	NPS               *int           `json:"nps,omitempty"`
	ClientFeedback    *int           `json:"client_feedback,omitempty"`
	Status            string         `json:"status,omitempty"`
	Direction         string         `json:"direction,omitempty"`
	Parts             []wirePart     `json:"communication_parts,omitempty"`
	CustomFields      map[string]any `json:"custom_fields,omitempty"`
	ClientID          string         `json:"client_id,omitempty"`
	Client            *wireCustomer  `json:"client,omitempty"`
}

type wirePart struct {
	ID          string     `json:"communication_part_id"`
	Author      wireAuthor `json:"author"`
	Body        string     `json:"body"`
	ContentType string     `json:"content_type,omitempty"`
	CreatedAt   string     `json:"created_at"`
	UpdatedAt   string     `json:"updated_at,omitempty"`
}

type wireAuthor struct {
	Type string `json:"type"`
	ID   string `json:"id,omitempty"`
}

type wireCustomer struct {
	ID          string `json:"id,omitempty"`
	CompanyName string `json:"company_name,omitempty"`
	FirstName   string `json:"first_name,omitempty"`
	LastName    string `json:"last_name,omitempty"`
	Email       string `json:"email,omitempty"`
	PhoneNumber string `json:"phone_number,omitempty"`
}

// MarshalJSON writes c in Qolio's wire form without validating it; Encode
// validates first.
func (c Communication) MarshalJSON() ([]byte, error) {
	w := wireComm{
		OperatorID: c.OperatorID, UID: c.UID, CommunicationID: c.CommunicationID,
		CommunicationType: c.Type, Title: c.Title, Source: c.Source, NPS: c.NPS,
		ClientFeedback: c.ClientFeedback, Status: c.Status, Direction: c.Direction,
		CustomFields: c.CustomFields, ClientID: c.ClientID,
	}
	for _, p := range c.Parts {
		wp := wirePart{
			ID: p.ID, Author: wireAuthor{Type: p.Author.Type, ID: p.Author.ID}, Body: p.Body,
			ContentType: p.ContentType, CreatedAt: formatTime(p.CreatedAt),
		}
		if !p.UpdatedAt.IsZero() {
			wp.UpdatedAt = formatTime(p.UpdatedAt)
		}
		w.Parts = append(w.Parts, wp)
	}
	if cl := c.Client; cl != nil {
		w.Client = &wireCustomer{
			ID: cl.ID, CompanyName: cl.CompanyName, FirstName: cl.FirstName,
			LastName: cl.LastName, Email: cl.Email, PhoneNumber: cl.PhoneNumber,
		}
	}
	return json.Marshal(w)
}

// UnmarshalJSON reads Qolio's wire form. It is tolerant where Qolio's own
// documentation is inconsistent (nps and client_feedback as a number or a
// numeric string) and does not validate: call Validate.
func (c *Communication) UnmarshalJSON(b []byte) error {
	var w struct {
		wireComm
		NPS            json.RawMessage `json:"nps"`
		ClientFeedback json.RawMessage `json:"client_feedback"`
		Parts          []struct {
			wirePart
			CreatedAt *string `json:"created_at"`
			UpdatedAt *string `json:"updated_at"`
		} `json:"communication_parts"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	out := Communication{
		OperatorID: w.OperatorID, UID: w.UID, CommunicationID: w.CommunicationID,
		Type: w.CommunicationType, Title: w.Title, Source: w.Source, Status: w.Status,
		Direction: w.Direction, CustomFields: w.CustomFields, ClientID: w.ClientID,
	}
	var err error
	if out.NPS, err = flexInt("nps", w.NPS); err != nil {
		return err
	}
	if out.ClientFeedback, err = flexInt("client_feedback", w.ClientFeedback); err != nil {
		return err
	}
	for i, p := range w.Parts {
		part := Part{ID: p.ID, Author: Author{Type: p.Author.Type, ID: p.Author.ID}, Body: p.Body, ContentType: p.ContentType}
		if p.CreatedAt != nil {
			if part.CreatedAt, err = ParseTime(*p.CreatedAt); err != nil {
				return invalid(fmt.Sprintf("communication_parts[%d].created_at", i), "%v", err)
			}
		}
		if p.UpdatedAt != nil && *p.UpdatedAt != "" {
			if part.UpdatedAt, err = ParseTime(*p.UpdatedAt); err != nil {
				return invalid(fmt.Sprintf("communication_parts[%d].updated_at", i), "%v", err)
			}
		}
		out.Parts = append(out.Parts, part)
	}
	if cl := w.Client; cl != nil {
		out.Client = &Customer{
			ID: cl.ID, CompanyName: cl.CompanyName, FirstName: cl.FirstName,
			LastName: cl.LastName, Email: cl.Email, PhoneNumber: cl.PhoneNumber,
		}
	}
	*c = out
	return nil
}

// ParseTime reads an RFC 3339 time ("2020-01-17T08:15:30+03:00", fractions
// of a second allowed).
func ParseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("must be an RFC 3339 time like 2020-01-17T08:15:30+03:00, not %q", untrusted.Truncate(s, 40))
	}
	return t, nil
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Truncate(time.Second).Format(time.RFC3339)
}

func flexInt(field string, b json.RawMessage) (*int, error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || string(b) == "null" {
		return nil, nil
	}
	s := string(b)
	if b[0] == '"' {
		if err := json.Unmarshal(b, &s); err != nil {
			return nil, invalid(field, "is not valid JSON")
		}
		s = strings.TrimSpace(s)
		if s == "" {
			return nil, nil
		}
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return nil, invalid(field, "must be an integer, not %s", untrusted.Truncate(s, 32))
	}
	return &n, nil
}

// checkID enforces an identifier or short text: valid UTF-8, no control
// characters, at most MaxIDLen characters, present when required.
func checkID(field, s string, required bool) error {
	if strings.TrimSpace(s) == "" {
		if required {
			return invalid(field, "is required")
		}
		if s != "" {
			return invalid(field, "must not be blank")
		}
		return nil
	}
	return checkLine(field, s, MaxIDLen)
}

func checkLine(field, s string, max int) error {
	switch {
	case !utf8.ValidString(s):
		return invalid(field, "must be valid UTF-8")
	case utf8.RuneCountInString(s) > max:
		return invalid(field, "must be at most %d characters", max)
	case strings.ContainsFunc(s, unicode.IsControl):
		return invalid(field, "must not contain control characters")
	}
	return nil
}

func checkTime(field string, t time.Time, required bool) error {
	if t.IsZero() {
		if required {
			return invalid(field, "is required")
		}
		return nil
	}
	if y := t.Year(); y < 1970 || y > 9999 {
		return invalid(field, "year %d is out of range", y)
	}
	return nil
}

func oneOf(field, s string, required bool, allowed ...string) error {
	if s == "" {
		if required {
			return invalid(field, "is required")
		}
		return nil
	}
	for _, a := range allowed {
		if s == a {
			return nil
		}
	}
	q := make([]string, len(allowed))
	for i, a := range allowed {
		q[i] = strconv.Quote(a)
	}
	return invalid(field, "must be one of %s, not %q", strings.Join(q, ", "), untrusted.Truncate(s, 32))
}
