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
// stored): all of them, then the two prefixes, each followed by the
// operator's id.
const (
	aheadSubjects   = "pult.ahead.>"
	aheadPrefix     = "pult.ahead.send."
	withdrawnPrefix = "pult.ahead.withdrawn."
	hdrNode         = "Pult-Node"
	hdrCard         = "Pult-Card"
)

// ShareAhead passes cards this relay (node) sends ahead, or withdraws, to
// the other relays, for the agents connected to them. Without other
// relays (an embedded NATS of one node) it does nothing. What is lost on
// the way is not: the live feed brings every stored card.
func (s *Store) ShareAhead(node string, cards []Ahead, withdrawn bool) {
	if !s.shared {
		return
	}
	prefix := aheadPrefix
	if withdrawn {
		prefix = withdrawnPrefix
	}
	for _, c := range cards {
		m := nats.NewMsg(prefix + c.Operator)
		m.Header.Set(hdrNode, node)
		m.Header.Set(hdrCard, c.MsgID)
		if !c.Received.IsZero() {
			m.Header.Set(hdrReceived, strconv.FormatInt(c.Received.UnixNano(), 10))
		}
		// The card, a newline, the card before (JSON has no raw newline).
		m.Data = make([]byte, 0, len(c.Data)+1+len(c.Before))
		m.Data = append(append(append(m.Data, c.Data...), '\n'), c.Before...)
		if err := s.nc.PublishMsg(m); err != nil {
			s.log.Debug("a card ahead was not shared", "err", err)
		}
	}
}

// SubscribeAhead calls fn with each card the other relays send ahead or
// withdraw (withdrawn) until stop is called. node is this relay's: its own
// are skipped. fn runs on one goroutine. Without other relays it does
// nothing.
func (s *Store) SubscribeAhead(node string, fn func(c Ahead, withdrawn bool)) (stop func(), err error) {
	if !s.shared {
		return func() {}, nil
	}
	sub, err := s.nc.Subscribe(aheadSubjects, func(m *nats.Msg) {
		if m.Header.Get(hdrNode) == node {
			return
		}
		var withdrawn bool
		var op string
		switch {
		case strings.HasPrefix(m.Subject, aheadPrefix):
			op = m.Subject[len(aheadPrefix):]
		case strings.HasPrefix(m.Subject, withdrawnPrefix):
			op, withdrawn = m.Subject[len(withdrawnPrefix):], true
		default:
			return
		}
		data, before, ok := bytes.Cut(m.Data, []byte{'\n'})
		id := m.Header.Get(hdrCard)
		if !ok || id == "" || op == "" {
			return
		}
		c := Ahead{Operator: op, MsgID: id, Data: data, Received: parseNanos(m.Header.Get(hdrReceived))}
		if len(before) > 0 {
			c.Before = before
		}
		fn(c, withdrawn)
	})
	if err != nil {
		return nil, fmt.Errorf("store: subscribe to the cards other relays send ahead: %w", err)
	}
	// Subscribed on the server before the relay serves.
	if err := s.nc.Flush(); err != nil {
		sub.Unsubscribe()
		return nil, fmt.Errorf("store: subscribe to the cards other relays send ahead: %w", err)
	}
	return func() { sub.Unsubscribe() }, nil
}
