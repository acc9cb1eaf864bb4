package relay

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net/http"
	"slices"

	"github.com/pult/pult/agent/phone"
	"github.com/pult/pult/relay/call"
	"github.com/pult/pult/relay/operators"
	"github.com/pult/pult/relay/retailcrm"
)

// The retailCRM API a PBX talks to.
//
// A PBX integrated with retailCRM keeps working when its retailCRM base URL
// is the relay's: under /api/ the relay answers as retailCRM does, to every
// request style of retailCRM's official clients (api-client-php v5:
// multipart form with apiKey as a field; v6: urlencoded with X-Api-Key;
// Python and Go: urlencoded with X-API-KEY; apiKey in the query). A body is
// bounded and parsed first, then the key is checked, then the fields: a
// refused request stores nothing. Every answer is JSON in retailCRM's shape,
// errors and unknown methods included, so every client decodes it.

const maxWebhookBody = 64 << 10

// maxUploadBody bounds calls/upload: 50 calls with long record URLs.
const maxUploadBody = 1 << 20

func (s *Server) mountPBXAPI(mux *http.ServeMux) {
	methods := []struct {
		method, path string
		h            http.HandlerFunc
	}{
		{http.MethodPost, retailcrm.PathCallEvent, s.handleCallEvent},
		{http.MethodPost, retailcrm.PathCallsUpload, s.handleCallsUpload},
		{http.MethodGet, retailcrm.PathManager, s.handleManagerQuery},
		{http.MethodGet, retailcrm.PathCredentials, s.handleCredentials},
		{http.MethodGet, retailcrm.PathVersions, s.handleAPIVersions},
	}
	for _, m := range methods {
		mux.HandleFunc(m.method+" "+m.path, m.h)
		allowed := m.method
		mux.HandleFunc(m.path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", allowed)
			retailcrm.WriteError(w, http.StatusMethodNotAllowed, "Method not allowed; use "+allowed+".", nil)
		})
	}
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		retailcrm.WriteError(w, http.StatusNotFound, retailcrm.MsgNotFound, nil)
	})
}

// authPBX checks the PBX's key the way retailCRM does, answering its errors.
// Call it after retailcrm.ReadForm, so that a key sent as a form field is
// seen; with a body that could not be read, only the header and the query
// count.
func (s *Server) authPBX(w http.ResponseWriter, r *http.Request) bool {
	key := retailcrm.APIKeyFrom(r)
	if key == "" {
		retailcrm.WriteError(w, http.StatusUnauthorized, retailcrm.MsgKeyMissing, nil)
		return false
	}
	if subtle.ConstantTimeCompare([]byte(key), []byte(s.cfg.PBX.APIKey)) != 1 {
		retailcrm.WriteError(w, http.StatusForbidden, retailcrm.MsgKeyWrong, nil)
		return false
	}
	return true
}

// readPBXForm reads a POST form (bounded) and authenticates it. It answers
// and returns false on any refusal: a body over the bound first (its key,
// maybe a form field, was never read: PHP v5 sends it there), then a key
// problem, so that a caller without the key learns nothing about its body.
func (s *Server) readPBXForm(w http.ResponseWriter, r *http.Request, maxBody int64) bool {
	_, formErr := retailcrm.ReadForm(r, maxBody)
	if errors.Is(formErr, retailcrm.ErrBodyTooLarge) {
		retailcrm.WriteValidationError(w, formErr)
		return false
	}
	if !s.authPBX(w, r) {
		return false
	}
	if formErr != nil {
		retailcrm.WriteValidationError(w, formErr)
		return false
	}
	return true
}

// handleCallEvent serves POST /api/v5/telephony/call/event.
func (s *Server) handleCallEvent(w http.ResponseWriter, r *http.Request) {
	received := s.clock()
	if !s.readPBXForm(w, r, maxWebhookBody) {
		return
	}
	ev, err := retailcrm.DecodeCallEvent(r.PostForm)
	if err != nil {
		retailcrm.WriteValidationError(w, err)
		return
	}
	ce := call.Event{
		Type: ev.Type, CallID: ev.CallExternalID, Phone: ev.Phone, Line: ev.ExternalPhone,
		Site: ev.Site, HangupStatus: ev.HangupStatus, At: received.UTC(), Source: sourceRetailCRM,
	}
	seen := map[string]bool{}
	notCodes, notUsers := []string{}, []any{}
	for _, c := range ev.Codes {
		op, ok := s.ops.ByCode(c)
		if !ok {
			notCodes = append(notCodes, c)
			continue
		}
		if !seen[op.ID] {
			seen[op.ID] = true
			ce.Operators = append(ce.Operators, person(op))
		}
	}
	for _, u := range ev.UserIDs {
		op, ok := s.ops.ByUserID(u)
		if !ok {
			// As retailCRM answers them: numbers when the ids are.
			notUsers = append(notUsers, retailcrm.IDValue(u))
			continue
		}
		if !seen[op.ID] {
			seen[op.ID] = true
			ce.Operators = append(ce.Operators, person(op))
		}
	}
	if err := s.calls.processCall(r.Context(), ce, received); err != nil {
		s.log.Error("call event not stored", "err", err)
		retailcrm.WriteError(w, http.StatusInternalServerError, "the relay could not store the event; retry", nil)
		return
	}
	// The PBX meant it for retailCRM: pass it on as it came (but for
	// normalised numbers), with every code and user id it named.
	if s.cfg.RetailCRM.ForwardEvents && ev.Type != retailcrm.TypeAnswer {
		fwd := ev
		fwd.Phone = normalized(ev.Phone, s.cfg.PhoneRegion)
		fwd.ExternalPhone = normalized(ev.ExternalPhone, s.cfg.PhoneRegion)
		if fwd.Site == "" {
			fwd.Site = s.sites[fwd.ExternalPhone]
		}
		if err := s.crmSync.forwardCallEvent(r.Context(), fwd); err != nil {
			s.log.Error("call event not queued for retailCRM", "err", err)
			retailcrm.WriteError(w, http.StatusInternalServerError, "the relay could not store the event; retry", nil)
			return
		}
	}
	s.metrics.eventsIn.WithLabelValues("retailcrm").Inc()
	retailcrm.WriteSuccess(w, http.StatusOK, map[string]any{"notExistCodes": notCodes, "notExistUsers": notUsers})
}

// handleCallsUpload serves POST /api/v5/telephony/calls/upload: each call
// is stored durably for the history (and goes on to retailCRM, see
// uploads.go). A call whose externalId was uploaded before, at any time, is
// reported in duplicateCalls and stored again nowhere.
func (s *Server) handleCallsUpload(w http.ResponseWriter, r *http.Request) {
	if !s.readPBXForm(w, r, maxUploadBody) {
		return
	}
	calls, err := retailcrm.DecodeCallsUpload(r.PostForm, s.loc)
	if err != nil {
		retailcrm.WriteValidationError(w, err)
		return
	}
	dups := []string{}
	for _, c := range calls {
		c.Phone = normalized(c.Phone, s.cfg.PhoneRegion)
		c.ExternalPhone = normalized(c.ExternalPhone, s.cfg.PhoneRegion)
		if c.Site == "" && c.ExternalPhone != "" {
			c.Site = s.sites[c.ExternalPhone]
		}
		b, _ := json.Marshal(c)
		dup, err := s.store.PublishPBXUpload(r.Context(), b, c.ExternalID)
		if err != nil {
			s.log.Error("call upload not stored", "err", err)
			retailcrm.WriteError(w, http.StatusInternalServerError, "the relay could not store the calls; retry", nil)
			return
		}
		if dup {
			dups = append(dups, c.ExternalID)
		}
	}
	s.metrics.eventsIn.WithLabelValues("calls_upload").Add(float64(len(calls) - len(dups)))
	retailcrm.WriteSuccess(w, http.StatusOK, map[string]any{"processedCallsCount": len(calls) - len(dups), "duplicateCalls": dups})
}

// handleManagerQuery serves GET /api/v5/telephony/manager: the responsible
// manager of the caller, for the PBX to route an incoming call. The answer
// comes from the relay's own lookup (its cache, concurrent lookups merged)
// and the relay applies retailCRM's rule with what it knows: the manager is
// named only when they are a pult operator signed in with status free, and
// have an extension code; ignoreStatus=1 lifts the first two conditions.
// No retailCRM configured, or a number it does not know: no manager.
func (s *Server) handleManagerQuery(w http.ResponseWriter, r *http.Request) {
	if !s.authPBX(w, r) {
		return
	}
	mq, err := retailcrm.ParseManagerQuery(r.URL.Query())
	if err != nil {
		retailcrm.WriteValidationError(w, err)
		return
	}
	num, perr := phone.Parse(mq.Phone, s.cfg.PhoneRegion)
	if s.mgr == nil || perr != nil {
		retailcrm.WriteManager(w, nil, mq.Details)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RetailCRM.Timeout.Duration)
	res, err := s.mgr.get(ctx, num.E164)
	cancel()
	if err != nil {
		s.log.Warn("responsible manager lookup for the PBX failed", "err", err)
		w.Header().Set("Retry-After", "1")
		retailcrm.WriteError(w, http.StatusServiceUnavailable, "retailCRM did not answer the relay in time; try again", nil)
		return
	}
	s.metrics.eventsIn.WithLabelValues("manager_query").Inc()
	out := *res
	if m := res.Manager; m != nil {
		code, ok := s.calls.routable(m, mq.IgnoreStatus)
		if ok {
			named := *m
			named.Code = code
			out.Manager = &named
		} else {
			out.Manager = nil
		}
	}
	retailcrm.WriteManager(w, &out, mq.Details)
}

// routable applies retailCRM's rule for naming a responsible manager to
// route a call to, with the relay's facts: the manager is a pult operator
// (by CRM user id, else extension code) who is signed in and free (unless
// ignoreStatus), and there is an extension code to route to. It returns
// that code.
func (c *calls) routable(m *retailcrm.Manager, ignoreStatus bool) (code string, ok bool) {
	op, found := c.ops.ByUserID(m.ID)
	if !found && m.Code != "" {
		op, found = c.ops.ByCode(m.Code)
	}
	code = m.Code
	if found && op.Code != "" {
		code = op.Code
	}
	if code == "" {
		return "", false
	}
	if ignoreStatus {
		return code, true
	}
	return code, found && c.board.Available(op.ID)
}

// managerFree says whether the manager a lookup named could take a call now.
func (c *calls) managerFree(res *retailcrm.ManagerResult) bool {
	if res == nil || res.Manager == nil {
		return false
	}
	_, ok := c.routable(res.Manager, false)
	return ok
}

// handleCredentials serves GET /api/credentials: what this "retailCRM"
// offers the key, so that a PBX module's set-up check passes.
func (s *Server) handleCredentials(w http.ResponseWriter, r *http.Request) {
	if !s.authPBX(w, r) {
		return
	}
	sites := []string{}
	for _, site := range s.sites {
		if site != "" && !slices.Contains(sites, site) {
			sites = append(sites, site)
		}
	}
	slices.Sort(sites)
	retailcrm.WriteCredentials(w, sites)
}

// handleAPIVersions serves GET /api/api-versions.
func (s *Server) handleAPIVersions(w http.ResponseWriter, r *http.Request) {
	if !s.authPBX(w, r) {
		return
	}
	retailcrm.WriteSuccess(w, http.StatusOK, map[string]any{"versions": []string{"5.0"}})
}

// person is the operator as a call record knows them.
func person(op operators.Operator) call.Person {
	return call.Person{ID: op.ID, Code: op.Code, Name: op.Name, UserID: op.UserID}
}
