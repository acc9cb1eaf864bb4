package relay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/pult/pult/agent/phone"
	"github.com/pult/pult/agent/wire"
	"github.com/pult/pult/relay/calltouch"
	"github.com/pult/pult/relay/config"
	"github.com/pult/pult/relay/operators"
)

// Callbacks through Calltouch (wire.TypeCallback requests).
//
// Like click-to-call, a callback is a direct call, not an outbox job: the
// operator waits for the answer, and Calltouch's API takes no idempotency
// key, so a retry minutes later could ring the client twice. It keeps the
// short [calltouch] timeout and reports failure at once, in plain words.
// It still spends the shared "calltouch" budget ([outbox.rate_limits]):
// when the budget would make the operator wait past the deadline, the
// request is refused rather than queued. A request re-sent with the same
// id gets the first answer (HandleRequest), so Calltouch is asked once.

// Calltouch field names for what the operator adds.
const (
	ctFieldNote     = "Комментарий" // the operator's note
	ctFieldOperator = "Оператор"    // who ordered the callback
)

func (s *Server) requestCallback(ctx context.Context, op operators.Operator, data json.RawMessage) (string, any) {
	var req wire.Callback
	if err := decodeStrict(data, &req); err != nil {
		return wire.TypeError, &wire.Error{Code: wire.ErrBadRequest, Message: err.Error()}
	}
	res, werr := s.orderCallback(ctx, op, req)
	if werr != nil {
		return wire.TypeError, werr
	}
	return wire.TypeReply, res
}

func (s *Server) orderCallback(ctx context.Context, op operators.Operator, cb wire.Callback) (wire.CallbackResult, *wire.Error) {
	n, err := phone.Parse(cb.Phone, s.cfg.PhoneRegion)
	if err != nil {
		return wire.CallbackResult{}, &wire.Error{Code: wire.ErrInvalidNumber, Message: err.Error()}
	}
	if s.ct == nil {
		return wire.CallbackResult{}, &wire.Error{Code: wire.ErrNotConfigured, Message: "callbacks are not set up on the relay (calltouch.token and calltouch.route_key)"}
	}
	req := calltouch.Request{Phone: phone.Digits(n.E164)}
	if name := strings.TrimSpace(op.Name); name != "" {
		req.Fields = append(req.Fields, calltouch.Field{Name: ctFieldOperator, Value: clipRunes(name, calltouch.MaxFieldLen)})
	}
	if note := strings.Join(strings.Fields(cb.Note), " "); note != "" {
		req.Fields = append(req.Fields, calltouch.Field{Name: ctFieldNote, Value: clipRunes(note, calltouch.MaxFieldLen)})
	}
	var at *time.Time
	if cb.At != nil && cb.At.After(time.Now().Add(time.Minute)) {
		t := cb.At.UTC()
		req.ScheduleTime, at = &t, &t
	}
	if err := req.Validate(); err != nil {
		return wire.CallbackResult{}, callbackRefusal(err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Calltouch.Timeout.Duration)
	defer cancel()
	if lim := s.outbox.Limiter(config.LimitCalltouch); lim != nil {
		if err := lim.Wait(ctx); err != nil {
			return wire.CallbackResult{}, &wire.Error{Code: wire.ErrPBXUnreachable,
				Message: "too many callback requests at once (Calltouch allows 5 a second); try again in a moment"}
		}
	}
	start := time.Now()
	res, err := s.ct.Create(ctx, req)
	// 429: Calltouch counts its 5 a second by its own clock, which ours
	// can miss by a hair; it did nothing, so one more try within the
	// deadline is safe.
	var ae *calltouch.APIError
	if errors.As(err, &ae) && ae.Status == http.StatusTooManyRequests {
		wait := max(ae.RetryAfterDur, 300*time.Millisecond)
		if dl, ok := ctx.Deadline(); !ok || time.Until(dl) > wait+200*time.Millisecond {
			select {
			case <-ctx.Done():
			case <-time.After(wait):
				if lim := s.outbox.Limiter(config.LimitCalltouch); lim == nil || lim.Wait(ctx) == nil {
					res, err = s.ct.Create(ctx, req)
				}
			}
		}
	}
	if err != nil {
		s.log.Warn("calltouch refused a callback", "operator", op.ID, "err", err)
		return wire.CallbackResult{}, callbackRefusal(err)
	}
	s.metrics.eventsIn.WithLabelValues("callback").Inc()
	s.log.Info("callback ordered", "operator", op.ID, "request", res.WidgetRequestID, "took", time.Since(start).Round(time.Millisecond))
	return wire.CallbackResult{Phone: n.E164, Display: n.National, At: at}, nil
}

// callbackRefusal says what went wrong, for the operator.
func callbackRefusal(err error) *wire.Error {
	var ve *calltouch.ValidationError
	var ae *calltouch.APIError
	switch {
	case errors.As(err, &ve):
		code := wire.ErrBadRequest
		if ve.Field == "phone" {
			code = wire.ErrInvalidNumber
		}
		return &wire.Error{Code: code, Message: ve.Msg}
	case errors.As(err, &ae):
		code := wire.ErrPBXRefused
		switch {
		case ae.Code == calltouch.CodeInvalidPhone:
			code = wire.ErrInvalidNumber
		case ae.Temporary():
			code = wire.ErrPBXUnreachable
		}
		msg, status := ae.OperatorMessage(), 0
		if ae.Temporary() {
			msg, status = fmt.Sprintf("Calltouch is unavailable right now (HTTP %d); the callback was not ordered", ae.Status), ae.Status
		}
		return &wire.Error{Code: code, Message: msg, HTTPStatus: status, Reason: calltouchReason(ae.Code)}
	case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
		return &wire.Error{Code: wire.ErrPBXTimeout, Message: "Calltouch did not answer in time; the callback may or may not have been ordered"}
	case errors.Is(err, calltouch.ErrBadResponse):
		return &wire.Error{Code: wire.ErrPBXRefused, Message: "Calltouch's answer was not understood; the callback may or may not have been ordered"}
	}
	return &wire.Error{Code: wire.ErrPBXUnreachable, Message: "Calltouch could not be reached; the callback was not ordered"}
}

// calltouchReason is the wire's name for a Calltouch refusal an operator
// can act on, or "".
func calltouchReason(code int) string {
	switch code {
	case calltouch.CodeNoMinutes:
		return wire.ReasonNoMinutes
	case calltouch.CodeServiceOff:
		return wire.ReasonServiceOff
	case calltouch.CodeSessionLimit, calltouch.CodePhoneLimit, calltouch.CodeTooFrequent:
		return wire.ReasonAlreadyRequested
	}
	return ""
}

func clipRunes(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n])
	}
	return s
}
