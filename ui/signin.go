package ui

import (
	"context"
	"errors"
	"strings"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/widget"

	"github.com/pult/pult/agent"
)

const checkTimeout = 15 * time.Second

// signin asks for the relay URL and token, checks them against the relay
// and only then keeps them in the OS keyring.
type signin struct {
	a        *App
	w        fyne.Window
	url      *keyEntry
	token    *keyEntry
	message  *widget.Label
	progress *widget.ProgressBarInfinite
	button   *widget.Button
	cancel   context.CancelFunc
}

// showSignin opens the sign-in window with msg (why it is shown, or "").
func (a *App) showSignin(msg string) {
	if a.signin == nil {
		a.signin = newSignin(a)
	}
	s := a.signin
	s.setMessage(msg, widget.WarningImportance)
	s.w.Show()
	s.w.RequestFocus()
	if s.url.Text == "" {
		s.w.Canvas().Focus(s.url)
	} else {
		s.w.Canvas().Focus(s.token)
	}
}

func newSignin(a *App) *signin {
	s := &signin{a: a}
	tr := a.tr
	s.w = a.fa.NewWindow("pult — " + tr.T("window.signin"))
	s.w.SetIcon(AppIcon)
	s.url = a.newEntry(func() { s.w.Close() })
	s.url.SetPlaceHolder("https://relay.example.com") // or several, comma-separated
	s.token = a.newEntry(func() { s.w.Close() })
	s.token.Password = true
	s.token.SetPlaceHolder("pult_…")
	if a.cfg.Credentials != nil {
		if l, err := a.cfg.Credentials.Load(); l.RelayURL != "" || err == nil {
			s.url.SetText(l.RelayURL)
		}
	}
	s.url.OnSubmitted = func(string) { s.w.Canvas().Focus(s.token) }
	s.token.OnSubmitted = func(string) { s.submit() }
	s.message = widget.NewLabel("")
	s.message.Wrapping = fyne.TextWrapWord
	s.progress = widget.NewProgressBarInfinite()
	s.progress.Stop()
	s.progress.Hide()
	s.button = widget.NewButton(tr.T("signin.button"), s.submit)
	s.button.Importance = widget.HighImportance

	intro := widget.NewLabel(tr.T("signin.intro"))
	intro.Wrapping = fyne.TextWrapWord
	form := widget.NewForm(
		widget.NewFormItem(tr.T("signin.relay"), s.url),
		widget.NewFormItem(tr.T("signin.token"), s.token),
	)
	s.w.SetContent(container.NewPadded(container.NewVBox(intro, form, s.message, s.progress,
		container.NewHBox(layoutSpacer(), s.button))))
	s.w.Resize(fyne.NewSize(460, 0))
	s.w.SetOnClosed(func() {
		if s.cancel != nil {
			s.cancel()
		}
		a.signin = nil
	})
	a.bindKeys(s.w, func() { s.w.Close() })
	return s
}

func (s *signin) setMessage(msg string, imp widget.Importance) {
	s.message.Importance = imp
	s.message.SetText(msg)
	if msg == "" {
		s.message.Hide()
	} else {
		s.message.Show()
	}
}

// submit checks the pair against the relay, then saves it and signs in.
func (s *signin) submit() {
	if s.cancel != nil {
		return // a check is running
	}
	tr := s.a.tr
	raw, token := strings.TrimSpace(s.url.Text), strings.TrimSpace(s.token.Text)
	if raw == "" {
		s.setMessage(tr.T("signin.enterRelay"), widget.DangerImportance)
		s.w.Canvas().Focus(s.url)
		return
	}
	url, err := agent.CheckRelayURL(raw, false)
	if ce := (*agent.CleartextError)(nil); errors.As(err, &ce) {
		// Plain text to another machine: only the command line can allow
		// it (pult login --insecure), on purpose.
		s.setMessage(tr.T("signin.insecureRelay", "Host", ce.Host), widget.DangerImportance)
		s.w.Canvas().Focus(s.url)
		return
	}
	if err != nil {
		s.setMessage(tr.T("signin.badRelayURL", "Err", err), widget.DangerImportance)
		s.w.Canvas().Focus(s.url)
		return
	}
	if token == "" {
		s.setMessage(tr.T("signin.enterToken"), widget.DangerImportance)
		s.w.Canvas().Focus(s.token)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), checkTimeout)
	s.cancel = cancel
	s.busy(true)
	s.setMessage(tr.T("signin.checking"), widget.MediumImportance)
	a := s.a
	go func() {
		defer cancel()
		relays, _ := agent.SplitRelayURL(url)
		op, err := a.cfg.Check(ctx, url, token)
		if err == nil && a.cfg.Credentials != nil {
			err = a.cfg.Credentials.Save(Login{RelayURL: url, Token: token})
		}
		a.do(func() {
			if a.signin != s {
				return // closed meanwhile
			}
			s.cancel = nil
			s.busy(false)
			if err != nil {
				s.setMessage(tr.checkListMessage(err, len(relays)), widget.DangerImportance)
				return
			}
			a.log.Info("signed in", "operator", op.Code, "relay", url)
			s.w.Close()
			a.startSession(Login{RelayURL: url, Token: token})
		})
	}()
}

func (s *signin) busy(on bool) {
	if on {
		s.button.Disable()
		s.url.Disable()
		s.token.Disable()
		s.progress.Show()
		s.progress.Start()
		return
	}
	s.button.Enable()
	s.url.Enable()
	s.token.Enable()
	s.progress.Stop()
	s.progress.Hide()
}
