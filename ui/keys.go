package ui

import (
	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/driver/desktop"
	"fyne.io/fyne/v2/widget"

	"github.com/pult/pult/agent/wire"
)

// Keyboard, in every window of the app (listed in README):
//
//	Esc         close the window
//	Enter       confirm (sign in, dial)
//	Ctrl+1…4    set the status: free, busy, dinner, break

var statusKeys = []fyne.KeyName{fyne.Key1, fyne.Key2, fyne.Key3, fyne.Key4}

func statusShortcut(i int) fyne.Shortcut {
	return &desktop.CustomShortcut{KeyName: statusKeys[i], Modifier: fyne.KeyModifierControl}
}

// statusFor returns the status a shortcut sets, if it is one of ours.
func statusFor(s fyne.Shortcut) (wire.Status, bool) {
	cs, ok := s.(*desktop.CustomShortcut)
	if !ok || cs.Modifier != fyne.KeyModifierControl {
		return "", false
	}
	for i, k := range statusKeys {
		if cs.KeyName == k {
			return wire.Statuses[i], true
		}
	}
	return "", false
}

// bindKeys gives w the app's keys: Esc runs onEsc, Ctrl+1…4 set the status.
func (a *App) bindKeys(w fyne.Window, onEsc func()) {
	c := w.Canvas()
	for i := range statusKeys {
		st := wire.Statuses[i]
		c.AddShortcut(statusShortcut(i), func(fyne.Shortcut) { a.setStatus(st) })
	}
	c.SetOnTypedKey(func(ev *fyne.KeyEvent) {
		if ev.Name == fyne.KeyEscape && onEsc != nil {
			onEsc()
		}
	})
}

// keyEntry is an Entry that keeps the window's keys working while it has
// the focus: fyne gives a focused widget every key and shortcut first.
type keyEntry struct {
	widget.Entry
	a     *App
	onEsc func()
}

func (a *App) newEntry(onEsc func()) *keyEntry {
	e := &keyEntry{a: a, onEsc: onEsc}
	e.ExtendBaseWidget(e)
	return e
}

func (e *keyEntry) TypedKey(ev *fyne.KeyEvent) {
	if ev.Name == fyne.KeyEscape && e.onEsc != nil {
		e.onEsc()
		return
	}
	e.Entry.TypedKey(ev)
}

func (e *keyEntry) TypedShortcut(s fyne.Shortcut) {
	if st, ok := statusFor(s); ok {
		e.a.setStatus(st)
		return
	}
	e.Entry.TypedShortcut(s)
}
