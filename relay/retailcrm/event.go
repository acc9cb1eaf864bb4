package retailcrm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// CallEvent is the "event" of POST /api/v5/telephony/call/event: a PBX tells
// the CRM that a call rings (in), is being placed (out) or ended (hangup).
type CallEvent struct {
	Phone            string   // the other party, as the PBX wrote it
	Type             string   // TypeIn, TypeOut, TypeHangup (or pult's TypeAnswer)
	Codes            []string // extension codes the call concerns
	UserIDs          []string // CRM user ids the call concerns
	Site             string   // shop code
	CallExternalID   string   // the PBX's call id
	ExternalPhone    string   // the company's number that was called
	HangupStatus     string   // hangup only: answered, busy, cancel, failed, "no answered"; "" unknown
	WebAnalyticsData json.RawMessage
}

// eventJSON is the wire form, every field raw so each can be read tolerantly
// and reported by name.
type eventJSON struct {
	Phone            json.RawMessage `json:"phone"`
	Type             json.RawMessage `json:"type"`
	Codes            json.RawMessage `json:"codes"`
	UserIDs          json.RawMessage `json:"userIds"`
	Site             json.RawMessage `json:"site"`
	CallExternalID   json.RawMessage `json:"callExternalId"`
	ExternalPhone    json.RawMessage `json:"externalPhone"`
	HangupStatus     json.RawMessage `json:"hangupStatus"`
	WebAnalyticsData json.RawMessage `json:"webAnalyticsData"`
}

// ParseCallEvent reads a call event as retailCRM receives it: a POST body,
// urlencoded or multipart, of at most maxBody bytes (DefaultMaxBody when 0),
// whose form field "event" is JSON. It is tolerant where retailCRM is (codes
// and userIds as numbers or strings, a single value instead of an array,
// null for absent) and strict where it must be. Every refusal is a
// *ValidationError; one over the size limit also wraps ErrBodyTooLarge.
func ParseCallEvent(r *http.Request, maxBody int64) (CallEvent, error) {
	form, err := ReadForm(r, maxBody)
	if err != nil {
		return CallEvent{}, err
	}
	return DecodeCallEvent(form)
}

// DecodeCallEvent reads the call event in a form read by [ReadForm]; see
// [ParseCallEvent].
func DecodeCallEvent(form url.Values) (CallEvent, error) {
	raw, err := formJSON(form, "event")
	if err != nil {
		return CallEvent{}, err
	}
	return decodeCallEvent([]byte(raw))
}

func decodeCallEvent(b []byte) (CallEvent, error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '{' {
		return CallEvent{}, invalid("event", "must be a JSON object")
	}
	var j eventJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return CallEvent{}, invalid("event", "is not valid JSON")
	}
	var ev CallEvent
	var errs []error
	str := func(dst *string, field string, raw json.RawMessage, numbers bool) {
		s, err := jsonString(field, raw, numbers)
		*dst = strings.TrimSpace(s)
		errs = append(errs, err)
	}
	str(&ev.Type, "type", j.Type, false)
	str(&ev.Phone, "phone", j.Phone, true)
	str(&ev.HangupStatus, "hangupStatus", j.HangupStatus, false)
	str(&ev.Site, "site", j.Site, false)
	str(&ev.CallExternalID, "callExternalId", j.CallExternalID, true)
	str(&ev.ExternalPhone, "externalPhone", j.ExternalPhone, true)
	var err error
	ev.Codes, err = jsonList("codes", j.Codes, MaxCodes)
	errs = append(errs, err)
	ev.UserIDs, err = jsonList("userIds", j.UserIDs, MaxCodes)
	errs = append(errs, err)
	for _, err := range errs {
		if err != nil {
			return CallEvent{}, err
		}
	}
	for i := range ev.Codes {
		ev.Codes[i] = strings.TrimSpace(ev.Codes[i])
	}
	for i := range ev.UserIDs {
		ev.UserIDs[i] = strings.TrimSpace(ev.UserIDs[i])
	}
	// PHP v5 sends an empty PHP array, [], for "none".
	if w := bytes.TrimSpace(j.WebAnalyticsData); len(w) > 0 && string(w) != "null" && string(w) != "[]" && string(w) != "{}" {
		ev.WebAnalyticsData = json.RawMessage(bytes.Clone(w))
	}
	if err := ev.Validate(); err != nil {
		return CallEvent{}, err
	}
	return ev, nil
}

// Validate checks ev the way retailCRM would, except that it also accepts
// pult's TypeAnswer; it returns a *ValidationError.
func (ev *CallEvent) Validate() error {
	if ev.Type == "" {
		return invalid("type", "is required")
	}
	if err := oneOf("type", ev.Type, TypeIn, TypeOut, TypeHangup, TypeAnswer); err != nil {
		return err
	}
	if strings.TrimSpace(ev.Phone) == "" {
		return invalid("phone", "is required")
	}
	if err := checkText("phone", ev.Phone, MaxPhoneLen, true); err != nil {
		return err
	}
	if ev.HangupStatus != "" {
		if ev.Type != TypeHangup {
			return invalid("hangupStatus", "is allowed only with type %q", TypeHangup)
		}
		if err := oneOf("hangupStatus", ev.HangupStatus, HangupAnswered, HangupBusy, HangupCancel, HangupFailed, HangupNoAnswer); err != nil {
			return err
		}
	}
	if len(ev.Codes) > MaxCodes {
		return invalid("codes", "must have at most %d elements", MaxCodes)
	}
	for i, c := range ev.Codes {
		if err := checkCode(fmt.Sprintf("codes[%d]", i), c, true); err != nil {
			return err
		}
	}
	if len(ev.UserIDs) > MaxCodes {
		return invalid("userIds", "must have at most %d elements", MaxCodes)
	}
	for i, u := range ev.UserIDs {
		if err := checkText(fmt.Sprintf("userIds[%d]", i), u, MaxIDLen, true); err != nil {
			return err
		}
	}
	if err := checkText("site", ev.Site, MaxSiteLen, false); err != nil {
		return err
	}
	if err := checkText("callExternalId", ev.CallExternalID, MaxExternalIDLen, false); err != nil {
		return err
	}
	if err := checkText("externalPhone", ev.ExternalPhone, MaxPhoneLen, false); err != nil {
		return err
	}
	if w := ev.WebAnalyticsData; len(w) > 0 {
		if len(w) > MaxWebAnalyticsLen {
			return invalid("webAnalyticsData", "must be at most %d bytes", MaxWebAnalyticsLen)
		}
		if !json.Valid(w) {
			return invalid("webAnalyticsData", "is not valid JSON")
		}
	}
	return nil
}

// EncodeCallEvent is the form body that sends ev to retailCRM: event=<json>.
// Numeric user ids go as numbers. Only retailCRM's types are encoded:
// TypeAnswer is refused.
func EncodeCallEvent(ev CallEvent) (url.Values, error) {
	if err := ev.Validate(); err != nil {
		return nil, err
	}
	if ev.Type == TypeAnswer {
		return nil, invalid("type", "%q is pult's extension; retailCRM accepts only %q, %q and %q", TypeAnswer, TypeIn, TypeOut, TypeHangup)
	}
	type wireEvent struct {
		Phone            string          `json:"phone"`
		Type             string          `json:"type"`
		Codes            []string        `json:"codes,omitempty"`
		UserIDs          []any           `json:"userIds,omitempty"`
		Site             string          `json:"site,omitempty"`
		CallExternalID   string          `json:"callExternalId,omitempty"`
		ExternalPhone    string          `json:"externalPhone,omitempty"`
		HangupStatus     string          `json:"hangupStatus,omitempty"`
		WebAnalyticsData json.RawMessage `json:"webAnalyticsData,omitempty"`
	}
	we := wireEvent{
		Phone: ev.Phone, Type: ev.Type, Codes: ev.Codes, Site: ev.Site,
		CallExternalID: ev.CallExternalID, ExternalPhone: ev.ExternalPhone,
		HangupStatus: ev.HangupStatus, WebAnalyticsData: ev.WebAnalyticsData,
	}
	for _, u := range ev.UserIDs {
		we.UserIDs = append(we.UserIDs, idValue(u))
	}
	b, err := json.Marshal(we)
	if err != nil {
		return nil, fmt.Errorf("retailcrm: encode call event: %w", err)
	}
	return url.Values{"event": {string(b)}}, nil
}
