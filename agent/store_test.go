package agent

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/pult/pult/agent/agenttest"
	"github.com/pult/pult/agent/wire"
)

// What an offline agent queued is listed by ReadQueued, without an agent,
// and RemoveSessions removes every sign-in's folder and nothing else.
func TestReadQueuedAndRemoveSessions(t *testing.T) {
	checkLeaks(t)
	r := agenttest.New(t)
	configDir := t.TempDir()
	dir := SessionDir(configDir, r.URL, agenttest.Token)
	if q, err := ReadQueued(dir); err != nil || !q.Empty() {
		t.Fatalf("ReadQueued of a missing folder = %+v, %v", q, err)
	}
	a, _ := newTestAgent(t, r, func(c *Config) { c.StateDir = dir })
	if _, err := a.SetStatus(context.Background(), wire.StatusDinner); !errors.Is(err, ErrQueued) {
		t.Fatalf("SetStatus offline = %v", err)
	}
	if _, err := a.SubmitTranscript(context.Background(), wire.TranscriptSubmit{ID: "t1", Format: wire.FormatText, Title: "chat 1", Body: "Anna: hi"}); !errors.Is(err, ErrQueued) {
		t.Fatalf("SubmitTranscript offline = %v", err)
	}
	q, err := ReadQueued(dir)
	if err != nil || q.Empty() || q.Status == nil || q.Status.Status != wire.StatusDinner || q.Status.At.IsZero() ||
		len(q.Transcripts) != 1 || q.Transcripts[0].ID != "t1" || q.Transcripts[0].Title != "chat 1" {
		t.Fatalf("ReadQueued = %+v, %v", q, err)
	}

	other := SessionDir(configDir, r.URL, "another-token")
	os.MkdirAll(other, 0o700)
	keep := filepath.Join(configDir, "recent.json")
	os.WriteFile(keep, []byte("{}"), 0o600)
	dirs, err := SessionDirs(configDir)
	if err != nil || len(dirs) != 2 {
		t.Fatalf("SessionDirs = %v, %v", dirs, err)
	}
	if err := RemoveSessions(configDir); err != nil {
		t.Fatal(err)
	}
	if dirs, err := SessionDirs(configDir); err != nil || len(dirs) != 0 {
		t.Errorf("after RemoveSessions: %v, %v", dirs, err)
	}
	if _, err := os.Stat(keep); err != nil {
		t.Errorf("RemoveSessions removed another file: %v", err)
	}
}
