package ui

import (
	"context"
	"errors"
	"fmt"
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
	c.w = a.fa.NewWindow("pult — order a callback")
	c.w.SetIcon(AppIcon)
	c.number = a.newEntry(func() { c.w.Close() })
	c.number.SetPlaceHolder("8 916 123-45-67")
	c.when = a.newEntry(func() { c.w.Close() })
	c.when.SetPlaceHolder("now, or 15:30, or 2026-11-22 10:00")
	c.note = a.newEntry(func() { c.w.Close() })
	c.note.SetPlaceHolder("What the call center should know (optional)")
	for _, e := range []*keyEntry{c.number, c.when, c.note} {
		e.OnChanged = func(string) { c.check() }
		e.OnSubmitted = func(string) { c.submit() }
	}
	c.parsed = widget.NewLabel("")
	c.parsed.Importance = widget.LowImportance
	c.parsed.Wrapping = fyne.TextWrapWord
	c.outcome = widget.NewLabel("")
	c.outcome.Wrapping = fyne.TextWrapWord
	c.order = widget.NewButtonWithIcon("Order callback", theme.HistoryIcon(), c.submit)
	c.order.Importance = widget.HighImportance
	form := widget.NewForm(
		widget.NewFormItem("Number", c.number),
		widget.NewFormItem("When", c.when),
		widget.NewFormItem("Note", c.note),
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
	n, err := phone.Parse(c.number.Text, c.a.cfg.Region)
	if err != nil {
		return wire.Callback{}, n, "Not a phone number yet."
	}
	cb = wire.Callback{Phone: n.E164, Note: strings.TrimSpace(c.note.Text)}
	if len([]rune(cb.Note)) > 255 {
		return cb, n, "The note is longer than 255 characters."
	}
	if w := strings.TrimSpace(c.when.Text); w != "" && !strings.EqualFold(w, "now") {
		at, err := agent.ParseWhen(w, c.a.cfg.Now())
		if err != nil {
			return cb, n, "When: " + err.Error()
		}
		cb.At = &at
	}
	return cb, n, ""
}

func (c *callbackWindow) check() {
	cb, n, problem := c.read()
	online := c.a.sess != nil && c.a.conn == agent.Online
	switch {
	case problem != "":
		c.parsed.SetText(problem)
	case cb.At != nil:
		c.parsed.SetText(fmt.Sprintf("Calltouch will call %s on %s.", n.National, cb.At.Local().Format("Mon 2 Jan at 15:04")))
	default:
		c.parsed.SetText(fmt.Sprintf("Calltouch will call %s now.", n.National))
	}
	if problem == "" && online && !c.busy {
		c.order.Enable()
	} else {
		c.order.Disable()
	}
	if !online && !c.busy && c.outcome.Text == "" {
		c.outcome.Importance = widget.WarningImportance
		c.outcome.SetText("Not connected to the relay: a callback can't be ordered right now.")
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
	c.outcome.SetText("Ordering a callback to " + n.National + "…")
	a := c.a
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		res, err := s.agent.Callback(ctx, cb)
		a.do(func() {
			c.busy = false
			var werr *wire.Error
			switch {
			case err == nil:
				when := "now"
				if res.At != nil {
					when = res.At.Local().Format("Mon 2 Jan at 15:04")
				}
				c.outcome.Importance = widget.SuccessImportance
				c.outcome.SetText(fmt.Sprintf("Callback to %s ordered (%s).", res.Display, when))
			case errors.As(err, &werr):
				c.outcome.Importance = widget.DangerImportance
				c.outcome.SetText("Not ordered: " + werr.Message)
			case errors.Is(err, agent.ErrOffline):
				c.outcome.Importance = widget.DangerImportance
				c.outcome.SetText("Not connected to the relay: the callback was not ordered.")
			default:
				c.outcome.Importance = widget.DangerImportance
				c.outcome.SetText(err.Error())
			}
			c.outcome.Refresh()
			c.check()
		})
	}()
}
