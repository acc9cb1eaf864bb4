package relay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/pult/pult/agent/phone"
	"github.com/pult/pult/agent/wire"
	"github.com/pult/pult/relay/hub"
	"github.com/pult/pult/relay/operators"
	"github.com/pult/pult/relay/partner"
	"github.com/pult/pult/relay/retailcrm"
)

// HandleRequest answers one agent request (hub.Handler). A request id seen
// before gets the answer it got then.
func (s *Server) HandleRequest(ctx context.Context, wop wire.Operator, typ, id string, data json.RawMessage) (string, any) {
	op, ok := s.ops.Lookup(wop.ID)
	if !ok || op.Revoked() {
		return wire.TypeError, &wire.Error{Code: wire.ErrForbidden, Message: "operator revoked"}
	}
	switch typ {
	case wire.TypeSetStatus, wire.TypeDial, wire.TypeCallback, wire.TypeOperatorStatusSet:
	case wire.TypeQueueSubscribe, wire.TypeQueueUnsubscribe:
		// Not remembered by id: a subscription is for this session only,
		// and a re-sent subscribe wants a fresh snapshot.
		return s.requestQueue(ctx, op, typ, id)
	default:
		return wire.TypeError, &wire.Error{Code: wire.ErrBadRequest, Message: fmt.Sprintf("unknown request type %q", typ)}
	}
	if b, err := s.store.LoadReply(ctx, op.ID, id); err == nil && b != nil {
		var saved savedReply
		if json.Unmarshal(b, &saved) == nil {
			return saved.Type, saved.Data
		}
	}
	if werr := s.refuseRequestWhenFull(); werr != nil {
		return wire.TypeError, werr // not remembered: the same id later may succeed
	}
	var rtyp string
	var out any
	switch typ {
	case wire.TypeSetStatus:
		rtyp, out = s.requestStatus(ctx, op, data)
	case wire.TypeDial:
		rtyp, out = s.requestDial(ctx, op, data)
	case wire.TypeCallback:
		rtyp, out = s.requestCallback(ctx, op, data)
	case wire.TypeOperatorStatusSet:
		rtyp, out = s.requestOperatorStatus(ctx, op, data)
	}
	if ctx.Err() == nil && final(rtyp, out) {
		b, _ := json.Marshal(out)
		saved, _ := json.Marshal(savedReply{Type: rtyp, Data: b})
		if err := s.store.SaveReply(ctx, op.ID, id, saved); err != nil {
			s.log.Warn("could not remember request id", "operator", op.ID, "err", err)
		}
	}
	return rtyp, out
}

// final reports whether an answer is the request's last word, to be given
// again to the same id: not a failure after which nothing was done and the
// same request may succeed when sent again (the store or the PBX was out
// of reach). An answer of unknown outcome (a timeout) is final: sending the
// request again could place the same call twice.
func final(typ string, out any) bool {
	if e, ok := out.(*wire.Error); ok && typ == wire.TypeError {
		switch e.Code {
		case wire.ErrInternal, wire.ErrPBXUnreachable, wire.ErrUnavailable, wire.ErrRateLimited:
			return false
		}
	}
	return true
}

type savedReply struct {
	Type string          `json:"type"`
	Data json.RawMessage `json:"data"`
}

func decodeStrict(data json.RawMessage, v any) error {
	if len(data) == 0 {
		return errors.New("missing data")
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("malformed data: %v", err)
	}
	return nil
}

func (s *Server) requestStatus(ctx context.Context, op operators.Operator, data json.RawMessage) (string, any) {
	var req wire.SetStatus
	if err := decodeStrict(data, &req); err != nil {
		return wire.TypeError, &wire.Error{Code: wire.ErrBadRequest, Message: err.Error()}
	}
	if !req.Status.Valid() {
		return wire.TypeError, &wire.Error{Code: wire.ErrInvalidStatus, Message: fmt.Sprintf("unknown status %q (want free, busy, dinner or break)", req.Status)}
	}
	at := req.At
	if at.IsZero() {
		at = s.clock() // once: a retry below is the same change
	}
	var st wire.StatusInfo
	err := storeRetry(ctx, func() (err error) {
		st, err = s.applyStatus(ctx, op, req.Status, at, sourceAgent)
		return err
	})
	if err != nil {
		s.log.Error("status change failed", "operator", op.ID, "err", err)
		return wire.TypeError, &wire.Error{Code: wire.ErrInternal, Message: "the relay could not store the status; try again"}
	}
	return wire.TypeReply, st
}

// requestQueue subscribes a supervisor's session to the queue board (the
// snapshot is the reply, queued by the board itself so that no delta
// overtakes it) or ends the subscription.
func (s *Server) requestQueue(ctx context.Context, op operators.Operator, typ, id string) (string, any) {
	if op.Role != wire.RoleSupervisor {
		return wire.TypeError, &wire.Error{Code: wire.ErrForbidden, Message: "the queue board is for supervisors; this operator is not one"}
	}
	peer, ok := hub.PeerFrom(ctx)
	if !ok {
		return wire.TypeError, &wire.Error{Code: wire.ErrInternal, Message: "no session to send the board to"}
	}
	if typ == wire.TypeQueueUnsubscribe {
		s.board.UnsubscribeWS(peer)
		return wire.TypeReply, nil
	}
	if err := s.board.SubscribeWS(peer, id); err != nil {
		return wire.TypeError, &wire.Error{Code: wire.ErrInternal, Message: "the queue board is not available: " + err.Error()}
	}
	return hub.NoReply, nil
}

// requestOperatorStatus is a supervisor setting another operator's status,
// through the same path as the operator's own change: the status store,
// the operator's stream (their tray), the PBX and the CRM.
func (s *Server) requestOperatorStatus(ctx context.Context, sup operators.Operator, data json.RawMessage) (string, any) {
	if sup.Role != wire.RoleSupervisor {
		return wire.TypeError, &wire.Error{Code: wire.ErrForbidden, Message: "only a supervisor can set another operator's status"}
	}
	var req wire.OperatorStatus
	if err := decodeStrict(data, &req); err != nil {
		return wire.TypeError, &wire.Error{Code: wire.ErrBadRequest, Message: err.Error()}
	}
	if !req.Status.Valid() {
		return wire.TypeError, &wire.Error{Code: wire.ErrInvalidStatus, Message: fmt.Sprintf("unknown status %q (want free, busy, dinner or break)", req.Status)}
	}
	target, ok := s.ops.Lookup(req.OperatorID)
	if !ok || req.OperatorID == "" || !target.Role.Agent() {
		return wire.TypeError, &wire.Error{Code: wire.ErrBadRequest, Message: fmt.Sprintf("there is no operator %q (give the operator's id or extension code)", clipText(req.OperatorID, 64))}
	}
	if target.Revoked() {
		return wire.TypeError, &wire.Error{Code: wire.ErrBadRequest, Message: fmt.Sprintf("operator %s (%s) has been revoked", target.Code, target.Name)}
	}
	at := s.clock()
	var st wire.StatusInfo
	err := storeRetry(ctx, func() (err error) {
		st, err = s.applyStatus(ctx, target, req.Status, at, sourceSupervisor)
		return err
	})
	if err != nil {
		s.log.Error("status change by a supervisor failed", "operator", target.ID, "supervisor", sup.ID, "err", err)
		return wire.TypeError, &wire.Error{Code: wire.ErrInternal, Message: "the relay could not store the status; try again"}
	}
	s.log.Info("status set by a supervisor", "operator", target.ID, "supervisor", sup.ID, "status", req.Status)
	return wire.TypeReply, st
}

func (s *Server) requestDial(ctx context.Context, op operators.Operator, data json.RawMessage) (string, any) {
	var req wire.Dial
	if err := decodeStrict(data, &req); err != nil {
		return wire.TypeError, &wire.Error{Code: wire.ErrBadRequest, Message: err.Error()}
	}
	res, werr := s.placeCall(ctx, op, req.Phone, req.ExternalPhone)
	if werr != nil {
		return wire.TypeError, werr
	}
	return wire.TypeReply, res
}

// placeCall asks the PBX to start a call from an operator's extension, as
// retailCRM calls makeCallUrl. Only HTTP 200 is success. It is a direct call
// with the short [pbx] timeout, not an outbox job, on purpose: the operator
// is waiting, and a call placed by a retry minutes later would ring a
// customer nobody expects; failure is reported at once instead.
func (s *Server) placeCall(ctx context.Context, op operators.Operator, number, external string) (wire.DialResult, *wire.Error) {
	n, err := phone.Parse(number, s.cfg.PhoneRegion)
	if err != nil {
		return wire.DialResult{}, &wire.Error{Code: wire.ErrInvalidNumber, Message: err.Error()}
	}
	if external != "" {
		e, err := phone.Parse(external, s.cfg.PhoneRegion)
		if err != nil {
			return wire.DialResult{}, &wire.Error{Code: wire.ErrInvalidNumber, Message: "external number: " + err.Error()}
		}
		external = e.E164
	}
	if s.cfg.PBX.MakeCallURL == "" {
		return wire.DialResult{}, &wire.Error{Code: wire.ErrNotConfigured, Message: "click-to-call is not set up on the relay (pbx.make_call_url)"}
	}
	q := retailcrm.MakeCall{ClientID: s.cfg.PBX.ClientID, Code: op.Code, Phone: n.E164, UserID: op.UserID, ExternalPhone: external}.Query()
	u, err := retailcrm.BuildURL(s.cfg.PBX.MakeCallURL, q)
	if err != nil {
		return wire.DialResult{}, &wire.Error{Code: wire.ErrNotConfigured, Message: "pbx.make_call_url is not usable: " + err.Error()}
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.PBX.Timeout.Duration)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	start := time.Now()
	resp, err := s.pbx.Do(req)
	if err != nil {
		if ctx.Err() != nil || isTimeout(err) {
			return wire.DialResult{}, &wire.Error{Code: wire.ErrPBXTimeout, Message: fmt.Sprintf("the PBX did not answer within %s; the call was not confirmed", s.cfg.PBX.Timeout.Duration)}
		}
		s.log.Warn("pbx make-call failed", "operator", op.ID, "err", partner.TransportError(err))
		return wire.DialResult{}, &wire.Error{Code: wire.ErrPBXUnreachable, Message: "the PBX could not be reached; the call was not placed"}
	}
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable:
		// The PBX (or its proxy) turned the request away: no call. A 500
		// or a 504 may come after the PBX started one, so they stay refusals.
		return wire.DialResult{}, &wire.Error{Code: wire.ErrPBXUnreachable, Message: fmt.Sprintf("the PBX is unavailable right now (HTTP %d %s); the call was not placed", resp.StatusCode, http.StatusText(resp.StatusCode)), HTTPStatus: resp.StatusCode}
	}
	if resp.StatusCode != http.StatusOK {
		return wire.DialResult{}, &wire.Error{Code: wire.ErrPBXRefused, Message: fmt.Sprintf("the PBX refused the call (HTTP %d %s)", resp.StatusCode, http.StatusText(resp.StatusCode)), HTTPStatus: resp.StatusCode}
	}
	s.log.Info("call placed", "operator", op.ID, "took", time.Since(start).Round(time.Millisecond))
	return wire.DialResult{Phone: n.E164, Display: n.National}, nil
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

// storeOutage is how long an agent's request keeps trying while the store
// fails: in a JetStream cluster, a stream whose leader was on a node that
// died is unavailable until its replicas elect another (seconds). The agent
// drops a change answered with an error, so it is worth waiting for.
const storeOutage = 20 * time.Second

// storeRetry runs f until it succeeds, ctx ends or storeOutage has passed,
// waiting a little more between tries; f must be safe to repeat.
func storeRetry(ctx context.Context, f func() error) error {
	deadline := time.Now().Add(storeOutage)
	wait := 200 * time.Millisecond
	for {
		err := f()
		if err == nil || ctx.Err() != nil || time.Now().Add(wait).After(deadline) {
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		wait = min(2*wait, 2*time.Second)
	}
}
