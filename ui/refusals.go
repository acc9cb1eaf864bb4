package ui

import (
	"context"
	"errors"

	"github.com/pult/pult/agent"
	"github.com/pult/pult/agent/phone"
	"github.com/pult/pult/agent/wire"
)

// Why something the operator asked for did not happen, in the app's
// language. The relay's refusals carry a code (wire.Error.Code, Reason,
// HTTPStatus) and English for people; the app says a code it knows in its
// own words and shows the relay's English only for a code it does not.
// Errors from the agent itself (offline, no reply) are told apart by their
// sentinels; anything else gets a plain "it failed", and its text goes to
// the log only.

// relayError explains a refusal any request may get.
func (w *words) relayError(e *wire.Error) string {
	switch e.Code {
	case wire.ErrBadRequest:
		return w.T("relay.badRequest")
	case wire.ErrInvalidStatus:
		return w.T("relay.invalidStatus")
	case wire.ErrForbidden:
		return w.T("relay.forbidden")
	case wire.ErrInternal:
		return w.T("relay.internal")
	case wire.ErrUnavailable:
		return w.T("relay.unavailable")
	case wire.ErrRateLimited:
		return w.T("relay.rateLimited")
	case wire.ErrNotConfigured:
		return w.T("relay.notConfigured")
	}
	if e.Message != "" {
		return e.Message // a code newer than this app
	}
	return w.T("relay.refused", "Code", e.Code)
}

// requestError explains why a request to the relay failed: its refusal, no
// connection, no answer, or (said plainly) anything else.
func (w *words) requestError(err error) string {
	var werr *wire.Error
	switch {
	case errors.As(err, &werr):
		return w.relayError(werr)
	case errors.Is(err, agent.ErrOffline), errors.Is(err, errNotSignedIn), errors.Is(err, agent.ErrUnreachable):
		return w.T("relay.offline")
	case errors.Is(err, agent.ErrNoReply), errors.Is(err, context.DeadlineExceeded):
		return w.T("relay.noReply")
	}
	return w.T("relay.failed")
}

// dialError says why a call was not placed: a dial's answer, or the reason
// of a dial_failed notice.
func (w *words) dialError(err error) string {
	var werr *wire.Error
	switch {
	case errors.As(err, &werr):
		switch werr.Code {
		case wire.ErrInvalidNumber:
			return w.T("dial.invalidNumber")
		case wire.ErrPBXRefused:
			if werr.HTTPStatus != 0 {
				return w.T("dial.pbxRefusedHTTP", "Status", werr.HTTPStatus)
			}
			return w.T("dial.pbxRefused")
		case wire.ErrPBXUnreachable:
			return w.T("dial.pbxUnreachable")
		case wire.ErrPBXTimeout:
			return w.T("dial.pbxTimeout")
		case wire.ErrNotConfigured:
			return w.T("dial.notConfigured")
		}
		return w.relayError(werr)
	case errors.Is(err, agent.ErrOffline), errors.Is(err, errNotSignedIn):
		return w.T("dial.offline")
	case errors.Is(err, agent.ErrNoReply):
		return w.T("dial.noReply")
	}
	return w.T("dial.notPlaced")
}

// dialFailed says why a call the CRM asked for (a dial_failed notice) was
// not placed; the relay's English only from a relay that gives no code.
func (w *words) dialFailed(n wire.Notice, region string) string {
	if n.Error == nil {
		return n.Text
	}
	if n.Phone == "" {
		return w.dialError(n.Error)
	}
	return w.T("notify.dialFailed", "Number", phone.Display(n.Phone, region), "Reason", w.dialError(n.Error))
}

// callbackError says why a callback was not ordered.
func (w *words) callbackError(err error) string {
	var werr *wire.Error
	switch {
	case errors.As(err, &werr):
		switch werr.Code {
		case wire.ErrInvalidNumber:
			return w.T("callback.invalidNumber")
		case wire.ErrPBXRefused:
			switch werr.Reason {
			case wire.ReasonNoMinutes:
				return w.T("callback.noMinutes")
			case wire.ReasonServiceOff:
				return w.T("callback.serviceOff")
			case wire.ReasonAlreadyRequested:
				return w.T("callback.alreadyRequested")
			}
			return w.T("callback.refused")
		case wire.ErrPBXUnreachable:
			return w.T("callback.unreachable")
		case wire.ErrPBXTimeout:
			return w.T("callback.timeout")
		case wire.ErrNotConfigured:
			return w.T("callback.notConfigured")
		}
		return w.T("callback.notOrdered", "Reason", w.relayError(werr))
	case errors.Is(err, agent.ErrOffline):
		return w.T("callback.offline")
	case errors.Is(err, agent.ErrNoReply):
		return w.T("callback.noReply")
	}
	return w.T("callback.notOrdered", "Reason", w.requestError(err))
}

// transcriptRefusal says why the relay did not take a transcript.
func (w *words) transcriptRefusal(e *wire.Error) string {
	switch e.Code {
	case wire.ErrBadRequest:
		// The relay says what in the chat it could not read: the detail
		// is its English, as it names the chat's own lines.
		return w.T("transcript.unreadable", "Detail", e.Message)
	case wire.ErrNotConfigured:
		return w.T("transcript.notConfigured")
	case wire.ErrRateLimited:
		return w.T("transcript.rateLimited")
	}
	return w.T("transcript.notAccepted", "Reason", w.relayError(e))
}

// transcriptReason says why a transcript was not delivered, short enough
// for a line of the list. The QA platform's answer, its own words, is
// quoted as it came.
func (w *words) transcriptReason(st wire.TranscriptState) string {
	switch {
	case st.ReasonCode == wire.TranscriptGaveUp:
		return w.T("transcript.gaveUp")
	case st.Reason == "":
		return w.T("transcript.refused")
	}
	return w.T("transcript.refusedWith", "Answer", st.Reason)
}
