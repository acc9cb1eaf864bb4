package ui

import (
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
	tr := a.tr
	m.w = a.fa.NewWindow("pult")
	m.w.SetIcon(AppIcon)
	m.icon = widget.NewIcon(iconOffline)
	m.who = widget.NewLabelWithStyle("", fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	m.conn = widget.NewLabel("")
	var buttons []fyne.CanvasObject
	for _, st := range wire.Statuses {
		b := widget.NewButton(tr.status(st), func() { a.setStatus(st) })
		m.statuses = append(m.statuses, b)
		buttons = append(buttons, b)
	}
	m.dial = widget.NewButton(tr.T("menu.dial"), func() { a.openDialer("") })
	m.recent = widget.NewButton(tr.T("menu.recent"), a.openRecent)
	m.chats = widget.NewButton(tr.T("menu.transcripts"), a.openTranscripts)
	m.queue = widget.NewButton(tr.T("menu.queue"), a.openQueue)
	m.queue.Hide()
	m.sign = widget.NewButton(tr.T("menu.signOut"), nil)
	quit := widget.NewButton(tr.T("menu.quit"), a.Quit)
	note := widget.NewLabel(tr.T("main.noTray"))
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
	a, tr := m.a, m.a.tr
	signedIn := a.sess != nil
	m.icon.SetResource(statusIcon(a.shownStatus(), signedIn && a.conn == agent.Online))
	switch {
	case a.op != nil:
		m.who.SetText(a.op.Name + " (" + a.op.Code + ") — " + tr.status(a.shownStatus()))
	case signedIn:
		m.who.SetText(tr.T("main.signingIn"))
	default:
		m.who.SetText(tr.T("main.notSignedIn"))
	}
	m.conn.SetText(tr.T("main.relay", "Conn", tr.conn(a.conn, a.retryAt, a.cfg.Now())+a.onRelay()))
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
		m.sign.SetText(tr.T("menu.signOut"))
		m.sign.OnTapped = a.signOut
	} else {
		m.dial.Disable()
		m.sign.SetText(tr.T("menu.signIn"))
		m.sign.OnTapped = func() { a.showSignin("") }
	}
	if a.op != nil && a.op.Role == wire.RoleSupervisor {
		m.queue.Show()
	} else {
		m.queue.Hide()
	}
	if n := a.recent.unseenMissed(); n > 0 {
		m.recent.SetText(tr.T("menu.recentMissed", "Missed", tr.N("calls.missed", n)))
	} else {
		m.recent.SetText(tr.T("menu.recent"))
	}
}
