package retailcrm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/pult/pult/relay/untrusted"
)

// Paths of retailCRM's API used to register the telephony and set users'
// statuses; {code} and {id} are filled in.
const (
	PathIntegrationModules = APIPrefix + "/integration-modules" // /{code} (GET), /{code}/edit (POST)
	PathUsers              = APIPrefix + "/users"               // /{id}/status (POST)
)

// Limits of the integration module.
const (
	MaxModuleCodeLen   = 255
	MaxModuleNameLen   = 255
	MaxAdditionalCodes = 1000
	MaxExternalPhones  = 1000
)

// IntegrationModule is retailCRM's registration of an integration, here a
// telephony: the "integrationModule" of POST
// /api/v5/integration-modules/{code}/edit and of GET
// /api/v5/integration-modules/{code}.
type IntegrationModule struct {
	Code       string     // code: the module's code, also in the URL
	Active     bool       // active
	Name       string     // name shown in the CRM
	Logo       string     // logo: URL of the logo (SVG)
	ClientID   string     // clientId: our secret; retailCRM sends it back on every call to the telephony
	AccountURL string     // accountUrl: the telephony's personal account
	Telephony  *Telephony // integrations.telephony; nil when the module is not a telephony
}

// Telephony is integrations.telephony of an integration module.
type Telephony struct {
	MakeCallURL          string // makeCallUrl: retailCRM GETs it to start a call
	ChangeUserStatusURL  string // changeUserStatusUrl: retailCRM GETs it when a user's status changes
	AllowEdit            bool   // allowEdit: false lets users only delete the integration, not edit it
	InputEventSupported  bool   // inputEventSupported: we send "in" events
	OutputEventSupported bool   // outputEventSupported: we send "out" events
	HangupEventSupported bool   // hangupEventSupported: we send "hangup" events
	// AdditionalCodes maps users to extensions. Users can also set them in
	// the CRM: nil leaves them as they are, an empty non-nil list clears them.
	AdditionalCodes []AdditionalCode
	// ExternalPhones maps shops to company numbers; nil and empty as for
	// AdditionalCodes.
	ExternalPhones []ExternalPhone
}

// AdditionalCode maps a CRM user to an extension (additionalCodes[]).
type AdditionalCode struct {
	UserID string // userId
	Code   string // code: the extension
}

// ExternalPhone maps a shop to a company number (externalPhones[]).
type ExternalPhone struct {
	SiteCode      string // siteCode: the shop's code
	ExternalPhone string // externalPhone
}

// Validate checks m the way retailCRM would; it returns a *ValidationError
// naming the field, e.g. "integrationModule.integrations.telephony.additionalCodes[1].code".
func (m *IntegrationModule) Validate() error {
	const p = "integrationModule."
	if err := checkModuleCode(p+"code", m.Code); err != nil {
		return err
	}
	if err := checkText(p+"name", strings.TrimSpace(m.Name), MaxModuleNameLen, true); err != nil {
		return err
	}
	if err := checkText(p+"clientId", strings.TrimSpace(m.ClientID), MaxClientIDLen, true); err != nil {
		return err
	}
	if err := checkURL(p+"logo", m.Logo); err != nil {
		return err
	}
	if err := checkURL(p+"accountUrl", m.AccountURL); err != nil {
		return err
	}
	t := m.Telephony
	if t == nil {
		return nil
	}
	const tp = p + "integrations.telephony."
	if err := checkURL(tp+"makeCallUrl", t.MakeCallURL); err != nil {
		return err
	}
	if err := checkURL(tp+"changeUserStatusUrl", t.ChangeUserStatusURL); err != nil {
		return err
	}
	if len(t.AdditionalCodes) > MaxAdditionalCodes {
		return invalid(tp+"additionalCodes", "must have at most %d elements", MaxAdditionalCodes)
	}
	users := map[string]int{}
	for i, ac := range t.AdditionalCodes {
		f := fmt.Sprintf("%sadditionalCodes[%d].", tp, i)
		if err := checkText(f+"userId", strings.TrimSpace(ac.UserID), MaxIDLen, true); err != nil {
			return err
		}
		if j, dup := users[ac.UserID]; dup {
			return invalid(f+"userId", "user %s already has a code in additionalCodes[%d]", ac.UserID, j)
		}
		users[ac.UserID] = i
		if err := checkCode(f+"code", ac.Code, true); err != nil {
			return err
		}
	}
	if len(t.ExternalPhones) > MaxExternalPhones {
		return invalid(tp+"externalPhones", "must have at most %d elements", MaxExternalPhones)
	}
	for i, ep := range t.ExternalPhones {
		f := fmt.Sprintf("%sexternalPhones[%d].", tp, i)
		if err := checkText(f+"siteCode", strings.TrimSpace(ep.SiteCode), MaxSiteLen, true); err != nil {
			return err
		}
		if err := checkText(f+"externalPhone", strings.TrimSpace(ep.ExternalPhone), MaxPhoneLen, true); err != nil {
			return err
		}
	}
	return nil
}

// checkModuleCode enforces a module code: 1–255 letters, digits, "-", "_"
// or "." (it goes into the URL path unescaped).
func checkModuleCode(field, s string) error {
	if s == "" {
		return invalid(field, "is required")
	}
	if len(s) > MaxModuleCodeLen {
		return invalid(field, "must be at most %d characters", MaxModuleCodeLen)
	}
	if s == "." || s == ".." {
		return invalid(field, "must not be %q", s)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '-' || c == '_' || c == '.') {
			return invalid(field, "must contain only letters, digits, '-', '_' and '.'")
		}
	}
	return nil
}

func checkURL(field, s string) error {
	if s == "" {
		return nil
	}
	if err := checkText(field, s, MaxURLLen, false); err != nil {
		return err
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return invalid(field, "must be an absolute http or https URL")
	}
	return nil
}

type moduleWire struct {
	Code            string `json:"code"`
	IntegrationCode string `json:"integrationCode"`
	Active          bool   `json:"active"`
	Name            string `json:"name"`
	Logo            string `json:"logo,omitempty"`
	ClientID        string `json:"clientId"`
	AccountURL      string `json:"accountUrl,omitempty"`
	Integrations    *struct {
		Telephony *telephonyWire `json:"telephony,omitempty"`
	} `json:"integrations,omitempty"`
}

type telephonyWire struct {
	MakeCallURL          string               `json:"makeCallUrl,omitempty"`
	AllowEdit            bool                 `json:"allowEdit"`
	InputEventSupported  bool                 `json:"inputEventSupported"`
	OutputEventSupported bool                 `json:"outputEventSupported"`
	HangupEventSupported bool                 `json:"hangupEventSupported"`
	AdditionalCodes      []additionalCodeWire `json:"additionalCodes,omitzero"`
	ExternalPhones       []externalPhoneWire  `json:"externalPhones,omitzero"`
	ChangeUserStatusURL  string               `json:"changeUserStatusUrl,omitempty"`
}

type additionalCodeWire struct {
	UserID any    `json:"userId"`
	Code   string `json:"code"`
}

type externalPhoneWire struct {
	SiteCode      string `json:"siteCode"`
	ExternalPhone string `json:"externalPhone"`
}

// MarshalJSON writes m in retailCRM's wire form, with the types of
// retailCRM's own models (api-client-php v6 IntegrationModule,
// SerializedAdditionalCodes): integrationCode beside code, booleans always,
// additionalCodes[].userId as a number (when numeric) and code as a string. A nil AdditionalCodes or ExternalPhones is left
// out (what users set in the CRM stays); an empty non-nil one is sent as []
// (clearing it). It does not validate; EncodeIntegrationModule does.
func (m IntegrationModule) MarshalJSON() ([]byte, error) {
	w := moduleWire{Code: m.Code, IntegrationCode: m.Code, Active: m.Active, Name: m.Name, Logo: m.Logo, ClientID: m.ClientID, AccountURL: m.AccountURL}
	if t := m.Telephony; t != nil {
		tw := &telephonyWire{
			MakeCallURL: t.MakeCallURL, ChangeUserStatusURL: t.ChangeUserStatusURL, AllowEdit: t.AllowEdit,
			InputEventSupported: t.InputEventSupported, OutputEventSupported: t.OutputEventSupported,
			HangupEventSupported: t.HangupEventSupported,
		}
		if t.AdditionalCodes != nil {
			tw.AdditionalCodes = []additionalCodeWire{}
		}
		if t.ExternalPhones != nil {
			tw.ExternalPhones = []externalPhoneWire{}
		}
		for _, ac := range t.AdditionalCodes {
			tw.AdditionalCodes = append(tw.AdditionalCodes, additionalCodeWire{UserID: idValue(ac.UserID), Code: ac.Code})
		}
		for _, ep := range t.ExternalPhones {
			tw.ExternalPhones = append(tw.ExternalPhones, externalPhoneWire(ep))
		}
		w.Integrations = &struct {
			Telephony *telephonyWire `json:"telephony,omitempty"`
		}{tw}
	}
	return json.Marshal(w)
}

// UnmarshalJSON reads an integration module as retailCRM answers it,
// tolerantly: ids and codes as strings or numbers, booleans as true/false,
// 0/1 or "0"/"1", unknown keys ignored. An absent additionalCodes or
// externalPhones stays nil, an empty one becomes an empty slice. It does not
// validate.
func (m *IntegrationModule) UnmarshalJSON(b []byte) error {
	var w struct {
		Code         FlexString      `json:"code"`
		Active       json.RawMessage `json:"active"`
		Name         FlexString      `json:"name"`
		Logo         FlexString      `json:"logo"`
		ClientID     FlexString      `json:"clientId"`
		AccountURL   FlexString      `json:"accountUrl"`
		Integrations json.RawMessage `json:"integrations"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	out := IntegrationModule{
		Code: string(w.Code), Name: string(w.Name), Logo: string(w.Logo),
		ClientID: string(w.ClientID), AccountURL: string(w.AccountURL),
	}
	var err error
	if out.Active, err = flexBool("active", w.Active); err != nil {
		return err
	}
	var integ struct {
		Telephony json.RawMessage `json:"telephony"`
	}
	if ok, err := optionalObject(w.Integrations, &integ); err != nil {
		return fmt.Errorf("integrations: %v", err)
	} else if ok {
		var t struct {
			MakeCallURL          FlexString      `json:"makeCallUrl"`
			ChangeUserStatusURL  FlexString      `json:"changeUserStatusUrl"`
			AllowEdit            json.RawMessage `json:"allowEdit"`
			InputEventSupported  json.RawMessage `json:"inputEventSupported"`
			OutputEventSupported json.RawMessage `json:"outputEventSupported"`
			HangupEventSupported json.RawMessage `json:"hangupEventSupported"`
			AdditionalCodes      []struct {
				UserID FlexString `json:"userId"`
				Code   FlexString `json:"code"`
			} `json:"additionalCodes"`
			ExternalPhones []struct {
				SiteCode      FlexString `json:"siteCode"`
				ExternalPhone FlexString `json:"externalPhone"`
			} `json:"externalPhones"`
		}
		if ok, err := optionalObject(integ.Telephony, &t); err != nil {
			return fmt.Errorf("integrations.telephony: %v", err)
		} else if ok {
			tel := &Telephony{MakeCallURL: string(t.MakeCallURL), ChangeUserStatusURL: string(t.ChangeUserStatusURL)}
			for _, f := range []struct {
				name string
				raw  json.RawMessage
				dst  *bool
			}{
				{"allowEdit", t.AllowEdit, &tel.AllowEdit},
				{"inputEventSupported", t.InputEventSupported, &tel.InputEventSupported},
				{"outputEventSupported", t.OutputEventSupported, &tel.OutputEventSupported},
				{"hangupEventSupported", t.HangupEventSupported, &tel.HangupEventSupported},
			} {
				if *f.dst, err = flexBool(f.name, f.raw); err != nil {
					return err
				}
			}
			if t.AdditionalCodes != nil {
				tel.AdditionalCodes = make([]AdditionalCode, 0, len(t.AdditionalCodes))
			}
			for _, ac := range t.AdditionalCodes {
				tel.AdditionalCodes = append(tel.AdditionalCodes, AdditionalCode{UserID: string(ac.UserID), Code: string(ac.Code)})
			}
			if t.ExternalPhones != nil {
				tel.ExternalPhones = make([]ExternalPhone, 0, len(t.ExternalPhones))
			}
			for _, ep := range t.ExternalPhones {
				tel.ExternalPhones = append(tel.ExternalPhones, ExternalPhone{SiteCode: string(ep.SiteCode), ExternalPhone: string(ep.ExternalPhone)})
			}
			out.Telephony = tel
		}
	}
	*m = out
	return nil
}

func flexBool(field string, b json.RawMessage) (bool, error) {
	switch string(bytes.TrimSpace(b)) {
	case "", "null", "false", "0", `"0"`, `"false"`, `""`:
		return false, nil
	case "true", "1", `"1"`, `"true"`:
		return true, nil
	}
	return false, fmt.Errorf("%s: want a boolean, got %s", field, untrusted.JSONKind(bytes.TrimSpace(b)))
}

// EncodeIntegrationModule is the form body that registers or updates m:
// integrationModule=<json>. m must be valid.
func EncodeIntegrationModule(m IntegrationModule) (url.Values, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("retailcrm: encode integration module: %w", err)
	}
	return url.Values{"integrationModule": {string(b)}}, nil
}

// ParseIntegrationModule reads an integration module edit as retailCRM
// receives it: a POST form body of at most maxBody bytes (DefaultMaxBody
// when 0) whose field "integrationModule" is a JSON object. The module is
// validated; refusals are *ValidationError.
func ParseIntegrationModule(r *http.Request, maxBody int64) (IntegrationModule, error) {
	form, err := ReadForm(r, maxBody)
	if err != nil {
		return IntegrationModule{}, err
	}
	raw, err := formJSON(form, "integrationModule")
	if err != nil {
		return IntegrationModule{}, err
	}
	b := bytes.TrimSpace([]byte(raw))
	if len(b) == 0 || b[0] != '{' {
		return IntegrationModule{}, invalid("integrationModule", "must be a JSON object")
	}
	var m IntegrationModule
	if err := json.Unmarshal(b, &m); err != nil {
		return IntegrationModule{}, invalid("integrationModule", "is not valid: %v", err)
	}
	if err := m.Validate(); err != nil {
		return IntegrationModule{}, err
	}
	return m, nil
}
