package relay

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/time/rate"

	"github.com/pult/pult/agent/wire"
	"github.com/pult/pult/relay/calltouch"
	"github.com/pult/pult/relay/config"
	"github.com/pult/pult/relay/operators"
	"github.com/pult/pult/relay/outbox"
	"github.com/pult/pult/relay/qolio"
	"github.com/pult/pult/relay/retailcrm"
	"github.com/pult/pult/relay/smartsupp"
	"github.com/pult/pult/relay/store"
	"github.com/pult/pult/relay/transcript"
	"github.com/pult/pult/relay/uis"
)

// Chat transcripts go to Qolio through the outbox (kind "qolio.text"), from
// two doors:
//
//   - POST /hooks/smartsupp?token=…: Smartsupp's chat export (finished,
//     missed and offline chats). communication_id is "smartsupp-<channel
//     id>", so a chat Smartsupp sends again replaces the earlier copy.
//   - POST /v1/transcripts with an operator's bearer token: what the
//     operator pasted (wire.FormatText) or a Smartsupp export they saved
//     (wire.FormatSmartsupp). communication_id is "pult-<operator>-<id>";
//     the same submission id is accepted once (the Transcripts bucket) and
//     answered with the same TranscriptState.
//
// Qolio's operator_id is the pult operator's extension code: the operator
// who submitted, or for the hook the operator mapped to the Smartsupp agent
// who wrote the most (operators add --smartsupp-agent-id). A chat whose agent
// has no operator goes under [qolio] default_operator, else
// "smartsupp:<agent id>" ("smartsupp:unassigned" when no agent took part).
//
// The operator concerned gets the transcript's state on their event stream
// ("transcript" events): queued (hook transcripts; an agent's submission is
// answered with it), then delivered, or failed with Qolio's words when the
// job became a dead letter (Qolio refused it, or it kept failing for
// [outbox] give_up_after).

const (
	jobQolio = "qolio.text"
	// maxSmartsuppBody bounds the export hook's body.
	maxSmartsuppBody = 2 << 20
	// maxSubmitBody bounds an agent's submission: a body of
	// wire.MaxTranscript bytes may grow up to six times when JSON-encoded
	// ("<" is written \u003c), plus the envelope.
	maxSubmitBody = 6*wire.MaxTranscript + 64<<10
	// Sources in TranscriptState.
	sourceSmartsupp = "smartsupp"
	sourceOperator  = "operator"
	// unassignedAgent names a Smartsupp chat no agent took part in.
	unassignedAgent = "unassigned"
)

// transcripts is the transcripts' flow: the two doors, the Qolio jobs and
// the receipts. It reaches only what it names.
type transcripts struct {
	log     *slog.Logger
	cfg     *config.Config
	store   *store.Store
	outbox  *outbox.Outbox
	ops     *operators.Registry
	qolio   *qolio.Client // nil without Qolio
	metrics *metrics
	loc     *time.Location
	// auth is the agents' bearer check, answering refusals itself.
	auth func(http.ResponseWriter, *http.Request) (operators.Operator, bool)

	mu     sync.Mutex
	quotas map[string]*rate.Limiter // submissions per operator ([limits] transcripts_per_minute)
}

// allow takes one of the operator's transcript submissions for this
// minute; when none is left it says how long until one is.
func (tr *transcripts) allow(opID string) (ok bool, retryAfter time.Duration) {
	n := tr.cfg.Limits.TranscriptsPerMinute
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if tr.quotas == nil {
		tr.quotas = map[string]*rate.Limiter{}
	}
	lim := tr.quotas[opID]
	if lim == nil {
		lim = rate.NewLimiter(rate.Every(time.Minute/time.Duration(n)), n)
		tr.quotas[opID] = lim
	}
	now := time.Now()
	r := lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// qolioJob is the payload of a qolio.text job.
type qolioJob struct {
	Operator string               `json:"operator,omitempty"` // the pult operator told about the outcome; "" nobody
	State    wire.TranscriptState `json:"state"`              // as queued
	Body     json.RawMessage      `json:"body"`               // the communication, as Qolio reads it
}

// communication maps a transcript onto Qolio's text communication.
// operatorID is operator_id; authorID gives the Qolio id of an operator part
// from its author id ("" leaves it to operator_id).
func (tr *transcripts) communication(t transcript.Transcript, operatorID string, authorID func(string) string, rating int, received time.Time) qolio.Communication {
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
		c.Client = &qolio.Customer{ID: cl.ID, FirstName: cl.Name, Email: cl.Email, PhoneNumber: normalized(cl.Phone, tr.cfg.PhoneRegion)}
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
		part := qolio.Part{ID: p.ID, Body: p.Body, ContentType: qolio.ContentTextPlain, CreatedAt: at.In(tr.loc)}
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

// queueTranscript stores a transcript's job. The job id is the
// communication id and a hash of the body: the same chat sent again
// unchanged is one job; changed, it replaces the earlier copy in Qolio.
func (tr *transcripts) queueTranscript(ctx context.Context, opID string, st wire.TranscriptState, comm qolio.Communication) (string, error) {
	body, err := qolio.Encode(comm)
	if err != nil {
		return "", err
	}
	h := sha256.Sum256(body)
	id := "qolio." + comm.CommunicationID + "." + hex.EncodeToString(h[:6])
	if err := tr.outbox.Enqueue(ctx, jobQolio, id, qolioJob{Operator: opID, State: st, Body: body}); err != nil {
		return "", err
	}
	return id, nil
}

// transcriptEvent appends a transcript's state to an operator's stream.
func (tr *transcripts) transcriptEvent(ctx context.Context, opID string, st wire.TranscriptState, msgID string) error {
	if opID == "" {
		return nil
	}
	b, _ := json.Marshal(st)
	_, err := tr.store.Append(ctx, opID, wire.TypeTranscript, b, msgID, time.Time{})
	return err
}

// sendQolio is the outbox handler of qolio.text.
func (tr *transcripts) sendQolio(ctx context.Context, job outbox.Job) error {
	var p qolioJob
	if err := json.Unmarshal(job.Payload, &p); err != nil {
		return outbox.Permanent(fmt.Errorf("decode job: %w", err))
	}
	var comm qolio.Communication
	if err := json.Unmarshal(p.Body, &comm); err != nil {
		return outbox.Permanent(fmt.Errorf("decode communication: %w", err))
	}
	if err := tr.qolio.Send(ctx, comm); err != nil {
		return err
	}
	tr.metrics.transcripts.WithLabelValues(p.State.Source, "delivered").Inc()
	st := p.State
	st.State, st.Reason, st.At = wire.TranscriptDelivered, "", time.Now().UTC()
	tr.tellOutcome(p.Operator, st, "trd."+job.ID)
	return nil
}

// tellOutcome publishes a delivered or failed state; the job's outcome is
// settled already, so a failure here is logged, not retried.
func (tr *transcripts) tellOutcome(opID string, st wire.TranscriptState, msgID string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if err = tr.transcriptEvent(ctx, opID, st, msgID); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	tr.log.Error("transcript state not stored for the operator", "operator", opID, "state", st.State, "err", err)
}

// transcriptDead is told of every dead letter: a transcript's is its failure.
func (tr *transcripts) transcriptDead(dj outbox.DeadJob) {
	if dj.Job.Kind != jobQolio {
		return
	}
	var p qolioJob
	if json.Unmarshal(dj.Job.Payload, &p) != nil {
		return
	}
	tr.metrics.transcripts.WithLabelValues(p.State.Source, "failed").Inc()
	st := p.State
	st.State, st.At = wire.TranscriptFailed, time.Now().UTC()
	st.Reason = dj.PartnerMessage
	if st.Reason == "" {
		st.Reason = dj.LastError
	}
	if dj.Reason == outbox.ReasonGaveUp {
		st.Reason = fmt.Sprintf("Qolio did not accept it within %s: %s", tr.cfg.Outbox.GiveUp.Duration, st.Reason)
	}
	tr.tellOutcome(p.Operator, st, "trf."+dj.Job.ID+"."+dj.Died.Format(time.RFC3339Nano))
}

// handleSmartsupp serves POST /hooks/smartsupp?token=…: Smartsupp's chat
// export hook.
func (tr *transcripts) handleSmartsupp(w http.ResponseWriter, r *http.Request) {
	received := time.Now()
	if tr.cfg.Smartsupp.Token == "" || tr.qolio == nil {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "the Smartsupp hook is not set up on this relay ([smartsupp] token, [qolio] url)"})
		return
	}
	switch token := r.URL.Query().Get("token"); {
	case token == "":
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "missing token: the hook URL ends in ?token=<[smartsupp] token>"})
		return
	case subtle.ConstantTimeCompare([]byte(token), []byte(tr.cfg.Smartsupp.Token)) != 1:
		writeJSON(w, http.StatusForbidden, map[string]string{"error": "wrong token"})
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxSmartsuppBody))
	if err != nil {
		writeBodyError(w, err, maxSmartsuppBody)
		return
	}
	exp, err := smartsupp.Parse(body)
	if err != nil {
		writeFieldError(w, err)
		return
	}
	t, err := exp.Transcript()
	if err != nil {
		writeFieldError(w, err)
		return
	}
	if len(exp.Ignored) > 0 {
		tr.log.Debug("Smartsupp export fields ignored", "chat", exp.Channel.ID, "fields", exp.Ignored)
	}
	agent := t.OperatorRef
	op, mapped := tr.ops.BySmartsuppAgent(agent)
	operatorID := tr.cfg.Qolio.DefaultOperator
	switch {
	case mapped:
		operatorID = op.Code
	case operatorID != "":
	case agent != "":
		operatorID = "smartsupp:" + agent
	default:
		operatorID = "smartsupp:" + unassignedAgent
	}
	if !mapped {
		op = operators.Operator{}
	}
	comm := tr.communication(t, operatorID, tr.agentCode, exp.Channel.Rating, received)
	st := wire.TranscriptState{ID: exp.Channel.ID, CommunicationID: t.CommunicationID, Title: t.Title,
		Source: sourceSmartsupp, Messages: len(t.Parts), State: wire.TranscriptQueued, At: received.UTC()}
	body, err = qolio.Encode(comm)
	if err != nil {
		writeFieldError(w, err)
		return
	}
	// The same export again (Smartsupp retrying) is accepted once.
	seenKey := store.ExportKey(body)
	if seen, err := tr.store.LoadTranscript(r.Context(), seenKey); err == nil && seen != nil {
		writeJSON(w, http.StatusOK, map[string]any{"success": true, "communicationId": t.CommunicationID, "duplicate": true})
		return
	}
	// queued goes first: the delivery may be told before this returns.
	if err := tr.transcriptEvent(r.Context(), op.ID, st, "trq."+seenKey); err != nil {
		tr.log.Error("transcript state not stored", "err", err)
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "the relay could not store the chat; retry"})
		return
	}
	if _, err := tr.queueTranscript(r.Context(), op.ID, st, comm); err != nil {
		tr.log.Error("Smartsupp chat not queued", "chat", exp.Channel.ID, "err", err)
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "the relay could not store the chat; retry"})
		return
	}
	if err := tr.store.SaveTranscript(r.Context(), seenKey, []byte(t.CommunicationID)); err != nil {
		tr.log.Warn("could not remember the Smartsupp chat", "chat", exp.Channel.ID, "err", err)
	}
	tr.metrics.transcripts.WithLabelValues(sourceSmartsupp, "accepted").Inc()
	tr.metrics.eventsIn.WithLabelValues("smartsupp").Inc()
	tr.log.Info("Smartsupp chat queued for Qolio", "chat", exp.Channel.ID, "status", t.Status, "messages", len(t.Parts), "mapped", mapped)
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "communicationId": t.CommunicationID})
}

// agentCode is the Qolio id of a Smartsupp agent's parts: their operator's
// extension, or "" (the communication's operator_id) when not mapped.
func (tr *transcripts) agentCode(agentID string) string {
	if op, ok := tr.ops.BySmartsuppAgent(agentID); ok {
		return op.Code
	}
	return ""
}

// handleTranscriptSubmit serves POST /v1/transcripts: an operator's
// transcript (wire.TranscriptSubmit), answered 202 with its
// wire.TranscriptState, or a 4xx wire.Error.
func (tr *transcripts) handleTranscriptSubmit(w http.ResponseWriter, r *http.Request) {
	received := time.Now()
	op, ok := tr.auth(w, r)
	if !ok {
		return
	}
	refuse := func(status int, code, format string, a ...any) {
		writeJSON(w, status, &wire.Error{Code: code, Message: fmt.Sprintf(format, a...)})
	}
	if tr.qolio == nil {
		refuse(http.StatusUnprocessableEntity, wire.ErrNotConfigured, "transcripts are not set up on the relay (qolio.url)")
		return
	}
	var sub wire.TranscriptSubmit
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxSubmitBody)).Decode(&sub); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			refuse(http.StatusRequestEntityTooLarge, wire.ErrBadRequest, "the submission is larger than %d bytes", maxSubmitBody)
			return
		}
		refuse(http.StatusBadRequest, wire.ErrBadRequest, "malformed JSON: %v", err)
		return
	}
	if err := checkSubmission(&sub); err != nil {
		refuse(http.StatusBadRequest, wire.ErrBadRequest, "%v", err)
		return
	}
	key := store.SubmissionKey(op.ID, sub.ID)
	if st, ok := tr.submitted(r.Context(), key); ok {
		writeJSON(w, http.StatusAccepted, st)
		return
	}
	if ok, wait := tr.allow(op.ID); !ok {
		// The agent keeps the transcript and sends it again later.
		tr.metrics.throttled.WithLabelValues(limitTranscripts).Inc()
		tr.log.Warn("transcript refused: over the operator's quota", "operator", op.ID, "limit_per_minute", tr.cfg.Limits.TranscriptsPerMinute)
		secs := int(math.Ceil(wait.Seconds()))
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		refuse(http.StatusTooManyRequests, wire.ErrRateLimited, "more than %d transcripts a minute from this operator; try again in %d s",
			tr.cfg.Limits.TranscriptsPerMinute, secs)
		return
	}
	commID := "pult-" + op.ID + "-" + sub.ID
	var t transcript.Transcript
	var rating int
	var err error
	// Every operator part is the submitter's, whatever agent ids the
	// export names: an operator cannot file a chat under a colleague.
	authorID := func(string) string { return op.Code }
	switch sub.Format {
	case wire.FormatText:
		t, err = transcript.ParseText(strings.NewReader(sub.Body), transcript.TextOptions{
			CommunicationID: commID, OperatorRef: op.ID, Operators: speakerNames(op.Name), Client: sub.Client,
			Date: received.In(tr.loc), Location: tr.loc,
		})
	case wire.FormatSmartsupp:
		var exp smartsupp.Export
		if exp, err = smartsupp.Parse([]byte(sub.Body)); err == nil {
			t, err = exp.Transcript()
			rating = exp.Channel.Rating
		}
		t.CommunicationID = commID
	}
	if err != nil {
		refuse(http.StatusBadRequest, wire.ErrBadRequest, "%s", plainError(err))
		return
	}
	if sub.Title != "" {
		t.Title = sub.Title
	}
	comm := tr.communication(t, op.Code, authorID, rating, received)
	st := wire.TranscriptState{ID: sub.ID, CommunicationID: commID, Title: t.Title, Source: sourceOperator,
		Messages: len(t.Parts), State: wire.TranscriptQueued, At: received.UTC()}
	if _, err := tr.queueTranscript(r.Context(), op.ID, st, comm); err != nil {
		var qv *qolio.ValidationError
		if errors.As(err, &qv) {
			refuse(http.StatusBadRequest, wire.ErrBadRequest, "%s", plainError(err))
			return
		}
		tr.log.Error("transcript not queued", "operator", op.ID, "err", err)
		refuse(http.StatusServiceUnavailable, wire.ErrInternal, "the relay could not store the transcript; try again")
		return
	}
	b, _ := json.Marshal(st)
	if created, err := tr.store.CreateTranscript(r.Context(), key, b); err == nil && !created {
		if prev, ok := tr.submitted(r.Context(), key); ok {
			st = prev // sent twice at once: both get the first answer
		}
	} else if err != nil {
		tr.log.Warn("could not remember the transcript id", "operator", op.ID, "err", err)
	}
	tr.metrics.transcripts.WithLabelValues(sourceOperator, "accepted").Inc()
	tr.log.Info("transcript queued for Qolio", "operator", op.ID, "id", sub.ID, "format", sub.Format, "messages", len(t.Parts))
	writeJSON(w, http.StatusAccepted, st)
}

// submitted is the state a submission got when it was accepted.
func (tr *transcripts) submitted(ctx context.Context, key string) (wire.TranscriptState, bool) {
	data, err := tr.store.LoadTranscript(ctx, key)
	if err != nil || data == nil {
		return wire.TranscriptState{}, false
	}
	var st wire.TranscriptState
	return st, json.Unmarshal(data, &st) == nil && st.ID != ""
}

// checkSubmission checks what the transcript's parsers do not.
func checkSubmission(sub *wire.TranscriptSubmit) error {
	switch {
	case sub.ID == "":
		return errors.New("id: required")
	case len(sub.ID) > wire.MaxIDLen || !utf8.ValidString(sub.ID) || strings.ContainsFunc(sub.ID, func(r rune) bool {
		return unicode.IsSpace(r) || unicode.IsControl(r) || r == '/' || r == '\\'
	}):
		return fmt.Errorf("id: at most %d characters, no spaces, slashes or control characters", wire.MaxIDLen)
	case sub.Format != wire.FormatText && sub.Format != wire.FormatSmartsupp:
		return fmt.Errorf("format: want %q or %q, not %q", wire.FormatText, wire.FormatSmartsupp, clipText(sub.Format, 32))
	case strings.TrimSpace(sub.Body) == "":
		return errors.New("body: the transcript is empty")
	case len(sub.Body) > wire.MaxTranscript:
		return fmt.Errorf("body: %d bytes, the limit is %d", len(sub.Body), wire.MaxTranscript)
	}
	sub.Title = strings.TrimSpace(sub.Title)
	sub.Client = strings.TrimSpace(sub.Client)
	for _, f := range []struct{ name, v string }{{"title", sub.Title}, {"client", sub.Client}} {
		if utf8.RuneCountInString(f.v) > 255 || !utf8.ValidString(f.v) || strings.ContainsFunc(f.v, unicode.IsControl) {
			return fmt.Errorf("%s: one line of at most 255 characters", f.name)
		}
	}
	return nil
}

// speakerNames are the names an operator may appear under in a pasted
// chat: their full name and their first name.
func speakerNames(name string) []string {
	out := []string{name}
	if f := strings.Fields(name); len(f) > 1 {
		out = append(out, f[0])
	}
	return out
}

// errField is the field a partner package's refusal names, or "".
func errField(err error) string {
	var ue *uis.FieldError
	var se *smartsupp.FieldError
	var te *transcript.FieldError
	var qe *qolio.ValidationError
	var ce *calltouch.ValidationError
	var re *retailcrm.ValidationError
	switch {
	case errors.As(err, &ue):
		return ue.Field
	case errors.As(err, &se):
		return se.Field
	case errors.As(err, &te):
		return te.Field
	case errors.As(err, &qe):
		return qe.Field
	case errors.As(err, &ce):
		return ce.Field
	case errors.As(err, &re):
		return re.Field
	}
	return ""
}

// plainError drops a partner package's prefix ("transcript: ") from a
// refusal, which then starts with the field it names.
func plainError(err error) string {
	msg := err.Error()
	for _, p := range []string{"transcript: ", "smartsupp: ", "qolio: ", "calltouch: "} {
		msg = strings.TrimPrefix(msg, p)
	}
	return msg
}
