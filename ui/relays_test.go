package ui

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"

	"github.com/pult/pult/agent"
	"github.com/pult/pult/agent/agenttest"
)

// Signing in with several relays: a bad address in the list is named; one
// relay down is fine; the tooltip says which relay the agent is on, and
// changes when it moves to the other.
func TestSigninSeveralRelays(t *testing.T) {
	notRelay := httptest.NewServer(http.NotFoundHandler())
	defer notRelay.Close()
	ta := newTestApp(t, false)
	second := agenttest.New(t)
	var s *signin
	ta.loop.wait(func() { s = ta.a.signin })
	if s == nil {
		t.Fatal("no sign-in window without a stored token")
	}
	submit := func(url, token string) {
		t.Helper()
		ta.loop.wait(func() {
			s.url.SetText(url)
			s.token.SetText(token)
			s.submit()
		})
	}
	message := func(what string) string {
		t.Helper()
		ta.loop.eventually(t, what, func() bool { return s.cancel == nil && s.message.Text != "Checking with the relay…" })
		var msg string
		ta.loop.wait(func() { msg = s.message.Text })
		return msg
	}

	submit("https://relay1.example.com, ftp://relay2.example.com", agenttest.Token)
	if msg := message("a bad address"); !strings.Contains(msg, `not a relay address: relay URL "ftp://relay2.example.com"`) {
		t.Errorf("a bad address in the list: %q", msg)
	}
	ta.loop.wait(func() {
		s.w.Resize(fyne.NewSize(460, s.w.Content().MinSize().Height))
		test.AssertImageMatches(t, "signin/list_bad_url.png", s.w.Canvas().Capture())
	})
	submit("https://relay1.example.com,http://relay2.example.com:8700", agenttest.Token)
	if msg := message("plain text"); !strings.Contains(msg, "unencrypted to relay2.example.com") {
		t.Errorf("a plain-text address in the list: %q", msg)
	}
	submit(ta.relay.URL+","+notRelay.URL, agenttest.Token)
	if msg := message("not a relay"); !strings.Contains(msg, "One of the addresses is not a pult relay: "+notRelay.URL) {
		t.Errorf("an address in the list is not a relay: %q", msg)
	}

	// One relay down: signing in works, the list is kept as typed (normalised).
	down := agenttest.New(t)
	downURL := down.URL
	down.Close()
	submit(downURL+"/, "+ta.relay.URL+" ,"+second.URL, agenttest.Token)
	ta.online()
	list := downURL + "," + ta.relay.URL + "," + second.URL
	if url, tok := ta.creds.get(); url != list || tok != agenttest.Token {
		t.Errorf("saved %q %q, want %q", url, tok, list)
	}

	byHost := map[string]*agenttest.Relay{}
	for _, r := range []*agenttest.Relay{ta.relay, second} {
		byHost[strings.TrimPrefix(r.URL, "http://")] = r
	}
	var on string
	ta.loop.wait(func() { on = ta.a.relay })
	cur := byHost[on]
	if cur == nil {
		t.Fatalf("online on %q, not a live relay", on)
	}
	var tip string
	ta.loop.wait(func() { tip = ta.a.tray.tooltip() })
	if want := "pult — Anna: Free (online) · via " + on; tip != want {
		t.Errorf("tooltip %q, want %q", tip, want)
	}

	// The relay goes: the agent moves to the live one left, and says so.
	cur.Refuse(http.StatusServiceUnavailable, nil)
	cur.Drop()
	ta.loop.eventually(t, "online on another relay", func() bool {
		return ta.a.conn == agent.Online && ta.a.relay != on && byHost[ta.a.relay] != nil
	})
	ta.loop.wait(func() { on, tip = ta.a.relay, ta.a.tray.tooltip() })
	if want := "pult — Anna: Free (online) · via " + on; tip != want {
		t.Errorf("tooltip after failover %q, want %q", tip, want)
	}
}

// With one relay the tooltip does not name it; in Russian it says "через".
func TestTooltipRelay(t *testing.T) {
	ta := newTestApp(t, true)
	ta.online()
	var tip string
	ta.loop.wait(func() { tip = ta.a.tray.tooltip() })
	if tip != "pult — Anna: Free (online)" {
		t.Errorf("one relay: tooltip %q", tip)
	}
	ru := newWords([]string{"ru"})
	if got := ru.T("conn.via", "Host", "relay2.example.com"); got != "через relay2.example.com" {
		t.Errorf("ru: %q", got)
	}
}
