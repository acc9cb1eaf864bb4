// Package uis reads UIS (CoMagic) HTTP notifications: the JSON bodies UIS
// POSTs on four events, built from a template the customer pastes into
// UIS's "Notifications" section, one template and one URL per event:
//
//	incoming_call_started  a call arrives on a virtual number
//	outgoing_call_started  an employee places a call
//	conversation_started   somebody answered
//	call_finished          the call ended (with talk and wait times,
//	                       record links, tags, is_lost)
//
// The event is not in the body (a customer's template may lack
// notification_mnemonic); the caller knows it from the URL it published for
// that event and passes it to [Parse]. call_session_id ties the four
// together.
//
// The template's values are substituted by UIS, so a field may arrive as a
// number, a string, null, an array where a single value was expected, or
// not at all; Parse takes whatever it can and lists what it could not use in
// Notification.Ignored. It refuses, with a *[FieldError] naming the field,
// only a body it cannot read, an unknown event (wrapping [ErrUnknownEvent]),
// a missing or unusable call_session_id, a direction that contradicts the
// event, and two different tokens. A placeholder UIS left unsubstituted
// ("{{employee_id}}") counts as absent.
//
// Authentication is a channel token the customer writes into the template
// ("ud_channel_token" in UIS's own instructions; "token" is accepted too):
// Parse only reads it into Notification.Token, the caller compares it in
// constant time. Bounding the body is the caller's job as well. Phone
// numbers are kept as UIS wrote them ("74951234567"); normalise them with
// agent/phone where needed.
package uis

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/pult/pult/relay/untrusted"
)

// Events, as the last path segment of the notification URLs in UIS's
// instructions.
const (
	EventIncomingCallStarted = "incoming_call_started"
	EventOutgoingCallStarted = "outgoing_call_started"
	EventConversationStarted = "conversation_started"
	EventCallFinished        = "call_finished"
)

// Direction of a call.
type Direction string

// Directions; "" is unknown.
const (
	DirectionIn  Direction = "in"
	DirectionOut Direction = "out"
)

// TimeLayout is how UIS writes times: local time of the account, no zone.
const TimeLayout = "2006-01-02 15:04:05"

// Moscow is the zone UIS accounts usually run in: UTC+3 all year (Russia
// has had no daylight saving time since October 2014).
var Moscow = time.FixedZone("MSK", 3*60*60)

// Limits.
const (
	MaxIDLen     = 128  // call_session_id, communication_id, employee ids
	MaxPhoneLen  = 64   // characters of a phone number
	MaxNameLen   = 255  // characters of names, finish reason, tags, mnemonic
	MaxURLLen    = 2048 // characters of a record link
	MaxTokenLen  = 256  // characters of the channel token
	MaxList      = 100  // elements kept of a list (employees, links, tags)
	MaxIgnored   = 32   // entries in Notification.Ignored (then "…")
	MaxDuration  = 7 * 24 * time.Hour
	placeholderL = "{{"
	placeholderR = "}}"
)

// ErrUnknownEvent is wrapped by the *FieldError Parse returns for an event
// it does not know.
var ErrUnknownEvent = errors.New("unknown UIS event")

// FieldError is a notification that cannot be used. Field is the body's
// field ("call_session_id"), or "body" for the body as a whole, or "event"
// for Parse's event argument.
type FieldError struct {
	Field  string
	Reason string
	err    error
}

func (e *FieldError) Error() string { return "uis: " + e.Field + ": " + e.Reason }

// Unwrap returns ErrUnknownEvent for an unknown event, else nil.
func (e *FieldError) Unwrap() error { return e.err }

func invalid(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// Notification is one UIS notification, normalised. Fields the event's
// template does not carry are zero (an incoming_call_started has no
// employee yet, only call_finished has durations, links and tags).
type Notification struct {
	Event         string // one of the Event constants
	CallSessionID string // call_session_id: the call, across its four events; never empty
	// CommunicationID is UIS's communication_id, Mnemonic its
	// notification_mnemonic, both as sent.
	CommunicationID string
	Mnemonic        string
	// Direction is direction, or what the event implies (incoming and
	// outgoing_call_started); "" when unknown.
	Direction    Direction
	ContactPhone string // contact_phone_number: the client
	VirtualPhone string // virtual_phone_number: our line the call is on
	CallingPhone string // calling_phone_number
	CalledPhone  string // called_phone_number
	// EmployeeIDs are the UIS employee ids (recordId in UIS's interface) the
	// call concerns, without repeats: employee_id, then employee_ids, then
	// the first/last answered/talked employee ids.
	EmployeeIDs   []string
	EmployeeName  string // employee_full_name, else the first of employee_full_names
	EmployeePhone string // employee_phone_number
	Extension     string // extension_phone_number
	ContactName   string // contact_full_name
	// Times are UTC; UIS's zone-less times are read in Parse's location.
	StartTime        time.Time // start_time
	AnswerTime       time.Time // answer_time
	FinishTime       time.Time // finish_time
	NotificationTime time.Time // notification_time, else notification_timestamp
	FinishReason     string    // finish_reason, as sent
	IsLost           bool      // is_lost
	TalkTime         time.Duration
	WaitTime         time.Duration // total_wait_time_duration, else wait_time_duration
	RecordURLs       []string      // record_file_links: absolute http(s) URLs only
	Tags             []string      // tag_names
	Token            string        // ud_channel_token (or token): the caller checks it
	// Ignored names the fields that were present but unusable and were left
	// at their zero value (in the order of the fields above, at most
	// MaxIgnored of them): for the log.
	Ignored []string
	// Repaired is set when the body was not valid JSON and was read line by
	// line, as UIS's one-field-per-line template gives when values are
	// substituted without quotes.
	Repaired bool
}

// Parse reads the body of the notification for event (one of the Event
// constants). Times without a zone are read in loc (Moscow when nil).
// Failures are *FieldError; an unknown event also wraps ErrUnknownEvent.
// Parse never panics, whatever the body.
func Parse(event string, body []byte, loc *time.Location) (Notification, error) {
	switch event {
	case EventIncomingCallStarted, EventOutgoingCallStarted, EventConversationStarted, EventCallFinished:
	default:
		return Notification{}, &FieldError{Field: "event", Reason: fmt.Sprintf("%q is not one of %s, %s, %s, %s",
			untrusted.Clip(untrusted.OneLine(event), 64), EventIncomingCallStarted, EventOutgoingCallStarted, EventConversationStarted, EventCallFinished), err: ErrUnknownEvent}
	}
	if loc == nil {
		loc = Moscow
	}
	fields, repaired, err := decodeObject(body)
	if err != nil {
		return Notification{}, err
	}
	r := reader{fields: fields, loc: loc}
	n := Notification{Event: event, Repaired: repaired}

	if n.CallSessionID, err = r.required("call_session_id"); err != nil {
		return Notification{}, err
	}
	n.CommunicationID = r.id("communication_id")
	n.Mnemonic = r.text("notification_mnemonic", MaxNameLen)
	if n.Direction, err = r.direction(event); err != nil {
		return Notification{}, err
	}
	n.ContactPhone = r.phone("contact_phone_number")
	n.VirtualPhone = r.phone("virtual_phone_number")
	n.CallingPhone = r.phone("calling_phone_number")
	n.CalledPhone = r.phone("called_phone_number")
	for _, f := range []string{"employee_id", "employee_ids", "first_answered_employee_id", "last_answered_employee_id",
		"first_talked_employee_id", "last_talked_employee_id"} {
		n.EmployeeIDs = appendNew(n.EmployeeIDs, r.ids(f)...)
	}
	if len(n.EmployeeIDs) > MaxList {
		n.EmployeeIDs = n.EmployeeIDs[:MaxList]
	}
	n.EmployeeName = r.text("employee_full_name", MaxNameLen)
	if names := r.list("employee_full_names", false); n.EmployeeName == "" && len(names) > 0 {
		n.EmployeeName = untrusted.Clip(names[0], MaxNameLen)
	}
	n.EmployeePhone = r.phone("employee_phone_number")
	n.Extension = r.phone("extension_phone_number")
	n.ContactName = r.text("contact_full_name", MaxNameLen)
	n.StartTime = r.time("start_time")
	n.AnswerTime = r.time("answer_time")
	n.FinishTime = r.time("finish_time")
	n.NotificationTime = r.time("notification_time")
	if n.NotificationTime.IsZero() {
		n.NotificationTime = r.time("notification_timestamp")
	}
	n.FinishReason = r.text("finish_reason", MaxNameLen)
	n.IsLost = r.boolean("is_lost")
	n.TalkTime = r.duration("talk_time_duration")
	n.WaitTime = r.duration("total_wait_time_duration")
	if _, given := r.present("total_wait_time_duration"); !given {
		n.WaitTime = r.duration("wait_time_duration")
	}
	n.RecordURLs = r.urls("record_file_links")
	for _, t := range r.list("tag_names", false) {
		if t = untrusted.Clip(t, MaxNameLen); len(n.Tags) < MaxList && !contains(n.Tags, t) {
			n.Tags = append(n.Tags, t)
		}
	}
	if n.Token, err = r.token(); err != nil {
		return Notification{}, err
	}
	n.Ignored = r.ignored
	if err := n.Validate(); err != nil {
		// Parse cleans every field, so this is a bug; refuse rather than
		// hand on something invalid.
		return Notification{}, err
	}
	return n, nil
}

// Validate checks n as Parse leaves it: a known event, a call session id of
// at most MaxIDLen printable characters without spaces, a known direction,
// single-line texts within their limits, at most MaxList ids, links (http
// and https only) and tags, durations between 0 and MaxDuration, and times
// between years 1970 and 9999. Fields are named as in the body.
func (n Notification) Validate() error {
	switch n.Event {
	case EventIncomingCallStarted, EventOutgoingCallStarted, EventConversationStarted, EventCallFinished:
	default:
		return &FieldError{Field: "event", Reason: fmt.Sprintf("%q is not a known event", untrusted.Clip(untrusted.OneLine(n.Event), 64)), err: ErrUnknownEvent}
	}
	if n.CallSessionID == "" {
		return invalid("call_session_id", "is required")
	}
	if err := checkID("call_session_id", n.CallSessionID); err != nil {
		return err
	}
	if n.CommunicationID != "" {
		if err := checkID("communication_id", n.CommunicationID); err != nil {
			return err
		}
	}
	switch n.Direction {
	case "", DirectionIn, DirectionOut:
	default:
		return invalid("direction", "must be %q or %q", DirectionIn, DirectionOut)
	}
	for _, c := range []struct {
		field, value string
		max          int
	}{
		{"notification_mnemonic", n.Mnemonic, MaxNameLen},
		{"contact_phone_number", n.ContactPhone, MaxPhoneLen},
		{"virtual_phone_number", n.VirtualPhone, MaxPhoneLen},
		{"calling_phone_number", n.CallingPhone, MaxPhoneLen},
		{"called_phone_number", n.CalledPhone, MaxPhoneLen},
		{"employee_full_name", n.EmployeeName, MaxNameLen},
		{"employee_phone_number", n.EmployeePhone, MaxPhoneLen},
		{"extension_phone_number", n.Extension, MaxPhoneLen},
		{"contact_full_name", n.ContactName, MaxNameLen},
		{"finish_reason", n.FinishReason, MaxNameLen},
		{"ud_channel_token", n.Token, MaxTokenLen},
	} {
		if err := checkLine(c.field, c.value, c.max); err != nil {
			return err
		}
	}
	if len(n.EmployeeIDs) > MaxList {
		return invalid("employee_ids", "must have at most %d elements", MaxList)
	}
	for i, id := range n.EmployeeIDs {
		if err := checkID(fmt.Sprintf("employee_ids[%d]", i), id); err != nil {
			return err
		}
	}
	if len(n.RecordURLs) > MaxList {
		return invalid("record_file_links", "must have at most %d elements", MaxList)
	}
	for i, u := range n.RecordURLs {
		if !isURL(u) {
			return invalid(fmt.Sprintf("record_file_links[%d]", i), "must be an absolute http or https URL of at most %d characters", MaxURLLen)
		}
	}
	if len(n.Tags) > MaxList {
		return invalid("tag_names", "must have at most %d elements", MaxList)
	}
	for i, t := range n.Tags {
		f := fmt.Sprintf("tag_names[%d]", i)
		if t == "" {
			return invalid(f, "must not be empty")
		}
		if err := checkLine(f, t, MaxNameLen); err != nil {
			return err
		}
	}
	for _, d := range []struct {
		field string
		value time.Duration
	}{{"talk_time_duration", n.TalkTime}, {"total_wait_time_duration", n.WaitTime}} {
		if d.value < 0 || d.value > MaxDuration {
			return invalid(d.field, "must be between 0 and %v", MaxDuration)
		}
	}
	for _, t := range []struct {
		field string
		value time.Time
	}{{"start_time", n.StartTime}, {"answer_time", n.AnswerTime}, {"finish_time", n.FinishTime}, {"notification_time", n.NotificationTime}} {
		if !t.value.IsZero() {
			if y := t.value.UTC().Year(); y < 1970 || y > 9999 {
				return invalid(t.field, "must be between years 1970 and 9999")
			}
		}
	}
	return nil
}

// decodeObject reads the body as a JSON object, or, failing that, line by
// line (see lenientObject).
func decodeObject(body []byte) (map[string]json.RawMessage, bool, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return nil, false, invalid("body", "is empty")
	}
	if body[0] != '{' {
		return nil, false, invalid("body", "must be a JSON object, not %s", untrusted.JSONKind(body))
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err == nil {
		return fields, false, nil
	}
	if fields, ok := lenientObject(body); ok {
		return fields, true, nil
	}
	return nil, false, invalid("body", "is not valid JSON")
}

// lenientObject reads a body laid out like UIS's templates, one
// "key": value per line, whose values are not all valid JSON (a template
// with {{start_time}} unquoted, filled in as 2024-05-01 12:00:00). A value
// that is valid JSON is kept; "…" around something that is not a JSON
// string gives the text inside; anything else is taken as text. Every
// non-blank line between the braces must be a "key": value pair.
func lenientObject(body []byte) (map[string]json.RawMessage, bool) {
	s := string(body)
	if !strings.HasPrefix(s, "{") || !strings.HasSuffix(s, "}") || len(s) < 2 {
		return nil, false
	}
	fields := map[string]json.RawMessage{}
	for _, line := range strings.Split(s[1:len(s)-1], "\n") {
		line = strings.TrimSpace(line)
		line = strings.TrimSpace(strings.TrimSuffix(line, ","))
		if line == "" {
			continue
		}
		if line[0] != '"' {
			return nil, false
		}
		end := strings.IndexByte(line[1:], '"')
		if end < 0 {
			return nil, false
		}
		key := line[1 : 1+end]
		rest := strings.TrimSpace(line[2+end:])
		if !strings.HasPrefix(rest, ":") || key == "" {
			return nil, false
		}
		v, ok := lenientValue(strings.TrimSpace(rest[1:]))
		if !ok {
			return nil, false
		}
		fields[key] = v
	}
	return fields, len(fields) > 0
}

func lenientValue(v string) (json.RawMessage, bool) {
	if v == "" {
		return json.RawMessage("null"), true
	}
	quoted := len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"'
	if quoted {
		if inner := strings.TrimSpace(v[1 : len(v)-1]); inner != "" && json.Valid([]byte(inner)) {
			return json.RawMessage(inner), true // "{{x}}" filled with a JSON value: ""Ivan"", "[1,2]", "null"
		}
	}
	if json.Valid([]byte(v)) {
		return json.RawMessage(v), true
	}
	if quoted {
		v = v[1 : len(v)-1]
	} else if strings.Contains(v, `":`) || strings.Contains(v, `",`) {
		return nil, false // more than one pair on the line: not the template's layout
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, false
	}
	return b, true
}

// checkID enforces an identifier: printable, no spaces, at most MaxIDLen.
func checkID(field, s string) error {
	if err := checkLine(field, s, MaxIDLen); err != nil {
		return err
	}
	if strings.ContainsFunc(s, unicode.IsSpace) {
		return invalid(field, "must not contain spaces")
	}
	return nil
}

// checkLine enforces a single-line text: valid UTF-8, no control
// characters, no surrounding spaces, at most max characters.
func checkLine(field, s string, max int) error {
	switch {
	case s == "":
		return nil
	case !utf8.ValidString(s):
		return invalid(field, "must be valid UTF-8")
	case utf8.RuneCountInString(s) > max:
		return invalid(field, "must be at most %d characters", max)
	case strings.TrimSpace(s) != s:
		return invalid(field, "must not begin or end with spaces")
	case strings.ContainsFunc(s, unicode.IsControl):
		return invalid(field, "must not contain control characters")
	}
	return nil
}

func appendNew(list []string, items ...string) []string {
	for _, it := range items {
		if !contains(list, it) {
			list = append(list, it)
		}
	}
	return list
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
