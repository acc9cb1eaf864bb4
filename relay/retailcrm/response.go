package retailcrm

import (
	"encoding/json"
	"errors"
	"net/http"
)

// MsgInvalidParams is retailCRM's errorMsg for input that failed validation;
// the details go in "errors".
const MsgInvalidParams = "Errors in the input parameters"

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
// with MsgInvalidParams and the field in "errors", 413 for an oversized body,
// 400 with the message for other request-level problems; anything that is not
// a *ValidationError is a 500 without details.
func WriteValidationError(w http.ResponseWriter, err error) {
	var ve *ValidationError
	switch {
	case errors.As(err, &ve) && errors.Is(err, ErrBodyTooLarge):
		WriteError(w, http.StatusRequestEntityTooLarge, ve.Msg, nil)
	case errors.As(err, &ve) && ve.Field == "":
		WriteError(w, http.StatusBadRequest, ve.Msg, nil)
	case errors.As(err, &ve):
		WriteError(w, http.StatusBadRequest, MsgInvalidParams, ve.Errors())
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
