package sim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/pult/pult/relay/retailcrm"
)

// Fault is a scripted one-off answer of the CRM simulator.
type Fault struct {
	// Path limits the fault to requests for this path (e.g.
	// retailcrm.PathCallsUpload); "" matches any request.
	Path string
	// Status is answered with a retailCRM-style error body (success false,
	// errorMsg Msg); ignored with Hang.
	Status int
	// Msg is the errorMsg; default "sim: scripted failure (<status text>)".
	Msg string
	// RetryAfter is sent as the Retry-After header when not empty.
	RetryAfter string
	// Hang makes the request hang until its client gives up.
	Hang bool
}

func (f Fault) reply() reply {
	msg := f.Msg
	if msg == "" {
		msg = "sim: scripted failure (" + http.StatusText(f.Status) + ")"
	}
	rep := failure(f.Status, msg, nil)
	if f.RetryAfter != "" {
		rep.header = http.Header{"Retry-After": {f.RetryAfter}}
	}
	return rep
}

// Script queues faults: each is used once, by the first later request it
// matches, before the key is checked. Requests no fault matches are served
// normally (subject to SetFailure, SetHang and SetDelay).
func (c *CRM) Script(faults ...Fault) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.faults = append(c.faults, faults...)
}

// takeFault removes and returns the first fault matching path; c.mu is held.
func (c *CRM) takeFault(path string) (Fault, bool) {
	for i, f := range c.faults {
		if f.Path == "" || f.Path == path {
			c.faults = slices.Delete(c.faults, i, i+1)
			return f, true
		}
	}
	return Fault{}, false
}

type rateLimits struct{ general, telephony int }

// SetRateLimit makes the simulator enforce retailCRM's request limits per
// API key: general requests per second for most methods, telephony for
// /api/v5/telephony/* (retailCRM's are 10 and 40). Beyond them it answers
// 429 with Retry-After: 1. Zero turns a limit off; both are off by default.
// Requests refused this way do not count.
func (c *CRM) SetRateLimit(general, telephony int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.limits = rateLimits{general, telephony}
}

// limit applies the rate limit to an authenticated request.
func (c *CRM) limit(key, path string) (reply, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	bucket, n := "general", c.limits.general
	if strings.HasPrefix(path, retailcrm.APIPrefix+"/telephony/") {
		bucket, n = "telephony", c.limits.telephony
	}
	if n <= 0 {
		return reply{}, false
	}
	now := time.Now()
	id := bucket + "\x00" + key
	recent := c.windows[id][:0]
	for _, t := range c.windows[id] {
		if now.Sub(t) < time.Second {
			recent = append(recent, t)
		}
	}
	if len(recent) >= n {
		c.windows[id] = recent
		rep := failure(http.StatusTooManyRequests, fmt.Sprintf("sim: more than %d %s requests per second with this API key", n, bucket), nil)
		rep.header = http.Header{"Retry-After": {"1"}}
		return rep, true
	}
	c.windows[id] = append(recent, now)
	return reply{}, false
}

// Modules returns the registered integration modules by code.
func (c *CRM) Modules() map[string]retailcrm.IntegrationModule {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]retailcrm.IntegrationModule, len(c.modules))
	for k, m := range c.modules {
		out[k] = cloneModule(m)
	}
	return out
}

// Module returns the integration module registered under code.
func (c *CRM) Module(code string) (retailcrm.IntegrationModule, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m, ok := c.modules[code]
	return cloneModule(m), ok
}

func cloneModule(m retailcrm.IntegrationModule) retailcrm.IntegrationModule {
	if m.Telephony != nil {
		t := *m.Telephony
		t.AdditionalCodes = slices.Clone(t.AdditionalCodes)
		t.ExternalPhones = slices.Clone(t.ExternalPhones)
		m.Telephony = &t
	}
	return m
}

// Keys an integration module may carry (as the relay sends it).
var moduleKeys = map[string][]string{
	"":                {"code", "integrationCode", "active", "name", "logo", "clientId", "accountUrl", "integrations"},
	"integrations":    {"telephony"},
	"telephony":       {"makeCallUrl", "changeUserStatusUrl", "allowEdit", "inputEventSupported", "outputEventSupported", "hangupEventSupported", "additionalCodes", "externalPhones"},
	"additionalCodes": {"userId", "code"},
	"externalPhones":  {"siteCode", "externalPhone"},
}

// unknownModuleKey names the first key of an integration module JSON that
// the schema does not have, or "".
func unknownModuleKey(b []byte) string {
	var walk func(prefix, kind string, raw json.RawMessage) string
	walk = func(prefix, kind string, raw json.RawMessage) string {
		raw = bytes.TrimSpace(raw)
		if len(raw) == 0 {
			return ""
		}
		if raw[0] == '[' {
			var items []json.RawMessage
			_ = json.Unmarshal(raw, &items)
			for i, it := range items {
				if k := walk(fmt.Sprintf("%s[%d]", prefix, i), kind, it); k != "" {
					return k
				}
			}
			return ""
		}
		if raw[0] != '{' {
			return ""
		}
		var m map[string]json.RawMessage
		if json.Unmarshal(raw, &m) != nil {
			return ""
		}
		for _, k := range slices.Sorted(maps.Keys(m)) {
			if !slices.Contains(moduleKeys[kind], k) {
				return prefix + "." + k
			}
			if _, nested := moduleKeys[k]; nested {
				if bad := walk(prefix+"."+k, k, m[k]); bad != "" {
					return bad
				}
			}
		}
		return ""
	}
	return walk("integrationModule", "", b)
}

// mistypedAdditionalCode names the first additionalCodes entry whose types
// are not those of retailCRM's model (userId an integer, code a string).
func mistypedAdditionalCode(b []byte) (field, msg string) {
	var m struct {
		Integrations struct {
			Telephony struct {
				AdditionalCodes []struct {
					UserID json.RawMessage `json:"userId"`
					Code   json.RawMessage `json:"code"`
				} `json:"additionalCodes"`
			} `json:"telephony"`
		} `json:"integrations"`
	}
	if json.Unmarshal(b, &m) != nil {
		return "", "" // ParseIntegrationModule names it
	}
	for i, ac := range m.Integrations.Telephony.AdditionalCodes {
		prefix := fmt.Sprintf("integrationModule.integrations.telephony.additionalCodes[%d]", i)
		var n int64
		if json.Unmarshal(ac.UserID, &n) != nil {
			return prefix + ".userId", "This value should be of type int."
		}
		var s string
		if json.Unmarshal(ac.Code, &s) != nil {
			return prefix + ".code", "This value should be of type string."
		}
	}
	return "", ""
}

// moduleEdit answers POST /integration-modules/{code}/edit.
func (c *CRM) moduleEdit(code string, r *http.Request, form url.Values) reply {
	for name := range form {
		if name != "integrationModule" {
			return invalidParams(name, "sim: unknown parameter")
		}
	}
	if vs := form["integrationModule"]; len(vs) == 1 {
		// A misspelt key is named as such, not as the key it lacks.
		if k := unknownModuleKey([]byte(vs[0])); k != "" {
			return invalidParams(k, "sim: unknown key")
		}
		if k, msg := mistypedAdditionalCode([]byte(vs[0])); k != "" {
			return invalidParams(k, msg)
		}
	}
	m, err := retailcrm.ParseIntegrationModule(r, maxCRMBody)
	if err != nil {
		return validationReply(err)
	}
	if m.Code != code {
		return invalidParams("integrationModule.code", fmt.Sprintf("sim: %q does not match the code in the URL, %q", m.Code, code))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	old, exists := c.modules[code]
	if exists && old.Telephony != nil && m.Telephony != nil {
		if m.Telephony.AdditionalCodes == nil {
			m.Telephony.AdditionalCodes = old.Telephony.AdditionalCodes
		}
		if m.Telephony.ExternalPhones == nil {
			m.Telephony.ExternalPhones = old.Telephony.ExternalPhones
		}
	}
	c.modules[code] = cloneModule(m)
	rep := success(nil)
	if !exists {
		rep.status = http.StatusCreated
	}
	return rep
}

// moduleGet answers GET /integration-modules/{code}.
func (c *CRM) moduleGet(code string, q url.Values) reply {
	if len(q) > 0 {
		return invalidParams(slices.Sorted(maps.Keys(q))[0], "sim: unknown parameter")
	}
	c.mu.Lock()
	m, ok := c.modules[code]
	c.mu.Unlock()
	if !ok || strings.Contains(code, "/") {
		return failure(http.StatusNotFound, "Not found", nil)
	}
	b, err := json.Marshal(m)
	if err != nil {
		return failure(http.StatusInternalServerError, "sim: "+err.Error(), nil)
	}
	return success(map[string]any{"integrationModule": json.RawMessage(b)})
}
