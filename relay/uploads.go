package relay

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pult/pult/agent/wire"
	"github.com/pult/pult/relay/call"
	"github.com/pult/pult/relay/outbox"
	"github.com/pult/pult/relay/retailcrm"
	"github.com/pult/pult/relay/store"
)

// Call history.
//
// Every finished call the relay saw (whatever PBX reported it) and every
// call a PBX uploads to the relay's own telephony/calls/upload is appended
// to the PULT_CALL_UPLOADS stream (store.PublishUpload). With retailCRM
// configured, one batcher (a durable consumer, so with several relay nodes
// only one takes each record) collects up to 50 records — waiting at most
// [retailcrm] upload_wait after the first — and enqueues one outbox job per
// batch, "retailcrm.calls", whose handler sends them with calls/upload. The
// records are acknowledged only once the job is stored, so a crash in
// between sends a batch twice at worst, which retailCRM reports as
// duplicateCalls: delivered.

const (
	jobCRMCalls    = "retailcrm.calls"
	uploadConsumer = "retailcrm-calls-upload"
)

// callsJob is the payload of a calls/upload job.
type callsJob struct {
	Calls []retailcrm.UploadCall `json:"calls"`
}

// recordHistory stores a finished call for the history. The message id
// makes a replayed hangup a no-op.
func (c *calls) recordHistory(ctx context.Context, rec *call.Record) error {
	h := historyFor(rec)
	if err := h.Validate(); err != nil {
		c.log.Warn("finished call left out of the history", "call", rec.ID, "err", err)
		return nil
	}
	b, err := json.Marshal(h)
	if err != nil {
		return err
	}
	_, err = c.store.PublishUpload(ctx, b, "upload.call."+rec.ID, store.UploadFromCall)
	return err
}

// historyFor is a finished call as retailCRM's call history wants it.
func historyFor(rec *call.Record) retailcrm.UploadCall {
	c := retailcrm.UploadCall{
		Date: rec.StartedAt, Type: retailcrm.TypeIn, Phone: rec.Phone, ExternalID: rec.ID,
		RecordURL: rec.RecordURL, ExternalPhone: rec.Line, Site: rec.Site,
	}
	if rec.Direction == wire.DirectionOut {
		c.Type = retailcrm.TypeOut
	}
	who := rec.AnsweredBy
	if who == "" && len(rec.Legs) == 1 {
		for id := range rec.Legs {
			who = id
		}
	}
	if l := rec.Legs[who]; l != nil {
		c.Code, c.UserID = l.Code, l.UserID
	}
	ended := rec.StartedAt
	if rec.EndedAt != nil {
		ended = *rec.EndedAt
	}
	secs := func(d time.Duration) int {
		return int(max(0, min(d, retailcrm.MaxDuration*time.Second)).Round(time.Second) / time.Second)
	}
	if rec.State == wire.CallEnded {
		c.Result = retailcrm.ResultAnswered
		answered := rec.StartedAt
		if rec.AnsweredAt != nil {
			answered = *rec.AnsweredAt
		}
		c.Duration, c.DurationWaiting = secs(ended.Sub(answered)), secs(answered.Sub(rec.StartedAt))
	} else {
		switch rec.HangupStatus {
		case retailcrm.HangupBusy:
			c.Result = retailcrm.ResultBusy
		case retailcrm.HangupFailed:
			c.Result = retailcrm.ResultFailed
		default:
			c.Result = retailcrm.ResultNoAnswer
		}
		c.DurationWaiting = secs(ended.Sub(rec.StartedAt))
	}
	// What the PBX measured beats what the relay saw.
	if rec.TalkTime > 0 {
		c.Duration = secs(rec.TalkTime)
	}
	if rec.WaitTime > 0 {
		c.DurationWaiting = secs(rec.WaitTime)
	}
	return c
}

// maxUploadBatch is retailCRM's limit of calls per calls/upload.
const maxUploadBatch = retailcrm.MaxUploadCalls

// runUploads batches the call history into calls/upload jobs until ctx ends.
func (y *crmSync) runUploads(ctx context.Context) error {
	wait := y.cfg.RetailCRM.UploadWait.Duration
	cons, err := y.store.UploadsConsumer(ctx, jetstream.ConsumerConfig{
		Durable:       uploadConsumer,
		Description:   "pult: call history to retailCRM calls/upload, in batches",
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       wait + 30*time.Second,
		MaxDeliver:    -1,
		MaxAckPending: 10 * maxUploadBatch,
	})
	if err != nil {
		return err
	}
	pause := time.Second
	for ctx.Err() == nil {
		it, err := cons.Messages(jetstream.PullMaxMessages(maxUploadBatch))
		if err == nil {
			err = y.batchUploads(ctx, it, wait)
			pause = time.Second
		}
		if ctx.Err() != nil {
			return nil
		}
		y.log.Warn("reading the call history failed", "err", err, "retry_in", pause)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(pause):
		}
		pause = min(2*pause, 30*time.Second)
	}
	return nil
}

// batchUploads reads the history through it, flushing a batch when it is
// full or wait after its first record, until it ends. When ctx ends it is
// drained (a fetch cut off instead could lose records on their way here to
// the ack deadline), and what it still hands over goes back to the stream.
func (y *crmSync) batchUploads(ctx context.Context, it jetstream.MessagesContext, wait time.Duration) error {
	defer outbox.DrainOnDone(ctx, it)()
	for {
		first, err := it.Next()
		if err != nil {
			return err
		}
		batch := []jetstream.Msg{first}
		deadline := time.Now().Add(wait)
		for len(batch) < maxUploadBatch && ctx.Err() == nil {
			left := time.Until(deadline)
			if left <= 20*time.Millisecond {
				break
			}
			m, err := it.Next(jetstream.NextMaxWait(left))
			if err != nil {
				break // send what there is
			}
			batch = append(batch, m)
		}
		if ctx.Err() != nil {
			for _, m := range batch {
				outbox.Requeue(m) // the next run takes them at once
			}
			continue
		}
		y.flushUploads(ctx, batch)
	}
}

// flushUploads enqueues one calls/upload job for a batch of history
// records, then acknowledges them.
func (y *crmSync) flushUploads(ctx context.Context, batch []jetstream.Msg) {
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	type entry struct {
		call retailcrm.UploadCall
		pbx  bool
	}
	var calls []entry
	byID := map[string]int{}
	h := sha256.New()
	var firstSeq uint64
	for _, m := range batch {
		if md, err := m.Metadata(); err == nil {
			if firstSeq == 0 {
				firstSeq = md.Sequence.Stream
			}
			h.Write([]byte(strconv.FormatUint(md.Sequence.Stream, 10) + ","))
		}
		var c retailcrm.UploadCall
		if err := json.Unmarshal(m.Data(), &c); err != nil {
			y.log.Error("unreadable call history record left out", "err", err)
			continue
		}
		c.Date = c.Date.In(y.loc)
		if err := c.Validate(); err != nil {
			y.log.Warn("invalid call history record left out", "call", c.ExternalID, "err", err)
			continue
		}
		e := entry{call: c, pbx: m.Headers().Get(store.HeaderUploadSource) != store.UploadFromCall}
		// One call reported twice (by the PBX's own upload and by its
		// events) goes once: the PBX knows more (the recording, say).
		if i, ok := byID[c.ExternalID]; ok && c.ExternalID != "" {
			if e.pbx && !calls[i].pbx {
				calls[i] = e
			}
			continue
		}
		if c.ExternalID != "" {
			byID[c.ExternalID] = len(calls)
		}
		calls = append(calls, e)
	}
	if len(calls) > 0 {
		job := callsJob{Calls: make([]retailcrm.UploadCall, len(calls))}
		for i, e := range calls {
			job.Calls[i] = e.call
		}
		id := fmt.Sprintf("crm-calls.%d.%s", firstSeq, hex.EncodeToString(h.Sum(nil)[:6]))
		if err := y.outbox.Enqueue(bctx, jobCRMCalls, id, job); err != nil {
			y.log.Error("call history batch not queued; will try again", "err", err)
			for _, m := range batch {
				m.NakWithDelay(time.Second)
			}
			return
		}
	}
	for _, m := range batch {
		if err := m.DoubleAck(bctx); err != nil {
			y.log.Warn("call history record not acknowledged; it may be uploaded twice (harmless)", "err", err)
		}
	}
}

// sendCallsUpload is the outbox handler of a calls/upload batch. Calls
// retailCRM already has (duplicateCalls) count as delivered.
func (y *crmSync) sendCallsUpload(ctx context.Context, job outbox.Job) error {
	var p callsJob
	if err := json.Unmarshal(job.Payload, &p); err != nil {
		return outbox.Permanent(fmt.Errorf("decode job: %w", err))
	}
	for i := range p.Calls {
		p.Calls[i].Date = p.Calls[i].Date.In(y.loc) // retailCRM reads dates in the account's zone
	}
	res, err := y.crm.UploadCalls(ctx, p.Calls)
	if err != nil {
		return err
	}
	y.metrics.callsUploaded.Add(float64(len(p.Calls)))
	y.log.Info("call history uploaded to retailCRM", "calls", len(p.Calls), "processed", res.Processed, "duplicates", len(res.Duplicates))
	return nil
}
