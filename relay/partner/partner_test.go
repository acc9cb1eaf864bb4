package partner

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	now := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"":                              0,
		"0":                             0,
		"-5":                            0,
		"5":                             5 * time.Second,
		"120":                           2 * time.Minute,
		"soon":                          0,
		"99999999":                      time.Hour,
		"99999999999999999999999":       0,
		"Fri, 01 Mar 2024 12:00:30 GMT": 30 * time.Second,
		"Fri, 01 Mar 2024 12:01:30 GMT": 90 * time.Second,
		"Fri, 01 Mar 2024 11:00:00 GMT": 0,
		"Sat, 01 Mar 2025 12:00:00 GMT": time.Hour,
	} {
		if got := ParseRetryAfter(in, now, time.Hour); got != want {
			t.Errorf("ParseRetryAfter(%q) = %v, want %v", in, got, want)
		}
	}
	// The outbox's wider limit.
	if got := ParseRetryAfter("Sat, 01 Mar 2025 12:00:00 GMT", now, 365*24*time.Hour); got != 365*24*time.Hour {
		t.Errorf("a year ahead with a year's limit = %v", got)
	}
}

func TestCheckResponse(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			w.WriteHeader(201)
		case "/crm":
			w.WriteHeader(400)
			io.WriteString(w, `{"success":false,"errorMsg":"Order is not loaded","errors":{"externalId":"is taken"}}`)
		case "/busy":
			w.Header().Set("Retry-After", "7")
			w.WriteHeader(503)
			io.WriteString(w, "<html><body>Service Unavailable</body></html>")
		case "/text":
			w.WriteHeader(409)
			io.WriteString(w, "  duplicate\n   call  ")
		}
	}))
	defer srv.Close()
	get := func(path string) error {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		return CheckResponse("crm", resp)
	}
	if err := get("/ok"); err != nil {
		t.Errorf("201: %v", err)
	}
	var se *StatusError
	if err := get("/crm"); !errors.As(err, &se) || se.Temporary() || se.Message != "Order is not loaded (externalId: is taken)" ||
		err.Error() != "crm: HTTP 400 Bad Request: Order is not loaded (externalId: is taken)" {
		t.Errorf("400: %v", err)
	}
	if err := get("/busy"); !errors.As(err, &se) || !se.Temporary() || se.RetryDelay() != 7*time.Second || se.Message != "" {
		t.Errorf("503: %#v", err)
	}
	if err := get("/text"); !errors.As(err, &se) || se.Temporary() || se.PartnerMessage() != "duplicate call" {
		t.Errorf("409: %#v", err)
	}
}

func TestMessageFromBody(t *testing.T) {
	long := strings.Repeat("я", 400)
	for in, want := range map[string]string{
		`{"message":"Invalid token"}`:            "Invalid token",
		`{"error":{"message":"quota exceeded"}}`: "quota exceeded",
		`{"errors":["a","b"]}`:                   "a; b",
		`<!doctype html><p>oops</p>`:             "",
		`{"error":`:                              `{"error":`,
		long:                                     strings.Repeat("я", 250) + "…",
	} {
		if got := MessageFromBody([]byte(in)); got != want {
			t.Errorf("MessageFromBody(%.30q) = %q, want %q", in, got, want)
		}
	}
}

// One list of retryable statuses for every partner.
func TestTemporaryStatus(t *testing.T) {
	for code, want := range map[int]bool{
		200: false, 302: false, 400: false, 401: false, 404: false, 409: false, 422: false,
		408: true, 425: true, 429: true, 500: true, 502: true, 503: true, 504: true, 599: true,
		501: false,
	} {
		if got := TemporaryStatus(code); got != want {
			t.Errorf("TemporaryStatus(%d) = %v, want %v", code, got, want)
		}
	}
}
