package agent

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pult/pult/agent/agenttest"
	"github.com/pult/pult/agent/wire"
)

func TestTranscriptOnline(t *testing.T) {
	checkLeaks(t)
	r := agenttest.New(t)
	a, rec := newTestAgent(t, r, func(c *Config) { c.StateDir = t.TempDir() })
	start(t, a)
	waitOnline(t, a)
	// Larger than a websocket frame: it goes over HTTP.
	body := "Anna: hello\nClient: " + strings.Repeat("long question ", 10000) + "\n"
	if len(body) <= wire.DefaultMaxFrame {
		t.Fatal("test body too small")
	}
	st, err := a.SubmitTranscript(context.Background(), wire.TranscriptSubmit{ID: "t1", Format: wire.FormatText, Title: "chat", Body: body})
	if err != nil || st.State != wire.TranscriptQueued || st.ID != "t1" {
		t.Fatalf("SubmitTranscript = %+v, %v", st, err)
	}
	got, posts := r.Transcripts()
	if posts != 1 || got["t1"].Body != body {
		t.Errorf("relay got %d posts, body of %d bytes", posts, len(got["t1"].Body))
	}
	// Delivery arrives on the stream.
	r.Publish(wire.TypeTranscript, wire.TranscriptState{ID: "t1", State: wire.TranscriptDelivered, At: time.Now()})
	waitFor(t, "delivery event", func() bool {
		ev, ok := rec.last(EventTranscript)
		return ok && ev.Transcript.State == wire.TranscriptDelivered && ev.Seq > 0
	})
	// A refusal comes back as a *wire.Error; nothing is kept.
	r.RefuseTranscripts(&wire.Error{Code: wire.ErrBadRequest, Message: "no operator line in the text"})
	_, err = a.SubmitTranscript(context.Background(), wire.TranscriptSubmit{Format: wire.FormatText, Body: "x"})
	var werr *wire.Error
	if !errors.As(err, &werr) || werr.Message != "no operator line in the text" {
		t.Errorf("refused transcript: %v", err)
	}
	if len(a.QueuedTranscripts()) != 0 {
		t.Error("a refused transcript was kept")
	}
	// Checked before sending.
	for _, bad := range []wire.TranscriptSubmit{
		{Format: "pdf", Body: "x"},
		{Format: wire.FormatText, Body: "  "},
		{Format: wire.FormatText, Body: strings.Repeat("x", wire.MaxTranscript+1)},
		{ID: "../x", Format: wire.FormatText, Body: "x"},
	} {
		if _, err := a.SubmitTranscript(context.Background(), bad); err == nil || errors.Is(err, ErrQueued) {
			t.Errorf("SubmitTranscript(%.40v) = %v", bad, err)
		}
	}
}

// A transcript submitted while the relay is unreachable waits on disk and
// goes out once, after the next hello — also from a restarted process.
func TestTranscriptQueuedOffline(t *testing.T) {
	checkLeaks(t)
	dir := t.TempDir()
	r := agenttest.New(t)
	r.Refuse(http.StatusServiceUnavailable, nil)
	a1, _ := newTestAgent(t, r, func(c *Config) { c.StateDir = dir })
	st, err := a1.SubmitTranscript(context.Background(), wire.TranscriptSubmit{ID: "t2", Format: wire.FormatSmartsupp, Body: `{"channel":{"id":"c"}}`})
	if !errors.Is(err, ErrQueued) || st.State != wire.TranscriptQueued {
		t.Fatalf("offline SubmitTranscript = %+v, %v", st, err)
	}
	b, err := os.ReadFile(filepath.Join(dir, transcriptDir, "t2.json"))
	if err != nil || strings.Contains(string(b), agenttest.Token) {
		t.Fatalf("queued file: %v (token inside: %v)", err, strings.Contains(string(b), agenttest.Token))
	}
	// A new process with the same state folder sends it once online.
	r.Refuse(0, nil)
	a2, rec := newTestAgent(t, r, func(c *Config) { c.StateDir = dir })
	start(t, a2)
	waitFor(t, "queued transcript sent", func() bool { _, ok := rec.last(EventTranscript); return ok })
	got, posts := r.Transcripts()
	if posts != 1 || got["t2"].Format != wire.FormatSmartsupp {
		t.Errorf("relay got %d posts: %+v", posts, got)
	}
	if len(a2.QueuedTranscripts()) != 0 {
		t.Error("the sent transcript is still queued")
	}
	// Reconnecting sends nothing again.
	r.Drop()
	waitOnline(t, a2)
	time.Sleep(50 * time.Millisecond)
	if _, posts := r.Transcripts(); posts != 1 {
		t.Errorf("%d posts after a reconnect, want 1", posts)
	}
}

func TestCallback(t *testing.T) {
	checkLeaks(t)
	r := agenttest.New(t)
	a, _ := newTestAgent(t, r, nil)
	if _, err := a.Callback(context.Background(), wire.Callback{Phone: "+7 916 123-45-67"}); !errors.Is(err, ErrOffline) {
		t.Errorf("offline callback = %v", err)
	}
	start(t, a)
	waitOnline(t, a)
	at := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	res, err := a.Callback(context.Background(), wire.Callback{Phone: "8 916 123 45 67", At: &at, Note: "about order 42"})
	if err != nil || res.Phone != "+79161234567" || res.At == nil || !res.At.Equal(at) {
		t.Errorf("Callback = %+v, %v", res, err)
	}
	r.SetHandler(func(req wire.Envelope) (string, any) {
		return wire.TypeError, &wire.Error{Code: "callback_refused", Message: "no callback minutes left on the Calltouch account"}
	})
	_, err = a.Callback(context.Background(), wire.Callback{Phone: "+79161234567"})
	var werr *wire.Error
	if !errors.As(err, &werr) || !strings.Contains(werr.Message, "minutes left") {
		t.Errorf("refused callback = %v", err)
	}
	if _, err := a.Callback(context.Background(), wire.Callback{Phone: "call me"}); err == nil {
		t.Error("a callback to no number was sent")
	}
}

// TestTranscriptThrottledKeptAndRetried: a transcript the relay refuses for
// its quota (429) or a full storage (503) is kept and sent again while the
// connection stays up.
func TestTranscriptThrottledKeptAndRetried(t *testing.T) {
	for _, status := range []int{http.StatusTooManyRequests, http.StatusServiceUnavailable} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			checkLeaks(t)
			r := agenttest.New(t)
			a, rec := newTestAgent(t, r, func(c *Config) { c.StateDir = t.TempDir() })
			a.transcriptRetry = 50 * time.Millisecond
			start(t, a)
			waitOnline(t, a)
			r.RefuseTranscriptsWith(status, &wire.Error{Code: wire.ErrRateLimited, Message: "more than 10 transcripts a minute"})
			_, err := a.SubmitTranscript(context.Background(), wire.TranscriptSubmit{ID: "t1", Format: wire.FormatText, Body: "Anna: hi"})
			if !errors.Is(err, ErrQueued) || len(a.QueuedTranscripts()) != 1 {
				t.Fatalf("SubmitTranscript refused with %d: %v, kept %d", status, err, len(a.QueuedTranscripts()))
			}
			r.RefuseTranscriptsWith(0, nil)
			waitFor(t, "sent again", func() bool {
				got, _ := r.Transcripts()
				return got["t1"].Body == "Anna: hi" && len(a.QueuedTranscripts()) == 0
			})
			waitFor(t, "its receipt", func() bool {
				ev, ok := rec.last(EventTranscript)
				return ok && ev.Transcript.ID == "t1" && ev.Transcript.State == wire.TranscriptQueued
			})
		})
	}
}
