// Package outbox delivers outbound partner calls durably. A job is stored in
// a JetStream work queue before anyone is told it was accepted; a worker
// runs it and retries failures with capped exponential backoff and full
// jitter until it succeeds, fails permanently, or is older than the give-up
// age. A job is acknowledged (and so never run again) only after its handler
// succeeded.
package outbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"regexp"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Job is one outbound call.
type Job struct {
	ID      string          `json:"id"`   // idempotency key
	Kind    string          `json:"kind"` // selects the handler
	Created time.Time       `json:"created"`
	Payload json.RawMessage `json:"payload"`
}

// Handler performs a job. Return nil when done, a *PermanentError when it can
// never succeed, anything else to retry (a *RetryAfterError sets the delay).
type Handler func(ctx context.Context, job Job) error

// PermanentError stops retries.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent wraps err so the job is not retried.
func Permanent(err error) error { return &PermanentError{err} }

// RetryAfterError asks for a retry no sooner than After.
type RetryAfterError struct {
	Err   error
	After time.Duration
}

func (e *RetryAfterError) Error() string { return e.Err.Error() }
func (e *RetryAfterError) Unwrap() error { return e.Err }

// Config of an Outbox.
type Config struct {
	Stream      jetstream.Stream
	JS          jetstream.JetStream
	Subject     string // prefix, e.g. "pult.outbox."
	MinBackoff  time.Duration
	MaxBackoff  time.Duration
	GiveUp      time.Duration
	Concurrency int
	Timeout     time.Duration // per attempt
	Logger      *slog.Logger
	// OnDead is called when a job is given up.
	OnDead func(job Job, err error)
}

// Outbox enqueues and runs jobs.
type Outbox struct {
	cfg      Config
	log      *slog.Logger
	mu       sync.RWMutex
	handlers map[string]Handler
}

// New makes an outbox; register handlers before Run.
func New(cfg Config) *Outbox {
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 16
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 20 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Outbox{cfg: cfg, log: cfg.Logger.With("component", "outbox"), handlers: map[string]Handler{}}
}

var kindPattern = regexp.MustCompile(`^[a-z0-9_-]+(\.[a-z0-9_-]+)*$`)

// Handle registers the handler of a kind.
func (o *Outbox) Handle(kind string, h Handler) {
	if !kindPattern.MatchString(kind) {
		panic("outbox: bad kind " + kind)
	}
	o.mu.Lock()
	o.handlers[kind] = h
	o.mu.Unlock()
}

// Enqueue stores a job durably. The same id within the dedupe window is
// stored once.
func (o *Outbox) Enqueue(ctx context.Context, kind, id string, payload any) error {
	b, err := json.Marshal(payload)
	if err != nil {
		return fmt.Errorf("outbox: encode %s: %w", kind, err)
	}
	job, _ := json.Marshal(Job{ID: id, Kind: kind, Created: time.Now().UTC(), Payload: b})
	if _, err := o.cfg.JS.Publish(ctx, o.cfg.Subject+kind, job, jetstream.WithMsgID(id)); err != nil {
		return fmt.Errorf("outbox: enqueue %s: %w", kind, err)
	}
	return nil
}

const consumerName = "outbox-worker"

// Run works the queue until ctx ends. Jobs in flight are finished or left
// for redelivery.
func (o *Outbox) Run(ctx context.Context) error {
	cons, err := o.cfg.Stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:       consumerName,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       o.cfg.Timeout + 10*time.Second,
		MaxDeliver:    -1,
		MaxAckPending: 4 * o.cfg.Concurrency,
	})
	if err != nil {
		return fmt.Errorf("outbox: consumer: %w", err)
	}
	sem := make(chan struct{}, o.cfg.Concurrency)
	var wg sync.WaitGroup
	cc, err := cons.Consume(func(m jetstream.Msg) {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			o.process(ctx, m)
		}()
	}, jetstream.PullMaxMessages(o.cfg.Concurrency))
	if err != nil {
		return fmt.Errorf("outbox: consume: %w", err)
	}
	<-ctx.Done()
	cc.Stop()
	<-cc.Closed()
	wg.Wait()
	return nil
}

func (o *Outbox) process(ctx context.Context, m jetstream.Msg) {
	var job Job
	if err := json.Unmarshal(m.Data(), &job); err != nil {
		o.log.Error("dropping undecodable job", "err", err)
		m.Term()
		return
	}
	md, _ := m.Metadata()
	attempt := uint64(1)
	if md != nil {
		attempt = md.NumDelivered
	}
	o.mu.RLock()
	h := o.handlers[job.Kind]
	o.mu.RUnlock()
	if h == nil {
		o.dead(m, job, fmt.Errorf("no handler for kind %q", job.Kind))
		return
	}
	actx, cancel := context.WithTimeout(ctx, o.cfg.Timeout)
	err := h(actx, job)
	cancel()
	if err == nil {
		if aerr := m.DoubleAck(ctx); aerr != nil && !errors.Is(aerr, nats.ErrConnectionClosed) {
			o.log.Warn("ack failed; the job may run again", "job", job.ID, "err", aerr)
		}
		return
	}
	if ctx.Err() != nil {
		return // shutting down: leave it for redelivery
	}
	var perm *PermanentError
	if errors.As(err, &perm) {
		o.dead(m, job, err)
		return
	}
	if o.cfg.GiveUp > 0 && time.Since(job.Created) > o.cfg.GiveUp {
		o.dead(m, job, fmt.Errorf("still failing after %s: %w", o.cfg.GiveUp, err))
		return
	}
	delay := Backoff(attempt, o.cfg.MinBackoff, o.cfg.MaxBackoff)
	var ra *RetryAfterError
	if errors.As(err, &ra) && ra.After > delay {
		delay = ra.After
	}
	o.log.Info("job failed; will retry", "job", job.ID, "kind", job.Kind, "attempt", attempt, "in", delay.Round(time.Millisecond), "err", err)
	m.NakWithDelay(delay)
}

func (o *Outbox) dead(m jetstream.Msg, job Job, err error) {
	o.log.Warn("job given up", "job", job.ID, "kind", job.Kind, "err", err)
	m.Term()
	if o.cfg.OnDead != nil {
		o.cfg.OnDead(job, err)
	}
}

// Depth is how many jobs wait or run.
func (o *Outbox) Depth(ctx context.Context) (int, error) {
	info, err := o.cfg.Stream.Info(ctx)
	if err != nil {
		return 0, err
	}
	return int(info.State.Msgs), nil
}

// Backoff is capped exponential backoff with full jitter: a random duration
// in [0, min(max, base·2^(attempt-1))], never below a millisecond.
func Backoff(attempt uint64, base, max time.Duration) time.Duration {
	if attempt < 1 {
		attempt = 1
	}
	ceil := max
	if attempt <= 40 {
		if d := base << (attempt - 1); d > 0 && d < max {
			ceil = d
		}
	}
	d := time.Duration(rand.Int64N(int64(ceil) + 1))
	if d < time.Millisecond {
		d = time.Millisecond
	}
	return d
}
