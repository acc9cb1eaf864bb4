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

// The words a person reads, in one place.

func statusLabel(s wire.Status) string {
	switch s {
	case wire.StatusFree:
		return "Free"
	case wire.StatusBusy:
		return "Busy"
	case wire.StatusDinner:
		return "Dinner"
	case wire.StatusBreak:
		return "Break"
	case wire.StatusOffline:
		return "Offline"
	}
	if s == "" {
		return "—"
	}
	return string(s)
}

// connLabel describes the connection for the tooltip and main window.
func connLabel(st agent.ConnState, retryAt, now time.Time) string {
	switch st {
	case agent.Online:
		return "online"
	case agent.Connecting:
		return "connecting…"
	case agent.Offline:
		if !retryAt.IsZero() && retryAt.After(now) {
			return fmt.Sprintf("reconnecting… (next try in %s)", retryAt.Sub(now).Round(time.Second))
		}
		return "reconnecting…"
	case agent.AuthFailed:
		return "signed out: token refused"
	case agent.Outdated:
		return "signed out: update pult"
	}
	return "signed out"
}

func callStateLabel(c wire.Call) string {
	switch c.State {
	case wire.CallRinging:
		if c.Direction == wire.DirectionOut {
			return "Calling"
		}
		return "Ringing"
	case wire.CallTalking:
		return "Talking"
	case wire.CallAnsweredElsewhere:
		if c.AnsweredBy != nil {
			return "Answered by " + partyName(*c.AnsweredBy)
		}
		return "Answered elsewhere"
	case wire.CallEnded:
		return "Ended"
	case wire.CallMissed:
		if c.Direction == wire.DirectionOut {
			return "No answer"
		}
		return "Missed"
	}
	return string(c.State)
}

func partyName(p wire.Party) string {
	switch {
	case p.You:
		return "you"
	case p.Name != "" && p.Code != "":
		return fmt.Sprintf("%s (%s)", p.Name, p.Code)
	case p.Name != "":
		return p.Name
	}
	return "ext. " + p.Code
}

func callNumber(c wire.Call) string {
	if c.PhoneDisplay != "" {
		return c.PhoneDisplay
	}
	if c.Phone != "" {
		return c.Phone
	}
	return "Unknown number"
}

func callTitle(c wire.Call) string {
	if c.Direction == wire.DirectionOut {
		return "Outgoing call: " + callNumber(c)
	}
	return "Incoming call: " + callNumber(c)
}

// callSummary is the notification's body: who is calling and who manages them.
func callSummary(c wire.Call) string {
	var parts []string
	if c.Client != nil && c.Client.Name != "" {
		parts = append(parts, c.Client.Name)
	}
	if l := lineLabel(c); l != "" {
		parts = append(parts, "to "+l)
	}
	if m := managerLine(c); m != "" {
		parts = append(parts, "Manager: "+m)
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

// managerLine describes the client's responsible manager.
func managerLine(c wire.Call) string {
	switch c.ManagerState {
	case wire.ManagerPending:
		return "looking up…"
	case wire.ManagerNone:
		return "none free"
	case wire.ManagerUnavailable:
		return "CRM not reachable"
	case wire.ManagerOff, "":
		return ""
	}
	m := c.Manager
	if m == nil {
		return ""
	}
	s := m.Name
	if m.Code != "" {
		s += ", ext. " + m.Code
	}
	if m.Free {
		s += " · free"
	} else {
		s += " · not free"
	}
	if m.You {
		s += " · that's you"
	}
	return s
}

func clientName(c wire.Call) string {
	if c.Client != nil && c.Client.Name != "" {
		return c.Client.Name
	}
	if c.Client != nil && c.Client.ID != "" {
		return "Client #" + c.Client.ID
	}
	return "New client"
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
func signinMessage(err error) string {
	switch {
	case errors.Is(err, credentials.ErrNotSignedIn):
		return ""
	case errors.Is(err, credentials.ErrNoKeyring):
		return "The OS keyring can't be reached, so the stored sign-in can't be read: " + err.Error()
	}
	return err.Error()
}

// stopMessage explains a token the relay refused.
func stopMessage(se *agent.StopError) string {
	switch se.Code {
	case wire.CloseBadToken:
		return "The relay does not know this token. Check that you copied it whole, or ask your administrator for a new one."
	case wire.CloseRevoked:
		return "This token was revoked by an administrator. Ask for a new one and sign in again."
	case wire.CloseProtocol:
		return "This version of pult is too old (or too new) for the relay. Install the version your administrator gives you."
	}
	return se.Error()
}

// checkMessage explains why a sign-in attempt failed.
func checkMessage(err error) string {
	var se *agent.StopError
	switch {
	case errors.As(err, &se):
		return stopMessage(se)
	case errors.Is(err, agent.ErrUnreachable):
		return "The relay can't be reached. Check the address and your network; if they are right, the relay may be down: try again in a minute."
	case errors.Is(err, agent.ErrNotRelay):
		return "Something answered at this address, but it is not a pult relay. Check the URL (it looks like https://relay.example.com)."
	case errors.Is(err, credentials.ErrNoKeyring):
		return "The token is right, but the OS keyring can't be reached to keep it: " + err.Error()
	}
	return err.Error()
}

func parseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("%q is not a web address", raw)
	}
	return u, nil
}
