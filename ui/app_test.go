package ui

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/widget"

	"github.com/pult/pult/agent"
	"github.com/pult/pult/agent/agenttest"
	"github.com/pult/pult/agent/wire"
)

// testApp is the desktop app on fyne's test driver, talking to a real
// (test) relay over a real websocket.
type testApp struct {
	t     *testing.T
	fa    fyne.App
	loop  *loop
	a     *App
	creds *memCreds
	relay *agenttest.Relay
}

func newTestApp(t *testing.T, signedIn bool, mod ...func(*Config)) *testApp {
	t.Helper()
	checkGoroutines(t)
	fa := newTestFyne(t)
	r := agenttest.New(t)
	creds := &memCreds{}
	if signedIn {
		creds.url, creds.token = r.URL, agenttest.Token
	}
	l := newLoop(t)
	cfg := Config{
		Credentials: creds,
		StateDir:    t.TempDir(),
		Region:      "RU",
		Do:          l.do,
	}
	for _, m := range mod {
		m(&cfg)
	}
	ta := &testApp{t: t, fa: fa, loop: l, creds: creds, relay: r}
	l.wait(func() { ta.a = New(fa, cfg) })
	l.wait(ta.a.start)
	t.Cleanup(func() { l.wait(ta.a.shutdown) })
	return ta
}

func (ta *testApp) online() {
	ta.t.Helper()
	ta.loop.eventually(ta.t, "online with hello", func() bool {
		return ta.a.conn == agent.Online && ta.a.op != nil
	})
}

func (ta *testApp) menuLabels() []string {
	var out []string
	ta.loop.wait(func() {
		for _, it := range ta.a.tray.menu.Items {
			if it.IsSeparator {
				out = append(out, "---")
				continue
			}
			l := it.Label
			if it.Checked {
				l = "✓ " + l
			}
			if it.Disabled {
				l = "(" + l + ")"
			}
			out = append(out, l)
		}
	})
	return out
}

// menuImage renders the tray menu as fyne draws a menu.
func (ta *testApp) menuImage(t *testing.T, name string) {
	t.Helper()
	ta.loop.wait(func() {
		m := widget.NewMenu(ta.a.tray.menu)
		w := test.NewWindow(m)
		w.Resize(m.MinSize())
		test.AssertImageMatches(t, name, w.Canvas().Capture())
		w.Close()
	})
}

func TestSignedInTrayAndStatus(t *testing.T) {
	ta := newTestApp(t, true)
	ta.online()
	want := []string{"(Anna (100) — online)", "---", "✓ Free", "Busy", "Dinner", "Break", "---", "Dial…", "Recent calls…", "Transcripts…", "---", "Sign out", "Quit"}
	if got := ta.menuLabels(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("menu\n got %q\nwant %q", got, want)
	}
	// "Busy" from the menu reaches the relay and is shown checked.
	ta.loop.wait(func() { ta.a.tray.statuses[1].Action() })
	ta.loop.eventually(t, "busy confirmed", func() bool { return ta.a.status.Status == wire.StatusBusy && ta.a.pending == nil })
	if st := ta.relay.Status(); st.Status != wire.StatusBusy {
		t.Errorf("relay has status %q", st.Status)
	}
	ta.menuImage(t, "tray/operator_busy.png")
	var tip string
	ta.loop.wait(func() { tip = ta.a.tray.tooltip() })
	if tip != "pult — Anna: Busy (online)" {
		t.Errorf("tooltip %q", tip)
	}
	// A status changed elsewhere (the CRM) shows too.
	ta.relay.Publish(wire.TypeStatus, wire.StatusInfo{Status: wire.StatusDinner, Since: time.Now(), Source: "crm"})
	ta.loop.eventually(t, "dinner from the CRM", func() bool { return ta.a.status.Status == wire.StatusDinner })
	ta.menuImage(t, "tray/operator_dinner.png")
}

func TestOfflineAndRecovery(t *testing.T) {
	ta := newTestApp(t, true, func(c *Config) {})
	ta.online()
	windows := len(ta.fa.Driver().AllWindows())
	ta.relay.Refuse(http.StatusServiceUnavailable, nil)
	ta.relay.Drop()
	ta.loop.eventually(t, "offline", func() bool { return ta.a.conn != agent.Online })
	var icon fyne.Resource
	var tip string
	ta.loop.wait(func() { icon, tip = ta.a.tray.icon(), ta.a.tray.tooltip() })
	if icon != iconOffline || !strings.Contains(tip, "onnect") {
		t.Errorf("offline: icon %s, tooltip %q", icon.Name(), tip)
	}
	// A status chosen while offline is shown as pending, then sent.
	ta.loop.wait(func() { ta.a.setStatus(wire.StatusBreak) })
	ta.loop.eventually(t, "pending", func() bool { return ta.a.pending != nil })
	ta.relay.Refuse(0, nil)
	ta.online()
	ta.loop.eventually(t, "break applied after reconnect", func() bool { return ta.a.status.Status == wire.StatusBreak && ta.a.pending == nil })
	if n := len(ta.fa.Driver().AllWindows()); n != windows {
		t.Errorf("the outage opened windows: %d before, %d after", windows, n)
	}
}

func TestOfflineMenu(t *testing.T) {
	ta := newTestApp(t, true)
	ta.online()
	ta.relay.Close()
	ta.loop.eventually(t, "offline", func() bool { return ta.a.conn == agent.Offline })
	ta.loop.wait(func() {
		ta.a.retryAt = time.Time{} // the countdown differs run to run
		ta.a.setStatus(wire.StatusBreak)
	})
	ta.loop.eventually(t, "pending", func() bool { return ta.a.pending != nil })
	ta.loop.wait(func() { ta.a.retryAt = time.Time{}; ta.a.refresh() })
	got := strings.Join(ta.menuLabels(), "|")
	if !strings.Contains(got, "✓ Break (sending…)") || !strings.Contains(got, "reconnecting…") {
		t.Errorf("offline menu %q", got)
	}
	ta.menuImage(t, "tray/operator_offline_pending.png")
}

func TestSupervisorMenu(t *testing.T) {
	ta := newTestApp(t, false)
	ta.relay.SetOperator(wire.Operator{ID: "op-3", Name: "Екатерина", Code: "102", Role: wire.RoleSupervisor})
	ta.creds.Save(Login{RelayURL: ta.relay.URL, Token: agenttest.Token})
	ta.loop.wait(func() { ta.a.startSession(Login{RelayURL: ta.relay.URL, Token: agenttest.Token}) })
	ta.online()
	ta.menuImage(t, "tray/supervisor_free.png")
}

func TestSignedOutMenu(t *testing.T) {
	ta := newTestApp(t, false)
	got := strings.Join(ta.menuLabels(), "|")
	want := "(pult — not signed in)|---|(Free)|(Busy)|(Dinner)|(Break)|---|(Dial…)|Recent calls…|Transcripts…|---|Sign in…|Quit"
	if got != want {
		t.Errorf("menu\n got %q\nwant %q", got, want)
	}
	ta.menuImage(t, "tray/signed_out.png")
}

// An incoming call raises a notification and a card that follows it; the
// card closes itself once someone else answers; a missed call stays in
// Recent calls.
func TestIncomingCall(t *testing.T) {
	ta := newTestApp(t, true)
	ta.online()
	c := demoCall()
	c.StartedAt = time.Now().UTC()
	n := fyne.NewNotification("Incoming call: 8 (916) 123-45-67",
		"Иван Петров · to Shop Moscow · 8 (495) 111-22-33 · Manager: Анна Смирнова, ext. 100 · free")
	test.AssertNotificationSent(t, n, func() {
		ta.relay.Publish(wire.TypeCall, c)
		ta.loop.eventually(t, "card", func() bool { return ta.a.cards.byID[c.ID] != nil })
	})
	var visible bool
	ta.loop.wait(func() { visible = ta.a.cards.w.Content().Visible() && ta.a.cards.ticker != nil })
	if !visible {
		t.Error("card window not shown or timer not running")
	}
	// A second call stacks under the first.
	c2 := demoCall()
	c2.ID, c2.Phone, c2.PhoneDisplay, c2.StartedAt = "call-2", "+79990001122", "8 (999) 000-11-22", time.Now().UTC()
	ta.relay.Publish(wire.TypeCall, c2)
	ta.loop.eventually(t, "two cards", func() bool { return len(ta.a.cards.cards) == 2 })

	c.State = wire.CallAnsweredElsewhere
	c.AnsweredBy = &wire.Party{Code: "101", Name: "Дмитрий"}
	ta.relay.Publish(wire.TypeCall, c)
	ta.loop.eventually(t, "answered elsewhere shown", func() bool {
		k := ta.a.cards.byID[c.ID]
		return k != nil && k.state.Text == "Answered by Дмитрий (101)"
	})
	start := time.Now()
	ta.loop.eventually(t, "card closed by itself", func() bool { return ta.a.cards.byID[c.ID] == nil })
	if d := time.Since(start); d < closeAfterElsewhere/2 {
		t.Errorf("closed after %s", d)
	}
	c2.State = wire.CallMissed
	c2.EndedAt = ptime(time.Now().UTC())
	ta.relay.Publish(wire.TypeCall, c2)
	ta.loop.eventually(t, "missed counted", func() bool { return ta.a.recent.unseenMissed() == 1 })
	if got := ta.menuLabels()[8]; got != "Recent calls (1 missed)…" {
		t.Errorf("menu item %q", got)
	}
	// Dismiss takes the card away for good; the ticker stops with it.
	ta.loop.wait(func() { ta.a.cards.byID[c2.ID].act.dismiss(c2) })
	ta.loop.wait(func() {
		if len(ta.a.cards.cards) != 0 || ta.a.cards.ticker != nil {
			t.Error("cards or ticker left after dismiss")
		}
	})
	ta.relay.Publish(wire.TypeCall, c2)
	ta.loop.wait(func() {})
	time.Sleep(100 * time.Millisecond)
	ta.loop.wait(func() {
		if ta.a.cards.byID[c2.ID] != nil {
			t.Error("a dismissed card came back")
		}
	})
	// Recent calls lists both, newest first, and opening it marks missed calls seen.
	ta.loop.wait(ta.a.openRecent)
	ta.loop.wait(func() {
		calls := ta.a.recent.data.Calls
		if len(calls) != 2 || calls[0].ID != "call-2" || calls[0].State != wire.CallMissed {
			t.Errorf("recent calls %+v", calls)
		}
		if ta.a.recent.unseenMissed() != 0 {
			t.Error("missed calls still unseen after opening the list")
		}
	})
	// They are kept across restarts.
	ta.loop.wait(ta.a.recent.flush)
	b, err := os.ReadFile(filepath.Join(ta.a.cfg.StateDir, "recent.json"))
	if err != nil {
		t.Fatal(err)
	}
	var f recentFile
	if err := json.Unmarshal(b, &f); err != nil || len(f.Calls) != 2 {
		t.Errorf("recent.json: %v, %d calls", err, len(f.Calls))
	}
}

// A call replayed after an outage that is long over gets no notification
// and no card, only a line in Recent calls.
func TestReplayedCallIsQuiet(t *testing.T) {
	ta := newTestApp(t, true)
	ta.online()
	c := demoCall()
	c.StartedAt = time.Now().UTC().Add(-10 * time.Minute)
	test.AssertNotificationSent(t, nil, func() {
		ta.relay.Publish(wire.TypeCall, c)
		ta.loop.eventually(t, "in recent calls", func() bool { return len(ta.a.recent.data.Calls) == 1 })
	})
	c.State, c.EndedAt = wire.CallMissed, ptime(c.StartedAt.Add(30*time.Second))
	ta.relay.Publish(wire.TypeCall, c)
	ta.loop.eventually(t, "missed", func() bool { return ta.a.recent.data.Calls[0].State == wire.CallMissed })
	ta.loop.wait(func() {
		if ta.a.cards.byID[c.ID] != nil {
			t.Error("an old missed call got a card")
		}
	})
}

// Notices replayed after an outage (or on a first connection) that are
// no longer news raise no notification; recent ones still do, and so do
// those from a relay that does not date them.
func TestReplayedNoticeIsQuiet(t *testing.T) {
	ta := newTestApp(t, true)
	ta.online()
	// Events are applied in order: a status event after a notice says when
	// the notice has been handled.
	after := func(what string) {
		ta.relay.Publish(wire.TypeStatus, wire.StatusInfo{Status: wire.StatusBreak, Source: what})
		ta.loop.eventually(t, what, func() bool { return ta.a.status.Source == what })
	}
	now := time.Now().UTC()
	dialing := func(age time.Duration) wire.Notice {
		return wire.Notice{Kind: wire.NoticeDialing, Text: "Dialing 8 (916) 123-45-67 (from the CRM)", Phone: "+79161234567", At: now.Add(-age)}
	}
	failed := func(age time.Duration) wire.Notice {
		return wire.Notice{Kind: wire.NoticeDialFailed, Text: "Could not dial 8 (916) 123-45-67: the PBX refused the call (HTTP 486 Busy Here)",
			Phone: "+79161234567", At: now.Add(-age)}
	}
	undated := dialing(0)
	undated.At = time.Time{}
	for _, c := range []struct {
		name   string
		notice wire.Notice
		want   *fyne.Notification
	}{
		{"dialing 45 s ago", dialing(45 * time.Second), nil},
		{"dial failed 10 min ago", failed(10 * time.Minute), nil},
		{"dialing 3 s ago", dialing(3 * time.Second), fyne.NewNotification("Dialing", "Dialing 8 (916) 123-45-67 (from the CRM)")},
		{"dial failed 45 s ago", failed(45 * time.Second), fyne.NewNotification("Call not placed", "Could not dial 8 (916) 123-45-67: the PBX refused the call (HTTP 486 Busy Here)")},
		{"undated, from an older relay", undated, fyne.NewNotification("Dialing", "Dialing 8 (916) 123-45-67 (from the CRM)")},
	} {
		test.AssertNotificationSent(t, c.want, func() {
			ta.relay.Publish(wire.TypeNotice, c.notice)
			after(c.name)
		})
	}
}

func TestDialer(t *testing.T) {
	ta := newTestApp(t, true)
	ta.online()
	ta.loop.wait(func() { ta.a.openDialer("") })
	d := ta.a.dialer
	ta.loop.wait(func() { test.Type(d.entry, "8 916 123 45 67") })
	ta.loop.wait(func() {
		if d.parsed.Text != "Will dial 8 (916) 123-45-67  (+7 916 123-45-67)" || d.dialBtn.Disabled() {
			t.Errorf("parsed %q, dial disabled %v", d.parsed.Text, d.dialBtn.Disabled())
		}
	})
	// Enter dials.
	ta.loop.wait(func() { d.entry.TypedKey(&fyne.KeyEvent{Name: fyne.KeyReturn}) })
	ta.loop.eventually(t, "dial outcome", func() bool { return strings.HasPrefix(d.outcome.Text, "The PBX is calling") })
	reqs := ta.relay.Requests()
	if last := reqs[len(reqs)-1]; last.Type != wire.TypeDial || !strings.Contains(string(last.Data), `"+79161234567"`) {
		t.Errorf("relay got %s %s", last.Type, last.Data)
	}
	ta.loop.wait(func() {
		d.w.Resize(fyne.NewSize(380, d.w.Content().MinSize().Height))
		test.AssertImageMatches(t, "dialer/dialled.png", d.w.Canvas().Capture())
	})
	// The PBX's refusal, in plain words.
	ta.relay.SetHandler(func(req wire.Envelope) (string, any) {
		return wire.TypeError, &wire.Error{Code: wire.ErrPBXRefused, Message: "the PBX refused the call (HTTP 403 Forbidden)", HTTPStatus: 403}
	})
	ta.loop.wait(func() { d.entry.SetText("+7 495 111-22-33"); d.dial() })
	ta.loop.eventually(t, "refusal", func() bool { return d.outcome.Importance == widget.DangerImportance })
	ta.loop.wait(func() {
		if d.outcome.Text != "The PBX refused the call (HTTP 403)." {
			t.Errorf("refusal %q", d.outcome.Text)
		}
		d.w.Resize(fyne.NewSize(380, d.w.Content().MinSize().Height))
		test.AssertImageMatches(t, "dialer/refused.png", d.w.Canvas().Capture())
	})
	// Not a number: no dial.
	ta.loop.wait(func() {
		d.entry.SetText("hello")
		if d.parsed.Text != "Not a phone number yet." || !d.dialBtn.Disabled() {
			t.Errorf("bad number: %q, disabled %v", d.parsed.Text, d.dialBtn.Disabled())
		}
	})
	// Keys: Ctrl+2 sets busy from inside the entry; Esc closes.
	ta.relay.SetHandler(nil)
	ta.loop.wait(func() {
		d.entry.TypedShortcut(statusShortcut(1))
	})
	ta.loop.eventually(t, "busy by shortcut", func() bool { return ta.a.status.Status == wire.StatusBusy })
	ta.loop.wait(func() { d.entry.TypedKey(&fyne.KeyEvent{Name: fyne.KeyEscape}) })
	ta.loop.wait(func() {
		if ta.a.dialer != nil {
			t.Error("Esc did not close the dialer")
		}
	})
}

// A tel: link opens the dialer pre-filled, even before signing in.
func TestDialerPrefilled(t *testing.T) {
	ta := newTestApp(t, false, func(c *Config) { c.DialNumber = "+7 (916) 123-45-67" })
	ta.loop.wait(func() {
		d := ta.a.dialer
		if d == nil || d.entry.Text != "+7 (916) 123-45-67" || !d.dialBtn.Disabled() {
			t.Fatal("dialer not pre-filled, or dialling possible while signed out")
		}
		if !strings.Contains(d.outcome.Text, "Not connected") {
			t.Errorf("outcome %q", d.outcome.Text)
		}
	})
}

func TestSignin(t *testing.T) {
	notRelay := httptest.NewServer(http.NotFoundHandler())
	defer notRelay.Close()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://" + l.Addr().String()
	l.Close()

	ta := newTestApp(t, false)
	var s *signin
	ta.loop.wait(func() { s = ta.a.signin })
	if s == nil {
		t.Fatal("no sign-in window without a stored token")
	}
	try := func(name, url, token, want string) {
		t.Helper()
		ta.loop.wait(func() {
			s.url.SetText(url)
			s.token.SetText(token)
			s.token.TypedKey(&fyne.KeyEvent{Name: fyne.KeyReturn})
		})
		ta.loop.eventually(t, name, func() bool { return s.cancel == nil && s.message.Text != "Checking with the relay…" })
		ta.loop.wait(func() {
			if !strings.Contains(s.message.Text, want) {
				t.Errorf("%s: message %q, want %q", name, s.message.Text, want)
			}
			if strings.Contains(url, "127.0.0.1") {
				s.url.SetText("http://relay.test") // the port changes run to run
			}
			s.w.Resize(fyne.NewSize(460, s.w.Content().MinSize().Height))
			test.AssertImageMatches(t, "signin/"+name+".png", s.w.Canvas().Capture())
		})
		if _, tok := ta.creds.get(); tok != "" {
			t.Errorf("%s: a token was saved", name)
		}
	}
	try("empty", "", "", "Enter the relay's address")
	try("bad_url", "ftp://relay", "x", "not a relay address")
	try("insecure", "http://relay.example.com:8080", agenttest.Token, "unencrypted to relay.example.com")
	try("not_relay", notRelay.URL, agenttest.Token, "not a pult relay")
	try("down", down, agenttest.Token, "can't be reached")
	try("bad_token", ta.relay.URL, "wrong-token", "does not know this token")

	// The right pair is saved and signs in.
	ta.loop.wait(func() {
		s.url.SetText(ta.relay.URL + "/")
		s.token.SetText(agenttest.Token)
		s.submit()
	})
	ta.online()
	if url, tok := ta.creds.get(); url != ta.relay.URL || tok != agenttest.Token {
		t.Errorf("saved %q %q", url, tok)
	}
	ta.loop.wait(func() {
		if ta.a.signin != nil {
			t.Error("sign-in window still open")
		}
	})
	// Sign out removes the token and asks again.
	ta.loop.wait(ta.a.signOut)
	ta.loop.eventually(t, "sign-in shown", func() bool { return ta.a.signin != nil })
	if _, tok := ta.creds.get(); tok != "" {
		t.Error("sign out left the token")
	}
	ta.loop.wait(func() {
		if ta.a.sess != nil || !strings.Contains(ta.a.signin.message.Text, "Signed out") {
			t.Errorf("after sign out: session %v, message %q", ta.a.sess != nil, ta.a.signin.message.Text)
		}
	})
}

// A sign-in stored with --insecure from the command line (plain http to
// another machine) keeps working in the app; the same URL stored without it
// is refused before anything is sent, saying why. 0.0.0.0 is not loopback
// by agent.IsLoopback, yet Linux connects it to this machine, where the test
// relay listens.
func TestStoredInsecureRelay(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("connecting to 0.0.0.0 reaches this machine only on Linux")
	}
	for _, insecure := range []bool{true, false} {
		ta := newTestApp(t, true, func(c *Config) {
			m := c.Credentials.(*memCreds)
			m.url = strings.Replace(m.url, "127.0.0.1", "0.0.0.0", 1)
			m.insecure = insecure
		})
		if insecure {
			ta.online()
			continue
		}
		ta.loop.wait(func() {
			if ta.a.sess != nil || ta.a.signin == nil {
				t.Fatalf("a stored plain-text URL without --insecure: session %v, sign-in %v", ta.a.sess != nil, ta.a.signin != nil)
			}
			if msg := ta.a.signin.message.Text; !strings.Contains(msg, "unencrypted to 0.0.0.0") {
				t.Errorf("message %q", msg)
			}
		})
		if n := len(ta.relay.Handshakes()); n != 0 {
			t.Errorf("%d handshakes reached the relay", n)
		}
	}
}

// A revoked token stops the agent and asks to sign in again, once.
func TestRevoked(t *testing.T) {
	ta := newTestApp(t, true)
	ta.online()
	ta.relay.CloseWith(wire.CloseRevoked, "revoked")
	ta.loop.eventually(t, "sign-in after revoke", func() bool { return ta.a.signin != nil && ta.a.sess == nil })
	ta.loop.wait(func() {
		if !strings.Contains(ta.a.signin.message.Text, "revoked") {
			t.Errorf("message %q", ta.a.signin.message.Text)
		}
		if ta.a.tray.icon() != iconOffline {
			t.Error("icon not offline after revoke")
		}
	})
}

// Without a tray host the app runs in a main window with the same actions.
func TestNoTrayMainWindow(t *testing.T) {
	ta := newTestApp(t, true)
	ta.online()
	ta.loop.wait(func() {
		m := ta.a.main
		if m == nil {
			t.Fatal("no main window without a tray")
		}
		test.Tap(m.statuses[1])
	})
	ta.loop.eventually(t, "busy from the main window", func() bool { return ta.a.status.Status == wire.StatusBusy })
	ta.loop.wait(func() {
		m := ta.a.main
		m.w.Resize(fyne.NewSize(420, m.w.Content().MinSize().Height))
		test.AssertImageMatches(t, "main/busy.png", m.w.Canvas().Capture())
	})
}

func TestTranscriptsWindow(t *testing.T) {
	ta := newTestApp(t, true)
	ta.online()
	ta.loop.wait(ta.a.openTranscripts)
	tw := ta.a.transcriptsW
	ta.loop.wait(func() {
		if !tw.send.Disabled() {
			t.Error("Submit enabled with nothing pasted")
		}
		tw.title.SetText("Order 42 chat")
		tw.body.SetText("Anna: Hello! How can I help?\nIvan: Where is my order?\nAnna: It ships today.")
	})
	ta.loop.wait(tw.submit)
	ta.loop.eventually(t, "accepted", func() bool { return len(ta.a.recent.data.Transcripts) == 1 && !tw.busy })
	got, _ := ta.relay.Transcripts()
	var id string
	for k, v := range got {
		id = k
		if v.Format != wire.FormatText || v.Title != "Order 42 chat" || !strings.Contains(v.Body, "Where is my order?") {
			t.Errorf("relay got %+v", v)
		}
	}
	ta.relay.Publish(wire.TypeTranscript, wire.TranscriptState{ID: id, State: wire.TranscriptDelivered, Messages: 3, At: fixedNow})
	ta.loop.eventually(t, "delivered", func() bool { return ta.a.recent.data.Transcripts[0].State == wire.TranscriptDelivered })
	n := fyne.NewNotification("Transcript not delivered", "Smartsupp chat: “operator_id is unknown to Qolio”")
	test.AssertNotificationSent(t, n, func() {
		ta.relay.Publish(wire.TypeTranscript, wire.TranscriptState{ID: "hook-1", Title: "Smartsupp chat", Source: "smartsupp",
			State: wire.TranscriptFailed, Reason: "operator_id is unknown to Qolio", ReasonCode: wire.TranscriptRejected, At: fixedNow})
		ta.loop.eventually(t, "failed listed", func() bool { return len(ta.a.recent.data.Transcripts) == 2 })
	})
	ta.loop.wait(func() {
		if tw.body.Text != "" || tw.note.Importance != widget.SuccessImportance {
			t.Errorf("after submit: body %q, note %q", tw.body.Text, tw.note.Text)
		}
		for i := range ta.a.recent.data.Transcripts {
			ta.a.recent.data.Transcripts[i].At = fixedNow // stable picture
		}
		tw.refresh()
		test.AssertImageMatches(t, "transcripts/list.png", tw.w.Canvas().Capture())
	})
	// A refusal is shown and the text stays for fixing.
	ta.relay.RefuseTranscripts(&wire.Error{Code: wire.ErrBadRequest, Message: "no line is from you (Anna)"})
	ta.loop.wait(func() { tw.body.SetText("Someone: hi") })
	ta.loop.wait(tw.submit)
	ta.loop.eventually(t, "refusal", func() bool { return !tw.busy })
	ta.loop.wait(func() {
		if tw.note.Text != "The relay could not read the chat: no line is from you (Anna)" || tw.body.Text == "" {
			t.Errorf("refusal note %q", tw.note.Text)
		}
	})
}

func TestCallbackWindow(t *testing.T) {
	ta := newTestApp(t, true)
	ta.online()
	ta.loop.wait(func() { ta.a.openCallback("+79161234567") })
	cw := ta.a.callbackW
	ta.loop.wait(func() {
		if cw.number.Text != "8 (916) 123-45-67" || cw.parsed.Text != "Calltouch will call 8 (916) 123-45-67 now." {
			t.Errorf("prefilled %q, %q", cw.number.Text, cw.parsed.Text)
		}
		cw.when.SetText("yesterday")
		if !cw.order.Disabled() {
			t.Error("Order enabled with a bad time")
		}
		cw.when.SetText("")
		cw.note.SetText("about order 42")
		cw.note.TypedKey(&fyne.KeyEvent{Name: fyne.KeyReturn})
	})
	ta.loop.eventually(t, "ordered", func() bool { return cw.outcome.Importance == widget.SuccessImportance })
	ta.loop.wait(func() {
		if cw.outcome.Text != "Callback to 8 (916) 123-45-67 ordered (now)." {
			t.Errorf("outcome %q", cw.outcome.Text)
		}
	})
	ta.relay.SetHandler(func(req wire.Envelope) (string, any) {
		return wire.TypeError, &wire.Error{Code: "callback_refused", Message: "no callback minutes left on the Calltouch account"}
	})
	ta.loop.wait(cw.submit)
	ta.loop.eventually(t, "refused", func() bool { return cw.outcome.Importance == widget.DangerImportance })
	ta.loop.wait(func() {
		cw.w.Resize(fyne.NewSize(440, cw.w.Content().MinSize().Height))
		test.AssertImageMatches(t, "callback/refused.png", cw.w.Canvas().Capture())
	})
	reqs := ta.relay.Requests()
	if r := reqs[len(reqs)-2]; r.Type != wire.TypeCallback || !strings.Contains(string(r.Data), "about order 42") {
		t.Errorf("relay got %s %s", r.Type, r.Data)
	}
}

func queueBoard(now time.Time) *wire.QueueSnapshot {
	return &wire.QueueSnapshot{
		Version: 1, At: now, Day: "2026-11-20", TimeZone: "UTC", ServiceLevelSeconds: 20,
		Operators: []wire.QueueOperator{
			{ID: "op-1", Name: "Анна Смирнова", Code: "100", Status: wire.StatusBusy, Since: now.Add(-4 * time.Minute), Connected: true,
				Call:     &wire.QueueCall{ID: "c0", Direction: wire.DirectionIn, PhoneDisplay: "8 (912) 000-00-01", State: wire.CallTalking, Since: now.Add(-75 * time.Second)},
				Counters: wire.QueueCounters{Incoming: 6, Answered: 5, Missed: 1}},
			{ID: "op-2", Name: "Дмитрий Волков", Code: "101", Status: wire.StatusBreak, Since: now.Add(-22 * time.Minute), Connected: true,
				Counters: wire.QueueCounters{Incoming: 4, Answered: 4, Outgoing: 2}},
			{ID: "op-3", Name: "Екатерина Морозова", Code: "102", Role: wire.RoleSupervisor, Status: wire.StatusFree, Since: now.Add(-time.Hour), Connected: true},
			{ID: "op-4", Name: "Ольга Соколова", Code: "103", Status: wire.StatusOffline, Since: now.Add(-3 * time.Hour)},
		},
		Waiting: []wire.WaitingCall{
			{ID: "c1", PhoneDisplay: "8 (916) 123-45-67", Site: "Shop Moscow", LineDisplay: "8 (495) 111-22-33", Since: now.Add(-41 * time.Second), Ringing: []string{"102"}},
			{ID: "c2", PhoneDisplay: "8 (999) 000-11-22", LineDisplay: "8 (495) 111-22-33", Since: now.Add(-8 * time.Second), Ringing: []string{"102"}},
		},
		Totals: wire.QueueCounters{Incoming: 10, Answered: 9, Missed: 1, Outgoing: 2, AnsweredInTime: 8,
			WaitTotalSeconds: 120, WaitMaxSeconds: 44, TalkTotalSeconds: 1500, TalkedCalls: 9},
		History: func() []wire.QueueSample {
			var h []wire.QueueSample
			for i := 0; i < 120; i++ {
				h = append(h, wire.QueueSample{At: now.Add(time.Duration(i-120) * time.Minute), Waiting: (i * 7) % 5, ServiceLevel: 0.7 + 0.25*float64(i%10)/10})
			}
			return h
		}(),
	}
}

func TestQueueWindow(t *testing.T) {
	ta := newTestApp(t, true, func(c *Config) { c.Now = func() time.Time { return fixedNow } })
	ta.relay.SetOperator(wire.Operator{ID: "op-3", Name: "Екатерина Морозова", Code: "102", Role: wire.RoleSupervisor})
	ta.relay.SetBoard(queueBoard(fixedNow))
	ta.relay.Drop() // reconnect: hello now says supervisor
	ta.loop.eventually(t, "supervisor", func() bool { return ta.a.op != nil && ta.a.op.Role == wire.RoleSupervisor && ta.a.conn == agent.Online })
	if got := strings.Join(ta.menuLabels(), "|"); !strings.Contains(got, "Transcripts…|Queue…|---") {
		t.Errorf("supervisor menu %q", got)
	}
	ta.loop.wait(func() { ta.a.skew = 0; ta.a.openQueue() })
	q := ta.a.queueW
	ta.loop.eventually(t, "the board", func() bool { return q.board != nil })
	ta.loop.wait(func() {
		// Sorted by status: free, busy, break, offline.
		var order []string
		for _, op := range q.ops {
			order = append(order, op.Code)
		}
		if strings.Join(order, ",") != "102,100,101,103" {
			t.Errorf("status order %v", order)
		}
		q.w.Resize(fyne.NewSize(940, 720))
		test.AssertImageMatches(t, "queue/board.png", q.w.Canvas().Capture())
	})
	// A delta: the first waiting call answered by Anna.
	ta.relay.SendQueue(wire.QueueDelta{Version: 2, At: fixedNow, Gone: []string{"c1"}})
	ta.loop.eventually(t, "delta applied", func() bool { return q.board != nil && q.board.Version == 2 && len(q.board.Waiting) == 1 })
	// Sorted by time in status: longest first.
	ta.loop.wait(func() {
		q.sortBy = sortTime
		q.render()
		if q.ops[0].Code != "103" || q.ops[3].Code != "100" {
			t.Errorf("time order %v %v", q.ops[0].Code, q.ops[3].Code)
		}
	})
	// Dmitry back to free, by the supervisor.
	ta.loop.wait(func() {
		q.selected = "op-2"
		q.updateButtons()
		test.Tap(q.setBtns[0])
	})
	ta.loop.eventually(t, "set", func() bool { return q.note.Importance == widget.SuccessImportance })
	reqs := ta.relay.Requests()
	if r := reqs[len(reqs)-1]; r.Type != wire.TypeOperatorStatusSet || !strings.Contains(string(r.Data), `"operatorId":"op-2"`) {
		t.Errorf("relay got %s %s", r.Type, r.Data)
	}
	// Closing the window stops watching.
	ta.loop.wait(func() { q.w.Close() })
	ta.loop.wait(func() {
		if ta.a.queueW != nil || q.ticker != nil {
			t.Error("queue window or its ticker left")
		}
	})
}

func TestQueueNotForOperators(t *testing.T) {
	ta := newTestApp(t, true)
	ta.online()
	if got := strings.Join(ta.menuLabels(), "|"); strings.Contains(got, "Queue…") {
		t.Errorf("operator menu %q", got)
	}
	ta.loop.wait(ta.a.openQueue)
	ta.loop.wait(func() {
		if ta.a.queueW != nil {
			t.Error("an operator opened the queue window")
		}
	})
}
