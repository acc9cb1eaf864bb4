package smartsupp

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/pult/pult/relay/transcript"
)

// FuzzParse feeds arbitrary hook bodies. Parse must not panic and must
// refuse with a *FieldError; an accepted export must either give a
// transcript that passes Validate and encodes as JSON, or be refused by
// Transcript with a *FieldError of either package. The seed corpus is the
// fixtures (Smartsupp's documented example among them) plus
// testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	for _, name := range []string{"seed_export.json", "missed_tolerant.json", "offline.json"} {
		f.Add(fixture(f, name))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		e, err := Parse(body)
		if err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error is %T, not *FieldError: %v", err, err)
			}
			return
		}
		if e.Channel.ID == "" {
			t.Fatal("accepted an export without a channel id")
		}
		if len(e.Ignored) > MaxIgnored+1 {
			t.Fatalf("Ignored not bounded: %d", len(e.Ignored))
		}
		ids := e.AgentIDs()
		tr, err := e.Transcript()
		if err != nil {
			var fe *FieldError
			var tfe *transcript.FieldError
			if !errors.As(err, &fe) && !errors.As(err, &tfe) {
				t.Fatalf("Transcript error is %T: %v", err, err)
			}
			return
		}
		if err := tr.Validate(); err != nil {
			t.Fatalf("transcript does not validate: %v", err)
		}
		if tr.CommunicationID != CommunicationIDPrefix+e.Channel.ID {
			t.Fatalf("communication id %q", tr.CommunicationID)
		}
		if tr.OperatorRef != "" {
			found := false
			for _, id := range ids {
				found = found || id == tr.OperatorRef
			}
			if !found {
				t.Fatalf("operator %q is not among the agents %q", tr.OperatorRef, ids)
			}
		}
		if _, err := json.Marshal(tr); err != nil {
			t.Fatalf("cannot encode: %v", err)
		}
	})
}
