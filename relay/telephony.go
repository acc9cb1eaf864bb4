package relay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/pult/pult/agent/phone"
	"github.com/pult/pult/agent/wire"
	"github.com/pult/pult/relay/board"
	"github.com/pult/pult/relay/call"
	"github.com/pult/pult/relay/config"
	"github.com/pult/pult/relay/eventtrace"
	"github.com/pult/pult/relay/operators"
	"github.com/pult/pult/relay/retailcrm"
	"github.com/pult/pult/relay/store"
)

// calls is the call flow: an event from any PBX becomes a stored record
// (processCall), the cards each operator sees, the queue board's change, the
// call's history, and the lookup of the caller's responsible manager. It
// reaches only what it names; the webhook's goroutine runs processCall, the
// server's background group (spawn) the lookups.
type calls struct {
	cfg     *config.Config
	log     *slog.Logger
	store   *store.Store
	cache   *call.Cache // recent records as stored, see processCall
	ops     *operators.Registry
	board   *board.Board // who is signed in and free, for the manager's rule
	mgr     *managers    // nil without a CRM
	metrics *metrics
	sites   map[string]string // E.164 external phone → site code
	clock   func() time.Time
	spawn   func(func(context.Context))
	// locks takes a call's changes one at a time on this relay, so that
	// its cards are never stored for a change that loses the race to
	// store its record.
	locks callLocks
	// ahead sends the cards of a change to the agents connected here
	// while they are being stored (the hub); nil: only once stored.
	ahead cardsAhead
}

// cardsAhead is where a change's cards go before they are stored, and
// are taken back from when they could not be.
type cardsAhead interface {
	SendAhead(cards []store.Ahead)
	Withdraw(cards []store.Ahead)
}

// callLocks holds a mutex per call key in use: made by the first lock,
// dropped with the last unlock, so the map holds only the calls being
// changed. A change holds its call's lock through its store round trips
// (a millisecond or two); with 64 stripes shared by hash, as before, about
// one call in two hundred at 200 calls/s (by estimate: 200/s × 1.5 ms / 64)
// waited for an unrelated call's round trip — in the slowest percent of
// cards.
type callLocks struct {
	mu sync.Mutex
	m  map[string]*callLock
}

type callLock struct {
	sync.Mutex
	users int // holding or waiting; guarded by callLocks.mu
}

// lock takes the call's lock; the caller calls unlock once.
func (l *callLocks) lock(key string) (unlock func()) {
	l.mu.Lock()
	k := l.m[key]
	if k == nil {
		if l.m == nil {
			l.m = make(map[string]*callLock)
		}
		k = &callLock{}
		l.m[key] = k
	}
	k.users++
	l.mu.Unlock()
	k.Lock()
	return func() {
		k.Unlock()
		l.mu.Lock()
		if k.users--; k.users == 0 {
			delete(l.m, key)
		}
		l.mu.Unlock()
	}
}

// sourceUIS is call.Event.Source for UIS's notifications (a PBX speaking
// retailCRM's API gives pbxapi.Source).
const sourceUIS = "uis"

// processCall applies an event to the stored call and publishes each
// operator's card that changed. It is idempotent: replaying an event
// (a PBX retry after a lost answer) publishes nothing new. A call that ends
// is also stored for the call history (see recordHistory).
//
// The record normally comes from the call cache, and a ring for a call the
// cache does not hold is presumed new: storing a record is a
// compare-and-set on its revision (or a create), which fails if that was
// wrong, and the next attempt reads the bucket. An outcome that stores no
// record is only trusted when the record was read from the bucket.
func (c *calls) processCall(ctx context.Context, ev call.Event, received time.Time) error {
	num, perr := phone.Parse(ev.Phone, c.cfg.PhoneRegion)
	eventtrace.Mark(ctx, eventtrace.Parsed)
	phoneKey := ev.Phone
	if perr == nil {
		phoneKey = num.E164
	}
	key := store.CallKey(ev.CallID, phoneKey)
	defer c.locks.lock(key)()
	mode := loadCached
	if ev.Type == call.Ring || ev.Type == call.Out {
		mode = loadPresumed
	}
	// The cards sent ahead by an attempt whose record was stale: taken
	// back once the stored record is read (to its cards), or on the way
	// out (to the cards before the attempt).
	var stale []store.Ahead
	defer func() { c.withdraw(stale, nil) }()
	for attempt := 0; attempt < 8; attempt, mode = attempt+1, loadStored {
		rec, rev, stored, err := c.loadCall(ctx, key, mode)
		if err != nil {
			return err
		}
		fresh := rec == nil || (rec.State.Final() && ev.CallID == "" && (ev.Type == call.Ring || ev.Type == call.Out))
		if fresh {
			if ev.Type == call.Hangup {
				if !stored {
					continue
				}
				// The end of a call we never saw: nothing to show. A UIS
				// call's history still counts (its PBX uploads none), and
				// its record (no cards) the queue board's.
				if ev.Source == sourceUIS {
					rec = c.newCall(key, ev, num, perr == nil)
					if ev.HangupStatus == retailcrm.HangupAnswered && len(ev.Operators) > 0 {
						op := ev.Operators[0] // who talked, for the history's code
						rec.Legs[op.ID] = &call.Leg{Code: op.Code, Name: op.Name, UserID: op.UserID}
					}
					rec.Apply(ev)
					rec.Version, rec.At = 1, ev.At
					if err := c.storeRecord(ctx, rec, rev); err != nil {
						if errors.Is(err, store.ErrConflict) {
							continue
						}
						return err
					}
					eventtrace.Mark(ctx, eventtrace.Stored)
					return c.recordHistory(ctx, rec)
				}
				return nil
			}
			rec = c.newCall(key, ev, num, perr == nil)
		}
		wasFinal := rec.State.Final() && !fresh
		before := c.cards(rec)
		c.withdraw(stale, &before)
		stale = nil
		changed := rec.Apply(ev) || fresh
		if changed {
			rec.At = ev.At
		} else {
			if !stored {
				continue
			}
			// A replay (the PBX retried after a lost answer, perhaps after
			// a crash between storing and publishing): the record is stored
			// already; publish every card again under the same message ids,
			// and JetStream drops those it has (a call first seen at its
			// end has none: see above). Cached, so that the PBX's
			// next retry here is known for one at once (not presumed new,
			// with its cards sent ahead again).
			before = view{}
			c.cache.Put(key, rec, rev)
		}
		lookup := fresh && rec.ManagerState == wire.ManagerPending
		if changed {
			// The record (the queue board's input too) and the cards it
			// changed, in one round trip; the cards go out ahead meanwhile.
			ahead, err := c.commitCall(ctx, rec, rev, before, received)
			if err != nil {
				stale = ahead
				if errors.Is(err, store.ErrConflict) {
					continue
				}
				return err
			}
		} else if !firstSeenEnded(rec) {
			if err := c.publishCards(ctx, rec, before, received); err != nil {
				return err
			}
		}
		eventtrace.Mark(ctx, eventtrace.Stored)
		// The hangup that ended the call, or its replay.
		if ev.Type == call.Hangup && rec.State.Final() && (!wasFinal || !changed) {
			if err := c.recordHistory(ctx, rec); err != nil {
				return err
			}
		}
		if lookup {
			c.spawn(func(ctx context.Context) { c.resolveManager(ctx, key, num.E164) })
		}
		return nil
	}
	return errors.New("call changed concurrently too often")
}

func (c *calls) newCall(key string, ev call.Event, num phone.Number, parsed bool) *call.Record {
	rec := &call.Record{
		Key: key, ID: ev.CallID, Direction: wire.DirectionIn, Phone: ev.Phone, PhoneDisplay: ev.Phone,
		Site: ev.Site, State: wire.CallRinging, Legs: map[string]*call.Leg{}, StartedAt: ev.At,
		ManagerState: wire.ManagerOff, Source: ev.Source,
	}
	if rec.ID == "" {
		rec.ID = call.NewID()
	}
	switch {
	case ev.Direction == wire.DirectionIn || ev.Direction == wire.DirectionOut:
		rec.Direction = ev.Direction
	case ev.Type == call.Out:
		rec.Direction = wire.DirectionOut
	}
	if parsed {
		rec.Phone, rec.PhoneDisplay = num.E164, num.National
	}
	if ev.Line != "" {
		rec.Line, rec.LineDisplay = ev.Line, ev.Line
		if n, err := phone.Parse(ev.Line, c.cfg.PhoneRegion); err == nil {
			rec.Line, rec.LineDisplay = n.E164, n.National
		}
		if rec.Site == "" {
			rec.Site = c.sites[rec.Line]
		}
	}
	if c.mgr != nil && parsed && rec.Direction == wire.DirectionIn {
		if res, ok := c.mgr.cached(num.E164); ok {
			setManager(rec, res, c.managerFree(res))
			c.metrics.managerLookups.WithLabelValues("cached").Inc()
		} else {
			rec.ManagerState = wire.ManagerPending
		}
	}
	return rec
}

// view is every operator's card of a call at one version.
type view struct {
	cards   map[string][]byte // by operator, without the version: to compare
	version int
}

// card is an operator's card as sent (with the version); nil when the
// operator has none.
func (v view) card(op string) []byte {
	b, ok := v.cards[op]
	if !ok {
		return nil
	}
	return withVersion(b, v.version)
}

// cards renders every leg's card, to compare before and after a change.
func (c *calls) cards(rec *call.Record) view {
	out := make(map[string][]byte, len(rec.Legs))
	for _, id := range rec.Operators() {
		me, _ := c.ops.Lookup(id)
		b, _ := json.Marshal(rec.CardFor(id, person(me)))
		out[id] = b
	}
	return view{cards: out, version: rec.Version}
}

// changedCards is the card of each operator whose view changed since
// before (none: every card), as events to append. The message id makes a
// replay of the same change a no-op.
func (c *calls) changedCards(rec *call.Record, before view, received time.Time) []store.Append {
	after := c.cards(rec)
	var out []store.Append
	for _, id := range rec.Operators() {
		b := after.cards[id]
		if old, ok := before.cards[id]; ok && string(old) == string(b) {
			continue
		}
		out = append(out, store.Append{Operator: id, Type: wire.TypeCall, Data: withVersion(b, rec.Version),
			MsgID: rec.Key + "." + id + "." + strconv.Itoa(rec.Version), Received: received})
	}
	return out
}

// withVersion adds the call's version to a card (a JSON object) as
// wire.Call's version: cards are compared without it (a change that leaves
// an operator's view as it was sends that operator nothing).
func withVersion(card []byte, version int) []byte {
	if len(card) < 2 || card[len(card)-1] != '}' {
		return card
	}
	out := make([]byte, 0, len(card)+24)
	out = append(out, card[:len(card)-1]...)
	out = append(out, `,"version":`...)
	out = strconv.AppendInt(out, int64(version), 10)
	return append(out, '}')
}

// publishCards appends the cards of a replay (see changedCards), those
// stored before dropped by their message ids.
func (c *calls) publishCards(ctx context.Context, rec *call.Record, before view, received time.Time) error {
	var acks store.Acks
	for _, e := range c.changedCards(rec, before, received) {
		if err := c.store.AppendAsync(&acks, e.Operator, e.Type, e.Data, e.MsgID, received); err != nil {
			return err
		}
	}
	return acks.Wait(ctx)
}

// firstSeenEnded reports whether the call's record was made from its end
// (a UIS call the relay never saw ringing): it has no cards.
func firstSeenEnded(rec *call.Record) bool {
	return rec.Version == 1 && rec.State.Final()
}

// storeRecord stores a record that makes no cards, if the stored one is
// still at revision rev (0: if there is none), and caches it.
func (c *calls) storeRecord(ctx context.Context, rec *call.Record, rev uint64) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if rev, err = c.store.CommitCall(ctx, rec.Key, b, rev, nil); err != nil {
		c.cache.Drop(rec.Key)
		return err
	}
	c.cache.Put(rec.Key, rec, rev)
	return nil
}

// Where loadCall looks for a call's record.
type loadMode int

const (
	loadCached   loadMode = iota // the call cache, else the bucket
	loadPresumed                 // the call cache, else presume there is none
	loadStored                   // the bucket
)

// loadCall returns the call's record (nil if there is none) and its
// revision, and whether it was read from the bucket (see callCache).
func (c *calls) loadCall(ctx context.Context, key string, mode loadMode) (rec *call.Record, rev uint64, stored bool, err error) {
	if mode != loadStored {
		if rec, rev, ok := c.cache.Get(key); ok {
			return rec, rev, false, nil
		}
		if mode == loadPresumed {
			return nil, 0, false, nil
		}
	}
	data, rev, err := c.store.LoadCall(ctx, key)
	switch {
	case err != nil:
		return nil, 0, false, err
	case data == nil:
		return nil, 0, true, nil
	}
	rec = &call.Record{}
	if err := json.Unmarshal(data, rec); err != nil {
		return nil, 0, false, fmt.Errorf("decode call %s: %w", key, err)
	}
	if rec.Legs == nil {
		rec.Legs = map[string]*call.Leg{}
	}
	return rec, rev, true, nil
}

// commitCall stores the record, if the stored one is still at revision rev
// (0: if there is none), with the cards that changed since before (see
// changedCards), and caches it. The cards go to the agents connected here
// while they are being stored (c.ahead); when the store refuses the record
// it returns them, for the caller to withdraw.
func (c *calls) commitCall(ctx context.Context, rec *call.Record, rev uint64, before view, received time.Time) ([]store.Ahead, error) {
	cards := c.changedCards(rec, before, received)
	var ahead []store.Ahead
	if c.ahead != nil {
		ahead = make([]store.Ahead, len(cards))
		for i, e := range cards {
			ahead[i] = store.Ahead{Operator: e.Operator, MsgID: e.MsgID, Data: e.Data, Before: before.card(e.Operator), Received: received}
		}
		eventtrace.Mark(ctx, eventtrace.Ready)
		c.ahead.SendAhead(ahead)
		eventtrace.Mark(ctx, eventtrace.Sent)
	}
	b, err := json.Marshal(rec)
	if err != nil {
		c.withdraw(ahead, nil)
		return nil, err
	}
	if rev, err = c.store.CommitCall(ctx, rec.Key, b, rev, cards); err != nil {
		// Stale (the compare-and-set failed), or unknown whether it was
		// stored: either way the bucket tells next time.
		c.cache.Drop(rec.Key)
		if !store.Refused(err) {
			// Maybe stored: then the live feed says so; if not, the PBX
			// retries (the same change, the same cards, not sent twice),
			// or the hub withdraws them after hub.AheadExpiry.
			ahead = nil
		}
		return ahead, err
	}
	c.cache.Put(rec.Key, rec, rev)
	return nil, nil
}

// withdraw takes back cards sent ahead whose record was refused, each
// operator's back to its card in stored (the record as stored, read after
// a stale attempt) or, when stored is nil, to the card it had before.
func (c *calls) withdraw(ahead []store.Ahead, stored *view) {
	if len(ahead) == 0 {
		return
	}
	if stored != nil {
		for i := range ahead {
			ahead[i].Before = stored.card(ahead[i].Operator)
		}
	}
	c.ahead.Withdraw(ahead)
}

// resolveManager asks the CRM for the caller's responsible manager and
// updates the call's cards. The cards went out before; this never delays them.
// A lookup cut short because the relay is stopping stores nothing: the
// record stays pending and the next start resumes it (resumeLookups).
func (c *calls) resolveManager(ctx context.Context, key, number string) {
	lctx, cancel := context.WithTimeout(ctx, c.cfg.RetailCRM.Timeout.Duration)
	res, err := c.mgr.get(lctx, number)
	cancel()
	switch {
	case err != nil && ctx.Err() != nil:
		return
	case err != nil:
		c.metrics.managerLookups.WithLabelValues("error").Inc()
		c.log.Warn("responsible manager lookup failed", "err", err)
	case res != nil && res.Manager != nil:
		c.metrics.managerLookups.WithLabelValues("found").Inc()
	default:
		c.metrics.managerLookups.WithLabelValues("none").Inc()
		c.log.Debug("the caller has no responsible manager in the CRM", "call", key)
	}
	c.settleManager(ctx, key, res, err)
}

// settleManager stores a lookup's outcome on a call still waiting for it
// and publishes the cards that change.
func (c *calls) settleManager(ctx context.Context, key string, res *retailcrm.ManagerResult, err error) {
	wctx, wcancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer wcancel()
	defer c.locks.lock(key)()
	var stale []store.Ahead // as in processCall
	defer func() { c.withdraw(stale, nil) }()
	for attempt, mode := 0, loadCached; attempt < 8; attempt, mode = attempt+1, loadStored {
		rec, rev, _, lerr := c.loadCall(wctx, key, mode)
		if lerr != nil || rec == nil || rec.ManagerState != wire.ManagerPending {
			return
		}
		before := c.cards(rec)
		c.withdraw(stale, &before)
		stale = nil
		if err != nil {
			rec.ManagerState = wire.ManagerUnavailable
		} else {
			setManager(rec, res, c.managerFree(res))
		}
		rec.Version, rec.At = rec.Version+1, c.clock().UTC()
		ahead, serr := c.commitCall(wctx, rec, rev, before, time.Time{})
		if serr != nil {
			stale = ahead
			if errors.Is(serr, store.ErrConflict) {
				continue
			}
			c.log.Error("could not store the responsible manager", "err", serr)
		}
		return
	}
}

// checkClientID guards the URLs retailCRM calls: a wrong clientId is 403
// and nothing happens.
func (s *Server) checkClientID(w http.ResponseWriter, r *http.Request) bool {
	if !retailcrm.ClientIDEqual(r.URL.Query().Get("clientId"), s.cfg.PBX.ClientID) {
		http.Error(w, "wrong clientId", http.StatusForbidden)
		return false
	}
	return true
}

// handleCRMMakeCall serves retailCRM's makeCallUrl: the CRM's phone icon.
// It forwards to the PBX the same way and tells the operator.
func (s *Server) handleCRMMakeCall(w http.ResponseWriter, r *http.Request) {
	if !s.checkClientID(w, r) {
		return
	}
	mc, err := retailcrm.ParseMakeCall(r.URL.Query())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	op, ok := s.ops.ByCode(mc.Code)
	if !ok {
		if op, ok = s.ops.ByUserID(mc.UserID); !ok {
			http.Error(w, "no operator has code "+mc.Code, http.StatusNotFound)
			return
		}
	}
	received := time.Now()
	display := phone.Display(mc.Phone, s.cfg.PhoneRegion)
	s.notify(r.Context(), op, wire.Notice{Kind: wire.NoticeDialing, Text: "Dialing " + display + " (from the CRM)", Phone: mc.Phone, At: received.UTC()}, received)
	res, werr := s.placeCall(r.Context(), op, mc.Phone, mc.ExternalPhone)
	if werr != nil {
		s.notify(r.Context(), op, wire.Notice{Kind: wire.NoticeDialFailed, Text: "Could not dial " + display + ": " + werr.Message, Phone: mc.Phone, Error: werr, At: time.Now().UTC()}, time.Time{})
		status := http.StatusBadGateway
		if werr.Code == wire.ErrInvalidNumber {
			status = http.StatusBadRequest
		}
		http.Error(w, werr.Message, status)
		return
	}
	s.metrics.eventsIn.WithLabelValues("crm_make_call").Inc()
	fmt.Fprintf(w, "dialing %s\n", res.Phone)
}

func (s *Server) notify(ctx context.Context, op operators.Operator, n wire.Notice, received time.Time) {
	b, _ := json.Marshal(n)
	if _, err := s.store.Append(ctx, op.ID, wire.TypeNotice, b, "", received); err != nil {
		s.log.Warn("notice not stored", "operator", op.ID, "err", err)
	}
}

// handleCRMChangeStatus serves retailCRM's changeUserStatusUrl: a status
// changed in the CRM reaches the operator's agents and the PBX.
func (s *Server) handleCRMChangeStatus(w http.ResponseWriter, r *http.Request) {
	if !s.checkClientID(w, r) {
		return
	}
	cs, err := retailcrm.ParseChangeStatus(r.URL.Query())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	op, ok := s.ops.ByCode(cs.Code)
	if !ok {
		if op, ok = s.ops.ByUserID(cs.UserID); !ok {
			http.Error(w, "no operator has code "+cs.Code, http.StatusNotFound)
			return
		}
	}
	at := s.clock()
	if err := storeRetry(r.Context(), func() error {
		_, err := s.applyStatus(r.Context(), op, wire.Status(cs.Status), at, sourceCRM)
		return err
	}); err != nil {
		s.log.Error("crm status change not stored", "err", err)
		http.Error(w, "could not store the status", http.StatusInternalServerError)
		return
	}
	s.metrics.eventsIn.WithLabelValues("crm_change_status").Inc()
	fmt.Fprintln(w, "ok")
}

// person is the operator as a call record knows them.
func person(op operators.Operator) call.Person {
	return call.Person{ID: op.ID, Code: op.Code, Name: op.Name, UserID: op.UserID}
}
