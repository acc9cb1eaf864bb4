package outbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// ErrNotFound: no pending job or dead letter has that id.
var ErrNotFound = errors.New("no such job")

// ErrPending: the job waits for its next attempt; only dead letters are
// retried by hand.
var ErrPending = errors.New("job is pending, not dead")

// State of a stored job.
type State string

// States.
const (
	StatePending State = "pending"
	StateDead    State = "dead"
)

// PendingJob is a job waiting for its first or next attempt, or running.
type PendingJob struct {
	ID             string    `json:"id"`
	Kind           string    `json:"kind"`
	Created        time.Time `json:"created"`
	Queued         time.Time `json:"queued"`
	Attempts       int       `json:"attempts"`
	NextAttempt    time.Time `json:"nextAttempt,omitzero"` // zero: as soon as a worker (and the rate limit) allows
	LastError      string    `json:"lastError,omitempty"`
	PartnerMessage string    `json:"partnerMessage,omitempty"`
	Running        bool      `json:"running,omitempty"`   // a worker of this relay holds it now
	NoHandler      bool      `json:"noHandler,omitempty"` // this relay has no handler for its kind
}

// DeadJob is a dead letter: a job given up, with its history.
type DeadJob struct {
	Job            Job       `json:"job"`
	Reason         string    `json:"reason"` // ReasonRejected, ReasonGaveUp, ReasonUndecodable
	Attempts       int       `json:"attempts"`
	FirstError     string    `json:"firstError,omitempty"`
	LastError      string    `json:"lastError"`
	PartnerMessage string    `json:"partnerMessage,omitempty"`
	FirstAttempt   time.Time `json:"firstAttempt,omitzero"`
	LastAttempt    time.Time `json:"lastAttempt,omitzero"`
	Died           time.Time `json:"died"`
}

// Stats describe the queue.
type Stats struct {
	Depth       int            `json:"depth"` // jobs waiting or running
	DepthByKind map[string]int `json:"depthByKind"`
	OldestAge   time.Duration  `json:"oldestAge"` // since the oldest waiting job was queued; 0 when none
	Dead        int            `json:"dead"`      // dead letters kept
	DeadByKind  map[string]int `json:"deadByKind"`
}

// Stats counts jobs and dead letters (two stream info requests).
func (o *Outbox) Stats(ctx context.Context) (Stats, error) {
	var st Stats
	info, err := o.cfg.Stream.Info(ctx, jetstream.WithSubjectFilter(o.cfg.Subject+">"))
	if err != nil {
		return st, fmt.Errorf("outbox: stats: %w", err)
	}
	st.Depth = int(info.State.Msgs)
	st.DepthByKind = byKind(info.State.Subjects, o.cfg.Subject)
	if st.Depth > 0 && !info.State.FirstTime.IsZero() {
		st.OldestAge = max(0, time.Since(info.State.FirstTime))
	}
	dinfo, err := o.cfg.Dead.Info(ctx, jetstream.WithSubjectFilter(o.cfg.DeadSubject+">"))
	if err != nil {
		return st, fmt.Errorf("outbox: stats: %w", err)
	}
	st.Dead = int(dinfo.State.Msgs)
	st.DeadByKind = byKind(dinfo.State.Subjects, o.cfg.DeadSubject)
	return st, nil
}

func byKind(subjects map[string]uint64, prefix string) map[string]int {
	out := make(map[string]int, len(subjects))
	for s, n := range subjects {
		out[strings.TrimPrefix(s, prefix)] += int(n)
	}
	return out
}

// scan calls fn with each message of a stream matching filter, in order,
// until fn returns false.
func scan(ctx context.Context, s jetstream.Stream, filter string, fn func(*jetstream.RawStreamMsg) bool) error {
	info, err := s.Info(ctx)
	if err != nil {
		return err
	}
	for seq := max(info.State.FirstSeq, 1); seq <= info.State.LastSeq; {
		m, err := s.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(filter))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if !fn(m) {
			return nil
		}
		seq = m.Sequence + 1
	}
	return nil
}

func msgJobID(m *jetstream.RawStreamMsg) string {
	if id := m.Header.Get(HeaderJobID); id != "" {
		return id
	}
	var j struct {
		ID  string `json:"id"`
		Job struct {
			ID string `json:"id"`
		} `json:"job"`
	}
	json.Unmarshal(m.Data, &j)
	if j.ID != "" {
		return j.ID
	}
	return j.Job.ID
}

// Pending lists up to limit waiting jobs, oldest first.
func (o *Outbox) Pending(ctx context.Context, limit int) ([]PendingJob, error) {
	out := []PendingJob{}
	if limit <= 0 {
		return out, nil
	}
	err := scan(ctx, o.cfg.Stream, o.cfg.Subject+">", func(m *jetstream.RawStreamMsg) bool {
		var job Job
		if json.Unmarshal(m.Data, &job) != nil || job.ID == "" {
			job = Job{ID: msgJobID(m), Kind: strings.TrimPrefix(m.Subject, o.cfg.Subject), Created: m.Time}
		}
		p := PendingJob{ID: job.ID, Kind: job.Kind, Created: job.Created, Queued: job.queued(),
			Running: o.isRunning(m.Sequence), NoHandler: !o.handled(job.Kind)}
		a := o.loadAttempts(ctx, m.Sequence, job.ID)
		p.Attempts, p.LastError, p.PartnerMessage = a.Count, a.LastError, a.Message
		if a.NextAttempt.After(time.Now()) {
			p.NextAttempt = a.NextAttempt
		}
		out = append(out, p)
		return len(out) < limit
	})
	if err != nil {
		return nil, fmt.Errorf("outbox: list pending jobs: %w", err)
	}
	return out, nil
}

// Dead lists up to limit dead letters, oldest first.
func (o *Outbox) Dead(ctx context.Context, limit int) ([]DeadJob, error) {
	out := []DeadJob{}
	if limit <= 0 {
		return out, nil
	}
	err := scan(ctx, o.cfg.Dead, o.cfg.DeadSubject+">", func(m *jetstream.RawStreamMsg) bool {
		var dj DeadJob
		if json.Unmarshal(m.Data, &dj) != nil || dj.Job.ID == "" {
			dj = DeadJob{Job: Job{ID: msgJobID(m), Kind: strings.TrimPrefix(m.Subject, o.cfg.DeadSubject)},
				Reason: ReasonUndecodable, Died: m.Time}
		}
		out = append(out, dj)
		return len(out) < limit
	})
	if err != nil {
		return nil, fmt.Errorf("outbox: list dead letters: %w", err)
	}
	return out, nil
}

// find returns the stream sequences of every message with the job id.
func find(ctx context.Context, s jetstream.Stream, filter, id string) ([]uint64, error) {
	var seqs []uint64
	err := scan(ctx, s, filter, func(m *jetstream.RawStreamMsg) bool {
		if msgJobID(m) == id {
			seqs = append(seqs, m.Sequence)
		}
		return true
	})
	return seqs, err
}

// Retry puts a dead letter back in the queue under its own id, with a fresh
// attempt count and give-up clock. Retrying the same dead letter twice (a
// double click) queues it once.
func (o *Outbox) Retry(ctx context.Context, id string) (Job, error) {
	pending, err := find(ctx, o.cfg.Stream, o.cfg.Subject+">", id)
	if err != nil {
		return Job{}, fmt.Errorf("outbox: retry: %w", err)
	}
	if len(pending) > 0 {
		return Job{}, fmt.Errorf("%w: %s is retried automatically", ErrPending, id)
	}
	dead, err := find(ctx, o.cfg.Dead, o.cfg.DeadSubject+">", id)
	if err != nil {
		return Job{}, fmt.Errorf("outbox: retry: %w", err)
	}
	if len(dead) == 0 {
		return Job{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	last := dead[len(dead)-1]
	m, err := o.cfg.Dead.GetMsg(ctx, last)
	if err != nil {
		return Job{}, fmt.Errorf("outbox: retry: %w", err)
	}
	var dj DeadJob
	if err := json.Unmarshal(m.Data, &dj); err != nil || dj.Job.ID == "" || !kindPattern.MatchString(dj.Job.Kind) {
		return Job{}, fmt.Errorf("outbox: retry %s: the dead letter is not a job this relay can read", id)
	}
	job := dj.Job
	job.Queued = time.Now().UTC()
	// A message id of its own: the job's id is still in the dedupe window
	// when it died quickly.
	if err := o.publish(ctx, job, job.ID+".retry."+stateKey(last)); err != nil {
		return Job{}, fmt.Errorf("outbox: retry %s: %w", id, err)
	}
	for _, seq := range dead {
		if err := o.cfg.Dead.DeleteMsg(ctx, seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			return job, fmt.Errorf("outbox: retry %s: queued, but the dead letter stays: %w", id, err)
		}
	}
	o.log.Info("dead letter retried", "job", id, "kind", job.Kind)
	return job, nil
}

// Drop removes a job for good, pending or dead, and says which it was
// (StatePending when both). An attempt running at that moment may still
// reach the partner.
func (o *Outbox) Drop(ctx context.Context, id string) (State, error) {
	pending, err := find(ctx, o.cfg.Stream, o.cfg.Subject+">", id)
	if err != nil {
		return "", fmt.Errorf("outbox: drop: %w", err)
	}
	dead, err := find(ctx, o.cfg.Dead, o.cfg.DeadSubject+">", id)
	if err != nil {
		return "", fmt.Errorf("outbox: drop: %w", err)
	}
	if len(pending)+len(dead) == 0 {
		return "", fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	for _, seq := range pending {
		if err := o.cfg.Stream.DeleteMsg(ctx, seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			return "", fmt.Errorf("outbox: drop %s: %w", id, err)
		}
		o.forget(ctx, seq)
	}
	for _, seq := range dead {
		if err := o.cfg.Dead.DeleteMsg(ctx, seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			return "", fmt.Errorf("outbox: drop %s: %w", id, err)
		}
	}
	o.log.Info("job dropped", "job", id, "pending", len(pending), "dead", len(dead))
	if len(pending) > 0 {
		return StatePending, nil
	}
	return StateDead, nil
}
