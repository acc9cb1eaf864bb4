package store

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// The call history (UploadsStream): every finished call the relay saw, and
// every call a PBX uploaded (PublishPBXUpload), read back in batches by one
// reader across the cluster (ReadUploads).

// Upload is a call-history record as it was stored.
type Upload struct {
	Data    []byte // the record, as stored
	FromPBX bool   // a PBX uploaded it (uploadFromPBX), rather than the relay making it from a call's events
	Seq     uint64 // its sequence in the stream (0 if unknown)
}

// UploadReader describes the reader of the call history ReadUploads runs.
type UploadReader struct {
	// Name is the reader's: a durable consumer every node shares, so
	// that each record goes to one node's batcher. Made if missing.
	Name        string
	Description string
	Max         int           // records in a batch at most
	Wait        time.Duration // how long a batch waits for more after its first record
}

// RecordCall stores a finished call (made by the relay from its events) in
// the call history. The same callID again within the dedupe window stores
// nothing.
func (s *Store) RecordCall(ctx context.Context, callID string, data []byte) error {
	_, err := s.publishUpload(ctx, data, "upload.call."+callID, uploadFromCall)
	return err
}

// ReadUploads hands the call history to fn in batches until ctx ends: a
// batch is handed when it holds r.Max records, or r.Wait after its first.
// fn gets a context of its own (10 s, not ended by ctx): when it returns
// nil the batch's records are acknowledged, and never handed again; an
// error gives them back, to be handed again a second later. Records taken
// when ctx ends go back at once, for the next reader. A failure to read is
// logged and retried; ReadUploads returns an error only if the reader
// cannot be made.
func (s *Store) ReadUploads(ctx context.Context, r UploadReader, fn func(ctx context.Context, batch []Upload) error) error {
	cons, err := s.uploads.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:       r.Name,
		Description:   r.Description,
		FilterSubject: UploadsSubject,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       r.Wait + 30*time.Second,
		MaxDeliver:    -1,
		MaxAckPending: 10 * r.Max,
	})
	if err != nil {
		return fmt.Errorf("store: call history consumer: %w", err)
	}
	pause := time.Second
	for ctx.Err() == nil {
		it, err := cons.Messages(jetstream.PullMaxMessages(r.Max))
		if err == nil {
			err = s.batchUploads(ctx, it, r, fn)
			pause = time.Second
		}
		if ctx.Err() != nil {
			return nil
		}
		s.log.Warn("reading the call history failed", "err", err, "retry_in", pause)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(pause):
		}
		pause = min(2*pause, 30*time.Second)
	}
	return nil
}

// batchUploads reads the history through it, handing a batch to fn when it
// is full or r.Wait after its first record, until it ends. When ctx ends it
// is drained (a fetch cut off instead could lose records on their way here
// to the ack deadline), and what it still hands over goes back to the
// stream.
func (s *Store) batchUploads(ctx context.Context, it jetstream.MessagesContext, r UploadReader, fn func(context.Context, []Upload) error) error {
	defer DrainOnDone(ctx, it)()
	for {
		first, err := it.Next()
		if err != nil {
			return err
		}
		batch := []jetstream.Msg{first}
		deadline := time.Now().Add(r.Wait)
		for len(batch) < r.Max && ctx.Err() == nil {
			left := time.Until(deadline)
			if left <= 20*time.Millisecond {
				break
			}
			m, err := it.Next(jetstream.NextMaxWait(left))
			if err != nil {
				break // hand what there is
			}
			batch = append(batch, m)
		}
		if ctx.Err() != nil {
			for _, m := range batch {
				Requeue(m) // the next run takes them at once
			}
			continue
		}
		s.handUploads(ctx, batch, fn)
	}
}

// handUploads hands one batch to fn, then acknowledges its records, or
// gives them back if fn failed.
func (s *Store) handUploads(ctx context.Context, batch []jetstream.Msg, fn func(context.Context, []Upload) error) {
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	ups := make([]Upload, len(batch))
	for i, m := range batch {
		ups[i] = Upload{Data: m.Data(), FromPBX: m.Headers().Get(hdrUploadSource) != uploadFromCall}
		if md, err := m.Metadata(); err == nil {
			ups[i].Seq = md.Sequence.Stream
		}
	}
	if err := fn(bctx, ups); err != nil {
		for _, m := range batch {
			m.NakWithDelay(time.Second)
		}
		return
	}
	for _, m := range batch {
		if err := m.DoubleAck(bctx); err != nil {
			s.log.Warn("call history record not acknowledged; it may be uploaded twice (harmless)", "err", err)
		}
	}
}

// DrainOnDone drains it when ctx ends, so that what is on its way is still
// handed over (and can be given back with Requeue) instead of being lost
// to the ack deadline; the returned func, called when the caller is done
// reading, stops it instead if ctx has not ended. The call history's reader
// and package outbox's workers read their consumers this way.
func DrainOnDone(ctx context.Context, it jetstream.MessagesContext) (done func()) {
	stopped := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		select {
		case <-ctx.Done():
			it.Drain()
		case <-stopped:
			it.Stop()
		}
	}()
	return func() { close(stopped); <-finished }
}

// Requeue gives a message back for redelivery at once, in a way that
// survives a restart: JetStream records a delayed nak in the consumer's
// state, while a plain one only queues the message in the server's memory,
// and after a restart it would wait out the whole ack deadline.
func Requeue(m jetstream.Msg) { m.NakWithDelay(time.Millisecond) }
