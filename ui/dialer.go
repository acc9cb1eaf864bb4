package ui

import (
	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/pult/pult/agent"
	"github.com/pult/pult/agent/phone"
	"github.com/pult/pult/agent/wire"
)

// dialer is the click-to-call window: a number in any human format, shown
// back as the PBX will dial it; Enter dials; recent numbers one tap away;
// the outcome in plain words.
type dialer struct {
	a       *App
	w       fyne.Window
	entry   *keyEntry
	parsed  *widget.Label
	outcome *widget.Label
	dialBtn *widget.Button
	recent  *fyne.Container
	busy    bool
	number  phone.Number
	valid   bool
	waiting string // E.164 of a dial waiting for the relay's notice
}

// openDialer shows the dialer, pre-filled with number when given.
func (a *App) openDialer(number string) {
	if a.dialer == nil {
		a.dialer = newDialer(a)
	}
	d := a.dialer
	if number != "" {
		d.entry.SetText(number)
		d.outcome.SetText("")
	}
	d.renderRecent()
	d.updateConn()
	d.w.Show()
	d.w.RequestFocus()
	d.w.Canvas().Focus(d.entry)
}

func newDialer(a *App) *dialer {
	d := &dialer{a: a}
	tr := a.tr
	d.w = a.fa.NewWindow("pult — " + tr.T("window.dial"))
	d.w.SetIcon(AppIcon)
	d.entry = a.newEntry(func() { d.w.Close() })
	d.entry.SetPlaceHolder(tr.T("dial.placeholder"))
	d.entry.OnChanged = func(string) { d.parse() }
	d.entry.OnSubmitted = func(string) { d.dial() }
	d.parsed = widget.NewLabel("")
	d.parsed.Importance = widget.LowImportance
	d.outcome = widget.NewLabel("")
	d.outcome.Wrapping = fyne.TextWrapWord
	d.dialBtn = widget.NewButtonWithIcon(tr.T("dial.button"), theme.MailReplyIcon(), d.dial)
	d.dialBtn.Importance = widget.HighImportance
	d.recent = container.NewVBox()

	cb := widget.NewButtonWithIcon("", theme.HistoryIcon(), func() {
		number := ""
		if d.valid {
			number = d.number.E164
		}
		a.openCallback(number)
	})
	top := container.NewBorder(nil, nil, nil, container.NewHBox(d.dialBtn, cb), d.entry)
	recentTitle := widget.NewLabelWithStyle(tr.T("dial.recentNumbers"), fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	d.w.SetContent(container.NewPadded(container.NewVBox(top, d.parsed, d.outcome, recentTitle, d.recent)))
	d.w.Resize(fyne.NewSize(380, 0))
	d.w.SetOnClosed(func() { a.dialer = nil })
	a.bindKeys(d.w, func() { d.w.Close() })
	d.parse()
	return d
}

// parse shows how the typed number will be dialled.
func (d *dialer) parse() {
	text := d.entry.Text
	if text == "" {
		d.valid = false
		d.parsed.SetText(d.a.tr.T("dial.typeNumber"))
		d.updateConn()
		return
	}
	n, err := phone.Parse(text, d.a.cfg.Region)
	if err != nil {
		d.valid = false
		d.parsed.SetText(d.a.tr.T("phone.notYet"))
	} else {
		d.valid = true
		d.number = n
		d.parsed.SetText(d.a.tr.T("dial.willDial", "National", n.National, "Intl", n.International()))
	}
	d.updateConn()
}

// updateConn enables Dial only when it can work, and says why not.
func (d *dialer) updateConn() {
	online := d.a.sess != nil && d.a.conn == agent.Online
	if d.valid && online && !d.busy {
		d.dialBtn.Enable()
	} else {
		d.dialBtn.Disable()
	}
	if !online && !d.busy && d.outcome.Text == "" {
		d.outcome.SetText(d.a.tr.T("dial.offlineNow"))
		d.outcome.Importance = widget.WarningImportance
		d.outcome.Refresh()
	}
	if online && d.outcome.Importance == widget.WarningImportance {
		d.outcome.SetText("")
		d.outcome.Importance = widget.MediumImportance
		d.outcome.Refresh()
	}
}

func (d *dialer) dial() {
	if !d.valid || d.busy {
		return
	}
	n := d.number
	d.busy = true
	d.waiting = n.E164
	d.setOutcome(d.a.tr.T("dial.dialing", "Number", n.National), widget.MediumImportance)
	d.updateConn()
	d.a.dial(n.E164, func(res wire.DialResult, err error) {
		d.busy = false
		if err != nil {
			d.waiting = ""
			d.setOutcome(d.a.tr.dialError(err), widget.DangerImportance)
		} else {
			d.setOutcome(d.a.tr.T("dial.pbxCalling", "Number", res.Display), widget.SuccessImportance)
		}
		d.renderRecent()
		d.updateConn()
	})
}

// onNotice takes a dial notice meant for this window.
func (d *dialer) onNotice(n wire.Notice) bool {
	if d.waiting == "" || n.Phone != d.waiting {
		return false
	}
	d.waiting = ""
	if n.Kind == wire.NoticeDialFailed {
		text := n.Text
		if n.Error != nil {
			text = d.a.tr.dialError(n.Error)
		}
		d.setOutcome(text, widget.DangerImportance)
	}
	return true
}

func (d *dialer) setOutcome(text string, imp widget.Importance) {
	d.outcome.Importance = imp
	d.outcome.SetText(text)
}

// renderRecent lists recent numbers, dialled and calling, newest first.
func (d *dialer) renderRecent() {
	d.recent.RemoveAll()
	nums := d.a.recent.numbers(8)
	if len(nums) == 0 {
		d.recent.Add(widget.NewLabel(d.a.tr.T("dial.noneYet")))
		return
	}
	for _, n := range nums {
		label := phone.Display(n, d.a.cfg.Region)
		b := widget.NewButton(label, func() {
			d.entry.SetText(label)
			d.w.Canvas().Focus(d.entry)
		})
		b.Alignment = widget.ButtonAlignLeading
		b.Importance = widget.LowImportance
		d.recent.Add(b)
	}
}
