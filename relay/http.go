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
	"github.com/pult/pult/relay/admin"
	"github.com/pult/pult/relay/board"
	"github.com/pult/pult/relay/hub"
	"github.com/pult/pult/relay/operators"
)

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.handleHealth)

	// Agents.
	mux.HandleFunc("GET "+wire.Path, s.handleAgent)
	mux.HandleFunc("GET "+wire.PathMe, s.handleMe)

	// The wallboard (supervisors).
	wallboard := s.board.Handler()
	mux.Handle("GET "+board.PathBoard, wallboard)
	mux.Handle("GET "+board.PathBoard+"/", wallboard)

	// A PBX integrated with retailCRM only changes its base URL to ours.
	mux.Handle("/api/", s.pbxAPI)
	// What retailCRM calls on a telephony (makeCallUrl, changeUserStatusUrl).
	mux.HandleFunc("GET /retailcrm/make-call", s.handleCRMMakeCall)
	mux.HandleFunc("GET /retailcrm/change-status", s.handleCRMChangeStatus)

	// Partner webhooks.
	mux.HandleFunc("POST /hooks/uis/{event}", s.handleUIS)
	mux.HandleFunc("POST /hooks/smartsupp", s.chats.HandleSmartsupp)
	mux.HandleFunc("POST "+wire.PathTranscripts, s.chats.HandleSubmit)

	// Administration, metrics and pprof are the private sides' (sides.go):
	// here they are not found, as any path the relay does not serve.
	for _, p := range []string{"/admin/", "/metrics", "/metrics/", "/debug/"} {
		mux.HandleFunc(p, notFound)
	}
	return s.refuseWhenFull(mux)
}

func notFound(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusNotFound, map[string]string{"error": admin.NoSuchEndpoint})
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	status, code := "ok", http.StatusOK
	if !s.store.Connected() {
		status, code = "nats disconnected", http.StatusServiceUnavailable
	} else if s.store.Clustered() {
		// A node cut off from its cluster's majority is connected to its
		// own NATS server but can store nothing: a load balancer must
		// send webhooks elsewhere.
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := s.store.Available(ctx); err != nil {
			status, code = "jetstream unavailable", http.StatusServiceUnavailable
		} else if err := s.store.ReachesMajority(ctx); err != nil {
			status, code = "cut off from the cluster's majority", http.StatusServiceUnavailable
		}
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
	case !op.Role.Agent():
		writeJSON(w, http.StatusForbidden, &wire.HandshakeError{Code: wire.CloseNotAgent, Reason: wire.CloseText(wire.CloseNotAgent)})
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
	if s.afterAgentAuth != nil {
		s.afterAgentAuth()
	}
	if s.majority != nil && s.majority.Lost() {
		w.Header().Set("Retry-After", "5")
		writeJSON(w, http.StatusServiceUnavailable, &wire.HandshakeError{Code: wire.CloseGoingAway, Reason: cutOffReason})
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
		writeJSON(w, http.StatusServiceUnavailable, &wire.Error{Code: wire.ErrInternal, Message: "the relay's store is unavailable; try again"})
		return
	}
	s.hub.Serve(w, r, op.Wire(), pos, wire.Hello{Operator: op.Wire(), Status: st, ServerTime: time.Now().UTC()})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
