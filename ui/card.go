package ui

import (
	"image/color"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/layout"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/pult/pult/agent"
	"github.com/pult/pult/agent/wire"
)

// How long a card stays once its call is over for this operator.
const (
	closeAfterElsewhere = 4 * time.Second  // someone else answered
	closeAfterEnded     = 20 * time.Second // time to open the CRM or call back
	closeAfterMissed    = time.Minute      // then it is in Recent calls
)

// stateLook is a state's colour (the bar) and the label's importance, from
// the theme. Each state also has its own words, so colour is never the only
// sign.
func stateLook(st wire.CallState) (color.Color, widget.Importance) {
	switch st {
	case wire.CallRinging:
		return theme.Color(theme.ColorNamePrimary), widget.HighImportance
	case wire.CallTalking:
		return theme.Color(theme.ColorNameSuccess), widget.SuccessImportance
	case wire.CallMissed:
		return theme.Color(theme.ColorNameError), widget.DangerImportance
	}
	return theme.Color(theme.ColorNameDisabled), widget.LowImportance
}

// cardActions are what a card's buttons do.
type cardActions struct {
	callBack func(c wire.Call, done func(text string, failed bool))
	callback func(c wire.Call) // order a callback (Calltouch)
	copy     func(c wire.Call)
	openCRM  func(c wire.Call)
	dismiss  func(c wire.Call)
	now      func() time.Time // server-aligned clock for the timers
}

// callCard shows one call and follows it live.
type callCard struct {
	tr      *words
	call    wire.Call
	act     cardActions
	bar     *canvas.Rectangle
	state   *widget.Label
	timer   *widget.Label
	number  *widget.Label
	line    *widget.Label
	client  *widget.Label
	manager *widget.Label
	note    *widget.Label
	callBtn *widget.Button
	cbBtn   *widget.Button
	copyBtn *widget.Button
	crmBtn  *widget.Button
	obj     fyne.CanvasObject

	closeTimer *time.Timer
}

func newCallCard(tr *words, c wire.Call, act cardActions) *callCard {
	k := &callCard{tr: tr, act: act}
	k.bar = canvas.NewRectangle(theme.Color(theme.ColorNamePrimary))
	k.bar.SetMinSize(fyne.NewSize(6, 0))
	k.state = widget.NewLabelWithStyle("", fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	k.timer = widget.NewLabelWithStyle("", fyne.TextAlignTrailing, fyne.TextStyle{Monospace: true})
	k.number = widget.NewLabelWithStyle("", fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	k.number.SizeName = theme.SizeNameHeadingText
	k.number.Selectable = true
	k.line = widget.NewLabel("")
	k.client = widget.NewLabel("")
	k.client.TextStyle = fyne.TextStyle{Bold: true}
	k.client.Truncation = fyne.TextTruncateEllipsis
	k.manager = widget.NewLabel("")
	k.manager.Wrapping = fyne.TextWrapWord
	k.note = widget.NewLabel("")
	k.note.Wrapping = fyne.TextWrapWord
	k.note.Hide()

	k.callBtn = widget.NewButtonWithIcon(tr.T("card.callBack"), theme.MailReplyIcon(), func() {
		k.note.SetText(tr.T("dial.dialing", "Number", tr.callNumber(k.call)))
		k.note.Importance = widget.MediumImportance
		k.note.Show()
		k.act.callBack(k.call, func(text string, failed bool) {
			k.note.SetText(text)
			if failed {
				k.note.Importance = widget.DangerImportance
			}
			k.note.Refresh()
		})
	})
	k.cbBtn = widget.NewButtonWithIcon(tr.T("card.orderCallback"), theme.HistoryIcon(), func() { k.act.callback(k.call) })
	k.copyBtn = widget.NewButtonWithIcon(tr.T("card.copyNumber"), theme.ContentCopyIcon(), func() { k.act.copy(k.call) })
	k.crmBtn = widget.NewButtonWithIcon(tr.T("card.openCRM"), theme.ComputerIcon(), func() { k.act.openCRM(k.call) })
	dismiss := widget.NewButtonWithIcon(tr.T("card.dismiss"), theme.CancelIcon(), func() { k.act.dismiss(k.call) })
	dismiss.Importance = widget.LowImportance

	header := container.NewHBox(k.state, layout.NewSpacer(), k.timer)
	buttons := container.NewGridWithColumns(2, k.callBtn, k.cbBtn, k.copyBtn, k.crmBtn, dismiss)
	body := container.New(layout.NewCustomPaddedVBoxLayout(0), header, k.number, k.line, k.client, k.manager, k.note,
		container.NewPadded(buttons))
	bg := canvas.NewRectangle(theme.Color(theme.ColorNameBackground))
	k.obj = container.NewStack(bg, container.NewBorder(nil, nil, k.bar, nil, body))
	k.set(c)
	return k
}

// set shows c.
func (k *callCard) set(c wire.Call) {
	k.call = c
	col, imp := stateLook(c.State)
	k.bar.FillColor = col
	k.bar.Refresh()
	k.state.Importance = imp
	k.state.SetText(k.tr.callState(c))
	k.number.SetText(k.tr.callNumber(c))
	if l := lineLabel(c); l != "" {
		if c.Direction == wire.DirectionOut {
			k.line.SetText(k.tr.T("call.fromLine", "Line", l))
		} else {
			k.line.SetText(k.tr.T("call.toLine", "Line", l))
		}
		k.line.Show()
	} else {
		k.line.Hide()
	}
	k.client.SetText(k.tr.clientName(c))
	if m := k.tr.manager(c); m != "" {
		k.manager.SetText(k.tr.T("call.manager", "Manager", m))
		k.manager.Show()
	} else {
		k.manager.Hide()
	}
	for _, b := range []*widget.Button{k.callBtn, k.cbBtn, k.copyBtn} {
		if c.Phone == "" {
			b.Disable()
		} else {
			b.Enable()
		}
	}
	if crmLink(c) == "" {
		k.crmBtn.Disable()
	} else {
		k.crmBtn.Enable()
	}
	k.tick()
}

// live reports whether the card has a running timer.
func (k *callCard) live() bool {
	return k.call.State == wire.CallRinging || k.call.State == wire.CallTalking
}

// tick updates the timer: waiting while ringing, talk time while talking,
// the talk's length once ended.
func (k *callCard) tick() {
	c := k.call
	now := k.act.now()
	var text string
	switch {
	case c.State == wire.CallRinging && !c.StartedAt.IsZero():
		text = agent.Clock(now.Sub(c.StartedAt))
	case c.State == wire.CallTalking && c.AnsweredAt != nil:
		text = agent.Clock(now.Sub(*c.AnsweredAt))
	case c.State == wire.CallEnded && c.AnsweredAt != nil && c.EndedAt != nil:
		text = agent.Clock(c.EndedAt.Sub(*c.AnsweredAt))
	case c.EndedAt != nil:
		text = c.EndedAt.Local().Format("15:04")
	}
	if text != k.timer.Text {
		k.timer.SetText(text)
	}
}

// closeAfter is how long the card stays in its current state, 0 for as
// long as the call lasts.
func (k *callCard) closeAfter() time.Duration {
	switch k.call.State {
	case wire.CallAnsweredElsewhere:
		return closeAfterElsewhere
	case wire.CallEnded:
		return closeAfterEnded
	case wire.CallMissed:
		return closeAfterMissed
	}
	return 0
}
