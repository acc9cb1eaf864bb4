package outbox_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pult/pult/relay/outbox"
	partnerhttp "github.com/pult/pult/relay/partner"
	"github.com/pult/pult/relay/store"
)

// The tests run real outboxes on an embedded NATS server in a temporary
// folder, against a real HTTP partner (httptest) that counts what it gets.

const kindCall = "fake.call"

func testLogger() *slog.Logger {
	if os.Getenv("PULT_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// openStore opens the store in dir; it is closed by closeStore or at cleanup,
// after the outboxes started later have stopped.
func openStore(t *testing.T, dir string) (st *store.Store, closeStore func()) {
	t.Helper()
	st, err := store.Open(context.Background(), store.Options{DataDir: dir, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	closeStore = func() { once.Do(st.Close) }
	t.Cleanup(closeStore)
	return st, closeStore
}

func config(st *store.Store) outbox.Config {
	return outbox.Config{
		JS: st.Outbox().JS, Stream: st.Outbox().Jobs, Subject: store.OutboxPrefix,
		Dead: st.Outbox().Dead, DeadSubject: store.DeadPrefix, State: st.Outbox().State,
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 150 * time.Millisecond,
		Timeout: 2 * time.Second, AckWait: 2 * time.Second, Grace: 2 * time.Second,
		Logger: testLogger(),
	}
}

// running is an outbox working in the background.
type running struct {
	t      *testing.T
	ob     *outbox.Outbox
	cancel context.CancelFunc
	done   chan error
}

func start(t *testing.T, ob *outbox.Outbox) *running {
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{t: t, ob: ob, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- ob.Run(ctx) }()
	t.Cleanup(r.stop)
	return r
}

func (r *running) stop() {
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	select {
	case err := <-r.done:
		if err != nil {
			r.t.Errorf("Run: %v", err)
		}
	case <-time.After(15 * time.Second):
		r.t.Error("outbox did not stop within 15s")
	}
}

// hit is one request seen by the partner.
type hit struct {
	at     time.Time
	status int
}

// partner is a fake partner API: answer decides each reply from the job id
// and how many requests of that id came before.
type partner struct {
	srv    *httptest.Server
	client *http.Client

	mu     sync.Mutex
	answer func(id string, n int) (status int, header http.Header, body string)
	hits   map[string][]hit
	all    []hit
}

func newPartner(t *testing.T, answer func(id string, n int) (int, http.Header, string)) *partner {
	p := &partner{answer: answer, hits: map[string][]hit{}, client: &http.Client{Transport: &http.Transport{}}}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("Idempotency-Key")
		p.mu.Lock()
		status, header, body := p.answer(id, len(p.hits[id]))
		h := hit{at: time.Now(), status: status}
		p.hits[id] = append(p.hits[id], h)
		p.all = append(p.all, h)
		p.mu.Unlock()
		for k, v := range header {
			w.Header()[k] = v
		}
		w.WriteHeader(status)
		fmt.Fprint(w, body)
	}))
	t.Cleanup(func() { p.client.CloseIdleConnections(); p.srv.Close() })
	return p
}

func (p *partner) setAnswer(f func(id string, n int) (int, http.Header, string)) {
	p.mu.Lock()
	p.answer = f
	p.mu.Unlock()
}

func ok200(string, int) (int, http.Header, string) { return 200, nil, `{"success":true}` }

func down503(string, int) (int, http.Header, string) {
	return 503, nil, "<html>maintenance</html>"
}

// count returns how many requests of id got a 2xx and how many failed.
func (p *partner) count(id string) (ok, failed int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, h := range p.hits[id] {
		if h.status < 300 {
			ok++
		} else {
			failed++
		}
	}
	return ok, failed
}

func (p *partner) requests() []hit {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]hit(nil), p.all...)
}

// handler is how a partner handler is written: the job id is the partner's
// idempotency key, and CheckResponse classifies the answer.
func (p *partner) handler(ctx context.Context, job outbox.Job) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.srv.URL+"/calls", bytes.NewReader(job.Payload))
	if err != nil {
		return outbox.Permanent(err)
	}
	req.Header.Set("Idempotency-Key", job.ID)
	resp, err := p.client.Do(req)
	if err != nil {
		return fmt.Errorf("fake partner: %w", err)
	}
	defer resp.Body.Close()
	return partnerhttp.CheckResponse("fake partner", resp)
}

// eventually polls cond until it holds or 10s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func checkGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(10 * time.Second)
		for {
			n := runtime.NumGoroutine()
			if n <= before {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("%d goroutines left running (before: %d):\n%s", n, before, buf)
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

func enqueue(t *testing.T, ob *outbox.Outbox, kind string, ids ...string) {
	t.Helper()
	for _, id := range ids {
		if err := ob.Enqueue(context.Background(), kind, id, map[string]string{"id": id}); err != nil {
			t.Fatal(err)
		}
	}
}

func ids(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%d", prefix, i)
	}
	return out
}

func stats(t *testing.T, ob *outbox.Outbox) outbox.Stats {
	t.Helper()
	st, err := ob.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestPartnerDownThenBackDeliversEveryJobOnce(t *testing.T) {
	checkGoroutines(t)
	st, _ := openStore(t, t.TempDir())
	p := newPartner(t, down503)
	ob := outbox.New(config(st))
	ob.Handle(kindCall, p.handler)
	jobs := ids("down", 20)
	enqueue(t, ob, kindCall, jobs...)
	enqueue(t, ob, kindCall, jobs[0], jobs[1]) // again: the same jobs, not new ones
	s := stats(t, ob)
	if s.Depth != 20 || s.DepthByKind[kindCall] != 20 {
		t.Fatalf("depth %d (%v), want 20: enqueueing an id twice made two jobs", s.Depth, s.DepthByKind)
	}
	time.Sleep(20 * time.Millisecond)
	if s := stats(t, ob); s.OldestAge < 20*time.Millisecond {
		t.Errorf("oldest job age %s", s.OldestAge)
	}
	start(t, ob)
	eventually(t, "every job to fail twice", func() bool {
		for _, id := range jobs {
			if _, failed := p.count(id); failed < 2 {
				return false
			}
		}
		return true
	})
	pending, err := ob.Pending(context.Background(), 100)
	if err != nil || len(pending) != 20 {
		t.Fatalf("pending: %d %v", len(pending), err)
	}
	if pj := pending[0]; pj.Attempts < 1 || !strings.Contains(pj.LastError, "503") || pj.Kind != kindCall {
		t.Errorf("pending job: %+v", pj)
	}
	p.setAnswer(ok200)
	eventually(t, "every job delivered", func() bool {
		for _, id := range jobs {
			if ok, _ := p.count(id); ok == 0 {
				return false
			}
		}
		return true
	})
	time.Sleep(300 * time.Millisecond) // room for a duplicate to show up
	for _, id := range jobs {
		if ok, _ := p.count(id); ok != 1 {
			t.Errorf("%s accepted %d times, want once", id, ok)
		}
	}
	eventually(t, "an empty queue", func() bool { return stats(t, ob).Depth == 0 })
	if s := stats(t, ob); s.Dead != 0 || s.OldestAge != 0 {
		t.Errorf("stats after delivery: %+v", s)
	}
}

func TestRejectedJobIsDeadWithPartnerMessageAndRetriedOnce(t *testing.T) {
	checkGoroutines(t)
	st, _ := openStore(t, t.TempDir())
	var reject atomic.Bool
	reject.Store(true)
	p := newPartner(t, func(id string, n int) (int, http.Header, string) {
		if id == "bad" && reject.Load() {
			return 400, nil, `{"success":false,"errorMsg":"Unknown extension 999"}`
		}
		return 200, nil, `{"success":true}`
	})
	var deadSeen atomic.Int32
	var outcomes sync.Map
	cfg := config(st)
	cfg.OnDead = func(dj outbox.DeadJob) { deadSeen.Add(1) }
	cfg.OnAttempt = func(kind string, out outbox.Outcome) {
		n, _ := outcomes.LoadOrStore(kind+"/"+string(out), new(atomic.Int32))
		n.(*atomic.Int32).Add(1)
	}
	ob := outbox.New(cfg)
	ob.Handle(kindCall, p.handler)
	start(t, ob)
	enqueue(t, ob, kindCall, "bad", "good")

	var dead []outbox.DeadJob
	eventually(t, "a dead letter", func() bool {
		var err error
		dead, err = ob.Dead(context.Background(), 10)
		return err == nil && len(dead) == 1
	})
	d := dead[0]
	if d.Job.ID != "bad" || d.Job.Kind != kindCall || d.Reason != outbox.ReasonRejected || d.Attempts != 1 ||
		d.PartnerMessage != "Unknown extension 999" || !strings.Contains(d.LastError, "HTTP 400") || d.Died.IsZero() {
		t.Errorf("dead letter: %+v", d)
	}
	if _, failed := p.count("bad"); failed != 1 {
		t.Errorf("a 400 was retried: %d requests", failed)
	}
	eventually(t, "good delivered", func() bool { ok, _ := p.count("good"); return ok == 1 })
	// The dead letter is stored before the job is acknowledged and OnDead
	// called.
	eventually(t, "the dead job off the queue", func() bool { return deadSeen.Load() == 1 && stats(t, ob).Depth == 0 })
	if s := stats(t, ob); s.Dead != 1 || s.DeadByKind[kindCall] != 1 {
		t.Errorf("stats: %+v", s)
	}
	ctx := context.Background()
	if _, err := ob.Retry(ctx, "nope"); !errors.Is(err, outbox.ErrNotFound) || !strings.Contains(err.Error(), "no such job") {
		t.Errorf("retry of an unknown id: %v", err)
	}
	if _, err := ob.Retry(ctx, "good"); !errors.Is(err, outbox.ErrNotFound) {
		t.Errorf("retry of a delivered job: %v", err)
	}

	reject.Store(false)
	job, err := ob.Retry(ctx, "bad")
	if err != nil || job.ID != "bad" || job.Kind != kindCall {
		t.Fatalf("retry: %+v %v", job, err)
	}
	if _, err := ob.Retry(ctx, "bad"); err != nil && !errors.Is(err, outbox.ErrPending) && !errors.Is(err, outbox.ErrNotFound) {
		t.Errorf("second retry: %v", err)
	}
	eventually(t, "the retried job delivered", func() bool { ok, _ := p.count("bad"); return ok == 1 })
	time.Sleep(200 * time.Millisecond)
	if ok, _ := p.count("bad"); ok != 1 {
		t.Errorf("retried job accepted %d times", ok)
	}
	if dead, _ := ob.Dead(ctx, 10); len(dead) != 0 {
		t.Errorf("dead letters after retry: %+v", dead)
	}
	n, _ := outcomes.Load(kindCall + "/dead")
	if n == nil || n.(*atomic.Int32).Load() != 1 {
		t.Errorf("dead outcomes: %v", n)
	}
}

func TestRetryAfterIsHonoured(t *testing.T) {
	checkGoroutines(t)
	st, _ := openStore(t, t.TempDir())
	p := newPartner(t, func(id string, n int) (int, http.Header, string) {
		if n == 0 {
			return 429, http.Header{"Retry-After": {"1"}}, `{"errorMsg":"Too many requests"}`
		}
		return 200, nil, "{}"
	})
	cfg := config(st)
	cfg.MinBackoff, cfg.MaxBackoff = 5*time.Millisecond, 20*time.Millisecond // far below the header
	ob := outbox.New(cfg)
	ob.Handle(kindCall, p.handler)
	start(t, ob)
	enqueue(t, ob, kindCall, "slow")
	eventually(t, "delivery", func() bool { ok, _ := p.count("slow"); return ok == 1 })
	p.mu.Lock()
	hits := p.hits["slow"]
	p.mu.Unlock()
	if gap := hits[1].at.Sub(hits[0].at); gap < time.Second {
		t.Errorf("retried %s after a 429 with Retry-After: 1", gap)
	}
}

func TestRateLimitIsHeldAcrossKindsSharingIt(t *testing.T) {
	checkGoroutines(t)
	st, _ := openStore(t, t.TempDir())
	p := newPartner(t, ok200)
	const perSecond, burst = 10, 2
	cfg := config(st)
	cfg.Limits = map[string]outbox.RateLimit{
		"crm":           {Rate: perSecond, Burst: burst},
		"crm_telephony": {Rate: 40, Burst: burst},
	}
	ob := outbox.New(cfg)
	if ob.Limiter("crm") == nil || ob.Limiter("none") != nil {
		t.Fatal("Limiter")
	}
	ob.Handle("crm.order", p.handler, outbox.Limit("crm"), outbox.Workers(8))
	ob.Handle("crm.telephony", p.handler, outbox.Limit("crm", "crm_telephony"), outbox.Workers(8))
	const jobs = 30
	enqueue(t, ob, "crm.order", ids("order", jobs/2)...)
	enqueue(t, ob, "crm.telephony", ids("tel", jobs/2)...)
	began := time.Now()
	start(t, ob)
	eventually(t, "every delivery", func() bool { return len(p.requests()) == jobs })
	took := time.Since(began)
	hits := p.requests()
	worst := 0
	for i := range hits {
		n := 0
		for j := i; j < len(hits) && hits[j].at.Sub(hits[i].at) < time.Second; j++ {
			n++
		}
		worst = max(worst, n)
	}
	if worst > perSecond+burst {
		t.Errorf("%d requests within one second, limit %d/s with a burst of %d", worst, perSecond, burst)
	}
	if min := time.Duration(jobs-burst) * time.Second / perSecond; took < min*9/10 {
		t.Errorf("%d requests took %s; the limit allows no less than %s", jobs, took, min)
	}
}

func TestRestartResumesAndDeliversOnce(t *testing.T) {
	checkGoroutines(t)
	dir := t.TempDir()
	p := newPartner(t, func(id string, n int) (int, http.Header, string) {
		if strings.HasPrefix(id, "early") {
			return 200, nil, "{}"
		}
		return 503, nil, "down"
	})
	st, closeStore := openStore(t, dir)
	ob := outbox.New(config(st))
	ob.Handle(kindCall, p.handler)
	r := start(t, ob)
	jobs := ids("resume", 5)
	enqueue(t, ob, kindCall, jobs...)
	enqueue(t, ob, kindCall, "early-1", "early-2")
	eventually(t, "failures before the stop", func() bool {
		for _, id := range jobs {
			if _, failed := p.count(id); failed < 2 {
				return false
			}
		}
		ok1, _ := p.count("early-1")
		ok2, _ := p.count("early-2")
		return ok1 == 1 && ok2 == 1
	})
	r.stop()
	closeStore()

	st, _ = openStore(t, dir)
	ob = outbox.New(config(st))
	ob.Handle(kindCall, p.handler)
	pending, err := ob.Pending(context.Background(), 10)
	if err != nil || len(pending) != 5 {
		t.Fatalf("pending after restart: %+v %v", pending, err)
	}
	for _, pj := range pending {
		if pj.Attempts < 2 || !strings.Contains(pj.LastError, "HTTP 503") || pj.Running || pj.NoHandler {
			t.Errorf("attempts not kept across the restart: %+v", pj)
		}
	}
	p.setAnswer(ok200)
	start(t, ob)
	eventually(t, "delivery after the restart", func() bool {
		for _, id := range jobs {
			if ok, _ := p.count(id); ok == 0 {
				return false
			}
		}
		return true
	})
	time.Sleep(300 * time.Millisecond)
	for _, id := range append(jobs, "early-1", "early-2") {
		if ok, _ := p.count(id); ok != 1 {
			t.Errorf("%s accepted %d times, want once", id, ok)
		}
	}
}

// A graceful stop lets an attempt in flight finish and acknowledges it, so
// the next run does not send it again.
func TestStopLetsAttemptInFlightFinish(t *testing.T) {
	checkGoroutines(t)
	dir := t.TempDir()
	st, closeStore := openStore(t, dir)
	entered := make(chan struct{}, 1)
	var sent atomic.Int32
	slow := func(ctx context.Context, job outbox.Job) error {
		entered <- struct{}{}
		select {
		case <-time.After(300 * time.Millisecond):
			sent.Add(1)
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	ob := outbox.New(config(st))
	ob.Handle(kindCall, slow)
	r := start(t, ob)
	enqueue(t, ob, kindCall, "inflight")
	<-entered
	r.stop()
	if sent.Load() != 1 {
		t.Fatalf("the attempt in flight was cut off")
	}
	closeStore()

	st, _ = openStore(t, dir)
	ob = outbox.New(config(st))
	ob.Handle(kindCall, slow)
	if s := stats(t, ob); s.Depth != 0 {
		t.Fatalf("the finished job is still queued: %+v", s)
	}
	start(t, ob)
	time.Sleep(200 * time.Millisecond)
	if sent.Load() != 1 {
		t.Errorf("sent %d times", sent.Load())
	}
}

// An attempt still running when the grace period ends is cut off and runs
// again as soon as the relay is back, not after the ack deadline: the job
// is given back in a way JetStream keeps across the restart.
func TestAttemptCutOffByStopRunsAgainAtOnce(t *testing.T) {
	checkGoroutines(t)
	dir := t.TempDir()
	st, closeStore := openStore(t, dir)
	entered := make(chan struct{}, 1)
	var sent atomic.Int32
	stuck := func(ctx context.Context, job outbox.Job) error {
		entered <- struct{}{}
		<-ctx.Done()
		return ctx.Err()
	}
	cfg := config(st)
	cfg.AckWait, cfg.Grace = 30*time.Second, 50*time.Millisecond
	ob := outbox.New(cfg)
	ob.Handle(kindCall, stuck)
	r := start(t, ob)
	enqueue(t, ob, kindCall, "cut")
	<-entered
	r.stop()
	closeStore()

	st, _ = openStore(t, dir)
	cfg = config(st)
	cfg.AckWait = 30 * time.Second
	ob = outbox.New(cfg)
	ob.Handle(kindCall, func(context.Context, outbox.Job) error { sent.Add(1); return nil })
	start(t, ob)
	deadline := time.Now().Add(5 * time.Second)
	for sent.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if sent.Load() != 1 {
		t.Fatalf("the cut-off job ran %d times within 5 s of the restart (ack deadline 30 s)", sent.Load())
	}
}

func TestGiveUpMakesADeadLetter(t *testing.T) {
	checkGoroutines(t)
	st, _ := openStore(t, t.TempDir())
	p := newPartner(t, down503)
	cfg := config(st)
	cfg.GiveUp = 300 * time.Millisecond
	ob := outbox.New(cfg)
	ob.Handle(kindCall, p.handler)
	start(t, ob)
	enqueue(t, ob, kindCall, "doomed")
	var dead []outbox.DeadJob
	eventually(t, "the job given up", func() bool {
		dead, _ = ob.Dead(context.Background(), 10)
		return len(dead) == 1
	})
	d := dead[0]
	if d.Reason != outbox.ReasonGaveUp || d.Attempts < 2 || !strings.Contains(d.FirstError, "503") ||
		!strings.Contains(d.LastError, "503") || d.LastAttempt.Before(d.FirstAttempt) ||
		d.LastAttempt.Sub(d.Job.Created) < 0 || d.Died.Sub(d.Job.Created) < cfg.GiveUp {
		t.Errorf("dead letter: %+v", d)
	}
	_, failed := p.count("doomed")
	time.Sleep(200 * time.Millisecond)
	if _, again := p.count("doomed"); again != failed {
		t.Errorf("a dead job was tried again")
	}
	if s := stats(t, ob); s.Depth != 0 || s.Dead != 1 {
		t.Errorf("stats: %+v", s)
	}
}

func TestDrop(t *testing.T) {
	checkGoroutines(t)
	st, _ := openStore(t, t.TempDir())
	p := newPartner(t, func(id string, n int) (int, http.Header, string) {
		if id == "refused" {
			return 422, nil, "no such order"
		}
		return 503, nil, ""
	})
	ob := outbox.New(config(st))
	ob.Handle(kindCall, p.handler)
	start(t, ob)
	enqueue(t, ob, kindCall, "stuck", "refused")
	eventually(t, "a failure and a dead letter", func() bool {
		_, failed := p.count("stuck")
		return failed >= 1 && stats(t, ob).Dead == 1
	})
	ctx := context.Background()
	if st, err := ob.Drop(ctx, "stuck"); err != nil || st != outbox.StatePending {
		t.Fatalf("drop pending: %s %v", st, err)
	}
	if st, err := ob.Drop(ctx, "refused"); err != nil || st != outbox.StateDead {
		t.Fatalf("drop dead: %s %v", st, err)
	}
	if _, err := ob.Drop(ctx, "stuck"); !errors.Is(err, outbox.ErrNotFound) {
		t.Errorf("second drop: %v", err)
	}
	time.Sleep(150 * time.Millisecond) // an attempt in flight may finish
	_, failed := p.count("stuck")
	time.Sleep(300 * time.Millisecond)
	if _, again := p.count("stuck"); again != failed {
		t.Errorf("a dropped job was tried again")
	}
	if s := stats(t, ob); s.Depth != 0 || s.Dead != 0 {
		t.Errorf("stats after drops: %+v", s)
	}
}

func TestJobsOfAKindWithoutHandlerWait(t *testing.T) {
	checkGoroutines(t)
	st, _ := openStore(t, t.TempDir())
	ob := outbox.New(config(st))
	ob.Handle(kindCall, func(context.Context, outbox.Job) error { return nil })
	start(t, ob)
	enqueue(t, ob, "other.kind", "orphan")
	if err := ob.Enqueue(context.Background(), kindCall, "has space", nil); err == nil {
		t.Error("an id with a space was accepted")
	}
	if err := ob.Enqueue(context.Background(), "Bad Kind", "x", nil); err == nil {
		t.Error("a bad kind was accepted")
	}
	time.Sleep(100 * time.Millisecond)
	pending, err := ob.Pending(context.Background(), 10)
	if err != nil || len(pending) != 1 || !pending[0].NoHandler || pending[0].Attempts != 0 {
		t.Fatalf("pending: %+v %v", pending, err)
	}
}

// A data folder from before per-kind workers has one consumer taking every
// subject, which a work queue would not let the new ones share.
func TestUpgradeFromTheSingleConsumer(t *testing.T) {
	checkGoroutines(t)
	st, _ := openStore(t, t.TempDir())
	ctx := context.Background()
	if _, err := st.Outbox().Jobs.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable: "outbox-worker", AckPolicy: jetstream.AckExplicitPolicy, MaxDeliver: -1,
	}); err != nil {
		t.Fatal(err)
	}
	p := newPartner(t, ok200)
	ob := outbox.New(config(st))
	ob.Handle(kindCall, p.handler)
	enqueue(t, ob, kindCall, "old")
	start(t, ob)
	eventually(t, "delivery", func() bool { ok, _ := p.count("old"); return ok == 1 })
}

// A partner that takes longer to answer than the outbox's own bookkeeping
// bound (10 s) still has its success acknowledged: the job runs once.
func TestSlowSuccessIsAcknowledgedOnce(t *testing.T) {
	checkGoroutines(t)
	st, _ := openStore(t, t.TempDir())
	var sent atomic.Int32
	cfg := config(st)
	cfg.Timeout, cfg.AckWait = 20*time.Second, 30*time.Second
	ob := outbox.New(cfg)
	ob.Handle(kindCall, func(ctx context.Context, job outbox.Job) error {
		sent.Add(1)
		select {
		case <-time.After(10500 * time.Millisecond):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	start(t, ob)
	enqueue(t, ob, kindCall, "slow")
	for deadline := time.Now().Add(20 * time.Second); stats(t, ob).Depth != 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the slow job was never acknowledged")
		}
	}
	time.Sleep(300 * time.Millisecond)
	if n := sent.Load(); n != 1 {
		t.Errorf("sent %d times", n)
	}
}
