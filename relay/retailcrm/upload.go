package retailcrm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/pult/pult/relay/untrusted"
)

// DateLayout is retailCRM's "Y-m-d H:i:s", in the account's time zone.
const DateLayout = "2006-01-02 15:04:05"

// UploadCall is one call of POST /api/v5/telephony/calls/upload (call
// history).
type UploadCall struct {
	Date            time.Time // when the call began; sent as DateLayout in Date's location
	Type            string    // TypeIn or TypeOut
	Phone           string    // the other party
	Code            string    // extension code of the user who talked
	UserID          string    // CRM user id of that user
	Result          string    // ResultAnswered … ResultUnknown; "" not given
	Duration        int       // talk, seconds
	DurationWaiting int       // ringing before the answer, seconds
	ExternalID      string    // the PBX's call id; a re-upload is reported as duplicate
	RecordURL       string    // absolute http(s) URL of the recording
	ExternalPhone   string    // the company's number
	Site            string    // shop code
	Source          *Source   // where the caller came from (web analytics); nil: not given
	ClientID        string    // the caller's web-analytics client id
}

// Source is a call's origin as web analytics saw it (retailCRM's Source:
// utm_source, utm_medium and so on).
type Source struct {
	Source   string `json:"source,omitempty"`
	Medium   string `json:"medium,omitempty"`
	Campaign string `json:"campaign,omitempty"`
	Keyword  string `json:"keyword,omitempty"`
	Content  string `json:"content,omitempty"`
}

// MaxSourceLen bounds each field of a Source.
const MaxSourceLen = 255

type uploadJSON struct {
	Date            json.RawMessage `json:"date"`
	Type            json.RawMessage `json:"type"`
	Phone           json.RawMessage `json:"phone"`
	Code            json.RawMessage `json:"code"`
	UserID          json.RawMessage `json:"userId"`
	Result          json.RawMessage `json:"result"`
	Duration        json.RawMessage `json:"duration"`
	DurationWaiting json.RawMessage `json:"durationWaiting"`
	ExternalID      json.RawMessage `json:"externalId"`
	RecordURL       json.RawMessage `json:"recordUrl"`
	ExternalPhone   json.RawMessage `json:"externalPhone"`
	Site            json.RawMessage `json:"site"`
	Source          json.RawMessage `json:"source"`
	ClientID        json.RawMessage `json:"clientId"`
}

// ParseCallsUpload reads a calls/upload request: a POST form body of at most
// maxBody bytes (DefaultMaxBody when 0) whose field "calls" is a JSON array of
// 1 to MaxUploadCalls calls. Dates are read in loc (UTC when nil); durations
// may be numbers or numeric strings. Refusals are *ValidationError naming the
// call, e.g. "calls[3].result".
func ParseCallsUpload(r *http.Request, maxBody int64, loc *time.Location) ([]UploadCall, error) {
	form, err := ReadForm(r, maxBody)
	if err != nil {
		return nil, err
	}
	return DecodeCallsUpload(form, loc)
}

// DecodeCallsUpload reads the calls in a form read by [ReadForm]; see
// [ParseCallsUpload].
func DecodeCallsUpload(form url.Values, loc *time.Location) ([]UploadCall, error) {
	raw, err := formJSON(form, "calls")
	if err != nil {
		return nil, err
	}
	return decodeCallsUpload([]byte(raw), loc)
}

func decodeCallsUpload(b []byte, loc *time.Location) ([]UploadCall, error) {
	if loc == nil {
		loc = time.UTC
	}
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '[' {
		return nil, invalid("calls", "must be a JSON array")
	}
	var items []json.RawMessage
	if err := json.Unmarshal(b, &items); err != nil {
		return nil, invalid("calls", "is not valid JSON")
	}
	if err := checkCount(len(items)); err != nil {
		return nil, err
	}
	calls := make([]UploadCall, len(items))
	for i, item := range items {
		c, err := decodeUploadCall(fmt.Sprintf("calls[%d]", i), item, loc)
		if err != nil {
			return nil, err
		}
		calls[i] = c
	}
	return calls, nil
}

func checkCount(n int) error {
	switch {
	case n == 0:
		return invalid("calls", "must contain at least one call")
	case n > MaxUploadCalls:
		return invalid("calls", "must contain at most %d calls", MaxUploadCalls)
	}
	return nil
}

func decodeUploadCall(prefix string, b json.RawMessage, loc *time.Location) (UploadCall, error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '{' {
		return UploadCall{}, invalid(prefix, "must be a JSON object")
	}
	var j uploadJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return UploadCall{}, invalid(prefix, "is not valid JSON")
	}
	var c UploadCall
	var errs []error
	str := func(dst *string, name string, raw json.RawMessage, numbers bool) {
		s, err := jsonString(prefix+"."+name, raw, numbers)
		*dst = strings.TrimSpace(s)
		errs = append(errs, err)
	}
	var date string
	str(&date, "date", j.Date, false)
	str(&c.Type, "type", j.Type, false)
	str(&c.Phone, "phone", j.Phone, true)
	str(&c.Code, "code", j.Code, true)
	str(&c.UserID, "userId", j.UserID, true)
	str(&c.Result, "result", j.Result, false)
	str(&c.ExternalID, "externalId", j.ExternalID, true)
	str(&c.RecordURL, "recordUrl", j.RecordURL, false)
	str(&c.ExternalPhone, "externalPhone", j.ExternalPhone, true)
	str(&c.Site, "site", j.Site, false)
	str(&c.ClientID, "clientId", j.ClientID, true)
	var err error
	c.Source, err = decodeSource(prefix+".source", j.Source)
	errs = append(errs, err)
	c.Duration, err = jsonInt(prefix+".duration", j.Duration, MaxDuration)
	errs = append(errs, err)
	c.DurationWaiting, err = jsonInt(prefix+".durationWaiting", j.DurationWaiting, MaxDuration)
	errs = append(errs, err)
	for _, err := range errs {
		if err != nil {
			return UploadCall{}, err
		}
	}
	if date == "" {
		return UploadCall{}, invalid(prefix+".date", "is required")
	}
	t, err := time.ParseInLocation(DateLayout, date, loc)
	if err != nil {
		return UploadCall{}, invalid(prefix+".date", "must be a date like 2006-01-02 15:04:05, not %q", untrusted.Truncate(date, 32))
	}
	c.Date = t
	if err := c.validate(prefix); err != nil {
		return UploadCall{}, err
	}
	return c, nil
}

// Validate checks c the way retailCRM would; it returns a *ValidationError.
func (c *UploadCall) Validate() error { return c.validate("call") }

func (c *UploadCall) validate(prefix string) error {
	f := func(name string) string { return prefix + "." + name }
	if c.Date.IsZero() {
		return invalid(f("date"), "is required")
	}
	if y := c.Date.Year(); y < 2000 || y > 9999 {
		return invalid(f("date"), "year %d is out of range", y)
	}
	if c.Type == "" {
		return invalid(f("type"), "is required")
	}
	if err := oneOf(f("type"), c.Type, TypeIn, TypeOut); err != nil {
		return err
	}
	if strings.TrimSpace(c.Phone) == "" {
		return invalid(f("phone"), "is required")
	}
	if err := checkText(f("phone"), c.Phone, MaxPhoneLen, true); err != nil {
		return err
	}
	if err := checkCode(f("code"), c.Code, false); err != nil {
		return err
	}
	if err := checkText(f("userId"), c.UserID, MaxIDLen, false); err != nil {
		return err
	}
	if c.Result != "" {
		if err := oneOf(f("result"), c.Result, ResultAnswered, ResultBusy, ResultFailed, ResultNoAnswer, ResultNotAllowed, ResultUnknown); err != nil {
			return err
		}
	}
	if c.Duration < 0 || c.Duration > MaxDuration {
		return invalid(f("duration"), "must be between 0 and %d", MaxDuration)
	}
	if c.DurationWaiting < 0 || c.DurationWaiting > MaxDuration {
		return invalid(f("durationWaiting"), "must be between 0 and %d", MaxDuration)
	}
	if err := checkText(f("externalId"), c.ExternalID, MaxExternalIDLen, false); err != nil {
		return err
	}
	if c.RecordURL != "" {
		if err := checkText(f("recordUrl"), c.RecordURL, MaxURLLen, false); err != nil {
			return err
		}
		u, err := url.Parse(c.RecordURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return invalid(f("recordUrl"), "must be an absolute http or https URL")
		}
	}
	if err := checkText(f("externalPhone"), c.ExternalPhone, MaxPhoneLen, false); err != nil {
		return err
	}
	if err := checkText(f("clientId"), c.ClientID, MaxClientIDLen, false); err != nil {
		return err
	}
	if s := c.Source; s != nil {
		for _, p := range []struct{ name, v string }{
			{"source", s.Source}, {"medium", s.Medium}, {"campaign", s.Campaign}, {"keyword", s.Keyword}, {"content", s.Content},
		} {
			if err := checkText(f("source."+p.name), p.v, MaxSourceLen, false); err != nil {
				return err
			}
		}
	}
	return checkText(f("site"), c.Site, MaxSiteLen, false)
}

// decodeSource reads a call's source: an object of strings; null, absence,
// {} and PHP's empty array [] are none.
func decodeSource(field string, b json.RawMessage) (*Source, error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || string(b) == "null" || string(b) == "[]" {
		return nil, nil
	}
	if b[0] != '{' {
		return nil, invalid(field, "must be an object, not %s", untrusted.JSONKind(b))
	}
	var j struct {
		Source, Medium, Campaign, Keyword, Content json.RawMessage
	}
	if err := json.Unmarshal(b, &j); err != nil {
		return nil, invalid(field, "is not valid JSON")
	}
	var s Source
	for _, p := range []struct {
		name string
		raw  json.RawMessage
		dst  *string
	}{
		{"source", j.Source, &s.Source}, {"medium", j.Medium, &s.Medium}, {"campaign", j.Campaign, &s.Campaign},
		{"keyword", j.Keyword, &s.Keyword}, {"content", j.Content, &s.Content},
	} {
		v, err := jsonString(field+"."+p.name, p.raw, true)
		if err != nil {
			return nil, err
		}
		*p.dst = strings.TrimSpace(v)
	}
	if s == (Source{}) {
		return nil, nil
	}
	return &s, nil
}

// EncodeCallsUpload is the form body that uploads calls to retailCRM:
// calls=<json array>, 1 to MaxUploadCalls calls, each valid. Dates are written
// in their own location: convert them to the account's zone first.
func EncodeCallsUpload(calls []UploadCall) (url.Values, error) {
	if err := checkCount(len(calls)); err != nil {
		return nil, err
	}
	type wireCall struct {
		Date            string  `json:"date"`
		Type            string  `json:"type"`
		Phone           string  `json:"phone"`
		Code            string  `json:"code,omitempty"`
		UserID          any     `json:"userId,omitempty"`
		Result          string  `json:"result,omitempty"`
		Duration        int     `json:"duration"`
		DurationWaiting int     `json:"durationWaiting"`
		ExternalID      string  `json:"externalId,omitempty"`
		RecordURL       string  `json:"recordUrl,omitempty"`
		ExternalPhone   string  `json:"externalPhone,omitempty"`
		Site            string  `json:"site,omitempty"`
		Source          *Source `json:"source,omitempty"`
		ClientID        string  `json:"clientId,omitempty"`
	}
	out := make([]wireCall, len(calls))
	for i := range calls {
		c := &calls[i]
		if err := c.validate(fmt.Sprintf("calls[%d]", i)); err != nil {
			return nil, err
		}
		out[i] = wireCall{
			Date: c.Date.Format(DateLayout), Type: c.Type, Phone: c.Phone, Code: c.Code,
			Result: c.Result, Duration: c.Duration, DurationWaiting: c.DurationWaiting,
			ExternalID: c.ExternalID, RecordURL: c.RecordURL, ExternalPhone: c.ExternalPhone, Site: c.Site,
			Source: c.Source, ClientID: c.ClientID,
		}
		if c.UserID != "" {
			out[i].UserID = idValue(c.UserID)
		}
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("retailcrm: encode calls: %w", err)
	}
	return url.Values{"calls": {string(b)}}, nil
}
