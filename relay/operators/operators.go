// Package operators owns who may connect to the relay: the registry of
// operators kept in the operators bucket and mirrored in memory, their
// tokens (only a hash is stored), roles and revocation, and the bearer
// check every endpoint uses ([Bearer], [Registry.Authenticate]).
//
// Goroutines: Run, called once, owns the bucket's watcher and applies every
// change (this node's and other nodes') to the mirror, calling the OnRevoke
// and OnChange hooks from that goroutine. Lookups (ByCode, Authenticate…)
// may come from any goroutine; the mirror is guarded by an RWMutex.
package operators

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pult/pult/agent/wire"
)

// Operator is a person who may connect an agent. The relay keeps only a hash
// of the token.
type Operator struct {
	ID     string    `json:"id"`
	Name   string    `json:"name"`
	Code   string    `json:"code"`
	UserID string    `json:"userId"`
	Role   wire.Role `json:"role"`
	// UISEmployeeID is the operator's UIS employee (recordId in UIS); "" none.
	UISEmployeeID string `json:"uisEmployeeId,omitempty"`
	// SmartsuppAgentID is the operator's Smartsupp agent ("agent:<id>"); "" none.
	SmartsuppAgentID string     `json:"smartsuppAgentId,omitempty"`
	TokenHash        string     `json:"tokenHash"`
	CreatedAt        time.Time  `json:"createdAt"`
	RevokedAt        *time.Time `json:"revokedAt,omitempty"`
}

// Wire is the operator as agents see it.
func (o Operator) Wire() wire.Operator {
	return wire.Operator{ID: o.ID, Name: o.Name, Code: o.Code, UserID: o.UserID, Role: o.Role}
}

// Revoked reports whether the operator's token was revoked.
func (o Operator) Revoked() bool { return o.RevokedAt != nil }

// Authentication errors.
var (
	ErrBadToken = errors.New("unknown or malformed token")
	ErrRevoked  = errors.New("token revoked")
	ErrConflict = errors.New("already taken")
	ErrNotFound = errors.New("no such operator")
)

// InvalidError is a refused NewOperator: the administrator's input, not the
// relay, is at fault.
type InvalidError struct{ Err error }

func (e *InvalidError) Error() string { return e.Err.Error() }
func (e *InvalidError) Unwrap() error { return e.Err }

// NewOperator is what an administrator gives to add an operator.
type NewOperator struct {
	Name             string    `json:"name"`
	Code             string    `json:"code"`
	UserID           string    `json:"userId"`
	Role             wire.Role `json:"role"`
	UISEmployeeID    string    `json:"uisEmployeeId,omitempty"`
	SmartsuppAgentID string    `json:"smartsuppAgentId,omitempty"`
}

var (
	codePattern    = regexp.MustCompile(`^[0-9]{1,16}$`)
	userPattern    = regexp.MustCompile(`^[0-9]{1,18}$`)
	partnerPattern = regexp.MustCompile(`^[0-9A-Za-z_.-]{1,64}$`)
	idPattern      = regexp.MustCompile(`^[0-9a-f]{1,32}$`) // an operator id (randomHex), as a token names it
)

// Validate checks an operator request.
func (n *NewOperator) Validate() error {
	n.Name = strings.TrimSpace(n.Name)
	if n.Name == "" || utf8.RuneCountInString(n.Name) > 100 {
		return errors.New("name: required, at most 100 characters")
	}
	if n.Role == wire.RoleWallboard {
		// A screen, not a person: nothing of a telephony user.
		if n.Code != "" || n.UserID != "" || n.UISEmployeeID != "" || n.SmartsuppAgentID != "" {
			return errors.New("role wallboard: a wallboard has no code, user-id, uis-employee-id or smartsupp-agent-id")
		}
		return nil
	}
	if !codePattern.MatchString(n.Code) {
		return errors.New("code: the PBX extension, 1–16 digits")
	}
	if !userPattern.MatchString(n.UserID) {
		return errors.New("user-id: the CRM user id, 1–18 digits")
	}
	if n.UISEmployeeID != "" && !partnerPattern.MatchString(n.UISEmployeeID) {
		return errors.New("uis-employee-id: the UIS employee id (recordId in UIS), e.g. 12345")
	}
	if n.SmartsuppAgentID != "" && !partnerPattern.MatchString(n.SmartsuppAgentID) {
		return errors.New(`smartsupp-agent-id: the Smartsupp agent id, the N of "agent:N"`)
	}
	if n.Role == "" {
		n.Role = wire.RoleOperator
	}
	if !n.Role.Valid() {
		return fmt.Errorf("role: %q is not operator, supervisor or wallboard", n.Role)
	}
	return nil
}

// Registry holds operators in a KV bucket and mirrors them in memory.
// Keys: op.<id> → Operator; code.<code>, user.<userId>, uis.<employee id>
// and smartsupp.<agent id> → id (unique indexes, claimed with an atomic
// create, freed when the operator is revoked).
type Registry struct {
	kv      jetstream.KeyValue
	watcher jetstream.KeyWatcher

	mu          sync.RWMutex
	byID        map[string]Operator
	byCode      map[string]string
	byUser      map[string]string
	byUIS       map[string]string
	bySmartsupp map[string]string
}

// Open loads every operator and starts watching for changes; call Run
// to keep applying them.
func Open(ctx context.Context, kv jetstream.KeyValue) (*Registry, error) {
	r := &Registry{kv: kv, byID: map[string]Operator{}, byCode: map[string]string{}, byUser: map[string]string{},
		byUIS: map[string]string{}, bySmartsupp: map[string]string{}}
	w, err := kv.Watch(context.Background(), "op.*")
	if err != nil {
		return nil, fmt.Errorf("operators: watch: %w", err)
	}
	for {
		select {
		case e := <-w.Updates():
			if e == nil {
				r.watcher = w
				return r, nil
			}
			r.apply(e)
		case <-ctx.Done():
			w.Stop()
			return nil, ctx.Err()
		}
	}
}

// Hooks are told of the changes Run applies, on Run's goroutine.
type Hooks struct {
	Changed func(Operator) // added, changed or revoked, possibly more than once for one change
	Revoked func(Operator) // revoked: its sessions must end
}

// Run applies changes made by any relay node (this one's included) until
// ctx ends, telling h of each.
func (r *Registry) Run(ctx context.Context, h Hooks) error {
	defer r.watcher.Stop()
	for {
		select {
		case e, ok := <-r.watcher.Updates():
			if !ok {
				return errors.New("operators: watch ended")
			}
			if e == nil {
				continue
			}
			op, ok, revoked := r.apply(e)
			if ok && h.Changed != nil {
				h.Changed(op)
			}
			if revoked && h.Revoked != nil {
				h.Revoked(op)
			}
		case <-ctx.Done():
			return nil
		}
	}
}

func (r *Registry) apply(e jetstream.KeyValueEntry) (op Operator, ok, revoked bool) {
	if e.Operation() != jetstream.KeyValuePut {
		return op, false, false
	}
	if err := json.Unmarshal(e.Value(), &op); err != nil {
		return op, false, false
	}
	return op, true, r.put(op)
}

// put updates the mirror and reports whether op was revoked by this change.
func (r *Registry) put(op Operator) (revoked bool) {
	r.mu.Lock()
	old, had := r.byID[op.ID]
	r.byID[op.ID] = op
	if op.Revoked() {
		deleteIf(r.byCode, op.Code, op.ID)
		deleteIf(r.byUser, op.UserID, op.ID)
		deleteIf(r.byUIS, op.UISEmployeeID, op.ID)
		deleteIf(r.bySmartsupp, op.SmartsuppAgentID, op.ID)
	} else {
		if op.Code != "" {
			r.byCode[op.Code] = op.ID
			r.byUser[op.UserID] = op.ID
		}
		if op.UISEmployeeID != "" {
			r.byUIS[op.UISEmployeeID] = op.ID
		}
		if op.SmartsuppAgentID != "" {
			r.bySmartsupp[op.SmartsuppAgentID] = op.ID
		}
	}
	r.mu.Unlock()
	return op.Revoked() && (!had || !old.Revoked())
}

// deleteIf removes key from an index if it still points at id (a new
// operator may hold it already).
func deleteIf(m map[string]string, key, id string) {
	if key != "" && m[key] == id {
		delete(m, key)
	}
}

// index is a unique key an operator claims.
type index struct{ key, what, value string }

func (op Operator) indexes() []index {
	var out []index
	if op.Code != "" { // a wallboard has neither
		out = append(out, index{"code." + op.Code, "code", op.Code}, index{"user." + op.UserID, "user-id", op.UserID})
	}
	if op.UISEmployeeID != "" {
		out = append(out, index{"uis." + op.UISEmployeeID, "uis-employee-id", op.UISEmployeeID})
	}
	if op.SmartsuppAgentID != "" {
		out = append(out, index{"smartsupp." + op.SmartsuppAgentID, "smartsupp-agent-id", op.SmartsuppAgentID})
	}
	return out
}

// Add creates an operator and returns its token, which is never stored.
func (r *Registry) Add(ctx context.Context, n NewOperator) (Operator, string, error) {
	if err := n.Validate(); err != nil {
		return Operator{}, "", &InvalidError{err}
	}
	id := randomHex(6)
	secret := make([]byte, 32)
	rand.Read(secret)
	token := "pult_" + id + "_" + base64.RawURLEncoding.EncodeToString(secret)
	op := Operator{
		ID: id, Name: n.Name, Code: n.Code, UserID: n.UserID, Role: n.Role,
		UISEmployeeID: n.UISEmployeeID, SmartsuppAgentID: n.SmartsuppAgentID,
		TokenHash: hashToken(token), CreatedAt: time.Now().UTC(),
	}
	var claimed []string
	release := func() {
		for _, k := range claimed {
			r.kv.Delete(ctx, k)
		}
	}
	for _, ix := range op.indexes() {
		if _, err := r.kv.Create(ctx, ix.key, []byte(id)); err != nil {
			release()
			if errors.Is(err, jetstream.ErrKeyExists) {
				return Operator{}, "", fmt.Errorf("%s %s: %w by another operator", ix.what, ix.value, ErrConflict)
			}
			return Operator{}, "", fmt.Errorf("operators: %w", err)
		}
		claimed = append(claimed, ix.key)
	}
	b, _ := json.Marshal(op)
	if _, err := r.kv.Create(ctx, "op."+id, b); err != nil {
		release()
		return Operator{}, "", fmt.Errorf("operators: %w", err)
	}
	r.put(op)
	return op, token, nil
}

// Revoke revokes an operator by id or extension code. Its code and user id
// become free for a new operator.
func (r *Registry) Revoke(ctx context.Context, ref string) (Operator, error) {
	op, ok := r.Lookup(ref)
	if !ok {
		return Operator{}, fmt.Errorf("%q: %w", ref, ErrNotFound)
	}
	if op.Revoked() {
		return op, nil
	}
	now := time.Now().UTC()
	op.RevokedAt = &now
	b, _ := json.Marshal(op)
	if _, err := r.kv.Put(ctx, "op."+op.ID, b); err != nil {
		return Operator{}, fmt.Errorf("operators: revoke: %w", err)
	}
	for _, ix := range op.indexes() {
		r.kv.Delete(ctx, ix.key)
	}
	r.put(op)
	return op, nil
}

// Lookup finds an operator by id or, among active ones, by code.
func (r *Registry) Lookup(ref string) (Operator, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if op, ok := r.byID[ref]; ok {
		return op, true
	}
	if id, ok := r.byCode[ref]; ok {
		return r.byID[id], true
	}
	return Operator{}, false
}

// ByCode finds an active operator by PBX extension.
func (r *Registry) ByCode(code string) (Operator, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	id, ok := r.byCode[code]
	return r.byID[id], ok
}

// ByUserID finds an active operator by CRM user id.
func (r *Registry) ByUserID(uid string) (Operator, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	id, ok := r.byUser[uid]
	return r.byID[id], ok
}

// ByUISEmployee finds an active operator by UIS employee id.
func (r *Registry) ByUISEmployee(id string) (Operator, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	oid, ok := r.byUIS[id]
	return r.byID[oid], ok
}

// BySmartsuppAgent finds an active operator by Smartsupp agent id.
func (r *Registry) BySmartsuppAgent(id string) (Operator, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	oid, ok := r.bySmartsupp[id]
	return r.byID[oid], ok
}

// UISOperators returns the active operators mapped to a UIS employee, by code.
func (r *Registry) UISOperators() []Operator {
	var out []Operator
	for _, op := range r.List() {
		if !op.Revoked() && op.UISEmployeeID != "" {
			out = append(out, op)
		}
	}
	return out
}

// List returns every operator, revoked ones included, by code.
func (r *Registry) List() []Operator {
	r.mu.RLock()
	out := make([]Operator, 0, len(r.byID))
	for _, op := range r.byID {
		out = append(out, op)
	}
	r.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Code != out[j].Code {
			return out[i].Code < out[j].Code
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// Authenticate checks a bearer token in constant time.
func (r *Registry) Authenticate(token string) (Operator, error) {
	if len(token) > 200 || !strings.HasPrefix(token, "pult_") {
		return Operator{}, ErrBadToken
	}
	id, _, ok := strings.Cut(strings.TrimPrefix(token, "pult_"), "_")
	if !ok {
		return Operator{}, ErrBadToken
	}
	r.mu.RLock()
	op, found := r.byID[id]
	r.mu.RUnlock()
	if !found {
		// Added a moment ago, on another relay node perhaps, and not
		// mirrored here yet: the bucket itself says.
		op, found = r.fetch(id)
	}
	if !found || subtle.ConstantTimeCompare([]byte(op.TokenHash), []byte(hashToken(token))) != 1 {
		return Operator{}, ErrBadToken
	}
	if op.Revoked() {
		return Operator{}, ErrRevoked
	}
	return op, nil
}

// fetch reads an operator from the bucket, for a token whose operator the
// mirror does not know (yet); the mirror is left to Run.
func (r *Registry) fetch(id string) (Operator, bool) {
	if !idPattern.MatchString(id) {
		return Operator{}, false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	e, err := r.kv.Get(ctx, "op."+id)
	if err != nil {
		return Operator{}, false
	}
	var op Operator
	if json.Unmarshal(e.Value(), &op) != nil || op.ID != id {
		return Operator{}, false
	}
	return op, true
}

func hashToken(t string) string {
	h := sha256.Sum256([]byte(t))
	return hex.EncodeToString(h[:])
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// ErrNoToken is a request without "Authorization: Bearer <token>".
var ErrNoToken = errors.New("missing Authorization: Bearer token")

// Bearer reads the token of "Authorization: Bearer <token>".
func Bearer(r *http.Request) (string, bool) {
	t, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	t = strings.TrimSpace(t)
	return t, ok && t != ""
}

// AuthenticateRequest is the bearer check of every operator endpoint: the
// request's token names an operator whose token is not revoked. It returns
// ErrNoToken, ErrBadToken or ErrRevoked otherwise.
func (r *Registry) AuthenticateRequest(req *http.Request) (Operator, error) {
	token, ok := Bearer(req)
	if !ok {
		return Operator{}, ErrNoToken
	}
	return r.Authenticate(token)
}
