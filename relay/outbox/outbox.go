// Package outbox delivers outbound partner calls durably.
//
// A job is stored in a JetStream work-queue stream before anyone is told it
// was accepted. Each kind of job has its own durable pull consumer and
// workers, so a partner that is down or rate-limited never holds up another
// partner's jobs. A worker takes one job at a time (nothing is prefetched, so
// no job waits in memory while its ack deadline runs), takes a token from
// each rate limiter the kind needs, and runs the handler. While it holds a
// job it tells JetStream it is still working on it (InProgress), so a slow
// rate limiter or partner never lets the job be redelivered under it.
//
// The handler's error decides what happens (see Handler for the contract):
// success acknowledges the job, which removes it for good; a permanent
// failure moves it to the dead letters at once with the partner's message;
// anything else schedules the next attempt — capped exponential backoff with
// full jitter, or the partner's Retry-After — with a delayed negative
// acknowledgement, so the wait lives in JetStream, not in a goroutine. A job
// still failing GiveUp after it was queued goes to the dead letters too.
//
// Delivery is at least once. A job is acknowledged only after its handler
// returned nil; if the relay dies between the partner's 2xx and the
// acknowledgement (one round trip to NATS), the job runs again after the
// ack deadline. Partners' idempotency keys (the job id is meant to be one:
// Qolio's communication_id, retailCRM's externalId) make that harmless. A
// graceful stop lets attempts in flight finish (Config.Grace) and
// acknowledges them, so a restart sends nothing twice.
//
// Attempt counts and errors are kept in a KeyValue bucket keyed by the
// job's stream sequence, written before the job is negatively acknowledged:
// JetStream's delivery count is no attempt count, since a job is also
// delivered when it comes back early (after a restart) or when the relay
// stops before running it.
package outbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math/rand/v2"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"time"
	"unicode"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/time/rate"

	"github.com/pult/pult/relay/store"
)

// Job is one outbound call.
type Job struct {
	ID      string          `json:"id"`   // idempotency key
	Kind    string          `json:"kind"` // selects the handler
	Created time.Time       `json:"created"`
	Queued  time.Time       `json:"queued,omitzero"` // when it last entered the queue (Retry sets it again); GiveUp counts from here
	Payload json.RawMessage `json:"payload"`
}

func (j Job) queued() time.Time {
	if j.Queued.IsZero() {
		return j.Created
	}
	return j.Queued
}

// Handler performs a job: one call to a partner, passing job.ID as the
// partner's idempotency key where it takes one. ctx carries the attempt's
// deadline. What the handler returns decides what happens to the job; the
// partner packages' typed errors follow package partner's convention
// (partner.Error), and need not import this package:
//
//   - nil: done. The job is acknowledged and never sent again.
//   - an error with Temporary() bool returning false, or one wrapping a
//     *PermanentError (see Permanent): it can never succeed, so the job
//     becomes a dead letter at once. Transport errors — anything that also
//     has a Timeout() bool method, such as *url.Error and *net.OpError — are
//     retried whatever their Temporary says: "connection refused" is not
//     Temporary in package net, yet a partner down now may be up soon.
//   - an error with RetryDelay() time.Duration > 0 (a partner's Retry-After,
//     or *RetryAfterError): the next attempt is no sooner than that — at
//     least MinBackoff, at most MaxRetryAfter.
//   - anything else: retried with capped exponential backoff and full jitter
//     until GiveUp has passed since the job was queued; then a dead letter.
//
// An error with PartnerMessage() string keeps the partner's own words (the
// errorMsg of a 400, say) with the job for `pult-relay outbox list`.
// partner.CheckResponse turns an HTTP answer into an error that follows all
// of this. A panic is caught and makes a dead letter.
type Handler func(ctx context.Context, job Job) error

// RateLimit is a partner's request budget: Rate requests per second with
// bursts of Burst (at least 1).
type RateLimit struct {
	Rate  rate.Limit
	Burst int
}

// Outcome of an attempt, for metrics.
type Outcome string

// Outcomes.
const (
	OutcomeOK    Outcome = "ok"    // the partner accepted
	OutcomeRetry Outcome = "retry" // failed; another attempt is scheduled
	OutcomeDead  Outcome = "dead"  // failed for good: a dead letter
)

// Reasons a job became a dead letter.
const (
	ReasonRejected    = "rejected"    // the partner said it can never succeed
	ReasonGaveUp      = "gave up"     // still failing after GiveUp
	ReasonUndecodable = "undecodable" // not a job this relay can read
)

// HeaderJobID carries the job id on stored messages.
const HeaderJobID = "Pult-Job-Id"

// Config of an Outbox.
type Config struct {
	JS          jetstream.JetStream
	Stream      jetstream.Stream   // the work queue (store.Outbox)
	Subject     string             // its subject prefix, e.g. "pult.outbox."
	Dead        jetstream.Stream   // dead letters (store.Dead)
	DeadSubject string             // their subject prefix, e.g. "pult.dead."
	State       jetstream.KeyValue // attempts and errors of waiting jobs (store.OutboxState)

	MinBackoff    time.Duration // first retry delay ceiling and floor of Retry-After; default 1s
	MaxBackoff    time.Duration // cap of the backoff; default 5m
	MaxRetryAfter time.Duration // cap of a partner's Retry-After; default 1h
	GiveUp        time.Duration // a job still failing this long after it was queued is dead; default 24h
	Workers       int           // concurrent attempts per kind; default 4
	Timeout       time.Duration // deadline of one attempt; default 20s
	AckWait       time.Duration // JetStream's ack deadline, renewed while a job is held; default 30s
	Grace         time.Duration // how long attempts in flight may finish once Run's ctx ends; default 5s

	// Limits are the named rate limiters kinds can share (see Limit).
	Limits map[string]RateLimit

	Logger *slog.Logger
	// OnAttempt is called after every attempt.
	OnAttempt func(kind string, outcome Outcome)
	// OnDead is called when a job becomes a dead letter.
	OnDead func(DeadJob)
}

// Option tunes the jobs of one kind (see Handle).
type Option func(*kindConfig)

type kindConfig struct {
	limits  []string
	workers int
	timeout time.Duration
	onDead  func(DeadJob)
}

// Limit makes every attempt of the kind take a token from each named
// limiter of Config.Limits first. Kinds naming the same limiter share it.
func Limit(names ...string) Option {
	return func(k *kindConfig) { k.limits = append(k.limits, names...) }
}

// Workers sets how many attempts of the kind may run at once.
func Workers(n int) Option { return func(k *kindConfig) { k.workers = n } }

// Timeout sets the deadline of one attempt of the kind.
func Timeout(d time.Duration) Option { return func(k *kindConfig) { k.timeout = d } }

// WhenDead calls f (after Config.OnDead) when a job of the kind becomes a
// dead letter: the part that owns the kind tells whoever waits for it.
func WhenDead(f func(DeadJob)) Option { return func(k *kindConfig) { k.onDead = f } }

type kind struct {
	name     string
	h        Handler
	limiters []*rate.Limiter // most permissive first
	workers  int
	timeout  time.Duration
	onDead   func(DeadJob)
}

// Outbox enqueues and runs jobs.
type Outbox struct {
	cfg      Config
	log      *slog.Logger
	limiters map[string]*rate.Limiter

	mu       sync.Mutex
	kinds    map[string]*kind
	running  bool
	inflight map[uint64]bool // stream sequences of jobs held by a worker here
}

// New makes an outbox; register handlers with Handle before Run.
func New(cfg Config) *Outbox {
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = time.Second
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(5*time.Minute, cfg.MinBackoff)
	}
	if cfg.MaxRetryAfter <= 0 {
		cfg.MaxRetryAfter = time.Hour
	}
	if cfg.GiveUp <= 0 {
		cfg.GiveUp = 24 * time.Hour
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 4
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 20 * time.Second
	}
	if cfg.AckWait <= 0 {
		cfg.AckWait = 30 * time.Second
	}
	if cfg.Grace <= 0 {
		cfg.Grace = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	o := &Outbox{
		cfg: cfg, log: cfg.Logger.With("component", "outbox"),
		limiters: map[string]*rate.Limiter{}, kinds: map[string]*kind{}, inflight: map[uint64]bool{},
	}
	for name, l := range cfg.Limits {
		o.limiters[name] = rate.NewLimiter(l.Rate, max(1, l.Burst))
	}
	return o
}

// Limiter returns the named limiter, or nil. Calls made outside the outbox
// (interactive lookups) take their tokens from it too, so the partner's
// budget holds for every call.
func (o *Outbox) Limiter(name string) *rate.Limiter { return o.limiters[name] }

var kindPattern = regexp.MustCompile(`^[a-z0-9_-]+(\.[a-z0-9_-]+)*$`)

// Handle registers the handler of a kind. It panics on a malformed kind, an
// unknown limiter, or after Run started: those are programming errors.
func (o *Outbox) Handle(name string, h Handler, opts ...Option) {
	if !kindPattern.MatchString(name) {
		panic("outbox: bad kind " + name)
	}
	kc := kindConfig{workers: o.cfg.Workers, timeout: o.cfg.Timeout}
	for _, opt := range opts {
		opt(&kc)
	}
	k := &kind{name: name, h: h, workers: max(1, kc.workers), timeout: kc.timeout, onDead: kc.onDead}
	if k.timeout <= 0 {
		k.timeout = o.cfg.Timeout
	}
	slices.Sort(kc.limits)
	for _, n := range slices.Compact(kc.limits) {
		l := o.limiters[n]
		if l == nil {
			panic("outbox: kind " + name + " uses unknown rate limit " + n)
		}
		k.limiters = append(k.limiters, l)
	}
	// The strictest limiter is waited for last, so its token is used the
	// moment it is granted and the budget that binds holds exactly.
	slices.SortStableFunc(k.limiters, func(a, b *rate.Limiter) int {
		switch {
		case a.Limit() > b.Limit():
			return -1
		case a.Limit() < b.Limit():
			return 1
		}
		return 0
	})
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.running {
		panic("outbox: Handle after Run")
	}
	o.kinds[name] = k
}

// Kinds lists the registered kinds, sorted.
func (o *Outbox) Kinds() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make([]string, 0, len(o.kinds))
	for k := range o.kinds {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func (o *Outbox) handled(kind string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.kinds[kind] != nil
}

// maxIDLen bounds a job id.
const maxIDLen = 200

// checkID accepts ids usable as a header value and on a command line.
func checkID(id string) error {
	if id == "" || len(id) > maxIDLen {
		return fmt.Errorf("outbox: job id must be 1 to %d bytes", maxIDLen)
	}
	for _, r := range id {
		if unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return fmt.Errorf("outbox: job id %q has a space or control character", id)
		}
	}
	return nil
}

// Enqueue stores a job durably. id is its idempotency key: the same id
// enqueued again within the stream's dedupe window (store.OutboxDedupeWindow)
// is stored once, and handlers should pass it to partners that take one.
func (o *Outbox) Enqueue(ctx context.Context, kind, id string, payload any) error {
	if !kindPattern.MatchString(kind) {
		return fmt.Errorf("outbox: bad kind %q", kind)
	}
	if err := checkID(id); err != nil {
		return err
	}
	b, err := json.Marshal(payload)
	if err != nil {
		return fmt.Errorf("outbox: encode %s: %w", kind, err)
	}
	now := time.Now().UTC()
	if err := o.publish(ctx, Job{ID: id, Kind: kind, Created: now, Queued: now, Payload: b}, id); err != nil {
		return fmt.Errorf("outbox: enqueue %s: %w", kind, err)
	}
	return nil
}

func (o *Outbox) publish(ctx context.Context, job Job, msgID string) error {
	m := nats.NewMsg(o.cfg.Subject + job.Kind)
	m.Data, _ = json.Marshal(job)
	m.Header.Set(HeaderJobID, job.ID)
	_, err := o.cfg.JS.PublishMsg(ctx, m, jetstream.WithMsgID(msgID))
	return err
}

// legacyConsumer took every subject before each kind had its own; a work
// queue lets only one consumer take a subject, so it must go.
const legacyConsumer = "outbox-worker"

func consumerName(kind string) string {
	h := fnv.New32a()
	h.Write([]byte(kind))
	safe := []byte(kind)
	for i, c := range safe {
		if c == '.' {
			safe[i] = '_'
		}
	}
	return fmt.Sprintf("outbox-%s-%08x", safe, h.Sum32())
}

func (o *Outbox) consumer(ctx context.Context, k *kind) (jetstream.Consumer, error) {
	return o.cfg.Stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:       consumerName(k.name),
		Description:   "pult outbox workers of " + k.name,
		FilterSubject: o.cfg.Subject + k.name,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       o.cfg.AckWait,
		MaxDeliver:    -1,
		// Jobs waiting for their next attempt are pending acks (their delay
		// is a delayed nak); they must not stop new jobs from coming.
		MaxAckPending: -1,
	})
}

// Run works the queue until ctx ends. Attempts in flight then get Grace to
// finish and be acknowledged; those still running are left for redelivery.
func (o *Outbox) Run(ctx context.Context) error {
	if o.cfg.JS == nil || o.cfg.Stream == nil || o.cfg.Dead == nil || o.cfg.State == nil || o.cfg.Subject == "" || o.cfg.DeadSubject == "" {
		return errors.New("outbox: Config needs JS, Stream, Subject, Dead, DeadSubject and State")
	}
	o.mu.Lock()
	if o.running {
		o.mu.Unlock()
		return errors.New("outbox: already running")
	}
	o.running = true
	kinds := make([]*kind, 0, len(o.kinds))
	for _, k := range o.kinds {
		kinds = append(kinds, k)
	}
	o.mu.Unlock()
	defer func() {
		o.mu.Lock()
		o.running = false
		o.mu.Unlock()
	}()

	if err := o.cfg.Stream.DeleteConsumer(ctx, legacyConsumer); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return fmt.Errorf("outbox: remove the old consumer: %w", err)
	}
	consumers := make([]jetstream.Consumer, len(kinds))
	for i, k := range kinds {
		c, err := o.consumer(ctx, k)
		if err != nil {
			return fmt.Errorf("outbox: consumer of %s: %w", k.name, err)
		}
		consumers[i] = c
	}
	o.sweep(ctx)

	// Attempts run on hard: it outlives ctx by Grace, so a call the partner
	// is answering is not cut off by a graceful stop.
	hard, hardCancel := context.WithCancel(context.WithoutCancel(ctx))
	defer hardCancel()
	var wg sync.WaitGroup
	for i, k := range kinds {
		for range k.workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				o.work(ctx, hard, k, consumers[i])
			}()
		}
	}
	<-ctx.Done()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	t := time.NewTimer(o.cfg.Grace)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		o.log.Warn("attempts still running after the grace period; they will run again after restart", "grace", o.cfg.Grace)
		hardCancel()
		<-done
	}
	return nil
}

// sweep removes attempt records whose job is gone (the relay stopped
// between acknowledging a job and deleting its record).
func (o *Outbox) sweep(ctx context.Context) {
	keys, err := o.cfg.State.ListKeys(ctx)
	if err != nil {
		return
	}
	var stale []string
	for key := range keys.Keys() {
		seq, err := strconv.ParseUint(key, 10, 64)
		if err != nil {
			stale = append(stale, key)
			continue
		}
		if _, err := o.cfg.Stream.GetMsg(ctx, seq); errors.Is(err, jetstream.ErrMsgNotFound) {
			stale = append(stale, key)
		}
	}
	keys.Stop()
	for _, key := range stale {
		o.cfg.State.Purge(ctx, key)
	}
}

// work takes one job at a time from a kind's consumer until ctx ends.
//
// It reads through a drained iterator rather than a fetch cut off by ctx: a
// job the server sends while a fetch is being abandoned would be lost to
// this process and wait out the ack deadline (30 s) before anyone runs it.
// Drained, the iterator hands over what is on its way, and work puts it
// back on the queue at once.
func (o *Outbox) work(ctx, hard context.Context, k *kind, cons jetstream.Consumer) {
	pause := time.Second
	for ctx.Err() == nil {
		it, err := cons.Messages(jetstream.PullMaxMessages(1))
		if err == nil {
			err = o.drain(ctx, hard, k, it)
			pause = time.Second
		}
		if ctx.Err() != nil {
			return
		}
		o.log.Warn("fetching a job failed", "kind", k.name, "err", err, "retry_in", pause)
		if errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrConsumerDeleted) {
			if c, cerr := o.consumer(ctx, k); cerr == nil {
				cons = c
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(pause):
		}
		pause = min(2*pause, 10*time.Second)
	}
}

// drain works the jobs it yields until it ends, draining it when ctx ends;
// jobs it hands over after that go back to the queue unstarted.
func (o *Outbox) drain(ctx, hard context.Context, k *kind, it jetstream.MessagesContext) error {
	defer store.DrainOnDone(ctx, it)()
	for {
		m, err := it.Next()
		if err != nil {
			return err
		}
		if ctx.Err() != nil {
			store.Requeue(m)
			continue
		}
		o.process(ctx, hard, k, m)
	}
}

// attempts is what is kept between attempts of a job.
type attempts struct {
	JobID        string    `json:"job"`
	Count        int       `json:"attempts"`
	FirstError   string    `json:"firstError,omitempty"`
	LastError    string    `json:"lastError,omitempty"`
	Message      string    `json:"partnerMessage,omitempty"`
	FirstAttempt time.Time `json:"firstAttempt,omitzero"`
	LastAttempt  time.Time `json:"lastAttempt,omitzero"`
	NextAttempt  time.Time `json:"nextAttempt,omitzero"`
	Dead         string    `json:"dead,omitempty"` // reason, once decided
}

func stateKey(seq uint64) string { return strconv.FormatUint(seq, 10) }

// loadAttempts reads a job's record; a missing, unreadable or foreign one
// (the stream was recreated) is a fresh record.
func (o *Outbox) loadAttempts(ctx context.Context, seq uint64, jobID string) attempts {
	e, err := o.cfg.State.Get(ctx, stateKey(seq))
	if err != nil {
		if !errors.Is(err, jetstream.ErrKeyNotFound) {
			o.log.Warn("could not read a job's attempts", "job", jobID, "err", err)
		}
		return attempts{JobID: jobID}
	}
	var a attempts
	if json.Unmarshal(e.Value(), &a) != nil || a.JobID != jobID {
		return attempts{JobID: jobID}
	}
	return a
}

func (o *Outbox) saveAttempts(ctx context.Context, seq uint64, a attempts) error {
	b, _ := json.Marshal(a)
	_, err := o.cfg.State.Put(ctx, stateKey(seq), b)
	return err
}

// forget deletes a job's record, if it has one (a purge of a missing key
// would store a marker for nothing).
func (o *Outbox) forget(ctx context.Context, seq uint64) {
	if _, err := o.cfg.State.Get(ctx, stateKey(seq)); err == nil {
		o.cfg.State.Purge(ctx, stateKey(seq))
	}
}

func (o *Outbox) claim(seq uint64) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.inflight[seq] {
		return false
	}
	o.inflight[seq] = true
	return true
}

func (o *Outbox) release(seq uint64) {
	o.mu.Lock()
	delete(o.inflight, seq)
	o.mu.Unlock()
}

func (o *Outbox) isRunning(seq uint64) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.inflight[seq]
}

// hold renews the job's ack deadline until the returned func is called.
func (o *Outbox) hold(m jetstream.Msg) func() {
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(o.cfg.AckWait / 3)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				m.InProgress()
			}
		}
	}()
	return func() { close(stop); <-done }
}

// tokens waits for one token of each limiter, in order.
func (k *kind) tokens(ctx context.Context) error {
	for _, l := range k.limiters {
		if err := l.Wait(ctx); err != nil {
			return err
		}
	}
	return nil
}

// opTimeout bounds the outbox's own NATS calls around an attempt.
const opTimeout = 10 * time.Second

func (o *Outbox) process(ctx, hard context.Context, k *kind, m jetstream.Msg) {
	md, err := m.Metadata()
	if err != nil {
		store.Requeue(m)
		return
	}
	seq := md.Sequence.Stream
	if !o.claim(seq) {
		// Redelivered while a worker here still holds it (NATS missed a
		// renewal): that worker acknowledges or reschedules it.
		return
	}
	defer o.release(seq)
	// Bookkeeping must complete even when ctx ends meanwhile.
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), opTimeout)
	defer cancel()

	var job Job
	if err := json.Unmarshal(m.Data(), &job); err != nil || job.ID == "" {
		id := m.Headers().Get(HeaderJobID)
		if id == "" {
			id = "seq-" + stateKey(seq)
		}
		o.log.Error("undecodable job", "seq", seq, "err", err)
		a := attempts{JobID: id, LastError: fmt.Sprintf("undecodable job: %v", err), Dead: ReasonUndecodable}
		o.bury(bctx, m, seq, Job{ID: id, Kind: k.name, Payload: json.RawMessage(`null`)}, a, false)
		return
	}
	a := o.loadAttempts(bctx, seq, job.ID)
	if a.Dead != "" {
		o.bury(bctx, m, seq, job, a, false) // decided before a restart
		return
	}
	if wait := time.Until(a.NextAttempt); wait > 10*time.Millisecond {
		m.NakWithDelay(wait) // back early (after a restart): not yet
		return
	}

	// Renewals stop before the job is acknowledged or rescheduled: one sent
	// after a delayed nak would cut the delay short.
	unhold := o.hold(m)
	if err := k.tokens(ctx); err != nil {
		unhold()
		store.Requeue(m) // stopping: the next run takes it at once
		return
	}
	start := time.Now().UTC()
	actx, acancel := context.WithTimeout(hard, k.timeout)
	herr := call(k.h, actx, job)
	acancel()
	unhold()
	// The attempt may have taken longer than opTimeout: what follows gets
	// a bound of its own, or a slow partner's success would not be
	// acknowledged and the job would run again.
	bctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), opTimeout)
	defer cancel()
	if herr == nil {
		if err := m.DoubleAck(bctx); err != nil {
			o.log.Warn("ack failed; the job may run again", "job", job.ID, "err", err)
		} else if a.Count > 0 {
			o.forget(bctx, seq)
		}
		o.log.Debug("job done", "job", job.ID, "kind", job.Kind, "attempt", a.Count+1)
		o.attempted(k.name, OutcomeOK)
		return
	}
	if hard.Err() != nil {
		store.Requeue(m) // cut off by the stop: outcome unknown, so it runs again
		return
	}

	v := classify(herr)
	now := time.Now().UTC()
	a.Count++
	if a.FirstAttempt.IsZero() {
		a.FirstAttempt, a.FirstError = start, herr.Error()
	}
	a.LastAttempt, a.LastError = start, herr.Error()
	if v.message != "" {
		a.Message = v.message
	}
	switch {
	case v.permanent:
		a.Dead = ReasonRejected
	case now.Sub(job.queued()) >= o.cfg.GiveUp:
		a.Dead = ReasonGaveUp
	}
	if a.Dead != "" {
		if err := o.saveAttempts(bctx, seq, a); err != nil {
			o.log.Warn("could not record a job's failure", "job", job.ID, "err", err)
		}
		o.bury(bctx, m, seq, job, a, true)
		return
	}
	delay := Backoff(uint64(a.Count), o.cfg.MinBackoff, o.cfg.MaxBackoff)
	if v.after > 0 {
		delay = min(max(v.after, o.cfg.MinBackoff), o.cfg.MaxRetryAfter)
	}
	a.NextAttempt = now.Add(delay)
	if err := o.saveAttempts(bctx, seq, a); err != nil {
		o.log.Warn("could not record a job's failure", "job", job.ID, "err", err)
	}
	o.log.Info("job failed; will retry", "job", job.ID, "kind", job.Kind, "attempt", a.Count,
		"in", delay.Round(time.Millisecond), "err", herr)
	m.NakWithDelay(delay)
	o.attempted(k.name, OutcomeRetry)
}

// call runs a handler; a panic is a failure that retrying will not fix.
func call(h Handler, ctx context.Context, job Job) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = Permanent(fmt.Errorf("handler panicked: %v", r))
		}
	}()
	return h(ctx, job)
}

func (o *Outbox) attempted(kind string, out Outcome) {
	if o.cfg.OnAttempt != nil {
		o.cfg.OnAttempt(kind, out)
	}
}

// bury stores a dead letter, then removes the job and its record. A crash
// in between leaves the record marked dead, and the redelivered job is
// buried again under the same message id, which JetStream drops.
func (o *Outbox) bury(ctx context.Context, m jetstream.Msg, seq uint64, job Job, a attempts, attempt bool) {
	dj := DeadJob{
		Job: job, Reason: a.Dead, Attempts: a.Count, FirstError: a.FirstError, LastError: a.LastError,
		PartnerMessage: a.Message, FirstAttempt: a.FirstAttempt, LastAttempt: a.LastAttempt, Died: time.Now().UTC(),
	}
	msg := nats.NewMsg(o.cfg.DeadSubject + job.Kind)
	msg.Data, _ = json.Marshal(dj)
	msg.Header.Set(HeaderJobID, job.ID)
	if _, err := o.cfg.JS.PublishMsg(ctx, msg, jetstream.WithMsgID(job.ID+".dead."+stateKey(seq))); err != nil {
		o.log.Error("could not store a dead letter; will try again", "job", job.ID, "err", err)
		m.NakWithDelay(o.cfg.MinBackoff)
		return
	}
	if err := m.DoubleAck(ctx); err != nil {
		o.log.Warn("ack of a dead job failed", "job", job.ID, "err", err)
		return
	}
	o.forget(ctx, seq)
	o.log.Warn("job given up", "job", job.ID, "kind", job.Kind, "reason", a.Dead, "attempts", a.Count,
		"err", a.LastError, "partner_message", a.Message)
	if attempt {
		o.attempted(job.Kind, OutcomeDead)
	}
	if o.cfg.OnDead != nil {
		o.cfg.OnDead(dj)
	}
	o.mu.Lock()
	k := o.kinds[job.Kind]
	o.mu.Unlock()
	if k != nil && k.onDead != nil {
		k.onDead(dj)
	}
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
