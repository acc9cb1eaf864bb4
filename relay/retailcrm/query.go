package retailcrm

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// MakeCall is the query retailCRM sends to a telephony's makeCallUrl when a
// user clicks a phone number: GET {makeCallUrl}?clientId&code&phone&userId
// [&externalPhone]. The telephony answers 200 when the call started; any other
// status is shown to the user as a failure.
type MakeCall struct {
	ClientID      string // the secret the telephony registered
	Code          string // extension of the user who calls
	Phone         string // number to dial
	UserID        string // CRM user id
	ExternalPhone string // company number to call from, if configured
}

// Query is m as retailCRM sends it; externalPhone only when set.
func (m MakeCall) Query() url.Values {
	q := url.Values{
		"clientId": {m.ClientID},
		"code":     {m.Code},
		"phone":    {m.Phone},
		"userId":   {m.UserID},
	}
	if m.ExternalPhone != "" {
		q.Set("externalPhone", m.ExternalPhone)
	}
	return q
}

// ParseMakeCall reads a makeCallUrl query. clientId, code, phone and userId
// are required, each given once; unknown parameters are ignored. A leading
// "+" that arrived unescaped (retailCRM's own example does that, and it
// decodes as a space) is restored in phone and externalPhone.
func ParseMakeCall(q url.Values) (MakeCall, error) {
	var m MakeCall
	var err error
	if m.ClientID, err = param(q, "clientId", true); err != nil {
		return MakeCall{}, err
	}
	if m.Code, err = param(q, "code", true); err != nil {
		return MakeCall{}, err
	}
	if m.Phone, err = param(q, "phone", true); err != nil {
		return MakeCall{}, err
	}
	if m.UserID, err = param(q, "userId", true); err != nil {
		return MakeCall{}, err
	}
	if m.ExternalPhone, err = param(q, "externalPhone", false); err != nil {
		return MakeCall{}, err
	}
	m.Phone, m.ExternalPhone = restorePlus(m.Phone), restorePlus(m.ExternalPhone)
	return m, m.Validate()
}

// Validate checks m's fields; it returns a *ValidationError.
func (m MakeCall) Validate() error {
	if err := checkText("clientId", m.ClientID, MaxClientIDLen, true); err != nil {
		return err
	}
	if err := checkCode("code", m.Code, true); err != nil {
		return err
	}
	if strings.TrimSpace(m.Phone) == "" {
		return invalid("phone", "is required")
	}
	if err := checkText("phone", m.Phone, MaxPhoneLen, true); err != nil {
		return err
	}
	if err := checkText("userId", m.UserID, MaxIDLen, true); err != nil {
		return err
	}
	return checkText("externalPhone", m.ExternalPhone, MaxPhoneLen, false)
}

// ChangeStatus is the query retailCRM sends to a telephony's
// changeUserStatusUrl when a user's status changes: GET
// {changeUserStatusUrl}?clientId&userId&code&status. Body and status of the
// answer are ignored.
type ChangeStatus struct {
	ClientID string
	UserID   string
	Code     string
	Status   string // StatusFree, StatusBusy, StatusDinner or StatusBreak
}

// Query is s as retailCRM sends it.
func (s ChangeStatus) Query() url.Values {
	return url.Values{
		"clientId": {s.ClientID},
		"userId":   {s.UserID},
		"code":     {s.Code},
		"status":   {s.Status},
	}
}

// ParseChangeStatus reads a changeUserStatusUrl query: clientId, userId, code
// and status are required, each given once; unknown parameters are ignored.
func ParseChangeStatus(q url.Values) (ChangeStatus, error) {
	var s ChangeStatus
	var err error
	if s.ClientID, err = param(q, "clientId", true); err != nil {
		return ChangeStatus{}, err
	}
	if s.UserID, err = param(q, "userId", true); err != nil {
		return ChangeStatus{}, err
	}
	if s.Code, err = param(q, "code", true); err != nil {
		return ChangeStatus{}, err
	}
	if s.Status, err = param(q, "status", true); err != nil {
		return ChangeStatus{}, err
	}
	return s, s.Validate()
}

// Validate checks s's fields; it returns a *ValidationError.
func (s ChangeStatus) Validate() error {
	if err := checkText("clientId", s.ClientID, MaxClientIDLen, true); err != nil {
		return err
	}
	if err := checkText("userId", s.UserID, MaxIDLen, true); err != nil {
		return err
	}
	if err := checkCode("code", s.Code, true); err != nil {
		return err
	}
	return oneOf("status", s.Status, StatusFree, StatusBusy, StatusDinner, StatusBreak)
}

// ClientIDEqual compares a received clientId with ours in constant time.
func ClientIDEqual(got, want string) bool {
	return want != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// param returns the single value of name, refusing repeats and, when
// required, absence and blanks.
func param(q url.Values, name string, required bool) (string, error) {
	vs := q[name]
	switch {
	case len(vs) > 1:
		return "", invalid(name, "is given %d times", len(vs))
	case len(vs) == 0 || strings.TrimSpace(vs[0]) == "":
		if required {
			return "", invalid(name, "is required")
		}
		return "", nil
	}
	return vs[0], nil
}

// restorePlus undoes the decoding of an unescaped leading "+" as a space.
func restorePlus(p string) string {
	if len(p) > 1 && p[0] == ' ' && '0' <= p[1] && p[1] <= '9' {
		return "+" + p[1:]
	}
	return strings.TrimSpace(p)
}

// BuildURL appends q to base, a configured absolute http(s) URL that may
// already carry a query: parameters of both are kept, and where a name is in
// both, q's values win. A fragment in base is dropped (it is never sent).
func BuildURL(base string, q url.Values) (string, error) {
	// Errors do not quote base: a configured URL may carry a secret.
	u, err := url.Parse(strings.TrimSpace(base))
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return "", fmt.Errorf("retailcrm: bad URL: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", errors.New("retailcrm: the URL is not an absolute http or https URL")
	}
	merged, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return "", fmt.Errorf("retailcrm: bad query in URL: %w", err)
	}
	for k, vs := range q {
		merged[k] = append([]string(nil), vs...)
	}
	u.RawQuery = merged.Encode()
	u.Fragment, u.RawFragment = "", ""
	return u.String(), nil
}
