package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/pult/pult/agent"
	"github.com/pult/pult/agent/credentials"
	"github.com/pult/pult/agent/phone"
	"github.com/pult/pult/agent/wire"
	"github.com/pult/pult/ui"
)

// Exit codes.
const (
	exitOK      = 0
	exitError   = 1 // the command failed (refused by the relay or PBX, keyring trouble, …)
	exitUsage   = 2 // bad arguments or environment
	exitOffline = 3 // not connected, not signed in, or the token was refused
)

// maxToken bounds the token read by login.
const maxToken = 4 << 10

const defaultTimeout = 10 * time.Second

const usage = `pult — the call-center operator's agent

Usage:
  pult                                        run the desktop app (tray icon, call cards)
  pult tel:NUMBER | callto:NUMBER             open the app's dialer with NUMBER
  pult login --relay URL[,URL…]               sign in; the token is read from FILE or stdin
             [--token-file FILE] [--insecure] (--insecure: allow http:// or ws:// to another machine)
  pult logout [--discard]                     remove the stored token, queued work and recent calls
                                              (--discard: even work not yet sent to the relay)
  pult status                                 show your status and the relay you are on
  pult status free|busy|dinner|break          set your status
  pult dial NUMBER                            call NUMBER through the PBX
  pult callback NUMBER [--at TIME] [--note T] have Calltouch call NUMBER back (now, or at TIME)
  pult transcript submit FILE                 send a chat (Smartsupp export or "Name: message"
                                              lines) to the QA platform; prints the receipt
  pult queue [--json]                         supervisors: the live queue board, refreshed in place
                                              (--json: one snapshot)
  pult watch                                  print events as JSON lines until interrupted
  pult help                                   show this help

login, status and dial accept --timeout DURATION (default 10s): how long to
wait for the relay.

Several relays of one cluster: list their URLs separated by commas
("https://relay1:8700,https://relay2:8700", up to 16; or give the one name
of a load balancer in front of them). pult starts on a random one and, when
it loses it, moves to another and resumes where it was: nothing missed,
nothing twice.

The relay URL may be http(s):// or ws(s)://. Plain http:// and ws:// send
the token unencrypted, so they are accepted only for this machine
(localhost, 127.0.0.1, [::1]); for any other host use https:// (wss://), or
--insecure if you accept that risk (remembered until the next pult login).
The token is kept in the OS keyring (Secret Service on Linux, Credential
Manager on Windows), the URL in the user config directory (~/.config/pult,
%APPDATA%\pult on Windows).

Environment:
  PULT_RELAY, PULT_TOKEN  use this relay (or comma-separated relays) and token instead of
                          the stored sign-in (set both)
  PULT_INSECURE=1         allow PULT_RELAY to be http:// or ws:// to another machine
  PULT_CONFIG_DIR         directory of the stored relay URL (default: <user config dir>/pult)
  PULT_REGION             country for numbers typed without one (default RU)
  PULT_LANG=ru|en         the desktop app's language (default: the OS's)
  PULT_DEBUG=1            log the connection's progress to stderr
  PULT_CPUPROFILE=FILE    the desktop app writes a CPU profile (pprof) to FILE

watch prints one JSON object per line:
  {"event":"connection","state":"online","relay":"relay2.example.com:8700"}
  {"event":"connection","state":"offline","error":"…","retryInMs":1200,"relay":"…"}
  {"event":"hello","hello":{"operator":{…},"status":{…},…}}
  {"event":"call","seq":12,"call":{"id":…,"state":"ringing","phone":…,"manager":{…},…}}
  {"event":"status","seq":13,"status":{"status":"busy","since":…,"source":"crm"}}
  {"event":"notice","seq":14,"notice":{"kind":"dialing","text":…}}

Exit status: 0 success, 1 error, 2 usage, 3 not connected, not signed in or
token refused.
`

// cli is one invocation.
type cli struct {
	env            func(string) string
	stdin          io.Reader
	stdout, stderr io.Writer
	log            *slog.Logger
	store          credentials.Store
	// report, while the desktop app starts, also tells of each failure
	// where stderr reaches nobody (Windows); nil elsewhere.
	report *startReporter
}

// run is the whole program behind main, testable (but for the GUI).
func run(ctx context.Context, args []string, env func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	return runReporting(ctx, args, env, stdin, stdout, stderr, nil)
}

// runReporting is run with report for the desktop app's start failures
// (newStartReporter).
func runReporting(ctx context.Context, args []string, env func(string) string, stdin io.Reader, stdout, stderr io.Writer, report *startReporter) int {
	c := &cli{env: env, stdin: stdin, stdout: stdout, stderr: stderr}
	c.log = slog.New(slog.DiscardHandler)
	if env("PULT_DEBUG") != "" {
		c.log = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	c.store = credentials.Store{ConfigDir: env("PULT_CONFIG_DIR")}

	if len(args) == 0 || isLink(args[0]) {
		c.report = report
		return c.gui(ctx, args)
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	case "login":
		return c.login(ctx, rest)
	case "logout":
		return c.logout(rest)
	case "status":
		return c.status(ctx, rest)
	case "dial":
		return c.dial(ctx, rest)
	case "watch":
		return c.watch(ctx, rest)
	case "transcript":
		return c.transcript(ctx, rest)
	case "callback":
		return c.callback(ctx, rest)
	case "queue":
		return c.queue(ctx, rest)
	}
	fmt.Fprintf(stderr, "pult: unknown command %q\n\n%s", cmd, usage)
	return exitUsage
}

// fail prints a message and returns code. While the desktop app starts,
// c.report is told too.
func (c *cli) fail(code int, format string, args ...any) int {
	msg := fmt.Sprintf(format, args...)
	fmt.Fprintf(c.stderr, "pult: %s\n", msg)
	if c.report != nil {
		c.report.report(c.languages(), "", msg)
	}
	return code
}

// parse parses flags placed before or after the positional arguments.
// ok=false means it returned code (help or a usage error).
func (c *cli) parse(fs *flag.FlagSet, args []string, synopsis string) (pos []string, code int, ok bool) {
	fs.SetOutput(c.stderr)
	fs.Usage = func() {
		fmt.Fprintf(c.stderr, "Usage: pult %s\n", synopsis)
		fs.PrintDefaults()
	}
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, exitOK, false
			}
			return nil, exitUsage, false
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, 0, true
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func (c *cli) login(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("login", flag.ContinueOnError)
	relay := fs.String("relay", "", "relay URL (http, https, ws or wss), or several separated by commas")
	tokenFile := fs.String("token-file", "", "read the token from this file instead of stdin")
	insecure := fs.Bool("insecure", false, "allow an http:// or ws:// relay on another machine: the token goes unencrypted")
	timeout := fs.Duration("timeout", defaultTimeout, "how long to wait for the relay")
	pos, code, ok := c.parse(fs, args, "login --relay URL[,URL…] [--insecure] [--token-file FILE] [--timeout 10s]")
	if !ok {
		return code
	}
	if len(pos) > 0 {
		return c.fail(exitUsage, "login takes no arguments (the token is read from stdin or --token-file)")
	}
	if *relay == "" {
		return c.fail(exitUsage, "login needs --relay URL (or several, separated by commas)")
	}
	// Refused before the token is read, let alone sent.
	url, err := agent.CheckRelayURL(*relay, *insecure)
	if err != nil {
		return c.fail(exitUsage, "%v", err)
	}
	in, from := c.stdin, "stdin"
	if *tokenFile != "" {
		f, err := os.Open(*tokenFile)
		if err != nil {
			return c.fail(exitUsage, "token file: %v", err)
		}
		defer f.Close()
		in, from = f, *tokenFile
	}
	b, err := io.ReadAll(io.LimitReader(in, maxToken+1))
	if err != nil {
		return c.fail(exitError, "reading the token from %s: %v", from, err)
	}
	if len(b) > maxToken {
		return c.fail(exitUsage, "the token from %s is longer than %d bytes; is it the right file?", from, maxToken)
	}
	token := strings.TrimSpace(string(b))
	if token == "" {
		return c.fail(exitUsage, "no token: pipe it to stdin or use --token-file FILE")
	}

	cctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	op, err := agent.CheckConfig(cctx, agent.Config{RelayURL: url, Token: token, Insecure: *insecure})
	if err != nil {
		return c.checkFailed(url, err)
	}
	// The choice is kept with the URL when it matters (plain text to
	// another machine); a later login without --insecure clears it.
	_, plain := agent.CheckRelayURL(url, false)
	if err := c.store.Save(credentials.Login{RelayURL: url, Token: token, Insecure: plain != nil}); err != nil {
		return c.fail(exitError, "the token is valid but could not be stored: %v", err)
	}
	fmt.Fprintf(c.stdout, "Signed in to %s as %s (code %s, %s)\n", url, op.Name, op.Code, op.Role)
	if plain != nil {
		fmt.Fprintf(c.stderr, "pult: warning: --insecure: your token goes unencrypted to the relay; use https:// when you can\n")
	}
	return exitOK
}

// checkFailed explains an agent.Check error.
func (c *cli) checkFailed(url string, err error) int {
	var se *agent.StopError
	switch {
	case errors.As(err, &se):
		return c.stopped(se)
	case errors.Is(err, agent.ErrUnreachable):
		return c.fail(exitOffline, "cannot reach %s (is it running, is the address right?): %v", theRelays(url), err)
	case errors.Is(err, agent.ErrNotRelay):
		return c.fail(exitError, "%s does not look like a pult relay; check the URL: %v", url, err)
	case errors.Is(err, context.Canceled):
		return c.fail(exitError, "interrupted")
	case errors.Is(err, agent.ErrCleartext):
		return c.fail(exitError, "%v; nothing was sent there", err)
	}
	return c.fail(exitError, "%v", err)
}

// stopped explains a stop from the relay.
func (c *cli) stopped(se *agent.StopError) int {
	switch se.Code {
	case wire.CloseBadToken:
		return c.fail(exitOffline, "the relay does not know this token (%s); check it was copied whole, then run pult login again", se.Reason)
	case wire.CloseRevoked:
		return c.fail(exitOffline, "this token has been revoked (%s); ask your administrator for a new one", se.Reason)
	case wire.CloseProtocol:
		return c.fail(exitOffline, "this version of pult is not supported by the relay (%s); please update pult", se.Reason)
	}
	return c.fail(exitOffline, "%v", se)
}

// logout forgets the sign-in and what pult kept of the operator's work on
// this computer: the token, every sign-in's queued state (status changes and
// transcripts not yet sent, stream positions: agent.SessionDirs) and the
// recent calls. Other files in the config folder stay. Work that has not
// reached the relay is not dropped silently: logout refuses, listing it,
// unless --discard.
func (c *cli) logout(args []string) int {
	fs := flag.NewFlagSet("logout", flag.ContinueOnError)
	discard := fs.Bool("discard", false, "sign out even if status changes or transcripts have not reached the relay yet (they are lost)")
	pos, code, ok := c.parse(fs, args, "logout [--discard]")
	if !ok {
		return code
	}
	if len(pos) > 0 {
		return c.fail(exitUsage, "logout takes no arguments")
	}
	configDir, err := c.configDir()
	if err != nil {
		return c.fail(exitError, "%v", err)
	}
	sessions, err := agent.SessionDirs(configDir)
	if err != nil {
		return c.fail(exitError, "reading the queued state: %v", err)
	}
	var unsent []string
	for _, dir := range sessions {
		q, err := agent.ReadQueued(dir)
		if err != nil {
			return c.fail(exitError, "reading the queued state in %s: %v", dir, err)
		}
		if q.Status != nil {
			unsent = append(unsent, fmt.Sprintf("status change to %s (chosen %s)", q.Status.Status, q.Status.At.Local().Format("Jan 2 15:04")))
		}
		for _, t := range q.Transcripts {
			what := "transcript " + t.ID
			if t.Title != "" {
				what += fmt.Sprintf(" (%q)", t.Title)
			}
			unsent = append(unsent, what)
		}
	}
	if len(unsent) > 0 && !*discard {
		return c.fail(exitError, "not signed out: %d item(s) have not reached the relay yet:\n  %s\n"+
			"Start pult while the relay is reachable so they are sent, then sign out; or run pult logout --discard to drop them.",
			len(unsent), strings.Join(unsent, "\n  "))
	}

	if err := c.store.Delete(); err != nil {
		return c.fail(exitError, "%v", err)
	}
	fmt.Fprintln(c.stdout, "Signed out: the token was removed from the OS keyring.")
	if err := agent.RemoveSessions(configDir); err != nil {
		return c.fail(exitError, "the queued state was not removed: %v", err)
	}
	recent := filepath.Join(configDir, ui.RecentFile)
	removedRecent := true
	if err := os.Remove(recent); errors.Is(err, os.ErrNotExist) {
		removedRecent = false
	} else if err != nil {
		return c.fail(exitError, "the recent calls were not removed: %v", err)
	}
	switch {
	case len(sessions) > 0 && removedRecent:
		fmt.Fprintf(c.stdout, "Removed the queued state of %d sign-in(s) and the recent calls from %s.\n", len(sessions), configDir)
	case len(sessions) > 0:
		fmt.Fprintf(c.stdout, "Removed the queued state of %d sign-in(s) from %s.\n", len(sessions), configDir)
	case removedRecent:
		fmt.Fprintf(c.stdout, "Removed the recent calls from %s.\n", configDir)
	}
	if len(unsent) > 0 {
		fmt.Fprintf(c.stderr, "pult: discarded, never sent to the relay:\n  %s\n", strings.Join(unsent, "\n  "))
	}
	if c.env("PULT_TOKEN") != "" {
		fmt.Fprintln(c.stdout, "Note: PULT_TOKEN is still set in the environment.")
	}
	if ep, err := newInstanceEndpoint(c.env, configDir); err == nil {
		if conn, err := ep.dial(time.Second); err == nil {
			conn.Close()
			fmt.Fprintln(c.stdout, "Note: the pult app is running and stays signed in until you sign out from its menu or quit it.")
		}
	}
	return exitOK
}

// credentials returns the sign-in: PULT_RELAY, PULT_TOKEN and
// PULT_INSECURE, or the stored one. A plain-text URL to another machine
// without the operator's consent is refused here, with the way to give it.
// code != 0 means it already explained the failure.
func (c *cli) credentials() (l credentials.Login, code int) {
	url, token := strings.TrimSpace(c.env("PULT_RELAY")), strings.TrimSpace(c.env("PULT_TOKEN"))
	switch {
	case url != "" && token != "":
		l = credentials.Login{RelayURL: url, Token: token, Insecure: envTrue(c.env("PULT_INSECURE"))}
		var ce *agent.CleartextError
		if _, err := agent.CheckRelayURL(url, l.Insecure); errors.As(err, &ce) {
			return l, c.fail(exitUsage, "PULT_RELAY %s would send your token unencrypted to %s; use https:// (wss://), or set PULT_INSECURE=1 if you accept that risk", ce.URL, ce.Host)
		}
		return l, 0
	case url != "":
		return l, c.fail(exitUsage, "PULT_RELAY is set but PULT_TOKEN is not: set both, or neither to use the stored sign-in")
	case token != "":
		return l, c.fail(exitUsage, "PULT_TOKEN is set but PULT_RELAY is not: set both, or neither to use the stored sign-in")
	}
	l, err := c.store.Load()
	switch {
	case errors.Is(err, credentials.ErrNotSignedIn):
		return l, c.fail(exitOffline, "%v: run pult login --relay URL, or set PULT_RELAY and PULT_TOKEN", err)
	case err != nil:
		return l, c.fail(exitError, "%v", err)
	}
	if _, err := agent.CheckRelayURL(l.RelayURL, l.Insecure); errors.Is(err, agent.ErrCleartext) {
		return l, c.fail(exitUsage, "the stored sign-in: %v (pult login --insecure)", err)
	}
	return l, 0
}

// theRelays names a relay URL list for a message: "the relay at URL" or
// "any of the relays URL1, URL2".
func theRelays(list string) string {
	if urls, err := agent.SplitRelayURL(list); err == nil && len(urls) > 1 {
		return "any of the relays " + strings.Join(urls, ", ")
	}
	return "the relay at " + list
}

// envTrue reads a yes/no environment variable: 1, true or yes.
func envTrue(v string) bool {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "1", "true", "yes":
		return true
	}
	return false
}

// session is an agent connected for a one-shot command.
type session struct {
	a      *agent.Agent
	cancel context.CancelFunc
	done   chan struct{}
	err    error // Run's result, once done is closed
}

func (s *session) close() {
	s.cancel()
	<-s.done
}

// connect starts an agent (in-memory state only: a one-shot command leaves
// nothing queued behind) and waits up to timeout for it to be online.
func (c *cli) connect(ctx context.Context, timeout time.Duration) (*session, int) {
	login, code := c.credentials()
	if code != 0 {
		return nil, code
	}
	url := login.RelayURL
	online := make(chan struct{}, 1)
	var mu sync.Mutex
	lastErr := "no answer"
	a, err := agent.New(agent.Config{
		RelayURL: login.RelayURL,
		Token:    login.Token,
		Insecure: login.Insecure,
		Logger:   c.log,
		OnEvent: func(ev agent.Event) {
			if ev.Kind != agent.EventConn {
				return
			}
			switch ev.Conn {
			case agent.Online:
				select {
				case online <- struct{}{}:
				default:
				}
			case agent.Offline:
				mu.Lock()
				lastErr = ev.Err
				mu.Unlock()
			}
		},
	})
	if err != nil {
		return nil, c.fail(exitUsage, "%v", err)
	}
	rctx, cancel := context.WithCancel(ctx)
	s := &session{a: a, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		s.err = a.Run(rctx)
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-online:
		return s, 0
	case <-s.done:
		var se *agent.StopError
		if errors.As(s.err, &se) {
			return nil, c.stopped(se)
		}
		return nil, c.fail(exitError, "interrupted")
	case <-t.C:
		s.close()
		mu.Lock()
		defer mu.Unlock()
		return nil, c.fail(exitOffline, "could not connect to %s within %s: %s", theRelays(url), timeout, lastErr)
	}
}

func (c *cli) status(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	timeout := fs.Duration("timeout", defaultTimeout, "how long to wait for the relay")
	pos, code, ok := c.parse(fs, args, "status [free|busy|dinner|break] [--timeout 10s]")
	if !ok {
		return code
	}
	var want wire.Status
	switch len(pos) {
	case 0:
	case 1:
		st, err := wire.ParseStatus(pos[0])
		if err != nil {
			return c.fail(exitUsage, "%v", err)
		}
		want = st
	default:
		return c.fail(exitUsage, "status takes at most one argument: free, busy, dinner or break")
	}

	s, code := c.connect(ctx, *timeout)
	if s == nil {
		return code
	}
	defer s.close()
	if want == "" {
		h, _ := s.a.Hello()
		fmt.Fprintf(c.stdout, "%s (code %s): %s\n", h.Operator.Name, h.Operator.Code, describeStatus(h.Status))
		fmt.Fprintf(c.stdout, "Relay: %s\n", s.a.Relay())
		return exitOK
	}
	sctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	info, err := s.a.SetStatus(sctx, want)
	var we *wire.Error
	switch {
	case err == nil:
		fmt.Fprintf(c.stdout, "Status set: %s\n", describeStatus(info))
		return exitOK
	case errors.As(err, &we):
		return c.fail(exitError, "the relay refused status %s: %s", want, we.Message)
	case errors.Is(err, agent.ErrQueued):
		return c.fail(exitOffline, "the connection dropped before the relay confirmed: status %s may not be set", want)
	}
	return c.fail(exitError, "%v", err)
}

func describeStatus(s wire.StatusInfo) string {
	out := string(s.Status)
	if !s.Since.IsZero() {
		out += " since " + s.Since.Local().Format("Jan 2 15:04")
	}
	if s.Source != "" {
		out += " (set by " + s.Source + ")"
	}
	return out
}

func (c *cli) dial(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("dial", flag.ContinueOnError)
	timeout := fs.Duration("timeout", defaultTimeout, "how long to wait for the relay")
	pos, code, ok := c.parse(fs, args, "dial NUMBER [--timeout 10s]")
	if !ok {
		return code
	}
	if len(pos) != 1 {
		return c.fail(exitUsage, "dial needs one number (quote it if it has spaces)")
	}
	n, err := phone.Parse(pos[0], "")
	if err != nil {
		return c.fail(exitUsage, "%v", err)
	}
	s, code := c.connect(ctx, *timeout)
	if s == nil {
		return code
	}
	defer s.close()
	fmt.Fprintf(c.stdout, "Dialing %s…\n", n.National)
	_, err = s.a.Dial(ctx, n.E164)
	var we *wire.Error
	switch {
	case err == nil:
		fmt.Fprintln(c.stdout, "PBX accepted the call")
		return exitOK
	case errors.As(err, &we):
		return c.fail(exitError, "the call was not placed: %s", we.Message)
	case errors.Is(err, agent.ErrOffline):
		return c.fail(exitOffline, "%v", err)
	}
	return c.fail(exitError, "%v", err)
}

// watchLine is one line of `pult watch`. Field names are stable.
type watchLine struct {
	Event     string           `json:"event"` // connection, hello, call, status, notice, receipt
	Seq       uint64           `json:"seq,omitempty"`
	State     string           `json:"state,omitempty"` // connection: connecting, online, offline, auth_failed, outdated
	Error     string           `json:"error,omitempty"`
	RetryInMs int64            `json:"retryInMs,omitempty"`
	Relay     string           `json:"relay,omitempty"` // connection: host[:port] of the relay dialed, on, or lost
	Hello     *wire.Hello      `json:"hello,omitempty"`
	Call      *wire.Call       `json:"call,omitempty"`
	Status    *wire.StatusInfo `json:"status,omitempty"`
	Notice    *wire.Notice     `json:"notice,omitempty"`
	Receipt   *agent.Receipt   `json:"receipt,omitempty"`
}

func toWatchLine(ev agent.Event) watchLine {
	l := watchLine{
		Event: ev.Kind.String(), Seq: ev.Seq,
		Hello: ev.Hello, Call: ev.Call, Status: ev.Status, Notice: ev.Notice, Receipt: ev.Receipt,
	}
	if ev.Kind == agent.EventConn {
		l.State, l.Relay, l.Error, l.RetryInMs = ev.Conn.String(), ev.Relay, ev.Err, ev.RetryIn.Milliseconds()
	}
	return l
}

func (c *cli) watch(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("watch", flag.ContinueOnError)
	pos, code, ok := c.parse(fs, args, "watch")
	if !ok {
		return code
	}
	if len(pos) > 0 {
		return c.fail(exitUsage, "watch takes no arguments")
	}
	login, code := c.credentials()
	if code != 0 {
		return code
	}
	enc := json.NewEncoder(c.stdout)
	enc.SetEscapeHTML(false)
	a, err := agent.New(agent.Config{
		RelayURL: login.RelayURL,
		Token:    login.Token,
		Insecure: login.Insecure,
		Logger:   c.log,
		OnEvent: func(ev agent.Event) {
			if err := enc.Encode(toWatchLine(ev)); err != nil {
				c.log.Error("writing an event", "err", err)
			}
		},
	})
	if err != nil {
		return c.fail(exitUsage, "%v", err)
	}
	err = a.Run(ctx)
	var se *agent.StopError
	if errors.As(err, &se) {
		return c.stopped(se)
	}
	if err != nil {
		return c.fail(exitError, "%v", err)
	}
	return exitOK
}
