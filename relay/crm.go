package relay

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/pult/pult/agent/phone"
	"github.com/pult/pult/agent/wire"
	"github.com/pult/pult/relay/call"
	"github.com/pult/pult/relay/config"
	"github.com/pult/pult/relay/operators"
	"github.com/pult/pult/relay/outbox"
	"github.com/pult/pult/relay/retailcrm"
	"github.com/pult/pult/relay/store"
)

// What the relay tells retailCRM on its own initiative, all through the
// outbox: call events ([retailcrm] forward_events), operators' statuses
// ([retailcrm] sync_status) and the call history (uploads.go). Registering
// the telephony is an administrator's command (handleCRMRegister).

const (
	jobCRMEvent  = "retailcrm.event"
	jobCRMStatus = "retailcrm.status"
)

// crmSync is what the relay tells retailCRM on its own: call events,
// statuses and the call history, all through the outbox, and the telephony's
// registration. Nil without retailCRM. The outbox's workers run its jobs;
// the call-history batcher (runUploads) is a part of the server's group.
type crmSync struct {
	cfg     *config.Config
	log     *slog.Logger
	store   *store.Store
	crm     *retailcrm.Client
	ops     *operators.Registry
	outbox  *outbox.Outbox
	calls   *calls
	metrics *metrics
	loc     *time.Location
	sites   map[string]string // E.164 external phone → site code
	// currentStatus is an operator's status as stored.
	currentStatus func(context.Context, operators.Operator) (wire.StatusInfo, uint64, error)
}

// crmEventJob is the payload of a call/event job.
type crmEventJob struct {
	Event retailcrm.CallEvent `json:"event"`
	// Key is the call's record, to skip an in or out event the call's end
	// overtook while it waited.
	Key string `json:"key,omitempty"`
}

// forwardCallEvent queues a call event for retailCRM. Its id is the event's
// content, so a replayed webhook queues nothing new.
func (y *crmSync) forwardCallEvent(ctx context.Context, ev retailcrm.CallEvent) error {
	if err := ev.Validate(); err != nil || ev.Type == retailcrm.TypeAnswer {
		return nil
	}
	key := ""
	if ev.CallExternalID != "" {
		key = store.CallKey(ev.CallExternalID, "")
	} else {
		key = store.CallKey("", ev.Phone)
	}
	b, _ := json.Marshal(ev)
	h := sha256.New()
	h.Write(b)
	if ev.CallExternalID == "" {
		// Without a call id two calls may look alike; an hour is the
		// outbox's dedupe window, a minute keeps replays together.
		h.Write([]byte(time.Now().UTC().Truncate(time.Minute).String()))
	}
	id := "crm-event." + hex.EncodeToString(h.Sum(nil)[:12])
	return y.outbox.Enqueue(ctx, jobCRMEvent, id, crmEventJob{Event: ev, Key: key})
}

// crmEventFor is the retailCRM event of a call event made by another PBX.
func (y *crmSync) crmEventFor(ev call.Event, rec *call.Record) retailcrm.CallEvent {
	out := retailcrm.CallEvent{
		Phone: phone.Normalize(ev.Phone, y.cfg.PhoneRegion), Type: ev.Type, Site: ev.Site,
		CallExternalID: ev.CallID, ExternalPhone: phone.Normalize(ev.Line, y.cfg.PhoneRegion),
		HangupStatus: ev.HangupStatus,
	}
	if rec != nil {
		out.Phone, out.ExternalPhone = rec.Phone, rec.Line
		if out.Site == "" {
			out.Site = rec.Site
		}
	}
	if out.Site == "" {
		out.Site = y.sites[out.ExternalPhone]
	}
	for _, op := range ev.Operators {
		out.Codes = append(out.Codes, op.Code)
		out.UserIDs = append(out.UserIDs, op.UserID)
	}
	return out
}

// sendCRMEvent is the outbox handler of call/event.
func (y *crmSync) sendCRMEvent(ctx context.Context, job outbox.Job) error {
	var p crmEventJob
	if err := json.Unmarshal(job.Payload, &p); err != nil {
		return outbox.Permanent(fmt.Errorf("decode job: %w", err))
	}
	if (p.Event.Type == retailcrm.TypeIn || p.Event.Type == retailcrm.TypeOut) && p.Key != "" {
		if rec, _, _, err := y.calls.loadCall(ctx, p.Key, loadStored); err == nil && rec != nil && rec.State.Final() {
			y.log.Info("call event dropped: the call ended while it waited", "call", p.Event.CallExternalID, "type", p.Event.Type)
			return nil
		}
	}
	res, err := y.crm.SendCallEvent(ctx, p.Event)
	if err != nil {
		return err
	}
	if len(res.NotExistCodes)+len(res.NotExistUsers) > 0 {
		y.log.Debug("retailCRM does not know some of the event's users", "codes", res.NotExistCodes, "users", res.NotExistUsers)
	}
	return nil
}

// crmStatusJob is the payload of a users/{id}/status job.
type crmStatusJob struct {
	Operator string      `json:"operator"`
	UserID   string      `json:"userId"`
	Status   wire.Status `json:"status"`
	Since    time.Time   `json:"since"`
}

// queueCRMStatus queues an operator's status for retailCRM, unless it came
// from retailCRM.
func (y *crmSync) queueCRMStatus(ctx context.Context, op operators.Operator, st wire.StatusInfo, source string) error {
	if !y.cfg.RetailCRM.SyncStatus || source == sourceCRM {
		return nil
	}
	return y.outbox.Enqueue(ctx, jobCRMStatus, "crm-status."+statusChangeKey(op.ID, st),
		crmStatusJob{Operator: op.ID, UserID: op.UserID, Status: st.Status, Since: st.Since})
}

// sendCRMStatus is the outbox handler of users/{id}/status; a job overtaken
// by a later status is dropped (the latest wins).
func (y *crmSync) sendCRMStatus(ctx context.Context, job outbox.Job) error {
	var p crmStatusJob
	if err := json.Unmarshal(job.Payload, &p); err != nil {
		return outbox.Permanent(fmt.Errorf("decode job: %w", err))
	}
	if op, ok := y.ops.Lookup(p.Operator); ok {
		if cur, _, err := y.currentStatus(ctx, op); err == nil && superseded(cur, p.Status, p.Since) {
			return nil
		}
	}
	if err := y.crm.SetUserStatus(ctx, p.UserID, string(p.Status)); err != nil {
		return err
	}
	return nil
}

// integrationModule is the telephony registration the relay asks for.
func (y *crmSync) integrationModule() (retailcrm.IntegrationModule, error) {
	c := y.cfg
	if c.PublicURL == "" {
		return retailcrm.IntegrationModule{}, errors.New("public_url is not set: retailCRM must know where to reach the relay")
	}
	base := strings.TrimRight(c.PublicURL, "/")
	account := c.RetailCRM.AccountURL
	if account == "" {
		account = base
	}
	fwd := c.RetailCRM.ForwardEvents
	t := &retailcrm.Telephony{
		MakeCallURL:          base + "/retailcrm/make-call",
		ChangeUserStatusURL:  base + "/retailcrm/change-status",
		AllowEdit:            false,
		InputEventSupported:  fwd,
		OutputEventSupported: fwd,
		HangupEventSupported: fwd,
		AdditionalCodes:      []retailcrm.AdditionalCode{},
		ExternalPhones:       []retailcrm.ExternalPhone{},
	}
	for _, op := range y.ops.List() {
		if !op.Revoked() && op.Role.Agent() {
			t.AdditionalCodes = append(t.AdditionalCodes, retailcrm.AdditionalCode{UserID: op.UserID, Code: op.Code})
		}
	}
	for _, ep := range c.RetailCRM.ExternalPhones {
		t.ExternalPhones = append(t.ExternalPhones, retailcrm.ExternalPhone{
			SiteCode: strings.TrimSpace(ep.Site), ExternalPhone: phone.Normalize(ep.Phone, c.PhoneRegion)})
	}
	m := retailcrm.IntegrationModule{
		Code: c.RetailCRM.Code, Active: true, Name: c.RetailCRM.ModuleName, Logo: c.RetailCRM.LogoURL,
		ClientID: c.PBX.ClientID, AccountURL: account, Telephony: t,
	}
	return m, m.Validate()
}
