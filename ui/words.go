package ui

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/pult/pult/agent"
	"github.com/pult/pult/agent/credentials"
	"github.com/pult/pult/agent/wire"
)

// The words a person reads, in one place: their texts are in
// translations/*.json (lang.go).

func (w *words) status(s wire.Status) string {
	switch s {
	case wire.StatusFree:
		return w.T("status.free")
	case wire.StatusBusy:
		return w.T("status.busy")
	case wire.StatusDinner:
		return w.T("status.dinner")
	case wire.StatusBreak:
		return w.T("status.break")
	case wire.StatusOffline:
		return w.T("status.offline")
	}
	if s == "" {
		return "—"
	}
	return string(s)
}

// conn describes the connection for the tooltip and main window.
func (w *words) conn(st agent.ConnState, retryAt, now time.Time) string {
	switch st {
	case agent.Online:
		return w.T("conn.online")
	case agent.Connecting:
		return w.T("conn.connecting")
	case agent.Offline:
		if !retryAt.IsZero() && retryAt.After(now) {
			return w.T("conn.retryIn", "In", w.duration(retryAt.Sub(now)))
		}
		return w.T("conn.reconnecting")
	case agent.AuthFailed:
		return w.T("conn.tokenRefused")
	case agent.Outdated:
		return w.T("conn.outdated")
	}
	return w.T("conn.signedOut")
}

func (w *words) callState(c wire.Call) string {
	switch c.State {
	case wire.CallRinging:
		if c.Direction == wire.DirectionOut {
			return w.T("call.calling")
		}
		return w.T("call.ringing")
	case wire.CallTalking:
		return w.T("call.talking")
	case wire.CallAnsweredElsewhere:
		if c.AnsweredBy != nil {
			if c.AnsweredBy.You {
				return w.T("call.answeredByYou")
			}
			return w.T("call.answeredBy", "Who", w.party(*c.AnsweredBy))
		}
		return w.T("call.answeredElsewhere")
	case wire.CallEnded:
		return w.T("call.ended")
	case wire.CallMissed:
		if c.Direction == wire.DirectionOut {
			return w.T("call.noAnswer")
		}
		return w.T("call.missed")
	}
	return string(c.State)
}

// party names another operator.
func (w *words) party(p wire.Party) string {
	switch {
	case p.Name != "" && p.Code != "":
		return fmt.Sprintf("%s (%s)", p.Name, p.Code)
	case p.Name != "":
		return p.Name
	}
	return w.T("call.extension", "Code", p.Code)
}

func (w *words) callNumber(c wire.Call) string {
	if c.PhoneDisplay != "" {
		return c.PhoneDisplay
	}
	if c.Phone != "" {
		return c.Phone
	}
	return w.T("call.unknownNumber")
}

func (w *words) callTitle(c wire.Call) string {
	if c.Direction == wire.DirectionOut {
		return w.T("call.outgoingTitle", "Number", w.callNumber(c))
	}
	return w.T("call.incomingTitle", "Number", w.callNumber(c))
}

// callSummary is the notification's body: who is calling and who manages them.
func (w *words) callSummary(c wire.Call) string {
	var parts []string
	if c.Client != nil && c.Client.Name != "" {
		parts = append(parts, c.Client.Name)
	}
	if l := lineLabel(c); l != "" {
		parts = append(parts, w.T("call.toLine", "Line", l))
	}
	if m := w.manager(c); m != "" {
		parts = append(parts, w.T("call.manager", "Manager", m))
	}
	return strings.Join(parts, " · ")
}

func lineLabel(c wire.Call) string {
	line := c.LineDisplay
	if line == "" {
		line = c.Line
	}
	switch {
	case c.Site != "" && line != "":
		return c.Site + " · " + line
	case c.Site != "":
		return c.Site
	}
	return line
}

// manager describes the client's responsible manager.
func (w *words) manager(c wire.Call) string {
	switch c.ManagerState {
	case wire.ManagerPending:
		return w.T("manager.pending")
	case wire.ManagerNone:
		return w.T("manager.none")
	case wire.ManagerUnavailable:
		return w.T("manager.crmDown")
	case wire.ManagerOff, "":
		return ""
	}
	m := c.Manager
	if m == nil {
		return ""
	}
	s := m.Name
	if m.Code != "" {
		s += w.T("manager.extension", "Code", m.Code)
	}
	if m.Free {
		s += " · " + w.T("manager.free")
	} else {
		s += " · " + w.T("manager.notFree")
	}
	if m.You {
		s += " · " + w.T("manager.you")
	}
	return s
}

func (w *words) clientName(c wire.Call) string {
	if c.Client != nil && c.Client.Name != "" {
		return c.Client.Name
	}
	if c.Client != nil && c.Client.ID != "" {
		return w.T("client.numbered", "ID", c.Client.ID)
	}
	return w.T("client.new")
}

// crmLink is the best CRM page for the call: the client, else a new one.
func crmLink(c wire.Call) string {
	if c.Links == nil {
		return ""
	}
	if c.Links.Customer != "" {
		return c.Links.Customer
	}
	return c.Links.NewCustomer
}

// signinMessage explains why the sign-in window is shown at start.
func (w *words) signinMessage(err error) string {
	switch {
	case errors.Is(err, credentials.ErrNotSignedIn):
		return ""
	case errors.Is(err, credentials.ErrNoKeyring):
		return w.T("signin.noKeyringAtStart", "Err", err.Error())
	}
	return err.Error()
}

// stopMessage explains a token the relay refused.
func (w *words) stopMessage(se *agent.StopError) string {
	switch se.Code {
	case wire.CloseBadToken:
		return w.T("signin.badToken")
	case wire.CloseRevoked:
		return w.T("signin.revoked")
	case wire.CloseProtocol:
		return w.T("signin.protocol")
	}
	return se.Error()
}

// checkMessage explains why a sign-in attempt failed.
func (w *words) checkMessage(err error) string {
	var se *agent.StopError
	var ce *agent.CleartextError
	switch {
	case errors.As(err, &se):
		return w.stopMessage(se)
	case errors.As(err, &ce):
		return w.T("signin.insecureRelay", "Host", ce.Host)
	case errors.Is(err, agent.ErrUnreachable):
		return w.T("signin.unreachable")
	case errors.Is(err, agent.ErrNotRelay):
		return w.T("signin.notRelay")
	case errors.Is(err, credentials.ErrNoKeyring):
		return w.T("signin.noKeyring", "Err", err.Error())
	}
	return err.Error()
}

// checkListMessage is checkMessage for signing in with a list of relays
// (relays of them): a wrong address is named, and "unreachable" means all.
func (w *words) checkListMessage(err error, relays int) string {
	if relays > 1 {
		switch {
		case errors.Is(err, agent.ErrNotRelay):
			return w.T("signin.notRelayList", "Err", strings.TrimPrefix(err.Error(), agent.ErrNotRelay.Error()+": "))
		case errors.Is(err, agent.ErrUnreachable):
			return w.T("signin.unreachableList")
		}
	}
	return w.checkMessage(err)
}

func parseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("%q is not a web address", raw)
	}
	return u, nil
}
