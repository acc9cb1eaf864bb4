package retailcrm

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
)

// MsgInvalidEntity is retailCRM's errorMsg for input that failed validation,
// with the details in "errors"; the official clients recognise it by this
// text and raise their validation error (PHP v6 ValidationException, Go
// ErrValidation).
const MsgInvalidEntity = "Errors in the entity format"

// retailCRM's errorMsg texts that the official clients recognise (PHP v6
// ApiExceptionFactory, Go CreateAPIError).
const (
	MsgKeyMissing = `"apiKey" is missing.`
	MsgKeyWrong   = `Wrong "apiKey" value.`
)

// MsgNotFound is retailCRM's errorMsg for a 404: an unknown API method, or
// a phone number no client has (telephony/manager). The clients raise their
// "not found" error for it (PHP v6 NotFoundException).
const MsgNotFound = "Not found"

// WriteSuccess answers {"success":true, ...extra} with status (200 when 0).
// extra cannot override "success".
func WriteSuccess(w http.ResponseWriter, status int, extra map[string]any) {
	body := make(map[string]any, len(extra)+1)
	for k, v := range extra {
		body[k] = v
	}
	body["success"] = true
	writeJSON(w, status, body)
}

// WriteError answers {"success":false,"errorMsg":msg,"errors":errs}, leaving
// out errors when it is empty.
func WriteError(w http.ResponseWriter, status int, msg string, errs map[string]string) {
	body := struct {
		Success  bool              `json:"success"`
		ErrorMsg string            `json:"errorMsg"`
		Errors   map[string]string `json:"errors,omitempty"`
	}{false, msg, errs}
	writeJSON(w, status, body)
}

// WriteValidationError answers err the way retailCRM answers bad input: 400
// "Parameter 'x' is missing" for an absent parameter, 400 with
// MsgInvalidEntity and the field in "errors" for a bad value, 413 for an
// oversized body, 400 with the message for other request-level problems;
// anything that is not a *ValidationError is a 500 without details.
func WriteValidationError(w http.ResponseWriter, err error) {
	var ve *ValidationError
	switch {
	case errors.As(err, &ve) && errors.Is(err, ErrBodyTooLarge):
		WriteError(w, http.StatusRequestEntityTooLarge, ve.Msg, nil)
	case errors.As(err, &ve) && ve.Missing:
		WriteError(w, http.StatusBadRequest, ve.Msg, nil)
	case errors.As(err, &ve) && ve.Field == "":
		WriteError(w, http.StatusBadRequest, ve.Msg, nil)
	case errors.As(err, &ve):
		WriteError(w, http.StatusBadRequest, MsgInvalidEntity, ve.Errors())
	default:
		WriteError(w, http.StatusInternalServerError, "Internal server error", nil)
	}
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	if status == 0 {
		status = http.StatusOK
	}
	b, err := json.Marshal(body)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"success":false,"errorMsg":"Internal server error"}`)
	}
	h := w.Header()
	h.Set("Content-Type", ContentTypeJSON)
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// WriteManager answers GET /telephony/manager in retailCRM's shape:
// {"success":true}, with "manager" when res has one (the caller has
// already judged whether to name them), and "customer" and "links" when
// details is set and they are known. Numeric ids are numbers, as
// retailCRM sends them; the extension code is a string.
func WriteManager(w http.ResponseWriter, res *ManagerResult, details bool) {
	type managerOut struct {
		ID         any    `json:"id"`
		FirstName  string `json:"firstName,omitempty"`
		LastName   string `json:"lastName,omitempty"`
		Patronymic string `json:"patronymic,omitempty"`
		Email      string `json:"email,omitempty"`
		Code       string `json:"code"`
	}
	type phoneOut struct {
		Number string `json:"number"`
	}
	type customerOut struct {
		ID         any        `json:"id,omitempty"`
		ExternalID string     `json:"externalId,omitempty"`
		FirstName  string     `json:"firstName,omitempty"`
		LastName   string     `json:"lastName,omitempty"`
		Patronymic string     `json:"patronymic,omitempty"`
		Email      string     `json:"email,omitempty"`
		Phones     []phoneOut `json:"phones"`
	}
	type linksOut struct {
		NewOrder    string `json:"newOrderLink,omitempty"`
		LastOrder   string `json:"lastOrderLink,omitempty"`
		NewCustomer string `json:"newCustomerLink,omitempty"`
		Customer    string `json:"customerLink,omitempty"`
	}
	extra := map[string]any{}
	if res == nil {
		res = &ManagerResult{}
	}
	if m := res.Manager; m != nil {
		extra["manager"] = managerOut{ID: idValue(m.ID), FirstName: m.FirstName, LastName: m.LastName,
			Patronymic: m.Patronymic, Email: m.Email, Code: m.Code}
	}
	if details {
		if c := res.Customer; c != nil {
			co := customerOut{ExternalID: c.ExternalID, FirstName: c.FirstName, LastName: c.LastName,
				Patronymic: c.Patronymic, Email: c.Email, Phones: []phoneOut{}}
			if c.ID != "" {
				co.ID = idValue(c.ID)
			}
			for _, p := range c.Phones {
				co.Phones = append(co.Phones, phoneOut{p})
			}
			extra["customer"] = co
		}
		if l := res.Links; l != (Links{}) {
			extra["links"] = linksOut(l)
		}
	}
	WriteSuccess(w, http.StatusOK, extra)
}

// ParseFlag reads a 0/1 query parameter as the official clients send it:
// "0"/"1" (PHP, Go), "true"/"false" in any case (Python sends True); absent
// or empty is false. Anything else, or the parameter given twice, is a
// *ValidationError.
func ParseFlag(q url.Values, name string) (bool, error) {
	vs := q[name]
	if len(vs) > 1 {
		return false, invalid(name, "must be given once")
	}
	if len(vs) == 0 {
		return false, nil
	}
	switch strings.ToLower(strings.TrimSpace(vs[0])) {
	case "", "0", "false":
		return false, nil
	case "1", "true":
		return true, nil
	}
	return false, invalid(name, "must be 0 or 1")
}

// ManagerQuery is a GET /telephony/manager request as a PBX sends it.
type ManagerQuery struct {
	Phone        string
	Details      bool
	IgnoreStatus bool
}

// ParseManagerQuery reads and checks a manager query; a refusal is a
// *ValidationError (Missing when there is no phone). Parameters the method
// does not take (apiKey among them) are ignored, as retailCRM does.
func ParseManagerQuery(q url.Values) (ManagerQuery, error) {
	var mq ManagerQuery
	switch vs := q["phone"]; {
	case len(vs) == 0 || strings.TrimSpace(vs[0]) == "":
		return mq, &ValidationError{Field: "phone", Msg: "Parameter 'phone' is missing", Missing: true}
	case len(vs) > 1:
		return mq, invalid("phone", "must be given once")
	}
	mq.Phone = strings.TrimSpace(q.Get("phone"))
	if err := checkText("phone", mq.Phone, MaxPhoneLen, true); err != nil {
		return mq, err
	}
	var err error
	if mq.Details, err = ParseFlag(q, "details"); err != nil {
		return mq, err
	}
	if mq.IgnoreStatus, err = ParseFlag(q, "ignoreStatus"); err != nil {
		return mq, err
	}
	return mq, nil
}

// Credentials lists the API methods a telephony's key may call on a pult
// relay standing in for retailCRM, as /api/credentials names them: without
// the version, as retailCRM lists its methods ("/api/telephony/call/event"
// for PathCallEvent), which is how PBX modules compare them.
var Credentials = []string{unversioned(PathCallEvent), unversioned(PathCallsUpload), unversioned(PathManager)}

// unversioned is an API path without its version: /api/v5/x becomes /api/x.
func unversioned(path string) string { return "/api" + strings.TrimPrefix(path, APIPrefix) }

// WriteCredentials answers GET /api/credentials in retailCRM's shape: the
// methods (Credentials), the scopes they need, and the sites the key may
// act for (all of them: siteAccess access_full).
func WriteCredentials(w http.ResponseWriter, sites []string) {
	if sites == nil {
		sites = []string{}
	}
	WriteSuccess(w, http.StatusOK, map[string]any{
		"credentials":    Credentials,
		"scopes":         []string{"telephony_read", "telephony_write"},
		"siteAccess":     "access_full",
		"sitesAvailable": sites,
	})
}

// IDValue is an id as retailCRM writes it in JSON: a number when it is a
// plain decimal integer, else the string.
func IDValue(s string) any { return idValue(s) }
