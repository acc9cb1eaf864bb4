package main

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pult/pult/agent"
	"github.com/pult/pult/agent/agenttest"
	"github.com/pult/pult/agent/wire"
)

func TestTranscriptSubmit(t *testing.T) {
	r := agenttest.New(t)
	env := testEnv(t, "PULT_RELAY", r.URL, "PULT_TOKEN", agenttest.Token)
	file := filepath.Join(t.TempDir(), "chat.txt")
	os.WriteFile(file, []byte("Anna: Hello, how can I help?\nIvan: My order is late.\n"), 0o600)

	// Accepted; the receipt says delivered once the relay publishes it.
	go func() {
		r.Wait(t, 10*time.Second, "transcript", func() bool { got, _ := r.Transcripts(); return len(got) == 1 })
		got, _ := r.Transcripts()
		for id := range got {
			r.Publish(wire.TypeTranscript, wire.TranscriptState{ID: id, State: wire.TranscriptDelivered, Messages: 2, At: time.Now()})
		}
	}()
	runCLI(t, env, "", "transcript", "submit", file).expect(t, exitOK, "Delivered to the QA platform (2 messages).", "")
	got, _ := r.Transcripts()
	for _, tr := range got {
		if tr.Format != wire.FormatText || tr.Title != "chat.txt" || !strings.Contains(tr.Body, "My order is late") {
			t.Errorf("relay got %+v", tr)
		}
	}
	// A refusal in plain words.
	r.RefuseTranscripts(&wire.Error{Code: wire.ErrBadRequest, Message: "no line from an operator"})
	runCLI(t, env, "", "transcript", "submit", "--wait", "0", file).expect(t, exitError, "", "the relay refused the transcript: no line from an operator")
	r.RefuseTranscripts(nil)

	// Relay down: kept on disk, sent once by the next pult that connects.
	r.Refuse(http.StatusServiceUnavailable, nil)
	runCLI(t, env, `{"channel":{"id":"abc"},"messages":[]}`, "transcript", "submit", "--timeout", "300ms", "-").
		expect(t, exitOffline, "will be sent once, when pult next reaches the relay", "")
	dir := agent.SessionDir(env["PULT_CONFIG_DIR"], r.URL, agenttest.Token)
	if entries, _ := os.ReadDir(filepath.Join(dir, "transcripts")); len(entries) != 1 {
		t.Fatalf("%d transcripts kept, want 1", len(entries))
	}
	r.Refuse(0, nil)
	runCLI(t, env, "", "transcript", "submit", "--wait", "0", file).expect(t, exitOK, "accepted by the relay", "")
	if entries, _ := os.ReadDir(filepath.Join(dir, "transcripts")); len(entries) != 0 {
		t.Errorf("%d transcripts still kept after reconnecting", len(entries))
	}
	got, _ = r.Transcripts()
	formats := map[string]int{}
	for _, tr := range got {
		formats[tr.Format]++
	}
	if formats[wire.FormatSmartsupp] != 1 || formats[wire.FormatText] != 2 {
		t.Errorf("relay has %v", formats)
	}

	runCLI(t, env, "", "transcript").expect(t, exitUsage, "", "usage: pult transcript submit")
	runCLI(t, env, "", "transcript", "submit", "/nonexistent").expect(t, exitUsage, "", "/nonexistent")
	runCLI(t, env, "", "transcript", "submit", "--format", "pdf", file).expect(t, exitUsage, "", "--format")
}

func TestCallbackCLI(t *testing.T) {
	r := agenttest.New(t)
	env := testEnv(t, "PULT_RELAY", r.URL, "PULT_TOKEN", agenttest.Token)
	runCLI(t, env, "", "callback", "8 916 123-45-67").expect(t, exitOK, "Callback to 8 (916) 123-45-67 ordered (now).", "")
	when := time.Now().Add(2 * time.Hour).Format("2006-01-02 15:04")
	runCLI(t, env, "", "callback", "+79161234567", "--at", when, "--note", "order 42").expect(t, exitOK, "ordered ("+when+")", "")
	runCLI(t, env, "", "callback", "+79161234567", "--at", "2001-01-01 10:00").expect(t, exitUsage, "", "in the past")
	runCLI(t, env, "", "callback", "+79161234567", "--at", "soon").expect(t, exitUsage, "", "want 15:04")
	runCLI(t, env, "", "callback", "nobody").expect(t, exitUsage, "", "not a phone number")
	r.SetHandler(func(req wire.Envelope) (string, any) {
		return wire.TypeError, &wire.Error{Code: "callback_refused", Message: "Calltouch: too many requests to this number; try later"}
	})
	runCLI(t, env, "", "callback", "+79161234567").expect(t, exitError, "", "the callback was not ordered: Calltouch: too many requests")
}
