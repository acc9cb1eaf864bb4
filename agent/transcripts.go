package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/pult/pult/agent/wire"
)

// Transcripts are sent over HTTP (they may be larger than a frame) and kept
// on disk, one file each, until the relay has answered: a transcript
// submitted while the relay is unreachable goes out, once, after the next
// hello. Their delivery to the QA platform arrives as EventTranscript.

const (
	transcriptDir        = "transcripts"
	maxQueuedTranscripts = 200
	transcriptTimeout    = 30 * time.Second
	maxTranscriptAnswer  = 64 << 10
	// transcriptRetry is how often kept transcripts are tried again while
	// the connection is up.
	transcriptRetry = time.Minute
)

// SubmitTranscript hands t to the relay, which forwards it to the QA
// platform. It returns the accepted state (State "queued"; delivery follows
// as an EventTranscript). A refusal (a malformed transcript, an unknown
// format) is an error wrapping *wire.Error and nothing is kept. When the
// relay can't be reached the transcript is kept in StateDir and sent after
// the next hello, and the error wraps ErrQueued. t.ID may be empty: one is
// made; a re-sent id is accepted by the relay only once.
func (a *Agent) SubmitTranscript(ctx context.Context, t wire.TranscriptSubmit) (wire.TranscriptState, error) {
	if t.ID == "" {
		t.ID = newID()
	}
	if err := checkTranscript(t); err != nil {
		return wire.TranscriptState{}, err
	}
	a.mu.Lock()
	online := a.cur != nil
	a.mu.Unlock()
	if online {
		st, err := a.postTranscript(ctx, t)
		if !errors.Is(err, ErrUnreachable) {
			return st, err
		}
	}
	if a.cfg.StateDir == "" {
		return wire.TranscriptState{}, fmt.Errorf("%w: the relay can't be reached and there is no state folder to keep the transcript in", ErrUnreachable)
	}
	if err := a.queueTranscript(t); err != nil {
		return wire.TranscriptState{}, err
	}
	a.log.Info("transcript queued until the relay is reachable", "id", t.ID)
	return wire.TranscriptState{ID: t.ID, Title: t.Title, Source: "operator", State: wire.TranscriptQueued, At: time.Now().UTC()},
		fmt.Errorf("transcript %s: %w until the relay is reachable", t.ID, ErrQueued)
}

func checkTranscript(t wire.TranscriptSubmit) error {
	switch {
	case len(t.ID) > wire.MaxIDLen || strings.ContainsAny(t.ID, "/\\ \n"):
		return fmt.Errorf("transcript id %q: at most %d characters, no slashes or spaces", t.ID, wire.MaxIDLen)
	case t.Format != wire.FormatSmartsupp && t.Format != wire.FormatText:
		return fmt.Errorf("transcript format %q: want %q or %q", t.Format, wire.FormatSmartsupp, wire.FormatText)
	case strings.TrimSpace(t.Body) == "":
		return errors.New("the transcript is empty")
	case len(t.Body) > wire.MaxTranscript:
		return fmt.Errorf("the transcript is %d bytes, the limit is %d", len(t.Body), wire.MaxTranscript)
	}
	return nil
}

// postTranscript POSTs t. Errors: ErrUnreachable (worth retrying later), a
// *wire.Error refusal, or ErrNotRelay.
func (a *Agent) postTranscript(ctx context.Context, t wire.TranscriptSubmit) (wire.TranscriptState, error) {
	body, err := json.Marshal(t)
	if err != nil {
		return wire.TranscriptState{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, transcriptTimeout)
	defer cancel()
	u := withScheme(a.current().base, "http", "https")
	u.Path += wire.PathTranscripts
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return wire.TranscriptState{}, err
	}
	req.Header.Set("Authorization", "Bearer "+a.cfg.Token)
	req.Header.Set(wire.HeaderProtocol, strconv.Itoa(wire.ProtocolVersion))
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.http.Do(req)
	if ce := (*CleartextError)(nil); errors.As(err, &ce) {
		return wire.TranscriptState{}, fmt.Errorf("the relay redirected the transcript: %w", ce) // not worth retrying
	}
	if err != nil {
		return wire.TranscriptState{}, fmt.Errorf("%w: %v", ErrUnreachable, unwrapURLError(err))
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, maxTranscriptAnswer))
	if err != nil {
		return wire.TranscriptState{}, fmt.Errorf("%w: reading the answer: %v", ErrUnreachable, err)
	}
	switch {
	case resp.StatusCode == http.StatusAccepted || resp.StatusCode == http.StatusOK:
		var st wire.TranscriptState
		if err := json.Unmarshal(answer, &st); err != nil || st.ID == "" {
			return wire.TranscriptState{}, fmt.Errorf("%w: the answer to a transcript is not a transcript state", ErrNotRelay)
		}
		return st, nil
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests:
		return wire.TranscriptState{}, fmt.Errorf("%w: the relay answered HTTP %d", ErrUnreachable, resp.StatusCode)
	}
	var werr wire.Error
	if err := json.Unmarshal(answer, &werr); err == nil && werr.Code != "" {
		return wire.TranscriptState{}, fmt.Errorf("transcript refused: %w", &werr)
	}
	var he wire.HandshakeError
	if err := json.Unmarshal(answer, &he); err == nil && wire.IsStop(he.Code) {
		return wire.TranscriptState{}, stopError(he.Code, he.Reason)
	}
	return wire.TranscriptState{}, fmt.Errorf("%w: HTTP %d to a transcript", ErrNotRelay, resp.StatusCode)
}

func (a *Agent) transcriptPath(id string) string {
	return filepath.Join(a.cfg.StateDir, transcriptDir, id+".json")
}

func (a *Agent) queueTranscript(t wire.TranscriptSubmit) error {
	dir := filepath.Join(a.cfg.StateDir, transcriptDir)
	if entries, err := os.ReadDir(dir); err == nil && len(entries) >= maxQueuedTranscripts {
		return fmt.Errorf("%d transcripts are already waiting for the relay; not keeping more", len(entries))
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("keeping the transcript: %w", err)
	}
	if err := writeJSON(a.transcriptPath(t.ID), t); err != nil {
		return fmt.Errorf("keeping the transcript: %w", err)
	}
	return nil
}

// queuedTranscripts lists the kept transcripts, oldest first.
func (a *Agent) queuedTranscripts() []wire.TranscriptSubmit {
	if a.cfg.StateDir == "" {
		return nil
	}
	dir := filepath.Join(a.cfg.StateDir, transcriptDir)
	entries, err := os.ReadDir(dir)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			a.log.Warn("queued transcripts unreadable", "err", err)
		}
		return nil
	}
	type kept struct {
		t  wire.TranscriptSubmit
		at time.Time
	}
	var out []kept
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		var t wire.TranscriptSubmit
		if err := readJSON(filepath.Join(dir, e.Name()), &t); err != nil || checkTranscript(t) != nil {
			a.log.Warn("dropping an unreadable queued transcript", "file", e.Name(), "err", err)
			os.Remove(filepath.Join(dir, e.Name()))
			continue
		}
		info, _ := e.Info()
		var at time.Time
		if info != nil {
			at = info.ModTime()
		}
		out = append(out, kept{t, at})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].at.Before(out[j].at) })
	ts := make([]wire.TranscriptSubmit, len(out))
	for i, k := range out {
		ts[i] = k.t
	}
	return ts
}

// flushTranscripts sends the kept transcripts while c is up, and again
// every transcriptRetry: one the relay could not take (429 for its quota,
// 503 while its storage is full) is kept and tried later, not only after
// the next connection.
func (a *Agent) flushTranscripts(c *conn, events chan<- Event) {
	for {
		a.flushTranscriptsOnce(c, events)
		t := time.NewTimer(a.transcriptRetry)
		select {
		case <-t.C:
		case <-c.ctx.Done():
			t.Stop()
			return
		}
	}
}

// flushTranscriptsOnce sends the kept transcripts. Each answered one
// (accepted or refused) is removed and reported; an unreachable relay
// leaves the rest for later.
func (a *Agent) flushTranscriptsOnce(c *conn, events chan<- Event) {
	for _, t := range a.queuedTranscripts() {
		st, err := a.postTranscript(c.ctx, t)
		if c.ctx.Err() != nil || errors.Is(err, ErrUnreachable) {
			return
		}
		var werr *wire.Error
		switch {
		case err == nil:
			a.log.Info("queued transcript sent", "id", t.ID)
		case errors.As(err, &werr):
			st = wire.TranscriptState{ID: t.ID, Title: t.Title, Source: "operator", State: wire.TranscriptFailed, Reason: werr.Message, At: time.Now().UTC()}
		default:
			a.log.Warn("queued transcript not sent", "id", t.ID, "err", err)
			return
		}
		if err := os.Remove(a.transcriptPath(t.ID)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			a.log.Error("cannot remove a sent transcript", "id", t.ID, "err", err)
		}
		if !emit(c.ctx, events, Event{Kind: EventTranscript, Transcript: &st}) {
			return
		}
	}
}

// QueuedTranscripts returns the transcripts waiting for the relay.
func (a *Agent) QueuedTranscripts() []wire.TranscriptSubmit { return a.queuedTranscripts() }
