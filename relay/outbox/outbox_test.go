package outbox

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/pult/pult/relay/calltouch"
	"github.com/pult/pult/relay/partner"
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
func (e *apiError) RetryDelay() time.Duration { return e.after }
func (e *apiError) PartnerMessage() string    { return e.msg }

// delayError asks for a wait and says nothing more.
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
		{"StatusError 404", &partner.StatusError{StatusCode: 404, Message: "no such order"}, verdict{permanent: true, message: "no such order"}},
		{"StatusError 429", &partner.StatusError{StatusCode: 429, After: time.Second}, verdict{after: time.Second}},
		{"StatusError 408", &partner.StatusError{StatusCode: 408}, verdict{}},
		// "connection refused" is Temporary() == false in package net, but a
		// partner that is down now may be up soon.
		{"connection refused", fmt.Errorf("pbx: %w", refused), verdict{}},
		{"deadline", fmt.Errorf("pbx: %w", deadline.Err()), verdict{}},
		{"delay only", &delayError{after: 2 * time.Second}, verdict{after: 2 * time.Second}},
		// Partner packages' own errors, as they are (every one a partner.Error).
		{"retailcrm 503", fmt.Errorf("upload: %w", &retailcrm.APIError{StatusCode: 503, Msg: "maintenance", RetryAfter: 4 * time.Second}), verdict{after: 4 * time.Second, message: "maintenance"}},
		{"retailcrm 429 without Retry-After", &retailcrm.APIError{StatusCode: 429, Msg: "slow down"}, verdict{message: "slow down"}},
		{"retailcrm 400", &retailcrm.APIError{StatusCode: 400, Msg: "Errors in the input parameters", Errors: map[string]string{"phone": "blank"}},
			verdict{permanent: true, message: "Errors in the input parameters (phone: blank)"}},
		{"qolio 503", &qolio.APIError{Status: 503, Message: "down", RetryAfterDur: 5 * time.Second}, verdict{after: 5 * time.Second, message: "down"}},
		{"qolio 422", &qolio.APIError{Status: 422, Message: "operator_id is unknown"}, verdict{permanent: true, message: "operator_id is unknown"}},
		{"calltouch 10003", &calltouch.APIError{Status: 400, Code: calltouch.CodeNoWidget},
			verdict{permanent: true, message: (&calltouch.APIError{Code: calltouch.CodeNoWidget}).OperatorMessage()}},
		{"calltouch 429", &calltouch.APIError{Status: 429, RetryAfterDur: time.Second},
			verdict{after: time.Second, message: (&calltouch.APIError{Status: 429}).OperatorMessage()}},
		// 501 Not Implemented will not be implemented by the next attempt,
		// whichever partner says it.
		{"pbx 501", &partner.StatusError{StatusCode: 501}, verdict{permanent: true}},
		{"retailcrm 501", &retailcrm.APIError{StatusCode: 501, Msg: "Not implemented"}, verdict{permanent: true, message: "Not implemented"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := classify(tc.err); got != tc.want {
				t.Errorf("classify(%v) = %+v, want %+v", tc.err, got, tc.want)
			}
		})
	}
}
