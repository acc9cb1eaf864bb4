package relay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"net/http"
	"strconv"
	"sync"
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

// statusSkew is how far before the relay's clock an operator's choice may
// be dated: their PC's clock may be a little off, but a time further back
// would rewrite how long they have been in a status (the board's
// durations, long-break alerts).
const statusSkew = 10 * time.Second

// applyStatus stores a status chosen at `at` unless a later one is stored
// (the last status wins, even over a change chosen offline that arrives
// late), tells the operator's agents, and queues the PBX and CRM calls. It
// returns the status in force afterwards.
//
// at orders the change against others; the status's Since is at, but no
// earlier than statusSkew before now. Two changes at the same instant are
// both applied, in the order they are stored, and every id derived from a
// change names its status, so neither is taken for a copy of the other.
func (s *Server) applyStatus(ctx context.Context, op operators.Operator, st wire.Status, at time.Time, source string) (wire.StatusInfo, error) {
	now := time.Now().UTC()
	if at.IsZero() || at.After(now) {
		at = now
	}
	at = at.UTC()
	unlock := s.statusMu.lock(op.ID)
	defer unlock()
	since := at
	if floor := now.Add(-statusSkew); since.Before(floor) {
		since = floor
	}
	for attempt := 0; attempt < 5; attempt++ {
		cur, rev, err := s.currentStatus(ctx, op)
		if err != nil {
			return wire.StatusInfo{}, err
		}
		if rev != 0 && cur.Since.After(at) {
			return cur, nil // a newer choice is already in force
		}
		next := wire.StatusInfo{Status: st, Since: since, Source: source}
		b, _ := json.Marshal(next)
		if _, err := s.store.SaveStatus(ctx, op.ID, b, rev); errors.Is(err, store.ErrConflict) {
			continue // someone else changed it: read again
		} else if err != nil {
			return wire.StatusInfo{}, err
		}
		key := statusChangeKey(op.ID, next)
		if _, err := s.store.Append(ctx, op.ID, wire.TypeStatus, b, "st."+key, time.Time{}); err != nil {
			return wire.StatusInfo{}, err
		}
		if s.cfg.PBX.ChangeStatusURL != "" {
			job := pbxStatusJob{Operator: op.ID, UserID: op.UserID, Code: op.Code, Status: st, Since: next.Since}
			if err := s.outbox.Enqueue(ctx, jobPBXStatus, "pbx-status."+key, job); err != nil {
				return wire.StatusInfo{}, err
			}
		}
		if s.crmSync != nil {
			if err := s.crmSync.queueCRMStatus(ctx, op, next, source); err != nil {
				return wire.StatusInfo{}, err
			}
		}
		s.log.Info("status changed", "operator", op.ID, "status", st, "source", source)
		return next, nil
	}
	return wire.StatusInfo{}, errors.New("status changed concurrently too often; try again")
}

// operatorLocks serializes work on one operator's state across goroutines
// of this relay: a status is stored, then published to the operator's
// stream, and two changes interleaving there would leave the stream's last
// status different from the stored one.
type operatorLocks [64]sync.Mutex

func (l *operatorLocks) lock(opID string) (unlock func()) {
	h := fnv.New32a()
	h.Write([]byte(opID))
	m := &l[h.Sum32()%uint32(len(l))]
	m.Lock()
	return m.Unlock
}

// statusChangeKey names one status change of an operator: the same status
// at the same instant is the same change (a request sent twice).
func statusChangeKey(opID string, st wire.StatusInfo) string {
	return opID + "." + strconv.FormatInt(st.Since.UnixNano(), 10) + "." + string(st.Status)
}

// superseded reports whether a queued call telling a partner about status
// st since `since` is overtaken by the status in force: a later one, or
// another one chosen at the same instant and stored after it.
func superseded(cur wire.StatusInfo, st wire.Status, since time.Time) bool {
	return cur.Since.After(since) || (cur.Since.Equal(since) && cur.Status != st)
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
		if cur, _, err := s.currentStatus(ctx, op); err == nil && superseded(cur, p.Status, p.Since) {
			return nil // the later job carries the status in force
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
