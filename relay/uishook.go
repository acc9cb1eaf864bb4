package relay

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/pult/pult/relay/call"
	"github.com/pult/pult/relay/eventtrace"
	"github.com/pult/pult/relay/retailcrm"
	"github.com/pult/pult/relay/uis"
)

// UIS (CoMagic) HTTP notifications: POST /hooks/uis/{event}, one URL per
// event. They drive the same call records and cards as retailCRM-style call
// events; call_session_id ties a call's notifications together (the call's
// id is "uis-<call_session_id>"), UIS employees are operators by their
// --uis-employee-id:
//
//	incoming_call_started  rings the employees it names; it usually names
//	                       none, and then rings nobody ([uis] ring_unassigned
//	                       rings every operator with a UIS employee id)
//	outgoing_call_started  the employee is dialling out
//	conversation_started   talking for the employee, answered elsewhere for
//	                       the others (an employee without an operator
//	                       answered: answered elsewhere for all)
//	call_finished          ended, or missed when is_lost (or nobody talked);
//	                       it ends the call for every leg
//
// The channel token is the body's ud_channel_token (or token), or ?token=
// in the URL; a missing one is 401, a wrong one 403. A body that cannot be
// used is 400 naming the field. The answer is 200 once the call is stored.

// maxWebhookBody bounds a UIS notification.
const maxWebhookBody = 64 << 10

// UIS's events, as path segments.
var uisEvents = []string{uis.EventIncomingCallStarted, uis.EventOutgoingCallStarted, uis.EventConversationStarted, uis.EventCallFinished}

func (s *Server) handleUIS(w http.ResponseWriter, r *http.Request) {
	received := s.clock()
	ctx, trace := s.trace.Start(r.Context())
	defer s.trace.Finish(trace)
	event := r.PathValue("event")
	if s.cfg.UIS.Token == "" {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "UIS notifications are not set up on this relay ([uis] token)"})
		return
	}
	known := false
	for _, e := range uisEvents {
		known = known || e == event
	}
	if !known {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": fmt.Sprintf("unknown UIS event %q; the URLs end in %s", clipText(event, 64), strings.Join(uisEvents, ", "))})
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxWebhookBody))
	if err != nil {
		writeBodyError(w, err, maxWebhookBody)
		return
	}
	n, perr := uis.Parse(event, body, s.loc)
	token := r.URL.Query().Get("token")
	if token == "" {
		if perr == nil {
			token = n.Token
		} else {
			token = peekUISToken(body)
		}
	}
	switch {
	case token == "":
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "missing channel token: put it in the body (\"ud_channel_token\") or the URL (?token=)"})
		return
	case subtle.ConstantTimeCompare([]byte(token), []byte(s.cfg.UIS.Token)) != 1:
		writeJSON(w, http.StatusForbidden, map[string]string{"error": "wrong channel token"})
		return
	}
	eventtrace.Mark(ctx, eventtrace.Read)
	if perr != nil {
		writeFieldError(w, perr)
		return
	}
	if len(n.Ignored) > 0 {
		s.log.Debug("UIS notification fields ignored", "event", event, "fields", n.Ignored)
	}
	ev := s.uisEvent(n, received)
	trace.SetID(ev.CallID)
	eventtrace.Mark(ctx, eventtrace.Decoded)
	if err := s.calls.processCall(ctx, ev, received); err != nil {
		s.log.Error("UIS notification not stored", "event", event, "err", err)
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "the relay could not store the notification; retry"})
		return
	}
	if s.cfg.RetailCRM.ForwardEvents {
		fwd := s.crmSync.crmEventFor(ev, nil)
		switch {
		case event == uis.EventConversationStarted && ev.Direction != "out" && len(ev.Operators) > 0:
			// retailCRM has no "answered" event; an "in" to whoever answered
			// shows them retailCRM's card of the client.
			fwd.Type = retailcrm.TypeIn
		case ev.Type == call.Answer:
			fwd.Type = ""
		}
		if fwd.Type != "" {
			if err := s.crmSync.forwardCallEvent(r.Context(), fwd); err != nil {
				s.log.Error("UIS call event not queued for retailCRM", "err", err)
				writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "the relay could not store the notification; retry"})
				return
			}
		}
	}
	s.metrics.eventsIn.WithLabelValues("uis").Inc()
	writeJSON(w, http.StatusOK, map[string]bool{"success": true})
}

// uisEvent is a UIS notification in the relay's terms.
func (s *Server) uisEvent(n uis.Notification, received time.Time) call.Event {
	ev := call.Event{
		CallID: "uis-" + n.CallSessionID, Phone: n.ContactPhone, Line: n.VirtualPhone,
		Direction: string(n.Direction), At: received.UTC(), Source: sourceUIS,
	}
	if ev.Phone == "" {
		ev.Phone = n.CallingPhone
		if n.Direction == uis.DirectionOut {
			ev.Phone = n.CalledPhone
		}
	}
	seen := map[string]bool{}
	for _, id := range n.EmployeeIDs {
		if op, ok := s.ops.ByUISEmployee(id); ok && !seen[op.ID] {
			seen[op.ID] = true
			ev.Operators = append(ev.Operators, person(op))
		}
	}
	switch n.Event {
	case uis.EventIncomingCallStarted:
		ev.Type = call.Ring
		if len(ev.Operators) == 0 && s.cfg.UIS.RingUnassigned {
			for _, op := range s.ops.UISOperators() {
				ev.Operators = append(ev.Operators, person(op))
			}
		}
	case uis.EventOutgoingCallStarted:
		ev.Type = call.Out
	case uis.EventConversationStarted:
		ev.Type = call.Answer
		if len(ev.Operators) > 1 {
			ev.Operators = ev.Operators[:1] // employee_id: who talks now
		}
	case uis.EventCallFinished:
		ev.Type, ev.EndsCall = call.Hangup, true
		ev.TalkTime, ev.WaitTime = n.TalkTime, n.WaitTime
		if len(n.RecordURLs) > 0 {
			ev.RecordURL = n.RecordURLs[0]
		}
		if !n.IsLost && (n.TalkTime > 0 || !n.AnswerTime.IsZero()) {
			ev.HangupStatus = retailcrm.HangupAnswered
		} else {
			ev.HangupStatus = retailcrm.HangupNoAnswer
			ev.Operators = nil
		}
	}
	return ev
}

// peekUISToken reads the channel token of a body uis.Parse refused, so
// that the refusal goes only to someone who knows the token.
func peekUISToken(body []byte) string {
	var fields map[string]json.RawMessage
	if json.Unmarshal(body, &fields) == nil {
		for _, k := range []string{"ud_channel_token", "token"} {
			var s string
			if json.Unmarshal(fields[k], &s) == nil && strings.TrimSpace(s) != "" {
				return strings.TrimSpace(s)
			}
		}
		return ""
	}
	// A template filled in without quotes: one "key": value per line.
	for _, line := range bytes.Split(body, []byte("\n")) {
		l := strings.TrimSuffix(strings.TrimSpace(string(line)), ",")
		for _, k := range []string{`"ud_channel_token"`, `"token"`} {
			if v, ok := strings.CutPrefix(l, k); ok {
				if v, ok = strings.CutPrefix(strings.TrimSpace(v), ":"); ok {
					return strings.Trim(strings.TrimSpace(v), `"`)
				}
			}
		}
	}
	return ""
}

// writeFieldError answers 400 with {"error": …, "field": …} for a
// *uis.FieldError, else with the error's text.
func writeFieldError(w http.ResponseWriter, err error) {
	out := map[string]string{"error": err.Error()}
	var fe *uis.FieldError
	if errors.As(err, &fe) && fe.Field != "" {
		out["field"] = fe.Field
	}
	writeJSON(w, http.StatusBadRequest, out)
}

// writeBodyError answers a body that could not be read.
func writeBodyError(w http.ResponseWriter, err error, limit int64) {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		writeJSON(w, http.StatusRequestEntityTooLarge, map[string]string{"error": fmt.Sprintf("body: larger than %d bytes", limit), "field": "body"})
		return
	}
	writeJSON(w, http.StatusBadRequest, map[string]string{"error": "body: could not be read: " + err.Error(), "field": "body"})
}

func clipText(s string, n int) string {
	if r := []rune(strings.ToValidUTF8(s, "?")); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}
