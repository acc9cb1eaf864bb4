package relay

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pult/pult/agent/wire"
	"github.com/pult/pult/relay/board"
	"github.com/pult/pult/relay/hub"
	"github.com/pult/pult/relay/operators"
	"github.com/pult/pult/relay/outbox"
)

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.handleHealth)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}))

	// Agents.
	mux.HandleFunc("GET "+wire.Path, s.handleAgent)
	mux.HandleFunc("GET "+wire.PathMe, s.handleMe)

	// The wallboard (supervisors).
	wallboard := s.board.Handler()
	mux.Handle("GET "+board.PathBoard, wallboard)
	mux.Handle("GET "+board.PathBoard+"/", wallboard)

	// A PBX integrated with retailCRM only changes its base URL to ours.
	s.mountPBXAPI(mux)
	// What retailCRM calls on a telephony (makeCallUrl, changeUserStatusUrl).
	mux.HandleFunc("GET /retailcrm/make-call", s.handleCRMMakeCall)
	mux.HandleFunc("GET /retailcrm/change-status", s.handleCRMChangeStatus)

	// Partner webhooks.
	mux.HandleFunc("POST /hooks/uis/{event}", s.handleUIS)
	mux.HandleFunc("POST /hooks/smartsupp", s.handleSmartsupp)
	mux.HandleFunc("POST "+wire.PathTranscripts, s.handleTranscriptSubmit)

	// Administration.
	mux.HandleFunc("GET /admin/v1/operators", s.admin(s.handleListOperators))
	mux.HandleFunc("POST /admin/v1/operators", s.admin(s.handleAddOperator))
	mux.HandleFunc("POST /admin/v1/operators/{ref}/revoke", s.admin(s.handleRevokeOperator))
	mux.HandleFunc("GET /admin/v1/outbox", s.admin(s.handleListOutbox))
	mux.HandleFunc("POST /admin/v1/outbox/{id}/retry", s.admin(s.handleRetryJob))
	mux.HandleFunc("DELETE /admin/v1/outbox/{id}", s.admin(s.handleDropJob))
	mux.HandleFunc("POST /admin/v1/retailcrm/register", s.admin(s.handleCRMRegister))
	mux.HandleFunc("GET /admin/v1/retailcrm/module", s.admin(s.handleCRMModule))
	return mux
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	status, code := "ok", http.StatusOK
	if !s.store.Conn().IsConnected() {
		status, code = "nats disconnected", http.StatusServiceUnavailable
	}
	writeJSON(w, code, map[string]string{"status": status})
}

// authOperator reads the bearer token; on failure it answers with a
// HandshakeError carrying the close code the agent must obey.
func (s *Server) authOperator(w http.ResponseWriter, r *http.Request) (operators.Operator, bool) {
	op, err := s.ops.AuthenticateRequest(r)
	switch {
	case errors.Is(err, operators.ErrNoToken):
		writeJSON(w, http.StatusUnauthorized, &wire.HandshakeError{Code: wire.CloseBadToken, Reason: err.Error()})
		return operators.Operator{}, false
	case errors.Is(err, operators.ErrRevoked):
		writeJSON(w, http.StatusForbidden, &wire.HandshakeError{Code: wire.CloseRevoked, Reason: wire.CloseText(wire.CloseRevoked)})
		return operators.Operator{}, false
	case err != nil:
		writeJSON(w, http.StatusUnauthorized, &wire.HandshakeError{Code: wire.CloseBadToken, Reason: wire.CloseText(wire.CloseBadToken)})
		return operators.Operator{}, false
	}
	return op, true
}

func (s *Server) handleMe(w http.ResponseWriter, r *http.Request) {
	op, ok := s.authOperator(w, r)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, op.Wire())
}

func (s *Server) handleAgent(w http.ResponseWriter, r *http.Request) {
	op, ok := s.authOperator(w, r)
	if !ok {
		return
	}
	v, err := strconv.Atoi(r.Header.Get(wire.HeaderProtocol))
	if err != nil || v < wire.MinProtocolVersion || v > wire.ProtocolVersion {
		writeJSON(w, http.StatusUpgradeRequired, &wire.HandshakeError{Code: wire.CloseProtocol,
			Reason: fmt.Sprintf("protocol %q is not supported; this relay speaks %d to %d", r.Header.Get(wire.HeaderProtocol), wire.MinProtocolVersion, wire.ProtocolVersion)})
		return
	}
	pos, err := hub.ParsePosition(r)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, &wire.Error{Code: wire.ErrBadRequest, Message: err.Error()})
		return
	}
	st, _, err := s.currentStatus(r.Context(), op)
	if err != nil {
		http.Error(w, "relay store unavailable", http.StatusServiceUnavailable)
		return
	}
	s.hub.Serve(w, r, op.Wire(), pos, wire.Hello{Operator: op.Wire(), Status: st, ServerTime: time.Now().UTC()})
}

// admin guards a handler with the admin token.
func (s *Server) admin(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		t, ok := operators.Bearer(r)
		if !ok || subtle.ConstantTimeCompare([]byte(t), []byte(s.cfg.AdminToken)) != 1 {
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "admin token required (Authorization: Bearer …)"})
			return
		}
		h(w, r)
	}
}

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

func (s *Server) view(r *http.Request, op operators.Operator) OperatorView {
	v := OperatorView{ID: op.ID, Name: op.Name, Code: op.Code, UserID: op.UserID, Role: op.Role,
		UISEmployee: op.UISEmployeeID, Smartsupp: op.SmartsuppAgentID,
		CreatedAt: op.CreatedAt, RevokedAt: op.RevokedAt, Connections: s.hub.Connected(op.ID)}
	v.Chosen, _, _ = s.currentStatus(r.Context(), op)
	v.Status = v.Chosen.Status
	if v.Connections == 0 {
		v.Status = wire.StatusOffline
	}
	return v
}

func (s *Server) handleListOperators(w http.ResponseWriter, r *http.Request) {
	ops := s.ops.List()
	out := make([]OperatorView, 0, len(ops))
	for _, op := range ops {
		out = append(out, s.view(r, op))
	}
	writeJSON(w, http.StatusOK, out)
}

// AddedOperator is the answer to adding an operator: the only time the
// token is ever shown.
type AddedOperator struct {
	Operator OperatorView `json:"operator"`
	Token    string       `json:"token"`
}

func (s *Server) handleAddOperator(w http.ResponseWriter, r *http.Request) {
	var n operators.NewOperator
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 16<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&n); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "malformed JSON: " + err.Error()})
		return
	}
	op, token, err := s.ops.Add(r.Context(), n)
	var invalid *operators.InvalidError
	switch {
	case errors.Is(err, operators.ErrConflict):
		writeJSON(w, http.StatusConflict, map[string]string{"error": err.Error()})
		return
	case errors.As(err, &invalid):
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	case err != nil:
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
		return
	}
	s.log.Info("operator added", "operator", op.ID, "code", op.Code, "role", op.Role)
	writeJSON(w, http.StatusCreated, AddedOperator{Operator: s.view(r, op), Token: token})
}

func (s *Server) handleRevokeOperator(w http.ResponseWriter, r *http.Request) {
	op, err := s.ops.Revoke(r.Context(), r.PathValue("ref"))
	if errors.Is(err, operators.ErrNotFound) {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": err.Error()})
		return
	}
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
		return
	}
	s.hub.Disconnect(op.ID, wire.CloseRevoked, "token revoked")
	s.log.Info("operator revoked", "operator", op.ID)
	writeJSON(w, http.StatusOK, s.view(r, op))
}

// Outbox listing bounds.
const (
	defaultOutboxList = 100
	maxOutboxList     = 10000
)

// handleListOutbox serves GET /admin/v1/outbox?state=pending|dead&limit=N:
// a JSON array of outbox.PendingJob or outbox.DeadJob, oldest first.
func (s *Server) handleListOutbox(w http.ResponseWriter, r *http.Request) {
	limit := defaultOutboxList
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxOutboxList {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("limit: want 1 to %d", maxOutboxList)})
			return
		}
		limit = n
	}
	var out any
	var err error
	switch state := r.URL.Query().Get("state"); state {
	case "", string(outbox.StatePending):
		out, err = s.outbox.Pending(r.Context(), limit)
	case string(outbox.StateDead):
		out, err = s.outbox.Dead(r.Context(), limit)
	default:
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("state: want pending or dead, got %q", state)})
		return
	}
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, out)
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

func writeOutboxError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, outbox.ErrNotFound):
		writeJSON(w, http.StatusNotFound, map[string]string{"error": err.Error()})
	case errors.Is(err, outbox.ErrPending):
		writeJSON(w, http.StatusConflict, map[string]string{"error": err.Error()})
	default:
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
	}
}

func (s *Server) handleRetryJob(w http.ResponseWriter, r *http.Request) {
	job, err := s.outbox.Retry(r.Context(), r.PathValue("id"))
	if err != nil {
		writeOutboxError(w, err)
		return
	}
	s.log.Info("dead letter retried by an admin", "job", job.ID, "kind", job.Kind)
	writeJSON(w, http.StatusOK, RetriedJob{ID: job.ID, Kind: job.Kind, State: outbox.StatePending})
}

func (s *Server) handleDropJob(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	st, err := s.outbox.Drop(r.Context(), id)
	if err != nil {
		writeOutboxError(w, err)
		return
	}
	s.log.Info("outbox job dropped by an admin", "job", id, "was", st)
	writeJSON(w, http.StatusOK, DroppedJob{ID: id, Dropped: st})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
