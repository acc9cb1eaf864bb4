package calltouch

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/pult/pult/relay/untrusted"
)

// ScheduleLayout is scheduleTime's format, "yyyy-mm-dd hh:mm:ss".
const ScheduleLayout = "2006-01-02 15:04:05"

// Documented limits.
const (
	MaxRouteKeyLen  = 255 // routeKey: 1–255 characters
	MaxFields       = 5   // fields
	MaxFieldLen     = 255 // fields[].name and fields[].value: 1–255 characters
	MaxTags         = 10  // tags
	MaxTagLen       = 100 // tags[]
	MaxSessionIDLen = 100 // sessionId
)

// Limits pult sets where Calltouch documents none.
const (
	MaxUTMLen = 1024 // utm* values
	MaxURLLen = 2048 // callUrl
)

// Moscow is the default zone of scheduleTime. Moscow has kept UTC+3 since
// 2014; the fixed zone is used when the system has no time zone database.
var Moscow = loadMoscow()

func loadMoscow() *time.Location {
	if loc, err := time.LoadLocation("Europe/Moscow"); err == nil {
		return loc
	}
	return time.FixedZone("MSK", 3*3600)
}

// Request is one callback request.
type Request struct {
	// RouteKey is the "site form" widget's key; empty means Client.RouteKey.
	RouteKey string
	// Phone is the client's number, 11 digits 7xxxxxxxxxx (see
	// NormalizePhone).
	Phone string
	// ScheduleTime is when to call back; nil means as soon as possible.
	ScheduleTime *time.Time
	Fields       []Field  // at most 5, shown in Calltouch's call log and usable by speech synthesis
	Tags         []string // at most 10, each at most 100 characters
	// SessionID is a Calltouch session id (the _ct_session_id cookie); when
	// set it decides the call's source over the UTM values.
	SessionID   string
	UTMSource   string
	UTMMedium   string
	UTMCampaign string
	UTMContent  string
	UTMTerm     string
	CallURL     string // the page the request came from
	UnitID      int64  // the widget's department; 0 not given
}

// Field is a custom field of a request.
type Field struct {
	Name  string
	Value string
}

// ValidationError is a request that breaks a rule Calltouch documents;
// nothing was sent. Field names the JSON field, e.g. "fields[2].value".
type ValidationError struct {
	Field string
	Msg   string
}

func (e *ValidationError) Error() string {
	if e.Field == "" {
		return "calltouch: " + e.Msg
	}
	return "calltouch: " + e.Field + ": " + e.Msg
}

// Temporary is false: the same request is refused every time.
func (e *ValidationError) Temporary() bool { return false }

// RetryDelay is 0: there is nothing to wait for.
func (e *ValidationError) RetryDelay() time.Duration { return 0 }

// PartnerMessage is the refusal, naming the field.
func (e *ValidationError) PartnerMessage() string { return e.Error() }

func invalid(field, format string, args ...any) *ValidationError {
	return &ValidationError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// Validate checks r against Calltouch's documented rules. RouteKey is
// checked when set (Client.Create checks the one it sends).
func (r *Request) Validate() error {
	if r.RouteKey != "" {
		if err := CheckRouteKey(r.RouteKey); err != nil {
			return err
		}
	}
	if err := CheckPhone(r.Phone); err != nil {
		return err
	}
	if t := r.ScheduleTime; t != nil {
		if y := t.Year(); t.IsZero() || y < 2000 || y > 9999 {
			return invalid("scheduleTime", "must be a real date, not %v", *t)
		}
	}
	if len(r.Fields) > MaxFields {
		return invalid("fields", "must have at most %d fields, not %d", MaxFields, len(r.Fields))
	}
	for i, f := range r.Fields {
		if err := checkText(fmt.Sprintf("fields[%d].name", i), f.Name, 1, MaxFieldLen); err != nil {
			return err
		}
		if err := checkText(fmt.Sprintf("fields[%d].value", i), f.Value, 1, MaxFieldLen); err != nil {
			return err
		}
	}
	if len(r.Tags) > MaxTags {
		return invalid("tags", "must have at most %d tags, not %d", MaxTags, len(r.Tags))
	}
	for i, tag := range r.Tags {
		if err := checkText(fmt.Sprintf("tags[%d]", i), tag, 1, MaxTagLen); err != nil {
			return err
		}
	}
	if err := checkText("sessionId", r.SessionID, 0, MaxSessionIDLen); err != nil {
		return err
	}
	for _, u := range []struct{ name, v string }{
		{"utmSource", r.UTMSource}, {"utmMedium", r.UTMMedium}, {"utmCampaign", r.UTMCampaign},
		{"utmContent", r.UTMContent}, {"utmTerm", r.UTMTerm},
	} {
		if err := checkText(u.name, u.v, 0, MaxUTMLen); err != nil {
			return err
		}
	}
	if r.CallURL != "" {
		if err := checkText("callUrl", r.CallURL, 0, MaxURLLen); err != nil {
			return err
		}
		u, err := url.Parse(r.CallURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return invalid("callUrl", "must be an absolute http or https URL")
		}
	}
	if r.UnitID < 0 {
		return invalid("unitId", "must not be negative")
	}
	return nil
}

// CheckRouteKey checks a widget key: 1–255 characters.
func CheckRouteKey(k string) error { return checkText("routeKey", k, 1, MaxRouteKeyLen) }

// CheckPhone checks a phone as Calltouch wants it: exactly 11 digits
// 7xxxxxxxxxx, a Russian number (codes 3xx, 4xx, 8xx, 9xx), not 8-800 or
// 8-804 (7800… and 7804… here).
func CheckPhone(p string) error {
	switch {
	case p == "":
		return invalid("phone", "is required")
	case len(p) != 11 || strings.Trim(p, "0123456789") != "":
		return invalid("phone", "must be exactly 11 digits like 79992223344, not %q", untrusted.Truncate(p, 32))
	case p[0] != '7':
		return invalid("phone", "must start with 7, not %q", p[:1])
	case strings.HasPrefix(p, "7800") || strings.HasPrefix(p, "7804"):
		return invalid("phone", "Calltouch does not call back 8-%s numbers", p[1:4])
	case !strings.ContainsRune("3489", rune(p[1])):
		return invalid("phone", "%s is not a Russian mobile or landline number", p)
	}
	return nil
}

// NormalizePhone turns a Russian number as people write it ("+7 (999)
// 222-33-44", "8 999 222 33 44", "9992223344") into Calltouch's
// 7xxxxxxxxxx, and checks it with CheckPhone.
func NormalizePhone(s string) (string, error) {
	var b strings.Builder
	for i, r := range strings.TrimSpace(s) {
		switch {
		case r >= '0' && r <= '9':
			b.WriteRune(r)
		case r == '+' && i == 0, r == ' ', r == '-', r == '(', r == ')', r == '.', r == '\u00a0':
		default:
			return "", invalid("phone", "%q is not a phone number", untrusted.Truncate(s, 32))
		}
	}
	d := b.String()
	switch {
	case len(d) == 10:
		d = "7" + d
	case len(d) == 11 && d[0] == '8' && !strings.HasPrefix(strings.TrimSpace(s), "+"):
		d = "7" + d[1:]
	}
	if err := CheckPhone(d); err != nil {
		return "", err
	}
	return d, nil
}

// checkText enforces valid UTF-8, no control characters and a length in
// characters between min and max ("" is fine when min is 0).
func checkText(field, s string, minLen, maxLen int) error {
	n := utf8.RuneCountInString(s)
	switch {
	case s == "" && minLen == 0:
		return nil
	case strings.TrimSpace(s) == "":
		if s == "" {
			return invalid(field, "is required")
		}
		return invalid(field, "must not be blank")
	case !utf8.ValidString(s):
		return invalid(field, "must be valid UTF-8")
	case n < minLen || n > maxLen:
		return invalid(field, "must be %d to %d characters, not %d", max(minLen, 1), maxLen, n)
	case strings.ContainsFunc(s, unicode.IsControl):
		return invalid(field, "must not contain control characters")
	}
	return nil
}

// wireRequest is the JSON body.
type wireRequest struct {
	RouteKey     string      `json:"routeKey"`
	Phone        string      `json:"phone"`
	Fields       []wireField `json:"fields,omitempty"`
	SessionID    string      `json:"sessionId,omitempty"`
	ScheduleTime string      `json:"scheduleTime,omitempty"`
	UTMSource    string      `json:"utmSource,omitempty"`
	UTMMedium    string      `json:"utmMedium,omitempty"`
	UTMCampaign  string      `json:"utmCampaign,omitempty"`
	UTMContent   string      `json:"utmContent,omitempty"`
	UTMTerm      string      `json:"utmTerm,omitempty"`
	CallURL      string      `json:"callUrl,omitempty"`
	Tags         []string    `json:"tags,omitempty"`
	UnitID       int64       `json:"unitId,omitempty"`
}

type wireField struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Encode validates r and returns its JSON body with routeKey (r.RouteKey
// when set) and scheduleTime in loc (Moscow when nil).
func Encode(r Request, routeKey string, loc *time.Location) ([]byte, error) {
	if r.RouteKey != "" {
		routeKey = r.RouteKey
	}
	if err := CheckRouteKey(routeKey); err != nil {
		return nil, err
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	if loc == nil {
		loc = Moscow
	}
	w := wireRequest{
		RouteKey: routeKey, Phone: r.Phone, SessionID: r.SessionID,
		UTMSource: r.UTMSource, UTMMedium: r.UTMMedium, UTMCampaign: r.UTMCampaign,
		UTMContent: r.UTMContent, UTMTerm: r.UTMTerm, CallURL: r.CallURL,
		Tags: r.Tags, UnitID: r.UnitID,
	}
	for _, f := range r.Fields {
		w.Fields = append(w.Fields, wireField(f))
	}
	if r.ScheduleTime != nil {
		w.ScheduleTime = r.ScheduleTime.In(loc).Format(ScheduleLayout)
	}
	b, err := json.Marshal(w)
	if err != nil {
		return nil, fmt.Errorf("calltouch: encode request: %w", err)
	}
	return b, nil
}
