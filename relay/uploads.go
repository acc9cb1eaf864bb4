package relay

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

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
// to the call history (store.RecordCall, store.PublishPBXUpload). With
// retailCRM configured, one batcher (store.ReadUploads: a reader shared by
// the relay nodes, so that only one takes each record) collects up to 50
// records — waiting at most [retailcrm] upload_wait after the first — and
// enqueues one outbox job per batch, "retailcrm.calls", whose handler sends
// them with calls/upload. The records are acknowledged only once the job is
// stored, so a crash in between sends a batch twice at worst, which
// retailCRM reports as duplicateCalls: delivered.

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
	return c.store.RecordCall(ctx, rec.ID, b)
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
	return y.store.ReadUploads(ctx, store.UploadReader{
		Name:        uploadConsumer,
		Description: "pult: call history to retailCRM calls/upload, in batches",
		Max:         maxUploadBatch,
		Wait:        y.cfg.RetailCRM.UploadWait.Duration,
	}, y.flushUploads)
}

// flushUploads enqueues one calls/upload job for a batch of history
// records; an error gives the batch back to the history, to be read again.
func (y *crmSync) flushUploads(ctx context.Context, batch []store.Upload) error {
	type entry struct {
		call retailcrm.UploadCall
		pbx  bool
	}
	var calls []entry
	byID := map[string]int{}
	h := sha256.New()
	var firstSeq uint64
	for _, u := range batch {
		if u.Seq != 0 {
			if firstSeq == 0 {
				firstSeq = u.Seq
			}
			h.Write([]byte(strconv.FormatUint(u.Seq, 10) + ","))
		}
		var c retailcrm.UploadCall
		if err := json.Unmarshal(u.Data, &c); err != nil {
			y.log.Error("unreadable call history record left out", "err", err)
			continue
		}
		c.Date = c.Date.In(y.loc)
		if err := c.Validate(); err != nil {
			y.log.Warn("invalid call history record left out", "call", c.ExternalID, "err", err)
			continue
		}
		e := entry{call: c, pbx: u.FromPBX}
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
	if len(calls) == 0 {
		return nil
	}
	job := callsJob{Calls: make([]retailcrm.UploadCall, len(calls))}
	for i, e := range calls {
		job.Calls[i] = e.call
	}
	id := fmt.Sprintf("crm-calls.%d.%s", firstSeq, hex.EncodeToString(h.Sum(nil)[:6]))
	if err := y.outbox.Enqueue(ctx, jobCRMCalls, id, job); err != nil {
		y.log.Error("call history batch not queued; will try again", "err", err)
		return err
	}
	return nil
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
