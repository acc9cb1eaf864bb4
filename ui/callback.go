package ui

import (
	"context"
	"strings"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/pult/pult/agent"
	"github.com/pult/pult/agent/phone"
	"github.com/pult/pult/agent/wire"
)

// callbackWindow orders a callback through Calltouch: the number, when
// (now, or a time), a note; the outcome in plain words.
type callbackWindow struct {
	a       *App
	w       fyne.Window
	number  *keyEntry
	when    *keyEntry
	note    *keyEntry
	parsed  *widget.Label
	outcome *widget.Label
	order   *widget.Button
	busy    bool
}

// openCallback opens the window pre-filled with number.
func (a *App) openCallback(number string) {
	if a.callbackW == nil {
		a.callbackW = newCallbackWindow(a)
	}
	c := a.callbackW
	if number != "" {
		c.number.SetText(phone.Display(number, a.cfg.Region))
	}
	c.outcome.SetText("")
	c.check()
	c.w.Show()
	c.w.RequestFocus()
	c.w.Canvas().Focus(c.when)
}

func newCallbackWindow(a *App) *callbackWindow {
	c := &callbackWindow{a: a}
	tr := a.tr
	c.w = a.fa.NewWindow("pult — " + tr.T("window.callback"))
	c.w.SetIcon(AppIcon)
	c.number = a.newEntry(func() { c.w.Close() })
	c.number.SetPlaceHolder("8 916 123-45-67")
	c.when = a.newEntry(func() { c.w.Close() })
	c.when.SetPlaceHolder(tr.T("callback.whenPlaceholder"))
	c.note = a.newEntry(func() { c.w.Close() })
	c.note.SetPlaceHolder(tr.T("callback.notePlaceholder"))
	for _, e := range []*keyEntry{c.number, c.when, c.note} {
		e.OnChanged = func(string) { c.check() }
		e.OnSubmitted = func(string) { c.submit() }
	}
	c.parsed = widget.NewLabel("")
	c.parsed.Importance = widget.LowImportance
	c.parsed.Wrapping = fyne.TextWrapWord
	c.outcome = widget.NewLabel("")
	c.outcome.Wrapping = fyne.TextWrapWord
	c.order = widget.NewButtonWithIcon(tr.T("card.orderCallback"), theme.HistoryIcon(), c.submit)
	c.order.Importance = widget.HighImportance
	form := widget.NewForm(
		widget.NewFormItem(tr.T("callback.number"), c.number),
		widget.NewFormItem(tr.T("callback.when"), c.when),
		widget.NewFormItem(tr.T("callback.note"), c.note),
	)
	c.w.SetContent(container.NewPadded(container.NewVBox(form, c.parsed, c.outcome,
		container.NewHBox(layoutSpacer(), c.order))))
	c.w.Resize(fyne.NewSize(440, 0))
	c.w.SetOnClosed(func() { a.callbackW = nil })
	a.bindKeys(c.w, func() { c.w.Close() })
	return c
}

// read returns the request the fields describe, or (problem != "") why
// they don't, in words for the window.
func (c *callbackWindow) read() (cb wire.Callback, n phone.Number, problem string) {
	tr := c.a.tr
	n, err := phone.Parse(c.number.Text, c.a.cfg.Region)
	if err != nil {
		return wire.Callback{}, n, tr.T("phone.notYet")
	}
	cb = wire.Callback{Phone: n.E164, Note: strings.TrimSpace(c.note.Text)}
	if len([]rune(cb.Note)) > 255 {
		return cb, n, tr.T("callback.noteTooLong", "Max", 255)
	}
	if w := strings.TrimSpace(c.when.Text); w != "" && !tr.isNow(w) {
		at, err := agent.ParseWhen(w, c.a.cfg.Now())
		if err != nil {
			return cb, n, tr.T("callback.badWhen", "Err", err)
		}
		cb.At = &at
	}
	return cb, n, ""
}

func (c *callbackWindow) check() {
	cb, n, problem := c.read()
	tr := c.a.tr
	online := c.a.sess != nil && c.a.conn == agent.Online
	switch {
	case problem != "":
		c.parsed.SetText(problem)
	case cb.At != nil:
		c.parsed.SetText(tr.T("callback.willCallAt", "Number", n.National, "When", tr.weekdayTime(cb.At.Local())))
	default:
		c.parsed.SetText(tr.T("callback.willCallNow", "Number", n.National))
	}
	if problem == "" && online && !c.busy {
		c.order.Enable()
	} else {
		c.order.Disable()
	}
	if !online && !c.busy && c.outcome.Text == "" {
		c.outcome.Importance = widget.WarningImportance
		c.outcome.SetText(tr.T("callback.offlineNow"))
	}
}

func (c *callbackWindow) submit() {
	cb, n, problem := c.read()
	s := c.a.sess
	if problem != "" || s == nil || c.busy {
		return
	}
	c.busy = true
	c.check()
	c.outcome.Importance = widget.MediumImportance
	a, tr := c.a, c.a.tr
	c.outcome.SetText(tr.T("callback.ordering", "Number", n.National))
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		res, err := s.agent.Callback(ctx, cb)
		a.do(func() {
			c.busy = false
			switch {
			case err == nil:
				when := tr.T("callback.now")
				if res.At != nil {
					when = tr.weekdayTime(res.At.Local())
				}
				c.outcome.Importance = widget.SuccessImportance
				c.outcome.SetText(tr.T("callback.ordered", "Number", res.Display, "When", when))
			default:
				a.log.Warn("callback not ordered", "err", err)
				c.outcome.Importance = widget.DangerImportance
				c.outcome.SetText(tr.callbackError(err))
			}
			c.outcome.Refresh()
			c.check()
		})
	}()
}

// isNow says s means "now": in English, or in the app's language.
func (w *words) isNow(s string) bool {
	return strings.EqualFold(s, "now") || strings.EqualFold(s, w.T("callback.now"))
}
