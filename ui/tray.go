package ui

import (
	"fmt"
	"slices"
	"sync/atomic"

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
//
// In the tray, pult serves the menu over D-Bus itself (fyne.io/systray)
// rather than through fyne's driver: fyne runs menu actions on its loop,
// which pult parks while nothing is shown (idle.go), and rebuilds the whole
// D-Bus menu on every change. Here a click reaches the app through App.do,
// which wakes the loop, and a change updates only the items that changed.
type tray struct {
	a        *App
	menu     *fyne.Menu
	layout   []*fyne.MenuItem // every item, Queue… included, in order
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

	// The tray host's side; nil until attached (and without a tray).
	shown map[*fyne.MenuItem]*shownItem
	stop  chan struct{} // ends the click readers; made by App.Run
	ended atomic.Bool   // the app is ending: attach no more
}

// shownItem is a menu item as last given to the tray host.
type shownItem struct {
	sys                       *systray.MenuItem
	label                     string
	checked, disabled, hidden bool
}

func newTray(a *App) *tray {
	t := &tray{a: a}
	tr := a.tr
	t.who = fyne.NewMenuItem("", nil)
	t.who.Disabled = true
	items := []*fyne.MenuItem{t.who, fyne.NewMenuItemSeparator()}
	for i, st := range wire.Statuses {
		it := fyne.NewMenuItem(tr.status(st), func() { a.setStatus(st) })
		it.Shortcut = statusShortcut(i)
		t.statuses = append(t.statuses, it)
		items = append(items, it)
	}
	t.dial = fyne.NewMenuItem(tr.T("menu.dial"), func() { a.openDialer("") })
	t.recent = fyne.NewMenuItem(tr.T("menu.recent"), func() { a.openRecent() })
	t.chats = fyne.NewMenuItem(tr.T("menu.transcripts"), func() { a.openTranscripts() })
	t.queue = fyne.NewMenuItem(tr.T("menu.queue"), func() { a.openQueue() })
	t.sign = fyne.NewMenuItem(tr.T("menu.signOut"), nil)
	t.quit = fyne.NewMenuItem(tr.T("menu.quit"), func() { a.Quit() })
	t.quit.IsQuit = true
	items = append(items, fyne.NewMenuItemSeparator(), t.dial, t.recent, t.chats, t.queue,
		fyne.NewMenuItemSeparator(), t.sign, t.quit)
	t.layout = items
	t.menu = fyne.NewMenu("pult", slices.Clone(items)...)
	t.update()
	return t
}

// update sets every item from the app's state and refreshes the tray if
// anything it shows changed.
func (t *tray) update() {
	a, tr := t.a, t.a.tr
	signedIn := a.sess != nil
	online := signedIn && a.conn == agent.Online
	shown := a.shownStatus()
	conn := tr.conn(a.conn, a.retryAt, a.cfg.Now())

	switch {
	case a.op != nil:
		t.who.Label = fmt.Sprintf("%s (%s) — %s", a.op.Name, a.op.Code, conn)
	case signedIn:
		t.who.Label = "pult — " + conn
	default:
		t.who.Label = "pult — " + tr.T("menu.notSignedIn")
	}
	for i, it := range t.statuses {
		st := wire.Statuses[i]
		it.Checked = st == shown
		it.Label = tr.status(st)
		if it.Checked && a.pending != nil {
			it.Label = tr.T("menu.statusSending", "Status", it.Label)
		}
		it.Disabled = !signedIn
	}
	t.dial.Disabled = !signedIn
	if n := a.recent.unseenMissed(); n > 0 {
		t.recent.Label = tr.T("menu.recentMissed", "Missed", tr.N("calls.missed", n))
	} else {
		t.recent.Label = tr.T("menu.recent")
	}
	t.setQueueItem(a.op != nil && a.op.Role == wire.RoleSupervisor)
	if signedIn {
		t.sign.Label = tr.T("menu.signOut")
		t.sign.Action = a.signOut
	} else {
		t.sign.Label = tr.T("menu.signIn")
		t.sign.Action = func() { a.showSignin("") }
	}

	if t.shown == nil {
		return
	}
	t.sync()
	if icon := statusIcon(shown, online); icon != t.lastIcon {
		t.lastIcon = icon
		systray.SetIcon(icon.Content())
	}
	if tip := t.tooltip(); tip != t.lastTip {
		t.lastTip = tip
		systray.SetTooltip(tip)
	}
}

// attach puts the menu in the tray host, once systray has started (UI
// goroutine). Each item's clicks are read by a goroutine of its own, as
// systray drops a click nobody is waiting for.
func (t *tray) attach() {
	if t.ended.Load() || t.shown != nil {
		// The app is ending (fyne then runs this off its loop), or the
		// menu is there already.
		return
	}
	t.shown = map[*fyne.MenuItem]*shownItem{}
	for _, it := range t.layout {
		if it.IsSeparator {
			systray.AddSeparator()
			continue
		}
		var sys *systray.MenuItem
		if t.isStatus(it) {
			sys = systray.AddMenuItemCheckbox(it.Label, "", it.Checked)
		} else {
			sys = systray.AddMenuItem(it.Label, "")
		}
		t.shown[it] = &shownItem{sys: sys, label: it.Label, checked: it.Checked}
		go t.readClicks(it, sys.ClickedCh, t.stop)
	}
	t.lastIcon, t.lastTip = nil, ""
	t.a.refresh()
	t.a.log.Debug("tray menu ready", "items", len(t.layout))
	// With the tray up, and as work of its own so a call's event can come
	// first: the first card then shows as fast as the next ones.
	t.a.do(t.a.cards.warm)
}

func (t *tray) readClicks(it *fyne.MenuItem, clicked, stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case <-clicked:
			t.a.do(func() {
				// The item as it is now: its action and state may have
				// changed since the host drew the menu.
				if !it.Disabled && it.Action != nil && t.contains(it) {
					it.Action()
				}
			})
		}
	}
}

// detach ends the click readers once the loop has ended.
func (t *tray) detach() {
	if t.ended.CompareAndSwap(false, true) && t.stop != nil {
		close(t.stop)
	}
}

// sync gives the tray host the items that changed.
func (t *tray) sync() {
	for _, it := range t.layout {
		sh := t.shown[it]
		if sh == nil {
			continue // a separator
		}
		if hidden := !t.contains(it); hidden != sh.hidden {
			sh.hidden = hidden
			if hidden {
				sh.sys.Hide()
			} else {
				sh.sys.Show()
			}
		}
		if it.Label != sh.label {
			sh.label = it.Label
			sh.sys.SetTitle(it.Label)
		}
		if it.Checked != sh.checked {
			sh.checked = it.Checked
			if it.Checked {
				sh.sys.Check()
			} else {
				sh.sys.Uncheck()
			}
		}
		if it.Disabled != sh.disabled {
			sh.disabled = it.Disabled
			if it.Disabled {
				sh.sys.Disable()
			} else {
				sh.sys.Enable()
			}
		}
	}
}

func (t *tray) isStatus(it *fyne.MenuItem) bool { return slices.Contains(t.statuses, it) }

// contains says whether it is in the menu now (Queue… comes and goes).
func (t *tray) contains(it *fyne.MenuItem) bool { return slices.Contains(t.menu.Items, it) }

func (t *tray) icon() fyne.Resource {
	a := t.a
	return statusIcon(a.shownStatus(), a.sess != nil && a.conn == agent.Online)
}

// tooltip: name, status and connection (and, with several relays, which).
func (t *tray) tooltip() string {
	a, tr := t.a, t.a.tr
	conn := tr.conn(a.conn, a.retryAt, a.cfg.Now())
	switch {
	case a.op != nil:
		return fmt.Sprintf("pult — %s: %s (%s)", a.op.Name, tr.status(a.shownStatus()), conn) + a.onRelay()
	case a.sess != nil:
		return "pult — " + conn + a.onRelay()
	}
	return "pult — " + tr.T("menu.notSignedIn")
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

// onRelay is " · via relay2.example.com" when the sign-in lists several
// relays and the agent is on one (or dialing it); "" otherwise: one relay
// (or one name behind a load balancer) goes without saying.
func (a *App) onRelay() string {
	if a.sess == nil || a.sess.agent == nil || len(a.sess.agent.Relays()) < 2 || a.relay == "" {
		return ""
	}
	if a.conn != agent.Online && a.conn != agent.Connecting {
		return ""
	}
	return " · " + a.tr.T("conn.via", "Host", a.relay)
}
