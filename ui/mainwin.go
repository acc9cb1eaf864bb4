package ui

import (
	"strconv"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/layout"
	"fyne.io/fyne/v2/widget"

	"github.com/pult/pult/agent"
	"github.com/pult/pult/agent/wire"
)

func layoutSpacer() fyne.CanvasObject { return layout.NewSpacer() }

// mainWindow stands in for the tray where there is none (no session bus or
// no StatusNotifier host): the same state and the same actions in a small
// window. Closing it quits pult.
type mainWindow struct {
	a        *App
	w        fyne.Window
	icon     *widget.Icon
	who      *widget.Label
	conn     *widget.Label
	statuses []*widget.Button
	dial     *widget.Button
	recent   *widget.Button
	chats    *widget.Button
	queue    *widget.Button // supervisors only
	sign     *widget.Button
}

func newMainWindow(a *App) *mainWindow {
	m := &mainWindow{a: a}
	m.w = a.fa.NewWindow("pult")
	m.w.SetIcon(AppIcon)
	m.icon = widget.NewIcon(iconOffline)
	m.who = widget.NewLabelWithStyle("", fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	m.conn = widget.NewLabel("")
	var buttons []fyne.CanvasObject
	for _, st := range wire.Statuses {
		b := widget.NewButton(statusLabel(st), func() { a.setStatus(st) })
		m.statuses = append(m.statuses, b)
		buttons = append(buttons, b)
	}
	m.dial = widget.NewButton("Dial…", func() { a.openDialer("") })
	m.recent = widget.NewButton("Recent calls…", a.openRecent)
	m.chats = widget.NewButton("Transcripts…", a.openTranscripts)
	m.queue = widget.NewButton("Queue…", a.openQueue)
	m.queue.Hide()
	m.sign = widget.NewButton("Sign out", nil)
	quit := widget.NewButton("Quit", a.Quit)
	note := widget.NewLabel("No system tray here, so pult runs in this window. Closing it quits pult.")
	note.Wrapping = fyne.TextWrapWord
	note.Importance = widget.LowImportance
	m.w.SetContent(container.NewPadded(container.NewVBox(
		container.NewBorder(nil, nil, m.icon, nil, container.NewVBox(m.who, m.conn)),
		container.NewGridWithColumns(4, buttons...),
		container.NewGridWithColumns(2, m.dial, m.recent),
		container.NewGridWithColumns(2, m.chats, m.queue),
		container.NewGridWithColumns(2, m.sign, quit),
		note,
	)))
	m.w.Resize(fyne.NewSize(420, 0))
	m.w.SetMaster()
	a.bindKeys(m.w, nil)
	return m
}

func (m *mainWindow) show() { m.w.Show() }

func (m *mainWindow) update() {
	a := m.a
	signedIn := a.sess != nil
	m.icon.SetResource(statusIcon(a.shownStatus(), signedIn && a.conn == agent.Online))
	switch {
	case a.op != nil:
		m.who.SetText(a.op.Name + " (" + a.op.Code + ") — " + statusLabel(a.shownStatus()))
	case signedIn:
		m.who.SetText("Signing in…")
	default:
		m.who.SetText("Not signed in")
	}
	m.conn.SetText("Relay: " + connLabel(a.conn, a.retryAt, a.cfg.Now()))
	shown := a.shownStatus()
	for i, b := range m.statuses {
		if wire.Statuses[i] == shown {
			b.Importance = widget.HighImportance
		} else {
			b.Importance = widget.MediumImportance
		}
		if signedIn {
			b.Enable()
		} else {
			b.Disable()
		}
		b.Refresh()
	}
	if signedIn {
		m.dial.Enable()
		m.sign.SetText("Sign out")
		m.sign.OnTapped = a.signOut
	} else {
		m.dial.Disable()
		m.sign.SetText("Sign in…")
		m.sign.OnTapped = func() { a.showSignin("") }
	}
	if a.op != nil && a.op.Role == wire.RoleSupervisor {
		m.queue.Show()
	} else {
		m.queue.Hide()
	}
	if n := a.recent.unseenMissed(); n > 0 {
		m.recent.SetText("Recent calls (" + itoa(n) + " missed)…")
	} else {
		m.recent.SetText("Recent calls…")
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
