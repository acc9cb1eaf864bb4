package retailcrm

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/pult/pult/relay/untrusted"
)

// RetryDelay is how long retailCRM asked to wait (the RetryAfter field).
// APIError and ValidationError are partner.Errors.
func (e *APIError) RetryDelay() time.Duration { return e.RetryAfter }

// Temporary is false: input retailCRM refuses is refused every time.
func (e *ValidationError) Temporary() bool { return false }

// RetryDelay is 0: there is nothing to wait for.
func (e *ValidationError) RetryDelay() time.Duration { return 0 }

// PartnerMessage is the refusal, naming the field.
func (e *ValidationError) PartnerMessage() string { return e.Error() }

// EditIntegrationModule registers the telephony, or updates it when a module
// with this code exists: POST /api/v5/integration-modules/{code}/edit with
// integrationModule=<json>. m.Code, when set, must equal code; when empty it
// is taken from code.
func (c *Client) EditIntegrationModule(ctx context.Context, code string, m IntegrationModule) error {
	if err := checkModuleCode("code", code); err != nil {
		return fmt.Errorf("retailcrm: edit integration module: %w", err)
	}
	if m.Code == "" {
		m.Code = code
	}
	if m.Code != code {
		return fmt.Errorf("retailcrm: edit integration module: %w",
			invalid("integrationModule.code", "is %q but the URL says %q", m.Code, code))
	}
	form, err := EncodeIntegrationModule(m)
	if err != nil {
		return fmt.Errorf("retailcrm: edit integration module: %w", err)
	}
	return c.do(ctx, http.MethodPost, "/integration-modules/"+code+"/edit", form, nil)
}

// IntegrationModule reads a registration back: GET
// /api/v5/integration-modules/{code}. An unknown code is an *APIError (404).
func (c *Client) IntegrationModule(ctx context.Context, code string) (IntegrationModule, error) {
	if err := checkModuleCode("code", code); err != nil {
		return IntegrationModule{}, fmt.Errorf("retailcrm: integration module: %w", err)
	}
	var raw struct {
		IntegrationModule json.RawMessage `json:"integrationModule"`
	}
	if err := c.do(ctx, http.MethodGet, "/integration-modules/"+code, nil, &raw); err != nil {
		return IntegrationModule{}, err
	}
	var m IntegrationModule
	if ok, err := optionalObject(raw.IntegrationModule, &m); err != nil {
		return IntegrationModule{}, fmt.Errorf("%w: integrationModule: %v", ErrBadResponse, err)
	} else if !ok {
		return IntegrationModule{}, fmt.Errorf("%w: the answer has no integrationModule", ErrBadResponse)
	}
	return m, nil
}

// UploadResult is the answer of calls/upload.
type UploadResult struct {
	Processed int // processedCallsCount: calls stored now
	// Duplicates (duplicateCalls) are calls retailCRM already had, by
	// externalId: they were delivered before, so a retried upload is safe.
	Duplicates []string
}

// UploadCalls sends call history: POST /api/v5/telephony/calls/upload with
// calls=<json>, 1 to MaxUploadCalls (50) calls, each valid; more are refused
// before anything is sent. Calls retailCRM reports as duplicates count as
// delivered.
func (c *Client) UploadCalls(ctx context.Context, calls []UploadCall) (UploadResult, error) {
	form, err := EncodeCallsUpload(calls)
	if err != nil {
		return UploadResult{}, fmt.Errorf("retailcrm: upload calls: %w", err)
	}
	var raw struct {
		Processed  json.RawMessage `json:"processedCallsCount"`
		Duplicates json.RawMessage `json:"duplicateCalls"`
	}
	if err := c.do(ctx, http.MethodPost, "/telephony/calls/upload", form, &raw); err != nil {
		return UploadResult{}, err
	}
	var res UploadResult
	if res.Processed, err = jsonInt("processedCallsCount", raw.Processed, MaxUploadCalls); err != nil {
		return UploadResult{}, fmt.Errorf("%w: %v", ErrBadResponse, err)
	}
	if res.Duplicates, err = answerList("duplicateCalls", raw.Duplicates); err != nil {
		return UploadResult{}, fmt.Errorf("%w: %v", ErrBadResponse, err)
	}
	return res, nil
}

// CallEventResult is the answer of call/event: the codes and users of the
// event the CRM does not know.
type CallEventResult struct {
	NotExistCodes []string
	NotExistUsers []string
}

// SendCallEvent tells retailCRM about a call: POST
// /api/v5/telephony/call/event with event=<json>. An "in" event shows
// retailCRM's call card to the users with those codes. pult's TypeAnswer is
// refused before sending.
func (c *Client) SendCallEvent(ctx context.Context, ev CallEvent) (CallEventResult, error) {
	form, err := EncodeCallEvent(ev)
	if err != nil {
		return CallEventResult{}, fmt.Errorf("retailcrm: call event: %w", err)
	}
	var raw struct {
		NotExistCodes json.RawMessage `json:"notExistCodes"`
		NotExistUsers json.RawMessage `json:"notExistUsers"`
	}
	if err := c.do(ctx, http.MethodPost, "/telephony/call/event", form, &raw); err != nil {
		return CallEventResult{}, err
	}
	var res CallEventResult
	if res.NotExistCodes, err = answerList("notExistCodes", raw.NotExistCodes); err != nil {
		return CallEventResult{}, fmt.Errorf("%w: %v", ErrBadResponse, err)
	}
	if res.NotExistUsers, err = answerList("notExistUsers", raw.NotExistUsers); err != nil {
		return CallEventResult{}, fmt.Errorf("%w: %v", ErrBadResponse, err)
	}
	return res, nil
}

// SetUserStatus sets a CRM user's status: POST /api/v5/users/{id}/status
// with status=free|busy|dinner|break.
func (c *Client) SetUserStatus(ctx context.Context, userID, status string) error {
	userID = strings.TrimSpace(userID)
	if userID == "" || len(userID) > 18 || strings.Trim(userID, "0123456789") != "" {
		return fmt.Errorf("retailcrm: user status: %w", invalid("id", "must be a numeric user id, not %q", untrusted.Truncate(userID, 32)))
	}
	if err := oneOf("status", status, StatusFree, StatusBusy, StatusDinner, StatusBreak); err != nil {
		return fmt.Errorf("retailcrm: user status: %w", err)
	}
	return c.do(ctx, http.MethodPost, "/users/"+userID+"/status", url.Values{"status": {status}}, nil)
}

// answerList reads a list of ids or codes from an answer; PHP's empty
// "object" ({} or []) and absence are an empty list.
func answerList(field string, b json.RawMessage) ([]string, error) {
	var obj map[string]json.RawMessage
	if len(b) > 0 && b[0] == '{' {
		// {"0":"100","1":"101"}: a PHP array with holes.
		if err := json.Unmarshal(b, &obj); err != nil {
			return nil, fmt.Errorf("%s: %v", field, err)
		}
		out := make([]string, 0, len(obj))
		for _, k := range sortedKeys(obj) {
			s, err := jsonString(field, obj[k], true)
			if err != nil {
				return nil, err
			}
			out = append(out, s)
		}
		return out, nil
	}
	return jsonList(field, b, 1<<16)
}

func sortedKeys(m map[string]json.RawMessage) []string {
	keys := slices.Collect(maps.Keys(m))
	// Numeric keys in numeric order, before the others.
	slices.SortFunc(keys, func(a, b string) int {
		an, bn := strings.Trim(a, "0123456789") == "", strings.Trim(b, "0123456789") == ""
		switch {
		case an && bn && len(a) != len(b):
			return cmp.Compare(len(a), len(b))
		case an != bn && an:
			return -1
		case an != bn:
			return 1
		}
		return strings.Compare(a, b)
	})
	return keys
}
