package ui

import (
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/pult/pult/agent/wire"
)

// RecentFile is the recent calls' file in Config.StateDir (pult logout
// removes it).
const RecentFile = "recent.json"

const (
	maxRecentCalls   = 200
	maxRecentDialled = 20
	maxRecentFile    = 4 << 20
	recentSaveDelay  = 2 * time.Second
)

// recentCalls is the call history the operator sees: every call's latest
// state, newest first, kept across restarts in StateDir/recent.json.
// UI goroutine only.
type recentCalls struct {
	path string
	log  *slog.Logger
	do   func(func())
	data recentFile
	save *time.Timer
}

type recentFile struct {
	Calls   []wire.Call `json:"calls"`
	Dialled []string    `json:"dialled"` // E.164, newest first
	// SeenMissed is when the operator last looked at the list: missed calls
	// after it are counted in the tray menu.
	SeenMissed time.Time `json:"seenMissed"`
	// Transcripts are the chats submitted or received, newest first.
	Transcripts []wire.TranscriptState `json:"transcripts,omitempty"`
}

func loadRecent(path string, log *slog.Logger, do func(func())) *recentCalls {
	r := &recentCalls{path: path, log: log, do: do}
	if path == "" {
		return r
	}
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return r
	case err != nil:
		log.Warn("recent calls not read", "err", err)
		return r
	case len(b) > maxRecentFile:
		log.Warn("recent calls file too large, starting afresh", "bytes", len(b))
		return r
	}
	if err := json.Unmarshal(b, &r.data); err != nil {
		log.Warn("recent calls file damaged, starting afresh", "err", err)
		r.data = recentFile{}
	}
	if len(r.data.Calls) > maxRecentCalls {
		r.data.Calls = r.data.Calls[:maxRecentCalls]
	}
	if len(r.data.Dialled) > maxRecentDialled {
		r.data.Dialled = r.data.Dialled[:maxRecentDialled]
	}
	if len(r.data.Transcripts) > maxRecentTranscripts {
		r.data.Transcripts = r.data.Transcripts[:maxRecentTranscripts]
	}
	return r
}

// add records c's latest state.
func (r *recentCalls) add(c wire.Call) {
	i := slices.IndexFunc(r.data.Calls, func(x wire.Call) bool { return x.ID == c.ID })
	if i >= 0 {
		r.data.Calls[i] = c
	} else {
		r.data.Calls = slices.Insert(r.data.Calls, 0, c)
		if len(r.data.Calls) > maxRecentCalls {
			r.data.Calls = r.data.Calls[:maxRecentCalls]
		}
	}
	r.changed()
}

// remove forgets a call (one shown ahead of the relay's log that was not
// stored).
func (r *recentCalls) remove(id string) {
	n := len(r.data.Calls)
	r.data.Calls = slices.DeleteFunc(r.data.Calls, func(x wire.Call) bool { return x.ID == id })
	if len(r.data.Calls) != n {
		r.changed()
	}
}

func (r *recentCalls) addDialled(e164 string) {
	r.data.Dialled = slices.DeleteFunc(r.data.Dialled, func(s string) bool { return s == e164 })
	r.data.Dialled = slices.Insert(r.data.Dialled, 0, e164)
	if len(r.data.Dialled) > maxRecentDialled {
		r.data.Dialled = r.data.Dialled[:maxRecentDialled]
	}
	r.changed()
}

// numbers are the latest distinct numbers dialled or calling.
func (r *recentCalls) numbers(n int) []string {
	var out []string
	seen := map[string]bool{}
	add := func(s string) {
		if s != "" && !seen[s] && len(out) < n {
			seen[s] = true
			out = append(out, s)
		}
	}
	di, ci := 0, 0
	for len(out) < n && (di < len(r.data.Dialled) || ci < len(r.data.Calls)) {
		if di < len(r.data.Dialled) {
			add(r.data.Dialled[di])
			di++
		}
		if ci < len(r.data.Calls) {
			add(r.data.Calls[ci].Phone)
			ci++
		}
	}
	return out
}

// unseenMissed counts missed incoming calls since the list was last opened.
func (r *recentCalls) unseenMissed() int {
	n := 0
	for _, c := range r.data.Calls {
		if c.State == wire.CallMissed && c.Direction == wire.DirectionIn && c.StartedAt.After(r.data.SeenMissed) {
			n++
		}
	}
	return n
}

func (r *recentCalls) markSeen(now time.Time) {
	r.data.SeenMissed = now
	r.changed()
}

// changed saves soon, once for a burst of changes.
func (r *recentCalls) changed() {
	if r.path == "" || r.save != nil {
		return
	}
	r.save = time.AfterFunc(recentSaveDelay, func() { r.do(r.flush) })
}

// flush writes the file now (atomically: a crash leaves the old one).
func (r *recentCalls) flush() {
	if r.save != nil {
		r.save.Stop()
		r.save = nil
	}
	if r.path == "" {
		return
	}
	b, err := json.Marshal(r.data)
	if err == nil {
		err = writeFileAtomic(r.path, b)
	}
	if err != nil {
		r.log.Warn("recent calls not saved", "err", err)
	}
}

func writeFileAtomic(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".recent-*")
	if err != nil {
		return err
	}
	_, err = tmp.Write(b)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
	return err
}

// recentWindow lists recent calls with their actions.
type recentWindow struct {
	a    *App
	w    fyne.Window
	list *widget.List
	sel  string // call id
	bar  *fyne.Container
	call *widget.Button
	copy *widget.Button
	crm  *widget.Button
	note *widget.Label
}

func (a *App) openRecent() {
	if a.recentW == nil {
		a.recentW = newRecentWindow(a)
	}
	a.recent.markSeen(a.serverNow())
	a.refresh()
	a.recentW.refresh()
	a.recentW.w.Show()
	a.recentW.w.RequestFocus()
}

func newRecentWindow(a *App) *recentWindow {
	r := &recentWindow{a: a}
	tr := a.tr
	r.w = a.fa.NewWindow("pult — " + tr.T("window.recent"))
	r.w.SetIcon(AppIcon)
	calls := func() []wire.Call { return a.recent.data.Calls }
	r.list = widget.NewList(
		func() int { return len(calls()) },
		func() fyne.CanvasObject {
			state := widget.NewLabel(tr.T("call.answeredElsewhere"))
			state.TextStyle = fyne.TextStyle{Bold: true}
			return container.NewHBox(widget.NewLabel("28 Mmm 00:00"), state, widget.NewLabel("8 (999) 999-99-99"), widget.NewLabel("client"))
		},
		func(i widget.ListItemID, o fyne.CanvasObject) {
			cs := calls()
			if i >= len(cs) {
				return
			}
			c := cs[i]
			row := o.(*fyne.Container).Objects
			at := c.StartedAt.Local()
			when := at.Format("15:04")
			if y, m, d := at.Date(); y != a.cfg.Now().Year() || m != a.cfg.Now().Month() || d != a.cfg.Now().Day() {
				when = tr.dayTime(at)
			}
			row[0].(*widget.Label).SetText(when)
			st := row[1].(*widget.Label)
			st.SetText(tr.recentState(c))
			st.Importance = widget.MediumImportance
			if c.State == wire.CallMissed && c.Direction == wire.DirectionIn {
				st.Importance = widget.DangerImportance
			}
			st.Refresh()
			row[2].(*widget.Label).SetText(tr.callNumber(c))
			row[3].(*widget.Label).SetText(tr.clientName(c))
			o.Refresh() // lay out the new widths
		})
	r.list.OnSelected = func(i widget.ListItemID) {
		if cs := calls(); i < len(cs) {
			r.sel = cs[i].ID
		}
		r.updateButtons()
	}
	r.list.OnUnselected = func(widget.ListItemID) { r.sel = ""; r.updateButtons() }
	r.note = widget.NewLabel("")
	r.note.Wrapping = fyne.TextWrapWord
	r.call = widget.NewButtonWithIcon(tr.T("card.callBack"), theme.MailReplyIcon(), func() {
		c, ok := r.selected()
		if !ok {
			return
		}
		r.note.SetText(tr.T("dial.dialing", "Number", tr.callNumber(c)))
		a.dial(c.Phone, func(res wire.DialResult, err error) {
			if err != nil {
				r.note.SetText(tr.dialError(err))
				return
			}
			r.note.SetText(tr.T("dial.pbxCalling", "Number", res.Display))
		})
	})
	r.copy = widget.NewButtonWithIcon(tr.T("card.copyNumber"), theme.ContentCopyIcon(), func() {
		if c, ok := r.selected(); ok {
			a.copyText(c.Phone)
		}
	})
	r.crm = widget.NewButtonWithIcon(tr.T("card.openCRM"), theme.ComputerIcon(), func() {
		if c, ok := r.selected(); ok {
			a.openURL(crmLink(c))
		}
	})
	r.bar = container.NewHBox(r.call, r.copy, r.crm)
	empty := widget.NewLabel(tr.T("recent.none"))
	r.w.SetContent(container.NewBorder(nil, container.NewVBox(r.note, r.bar), nil, nil, container.NewStack(empty, r.list)))
	r.w.Resize(fyne.NewSize(560, 420))
	r.w.SetOnClosed(func() { a.recentW = nil })
	a.bindKeys(r.w, func() { r.w.Close() })
	r.updateButtons()
	return r
}

func (r *recentWindow) selected() (wire.Call, bool) {
	for _, c := range r.a.recent.data.Calls {
		if r.sel != "" && c.ID == r.sel {
			return c, true
		}
	}
	return wire.Call{}, false
}

func (r *recentWindow) updateButtons() {
	c, ok := r.selected()
	for _, b := range []*widget.Button{r.call, r.copy} {
		if ok && c.Phone != "" {
			b.Enable()
		} else {
			b.Disable()
		}
	}
	if ok && crmLink(c) != "" {
		r.crm.Enable()
	} else {
		r.crm.Disable()
	}
}

func (r *recentWindow) refresh() {
	r.list.Refresh()
	r.updateButtons()
}

func (w *words) recentState(c wire.Call) string {
	dir := w.T("recent.in")
	if c.Direction == wire.DirectionOut {
		dir = w.T("recent.out")
	}
	return dir + " · " + w.callState(c)
}
