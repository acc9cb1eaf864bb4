package retailcrm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/pult/pult/relay/untrusted"
)

// Manager is a CRM user: the responsible manager of a client.
type Manager struct {
	ID         string
	FirstName  string
	LastName   string
	Patronymic string
	Email      string
	Code       string // extension code
}

// FullName is "LastName FirstName Patronymic" without the missing parts;
// "" for a nil manager.
func (m *Manager) FullName() string {
	if m == nil {
		return ""
	}
	return joinName(m.LastName, m.FirstName, m.Patronymic)
}

// Customer is a client of the shop as the CRM knows them.
type Customer struct {
	ID         string
	ExternalID string
	FirstName  string
	LastName   string
	Patronymic string
	Email      string
	Phones     []string
}

// FullName is "LastName FirstName Patronymic" without the missing parts;
// "" for a nil customer.
func (c *Customer) FullName() string {
	if c == nil {
		return ""
	}
	return joinName(c.LastName, c.FirstName, c.Patronymic)
}

func joinName(parts ...string) string {
	var out []string
	for _, p := range parts {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, " ")
}

// Links are pages of the CRM about the caller.
type Links struct {
	NewOrder    string // newOrderLink
	LastOrder   string // lastOrderLink
	NewCustomer string // newCustomerLink
	Customer    string // customerLink
}

// ManagerResult is the answer of GET /telephony/manager. Manager is nil when
// the client has no responsible manager who is free, logged in and has an
// extension code; Customer is nil when no client has that number.
type ManagerResult struct {
	Manager  *Manager
	Customer *Customer
	Links    Links
}

type managerJSON struct {
	ID         FlexString `json:"id"`
	FirstName  FlexString `json:"firstName"`
	LastName   FlexString `json:"lastName"`
	Patronymic FlexString `json:"patronymic"`
	Email      FlexString `json:"email"`
	Code       FlexString `json:"code"`
}

type customerJSON struct {
	ID         FlexString `json:"id"`
	ExternalID FlexString `json:"externalId"`
	FirstName  FlexString `json:"firstName"`
	LastName   FlexString `json:"lastName"`
	Patronymic FlexString `json:"patronymic"`
	Email      FlexString `json:"email"`
	Phones     []struct {
		Number FlexString `json:"number"`
	} `json:"phones"`
}

type linksJSON struct {
	NewOrder    FlexString `json:"newOrderLink"`
	LastOrder   FlexString `json:"lastOrderLink"`
	NewCustomer FlexString `json:"newCustomerLink"`
	Customer    FlexString `json:"customerLink"`
}

type managerResponse struct {
	Manager  json.RawMessage `json:"manager"`
	Customer json.RawMessage `json:"customer"`
	Links    json.RawMessage `json:"links"`
}

// Manager asks retailCRM for the responsible manager of the client with this
// phone number, whatever the manager's status, with details (the client and
// links): GET /api/v5/telephony/manager?phone=…&details=1&ignoreStatus=1.
// The caller judges whether the manager can take the call. No manager is not
// an error, and neither is a number retailCRM does not know (it answers 404
// "Not found"): both are a result without a Manager.
func (c *Client) Manager(ctx context.Context, phone string) (*ManagerResult, error) {
	phone = strings.TrimSpace(phone)
	if err := checkText("phone", phone, MaxPhoneLen, true); err != nil {
		return nil, fmt.Errorf("retailcrm: manager: %w", err)
	}
	var raw managerResponse
	q := url.Values{"phone": {phone}, "details": {"1"}, "ignoreStatus": {"1"}}
	if err := c.do(ctx, http.MethodGet, "/telephony/manager", q, &raw); err != nil {
		var apiErr *APIError
		if errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusNotFound && apiErr.Msg == MsgNotFound {
			return &ManagerResult{}, nil
		}
		return nil, err
	}
	return raw.result()
}

func (r *managerResponse) result() (*ManagerResult, error) {
	var res ManagerResult
	var m managerJSON
	if ok, err := optionalObject(r.Manager, &m); err != nil {
		return nil, fmt.Errorf("%w: manager: %v", ErrBadResponse, err)
	} else if ok && m != (managerJSON{}) {
		res.Manager = &Manager{
			ID: string(m.ID), FirstName: string(m.FirstName), LastName: string(m.LastName),
			Patronymic: string(m.Patronymic), Email: string(m.Email), Code: string(m.Code),
		}
	}
	var cu customerJSON
	if ok, err := optionalObject(r.Customer, &cu); err != nil {
		return nil, fmt.Errorf("%w: customer: %v", ErrBadResponse, err)
	} else if ok {
		c := &Customer{
			ID: string(cu.ID), ExternalID: string(cu.ExternalID), FirstName: string(cu.FirstName),
			LastName: string(cu.LastName), Patronymic: string(cu.Patronymic), Email: string(cu.Email),
		}
		for _, p := range cu.Phones {
			if p.Number != "" {
				c.Phones = append(c.Phones, string(p.Number))
			}
		}
		if c.ID != "" || c.ExternalID != "" || c.FullName() != "" || c.Email != "" || len(c.Phones) > 0 {
			res.Customer = c
		}
	}
	var l linksJSON
	if _, err := optionalObject(r.Links, &l); err != nil {
		return nil, fmt.Errorf("%w: links: %v", ErrBadResponse, err)
	}
	res.Links = Links{
		NewOrder: string(l.NewOrder), LastOrder: string(l.LastOrder),
		NewCustomer: string(l.NewCustomer), Customer: string(l.Customer),
	}
	return &res, nil
}

// optionalObject decodes an object into v. Absence, null, false, "" and an
// empty array (PHP's empty "object") mean nothing is there.
func optionalObject(b json.RawMessage, v any) (bool, error) {
	b = bytes.TrimSpace(b)
	switch string(b) {
	case "", "null", "false", `""`, "[]":
		return false, nil
	}
	if b[0] == '[' {
		// "[ ]" and friends.
		var l []json.RawMessage
		if json.Unmarshal(b, &l) == nil && len(l) == 0 {
			return false, nil
		}
	}
	if b[0] != '{' {
		return false, fmt.Errorf("want an object, got %s", untrusted.JSONKind(b))
	}
	if err := json.Unmarshal(b, v); err != nil {
		return false, err
	}
	return true, nil
}
