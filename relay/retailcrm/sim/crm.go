package sim

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/pult/pult/agent/phone"
	"github.com/pult/pult/relay/retailcrm"
)

// maxCRMBody bounds POST bodies, like retailCRM's front end does.
const maxCRMBody = 1 << 20

// Request is one request the CRM simulator received.
type Request struct {
	Method string
	Path   string
	Query  url.Values
	Header http.Header
	Form   url.Values // POST form fields
	At     time.Time
	Status int // the answer; 0 while in flight, StatusClientGone if abandoned
}

// CRM simulates retailCRM's API v5 as the relay uses it:
//
//	GET  /api/v5/telephony/manager?phone=…[&details=0|1][&ignoreStatus=0|1]
//	POST /api/v5/telephony/call/event     (form: event=<json>)
//	POST /api/v5/telephony/calls/upload   (form: calls=<json>)
//	POST /api/v5/users/{id}/status        (form: status=free|busy|dinner|break)
//	POST /api/v5/integration-modules/{code}/edit (form: integrationModule=<json>)
//	GET  /api/v5/integration-modules/{code}
//
// Every request needs the configured key in X-API-KEY (missing: 401, wrong:
// 403, both with retailCRM's errorMsg); an apiKey in the URL is refused, since
// the relay must never put it there. Clients are found by their normalised
// number. The manager is returned only when retailCRM would: the client has
// one, the manager has an extension code, and is free (unless ignoreStatus=1).
// Without details=1 only the manager is returned. Uploads and call events are
// validated with the retailcrm package's parsers and recorded. Dates of
// uploads are read in UTC. Integration modules are validated the same way,
// refusing unknown keys; an edit creates (201) or updates (200) the module,
// keeping additionalCodes and externalPhones when the edit leaves them out.
// Extension codes and users of registered telephonies count as known in
// call events' notExistCodes and notExistUsers.
//
// Rate limits (SetRateLimit) are off unless set; Script queues one-off
// failures and hangs.
type CRM struct {
	apiKey string

	mu         sync.Mutex
	accountURL string
	clients    map[string]*crmClient // by E.164
	statuses   map[string]string     // user id → status; absent = free
	knobs      knobs
	failure    int
	reqs       []Request
	events     []retailcrm.CallEvent
	uploads    []retailcrm.UploadCall
	uploadIDs  map[string]bool
	changed    notifier
	modules    map[string]retailcrm.IntegrationModule
	faults     []Fault
	limits     rateLimits
	windows    map[string][]time.Time // rate-limit bucket → recent requests
}

type crmClient struct {
	customer retailcrm.Customer
	manager  *retailcrm.Manager
}

// NewCRM is a simulator accepting apiKey, with an empty directory. Its links
// point at https://demo.retailcrm.ru unless SetAccountURL says otherwise.
func NewCRM(apiKey string) *CRM {
	return &CRM{
		apiKey:     apiKey,
		accountURL: "https://demo.retailcrm.ru",
		clients:    map[string]*crmClient{},
		statuses:   map[string]string{},
		uploadIDs:  map[string]bool{},
		modules:    map[string]retailcrm.IntegrationModule{},
		windows:    map[string][]time.Time{},
	}
}

// SetAccountURL sets the base of the links in manager answers.
func (c *CRM) SetAccountURL(u string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.accountURL = strings.TrimRight(u, "/")
}

// AddClient puts a client in the directory under phone (any human spelling;
// the customer's other phones are added too) with m as the responsible
// manager (nil: none).
func (c *CRM) AddClient(number string, cu retailcrm.Customer, m *retailcrm.Manager) error {
	n, err := phone.Parse(number, phone.DefaultRegion)
	if err != nil {
		return fmt.Errorf("sim: add client: %w", err)
	}
	keys := []string{n.E164}
	for _, p := range cu.Phones {
		if pn, err := phone.Parse(p, phone.DefaultRegion); err == nil && !slices.Contains(keys, pn.E164) {
			keys = append(keys, pn.E164)
		}
	}
	if len(cu.Phones) == 0 {
		cu.Phones = []string{n.International()}
	}
	cu.Phones = slices.Clone(cu.Phones)
	if m != nil {
		mc := *m
		m = &mc
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, k := range keys {
		c.clients[k] = &crmClient{customer: cu, manager: m}
	}
	return nil
}

// SetUserStatus sets a CRM user's status (free, busy, dinner, break), as the
// user would in the CRM. Only free managers are returned by the manager
// lookup. Users start free.
func (c *CRM) SetUserStatus(userID, status string) error {
	switch status {
	case retailcrm.StatusFree, retailcrm.StatusBusy, retailcrm.StatusDinner, retailcrm.StatusBreak:
	default:
		return fmt.Errorf("sim: unknown status %q", status)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.statuses[userID] = status
	return nil
}

// UserStatus is a user's current status.
func (c *CRM) UserStatus(userID string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.userStatus(userID)
}

func (c *CRM) userStatus(userID string) string {
	if s, ok := c.statuses[userID]; ok {
		return s
	}
	return retailcrm.StatusFree
}

// SetDelay makes every answer wait d (0: none).
func (c *CRM) SetDelay(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.knobs.delay = d
}

// SetHang makes every request hang until its client gives up.
func (c *CRM) SetHang(hang bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.knobs.hang = hang
}

// SetFailure makes every request fail with status and a retailCRM-style error
// body (with Retry-After: 1 for 429 and 503); 0 restores normal service.
func (c *CRM) SetFailure(status int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.failure = status
}

// Requests returns a copy of every request received, in order.
func (c *CRM) Requests() []Request {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.reqs)
}

// Count is the number of requests received.
func (c *CRM) Count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.reqs)
}

// Wait blocks until at least n requests have been answered (or abandoned)
// and returns all requests, or fails when ctx ends.
func (c *CRM) Wait(ctx context.Context, n int) ([]Request, error) {
	err := waitFor(ctx, &c.mu, &c.changed, func() bool {
		done := 0
		for _, r := range c.reqs {
			if r.Status != 0 {
				done++
			}
		}
		return done >= n
	})
	if err != nil {
		return nil, fmt.Errorf("sim: waiting for %d CRM requests (got %d): %w", n, c.Count(), err)
	}
	return c.Requests(), nil
}

// Events returns the call events accepted, in order.
func (c *CRM) Events() []retailcrm.CallEvent {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.events)
}

// Uploads returns the calls accepted by calls/upload, duplicates left out.
func (c *CRM) Uploads() []retailcrm.UploadCall {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.uploads)
}

// reply is an answer decided before it is written.
type reply struct {
	status int
	body   map[string]any
	header http.Header
}

func success(extra map[string]any) reply {
	body := map[string]any{"success": true}
	for k, v := range extra {
		body[k] = v
	}
	return reply{status: http.StatusOK, body: body}
}

func failure(status int, msg string, errs map[string]string) reply {
	body := map[string]any{"success": false, "errorMsg": msg}
	if len(errs) > 0 {
		body["errors"] = errs
	}
	return reply{status: status, body: body}
}

func invalidParams(field, msg string) reply {
	return failure(http.StatusBadRequest, "Errors in the input parameters", map[string]string{field: msg})
}

// ServeHTTP implements http.Handler.
func (c *CRM) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	form, formErr := readCRMForm(r)
	c.mu.Lock()
	idx := len(c.reqs)
	c.reqs = append(c.reqs, Request{
		Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), Header: r.Header.Clone(),
		Form: cloneValues(form), At: time.Now(),
	})
	k, fail := c.knobs, c.failure
	fault, scripted := c.takeFault(r.URL.Path)
	c.changed.broadcast()
	c.mu.Unlock()

	if scripted && fault.Hang {
		k.hang = true
	}
	var rep reply
	switch {
	case !k.stall(r.Context()):
		c.finish(idx, StatusClientGone)
		return
	case scripted:
		rep = fault.reply()
	case fail != 0:
		rep = failure(fail, "sim: simulated failure ("+http.StatusText(fail)+")", nil)
		if fail == http.StatusTooManyRequests || fail == http.StatusServiceUnavailable {
			rep.header = http.Header{"Retry-After": {"1"}}
		}
	default:
		rep = c.route(r, form, formErr)
	}
	c.finish(idx, rep.status)
	for key, vs := range rep.header {
		w.Header()[key] = vs
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(rep.status)
	_ = json.NewEncoder(w).Encode(rep.body)
}

func (c *CRM) finish(idx, status int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reqs[idx].Status = status
	c.changed.broadcast()
}

// readCRMForm reads a POST body as retailCRM does (urlencoded or multipart,
// bounded) and leaves it in r.PostForm for the retailcrm parsers.
func readCRMForm(r *http.Request) (url.Values, error) {
	if r.Method != http.MethodPost {
		return nil, nil
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || (mt != "application/x-www-form-urlencoded" && mt != "multipart/form-data") {
		return nil, errors.New("Content-Type must be application/x-www-form-urlencoded or multipart/form-data")
	}
	r.Body = http.MaxBytesReader(nil, r.Body, maxCRMBody)
	if mt == "multipart/form-data" {
		err = r.ParseMultipartForm(maxCRMBody)
	} else {
		err = r.ParseForm()
	}
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, fmt.Errorf("request body exceeds %d bytes: %w", maxCRMBody, retailcrm.ErrBodyTooLarge)
		}
		return nil, fmt.Errorf("malformed body: %v", err)
	}
	return r.PostForm, nil
}

func (c *CRM) route(r *http.Request, form url.Values, formErr error) reply {
	key := strings.TrimSpace(r.Header.Get(retailcrm.HeaderAPIKey))
	switch {
	case r.URL.Query().Has(retailcrm.ParamAPIKey):
		return failure(http.StatusBadRequest, "sim: the API key must be sent in the X-API-KEY header, never in the URL", nil)
	case key == "":
		return failure(http.StatusUnauthorized, `"apiKey" is missing.`, nil)
	case subtle.ConstantTimeCompare([]byte(key), []byte(c.apiKey)) != 1 || c.apiKey == "":
		return failure(http.StatusForbidden, `Wrong "apiKey" value.`, nil)
	}

	path := r.URL.Path
	if rep, limited := c.limit(key, path); limited {
		return rep
	}
	method := http.MethodPost
	var handle func() reply
	switch {
	case path == retailcrm.PathManager:
		method = http.MethodGet
		handle = func() reply { return c.manager(r.URL.Query()) }
	case path == retailcrm.PathCallEvent:
		handle = func() reply { return c.callEvent(r) }
	case path == retailcrm.PathCallsUpload:
		handle = func() reply { return c.callsUpload(r) }
	case strings.HasPrefix(path, retailcrm.APIPrefix+"/users/") && strings.HasSuffix(path, "/status"):
		id := strings.TrimSuffix(strings.TrimPrefix(path, retailcrm.APIPrefix+"/users/"), "/status")
		handle = func() reply { return c.userStatusEdit(id, form) }
	case strings.HasPrefix(path, retailcrm.PathIntegrationModules+"/") && strings.HasSuffix(path, "/edit"):
		code := strings.TrimSuffix(strings.TrimPrefix(path, retailcrm.PathIntegrationModules+"/"), "/edit")
		handle = func() reply { return c.moduleEdit(code, r, form) }
	case strings.HasPrefix(path, retailcrm.PathIntegrationModules+"/"):
		method = http.MethodGet
		code := strings.TrimPrefix(path, retailcrm.PathIntegrationModules+"/")
		handle = func() reply { return c.moduleGet(code, r.URL.Query()) }
	default:
		return failure(http.StatusNotFound, retailcrm.MsgNotFound, nil)
	}
	if r.Method != method {
		rep := failure(http.StatusMethodNotAllowed, fmt.Sprintf("sim: %s wants %s, not %s", path, method, r.Method), nil)
		rep.header = http.Header{"Allow": {method}}
		return rep
	}
	if errors.Is(formErr, retailcrm.ErrBodyTooLarge) {
		return failure(http.StatusRequestEntityTooLarge, formErr.Error(), nil)
	}
	if formErr != nil {
		return failure(http.StatusBadRequest, formErr.Error(), nil)
	}
	if method == http.MethodPost && len(r.URL.Query()) > 0 {
		return failure(http.StatusBadRequest, "sim: POST parameters belong in the body, not in the URL", nil)
	}
	return handle()
}

// manager answers GET /telephony/manager.
func (c *CRM) manager(q url.Values) reply {
	for name, vs := range q {
		switch name {
		case "phone", "details", "ignoreStatus":
		default:
			return invalidParams(name, "sim: unknown parameter")
		}
		if len(vs) != 1 {
			return invalidParams(name, "must be given once")
		}
	}
	p := q.Get("phone")
	switch {
	case strings.TrimSpace(p) == "":
		return invalidParams("phone", "This value should not be blank.")
	case len(p) > retailcrm.MaxPhoneLen || strings.ContainsFunc(p, unicode.IsControl):
		return invalidParams("phone", "This value is not valid.")
	}
	details, ok := flag01(q, "details")
	if !ok {
		return invalidParams("details", "must be 0 or 1")
	}
	ignoreStatus, ok := flag01(q, "ignoreStatus")
	if !ok {
		return invalidParams("ignoreStatus", "must be 0 or 1")
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	var cl *crmClient
	if n, err := phone.Parse(p, phone.DefaultRegion); err == nil {
		cl = c.clients[n.E164]
	}
	if cl == nil {
		// retailCRM knows no client with that number.
		return failure(http.StatusNotFound, retailcrm.MsgNotFound, nil)
	}
	extra := map[string]any{}
	if cl.manager != nil && cl.manager.Code != "" &&
		(ignoreStatus || c.userStatus(cl.manager.ID) == retailcrm.StatusFree) {
		m := cl.manager
		if details {
			extra["manager"] = map[string]any{
				"id": idValue(m.ID), "firstName": m.FirstName, "lastName": m.LastName,
				"patronymic": m.Patronymic, "email": m.Email, "code": m.Code,
			}
		} else {
			extra["manager"] = map[string]any{"id": idValue(m.ID), "code": m.Code}
		}
	}
	if !details {
		return success(extra)
	}
	cu := cl.customer
	phones := make([]map[string]any, len(cu.Phones))
	for i, ph := range cu.Phones {
		phones[i] = map[string]any{"number": ph}
	}
	customer := map[string]any{
		"id": idValue(cu.ID), "firstName": cu.FirstName, "lastName": cu.LastName,
		"patronymic": cu.Patronymic, "email": cu.Email, "phones": phones,
	}
	if cu.ExternalID != "" {
		customer["externalId"] = cu.ExternalID
	}
	extra["customer"] = customer
	extra["links"] = map[string]any{
		"customerLink": c.accountURL + "/customers/" + url.PathEscape(cu.ID),
		"newOrderLink": c.accountURL + "/orders/add?customerId=" + url.QueryEscape(cu.ID),
	}
	return success(extra)
}

// callEvent answers POST /telephony/call/event.
func (c *CRM) callEvent(r *http.Request) reply {
	ev, err := retailcrm.ParseCallEvent(r, maxCRMBody)
	if err != nil {
		return validationReply(err)
	}
	if ev.Type != retailcrm.TypeIn && ev.Type != retailcrm.TypeOut && ev.Type != retailcrm.TypeHangup {
		// retailCRM knows only these; pult's "answer" extension is refused.
		return invalidParams("type", "The value you selected is not a valid choice.")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.events = append(c.events, ev)
	codes, users := map[string]bool{}, map[string]bool{}
	for _, cl := range c.clients {
		if cl.manager != nil {
			codes[cl.manager.Code] = true
			users[cl.manager.ID] = true
		}
	}
	for _, m := range c.modules {
		if m.Telephony != nil {
			for _, ac := range m.Telephony.AdditionalCodes {
				codes[ac.Code] = true
				users[ac.UserID] = true
			}
		}
	}
	extra := map[string]any{}
	var noCodes, noUsers []string
	for _, code := range ev.Codes {
		if !codes[code] {
			noCodes = append(noCodes, code)
		}
	}
	for _, u := range ev.UserIDs {
		if !users[u] {
			noUsers = append(noUsers, u)
		}
	}
	if len(noCodes) > 0 {
		extra["notExistCodes"] = noCodes
	}
	if len(noUsers) > 0 {
		extra["notExistUsers"] = noUsers
	}
	return success(extra)
}

// callsUpload answers POST /telephony/calls/upload; a call whose externalId
// was uploaded before is reported as a duplicate and not stored again.
func (c *CRM) callsUpload(r *http.Request) reply {
	calls, err := retailcrm.ParseCallsUpload(r, maxCRMBody, time.UTC)
	if err != nil {
		return validationReply(err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	dups := []string{}
	processed := 0
	for _, call := range calls {
		if call.ExternalID != "" && c.uploadIDs[call.ExternalID] {
			dups = append(dups, call.ExternalID)
			continue
		}
		if call.ExternalID != "" {
			c.uploadIDs[call.ExternalID] = true
		}
		c.uploads = append(c.uploads, call)
		processed++
	}
	return success(map[string]any{"processedCallsCount": processed, "duplicateCalls": dups})
}

// userStatusEdit answers POST /users/{id}/status.
func (c *CRM) userStatusEdit(id string, form url.Values) reply {
	if id == "" || strings.Trim(id, "0123456789") != "" {
		return failure(http.StatusNotFound, retailcrm.MsgNotFound, nil)
	}
	vs := form["status"]
	if len(vs) != 1 {
		return invalidParams("status", "This value should not be blank.")
	}
	if err := c.SetUserStatus(id, vs[0]); err != nil {
		return invalidParams("status", "The value you selected is not a valid choice.")
	}
	return success(nil)
}

func validationReply(err error) reply {
	var ve *retailcrm.ValidationError
	switch {
	case errors.Is(err, retailcrm.ErrBodyTooLarge):
		return failure(http.StatusRequestEntityTooLarge, err.Error(), nil)
	case errors.As(err, &ve) && ve.Field != "":
		return failure(http.StatusBadRequest, "Errors in the input parameters", ve.Errors())
	}
	return failure(http.StatusBadRequest, err.Error(), nil)
}

// flag01 reads an optional 0/1 parameter.
func flag01(q url.Values, name string) (value, ok bool) {
	switch q.Get(name) {
	case "", "0":
		return false, !q.Has(name) || q.Get(name) == "0"
	case "1":
		return true, true
	}
	return false, false
}

// idValue writes numeric ids as JSON numbers, as retailCRM does.
func idValue(s string) any {
	if s != "" && len(s) <= 15 && strings.Trim(s, "0123456789") == "" && (s == "0" || s[0] != '0') {
		return json.Number(s)
	}
	return s
}

func cloneValues(v url.Values) url.Values {
	if v == nil {
		return nil
	}
	out := make(url.Values, len(v))
	for k, vs := range v {
		out[k] = slices.Clone(vs)
	}
	return out
}
