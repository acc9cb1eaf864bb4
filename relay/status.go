package relay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/pult/pult/agent/wire"
	"github.com/pult/pult/relay/operators"
	"github.com/pult/pult/relay/outbox"
	"github.com/pult/pult/relay/partner"
	"github.com/pult/pult/relay/retailcrm"
	"github.com/pult/pult/relay/store"
)

const jobPBXStatus = "pbx.status"

// Status sources.
const (
	sourceAgent      = "agent"
	sourceCRM        = "crm"
	sourceDefault    = "default"
	sourceSupervisor = "supervisor"
)

// currentStatus reads an operator's stored status; an operator who never set
// one is free since they were added.
func (s *Server) currentStatus(ctx context.Context, op operators.Operator) (wire.StatusInfo, uint64, error) {
	data, rev, err := s.store.LoadStatus(ctx, op.ID)
	switch {
	case err != nil:
		return wire.StatusInfo{}, 0, err
	case data == nil:
		return wire.StatusInfo{Status: wire.StatusFree, Since: op.CreatedAt, Source: sourceDefault}, 0, nil
	}
	var st wire.StatusInfo
	if err := json.Unmarshal(data, &st); err != nil {
		return wire.StatusInfo{}, 0, fmt.Errorf("decode status: %w", err)
	}
	return st, rev, nil
}

// pbxStatusJob is the outbox payload of a PBX change-status call.
type pbxStatusJob struct {
	Operator string      `json:"operator"`
	UserID   string      `json:"userId"`
	Code     string      `json:"code"`
	Status   wire.Status `json:"status"`
	Since    time.Time   `json:"since"`
}

// applyStatus stores a status chosen at `at` unless a later one is stored
// (the last status wins), tells the operator's agents, and queues the PBX
// call. It returns the status in force afterwards.
func (s *Server) applyStatus(ctx context.Context, op operators.Operator, st wire.Status, at time.Time, source string) (wire.StatusInfo, error) {
	now := time.Now().UTC()
	if at.IsZero() || at.After(now) {
		at = now
	}
	at = at.UTC()
	for attempt := 0; attempt < 5; attempt++ {
		cur, rev, err := s.currentStatus(ctx, op)
		if err != nil {
			return wire.StatusInfo{}, err
		}
		if rev != 0 && cur.Since.After(at) {
			return cur, nil // a newer choice is already in force
		}
		next := wire.StatusInfo{Status: st, Since: at, Source: source}
		b, _ := json.Marshal(next)
		if _, err := s.store.SaveStatus(ctx, op.ID, b, rev); errors.Is(err, store.ErrConflict) {
			continue // someone else changed it: read again
		} else if err != nil {
			return wire.StatusInfo{}, err
		}
		stamp := strconv.FormatInt(at.UnixNano(), 10)
		if _, err := s.store.Append(ctx, op.ID, wire.TypeStatus, b, "st."+op.ID+"."+stamp, time.Time{}); err != nil {
			return wire.StatusInfo{}, err
		}
		if s.cfg.PBX.ChangeStatusURL != "" {
			job := pbxStatusJob{Operator: op.ID, UserID: op.UserID, Code: op.Code, Status: st, Since: at}
			if err := s.outbox.Enqueue(ctx, jobPBXStatus, "pbx-status."+op.ID+"."+stamp, job); err != nil {
				return wire.StatusInfo{}, err
			}
		}
		if s.crmSync != nil {
			if err := s.crmSync.queueCRMStatus(ctx, op, st, at, source); err != nil {
				return wire.StatusInfo{}, err
			}
		}
		s.log.Info("status changed", "operator", op.ID, "status", st, "source", source)
		return next, nil
	}
	return wire.StatusInfo{}, errors.New("status changed concurrently too often; try again")
}

// sendPBXStatus is the outbox handler calling the PBX's changeUserStatusUrl
// exactly as retailCRM would. Network errors, 5xx, 408 and 429 are retried
// (honouring Retry-After); any other answer but 2xx can never succeed, so
// the job becomes a dead letter with what the PBX said. A job overtaken by a
// later status is dropped.
func (s *Server) sendPBXStatus(ctx context.Context, job outbox.Job) error {
	var p pbxStatusJob
	if err := json.Unmarshal(job.Payload, &p); err != nil {
		return outbox.Permanent(fmt.Errorf("decode job: %w", err))
	}
	if op, ok := s.ops.Lookup(p.Operator); ok {
		if cur, _, err := s.currentStatus(ctx, op); err == nil && cur.Since.After(p.Since) {
			return nil // superseded: the later job carries the status in force
		}
	}
	q := retailcrm.ChangeStatus{ClientID: s.cfg.PBX.ClientID, UserID: p.UserID, Code: p.Code, Status: string(p.Status)}.Query()
	u, err := retailcrm.BuildURL(s.cfg.PBX.ChangeStatusURL, q)
	if err != nil {
		return outbox.Permanent(err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return outbox.Permanent(err)
	}
	resp, err := s.pbx.Do(req)
	if err != nil {
		return fmt.Errorf("pbx change-status: %w", partner.TransportError(err))
	}
	defer resp.Body.Close()
	if err := partner.CheckResponse("pbx change-status", resp); err != nil {
		if se := (*partner.StatusError)(nil); errors.As(err, &se) && !se.Temporary() {
			s.log.Warn("pbx refused change-status", "status", resp.StatusCode, "operator", p.Operator, "err", err)
		}
		return err
	}
	return nil
}
