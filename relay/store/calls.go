package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// A call's record lives in EventsStream, on the subject callsPrefix+key,
// beside the cards it makes; its revision is the stream sequence of its
// latest version. CommitCall stores a new version and the cards it changed
// in one JetStream round trip (two in a cluster), each on the condition
// that the record is still at the version read. Records stored before (in the pult_calls
// bucket) are still read, and move into the stream with their next version.

// Append is one event of a CommitCall: what Append takes.
type Append struct {
	Operator string
	Type     string
	Data     []byte
	MsgID    string
	Received time.Time
}

// LoadCall returns a call's record (JSON) and its revision; nil and 0 when
// there is none. A record still in the former bucket has revision 0: its
// next version is the first in the stream.
func (s *Store) LoadCall(ctx context.Context, key string) ([]byte, uint64, error) {
	m, err := s.events.GetLastMsgForSubject(ctx, callsPrefix+key)
	switch {
	case err == nil:
		return m.Data, m.Sequence, nil
	case !errors.Is(err, jetstream.ErrMsgNotFound):
		return nil, 0, fmt.Errorf("store: load call: %w", err)
	}
	data, _, err := load(ctx, s.calls, "call", key)
	return data, 0, err
}

// CommitCall stores a call's record, if it is still at revision rev (0: if
// there is none), and the events its change made (the cards), in one round
// trip: the events first, then the record, each published on the condition
// that the record is still at rev, and stored by JetStream in that order.
// (In a cluster: the record, then the events; see commitCallInTurn.)
// It returns the record's new revision, or ErrConflict when the record
// changed since rev.
//
// The caller takes a call's changes one at a time on this relay. Another
// relay changing the same call between this one's events and its record
// has this record refused but events stored that show the call as this
// change alone would have left it; the retry then stores the cards of both
// changes, so every agent ends on the card of the stored record.
func (s *Store) CommitCall(ctx context.Context, key string, record []byte, rev uint64, events []Append) (uint64, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, ackWait)
		defer cancel()
	}
	subj := callsPrefix + key
	expect := strconv.FormatUint(rev, 10)
	if s.clustered {
		return s.commitCallInTurn(ctx, subj, expect, record, events)
	}
	futures := make([]jetstream.PubAckFuture, 0, len(events)+1)
	for _, e := range events {
		m := eventMsg(e.Operator, e.Type, e.Data, e.Received)
		m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, expect)
		m.Header.Set(jetstream.ExpectedLastSubjSeqSubjHeader, subj)
		if e.MsgID != "" {
			m.Header.Set(jetstream.MsgIDHeader, e.MsgID)
		}
		f, err := s.js.PublishMsgAsync(m)
		if err != nil {
			return 0, fmt.Errorf("store: commit call: %w", err)
		}
		futures = append(futures, f)
	}
	m := nats.NewMsg(subj)
	m.Data = record
	m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, expect)
	f, err := s.js.PublishMsgAsync(m)
	if err != nil {
		return 0, fmt.Errorf("store: commit call: %w", err)
	}
	futures = append(futures, f)
	var newRev uint64
	var first error
	for i, f := range futures {
		select {
		case ack := <-f.Ok():
			if i == len(futures)-1 {
				newRev = ack.Sequence
			}
		case err := <-f.Err():
			if first == nil || i == len(futures)-1 {
				first = casError("commit call", err)
			}
		case <-ctx.Done():
			return 0, fmt.Errorf("store: commit call: %w", ctx.Err())
		}
	}
	if first != nil {
		return 0, first
	}
	return newRev, nil
}

// commitCallInTurn is CommitCall in a cluster, where JetStream refuses a
// second condition on a subject while a first one is being replicated:
// the record first, then its events. Cut off between the two (the relay
// killed), the record is stored without its cards; the PBX's retry sends
// them (a replay, see the relay's processCall).
func (s *Store) commitCallInTurn(ctx context.Context, subj, expect string, record []byte, events []Append) (uint64, error) {
	m := nats.NewMsg(subj)
	m.Data = record
	m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, expect)
	ack, err := s.js.PublishMsg(ctx, m)
	if err != nil {
		return 0, casError("commit call", err)
	}
	var acks Acks
	for _, e := range events {
		if err := s.AppendAsync(&acks, e.Operator, e.Type, e.Data, e.MsgID, e.Received); err != nil {
			return 0, err
		}
	}
	if err := acks.Wait(ctx); err != nil {
		return 0, err
	}
	return ack.Sequence, nil
}

// CallKeys lists the calls kept, calling fn for each until it returns
// false: those in the stream, then those left in the former bucket.
func (s *Store) CallKeys(ctx context.Context, fn func(key string) bool) error {
	info, err := s.events.Info(ctx, jetstream.WithSubjectFilter(callsPrefix+">"))
	if err != nil {
		return fmt.Errorf("store: list calls: %w", err)
	}
	seen := make(map[string]bool, len(info.State.Subjects))
	for subj := range info.State.Subjects {
		key := strings.TrimPrefix(subj, callsPrefix)
		seen[key] = true
		if !fn(key) {
			return nil
		}
	}
	keys, err := s.calls.ListKeys(ctx)
	if err != nil {
		return fmt.Errorf("store: list calls: %w", err)
	}
	defer keys.Stop()
	for k := range keys.Keys() {
		if !seen[k] && !fn(k) {
			break
		}
	}
	return nil
}
