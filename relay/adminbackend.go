package relay

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/pult/pult/agent/wire"
	"github.com/pult/pult/relay/admin"
	"github.com/pult/pult/relay/config"
	"github.com/pult/pult/relay/operators"
	"github.com/pult/pult/relay/outbox"
	"github.com/pult/pult/relay/retailcrm"
)

// adminBackend is the relay as the admin API sees it (admin.Backend).
type adminBackend struct{ s *Server }

func (a adminBackend) Operators() *operators.Registry { return a.s.ops }
func (a adminBackend) Outbox() *outbox.Outbox         { return a.s.outbox }

func (a adminBackend) Presence(ctx context.Context, op operators.Operator) (wire.StatusInfo, int) {
	st, _, _ := a.s.currentStatus(ctx, op)
	return st, a.s.hub.Connected(op.ID)
}

func (a adminBackend) Disconnect(op operators.Operator) {
	a.s.hub.Disconnect(op.ID, wire.CloseRevoked, "token revoked")
}

// crmAdminTimeout bounds an administrator's call to retailCRM.
const crmAdminTimeout = 12 * time.Second

// crmAdmin waits for retailCRM's rate limit before an administrator's call.
func (a adminBackend) crmAdmin(ctx context.Context) (context.Context, context.CancelFunc, error) {
	if a.s.crm == nil {
		return nil, nil, admin.Fail(admin.ErrNotConfigured, "retailCRM is not configured (retailcrm.url)")
	}
	ctx, cancel := context.WithTimeout(ctx, crmAdminTimeout)
	if err := a.s.outbox.Limiter(config.LimitRetailCRM).Wait(ctx); err != nil {
		cancel()
		return nil, nil, admin.Fail(admin.ErrBusy, "retailCRM rate limit: "+err.Error())
	}
	return ctx, cancel, nil
}

func (a adminBackend) RegisterRetailCRM(ctx context.Context) (retailcrm.IntegrationModule, error) {
	if a.s.crm == nil {
		return retailcrm.IntegrationModule{}, admin.Fail(admin.ErrNotConfigured, "retailCRM is not configured (retailcrm.url)")
	}
	m, err := a.s.crmSync.integrationModule()
	if err != nil {
		return m, admin.Fail(admin.ErrNotConfigured, err.Error())
	}
	ctx, cancel, err := a.crmAdmin(ctx)
	if err != nil {
		return m, err
	}
	defer cancel()
	if err := a.s.crm.EditIntegrationModule(ctx, m.Code, m); err != nil {
		return m, admin.Fail(admin.ErrPartner, "retailCRM refused the registration: "+err.Error())
	}
	return m, nil
}

func (a adminBackend) RetailCRMModule(ctx context.Context) (retailcrm.IntegrationModule, error) {
	ctx, cancel, err := a.crmAdmin(ctx)
	if err != nil {
		return retailcrm.IntegrationModule{}, err
	}
	defer cancel()
	m, err := a.s.crm.IntegrationModule(ctx, a.s.cfg.RetailCRM.Code)
	var ae *retailcrm.APIError
	switch {
	case errors.As(err, &ae) && ae.StatusCode == http.StatusNotFound:
		return m, admin.Fail(admin.ErrNotFound, fmt.Sprintf("retailCRM has no integration module %q; run `pult-relay retailcrm register`", a.s.cfg.RetailCRM.Code))
	case err != nil:
		return m, admin.Fail(admin.ErrPartner, "retailCRM: "+err.Error())
	}
	return m, nil
}
