package outbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pult/pult/relay/calltouch"
	"github.com/pult/pult/relay/qolio"
	"github.com/pult/pult/relay/retailcrm"
)

func TestBackoffIsCappedFullJitter(t *testing.T) {
	base, max := 100*time.Millisecond, 2*time.Second
	for attempt := uint64(1); attempt < 100; attempt++ {
		ceil := max
		if attempt < 10 {
			if c := base << (attempt - 1); c < max {
				ceil = c
			}
		}
		var lo, hi time.Duration = time.Hour, 0
		for i := 0; i < 2000; i++ {
			d := Backoff(attempt, base, max)
			if d < time.Millisecond || d > ceil {
				t.Fatalf("attempt %d: %s outside [1ms, %s]", attempt, d, ceil)
			}
			lo, hi = min(lo, d), maxDur(hi, d)
		}
		// Full jitter spreads over the whole range, not just near the top.
		if lo > ceil/4 || hi < ceil*3/4 {
			t.Fatalf("attempt %d: delays %s..%s do not spread over [0, %s]", attempt, lo, hi, ceil)
		}
	}
}

func maxDur(a, b time.Duration) time.Duration {
	if a > b {
		return a
	}
	return b
}

// apiError is how a partner package reports an answer without importing
// this one (retailcrm.APIError has the same shape).
type apiError struct {
	status int
	msg    string
	after  time.Duration
}

func (e *apiError) Error() string             { return fmt.Sprintf("partner: %d: %s", e.status, e.msg) }
func (e *apiError) Temporary() bool           { return e.status == 429 || e.status >= 500 }
func (e *apiError) RetryAfter() time.Duration { return e.after }
func (e *apiError) PartnerMessage() string    { return e.msg }

// delayError names its wait RetryDelay, as retailcrm.APIError must.
type delayError struct{ after time.Duration }

func (e *delayError) Error() string             { return "partner: slow down" }
func (e *delayError) Temporary() bool           { return true }
func (e *delayError) RetryDelay() time.Duration { return e.after }

func TestClassify(t *testing.T) {
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	_, refused := http.Get(closed.URL)
	if refused == nil {
		t.Fatal("a closed server answered")
	}
	deadline, cancel := context.WithTimeout(context.Background(), 0)
	defer cancel()
	<-deadline.Done()
	for _, tc := range []struct {
		name string
		err  error
		want verdict
	}{
		{"plain", errors.New("boom"), verdict{}},
		{"Permanent", Permanent(errors.New("bad payload")), verdict{permanent: true}},
		{"wrapped Permanent", fmt.Errorf("x: %w", Permanent(errors.New("bad"))), verdict{permanent: true}},
		{"partner 400", fmt.Errorf("send: %w", &apiError{status: 400, msg: "Unknown user"}), verdict{permanent: true, message: "Unknown user"}},
		{"partner 503 with Retry-After", &apiError{status: 503, msg: "maintenance", after: 3 * time.Second}, verdict{after: 3 * time.Second, message: "maintenance"}},
		{"RetryAfterError", &RetryAfterError{Err: errors.New("slow down"), After: time.Minute}, verdict{after: time.Minute}},
		{"StatusError 404", &StatusError{StatusCode: 404, Message: "no such order"}, verdict{permanent: true, message: "no such order"}},
		{"StatusError 429", &StatusError{StatusCode: 429, After: time.Second}, verdict{after: time.Second}},
		{"StatusError 408", &StatusError{StatusCode: 408}, verdict{}},
		// "connection refused" is Temporary() == false in package net, but a
		// partner that is down now may be up soon.
		{"connection refused", fmt.Errorf("pbx: %w", refused), verdict{}},
		{"deadline", fmt.Errorf("pbx: %w", deadline.Err()), verdict{}},
		// Partner packages' own errors, as they are: retailcrm.APIError has a
		// RetryAfter field, so it offers RetryDelay() instead.
		{"delay only", &delayError{after: 2 * time.Second}, verdict{after: 2 * time.Second}},
		{"retailcrm 503", fmt.Errorf("upload: %w", &retailcrm.APIError{StatusCode: 503, Msg: "maintenance", RetryAfter: 4 * time.Second}), verdict{after: 4 * time.Second}},
		{"retailcrm 429 without Retry-After", &retailcrm.APIError{StatusCode: 429, Msg: "slow down"}, verdict{}},
		{"retailcrm 400", &retailcrm.APIError{StatusCode: 400, Msg: "Errors in the input parameters"}, verdict{permanent: true}},
		{"qolio 503", &qolio.APIError{Status: 503, Message: "down", RetryAfterDur: 5 * time.Second}, verdict{after: 5 * time.Second}},
		{"qolio 422", &qolio.APIError{Status: 422, Message: "operator_id is unknown"}, verdict{permanent: true}},
		{"calltouch 10003", &calltouch.APIError{Status: 400, Code: calltouch.CodeNoWidget}, verdict{permanent: true}},
		{"calltouch 429", &calltouch.APIError{Status: 429, RetryAfterDur: time.Second}, verdict{after: time.Second}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := classify(tc.err); got != tc.want {
				t.Errorf("classify(%v) = %+v, want %+v", tc.err, got, tc.want)
			}
		})
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
	if err := get("/busy"); !errors.As(err, &se) || !se.Temporary() || se.RetryAfter() != 7*time.Second || se.Message != "" {
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
