package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pult/pult/agent"
	"github.com/pult/pult/agent/phone"
	"github.com/pult/pult/agent/wire"
)

// transcript submit FILE: a Smartsupp export or "Name: message" lines, to
// the QA platform through the relay, with its delivery receipt.
func (c *cli) transcript(ctx context.Context, args []string) int {
	if len(args) == 0 || args[0] != "submit" {
		return c.fail(exitUsage, "usage: pult transcript submit FILE [--format auto|smartsupp|text] [--title T] [--client NAME] [--wait 30s]")
	}
	fs := flag.NewFlagSet("transcript submit", flag.ContinueOnError)
	format := fs.String("format", "auto", "auto, smartsupp (a Smartsupp chat export) or text (\"Name: message\" lines)")
	title := fs.String("title", "", "a title for the QA platform (default: the file's name)")
	client := fs.String("client", "", "text format: the client's name, when it is not the first other speaker")
	wait := fs.Duration("wait", 30*time.Second, "how long to wait for the delivery receipt (0: don't wait)")
	timeout := fs.Duration("timeout", defaultTimeout, "how long to wait for the relay")
	pos, code, ok := c.parse(fs, args[1:], "transcript submit FILE [--format auto|smartsupp|text] [--title T] [--client NAME] [--wait 30s]")
	if !ok {
		return code
	}
	if len(pos) != 1 {
		return c.fail(exitUsage, "transcript submit needs one file (- for stdin)")
	}
	body, err := c.readTranscript(pos[0])
	if err != nil {
		return c.fail(exitUsage, "%v", err)
	}
	f := *format
	switch f {
	case "auto":
		f = wire.FormatText
		if strings.HasPrefix(strings.TrimSpace(body), "{") {
			f = wire.FormatSmartsupp
		}
	case wire.FormatSmartsupp, wire.FormatText:
	default:
		return c.fail(exitUsage, "--format: want auto, smartsupp or text")
	}
	t := wire.TranscriptSubmit{Format: f, Title: *title, Client: *client, Body: body}
	if t.Title == "" && pos[0] != "-" {
		t.Title = filepath.Base(pos[0])
	}

	login, code := c.credentials()
	if code != 0 {
		return code
	}
	configDir, err := c.configDir()
	if err != nil {
		return c.fail(exitError, "%v", err)
	}
	receipts := make(chan wire.TranscriptState, 16)
	online := make(chan struct{}, 1)
	a, err := agent.New(agent.Config{
		RelayURL: login.RelayURL, Token: login.Token, Insecure: login.Insecure, Logger: c.log,
		StateDir: agent.SessionDir(configDir, login.RelayURL, login.Token),
		OnEvent: func(ev agent.Event) {
			switch {
			case ev.Kind == agent.EventConn && ev.Conn == agent.Online:
				select {
				case online <- struct{}{}:
				default:
				}
			case ev.Kind == agent.EventTranscript:
				select {
				case receipts <- *ev.Transcript:
				default:
				}
			}
		},
	})
	if err != nil {
		return c.fail(exitUsage, "%v", err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- a.Run(rctx) }()
	defer func() { cancel(); <-done }()
	select {
	case <-online:
	case <-time.After(*timeout):
	case err := <-done:
		done <- err // for the deferred wait
		var se *agent.StopError
		if errors.As(err, &se) {
			return c.stopped(se)
		}
		return c.fail(exitError, "interrupted")
	}

	st, err := a.SubmitTranscript(ctx, t)
	var we *wire.Error
	switch {
	case errors.Is(err, agent.ErrQueued):
		fmt.Fprintf(c.stdout, "The relay can't be reached: transcript %s is kept and will be sent once, when pult next reaches the relay.\n", st.ID)
		return exitOffline
	case errors.As(err, &we):
		return c.fail(exitError, "the relay refused the transcript: %s", we.Message)
	case err != nil:
		return c.fail(exitError, "%v", err)
	}
	fmt.Fprintf(c.stdout, "Transcript %s accepted by the relay (%s).\n", st.ID, st.CommunicationID)
	// Transcripts kept from earlier go out on this connection too: let
	// them, before this one-shot process ends.
	for flushBy := time.Now().Add(*timeout); len(a.QueuedTranscripts()) > 0 && time.Now().Before(flushBy); {
		time.Sleep(50 * time.Millisecond)
	}
	if *wait <= 0 {
		return exitOK
	}
	deadline := time.After(*wait)
	for {
		select {
		case r := <-receipts:
			if r.ID != st.ID {
				continue
			}
			switch r.State {
			case wire.TranscriptDelivered:
				fmt.Fprintf(c.stdout, "Delivered to the QA platform (%d messages).\n", r.Messages)
				return exitOK
			case wire.TranscriptFailed:
				return c.fail(exitError, "the QA platform refused the transcript: %s", r.Reason)
			}
		case <-deadline:
			fmt.Fprintf(c.stdout, "Not delivered yet after %s; the relay keeps trying (the tray app's Transcripts window shows the outcome).\n", *wait)
			return exitOK
		case <-ctx.Done():
			return exitError
		}
	}
}

func (c *cli) readTranscript(name string) (string, error) {
	var r io.Reader = c.stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return "", err
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, wire.MaxTranscript+1))
	if err != nil {
		return "", err
	}
	if len(b) > wire.MaxTranscript {
		return "", fmt.Errorf("%s is larger than %d bytes", name, wire.MaxTranscript)
	}
	if strings.TrimSpace(string(b)) == "" {
		return "", fmt.Errorf("%s is empty", name)
	}
	return string(b), nil
}

// callback NUMBER [--at TIME] [--note TEXT]: Calltouch calls the client back.
func (c *cli) callback(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("callback", flag.ContinueOnError)
	at := fs.String("at", "", `when: "15:04" (today), "2006-01-02 15:04" (local time) or RFC 3339; default now`)
	note := fs.String("note", "", "a note for the call center (at most 255 characters)")
	timeout := fs.Duration("timeout", defaultTimeout, "how long to wait for the relay")
	pos, code, ok := c.parse(fs, args, "callback NUMBER [--at TIME] [--note TEXT]")
	if !ok {
		return code
	}
	if len(pos) != 1 {
		return c.fail(exitUsage, "callback needs one number (quote it if it has spaces)")
	}
	n, err := phone.Parse(pos[0], "")
	if err != nil {
		return c.fail(exitUsage, "%v", err)
	}
	cb := wire.Callback{Phone: n.E164, Note: strings.TrimSpace(*note)}
	if len([]rune(cb.Note)) > 255 {
		return c.fail(exitUsage, "--note: at most 255 characters")
	}
	if *at != "" {
		t, err := agent.ParseWhen(*at, time.Now())
		if err != nil {
			return c.fail(exitUsage, "--at: %v", err)
		}
		cb.At = &t
	}
	s, code := c.connect(ctx, *timeout)
	if s == nil {
		return code
	}
	defer s.close()
	res, err := s.a.Callback(ctx, cb)
	var we *wire.Error
	switch {
	case err == nil:
		when := "now"
		if res.At != nil {
			when = res.At.Local().Format("2006-01-02 15:04")
		}
		fmt.Fprintf(c.stdout, "Callback to %s ordered (%s).\n", res.Display, when)
		return exitOK
	case errors.As(err, &we):
		return c.fail(exitError, "the callback was not ordered: %s", we.Message)
	case errors.Is(err, agent.ErrOffline):
		return c.fail(exitOffline, "%v", err)
	}
	return c.fail(exitError, "%v", err)
}
