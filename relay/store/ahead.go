package store

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// Ahead is a call card sent to its operator's agents before it is stored
// (see "Cards ahead of the log" in package wire), or taken back.
type Ahead struct {
	Operator string
	MsgID    string    // the id the card is appended with; the frames name it
	Data     []byte    // the card (wire.Call)
	Before   []byte    // the operator's card before the change; nil when none
	Received time.Time // when the relay received what made it (metrics)
}

// Subjects of the cards relays share (core NATS: at most once, not
// stored). A card for an operator whose relay is known goes to that relay
// alone: toPrefix, the node, then sendInfix or withdrawnInfix and the
// operator's id. One for an operator no relay is known to hold (presence
// not yet heard) goes to every relay: aheadPrefix or withdrawnPrefix, then
// the operator's id (as relays before targeting sent every card).
const (
	aheadPrefix     = "pult.ahead.send."
	withdrawnPrefix = "pult.ahead.withdrawn."
	toPrefix        = "pult.ahead.to."
	sendInfix       = ".send."
	withdrawnInfix  = ".withdrawn."
	hdrNode         = "Pult-Node"
	hdrCard         = "Pult-Card"
)

// Shared reports whether other relays may use the same NATS: whether
// ShareAhead sends anything.
func (s *Store) Shared() bool { return s.shared }

// ShareAhead passes cards this relay (from) sends ahead, or withdraws, to
// the relays named in to, for the agents connected to them; to nil means
// every other relay. Without other relays (an embedded NATS of one node)
// it does nothing. What is lost on the way is not: the live feed brings
// every stored card.
func (s *Store) ShareAhead(from string, to []string, withdrawn bool, cards ...Ahead) {
	if !s.shared {
		return
	}
	for _, c := range cards {
		m := nats.NewMsg("")
		m.Header.Set(hdrNode, from)
		m.Header.Set(hdrCard, c.MsgID)
		if !c.Received.IsZero() {
			m.Header.Set(hdrReceived, strconv.FormatInt(c.Received.UnixNano(), 10))
		}
		// The card, a newline, the card before (JSON has no raw newline).
		m.Data = make([]byte, 0, len(c.Data)+1+len(c.Before))
		m.Data = append(append(append(m.Data, c.Data...), '\n'), c.Before...)
		var subjects []string
		switch {
		case to == nil && withdrawn:
			subjects = []string{withdrawnPrefix + c.Operator}
		case to == nil:
			subjects = []string{aheadPrefix + c.Operator}
		default:
			infix := sendInfix
			if withdrawn {
				infix = withdrawnInfix
			}
			for _, node := range to {
				subjects = append(subjects, toPrefix+node+infix+c.Operator)
			}
		}
		// One message, published under each subject: PublishMsg has
		// encoded it when it returns.
		for _, subject := range subjects {
			m.Subject = subject
			if err := s.nc.PublishMsg(m); err != nil {
				s.log.Debug("a card ahead was not shared", "err", err)
			}
		}
	}
}

// SubscribeAhead calls fn with each card the other relays send ahead or
// withdraw (withdrawn), to this relay (node) or to every relay, until stop
// is called. node is this relay's: its own are skipped. fn runs on one
// goroutine, in the order the cards came. Without other relays it does
// nothing.
func (s *Store) SubscribeAhead(node string, fn func(c Ahead, withdrawn bool)) (stop func(), err error) {
	if !s.shared {
		return func() {}, nil
	}
	// One channel for the three subjects, so that a card and its
	// withdrawal keep their order whichever subjects they came on. A full
	// channel drops (at most once, as the rest of the way).
	ch := make(chan *nats.Msg, 1024)
	mine := toPrefix + node
	var subs []*nats.Subscription
	unsubscribe := func() {
		for _, sub := range subs {
			sub.Unsubscribe()
		}
	}
	for _, subject := range []string{aheadPrefix + ">", withdrawnPrefix + ">", mine + ".>"} {
		sub, err := s.nc.ChanSubscribe(subject, ch)
		if err != nil {
			unsubscribe()
			return nil, fmt.Errorf("store: subscribe to the cards other relays send ahead: %w", err)
		}
		subs = append(subs, sub)
	}
	// Subscribed on the server before the relay serves.
	if err := s.nc.Flush(); err != nil {
		unsubscribe()
		return nil, fmt.Errorf("store: subscribe to the cards other relays send ahead: %w", err)
	}
	done, ended := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(ended)
		for {
			select {
			case <-done:
				return
			case m := <-ch:
				if c, withdrawn, ok := parseAhead(m, node, mine); ok {
					fn(c, withdrawn)
				}
			}
		}
	}()
	return func() {
		unsubscribe()
		close(done)
		<-ended
	}, nil
}

// parseAhead reads a shared card; mine is the prefix of the subjects of
// the cards sent to this relay alone. ok is false for this relay's own (a
// card sent to every relay) and for what is not a card.
func parseAhead(m *nats.Msg, node, mine string) (c Ahead, withdrawn, ok bool) {
	if m.Header.Get(hdrNode) == node {
		return Ahead{}, false, false
	}
	var op string
	found := false
	for _, p := range []struct {
		prefix    string
		withdrawn bool
	}{{aheadPrefix, false}, {withdrawnPrefix, true}, {mine + sendInfix, false}, {mine + withdrawnInfix, true}} {
		if op, found = strings.CutPrefix(m.Subject, p.prefix); found {
			withdrawn = p.withdrawn
			break
		}
	}
	data, before, cut := bytes.Cut(m.Data, []byte{'\n'})
	id := m.Header.Get(hdrCard)
	if !found || !cut || id == "" || op == "" {
		return Ahead{}, false, false
	}
	c = Ahead{Operator: op, MsgID: id, Data: data, Received: parseNanos(m.Header.Get(hdrReceived))}
	if len(before) > 0 {
		c.Before = before
	}
	return c, withdrawn, true
}
