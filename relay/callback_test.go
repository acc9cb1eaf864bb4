package relay_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pult/pult/agent/wire"
	"github.com/pult/pult/relay/calltouch"
	ctfake "github.com/pult/pult/relay/calltouch/fake"
	"github.com/pult/pult/relay/config"
)

const testCalltouchToken = "calltouch-token-0123"

func callbackWorld(t *testing.T) (*testRelay, *ctfake.Server, *testAgent) {
	t.Helper()
	ct := ctfake.NewServer(testCalltouchToken, "route-1")
	t.Cleanup(ct.Close)
	cfg := testConfig(t)
	cfg.Calltouch.URL = ct.URL()
	cfg.Calltouch.Token = testCalltouchToken
	cfg.Calltouch.RouteKey = "route-1"
	cfg.Calltouch.Timeout = config.Duration{Duration: 2 * time.Second}
	r := startRelay(t, cfg)
	_, tok := r.addOperator("Анна Смирнова", "100", "1")
	anna := startAgent(t, r.URL, tok, nil)
	anna.waitOnline()
	return r, ct, anna
}

func wireErr(t *testing.T, err error) *wire.Error {
	t.Helper()
	var we *wire.Error
	if !errors.As(err, &we) {
		t.Fatalf("error %v is not a *wire.Error", err)
	}
	return we
}

func TestCallbackOrdered(t *testing.T) {
	checkGoroutines(t)
	_, ct, anna := callbackWorld(t)
	at := time.Now().Add(3 * time.Hour).Truncate(time.Second)
	res, err := anna.a.Callback(ctxT(t), wire.Callback{Phone: "8 (999) 222-33-44", At: &at, Note: "после 18:00,\n  про заказ 42"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Phone != "+79992223344" || res.Display != "8 (999) 222-33-44" || res.At == nil || !res.At.Equal(at) {
		t.Errorf("result: %+v", res)
	}
	created := ct.Created()
	if len(created) != 1 {
		t.Fatalf("Calltouch created %d requests", len(created))
	}
	c := created[0]
	wantFields := []calltouch.Field{{Name: "Оператор", Value: "Анна Смирнова"}, {Name: "Комментарий", Value: "после 18:00, про заказ 42"}}
	if c.RouteKey != "route-1" || c.Request.Phone != "79992223344" || c.Schedule != at.In(calltouch.Moscow).Format(calltouch.ScheduleLayout) {
		t.Errorf("created: %+v", c)
	}
	if d := cmp.Diff(wantFields, c.Request.Fields); d != "" {
		t.Errorf("fields (-want +got):\n%s", d)
	}
	// Now, without a time or a note.
	res, err = anna.a.Callback(ctxT(t), wire.Callback{Phone: "+7 912 123-45-67"})
	if err != nil || res.At != nil || ct.Created()[1].Schedule != "" {
		t.Errorf("callback now: %+v %v %+v", res, err, ct.Created())
	}
}

// Every documented Calltouch refusal reaches the operator in plain words.
func TestCallbackRefusals(t *testing.T) {
	checkGoroutines(t)
	_, ct, anna := callbackWorld(t)
	ctx := ctxT(t)
	for _, code := range []int{1, 10001, 10002, 10003, 10004, 10005, 10006, 10007} {
		ct.Script(ctfake.Answer{Code: code})
		_, err := anna.a.Callback(ctx, wire.Callback{Phone: "89992223344"})
		we := wireErr(t, err)
		want := (&calltouch.APIError{Code: code}).OperatorMessage()
		reason := map[int]string{10001: wire.ReasonNoMinutes, 10002: wire.ReasonServiceOff,
			10005: wire.ReasonAlreadyRequested, 10006: wire.ReasonAlreadyRequested, 10007: wire.ReasonAlreadyRequested}[code]
		if we.Code != wire.ErrPBXRefused || we.Message != want || we.Reason != reason {
			t.Errorf("code %d: %+v, want %q (%q)", code, we, want, reason)
		}
	}
	ct.Script(ctfake.Answer{Status: 503})
	if we := wireErr(t, second(anna.a.Callback(ctx, wire.Callback{Phone: "89992223344"}))); we.Code != wire.ErrPBXUnreachable || !strings.Contains(we.Message, "unavailable") || we.HTTPStatus != 503 {
		t.Errorf("503: %+v", we)
	}
	ct.Script(ctfake.Answer{Hang: true})
	if we := wireErr(t, second(anna.a.Callback(ctx, wire.Callback{Phone: "89992223344"}))); we.Code != wire.ErrPBXTimeout {
		t.Errorf("hang: %+v", we)
	}
	n := ct.Count()
	// Refused before anything is sent.
	for _, tc := range []struct{ phone, code, want string }{
		{"8 800 555-35-35", wire.ErrInvalidNumber, "8-800"},
		{"+1 212 555 0100", wire.ErrInvalidNumber, "must start with 7"},
	} {
		we := wireErr(t, second(anna.a.Callback(ctx, wire.Callback{Phone: tc.phone})))
		if we.Code != tc.code || !strings.Contains(we.Message, tc.want) {
			t.Errorf("%s: %+v, want %s naming %q", tc.phone, we, tc.code, tc.want)
		}
	}
	if ct.Count() != n {
		t.Errorf("Calltouch was asked about invalid numbers")
	}

	plain := startRelay(t, testConfig(t))
	_, tok := plain.addOperator("Анна", "100", "1")
	a := startAgent(t, plain.URL, tok, nil)
	a.waitOnline()
	if we := wireErr(t, second(a.a.Callback(ctx, wire.Callback{Phone: "89992223344"}))); we.Code != wire.ErrNotConfigured {
		t.Errorf("not configured: %+v", we)
	}
}

func second[T any](_ T, err error) error { return err }

// Callbacks spend Calltouch's budget of 5 a second, however many
// operators ask at once.
func TestCallbackRateLimit(t *testing.T) {
	checkGoroutines(t)
	_, ct, anna := callbackWorld(t)
	ctx := ctxT(t)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	start := time.Now()
	for i := range 8 {
		wg.Go(func() {
			_, err := anna.a.Callback(ctx, wire.Callback{Phone: fmt.Sprintf("8 999 222-33-%02d", 10+i)})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	// The fake refuses a sixth request within a second (429), so all 8
	// created means the relay kept to the budget; 5 a second spaces 8
	// requests over at least 1.4 s.
	if n, took := len(ct.Created()), time.Since(start); n != 8 || took < 1300*time.Millisecond {
		t.Errorf("created %d in %s", n, took)
	}
}
