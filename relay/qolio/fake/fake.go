// Package fake is a strict fake of Qolio's text-communications integration
// for tests: an httptest server that accepts
//
//	POST /api/v1/integrations/{id}/text
//	Content-Type: application/json
//	Authorization: <token>
//
// and refuses what Qolio would refuse, and a little more, so tests notice a
// client that drifts from the documented wire: unknown fields, wrong JSON
// types, values outside the documented enums, times that are not RFC 3339, a
// part without created_at, an Authorization with a scheme ("Bearer …").
//
// Accepted communications are stored by communication_id; sending an id
// again replaces it the way Qolio documents (every value is rewritten from
// the new body, parts are updated by communication_part_id or appended,
// never removed) and is counted as a replacement. Tests can script answers
// (any status with a message, Retry-After, a hang), and read every request,
// the request count and the peak rate per second.
//
// Qolio does not document its answers; the fake's are its own: 201
// {"communication_id":…,"result":"created"} or 200 …"replaced"; errors are
// {"message":…,"errors":{field:[…]}}.
package fake

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/pult/pult/relay/qolio"
)

// StatusClientGone is recorded for a request whose client went away before
// the fake answered (a scripted hang).
const StatusClientGone = 499

// maxBody bounds request bodies.
const maxBody = qolio.MaxRequestBody

var pathRE = regexp.MustCompile(`^/api/v1/integrations/([^/]+)/text$`)

// Request is one request the fake received.
type Request struct {
	Method  string
	Path    string
	Header  http.Header
	Body    []byte // as received (bounded)
	At      time.Time
	Status  int    // the answer; 0 while in flight, StatusClientGone if abandoned
	Refusal string // why it was refused ("" when accepted or scripted)
}

// Answer scripts the answer to one request.
type Answer struct {
	// Status: a 2xx status processes the request normally (a refusal still
	// wins) but answers with this status; any other status answers it with
	// Message without looking at the request.
	Status     int
	Message    string // the error message; default "fake: scripted <status text>"
	RetryAfter string // a Retry-After header value, sent when not empty
	Hang       bool   // never answer: wait until the client gives up or Close
}

// Stored is a communication as the fake holds it.
type Stored struct {
	Communication qolio.Communication
	Versions      int       // bodies received for this id; Versions-1 were replacements
	Updated       time.Time // when the last one arrived
}

// Server is a fake Qolio on a loopback httptest server with one text
// integration. Its methods are safe for concurrent use.
type Server struct {
	srv           *httptest.Server
	integrationID string
	token         string
	done          chan struct{}
	closeOnce     sync.Once

	mu           sync.Mutex
	script       []Answer
	reqs         []Request
	comms        map[string]*Stored
	order        []string
	anonymous    int
	replacements int
	changed      chan struct{}
}

// NewServer starts a fake accepting token on a fresh integration. The
// caller closes it.
func NewServer(token string) *Server {
	id := make([]byte, 16)
	_, _ = rand.Read(id)
	s := &Server{
		integrationID: hex.EncodeToString(id),
		token:         token,
		done:          make(chan struct{}),
		comms:         map[string]*Stored{},
		changed:       make(chan struct{}),
	}
	s.srv = httptest.NewServer(s)
	return s
}

// URL is the integration's text URL, as Qolio would give it.
func (s *Server) URL() string {
	return s.srv.URL + "/api/v1/integrations/" + s.integrationID + "/text"
}

// BaseURL is the server's root, e.g. http://127.0.0.1:34567.
func (s *Server) BaseURL() string { return s.srv.URL }

// IntegrationID is the integration's id in the URL.
func (s *Server) IntegrationID() string { return s.integrationID }

// Client is an HTTP client for the server.
func (s *Server) Client() *http.Client { return s.srv.Client() }

// Close releases hanging requests and stops the server.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		close(s.done)
		s.srv.Close()
	})
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

// Communication returns the communication stored under id.
func (s *Server) Communication(id string) (Stored, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.comms[id]
	if !ok {
		return Stored{}, false
	}
	return cloneStored(st), true
}

// Communications returns every stored communication in the order they were
// first received.
func (s *Server) Communications() []Stored {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Stored, 0, len(s.order))
	for _, id := range s.order {
		out = append(out, cloneStored(s.comms[id]))
	}
	return out
}

// Replacements is how many accepted bodies replaced an existing
// communication.
func (s *Server) Replacements() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.replacements
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
			return nil, fmt.Errorf("fake qolio: waiting for %d requests (%d answered): %w", n, done, ctx.Err())
		}
	}
}

func cloneStored(st *Stored) Stored {
	out := *st
	c := &out.Communication
	c.Parts = slices.Clone(c.Parts)
	if c.Client != nil {
		cl := *c.Client
		c.Client = &cl
	}
	if c.NPS != nil {
		n := *c.NPS
		c.NPS = &n
	}
	if c.ClientFeedback != nil {
		n := *c.ClientFeedback
		c.ClientFeedback = &n
	}
	// CustomFields values are decoded JSON, shared read-only.
	return out
}

// broadcast wakes Wait; s.mu is held.
func (s *Server) broadcast() {
	close(s.changed)
	s.changed = make(chan struct{})
}

type reply struct {
	status int
	body   any
	header http.Header
}

func errorReply(status int, field, msg string) reply {
	body := map[string]any{"message": msg}
	if field != "" {
		body["message"] = field + ": " + msg
		body["errors"] = map[string][]string{field: {msg}}
	}
	return reply{status: status, body: body}
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, readErr := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	s.mu.Lock()
	idx := len(s.reqs)
	s.reqs = append(s.reqs, Request{
		Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(),
		Body: slices.Clone(body), At: time.Now(),
	})
	var scripted *Answer
	if len(s.script) > 0 {
		a := s.script[0]
		s.script = s.script[1:]
		scripted = &a
	}
	s.broadcast()
	s.mu.Unlock()

	var rep reply
	switch {
	case scripted != nil && scripted.Hang:
		select {
		case <-r.Context().Done():
		case <-s.done:
		}
		s.finish(idx, StatusClientGone, "")
		// Drop the connection without an answer (net/http would otherwise
		// send an empty 200 when released by Close).
		panic(http.ErrAbortHandler)
	case scripted != nil && (scripted.Status < 200 || scripted.Status > 299):
		msg := scripted.Message
		if msg == "" {
			msg = "fake: scripted " + http.StatusText(scripted.Status)
		}
		rep = errorReply(scripted.Status, "", msg)
		if scripted.RetryAfter != "" {
			rep.header = http.Header{"Retry-After": {scripted.RetryAfter}}
		}
	case readErr != nil:
		rep = errorReply(http.StatusBadRequest, "", "cannot read the body: "+readErr.Error())
	default:
		rep = s.handle(r, body)
		if scripted != nil && rep.status >= 200 && rep.status <= 299 {
			rep.status = scripted.Status
			if scripted.RetryAfter != "" {
				rep.header = http.Header{"Retry-After": {scripted.RetryAfter}}
			}
		}
	}
	refusal := ""
	if rep.status >= 400 && scripted == nil {
		if m, ok := rep.body.(map[string]any); ok {
			refusal, _ = m["message"].(string)
		}
	}
	s.finish(idx, rep.status, refusal)
	for k, vs := range rep.header {
		w.Header()[k] = vs
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(rep.status)
	_ = json.NewEncoder(w).Encode(rep.body)
}

func (s *Server) finish(idx, status int, refusal string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reqs[idx].Status = status
	s.reqs[idx].Refusal = refusal
	s.broadcast()
}

// handle checks and stores one request.
func (s *Server) handle(r *http.Request, body []byte) reply {
	m := pathRE.FindStringSubmatch(r.URL.Path)
	if m == nil {
		return errorReply(http.StatusNotFound, "", "not found")
	}
	if r.Method != http.MethodPost {
		rep := errorReply(http.StatusMethodNotAllowed, "", "method not allowed; use POST")
		rep.header = http.Header{"Allow": {http.MethodPost}}
		return rep
	}
	if m[1] != s.integrationID {
		return errorReply(http.StatusNotFound, "", "integration not found")
	}
	if r.URL.RawQuery != "" {
		return errorReply(http.StatusBadRequest, "", "fake: the text URL takes no query")
	}
	auth := r.Header.Values("Authorization")
	switch {
	case len(auth) == 0 || strings.TrimSpace(auth[0]) == "":
		return errorReply(http.StatusUnauthorized, "", "Authorization header is missing")
	case len(auth) > 1:
		return errorReply(http.StatusUnauthorized, "", "Authorization header is given more than once")
	case strings.HasPrefix(strings.ToLower(auth[0]), "bearer ") || strings.HasPrefix(strings.ToLower(auth[0]), "token "):
		return errorReply(http.StatusUnauthorized, "", "fake: Authorization must be the token itself, without a scheme")
	case s.token == "" || subtle.ConstantTimeCompare([]byte(auth[0]), []byte(s.token)) != 1:
		return errorReply(http.StatusUnauthorized, "", "invalid token")
	}
	ct := r.Header.Get("Content-Type")
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return errorReply(http.StatusUnsupportedMediaType, "", "Content-Type must be application/json")
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return errorReply(http.StatusUnsupportedMediaType, "", "the body must be UTF-8")
	}
	if len(body) > maxBody {
		return errorReply(http.StatusRequestEntityTooLarge, "", fmt.Sprintf("the body exceeds %d bytes", maxBody))
	}
	comm, field, msg := check(body)
	if msg != "" {
		status := http.StatusUnprocessableEntity
		if field == "" {
			status = http.StatusBadRequest
		}
		return errorReply(status, field, msg)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	id := comm.CommunicationID
	if id == "" {
		// Qolio does not require an id; such a communication can never be
		// replaced.
		s.anonymous++
		id = "#" + strconv.Itoa(s.anonymous)
	}
	now := time.Now()
	old, exists := s.comms[id]
	if !exists {
		s.comms[id] = &Stored{Communication: comm, Versions: 1, Updated: now}
		s.order = append(s.order, id)
		return reply{status: http.StatusCreated, body: map[string]any{"communication_id": comm.CommunicationID, "result": "created"}}
	}
	comm.Parts = mergeParts(old.Communication.Parts, comm.Parts)
	old.Communication = comm
	old.Versions++
	old.Updated = now
	s.replacements++
	return reply{status: http.StatusOK, body: map[string]any{"communication_id": comm.CommunicationID, "result": "replaced"}}
}

// mergeParts applies Qolio's rule for a re-sent communication: parts are
// added or updated, never removed. An incoming part replaces the first
// not-yet-replaced stored part with its communication_part_id, else it is
// appended.
func mergeParts(old, incoming []qolio.Part) []qolio.Part {
	out := slices.Clone(old)
	used := make([]bool, len(out))
	for _, p := range incoming {
		i := -1
		if p.ID != "" {
			for j := range out[:len(old)] {
				if !used[j] && out[j].ID == p.ID {
					i = j
					break
				}
			}
		}
		if i < 0 {
			out = append(out, p)
			continue
		}
		out[i], used[i] = p, true
	}
	return out
}

var (
	topFields      = []string{"operator_id", "uid", "communication_id", "communication_type", "title", "source", "nps", "client_feedback", "status", "direction", "communication_parts", "custom_fields", "client_id", "client"}
	partFields     = []string{"communication_part_id", "author", "body", "content_type", "created_at", "updated_at"}
	authorFields   = []string{"type", "id"}
	customerFields = []string{"id", "company_name", "first_name", "last_name", "email", "phone_number"}
)

// check validates a body the way Qolio documents it, and strictly: it
// returns the communication or the field at fault and why ("" field for the
// body as a whole).
func check(body []byte) (qolio.Communication, string, string) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return qolio.Communication{}, "", "the body is empty"
	}
	if !utf8.Valid(body) {
		return qolio.Communication{}, "", "the body is not valid UTF-8"
	}
	top, f, msg := object("", body, topFields)
	if msg != "" {
		return qolio.Communication{}, f, msg
	}
	type strField struct {
		name     string
		required bool
		enum     []string
	}
	for _, sf := range []strField{
		{"operator_id", true, nil}, {"uid", false, nil}, {"communication_id", false, nil},
		{"communication_type", false, []string{qolio.TypeChat, qolio.TypeTicket, qolio.TypeEmail}},
		{"title", false, nil}, {"source", false, nil},
		{"status", false, []string{qolio.StatusAccepted, qolio.StatusRejected, qolio.StatusOpened, qolio.StatusClosed}},
		{"direction", false, []string{qolio.DirectionIncoming, qolio.DirectionOutcoming, qolio.DirectionLocal}},
		{"client_id", false, nil},
	} {
		if f, msg := str(sf.name, top[sf.name], sf.required, sf.enum); msg != "" {
			return qolio.Communication{}, f, msg
		}
	}
	for _, name := range []string{"nps", "client_feedback"} {
		if f, msg := number(name, top[name]); msg != "" {
			return qolio.Communication{}, f, msg
		}
	}
	if raw, ok := present(top["custom_fields"]); ok && raw[0] != '{' {
		return qolio.Communication{}, "custom_fields", "must be an object"
	}
	if raw, ok := present(top["client"]); ok {
		cl, f, msg := object("client", raw, customerFields)
		if msg != "" {
			return qolio.Communication{}, f, msg
		}
		for _, name := range customerFields {
			if f, msg := str("client."+name, cl[name], false, nil); msg != "" {
				return qolio.Communication{}, f, msg
			}
		}
	}
	if raw, ok := present(top["communication_parts"]); ok {
		if raw[0] != '[' {
			return qolio.Communication{}, "communication_parts", "must be an array"
		}
		var parts []json.RawMessage
		if err := json.Unmarshal(raw, &parts); err != nil {
			return qolio.Communication{}, "communication_parts", "is not valid JSON"
		}
		for i, praw := range parts {
			pf := fmt.Sprintf("communication_parts[%d]", i)
			p, f, msg := object(pf, praw, partFields)
			if msg != "" {
				return qolio.Communication{}, f, msg
			}
			for _, sf := range []strField{
				{"communication_part_id", false, nil}, {"body", false, nil},
				{"content_type", false, []string{qolio.ContentTextPlain, qolio.ContentTextHTML}},
			} {
				if f, msg := str(pf+"."+sf.name, p[sf.name], sf.required, sf.enum); msg != "" {
					return qolio.Communication{}, f, msg
				}
			}
			araw, ok := present(p["author"])
			if !ok {
				return qolio.Communication{}, pf + ".author", "is required"
			}
			a, f, msg := object(pf+".author", araw, authorFields)
			if msg != "" {
				return qolio.Communication{}, f, msg
			}
			if f, msg := str(pf+".author.type", a["type"], true, []string{qolio.AuthorClient, qolio.AuthorOperator}); msg != "" {
				return qolio.Communication{}, f, msg
			}
			if f, msg := str(pf+".author.id", a["id"], false, nil); msg != "" {
				return qolio.Communication{}, f, msg
			}
			for _, name := range []string{"created_at", "updated_at"} {
				if f, msg := rfc3339(pf+"."+name, p[name], name == "created_at"); msg != "" {
					return qolio.Communication{}, f, msg
				}
			}
		}
	}
	var c qolio.Communication
	if err := json.Unmarshal(body, &c); err != nil {
		return qolio.Communication{}, "", "the body cannot be read: " + err.Error()
	}
	return c, "", ""
}

func present(raw json.RawMessage) (json.RawMessage, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, false
	}
	return raw, true
}

// object decodes a JSON object, refusing keys outside known.
func object(field string, raw []byte, known []string) (map[string]json.RawMessage, string, string) {
	raw = bytes.TrimSpace(raw)
	where := field
	if where == "" {
		where = "the body"
	}
	if len(raw) == 0 || raw[0] != '{' {
		return nil, field, where + " must be a JSON object"
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, field, where + " is not valid JSON"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !slices.Contains(known, k) {
			name := k
			if field != "" {
				name = field + "." + k
			}
			return nil, name, "fake: unknown field"
		}
	}
	return m, "", ""
}

// str checks an optional (or required) JSON string, against enum when set.
func str(field string, raw json.RawMessage, required bool, enum []string) (string, string) {
	raw, ok := present(raw)
	if !ok {
		if required {
			return field, "is required"
		}
		return "", ""
	}
	if raw[0] != '"' {
		return field, "must be a string"
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return field, "is not valid JSON"
	}
	if required && strings.TrimSpace(s) == "" {
		return field, "is required"
	}
	if enum != nil && s != "" && !slices.Contains(enum, s) {
		return field, fmt.Sprintf("must be one of %s", strings.Join(enum, ", "))
	}
	return "", ""
}

// number checks nps and client_feedback: Qolio's table calls them strings,
// its example sends numbers; both are accepted when they hold an integer.
func number(field string, raw json.RawMessage) (string, string) {
	raw, ok := present(raw)
	if !ok {
		return "", ""
	}
	s := string(raw)
	if raw[0] == '"' {
		if err := json.Unmarshal(raw, &s); err != nil {
			return field, "is not valid JSON"
		}
	}
	if _, err := strconv.Atoi(s); err != nil {
		return field, "must be an integer"
	}
	return "", ""
}

func rfc3339(field string, raw json.RawMessage, required bool) (string, string) {
	raw, ok := present(raw)
	if !ok {
		if required {
			return field, "is required"
		}
		return "", ""
	}
	var s string
	if raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
		return field, "must be a string"
	}
	if _, err := time.Parse(time.RFC3339, s); err != nil {
		return field, "must be an RFC 3339 time like 2020-01-17T08:15:30+03:00"
	}
	return "", ""
}
