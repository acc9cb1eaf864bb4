package ui

import (
	"context"
	"errors"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/pult/pult/agent"
	"github.com/pult/pult/agent/wire"
)

const maxRecentTranscripts = 100

// onTranscript records a transcript's delivery state (UI goroutine).
func (a *App) onTranscript(st wire.TranscriptState) {
	list := a.recent.data.Transcripts
	i := slices.IndexFunc(list, func(x wire.TranscriptState) bool { return x.ID == st.ID })
	if i >= 0 {
		prev := list[i]
		if st.Title == "" {
			st.Title = prev.Title
		}
		list[i] = st
	} else {
		list = slices.Insert(list, 0, st)
		if len(list) > maxRecentTranscripts {
			list = list[:maxRecentTranscripts]
		}
	}
	a.recent.data.Transcripts = list
	a.recent.changed()
	if st.State == wire.TranscriptFailed {
		a.notify(a.tr.T("notify.transcriptFailed"), a.tr.transcriptName(st)+": "+a.tr.transcriptReason(st))
	}
	if a.transcriptsW != nil {
		a.transcriptsW.refresh()
	}
}

func (w *words) transcriptName(st wire.TranscriptState) string {
	if st.Title != "" {
		return st.Title
	}
	return w.T("transcript.chat", "ID", st.ID)
}

func (w *words) transcriptState(st wire.TranscriptState) string {
	switch st.State {
	case wire.TranscriptQueued:
		return w.T("transcript.sending")
	case wire.TranscriptDelivered:
		return w.T("transcript.delivered")
	case wire.TranscriptFailed:
		return w.T("transcript.failed", "Reason", w.transcriptReason(st))
	case "kept":
		return w.T("transcript.kept")
	}
	return st.State
}

// transcriptsWindow lists recent chats with their delivery state and takes
// a new one: pasted, or imported from a file (a Smartsupp export or
// "Name: message" lines).
type transcriptsWindow struct {
	a      *App
	w      fyne.Window
	list   *widget.List
	title  *keyEntry
	client *keyEntry
	body   *widget.Entry
	send   *widget.Button
	note   *widget.Label
	busy   bool
}

func (a *App) openTranscripts() {
	if a.transcriptsW == nil {
		a.transcriptsW = newTranscriptsWindow(a)
	}
	a.transcriptsW.refresh()
	a.transcriptsW.w.Show()
	a.transcriptsW.w.RequestFocus()
}

func newTranscriptsWindow(a *App) *transcriptsWindow {
	t := &transcriptsWindow{a: a}
	tr := a.tr
	t.w = a.fa.NewWindow("pult — " + tr.T("window.transcripts"))
	t.w.SetIcon(AppIcon)
	items := func() []wire.TranscriptState { return a.recent.data.Transcripts }
	t.list = widget.NewList(
		func() int { return len(items()) },
		func() fyne.CanvasObject {
			return container.NewBorder(nil, nil, widget.NewLabel("28 Mmm 00:00"), nil,
				container.NewHBox(widget.NewLabelWithStyle("title", fyne.TextAlignLeading, fyne.TextStyle{Bold: true}), widget.NewLabel("state")))
		},
		func(i widget.ListItemID, o fyne.CanvasObject) {
			list := items()
			if i >= len(list) {
				return
			}
			st := list[i]
			b := o.(*fyne.Container)
			b.Objects[1].(*widget.Label).SetText(tr.dayTime(st.At.Local()))
			row := b.Objects[0].(*fyne.Container).Objects
			row[0].(*widget.Label).SetText(tr.transcriptName(st))
			state := row[1].(*widget.Label)
			state.SetText(tr.transcriptState(st))
			switch st.State {
			case wire.TranscriptFailed:
				state.Importance = widget.DangerImportance
			case wire.TranscriptDelivered:
				state.Importance = widget.SuccessImportance
			default:
				state.Importance = widget.MediumImportance
			}
			state.Refresh()
			b.Objects[0].(*fyne.Container).Refresh() // lay out the new widths
		})
	t.title = a.newEntry(func() { t.w.Close() })
	t.title.SetPlaceHolder(tr.T("transcript.titlePlaceholder"))
	t.client = a.newEntry(func() { t.w.Close() })
	t.client.SetPlaceHolder(tr.T("transcript.clientPlaceholder"))
	t.body = widget.NewMultiLineEntry()
	t.body.SetPlaceHolder(tr.T("transcript.bodyPlaceholder"))
	t.body.SetMinRowsVisible(8)
	t.body.Wrapping = fyne.TextWrapWord
	t.body.OnChanged = func(string) { t.update() }
	t.send = widget.NewButtonWithIcon(tr.T("transcript.submit"), theme.MailSendIcon(), t.submit)
	t.send.Importance = widget.HighImportance
	imp := widget.NewButtonWithIcon(tr.T("transcript.import"), theme.FolderOpenIcon(), t.importFile)
	t.note = widget.NewLabel("")
	t.note.Wrapping = fyne.TextWrapWord

	form := container.NewVBox(
		widget.NewLabelWithStyle(tr.T("transcript.new"), fyne.TextAlignLeading, fyne.TextStyle{Bold: true}),
		container.NewGridWithColumns(2, t.title, t.client),
		t.body,
		container.NewHBox(imp, layoutSpacer(), t.send),
		t.note,
	)
	recentTitle := widget.NewLabelWithStyle(tr.T("transcript.recent"), fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	t.w.SetContent(container.NewBorder(container.NewPadded(form), nil, nil, nil,
		container.NewBorder(recentTitle, nil, nil, nil, t.list)))
	t.w.Resize(fyne.NewSize(620, 640))
	t.w.SetOnClosed(func() { a.transcriptsW = nil })
	a.bindKeys(t.w, func() { t.w.Close() })
	t.update()
	return t
}

func (t *transcriptsWindow) refresh() {
	t.list.Refresh()
	t.update()
}

func (t *transcriptsWindow) update() {
	if t.busy || strings.TrimSpace(t.body.Text) == "" || t.a.sess == nil {
		t.send.Disable()
	} else {
		t.send.Enable()
	}
}

func (t *transcriptsWindow) importFile() {
	tr := t.a.tr
	d := dialog.NewFileOpen(func(r fyne.URIReadCloser, err error) {
		if err != nil || r == nil {
			return
		}
		defer r.Close()
		b, err := io.ReadAll(io.LimitReader(r, wire.MaxTranscript+1))
		switch {
		case err != nil:
			t.setNote(tr.T("transcript.readFailed", "Err", err), widget.DangerImportance)
			return
		case len(b) > wire.MaxTranscript:
			t.setNote(tr.T("transcript.fileTooLarge", "KiB", wire.MaxTranscript>>10), widget.DangerImportance)
			return
		}
		t.body.SetText(string(b))
		if t.title.Text == "" {
			t.title.SetText(filepath.Base(r.URI().Path()))
		}
		t.setNote("", widget.MediumImportance)
	}, t.w)
	d.Show()
}

func (t *transcriptsWindow) setNote(text string, imp widget.Importance) {
	t.note.Importance = imp
	t.note.SetText(text)
}

// submit sends the chat; the list shows its state from then on.
func (t *transcriptsWindow) submit() {
	s, tr := t.a.sess, t.a.tr
	body := t.body.Text
	if s == nil || t.busy || strings.TrimSpace(body) == "" {
		return
	}
	if len(body) > wire.MaxTranscript {
		t.setNote(tr.T("transcript.chatTooLarge", "KiB", wire.MaxTranscript>>10), widget.DangerImportance)
		return
	}
	format := wire.FormatText
	if strings.HasPrefix(strings.TrimSpace(body), "{") {
		format = wire.FormatSmartsupp
	}
	sub := wire.TranscriptSubmit{Format: format, Title: strings.TrimSpace(t.title.Text), Client: strings.TrimSpace(t.client.Text), Body: body}
	t.busy = true
	t.update()
	t.setNote(tr.T("transcript.sendingToRelay"), widget.MediumImportance)
	a := t.a
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
		defer cancel()
		st, err := s.agent.SubmitTranscript(ctx, sub)
		a.do(func() {
			t.busy = false
			var werr *wire.Error
			switch {
			case err == nil:
				st.Title = sub.Title
				a.onTranscript(st)
				t.clear()
				t.setNote(tr.T("transcript.accepted"), widget.SuccessImportance)
			case errors.Is(err, agent.ErrQueued):
				st.Title, st.State = sub.Title, "kept"
				a.onTranscript(st)
				t.clear()
				t.setNote(tr.T("transcript.keptOffline"), widget.WarningImportance)
			case errors.As(err, &werr):
				t.setNote(tr.transcriptRefusal(werr), widget.DangerImportance)
			default:
				a.log.Warn("transcript not sent", "err", err)
				t.setNote(tr.T("transcript.notSent", "Reason", tr.requestError(err)), widget.DangerImportance)
			}
			t.update()
		})
	}()
}

func (t *transcriptsWindow) clear() {
	t.body.SetText("")
	t.title.SetText("")
	t.client.SetText("")
}
