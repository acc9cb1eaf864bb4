// Package ui is pult's desktop app: the tray icon and its menu, the call
// cards, the dialer, recent calls and the sign-in window, drawn with fyne on
// top of package agent (which never imports ui).
//
// Concurrency: everything the windows show is owned by the fyne UI goroutine.
// The agent's events, request results, timers and tray clicks reach it
// through App.do (fyne.Do, or Config.Do in tests), so no widget and no field
// of App but its inbox of agent events is touched from anywhere else; only
// the inbox has a lock. App.do also wakes the loop when it is parked
// (idle.go). The agent's events are applied in batches: every event come
// by the time the UI goroutine takes them, in one turn (applyEvents). OS
// notifications are queued by the UI goroutine and sent by one goroutine of
// their own, in order, so the UI goroutine never waits for the desktop's
// notification service (notify_glfw.go). In the tray, the agent starts
// listening for calls once the UI goroutine has prepared the calls window
// (cardStack.warm closes cardStack.ready).
package ui

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/systray"

	"github.com/pult/pult/agent"
	"github.com/pult/pult/agent/credentials"
	"github.com/pult/pult/agent/phone"
	"github.com/pult/pult/agent/wire"
)

// Credentials keeps the sign-in: the OS keyring (credentials.Store) in the
// app, a map in tests.
type Credentials interface {
	// Load returns the sign-in; with an error, RelayURL may still be set.
	Load() (Login, error)
	Save(Login) error
	Delete() error
}

// Config configures the desktop app. cmd/pult fills it from flags and the
// environment; nothing here reads either.
type Config struct {
	Credentials Credentials
	// Fixed, when set, is a sign-in given from outside (PULT_RELAY,
	// PULT_TOKEN and PULT_INSECURE): it is used instead of Credentials and
	// never stored.
	Fixed *Login
	// StateDir holds the agent's outbox and stream position and the
	// recent calls; "" keeps them in memory.
	StateDir string
	// Tray says a StatusNotifier host is reachable. Without one the app
	// runs with a small main window instead of a tray icon. In the tray,
	// fyne's loop is parked while no window is shown.
	Tray bool
	// Region is the default country for numbers typed without one.
	Region string
	// Languages are the operator's languages, most wanted first (BCP 47
	// tags such as "ru-RU", or POSIX ones such as "ru_RU.UTF-8"): the app
	// speaks the first it has words for, else English. cmd/pult gives
	// PULT_LANG or the OS's languages.
	Languages []string
	// DialNumber, when set, opens the dialer pre-filled (a tel: link).
	DialNumber string
	Logger     *slog.Logger
	// Check verifies a relay URL and token before they are saved;
	// agent.Check by default. The sign-in window never allows plain text
	// to another machine (agent.CheckRelayURL): only the command line can.
	Check func(ctx context.Context, relayURL, token string) (wire.Operator, error)
	// LongBreak is how long a break or dinner may last before the Queue
	// window shows it red (default 15 minutes).
	LongBreak time.Duration
	// Now is the clock; time.Now by default.
	Now func() time.Time
	// Do runs f on the UI goroutine, later; fyne.Do by default. Tests
	// give their own serial loop, as fyne's test driver runs f at once on
	// the caller's goroutine.
	Do func(f func())
}

// Login is a relay URL and token, and whether the operator accepted plain
// text to that relay (pult login --insecure).
type Login = credentials.Login

// App is the running desktop app.
type App struct {
	cfg  Config
	fa   fyne.App
	log  *slog.Logger
	tr   *words
	idle *idler
	// stopIdle ends the parking of the loop; set by Run.
	stopIdle context.CancelFunc
	// events are the agent's events on their way to the UI goroutine.
	events inbox

	// Owned by the UI goroutine.
	sess    *session
	op      *wire.Operator
	conn    agent.ConnState
	connErr string
	retryAt time.Time
	relay   string // the relay the agent is on or trying (EventConn.Relay)
	status  wire.StatusInfo
	pending *wire.Status // chosen while offline, not yet confirmed
	skew    time.Duration

	tray         *tray
	cards        *cardStack
	recent       *recentCalls
	dialer       *dialer
	signin       *signin
	recentW      *recentWindow
	transcriptsW *transcriptsWindow
	callbackW    *callbackWindow
	queueW       *queueWindow
	main         *mainWindow
	notes        notifier
}

// New prepares the app on fa (app.NewWithID in cmd/pult, test.NewApp in
// tests). It shows nothing until Run.
func New(fa fyne.App, cfg Config) *App {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Check == nil {
		cfg.Check = agent.Check
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Do == nil {
		cfg.Do = fyne.Do
	}
	a := &App{cfg: cfg, fa: fa, log: cfg.Logger.With("component", "ui"), tr: newWords(cfg.Languages), stopIdle: func() {}}
	a.idle = newIdler(a.log)
	a.recent = loadRecent(a.statePath(RecentFile), a.log, a.do)
	a.cards = newCardStack(a)
	a.tray = newTray(a)
	return a
}

// Run shows the app and blocks in fyne's event loop until Quit or ctx ends.
// It must be called from the main goroutine. Everything it started has
// stopped when it returns.
func (a *App) Run(ctx context.Context) error {
	ictx, stopIdle := context.WithCancel(ctx)
	a.stopIdle = stopIdle
	defer stopIdle()
	var trayStart, trayEnd func()
	parked := make(chan struct{})
	if a.cfg.Tray {
		if runtime.GOOS != "windows" {
			// Some tray hosts fail on an item without a title (fyne issue
			// 3678). On Windows the icon exists only once registered
			// (tray.attach sets it then).
			systray.SetTitle("pult")
			systray.SetIcon(a.tray.icon().Content())
			systray.SetTooltip(a.tray.tooltip())
		}
		a.tray.stop = make(chan struct{})
		trayStart, trayEnd = systray.RunWithExternalLoop(func() { a.do(a.tray.attach) }, nil)
		go func() {
			defer close(parked)
			a.idle.parkWhenQuiet(ictx, fyne.Do, a.quiet, pollWindowSystem)
		}()
	} else {
		close(parked)
	}
	stop := context.AfterFunc(ctx, func() { a.do(a.Quit) })
	defer stop()
	started := false
	a.fa.Lifecycle().SetOnStarted(func() {
		if trayStart != nil {
			trayStart()
			started = true
		}
		a.start()
	})
	a.fa.Run()
	stopIdle()
	<-parked
	a.tray.detach()
	if started {
		trayEnd()
	}
	a.shutdown()
	return nil
}

// start runs once the loop is up: sign in from the stored credentials or
// ask for them.
func (a *App) start() {
	if a.cfg.Tray {
		// fyne quits when its last window is closed. The calls window,
		// made now and never closed (hidden between calls), keeps the app
		// in the tray when the operator closes the dialer; fyne creates
		// its native side only when it is first shown (cards.warm, or the
		// first card).
		a.cards.ensureWindow()
	} else {
		a.main = newMainWindow(a)
		a.main.show()
		// No warm-up without a tray (cards.warm): calls are listened for
		// at once.
		a.cards.readyForCalls()
	}
	a.refresh()
	login, err := a.storedLogin()
	switch {
	case err == nil:
		a.startSession(login)
	default:
		a.showSignin(a.tr.signinMessage(err))
	}
	if a.cfg.DialNumber != "" {
		a.openDialer(a.cfg.DialNumber)
	}
}

func (a *App) storedLogin() (Login, error) {
	if a.cfg.Fixed != nil {
		return *a.cfg.Fixed, nil
	}
	login, err := a.cfg.Credentials.Load()
	if err != nil {
		return Login{}, err
	}
	return login, nil
}

// do runs f on the UI goroutine, waking the loop if it is parked.
func (a *App) do(f func()) {
	a.idle.handed()
	a.cfg.Do(func() {
		a.idle.started()
		f()
	})
}

// maxEventsPerTurn is how many of the agent's events the UI goroutine
// applies in one turn before fyne's loop gets its own (a catch-up after an
// outage can be long).
const maxEventsPerTurn = 64

// inbox holds the agent's events (as functions that apply them) until the
// UI goroutine takes them: every event that has come by then, in one turn
// (applyEvents). The agent's dispatch goroutine puts, the UI goroutine
// takes.
type inbox struct {
	mu        sync.Mutex
	fs        []func()
	scheduled bool // applyEvents is queued or running
}

// doEvent queues f, which applies one of the agent's events, for the UI
// goroutine. Any goroutine.
func (a *App) doEvent(f func()) {
	a.events.mu.Lock()
	a.events.fs = append(a.events.fs, f)
	schedule := !a.events.scheduled
	a.events.scheduled = true
	a.events.mu.Unlock()
	if schedule {
		a.do(a.applyEvents)
	}
}

// applyEvents applies the agent's events queued so far, and those that
// come meanwhile, in order, up to maxEventsPerTurn; the cards they make
// are put on screen together, with one layout and one paint, once they
// are all made (cardStack.batch). UI goroutine.
func (a *App) applyEvents() {
	a.cards.batch(func() {
		for range maxEventsPerTurn {
			a.events.mu.Lock()
			if len(a.events.fs) == 0 {
				a.events.scheduled = false
				a.events.mu.Unlock()
				return
			}
			f := a.events.fs[0]
			a.events.fs[0] = nil
			a.events.fs = a.events.fs[1:]
			a.events.mu.Unlock()
			f()
		}
		a.do(a.applyEvents) // the rest on the loop's next turn
	})
}

// quiet says nothing is shown that needs fyne's loop: no window, no card
// (UI goroutine). The tray menu is served without the loop. While pult holds
// the clipboard (a number copied from a card), a paste in another app is
// answered from the loop, so the parked loop polls for it every pasteWait.
func (a *App) quiet() (bool, time.Duration) {
	if a.main != nil || len(a.cards.cards) > 0 || a.dialer != nil || a.signin != nil ||
		a.recentW != nil || a.transcriptsW != nil || a.callbackW != nil || a.queueW != nil {
		return false, 0
	}
	if ownsClipboard() {
		return true, pasteWait
	}
	return true, 0
}

// pasteWait is the longest a paste of what pult copied waits for the parked
// loop: well inside what applications wait for a selection (seconds).
const pasteWait = 200 * time.Millisecond

// Quit ends the app.
func (a *App) Quit() {
	a.stopIdle()
	a.fa.Quit()
}

// shutdown stops the agent once the loop has ended.
func (a *App) shutdown() {
	a.cards.stopTimers()
	if s := a.sess; s != nil {
		a.sess = nil
		s.stop()
	}
	a.recent.flush()
}

// statePath is a file in StateDir, or "" without one.
func (a *App) statePath(name string) string {
	if a.cfg.StateDir == "" {
		return ""
	}
	return filepath.Join(a.cfg.StateDir, name)
}

// session is one signed-in agent.
type session struct {
	login  Login
	agent  *agent.Agent
	cancel context.CancelFunc
	done   chan struct{}
}

func (s *session) stop() {
	s.cancel()
	<-s.done
}

// startSession starts an agent for login. The agent's state lives in a
// folder of its own per relay and token, so another sign-in never resumes
// someone else's stream.
func (a *App) startSession(login Login) {
	if a.sess != nil {
		return
	}
	stateDir := ""
	if a.cfg.StateDir != "" {
		stateDir = agent.SessionDir(a.cfg.StateDir, login.RelayURL, login.Token)
	}
	s := &session{login: login, done: make(chan struct{})}
	ag, err := agent.New(agent.Config{
		RelayURL: login.RelayURL,
		Token:    login.Token,
		Insecure: login.Insecure,
		StateDir: stateDir,
		Resume:   stateDir != "",
		Logger:   a.cfg.Logger,
		OnEvent: func(ev agent.Event) {
			at := time.Now()
			a.doEvent(func() { a.onEvent(s, ev, at) })
		},
	})
	switch {
	case errors.Is(err, agent.ErrCleartext): // a config file edited by hand
		a.showSignin(a.tr.checkMessage(err))
		return
	case err != nil:
		a.showSignin(a.tr.T("signin.couldNotStart", "Err", err))
		return
	}
	s.agent = ag
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	a.sess = s
	a.conn = agent.Connecting
	a.relay = ""
	a.refresh()
	go func() {
		defer close(s.done)
		// Connected once the calls window is ready (cardStack.warm, about
		// half a second after start-up here), so no call's frame waits
		// for the warm-up. The tray says "connecting" meanwhile; a call
		// that rings then comes on connection, as the relay resumes the
		// stream from where the last run left it (a first run has no
		// such position: a call that rang before it connected is not
		// sent, as before this wait).
		select {
		case <-a.cards.ready:
		case <-ctx.Done():
			return
		}
		err := ag.Run(ctx)
		a.do(func() { a.sessionEnded(s, err) })
	}()
}

// sessionEnded handles Run returning: a refused token asks to sign in again.
func (a *App) sessionEnded(s *session, err error) {
	if a.sess != s {
		return // signed out meanwhile
	}
	var se *agent.StopError
	if !errors.As(err, &se) {
		return
	}
	a.sess = nil
	a.op = nil
	a.pending = nil
	if se.Code == wire.CloseProtocol {
		a.conn = agent.Outdated
	} else {
		a.conn = agent.AuthFailed
	}
	a.refresh()
	a.showSignin(a.tr.stopMessage(se))
}

// signOut stops the agent and forgets the token.
func (a *App) signOut() {
	s := a.sess
	a.sess = nil
	a.op = nil
	a.pending = nil
	a.status = wire.StatusInfo{}
	a.conn = agent.Stopped
	a.cards.clear()
	if a.queueW != nil {
		a.queueW.w.Close()
	}
	a.refresh()
	fixed := a.cfg.Fixed != nil
	go func() {
		if s != nil {
			s.stop()
		}
		var err error
		if !fixed {
			err = a.cfg.Credentials.Delete()
		}
		a.do(func() {
			msg := a.tr.T("signout.done")
			if fixed {
				msg = a.tr.T("signout.fixed")
			}
			if err != nil {
				msg = a.tr.T("signout.notRemoved", "Err", err)
			}
			a.cfg.Fixed = nil
			a.showSignin(msg)
		})
	}()
}

// onEvent applies one agent event (UI goroutine).
func (a *App) onEvent(s *session, ev agent.Event, received time.Time) {
	if a.sess != s {
		return
	}
	switch ev.Kind {
	case agent.EventConn:
		a.conn = ev.Conn
		a.connErr = ev.Err
		a.relay = ev.Relay
		a.retryAt = time.Time{}
		if ev.Conn == agent.Offline && ev.RetryIn > 0 {
			a.retryAt = a.cfg.Now().Add(ev.RetryIn)
		}
	case agent.EventHello:
		op := ev.Hello.Operator
		a.op = &op
		a.status = ev.Hello.Status
		if !ev.Hello.ServerTime.IsZero() {
			a.skew = ev.Hello.ServerTime.Sub(received)
		}
		if a.pending != nil && *a.pending == a.status.Status {
			a.pending = nil
		}
	case agent.EventStatus:
		a.status = *ev.Status
		if a.pending != nil && *a.pending == a.status.Status {
			a.pending = nil
		}
	case agent.EventCall:
		a.onCall(*ev.Call, received)
	case agent.EventCallWithdrawn:
		// Shown ahead of the relay's log, then not stored: it never was.
		a.cards.remove(ev.Call.ID, false)
		a.recent.remove(ev.Call.ID)
		if a.recentW != nil {
			a.recentW.refresh()
		}
	case agent.EventNotice:
		a.onNotice(*ev.Notice)
	case agent.EventTranscript:
		a.onTranscript(*ev.Transcript)
	case agent.EventQueue:
		if a.queueW != nil {
			a.queueW.show(ev.Queue, ev.Err)
		}
	case agent.EventReceipt:
		r := ev.Receipt
		a.pending = nil
		if r.Refused != nil {
			a.notify(a.tr.T("notify.statusNotChanged"), a.tr.T("notify.statusRefused", "Status", a.tr.status(r.Status), "Reason", a.tr.relayError(r.Refused)))
		} else if r.Applied != nil {
			a.status = *r.Applied
		}
	}
	a.refresh()
}

// onCall shows a call: a card (and, once it is on screen, a notification
// for a new incoming call that is still ringing), and an entry in recent
// calls.
func (a *App) onCall(c wire.Call, received time.Time) {
	a.recent.add(c)
	note := c.State == wire.CallRinging && c.Direction == wire.DirectionIn && a.fresh(c)
	a.cards.update(c, func() {
		a.log.Debug("card shown", "call", c.ID, "state", c.State, "latency", time.Since(received))
		// Still ringing: the events applied with this one (a catch-up's,
		// of the last minutes) may have ended the call already.
		if note && a.cards.byID[c.ID].call.State == wire.CallRinging {
			a.notify(a.tr.callTitle(c), a.tr.callSummary(c))
		}
	})
	if a.recentW != nil {
		a.recentW.refresh()
	}
}

// fresh tells a call that is ringing now from one replayed after an outage.
func (a *App) fresh(c wire.Call) bool {
	return c.StartedAt.IsZero() || a.serverNow().Sub(c.StartedAt) < 2*time.Minute
}

// How long a notice is worth a notification. A connection that resumes
// after an outage, or an app's first connection (which brings its
// operator's last two minutes), replays the notices it missed: "dialing" is
// news only for a moment; that a call the CRM asked for was not placed
// stays worth telling a little longer, while the operator may still be
// waiting for it.
const (
	dialingNoticeFresh = 30 * time.Second
	noticeFresh        = 2 * time.Minute
)

func (a *App) onNotice(n wire.Notice) {
	if a.dialer != nil && a.dialer.onNotice(n) {
		return
	}
	if !n.At.IsZero() { // relays before Notice.At: as fresh
		limit := noticeFresh
		if n.Kind == wire.NoticeDialing {
			limit = dialingNoticeFresh
		}
		if age := a.serverNow().Sub(n.At); age > limit {
			a.log.Debug("stale notice not raised", "kind", n.Kind, "age", age.Round(time.Second))
			return
		}
	}
	switch n.Kind {
	case wire.NoticeDialing:
		// The relay's text is English; the number says it all.
		body := n.Text
		if n.Phone != "" {
			body = a.tr.T("notify.dialingFromCRM", "Number", phone.Display(n.Phone, a.cfg.Region))
		}
		a.notify(a.tr.T("notify.dialing"), body)
	case wire.NoticeDialFailed:
		a.notify(a.tr.T("notify.callNotPlaced"), a.tr.dialFailed(n, a.cfg.Region))
	default:
		a.notify("pult", n.Text)
	}
}

// notify raises an OS notification, sent from a goroutine of its own
// (notifier). fyne only logs failures.
func (a *App) notify(title, body string) {
	a.notes.send(a.fa, a.log, fyne.NewNotification(title, body))
}

// setStatus asks the relay for st, from the tray, a window or a shortcut.
func (a *App) setStatus(st wire.Status) {
	s := a.sess
	if s == nil {
		return
	}
	a.pending = &st
	a.refresh()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		info, err := s.agent.SetStatus(ctx, st)
		a.do(func() {
			if a.sess != s {
				return
			}
			var werr *wire.Error
			switch {
			case err == nil:
				a.status = info
				a.pending = nil
			case errors.Is(err, agent.ErrQueued):
				// Stays pending: sent on reconnect, outcome as a receipt.
			case errors.As(err, &werr):
				a.pending = nil
				a.notify(a.tr.T("notify.statusNotChanged"), a.tr.T("notify.statusRefused", "Status", a.tr.status(st), "Reason", a.tr.relayError(werr)))
			default:
				a.pending = nil
				a.log.Warn("status not changed", "status", st, "err", err)
				a.notify(a.tr.T("notify.statusNotChanged"), a.tr.requestError(err))
			}
			a.refresh()
		})
	}()
}

// shownStatus is the status the tray shows: the pending choice, else the
// relay's.
func (a *App) shownStatus() wire.Status {
	if a.pending != nil {
		return *a.pending
	}
	return a.status.Status
}

// refresh brings every surface in line with the state.
func (a *App) refresh() {
	a.tray.update()
	if a.main != nil {
		a.main.update()
	}
	if a.dialer != nil {
		a.dialer.updateConn()
	}
}

// dial places a call; done receives the outcome on the UI goroutine.
func (a *App) dial(number string, done func(wire.DialResult, error)) {
	s := a.sess
	if s == nil {
		done(wire.DialResult{}, errNotSignedIn)
		return
	}
	a.recent.addDialled(number)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		res, err := s.agent.Dial(ctx, number)
		if err != nil {
			a.log.Warn("call not placed", "err", err)
		}
		a.do(func() { done(res, err) })
	}()
}

var errNotSignedIn = errors.New("not signed in")

// openURL opens a CRM link in the browser.
func (a *App) openURL(raw string) {
	u, err := parseURL(raw)
	if err != nil {
		a.notify(a.tr.T("notify.cantOpenLink"), a.tr.T("notify.notWebAddress", "URL", raw))
		return
	}
	if err := a.fa.OpenURL(u); err != nil {
		a.log.Warn("link not opened", "err", err)
		a.notify(a.tr.T("notify.cantOpenLink"), a.tr.T("notify.noBrowser", "URL", raw))
	}
}

// copyText puts s on the clipboard.
func (a *App) copyText(s string) {
	a.fa.Clipboard().SetContent(s)
}

// Open brings pult forward from outside (another `pult` started, a tel:
// link): the dialer pre-filled with number, or the sign-in or main window.
// Safe from any goroutine.
func (a *App) Open(number string) {
	a.do(func() {
		switch {
		case number != "":
			a.openDialer(number)
		case a.sess == nil:
			a.showSignin("")
		case a.main != nil:
			a.main.w.Show()
			a.main.w.RequestFocus()
		default:
			a.openDialer("")
		}
	})
}
