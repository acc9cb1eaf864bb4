package eventtrace

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestOff: a nil Recorder (trace_events = 0) records nothing and leaves
// the context as it was; Mark without an event does nothing.
func TestOff(t *testing.T) {
	r := New(0)
	if r != nil {
		t.Fatal("New(0) is not nil")
	}
	ctx := context.Background()
	got, e := r.Start(ctx)
	if got != ctx || e != nil {
		t.Fatalf("Start on a nil Recorder: %v %v", got, e)
	}
	Mark(got, Parsed)
	e.SetID("x")
	r.Finish(e)
	if r.Events() != nil {
		t.Fatal("a nil Recorder has events")
	}
	w := httptest.NewRecorder()
	r.ServeHTTP(w, httptest.NewRequest("GET", "/debug/pult/events", nil))
	if strings.TrimSpace(w.Body.String()) != "[]" {
		t.Fatalf("a nil Recorder serves %q, want []", w.Body.String())
	}
}

// TestRing: the last events are kept, oldest first, each with the points
// it reached (the others 0), its id clipped.
func TestRing(t *testing.T) {
	r := New(3)
	start := time.Now().UnixNano()
	for i := range 5 {
		ctx, e := r.Start(context.Background())
		e.SetID(strings.Repeat("x", i) + strings.Repeat("y", MaxID))
		Mark(ctx, Read)
		if i%2 == 0 {
			Mark(ctx, Sent)
		}
		r.Finish(e)
	}
	evs := r.Events()
	if len(evs) != 3 {
		t.Fatalf("%d events kept, want 3", len(evs))
	}
	for i, e := range evs {
		n := i + 2 // events 2, 3, 4
		if e.At[Received] < start || (i > 0 && e.At[Received] < evs[i-1].At[Answered]) {
			t.Errorf("event %d received at %d, started %d", i, e.At[Received], start)
		}
		if len(e.ID) != MaxID || !strings.HasPrefix(e.ID, strings.Repeat("x", n)) {
			t.Errorf("event %d id %q", i, e.ID)
		}
		if e.At[Read] == 0 || e.At[Answered] < e.At[Read] || (e.At[Sent] != 0) != (n%2 == 0) || e.At[Parsed] != 0 {
			t.Errorf("event %d points %v", i, e.At)
		}
	}
	w := httptest.NewRecorder()
	r.ServeHTTP(w, httptest.NewRequest("GET", "/debug/pult/events", nil))
	var served []Event
	if err := json.Unmarshal(w.Body.Bytes(), &served); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(evs, served); diff != "" {
		t.Errorf("served events differ (-kept +served):\n%s", diff)
	}
	if New(MaxEvents+1) == nil || len(New(MaxEvents+1).ring) != MaxEvents {
		t.Error("New does not bound its ring")
	}
}
