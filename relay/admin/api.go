// Package admin is the relay's administration API — operators and their
// tokens, the outbox's waiting jobs and dead letters, the telephony's
// registration in retailCRM — and, beside it, its client (Client), which
// `pult-relay operators|outbox|retailcrm …` use.
//
// The API is an http.Handler (Handler) the relay serves under /admin/v1/ on
// its private sides only, never on the public listener: on a unix socket
// whose file permissions are its authentication (no token asked), and on
// admin_listen behind the admin token (RequireToken; Authorization:
// Bearer). Every answer is JSON, errors as {"error": "…"}. The handler
// holds no state and starts no goroutine: each request runs on the HTTP
// server's goroutine and reaches the relay through Backend.
package admin

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/pult/pult/agent/wire"
	"github.com/pult/pult/relay/operators"
	"github.com/pult/pult/relay/outbox"
	"github.com/pult/pult/relay/retailcrm"
)

// Prefix is where the relay mounts the API.
const Prefix = "/admin/v1/"

// NoSuchEndpoint is the error of the relay's 404s outside the API: the
// public listener's answer to /admin/…, /metrics and /debug/….
const NoSuchEndpoint = "no such endpoint"

// Backend is what the API asks of the relay.
type Backend interface {
	Operators() *operators.Registry
	// Presence is an operator's last chosen status and how many sessions
	// they have on this node.
	Presence(ctx context.Context, op operators.Operator) (chosen wire.StatusInfo, sessions int)
	// Disconnect ends a revoked operator's sessions.
	Disconnect(op operators.Operator)
	Outbox() *outbox.Outbox
	// RegisterRetailCRM registers (or updates) the telephony in retailCRM
	// and returns the module sent; RetailCRMModule reads it back. Their
	// errors wrap ErrNotConfigured, ErrBusy, ErrNotFound or ErrPartner.
	RegisterRetailCRM(ctx context.Context) (retailcrm.IntegrationModule, error)
	RetailCRMModule(ctx context.Context) (retailcrm.IntegrationModule, error)
}

// Errors a Backend wraps, each answered with its own status.
var (
	ErrNotConfigured = errors.New("not configured")     // 409
	ErrBusy          = errors.New("rate limited")       // 503
	ErrNotFound      = errors.New("not found")          // 404
	ErrPartner       = errors.New("the partner failed") // 502
)

// Fail is a Backend's failure of the given kind (ErrNotConfigured…),
// answered with msg alone.
func Fail(kind error, msg string) error { return &failure{kind, msg} }

type failure struct {
	kind error
	msg  string
}

func (f *failure) Error() string { return f.msg }
func (f *failure) Unwrap() error { return f.kind }

// OperatorView is an operator as the admin API lists it.
type OperatorView struct {
	ID          string          `json:"id"`
	Name        string          `json:"name"`
	Code        string          `json:"code"`
	UserID      string          `json:"userId"`
	Role        wire.Role       `json:"role"`
	UISEmployee string          `json:"uisEmployeeId,omitempty"`
	Smartsupp   string          `json:"smartsuppAgentId,omitempty"`
	CreatedAt   time.Time       `json:"createdAt"`
	RevokedAt   *time.Time      `json:"revokedAt,omitempty"`
	Status      wire.Status     `json:"status"` // offline while no agent is connected
	Chosen      wire.StatusInfo `json:"chosen"` // what the operator last set
	Connections int             `json:"connections"`
}

// AddedOperator is the answer to adding an operator: the only time the
// token is ever shown.
type AddedOperator struct {
	Operator OperatorView `json:"operator"`
	Token    string       `json:"token"`
}

// RetriedJob answers a retry.
type RetriedJob struct {
	ID    string       `json:"id"`
	Kind  string       `json:"kind"`
	State outbox.State `json:"state"`
}

// DroppedJob answers a drop: which state the job was in.
type DroppedJob struct {
	ID      string       `json:"id"`
	Dropped outbox.State `json:"dropped"`
}

// Outbox listing bounds.
const (
	defaultOutboxList = 100
	maxOutboxList     = 10000
)

type api struct {
	b   Backend
	log *slog.Logger
}

// Handler serves the API to whoever reaches it: mount it where access is
// restricted already (a socket only the relay's user may open), or behind
// RequireToken.
func Handler(b Backend, log *slog.Logger) http.Handler {
	a := &api{b: b, log: log.With("component", "admin")}
	mux := http.NewServeMux()
	for _, r := range []struct {
		pattern string
		h       http.HandlerFunc
	}{
		{"GET " + Prefix + "operators", a.listOperators},
		{"POST " + Prefix + "operators", a.addOperator},
		{"POST " + Prefix + "operators/{ref}/revoke", a.revokeOperator},
		{"GET " + Prefix + "outbox", a.listOutbox},
		{"POST " + Prefix + "outbox/{id}/retry", a.retryJob},
		{"DELETE " + Prefix + "outbox/{id}", a.dropJob},
		{"POST " + Prefix + "retailcrm/register", a.registerRetailCRM},
		{"GET " + Prefix + "retailcrm/module", a.retailCRMModule},
	} {
		mux.HandleFunc(r.pattern, r.h)
	}
	return mux
}

// RequireToken guards h with the admin token (constant-time compare); an
// empty token lets nobody in.
func RequireToken(token string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t, ok := operators.Bearer(r)
		if !ok || token == "" || subtle.ConstantTimeCompare([]byte(t), []byte(token)) != 1 {
			writeError(w, http.StatusUnauthorized, "admin token required (Authorization: Bearer …)")
			return
		}
		h.ServeHTTP(w, r)
	})
}

func (a *api) view(ctx context.Context, op operators.Operator) OperatorView {
	v := OperatorView{ID: op.ID, Name: op.Name, Code: op.Code, UserID: op.UserID, Role: op.Role,
		UISEmployee: op.UISEmployeeID, Smartsupp: op.SmartsuppAgentID,
		CreatedAt: op.CreatedAt, RevokedAt: op.RevokedAt}
	v.Chosen, v.Connections = a.b.Presence(ctx, op)
	v.Status = v.Chosen.Status
	if v.Connections == 0 {
		v.Status = wire.StatusOffline
	}
	return v
}

func (a *api) listOperators(w http.ResponseWriter, r *http.Request) {
	ops := a.b.Operators().List()
	out := make([]OperatorView, 0, len(ops))
	for _, op := range ops {
		out = append(out, a.view(r.Context(), op))
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *api) addOperator(w http.ResponseWriter, r *http.Request) {
	var n operators.NewOperator
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 16<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&n); err != nil {
		writeError(w, http.StatusBadRequest, "malformed JSON: "+err.Error())
		return
	}
	op, token, err := a.b.Operators().Add(r.Context(), n)
	var invalid *operators.InvalidError
	switch {
	case errors.Is(err, operators.ErrConflict):
		writeError(w, http.StatusConflict, err.Error())
		return
	case errors.As(err, &invalid):
		writeError(w, http.StatusBadRequest, err.Error())
		return
	case err != nil:
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	a.log.Info("operator added", "operator", op.ID, "code", op.Code, "role", op.Role)
	writeJSON(w, http.StatusCreated, AddedOperator{Operator: a.view(r.Context(), op), Token: token})
}

func (a *api) revokeOperator(w http.ResponseWriter, r *http.Request) {
	op, err := a.b.Operators().Revoke(r.Context(), r.PathValue("ref"))
	switch {
	case errors.Is(err, operators.ErrNotFound):
		writeError(w, http.StatusNotFound, err.Error())
		return
	case err != nil:
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	a.b.Disconnect(op)
	a.log.Info("operator revoked", "operator", op.ID)
	writeJSON(w, http.StatusOK, a.view(r.Context(), op))
}

// listOutbox serves GET outbox?state=pending|dead&limit=N: a JSON array of
// outbox.PendingJob or outbox.DeadJob, oldest first.
func (a *api) listOutbox(w http.ResponseWriter, r *http.Request) {
	limit := defaultOutboxList
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxOutboxList {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("limit: want 1 to %d", maxOutboxList))
			return
		}
		limit = n
	}
	var out any
	var err error
	switch state := r.URL.Query().Get("state"); state {
	case "", string(outbox.StatePending):
		out, err = a.b.Outbox().Pending(r.Context(), limit)
	case string(outbox.StateDead):
		out, err = a.b.Outbox().Dead(r.Context(), limit)
	default:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("state: want pending or dead, got %q", state))
		return
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func writeOutboxError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, outbox.ErrNotFound):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, outbox.ErrPending):
		writeError(w, http.StatusConflict, err.Error())
	default:
		writeError(w, http.StatusInternalServerError, err.Error())
	}
}

func (a *api) retryJob(w http.ResponseWriter, r *http.Request) {
	job, err := a.b.Outbox().Retry(r.Context(), r.PathValue("id"))
	if err != nil {
		writeOutboxError(w, err)
		return
	}
	a.log.Info("dead letter retried by an admin", "job", job.ID, "kind", job.Kind)
	writeJSON(w, http.StatusOK, RetriedJob{ID: job.ID, Kind: job.Kind, State: outbox.StatePending})
}

func (a *api) dropJob(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	st, err := a.b.Outbox().Drop(r.Context(), id)
	if err != nil {
		writeOutboxError(w, err)
		return
	}
	a.log.Info("outbox job dropped by an admin", "job", id, "was", st)
	writeJSON(w, http.StatusOK, DroppedJob{ID: id, Dropped: st})
}

// registerRetailCRM serves POST retailcrm/register: it registers (or
// updates) the telephony in retailCRM and answers the module sent.
func (a *api) registerRetailCRM(w http.ResponseWriter, r *http.Request) {
	m, err := a.b.RegisterRetailCRM(r.Context())
	if err != nil {
		writeBackendError(w, err)
		return
	}
	a.log.Info("telephony registered in retailCRM", "code", m.Code, "codes", len(m.Telephony.AdditionalCodes))
	writeJSON(w, http.StatusOK, m)
}

// retailCRMModule serves GET retailcrm/module: the registration as
// retailCRM has it.
func (a *api) retailCRMModule(w http.ResponseWriter, r *http.Request) {
	m, err := a.b.RetailCRMModule(r.Context())
	if err != nil {
		writeBackendError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, m)
}

func writeBackendError(w http.ResponseWriter, err error) {
	status := http.StatusInternalServerError
	switch {
	case errors.Is(err, ErrNotConfigured):
		status = http.StatusConflict
	case errors.Is(err, ErrBusy):
		status = http.StatusServiceUnavailable
	case errors.Is(err, ErrNotFound):
		status = http.StatusNotFound
	case errors.Is(err, ErrPartner):
		status = http.StatusBadGateway
	}
	writeError(w, status, err.Error())
}

// writeError is the API's one error shape: {"error": msg}.
func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
