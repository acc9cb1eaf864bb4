// Package pbxapi is the retailCRM API a PBX talks to.
//
// A PBX integrated with retailCRM keeps working when its retailCRM base URL
// is the relay's: under /api/ the relay answers as retailCRM does, to every
// request style of retailCRM's official clients (api-client-php v5:
// multipart form with apiKey as a field; v6: urlencoded with X-Api-Key;
// Python and Go: urlencoded with X-API-KEY; apiKey in the query). A body is
// bounded and parsed first, then the key ([pbx] api_key) is checked, then
// the fields: a refused request stores nothing. Every answer is JSON in
// retailCRM's shape, errors and unknown methods included, so every client
// decodes it.
//
// The methods:
//
//	POST /api/v5/telephony/call/event   a call event: the call flow applies
//	                                    it (Config.Apply), and it is passed
//	                                    on to retailCRM (Config.Forward)
//	POST /api/v5/telephony/calls/upload calls for the history, stored once
//	                                    each by externalId (Config.Uploads)
//	GET  /api/v5/telephony/manager      the caller's responsible manager, by
//	                                    the relay's lookup and rule
//	GET  /api/credentials               what the key may do, for a PBX
//	GET  /api/api-versions              module's set-up check
//
// The API owns nothing but its answers: it reaches the relay only through
// what Config names, and holds no state and starts no goroutine; its
// handlers run on the HTTP server's goroutines.
package pbxapi

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pult/pult/agent/phone"
	"github.com/pult/pult/relay/call"
	"github.com/pult/pult/relay/eventtrace"
	"github.com/pult/pult/relay/operators"
	"github.com/pult/pult/relay/retailcrm"
)

// Source is call.Event.Source for the events of a PBX speaking this API.
const Source = "retailcrm"

const (
	// maxEventBody bounds call/event.
	maxEventBody = 64 << 10
	// maxUploadBody bounds calls/upload: 50 calls with long record URLs.
	maxUploadBody = 1 << 20
)

// Operators finds the operators a PBX names by extension code or CRM user
// id.
type Operators interface {
	ByCode(code string) (operators.Operator, bool)
	ByUserID(id string) (operators.Operator, bool)
}

// Uploads stores an uploaded call (JSON of a retailcrm.UploadCall) for the
// call history, once per externalId.
type Uploads interface {
	PublishPBXUpload(ctx context.Context, data []byte, externalID string) (duplicate bool, err error)
}

// Config configures an API.
type Config struct {
	Log         *slog.Logger
	APIKey      string            // [pbx] api_key
	PhoneRegion string            // numbers are stored in E.164
	Location    *time.Location    // time_zone: how an uploaded call's date is read
	Sites       map[string]string // E.164 external phone → site code; read only
	Operators   Operators
	Uploads     Uploads
	// Apply is the call flow: the event becomes the call's stored record,
	// the operators' cards and the board's change.
	Apply func(ctx context.Context, ev call.Event, received time.Time) error
	// Forward queues a call event for retailCRM as the PBX sent it ([retailcrm]
	// forward_events); nil: events are not passed on.
	Forward func(ctx context.Context, ev retailcrm.CallEvent) error
	// Lookup is the relay's responsible-manager lookup (cached, concurrent
	// lookups merged), taking a number in E.164; nil without retailCRM,
	// and then no manager is named.
	Lookup func(ctx context.Context, e164 string) (*retailcrm.ManagerResult, error)
	// Routable is retailCRM's rule for naming a manager to route a call to,
	// with the relay's facts (see GET /api/v5/telephony/manager); it gives
	// the extension code to route to.
	Routable      func(m *retailcrm.Manager, ignoreStatus bool) (code string, ok bool)
	LookupTimeout time.Duration    // [retailcrm] timeout
	Now           func() time.Time // the relay's clock (time.Now when nil)
	// EventsIn counts events accepted, by source: "retailcrm" (call
	// events), "calls_upload" (calls stored), "manager_query" (nil: not
	// counted).
	EventsIn *prometheus.CounterVec
	// Trace times each call event's steps (nil: not timed).
	Trace *eventtrace.Recorder
}

// API is the retailCRM API a PBX talks to, an http.Handler for /api/.
type API struct {
	cfg Config
	log *slog.Logger
	mux *http.ServeMux
}

// New makes the API.
func New(cfg Config) *API {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Location == nil {
		cfg.Location = time.Local
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.EventsIn == nil {
		cfg.EventsIn = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "unregistered"}, []string{"source"})
	}
	a := &API{cfg: cfg, log: cfg.Log, mux: http.NewServeMux()}
	methods := []struct {
		method, path string
		h            http.HandlerFunc
	}{
		{http.MethodPost, retailcrm.PathCallEvent, a.handleCallEvent},
		{http.MethodPost, retailcrm.PathCallsUpload, a.handleCallsUpload},
		{http.MethodGet, retailcrm.PathManager, a.handleManagerQuery},
		{http.MethodGet, retailcrm.PathCredentials, a.handleCredentials},
		{http.MethodGet, retailcrm.PathVersions, a.handleAPIVersions},
	}
	for _, m := range methods {
		a.mux.HandleFunc(m.method+" "+m.path, m.h)
		allowed := m.method
		a.mux.HandleFunc(m.path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", allowed)
			retailcrm.WriteError(w, http.StatusMethodNotAllowed, "Method not allowed; use "+allowed+".", nil)
		})
	}
	a.mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		retailcrm.WriteError(w, http.StatusNotFound, retailcrm.MsgNotFound, nil)
	})
	return a
}

// ServeHTTP serves everything under /api/.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.mux.ServeHTTP(w, r) }

// auth checks the PBX's key the way retailCRM does, answering its errors.
// Call it after retailcrm.ReadForm, so that a key sent as a form field is
// seen; with a body that could not be read, only the header and the query
// count.
func (a *API) auth(w http.ResponseWriter, r *http.Request) bool {
	key := retailcrm.APIKeyFrom(r)
	if key == "" {
		retailcrm.WriteError(w, http.StatusUnauthorized, retailcrm.MsgKeyMissing, nil)
		return false
	}
	if subtle.ConstantTimeCompare([]byte(key), []byte(a.cfg.APIKey)) != 1 {
		retailcrm.WriteError(w, http.StatusForbidden, retailcrm.MsgKeyWrong, nil)
		return false
	}
	return true
}

// readForm reads a POST form (bounded) and authenticates it. It answers
// and returns false on any refusal: a body over the bound first (its key,
// maybe a form field, was never read: PHP v5 sends it there), then a key
// problem, so that a caller without the key learns nothing about its body.
func (a *API) readForm(w http.ResponseWriter, r *http.Request, maxBody int64) bool {
	_, formErr := retailcrm.ReadForm(r, maxBody)
	if errors.Is(formErr, retailcrm.ErrBodyTooLarge) {
		retailcrm.WriteValidationError(w, formErr)
		return false
	}
	if !a.auth(w, r) {
		return false
	}
	if formErr != nil {
		retailcrm.WriteValidationError(w, formErr)
		return false
	}
	return true
}

// handleCallEvent serves POST /api/v5/telephony/call/event.
func (a *API) handleCallEvent(w http.ResponseWriter, r *http.Request) {
	received := a.cfg.Now()
	ctx, trace := a.cfg.Trace.Start(r.Context())
	defer a.cfg.Trace.Finish(trace)
	r = r.WithContext(ctx)
	if !a.readForm(w, r, maxEventBody) {
		return
	}
	eventtrace.Mark(ctx, eventtrace.Read)
	ev, err := retailcrm.DecodeCallEvent(r.PostForm)
	if err != nil {
		retailcrm.WriteValidationError(w, err)
		return
	}
	trace.SetID(ev.CallExternalID)
	ce := call.Event{
		Type: ev.Type, CallID: ev.CallExternalID, Phone: ev.Phone, Line: ev.ExternalPhone,
		Site: ev.Site, HangupStatus: ev.HangupStatus, At: received.UTC(), Source: Source,
	}
	seen := map[string]bool{}
	notCodes, notUsers := []string{}, []any{}
	for _, c := range ev.Codes {
		op, ok := a.cfg.Operators.ByCode(c)
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
		op, ok := a.cfg.Operators.ByUserID(u)
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
	eventtrace.Mark(ctx, eventtrace.Decoded)
	if err := a.cfg.Apply(ctx, ce, received); err != nil {
		a.log.Error("call event not stored", "err", err)
		retailcrm.WriteError(w, http.StatusInternalServerError, "the relay could not store the event; retry", nil)
		return
	}
	// The PBX meant it for retailCRM: pass it on as it came (but for
	// normalised numbers), with every code and user id it named.
	if a.cfg.Forward != nil && ev.Type != retailcrm.TypeAnswer {
		fwd := ev
		fwd.Phone = phone.Normalize(ev.Phone, a.cfg.PhoneRegion)
		fwd.ExternalPhone = phone.Normalize(ev.ExternalPhone, a.cfg.PhoneRegion)
		if fwd.Site == "" {
			fwd.Site = a.cfg.Sites[fwd.ExternalPhone]
		}
		if err := a.cfg.Forward(r.Context(), fwd); err != nil {
			a.log.Error("call event not queued for retailCRM", "err", err)
			retailcrm.WriteError(w, http.StatusInternalServerError, "the relay could not store the event; retry", nil)
			return
		}
	}
	a.cfg.EventsIn.WithLabelValues("retailcrm").Inc()
	retailcrm.WriteSuccess(w, http.StatusOK, map[string]any{"notExistCodes": notCodes, "notExistUsers": notUsers})
}

// handleCallsUpload serves POST /api/v5/telephony/calls/upload: each call
// is stored durably for the history (and goes on to retailCRM, see the
// relay's uploads.go). A call whose externalId was uploaded before, at any
// time, is reported in duplicateCalls and stored again nowhere.
func (a *API) handleCallsUpload(w http.ResponseWriter, r *http.Request) {
	if !a.readForm(w, r, maxUploadBody) {
		return
	}
	calls, err := retailcrm.DecodeCallsUpload(r.PostForm, a.cfg.Location)
	if err != nil {
		retailcrm.WriteValidationError(w, err)
		return
	}
	dups := []string{}
	for _, c := range calls {
		c.Phone = phone.Normalize(c.Phone, a.cfg.PhoneRegion)
		c.ExternalPhone = phone.Normalize(c.ExternalPhone, a.cfg.PhoneRegion)
		if c.Site == "" && c.ExternalPhone != "" {
			c.Site = a.cfg.Sites[c.ExternalPhone]
		}
		b, _ := json.Marshal(c)
		dup, err := a.cfg.Uploads.PublishPBXUpload(r.Context(), b, c.ExternalID)
		if err != nil {
			a.log.Error("call upload not stored", "err", err)
			retailcrm.WriteError(w, http.StatusInternalServerError, "the relay could not store the calls; retry", nil)
			return
		}
		if dup {
			dups = append(dups, c.ExternalID)
		}
	}
	a.cfg.EventsIn.WithLabelValues("calls_upload").Add(float64(len(calls) - len(dups)))
	retailcrm.WriteSuccess(w, http.StatusOK, map[string]any{"processedCallsCount": len(calls) - len(dups), "duplicateCalls": dups})
}

// handleManagerQuery serves GET /api/v5/telephony/manager: the responsible
// manager of the caller, for the PBX to route an incoming call. The answer
// comes from the relay's own lookup (its cache, concurrent lookups merged)
// and the relay applies retailCRM's rule with what it knows: the manager is
// named only when they are a pult operator signed in with status free, and
// have an extension code; ignoreStatus=1 lifts the first two conditions.
// No retailCRM configured, or a number it does not know: no manager.
func (a *API) handleManagerQuery(w http.ResponseWriter, r *http.Request) {
	if !a.auth(w, r) {
		return
	}
	mq, err := retailcrm.ParseManagerQuery(r.URL.Query())
	if err != nil {
		retailcrm.WriteValidationError(w, err)
		return
	}
	num, perr := phone.Parse(mq.Phone, a.cfg.PhoneRegion)
	if a.cfg.Lookup == nil || perr != nil {
		retailcrm.WriteManager(w, nil, mq.Details)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), a.cfg.LookupTimeout)
	res, err := a.cfg.Lookup(ctx, num.E164)
	cancel()
	if err != nil {
		a.log.Warn("responsible manager lookup for the PBX failed", "err", err)
		w.Header().Set("Retry-After", "1")
		retailcrm.WriteError(w, http.StatusServiceUnavailable, "retailCRM did not answer the relay in time; try again", nil)
		return
	}
	a.cfg.EventsIn.WithLabelValues("manager_query").Inc()
	out := *res
	if m := res.Manager; m != nil {
		code, ok := a.cfg.Routable(m, mq.IgnoreStatus)
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

// handleCredentials serves GET /api/credentials: what this "retailCRM"
// offers the key, so that a PBX module's set-up check passes.
func (a *API) handleCredentials(w http.ResponseWriter, r *http.Request) {
	if !a.auth(w, r) {
		return
	}
	sites := []string{}
	for _, site := range a.cfg.Sites {
		if site != "" && !slices.Contains(sites, site) {
			sites = append(sites, site)
		}
	}
	slices.Sort(sites)
	retailcrm.WriteCredentials(w, sites)
}

// handleAPIVersions serves GET /api/api-versions.
func (a *API) handleAPIVersions(w http.ResponseWriter, r *http.Request) {
	if !a.auth(w, r) {
		return
	}
	retailcrm.WriteSuccess(w, http.StatusOK, map[string]any{"versions": []string{"5.0"}})
}

// person is the operator as a call record knows them.
func person(op operators.Operator) call.Person {
	return call.Person{ID: op.ID, Code: op.Code, Name: op.Name, UserID: op.UserID}
}
