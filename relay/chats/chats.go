// Package chats is the chat transcripts' flow: the two doors a transcript
// comes in by, the Qolio jobs that carry it out through the outbox (kind
// Kind, "qolio.text"), and the receipts its operator reads on their event
// stream.
//
// The doors:
//
//   - POST /hooks/smartsupp?token=… (HandleSmartsupp): Smartsupp's chat
//     export (finished, missed and offline chats). communication_id is
//     "smartsupp-<channel id>", so a chat Smartsupp sends again replaces
//     the earlier copy; the same export again (Smartsupp retrying) is
//     accepted once.
//   - POST /v1/transcripts with an operator's bearer token (HandleSubmit):
//     what the operator pasted (wire.FormatText) or a Smartsupp export they
//     saved (wire.FormatSmartsupp). communication_id is
//     "pult-<operator>-<id>"; the same submission id is accepted once (the
//     store's transcripts bucket) and answered with the same
//     wire.TranscriptState. Each operator has [limits]
//     transcripts_per_minute submissions a minute.
//
// Qolio's operator_id is the pult operator's extension code: the operator
// who submitted, or for the hook the operator mapped to the Smartsupp agent
// who wrote the most (operators add --smartsupp-agent-id). A chat whose agent
// has no operator goes under [qolio] default_operator, else
// "smartsupp:<agent id>" ("smartsupp:unassigned" when no agent took part).
//
// The receipts: the operator concerned gets the transcript's state on their
// event stream ("transcript" events): queued (hook transcripts; an agent's
// submission is answered with it), then delivered, or failed with Qolio's
// words when the job became a dead letter (Qolio refused it, or it kept
// failing for [outbox] give_up_after).
//
// It owns the transcripts' quotas and the pult_relay_transcripts_total
// counter; everything else it reaches through what Config names: the store
// (event streams, the transcripts bucket), the outbox, the operator
// registry, the Qolio client and the agents' bearer check.
//
// Goroutines: the HTTP server's run the two doors; the outbox's workers of
// the kind run Send and, when a job dies, Dead (both then append the
// receipt, retrying a few times on that goroutine). The quotas are the only
// state, under a lock.
package chats

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/pult/pult/agent/phone"
	"github.com/pult/pult/agent/wire"
	"github.com/pult/pult/relay/operators"
	"github.com/pult/pult/relay/outbox"
	"github.com/pult/pult/relay/qolio"
	"github.com/pult/pult/relay/transcript"
)

// Kind is the outbox kind of a transcript's Qolio job.
const Kind = "qolio.text"

// Sources in wire.TranscriptState and the counter's source label.
const (
	SourceSmartsupp = "smartsupp"
	SourceOperator  = "operator"
)

// unassignedAgent names a Smartsupp chat no agent took part in.
const unassignedAgent = "unassigned"

// Store is what the flow keeps in the relay's store: the operators' event
// streams (the receipts) and the transcripts bucket (what was accepted).
type Store interface {
	Append(ctx context.Context, op, typ string, data []byte, msgID string, received time.Time) (uint64, error)
	LoadTranscript(ctx context.Context, key string) ([]byte, error)
	SaveTranscript(ctx context.Context, key string, data []byte) error
	CreateTranscript(ctx context.Context, key string, data []byte) (created bool, err error)
}

// Outbox queues a job durably.
type Outbox interface {
	Enqueue(ctx context.Context, kind, id string, payload any) error
}

// Operators finds the operator of a Smartsupp agent.
type Operators interface {
	BySmartsuppAgent(agentID string) (operators.Operator, bool)
}

// Qolio sends a communication to Qolio.
type Qolio interface {
	Send(ctx context.Context, c qolio.Communication) error
}

// Config configures a Flow.
type Config struct {
	Log       *slog.Logger
	Store     Store
	Outbox    Outbox
	Operators Operators
	Qolio     Qolio // nil without Qolio: both doors refuse
	// Auth is the agents' bearer check; it answers refusals itself.
	Auth func(http.ResponseWriter, *http.Request) (operators.Operator, bool)

	Location        *time.Location // time_zone: times of pasted chats, and sent to Qolio
	PhoneRegion     string         // for a client's number
	SmartsuppToken  string         // [smartsupp] token; "" turns the hook off
	DefaultOperator string         // [qolio] default_operator
	PerMinute       int            // [limits] transcripts_per_minute, per operator
	GiveUp          time.Duration  // [outbox] give_up_after, named in a failure

	// Registerer gets the flow's counter (nil: not registered).
	Registerer prometheus.Registerer
	// Throttled counts submissions refused for the quota (nil: not
	// counted).
	Throttled prometheus.Counter
	// EventsIn counts events accepted from partners, by source: the hook's
	// chats as "smartsupp" (nil: not counted).
	EventsIn *prometheus.CounterVec
}

// Flow is the transcripts' flow. Make it with New.
type Flow struct {
	cfg         Config
	log         *slog.Logger
	transcripts *prometheus.CounterVec // by source and outcome

	mu     sync.Mutex
	quotas map[string]*rate.Limiter // submissions per operator
}

// New makes the flow and registers its counter.
func New(cfg Config) *Flow {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Location == nil {
		cfg.Location = time.Local
	}
	if cfg.Throttled == nil {
		cfg.Throttled = prometheus.NewCounter(prometheus.CounterOpts{Name: "unregistered"})
	}
	if cfg.EventsIn == nil {
		cfg.EventsIn = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "unregistered"}, []string{"source"})
	}
	f := &Flow{cfg: cfg, log: cfg.Log, quotas: map[string]*rate.Limiter{}}
	f.transcripts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pult_relay_transcripts_total",
		Help: "Chat transcripts, by source (smartsupp, operator) and outcome (accepted, delivered, failed).",
	}, []string{"source", "outcome"})
	for _, src := range []string{SourceSmartsupp, SourceOperator} {
		for _, out := range []string{"accepted", "delivered", "failed"} {
			f.transcripts.WithLabelValues(src, out)
		}
	}
	if cfg.Registerer != nil {
		cfg.Registerer.MustRegister(f.transcripts)
	}
	return f
}

// allow takes one of the operator's transcript submissions for this
// minute; when none is left it says how long until one is.
func (f *Flow) allow(opID string) (ok bool, retryAfter time.Duration) {
	n := f.cfg.PerMinute
	f.mu.Lock()
	defer f.mu.Unlock()
	lim := f.quotas[opID]
	if lim == nil {
		lim = rate.NewLimiter(rate.Every(time.Minute/time.Duration(n)), n)
		f.quotas[opID] = lim
	}
	now := time.Now()
	r := lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// job is the payload of a qolio.text job.
type job struct {
	Operator string               `json:"operator,omitempty"` // the pult operator told about the outcome; "" nobody
	State    wire.TranscriptState `json:"state"`              // as queued
	Body     json.RawMessage      `json:"body"`               // the communication, as Qolio reads it
}

// communication maps a transcript onto Qolio's text communication.
// operatorID is operator_id; authorID gives the Qolio id of an operator part
// from its author id ("" leaves it to operator_id).
func (f *Flow) communication(t transcript.Transcript, operatorID string, authorID func(string) string, rating int, received time.Time) qolio.Communication {
	c := qolio.Communication{
		OperatorID: operatorID, CommunicationID: t.CommunicationID, Type: qolio.TypeChat,
		Title: t.Title, Source: t.Source, Status: qolio.StatusClosed,
		CustomFields: map[string]any{"chat_status": string(t.Status)},
	}
	if t.Source == transcript.SourceSmartsupp {
		c.Direction = qolio.DirectionIncoming // the visitor opens a Smartsupp chat
	}
	if t.Status == transcript.StatusMissed || t.Status == transcript.StatusOffline {
		c.Status = qolio.StatusRejected // nobody on our side took it up
	}
	if rating > 0 {
		c.ClientFeedback = &rating
	}
	if cl := t.Client; cl != (transcript.Client{}) {
		c.Client = &qolio.Customer{ID: cl.ID, FirstName: cl.Name, Email: cl.Email, PhoneNumber: phone.Normalize(cl.Phone, f.cfg.PhoneRegion)}
	}
	last := t.StartedAt
	if last.IsZero() {
		last = received.UTC()
	}
	for _, p := range t.Parts {
		at := p.At
		if at.IsZero() {
			at = last // Qolio needs a time: that of the message before
		}
		last = at
		part := qolio.Part{ID: p.ID, Body: p.Body, ContentType: qolio.ContentTextPlain, CreatedAt: at.In(f.cfg.Location)}
		switch p.Author.Type {
		case transcript.AuthorClient:
			part.Author = qolio.Author{Type: qolio.AuthorClient, ID: p.Author.ID}
		case transcript.AuthorOperator:
			part.Author = qolio.Author{Type: qolio.AuthorOperator, ID: authorID(p.Author.ID)}
		default:
			// Qolio knows clients and operators only: an automatic message
			// is shown as the operator's, marked as automatic.
			name := p.Author.Name
			if name == "" {
				name = "bot"
			}
			part.Author = qolio.Author{Type: qolio.AuthorOperator}
			part.Body = "[automatic: " + name + "] " + p.Body
		}
		c.Parts = append(c.Parts, part)
	}
	return c
}

// queue stores a transcript's job. The job id is the communication id and
// a hash of the body: the same chat sent again unchanged is one job;
// changed, it replaces the earlier copy in Qolio.
func (f *Flow) queue(ctx context.Context, opID string, st wire.TranscriptState, comm qolio.Communication) (string, error) {
	body, err := qolio.Encode(comm)
	if err != nil {
		return "", err
	}
	h := sha256.Sum256(body)
	id := "qolio." + comm.CommunicationID + "." + hex.EncodeToString(h[:6])
	if err := f.cfg.Outbox.Enqueue(ctx, Kind, id, job{Operator: opID, State: st, Body: body}); err != nil {
		return "", err
	}
	return id, nil
}

// receipt appends a transcript's state to an operator's stream.
func (f *Flow) receipt(ctx context.Context, opID string, st wire.TranscriptState, msgID string) error {
	if opID == "" {
		return nil
	}
	b, _ := json.Marshal(st)
	_, err := f.cfg.Store.Append(ctx, opID, wire.TypeTranscript, b, msgID, time.Time{})
	return err
}

// Send is the outbox handler of Kind: it sends the communication to Qolio
// and tells the operator it was delivered.
func (f *Flow) Send(ctx context.Context, j outbox.Job) error {
	var p job
	if err := json.Unmarshal(j.Payload, &p); err != nil {
		return outbox.Permanent(fmt.Errorf("decode job: %w", err))
	}
	var comm qolio.Communication
	if err := json.Unmarshal(p.Body, &comm); err != nil {
		return outbox.Permanent(fmt.Errorf("decode communication: %w", err))
	}
	if err := f.cfg.Qolio.Send(ctx, comm); err != nil {
		return err
	}
	f.transcripts.WithLabelValues(p.State.Source, "delivered").Inc()
	st := p.State
	st.State, st.Reason, st.At = wire.TranscriptDelivered, "", time.Now().UTC()
	f.tellOutcome(p.Operator, st, "trd."+j.ID)
	return nil
}

// tellOutcome publishes a delivered or failed state; the job's outcome is
// settled already, so a failure here is logged, not retried.
func (f *Flow) tellOutcome(opID string, st wire.TranscriptState, msgID string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if err = f.receipt(ctx, opID, st, msgID); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	f.log.Error("transcript state not stored for the operator", "operator", opID, "state", st.State, "err", err)
}

// Dead is told of every dead letter (outbox.WhenDead): a transcript's is
// its failure, which the operator is told of with Qolio's words.
func (f *Flow) Dead(dj outbox.DeadJob) {
	if dj.Job.Kind != Kind {
		return
	}
	var p job
	if json.Unmarshal(dj.Job.Payload, &p) != nil {
		return
	}
	f.transcripts.WithLabelValues(p.State.Source, "failed").Inc()
	st := p.State
	st.State, st.At, st.ReasonCode = wire.TranscriptFailed, time.Now().UTC(), wire.TranscriptRejected
	st.Reason = dj.PartnerMessage
	if st.Reason == "" {
		st.Reason = dj.LastError
	}
	if dj.Reason == outbox.ReasonGaveUp {
		st.ReasonCode = wire.TranscriptGaveUp
		st.Reason = fmt.Sprintf("Qolio did not accept it within %s: %s", f.cfg.GiveUp, st.Reason)
	}
	f.tellOutcome(p.Operator, st, "trf."+dj.Job.ID+"."+dj.Died.Format(time.RFC3339Nano))
}
