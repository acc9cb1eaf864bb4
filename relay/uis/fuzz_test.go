package uis

import (
	"errors"
	"testing"
	"time"
)

// FuzzParse feeds arbitrary events and bodies. Parse must not panic, must
// refuse with a *FieldError (wrapping ErrUnknownEvent exactly when the event
// is unknown), and what it accepts must pass Validate, keep the event and
// carry a call session id. The seed corpus is every fixture and UIS's
// templates verbatim, plus testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	for _, ev := range events {
		f.Add(ev, fixture(f, ev+".json"))
		f.Add(ev, fixture(f, "template_"+ev+".txt"))
	}
	yekt := time.FixedZone("YEKT", 5*3600)
	f.Fuzz(func(t *testing.T, event string, body []byte) {
		for _, loc := range []*time.Location{nil, yekt} {
			n, err := Parse(event, body, loc)
			if err != nil {
				var fe *FieldError
				if !errors.As(err, &fe) {
					t.Fatalf("error is %T, not *FieldError: %v", err, err)
				}
				if errors.Is(err, ErrUnknownEvent) != (fe.Field == "event") {
					t.Fatalf("ErrUnknownEvent wrapped by the wrong error: %v", err)
				}
				continue
			}
			if err := n.Validate(); err != nil {
				t.Fatalf("accepted an invalid notification: %v", err)
			}
			if n.Event != event || n.CallSessionID == "" {
				t.Fatalf("event %q, call session %q", n.Event, n.CallSessionID)
			}
			if len(n.Ignored) > MaxIgnored+1 {
				t.Fatalf("Ignored not bounded: %d", len(n.Ignored))
			}
		}
	})
}
