// Package fake is a strict fake of Calltouch's server callback API for
// tests: an httptest server answering
//
//	POST /widget-service/v1/api/widget-request/user-form/create
//	Access-Token: <token>
//	Content-Type: application/json
//
// It refuses what Calltouch documents it refuses — malformed JSON (code 1),
// a route key without an enabled widget (10003), an unknown session (10004),
// the per-session, per-phone and minimum-interval limits (10005–10007, off
// unless set), a phone that is not 11 digits 7xxxxxxxxxx or is 8-800/8-804,
// more than 5 fields or 10 tags, lengths over the limits — and a little more
// (unknown fields, wrong JSON types, a wrong Content-Type), so tests notice
// a client that drifts from the wire. It allows 5 requests per second from
// one IP address, as Calltouch does, answering 429 beyond that
// (SetRateLimit changes it).
//
// Answers follow the shape Calltouch is observed to use: 200
// {"data":{"widgetRequestId":N}}; 400
// {"data":{"apiErrorData":{"errorCode":N,"errorMessage":"…"}}} with the
// seed's Russian messages; 400
// {"data":{"validationErrorData":{"violations":[{"propertyPath":"…","message":"…"}]}}};
// 403 {"message":"Invalid credentials"} for a wrong token.
//
// Tests can script answers (a status, an error code, Retry-After, a hang),
// and read every request, the peak rate per second and the requests created.
package fake

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/pult/pult/relay/calltouch"
)

// StatusClientGone is recorded for a request whose client went away before
// the fake answered (a scripted hang).
const StatusClientGone = 499

// DefaultRateLimit is Calltouch's limit: requests per second from one IP.
const DefaultRateLimit = 5

const maxBody = 1 << 20

// messages are the seed's texts of Calltouch's error codes.
var messages = map[int]string{
	calltouch.CodeBadJSON:      "Синтаксическая ошибка JSON в запросе или запрос пустой",
	calltouch.CodeNoMinutes:    "Невозможно создать заявку виджета, недостаточно минут обратного звонка",
	calltouch.CodeServiceOff:   "Невозможно создать заявку виджета, услуга обратного звонка не включена",
	calltouch.CodeNoWidget:     "Невозможно создать заявку виджета, не найдено включенных виджетов с указанным ключом",
	calltouch.CodeNoSession:    "Невозможно создать заявку виджета, указанная сессия не найдена",
	calltouch.CodeSessionLimit: "Превышен лимит отправки заявок в рамках сессии",
	calltouch.CodePhoneLimit:   "Превышен лимит отправки заявок на один и тот же номер телефона",
	calltouch.CodeTooFrequent:  "Превышен лимит минимального интервала между отправкой заявок по номеру телефону или сессии",
}

// Message is the seed's (Russian) text of a Calltouch error code, which the
// fake answers as errorMessage; "" for codes the seed does not list.
func Message(code int) string { return messages[code] }

// Request is one request the fake received.
type Request struct {
	Method   string
	Path     string
	Header   http.Header
	Body     []byte
	RemoteIP string
	At       time.Time
	Status   int    // the answer; 0 while in flight, StatusClientGone if abandoned
	Code     int    // the errorCode answered, if any
	Refusal  string // why it was refused ("" when accepted or scripted)
}

// Answer scripts the answer to one request. It is used before any check,
// the rate limit included.
type Answer struct {
	Status     int    // HTTP status; 0 means 400 with a Code, else 200 (processed normally)
	Code       int    // a Calltouch errorCode to answer with; 0 none
	Message    string // errorMessage (or message); default Message(Code) or a scripted text
	RetryAfter string // a Retry-After header value, sent when not empty
	Hang       bool   // never answer: wait until the client gives up or Close
}

// Created is a callback request the fake accepted.
type Created struct {
	ID       string            // widgetRequestId answered
	RouteKey string            // routeKey
	Request  calltouch.Request // as received; ScheduleTime read in Moscow time
	Schedule string            // scheduleTime as received
	At       time.Time
}

// Server is a fake Calltouch on a loopback httptest server. Its methods are
// safe for concurrent use.
type Server struct {
	srv       *httptest.Server
	token     string
	done      chan struct{}
	closeOnce sync.Once

	mu            sync.Mutex
	routeKeys     map[string]bool
	sessions      map[string]bool
	rateLimit     int
	phoneInterval time.Duration
	phoneLimit    int
	sessionLimit  int
	script        []Answer
	reqs          []Request
	created       []Created
	nextID        int64
	executed      map[string][]time.Time // by client IP, within the last second
	phoneCount    map[string]int         // accepted without a session, by phone
	sessionCount  map[string]int         // accepted, by session
	lastPhone     map[string]time.Time   // last accepted, by phone
	lastSession   map[string]time.Time   // last accepted, by session
	changed       chan struct{}
}

// NewServer starts a fake accepting token, with enabled widgets for
// routeKeys. The caller closes it.
func NewServer(token string, routeKeys ...string) *Server {
	s := &Server{
		token:        token,
		done:         make(chan struct{}),
		routeKeys:    map[string]bool{},
		sessions:     map[string]bool{},
		rateLimit:    DefaultRateLimit,
		nextID:       242839777,
		executed:     map[string][]time.Time{},
		phoneCount:   map[string]int{},
		sessionCount: map[string]int{},
		lastPhone:    map[string]time.Time{},
		lastSession:  map[string]time.Time{},
		changed:      make(chan struct{}),
	}
	for _, k := range routeKeys {
		s.routeKeys[k] = true
	}
	s.srv = httptest.NewServer(s)
	return s
}

// URL is the API root, for calltouch.Client.BaseURL.
func (s *Server) URL() string { return s.srv.URL }

// Client is an HTTP client for the server.
func (s *Server) Client() *http.Client { return s.srv.Client() }

// Close releases hanging requests and stops the server.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		close(s.done)
		s.srv.Close()
	})
}

// AddRouteKey enables a widget with key k.
func (s *Server) AddRouteKey(k string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.routeKeys[k] = true
}

// AddSession makes a Calltouch session id known; unknown ones get 10004.
func (s *Server) AddSession(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sessions[id] = true
}

// SetRateLimit sets how many requests per second one IP address may send
// (0: unlimited).
func (s *Server) SetRateLimit(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rateLimit = n
}

// SetPhoneInterval refuses a request (10007) when one for the same phone or
// session was accepted less than d ago (0: off).
func (s *Server) SetPhoneInterval(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.phoneInterval = d
}

// SetPhoneLimit refuses (10006) a request without a session once n were
// accepted for the same phone (0: off).
func (s *Server) SetPhoneLimit(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.phoneLimit = n
}

// SetSessionLimit refuses (10005) a request once n were accepted in the same
// session (0: off).
func (s *Server) SetSessionLimit(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sessionLimit = n
}

// Script queues answers for the next requests, one each, in order; when the
// queue is empty the fake answers normally.
func (s *Server) Script(answers ...Answer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.script = append(s.script, answers...)
}

// Requests returns a copy of every request received, in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := slices.Clone(s.reqs)
	for i := range out {
		out[i].Header = out[i].Header.Clone()
		out[i].Body = slices.Clone(out[i].Body)
	}
	return out
}

// Count is the number of requests received.
func (s *Server) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.reqs)
}

// MaxPerSecond is the largest number of requests that arrived within any
// one second.
func (s *Server) MaxPerSecond() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	peak, lo := 0, 0
	for hi := range s.reqs {
		for s.reqs[hi].At.Sub(s.reqs[lo].At) >= time.Second {
			lo++
		}
		peak = max(peak, hi-lo+1)
	}
	return peak
}

// Created returns the callback requests accepted, in order.
func (s *Server) Created() []Created {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := slices.Clone(s.created)
	for i := range out {
		r := &out[i].Request
		r.Fields, r.Tags = slices.Clone(r.Fields), slices.Clone(r.Tags)
	}
	return out
}

// Wait blocks until at least n requests have been answered (or abandoned),
// and returns every request, or fails when ctx ends.
func (s *Server) Wait(ctx context.Context, n int) ([]Request, error) {
	for {
		s.mu.Lock()
		done := 0
		for _, r := range s.reqs {
			if r.Status != 0 {
				done++
			}
		}
		ch := s.changed
		s.mu.Unlock()
		if done >= n {
			return s.Requests(), nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, fmt.Errorf("fake calltouch: waiting for %d requests (%d answered): %w", n, done, ctx.Err())
		}
	}
}

func (s *Server) broadcast() {
	close(s.changed)
	s.changed = make(chan struct{})
}

type reply struct {
	status  int
	code    int
	body    any
	header  http.Header
	refusal string
}

func apiError(code int, msg string) reply {
	if msg == "" {
		msg = messages[code]
	}
	return reply{
		status: http.StatusBadRequest, code: code, refusal: msg,
		body: map[string]any{"data": map[string]any{"apiErrorData": map[string]any{"errorCode": code, "errorMessage": msg}}},
	}
}

func violation(field, msg string) reply {
	return reply{
		status: http.StatusBadRequest, refusal: field + ": " + msg,
		body: map[string]any{"data": map[string]any{"validationErrorData": map[string]any{
			"violations": []map[string]string{{"propertyPath": field, "message": msg}},
		}}},
	}
}

func plain(status int, msg string) reply {
	return reply{status: status, refusal: msg, body: map[string]any{"message": msg}}
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, readErr := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	ip, _, _ := net.SplitHostPort(r.RemoteAddr)
	now := time.Now()
	s.mu.Lock()
	idx := len(s.reqs)
	s.reqs = append(s.reqs, Request{
		Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(),
		Body: slices.Clone(body), RemoteIP: ip, At: now,
	})
	var scripted *Answer
	if len(s.script) > 0 {
		a := s.script[0]
		s.script = s.script[1:]
		scripted = &a
	}
	limited := false
	if scripted == nil && s.rateLimit > 0 {
		recent := s.executed[ip][:0]
		for _, t := range s.executed[ip] {
			if now.Sub(t) < time.Second {
				recent = append(recent, t)
			}
		}
		if len(recent) >= s.rateLimit {
			limited = true
		} else {
			recent = append(recent, now)
		}
		s.executed[ip] = recent
	}
	limit := s.rateLimit
	s.broadcast()
	s.mu.Unlock()

	var rep reply
	switch {
	case scripted != nil && scripted.Hang:
		select {
		case <-r.Context().Done():
		case <-s.done:
		}
		s.finish(idx, reply{status: StatusClientGone})
		// Drop the connection without an answer.
		panic(http.ErrAbortHandler)
	case scripted != nil && (scripted.Code != 0 || (scripted.Status != 0 && (scripted.Status < 200 || scripted.Status > 299))):
		if scripted.Code != 0 {
			rep = apiError(scripted.Code, scripted.Message)
		} else {
			msg := scripted.Message
			if msg == "" {
				msg = "fake: scripted " + http.StatusText(scripted.Status)
			}
			rep = plain(scripted.Status, msg)
		}
		if scripted.Status != 0 {
			rep.status = scripted.Status
		}
		rep.refusal = ""
		if scripted.RetryAfter != "" {
			rep.header = http.Header{"Retry-After": {scripted.RetryAfter}}
		}
	case limited:
		rep = plain(http.StatusTooManyRequests, fmt.Sprintf("fake: more than %d requests per second from %s", limit, ip))
	case readErr != nil:
		rep = plain(http.StatusBadRequest, "cannot read the body: "+readErr.Error())
	default:
		rep = s.handle(r, body)
		if scripted != nil && scripted.Status != 0 && rep.status == http.StatusOK {
			rep.status = scripted.Status
		}
		if scripted != nil && scripted.RetryAfter != "" {
			rep.header = http.Header{"Retry-After": {scripted.RetryAfter}}
		}
	}
	s.finish(idx, rep)
	for k, vs := range rep.header {
		w.Header()[k] = vs
	}
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(rep.status)
	_ = json.NewEncoder(w).Encode(rep.body)
}

func (s *Server) finish(idx int, rep reply) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reqs[idx].Status = rep.status
	s.reqs[idx].Code = rep.code
	s.reqs[idx].Refusal = rep.refusal
	s.broadcast()
}

var known = []string{"routeKey", "phone", "fields", "sessionId", "scheduleTime", "utmSource", "utmMedium", "utmCampaign", "utmContent", "utmTerm", "callUrl", "tags", "unitId"}

// handle checks one request and creates the callback.
func (s *Server) handle(r *http.Request, body []byte) reply {
	if r.URL.Path != calltouch.PathCreate {
		return plain(http.StatusNotFound, "not found")
	}
	if r.Method != http.MethodPost {
		rep := plain(http.StatusMethodNotAllowed, "method not allowed; use POST")
		rep.header = http.Header{"Allow": {http.MethodPost}}
		return rep
	}
	tok := r.Header.Values(calltouch.HeaderToken)
	if len(tok) != 1 || s.token == "" || subtle.ConstantTimeCompare([]byte(tok[0]), []byte(s.token)) != 1 {
		return plain(http.StatusForbidden, "Invalid credentials")
	}
	if r.URL.Query().Has("access_token") || r.URL.Query().Has("clientApiId") {
		return plain(http.StatusBadRequest, "fake: the token belongs in the Access-Token header")
	}
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return plain(http.StatusUnsupportedMediaType, "Content-Type must be application/json")
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return plain(http.StatusUnsupportedMediaType, "the body must be UTF-8")
	}
	if len(body) > maxBody {
		return plain(http.StatusRequestEntityTooLarge, "request body too large")
	}
	body = bytes.TrimSpace(body)
	var m map[string]json.RawMessage
	if len(body) == 0 || body[0] != '{' || !utf8.Valid(body) || json.Unmarshal(body, &m) != nil {
		return apiError(calltouch.CodeBadJSON, "")
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !slices.Contains(known, k) {
			return violation(k, "fake: unknown field")
		}
	}
	var req calltouch.Request
	var routeKey, schedule string
	for _, f := range []struct {
		name     string
		dst      *string
		min, max int
	}{
		{"routeKey", &routeKey, 1, 255}, {"phone", &req.Phone, 1, 11},
		{"scheduleTime", &schedule, 0, 19}, {"utmSource", &req.UTMSource, 0, 1 << 16},
		{"utmMedium", &req.UTMMedium, 0, 1 << 16}, {"utmCampaign", &req.UTMCampaign, 0, 1 << 16},
		{"utmContent", &req.UTMContent, 0, 1 << 16}, {"utmTerm", &req.UTMTerm, 0, 1 << 16},
		{"callUrl", &req.CallURL, 0, 1 << 16},
	} {
		v, msg := str(m[f.name], f.min, f.max)
		if msg != "" {
			return violation(f.name, msg)
		}
		*f.dst = v
	}
	if p := req.Phone; len(p) != 11 || p[0] != '7' || strings.Trim(p, "0123456789") != "" {
		return violation("phone", "must be 11 digits in the format 7xxxxxxxxxx")
	}
	if strings.HasPrefix(req.Phone, "7800") || strings.HasPrefix(req.Phone, "7804") {
		return violation("phone", "8800 and 8804 numbers are not allowed")
	}
	if raw, ok := present(m["sessionId"]); ok {
		switch {
		case raw[0] == '"':
			v, msg := str(raw, 1, 100)
			if msg != "" {
				return violation("sessionId", msg)
			}
			req.SessionID = v
		case raw[0] >= '0' && raw[0] <= '9':
			if _, err := strconv.ParseUint(string(raw), 10, 64); err != nil {
				return violation("sessionId", "must be an integer or a string")
			}
			req.SessionID = string(raw)
		default:
			return violation("sessionId", "must be an integer or a string")
		}
	}
	if schedule != "" {
		t, err := time.ParseInLocation(calltouch.ScheduleLayout, schedule, calltouch.Moscow)
		if err != nil {
			return violation("scheduleTime", "must be in the format yyyy-mm-dd hh:mm:ss")
		}
		req.ScheduleTime = &t
	}
	if raw, ok := present(m["fields"]); ok {
		var items []json.RawMessage
		if raw[0] != '[' || json.Unmarshal(raw, &items) != nil {
			return violation("fields", "must be an array")
		}
		if len(items) > calltouch.MaxFields {
			return violation("fields", fmt.Sprintf("at most %d fields", calltouch.MaxFields))
		}
		for i, item := range items {
			var f map[string]json.RawMessage
			if item = bytes.TrimSpace(item); len(item) == 0 || item[0] != '{' || json.Unmarshal(item, &f) != nil {
				return violation(fmt.Sprintf("fields[%d]", i), "must be an object")
			}
			for k := range f {
				if k != "name" && k != "value" {
					return violation(fmt.Sprintf("fields[%d].%s", i, k), "fake: unknown field")
				}
			}
			name, msg := str(f["name"], 1, 255)
			if msg != "" {
				return violation(fmt.Sprintf("fields[%d].name", i), msg)
			}
			value, msg := str(f["value"], 1, 255)
			if msg != "" {
				return violation(fmt.Sprintf("fields[%d].value", i), msg)
			}
			req.Fields = append(req.Fields, calltouch.Field{Name: name, Value: value})
		}
	}
	if raw, ok := present(m["tags"]); ok {
		var items []json.RawMessage
		if raw[0] != '[' || json.Unmarshal(raw, &items) != nil {
			return violation("tags", "must be an array of strings")
		}
		if len(items) > calltouch.MaxTags {
			return violation("tags", fmt.Sprintf("at most %d tags", calltouch.MaxTags))
		}
		for i, item := range items {
			tag, msg := str(item, 1, 100)
			if msg != "" {
				return violation(fmt.Sprintf("tags[%d]", i), msg)
			}
			req.Tags = append(req.Tags, tag)
		}
	}
	if raw, ok := present(m["unitId"]); ok {
		n, err := strconv.ParseInt(string(raw), 10, 64)
		if err != nil || n < 0 {
			return violation("unitId", "must be an integer")
		}
		req.UnitID = n
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	if !s.routeKeys[routeKey] {
		return apiError(calltouch.CodeNoWidget, "")
	}
	if req.SessionID != "" {
		if !s.sessions[req.SessionID] {
			return apiError(calltouch.CodeNoSession, "")
		}
		if s.sessionLimit > 0 && s.sessionCount[req.SessionID] >= s.sessionLimit {
			return apiError(calltouch.CodeSessionLimit, "")
		}
	} else if s.phoneLimit > 0 && s.phoneCount[req.Phone] >= s.phoneLimit {
		return apiError(calltouch.CodePhoneLimit, "")
	}
	if s.phoneInterval > 0 {
		last := s.lastPhone[req.Phone]
		if t := s.lastSession[req.SessionID]; req.SessionID != "" && t.After(last) {
			last = t
		}
		if !last.IsZero() && now.Sub(last) < s.phoneInterval {
			return apiError(calltouch.CodeTooFrequent, "")
		}
	}
	if req.SessionID != "" {
		s.sessionCount[req.SessionID]++
		s.lastSession[req.SessionID] = now
	} else {
		s.phoneCount[req.Phone]++
	}
	s.lastPhone[req.Phone] = now
	s.nextID++
	id := strconv.FormatInt(s.nextID, 10)
	s.created = append(s.created, Created{ID: id, RouteKey: routeKey, Request: req, Schedule: schedule, At: now})
	return reply{status: http.StatusOK, body: map[string]any{"data": map[string]any{"widgetRequestId": s.nextID}}}
}

func present(raw json.RawMessage) (json.RawMessage, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, false
	}
	return raw, true
}

// str reads a JSON string of min to max characters ("" allowed when min is
// 0 and the field is absent).
func str(raw json.RawMessage, minLen, maxLen int) (string, string) {
	raw, ok := present(raw)
	if !ok {
		if minLen > 0 {
			return "", "is required"
		}
		return "", ""
	}
	var v string
	if raw[0] != '"' || json.Unmarshal(raw, &v) != nil {
		return "", "must be a string"
	}
	if n := utf8.RuneCountInString(v); n < minLen || n > maxLen {
		return "", fmt.Sprintf("must be %d to %d characters", max(minLen, 1), maxLen)
	}
	return v, ""
}
