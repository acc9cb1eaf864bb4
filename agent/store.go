package agent

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/pult/pult/agent/wire"
)

// Files in Config.StateDir. Neither ever holds the token.
const (
	outboxFile = "outbox.json" // the queued status change
	stateFile  = "state.json"  // the stream position (with Config.Resume)
)

// outboxDoc is the content of outbox.json.
type outboxDoc struct {
	Status *statusItem `json:"status,omitempty"`
}

// loadState reads the outbox and, with Resume, the position. A corrupt file
// is logged and ignored: losing a queued status is better than not starting.
func (a *Agent) loadState() error {
	dir := a.cfg.StateDir
	if dir == "" {
		return nil
	}
	var ob outboxDoc
	if err := readJSON(filepath.Join(dir, outboxFile), &ob); err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			a.log.Warn("ignoring unreadable outbox", "err", err)
		}
	} else if ob.Status != nil && ob.Status.ID != "" && ob.Status.Status.Valid() {
		a.queued = ob.Status
	}
	if a.cfg.Resume {
		var pos position
		if err := readJSON(filepath.Join(dir, stateFile), &pos); err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				a.log.Warn("ignoring unreadable stream position", "err", err)
			}
		} else {
			a.pos = pos
		}
	}
	return nil
}

// saveOutboxLocked persists a.queued. Failures are logged: the change is
// still queued in memory.
func (a *Agent) saveOutboxLocked() {
	if a.cfg.StateDir == "" {
		return
	}
	path := filepath.Join(a.cfg.StateDir, outboxFile)
	var err error
	if a.queued == nil {
		err = os.Remove(path)
		if errors.Is(err, fs.ErrNotExist) {
			err = nil
		}
	} else {
		err = writeJSON(path, outboxDoc{Status: a.queued})
	}
	if err != nil {
		a.log.Error("cannot save the outbox", "err", err)
	}
}

// savePositionLocked persists a.pos when Config.Resume is set.
func (a *Agent) savePositionLocked() {
	if !a.cfg.Resume {
		return
	}
	if err := writeJSON(filepath.Join(a.cfg.StateDir, stateFile), a.pos); err != nil {
		a.log.Error("cannot save the stream position", "err", err)
	}
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// writeJSON replaces path atomically (temp file, fsync, rename), mode 0600.
func writeJSON(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after a successful rename
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// sessionsDir holds the SessionDirs under a config folder.
const sessionsDir = "sessions"

// SessionDir is the state folder for one sign-in under a config folder:
// one per relay and token, so another sign-in never resumes someone else's
// stream or sends their queued transcripts. The app and the CLI share it.
// A list of relays (Config.RelayURL) is one sign-in whatever its order; a
// single URL keeps the folder it had before lists existed.
func SessionDir(configDir, relayURL, token string) string {
	sum := sha256.Sum256([]byte(sessionKey(relayURL) + "\n" + token))
	return filepath.Join(configDir, sessionsDir, hex.EncodeToString(sum[:8]))
}

// sessionKey is what SessionDir hashes of relayURL: a single URL as given
// (as it always was), a list as its normalised URLs sorted.
func sessionKey(relayURL string) string {
	if !strings.Contains(relayURL, ",") {
		return relayURL
	}
	urls, err := SplitRelayURL(relayURL)
	if err != nil {
		return relayURL // New refuses it anyway
	}
	slices.Sort(urls)
	return strings.Join(urls, ",")
}

// SessionDirs lists the state folders of every sign-in kept under
// configDir (see SessionDir), whatever their relay and token.
func SessionDirs(configDir string) ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(configDir, sessionsDir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var dirs []string
	for _, e := range entries {
		if e.IsDir() {
			dirs = append(dirs, filepath.Join(configDir, sessionsDir, e.Name()))
		}
	}
	return dirs, nil
}

// RemoveSessions removes every sign-in's state folder under configDir:
// queued status changes and transcripts, stream positions. Nothing else in
// configDir is touched.
func RemoveSessions(configDir string) error {
	return os.RemoveAll(filepath.Join(configDir, sessionsDir))
}

// Queued is the work a state folder holds that the relay has not had yet.
type Queued struct {
	// Status is a status change not yet confirmed by the relay, or nil.
	Status *QueuedStatus
	// Transcripts are the transcripts not yet handed to the relay, by file
	// name order; an unreadable file is listed with its id only.
	Transcripts []wire.TranscriptSubmit
}

// QueuedStatus is a status change waiting in the outbox.
type QueuedStatus struct {
	Status wire.Status
	At     time.Time // when the operator chose it
}

// Empty says nothing is waiting.
func (q Queued) Empty() bool { return q.Status == nil && len(q.Transcripts) == 0 }

// ReadQueued reads what waits in stateDir (a SessionDir) without starting
// an agent or changing anything: for signing out without losing work
// unknowingly.
func ReadQueued(stateDir string) (Queued, error) {
	var q Queued
	var ob outboxDoc
	err := readJSON(filepath.Join(stateDir, outboxFile), &ob)
	switch {
	case err == nil:
		if ob.Status != nil && ob.Status.ID != "" {
			q.Status = &QueuedStatus{Status: ob.Status.Status, At: ob.Status.At}
		}
	case !errors.Is(err, fs.ErrNotExist):
		return q, err
	}
	dir := filepath.Join(stateDir, transcriptDir)
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return q, err
	}
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || e.IsDir() {
			continue
		}
		var t wire.TranscriptSubmit
		if readJSON(filepath.Join(dir, e.Name()), &t) != nil || t.ID == "" {
			t = wire.TranscriptSubmit{ID: name}
		}
		q.Transcripts = append(q.Transcripts, t)
	}
	return q, nil
}
