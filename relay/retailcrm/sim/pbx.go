package sim

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pult/pult/agent/phone"
	"github.com/pult/pult/relay/retailcrm"
)

// Kinds of PBX requests.
const (
	KindMakeCall     = "make-call"
	KindChangeStatus = "change-status"
)

// PBXRequest is one request the PBX simulator received.
type PBXRequest struct {
	Kind   string // KindMakeCall, KindChangeStatus, or "" for an unknown path
	Method string
	Path   string
	Query  url.Values
	At     time.Time
	Status int    // the answer; 0 while in flight, StatusClientGone if abandoned
	Err    string // why the request was refused; "" when accepted
}

// PBX simulates a PBX integrated with retailCRM: it serves the makeCallUrl
// and changeUserStatusUrl queries exactly as retailCRM sends them. It refuses
// (and records why) any other method than GET, a missing, blank or repeated
// parameter, any parameter retailCRM does not send, a wrong clientId (403),
// an unknown status, an implausible phone number, and a "+" that arrived
// unescaped. A valid make-call is answered with the status set by
// SetMakeCallStatus (200 by default) and, when that is 200, reported to
// OnMakeCall; a valid change-status always gets 200.
//
// Set the exported fields before serving; NewPBX fills in the defaults.
type PBX struct {
	ClientID         string // the clientId registered with retailCRM; required
	MakeCallPath     string // default "/make-call"
	ChangeStatusPath string // default "/change-status"
	Region           string // for phone numbers without a country code; default RU

	// OnMakeCall, if set, is called for every call the PBX starts, before
	// the answer is written. It must not block: start a goroutine for the
	// simulated call.
	OnMakeCall func(retailcrm.MakeCall)
	// OnChangeStatus, if set, is called for every accepted status change.
	OnChangeStatus func(retailcrm.ChangeStatus)

	mu             sync.Mutex
	knobs          knobs
	makeCallStatus int
	calls          []PBXRequest
	changed        notifier
}

// NewPBX is a PBX simulator for clientID with the default paths.
func NewPBX(clientID string) *PBX {
	return &PBX{ClientID: clientID, MakeCallPath: "/make-call", ChangeStatusPath: "/change-status"}
}

// SetMakeCallStatus sets the status valid make-call requests get (0 or 200:
// success; anything else: the call failed to start).
func (p *PBX) SetMakeCallStatus(status int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.makeCallStatus = status
}

// SetDelay makes every answer wait d (0: none).
func (p *PBX) SetDelay(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.knobs.delay = d
}

// SetHang makes every request hang until its client gives up.
func (p *PBX) SetHang(hang bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.knobs.hang = hang
}

// Calls returns a copy of every request received, in order.
func (p *PBX) Calls() []PBXRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.calls)
}

// Wait blocks until at least n requests of kind ("" for any) have been
// answered or abandoned, and returns those, in order; it fails when ctx ends.
func (p *PBX) Wait(ctx context.Context, kind string, n int) ([]PBXRequest, error) {
	return p.wait(ctx, kind, n, func(r PBXRequest) bool { return r.Status != 0 })
}

// WaitArrived is Wait counting requests as soon as they arrive, before they
// are answered (Status may still be 0): for tests that make the PBX hang.
func (p *PBX) WaitArrived(ctx context.Context, kind string, n int) ([]PBXRequest, error) {
	return p.wait(ctx, kind, n, func(PBXRequest) bool { return true })
}

func (p *PBX) wait(ctx context.Context, kind string, n int, counts func(PBXRequest) bool) ([]PBXRequest, error) {
	var out []PBXRequest
	err := waitFor(ctx, &p.mu, &p.changed, func() bool {
		out = out[:0]
		for _, r := range p.calls {
			if (kind == "" || r.Kind == kind) && counts(r) {
				out = append(out, r)
			}
		}
		return len(out) >= n
	})
	if err != nil {
		return nil, fmt.Errorf("sim: waiting for %d PBX %q requests (got %d): %w", n, kind, len(out), err)
	}
	return slices.Clone(out), nil
}

func (p *PBX) paths() (makeCall, changeStatus string) {
	makeCall, changeStatus = p.MakeCallPath, p.ChangeStatusPath
	if makeCall == "" {
		makeCall = "/make-call"
	}
	if changeStatus == "" {
		changeStatus = "/change-status"
	}
	return makeCall, changeStatus
}

// ServeHTTP implements http.Handler.
func (p *PBX) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	makeCallPath, changeStatusPath := p.paths()
	kind := ""
	switch r.URL.Path {
	case makeCallPath:
		kind = KindMakeCall
	case changeStatusPath:
		kind = KindChangeStatus
	}
	q, qErr := url.ParseQuery(r.URL.RawQuery)
	p.mu.Lock()
	idx := len(p.calls)
	p.calls = append(p.calls, PBXRequest{
		Kind: kind, Method: r.Method, Path: r.URL.Path, Query: q, At: time.Now(),
	})
	k, mcStatus := p.knobs, p.makeCallStatus
	p.changed.broadcast()
	p.mu.Unlock()

	if !k.stall(r.Context()) {
		p.finish(idx, StatusClientGone, "client went away")
		return
	}
	status, reason := p.check(r, kind, q, qErr, mcStatus)
	p.finish(idx, status, reason)
	if status == http.StatusMethodNotAllowed {
		w.Header().Set("Allow", http.MethodGet)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	if reason == "" {
		reason = http.StatusText(status)
	}
	_, _ = fmt.Fprintln(w, reason)
}

func (p *PBX) finish(idx, status int, reason string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls[idx].Status = status
	p.calls[idx].Err = reason
	p.changed.broadcast()
}

// check validates a request and decides the answer: status and, for a
// refusal, why.
func (p *PBX) check(r *http.Request, kind string, q url.Values, qErr error, mcStatus int) (int, string) {
	if kind == "" {
		return http.StatusNotFound, "unknown path " + r.URL.Path
	}
	if r.Method != http.MethodGet {
		return http.StatusMethodNotAllowed, "retailCRM sends GET, not " + r.Method
	}
	if qErr != nil {
		return http.StatusBadRequest, "malformed query: " + qErr.Error()
	}
	allowed := []string{"clientId", "userId", "code", "status"}
	if kind == KindMakeCall {
		allowed = []string{"clientId", "code", "phone", "userId", "externalPhone"}
	}
	for name, vs := range q {
		if !slices.Contains(allowed, name) {
			return http.StatusBadRequest, fmt.Sprintf("unexpected parameter %q", name)
		}
		if len(vs) != 1 {
			return http.StatusBadRequest, fmt.Sprintf("parameter %q given %d times", name, len(vs))
		}
		if vs[0] == "" {
			return http.StatusBadRequest, fmt.Sprintf("parameter %q is empty", name)
		}
	}
	if !q.Has("clientId") {
		return http.StatusBadRequest, `parameter "clientId" is missing`
	}
	if !retailcrm.ClientIDEqual(q.Get("clientId"), p.ClientID) {
		return http.StatusForbidden, "wrong clientId"
	}

	if kind == KindChangeStatus {
		cs, err := retailcrm.ParseChangeStatus(q)
		if err != nil {
			return http.StatusBadRequest, err.Error()
		}
		if p.OnChangeStatus != nil {
			p.OnChangeStatus(cs)
		}
		return http.StatusOK, ""
	}

	for _, name := range []string{"phone", "externalPhone"} {
		if strings.HasPrefix(q.Get(name), " ") {
			return http.StatusBadRequest, fmt.Sprintf(`%s starts with a space: a "+" must be escaped as %%2B`, name)
		}
	}
	mc, err := retailcrm.ParseMakeCall(q)
	if err != nil {
		return http.StatusBadRequest, err.Error()
	}
	region := p.Region
	if region == "" {
		region = phone.DefaultRegion
	}
	if _, err := phone.Parse(mc.Phone, region); err != nil {
		return http.StatusBadRequest, "phone: " + err.Error()
	}
	if mc.ExternalPhone != "" {
		if _, err := phone.Parse(mc.ExternalPhone, region); err != nil {
			return http.StatusBadRequest, "externalPhone: " + err.Error()
		}
	}
	if mcStatus == 0 {
		mcStatus = http.StatusOK
	}
	if mcStatus == http.StatusOK && p.OnMakeCall != nil {
		p.OnMakeCall(mc)
	}
	if mcStatus != http.StatusOK {
		return mcStatus, "sim: the PBX could not start the call"
	}
	return mcStatus, ""
}
