package retailcrm

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestWriteSuccess(t *testing.T) {
	rec := httptest.NewRecorder()
	WriteSuccess(rec, 0, map[string]any{"notExistCodes": []string{"300"}, "success": false})
	if rec.Code != http.StatusOK {
		t.Errorf("status %d", rec.Code)
	}
	if got := rec.Header().Get("Content-Type"); got != "application/json; charset=utf-8" {
		t.Errorf("Content-Type %q", got)
	}
	if got, want := rec.Body.String(), `{"notExistCodes":["300"],"success":true}`+"\n"; got != want {
		t.Errorf("body %s, want %s", got, want)
	}

	rec = httptest.NewRecorder()
	WriteSuccess(rec, http.StatusCreated, nil)
	if rec.Code != http.StatusCreated || rec.Body.String() != `{"success":true}`+"\n" {
		t.Errorf("%d %s", rec.Code, rec.Body)
	}

	rec = httptest.NewRecorder()
	WriteSuccess(rec, 0, map[string]any{"bad": func() {}})
	if rec.Code != http.StatusInternalServerError {
		t.Errorf("unencodable extra: %d %s", rec.Code, rec.Body)
	}
}

func TestWriteError(t *testing.T) {
	rec := httptest.NewRecorder()
	WriteError(rec, http.StatusForbidden, `Wrong "apiKey" value.`, nil)
	if got, want := rec.Body.String(), string(fixture(t, "error_wrong_key.json")); !jsonEqual(t, got, want) {
		t.Errorf("body %s, want %s", got, want)
	}
	if rec.Code != http.StatusForbidden || rec.Header().Get("Content-Type") != ContentTypeJSON {
		t.Errorf("%d %q", rec.Code, rec.Header().Get("Content-Type"))
	}

	rec = httptest.NewRecorder()
	WriteError(rec, http.StatusBadRequest, "Errors in the input parameters", map[string]string{"phone": "This value should not be blank."})
	if got, want := rec.Body.String(), string(fixture(t, "error_validation.json")); !jsonEqual(t, got, want) {
		t.Errorf("body %s, want %s", got, want)
	}
}

func TestWriteValidationError(t *testing.T) {
	tests := []struct {
		err    error
		status int
		body   string
	}{
		{invalid("phone", "is required"), 400, `{"success":false,"errorMsg":"Errors in the entity format","errors":{"phone":"is required"}}`},
		{&ValidationError{Field: "event", Msg: "Parameter 'event' is missing", Missing: true}, 400, `{"success":false,"errorMsg":"Parameter 'event' is missing"}`},
		{&ValidationError{Msg: "request body exceeds 10 bytes", err: ErrBodyTooLarge}, 413, `{"success":false,"errorMsg":"request body exceeds 10 bytes"}`},
		{invalid("", "Content-Type must be x"), 400, `{"success":false,"errorMsg":"Content-Type must be x"}`},
		{errors.New("disk on fire"), 500, `{"success":false,"errorMsg":"Internal server error"}`},
	}
	for _, tt := range tests {
		rec := httptest.NewRecorder()
		WriteValidationError(rec, tt.err)
		if rec.Code != tt.status || !jsonEqual(t, rec.Body.String(), tt.body) {
			t.Errorf("%v: %d %s, want %d %s", tt.err, rec.Code, rec.Body, tt.status, tt.body)
		}
	}
}

// /api/credentials lists the telephony methods without their version, as
// retailCRM lists every method ("/api/integration-modules/{code}"), so a
// PBX module that looks for "/api/telephony/call/event" finds it.
func TestWriteCredentials(t *testing.T) {
	rec := httptest.NewRecorder()
	WriteCredentials(rec, []string{"shop1", "shop2"})
	want := `{"credentials":["/api/telephony/call/event","/api/telephony/calls/upload","/api/telephony/manager"],` +
		`"scopes":["telephony_read","telephony_write"],"siteAccess":"access_full","sitesAvailable":["shop1","shop2"],"success":true}`
	if rec.Code != http.StatusOK || !jsonEqual(t, rec.Body.String(), want) {
		t.Errorf("%d %s, want %s", rec.Code, rec.Body, want)
	}
	rec = httptest.NewRecorder()
	WriteCredentials(rec, nil)
	if !strings.Contains(rec.Body.String(), `"sitesAvailable":[]`) {
		t.Errorf("no sites: %s", rec.Body)
	}
}
