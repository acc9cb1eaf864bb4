package ui

import (
	"fmt"

	"fyne.io/fyne/v2"
	"fyne.io/systray"

	"github.com/pult/pult/agent"
	"github.com/pult/pult/agent/wire"
	"github.com/pult/pult/assets"
)

// Tray icons, one per state, each its own shape as well as colour.
var (
	iconFree    = fyne.NewStaticResource("tray-free.png", assets.TrayFree)
	iconBusy    = fyne.NewStaticResource("tray-busy.png", assets.TrayBusy)
	iconDinner  = fyne.NewStaticResource("tray-dinner.png", assets.TrayDinner)
	iconBreak   = fyne.NewStaticResource("tray-break.png", assets.TrayBreak)
	iconOffline = fyne.NewStaticResource("tray-offline.png", assets.TrayOffline)
	// AppIcon is the application icon.
	AppIcon = fyne.NewStaticResource("icon.png", assets.Icon)
)

func statusIcon(st wire.Status, online bool) fyne.Resource {
	if !online {
		return iconOffline
	}
	switch st {
	case wire.StatusFree:
		return iconFree
	case wire.StatusBusy:
		return iconBusy
	case wire.StatusDinner:
		return iconDinner
	case wire.StatusBreak:
		return iconBreak
	}
	return iconOffline
}

// tray is the tray menu. It is built once and its items changed in place;
// the same menu shows in the main window when there is no tray host.
type tray struct {
	a        *App
	menu     *fyne.Menu
	who      *fyne.MenuItem
	statuses []*fyne.MenuItem
	dial     *fyne.MenuItem
	recent   *fyne.MenuItem
	chats    *fyne.MenuItem
	queue    *fyne.MenuItem // supervisors only
	sign     *fyne.MenuItem
	quit     *fyne.MenuItem
	lastIcon fyne.Resource
	lastTip  string
	lastMenu string
}

func newTray(a *App) *tray {
	t := &tray{a: a}
	t.who = fyne.NewMenuItem("", nil)
	t.who.Disabled = true
	items := []*fyne.MenuItem{t.who, fyne.NewMenuItemSeparator()}
	for i, st := range wire.Statuses {
		it := fyne.NewMenuItem(statusLabel(st), func() { a.setStatus(st) })
		it.Shortcut = statusShortcut(i)
		t.statuses = append(t.statuses, it)
		items = append(items, it)
	}
	t.dial = fyne.NewMenuItem("Dial…", func() { a.openDialer("") })
	t.recent = fyne.NewMenuItem("Recent calls…", func() { a.openRecent() })
	t.chats = fyne.NewMenuItem("Transcripts…", func() { a.openTranscripts() })
	t.queue = fyne.NewMenuItem("Queue…", func() { a.openQueue() })
	t.sign = fyne.NewMenuItem("Sign out", nil)
	t.quit = fyne.NewMenuItem("Quit", func() { a.Quit() })
	t.quit.IsQuit = true
	items = append(items, fyne.NewMenuItemSeparator(), t.dial, t.recent, t.chats,
		fyne.NewMenuItemSeparator(), t.sign, t.quit)
	t.menu = fyne.NewMenu("pult", items...)
	t.update()
	return t
}

// update sets every item from the app's state and refreshes the tray if
// anything it shows changed.
func (t *tray) update() {
	a := t.a
	signedIn := a.sess != nil
	online := signedIn && a.conn == agent.Online
	shown := a.shownStatus()
	conn := connLabel(a.conn, a.retryAt, a.cfg.Now())

	switch {
	case a.op != nil:
		t.who.Label = fmt.Sprintf("%s (%s) — %s", a.op.Name, a.op.Code, conn)
	case signedIn:
		t.who.Label = "pult — " + conn
	default:
		t.who.Label = "pult — not signed in"
	}
	for i, it := range t.statuses {
		st := wire.Statuses[i]
		it.Checked = st == shown
		it.Label = statusLabel(st)
		if it.Checked && a.pending != nil {
			it.Label += " (sending…)"
		}
		it.Disabled = !signedIn
	}
	t.dial.Disabled = !signedIn
	if n := a.recent.unseenMissed(); n > 0 {
		t.recent.Label = fmt.Sprintf("Recent calls (%d missed)…", n)
	} else {
		t.recent.Label = "Recent calls…"
	}
	t.setQueueItem(a.op != nil && a.op.Role == wire.RoleSupervisor)
	if signedIn {
		t.sign.Label = "Sign out"
		t.sign.Action = a.signOut
	} else {
		t.sign.Label = "Sign in…"
		t.sign.Action = func() { a.showSignin("") }
	}

	if a.desk == nil {
		return
	}
	if sig := menuSignature(t.menu); sig != t.lastMenu {
		// Every refresh rebuilds the tray's D-Bus menu: only when it changed.
		t.lastMenu = sig
		t.menu.Refresh()
	}
	if icon := statusIcon(shown, online); icon != t.lastIcon {
		t.lastIcon = icon
		a.desk.SetSystemTrayIcon(icon)
	}
	if tip := t.tooltip(); tip != t.lastTip {
		t.lastTip = tip
		systray.SetTooltip(tip)
	}
}

func (t *tray) icon() fyne.Resource {
	a := t.a
	return statusIcon(a.shownStatus(), a.sess != nil && a.conn == agent.Online)
}

// tooltip: name, status and connection.
func (t *tray) tooltip() string {
	a := t.a
	conn := connLabel(a.conn, a.retryAt, a.cfg.Now())
	switch {
	case a.op != nil:
		return fmt.Sprintf("pult — %s: %s (%s)", a.op.Name, statusLabel(a.shownStatus()), conn)
	case a.sess != nil:
		return "pult — " + conn
	}
	return "pult — not signed in"
}

func menuSignature(m *fyne.Menu) string {
	var b []byte
	for _, it := range m.Items {
		b = fmt.Appendf(b, "%s|%t|%t\n", it.Label, it.Checked, it.Disabled)
	}
	return string(b)
}

// setQueueItem shows "Queue…" after "Transcripts…" for supervisors only.
func (t *tray) setQueueItem(show bool) {
	i := -1
	for j, it := range t.menu.Items {
		if it == t.queue {
			i = j
		}
	}
	switch {
	case show && i < 0:
		for j, it := range t.menu.Items {
			if it == t.chats {
				t.menu.Items = append(t.menu.Items[:j+1], append([]*fyne.MenuItem{t.queue}, t.menu.Items[j+1:]...)...)
				return
			}
		}
	case !show && i >= 0:
		t.menu.Items = append(t.menu.Items[:i], t.menu.Items[i+1:]...)
	}
}
