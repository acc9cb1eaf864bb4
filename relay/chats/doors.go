package chats

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/pult/pult/agent/wire"
	"github.com/pult/pult/relay/operators"
	"github.com/pult/pult/relay/qolio"
	"github.com/pult/pult/relay/smartsupp"
	"github.com/pult/pult/relay/store"
	"github.com/pult/pult/relay/transcript"
)

const (
	// maxSmartsuppBody bounds the export hook's body.
	maxSmartsuppBody = 2 << 20
	// maxSubmitBody bounds an agent's submission: a body of
	// wire.MaxTranscript bytes may grow up to six times when JSON-encoded
	// ("<" is written \u003c), plus the envelope.
	maxSubmitBody = 6*wire.MaxTranscript + 64<<10
)

// HandleSmartsupp serves POST /hooks/smartsupp?token=…: Smartsupp's chat
// export hook. Refusals are {"error"} (and "field" when one is to blame).
func (f *Flow) HandleSmartsupp(w http.ResponseWriter, r *http.Request) {
	received := time.Now()
	if f.cfg.SmartsuppToken == "" || f.cfg.Qolio == nil {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "the Smartsupp hook is not set up on this relay ([smartsupp] token, [qolio] url)"})
		return
	}
	switch token := r.URL.Query().Get("token"); {
	case token == "":
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "missing token: the hook URL ends in ?token=<[smartsupp] token>"})
		return
	case subtle.ConstantTimeCompare([]byte(token), []byte(f.cfg.SmartsuppToken)) != 1:
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
		f.log.Debug("Smartsupp export fields ignored", "chat", exp.Channel.ID, "fields", exp.Ignored)
	}
	agent := t.OperatorRef
	op, mapped := f.cfg.Operators.BySmartsuppAgent(agent)
	operatorID := f.cfg.DefaultOperator
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
	comm := f.communication(t, operatorID, f.agentCode, exp.Channel.Rating, received)
	st := wire.TranscriptState{ID: exp.Channel.ID, CommunicationID: t.CommunicationID, Title: t.Title,
		Source: SourceSmartsupp, Messages: len(t.Parts), State: wire.TranscriptQueued, At: received.UTC()}
	body, err = qolio.Encode(comm)
	if err != nil {
		writeFieldError(w, err)
		return
	}
	// The same export again (Smartsupp retrying) is accepted once.
	seenKey := store.ExportKey(body)
	if seen, err := f.cfg.Store.LoadTranscript(r.Context(), seenKey); err == nil && seen != nil {
		writeJSON(w, http.StatusOK, map[string]any{"success": true, "communicationId": t.CommunicationID, "duplicate": true})
		return
	}
	// queued goes first: the delivery may be told before this returns.
	if err := f.receipt(r.Context(), op.ID, st, "trq."+seenKey); err != nil {
		f.log.Error("transcript state not stored", "err", err)
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "the relay could not store the chat; retry"})
		return
	}
	if _, err := f.queue(r.Context(), op.ID, st, comm); err != nil {
		f.log.Error("Smartsupp chat not queued", "chat", exp.Channel.ID, "err", err)
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "the relay could not store the chat; retry"})
		return
	}
	if err := f.cfg.Store.SaveTranscript(r.Context(), seenKey, []byte(t.CommunicationID)); err != nil {
		f.log.Warn("could not remember the Smartsupp chat", "chat", exp.Channel.ID, "err", err)
	}
	f.transcripts.WithLabelValues(SourceSmartsupp, "accepted").Inc()
	f.cfg.EventsIn.WithLabelValues("smartsupp").Inc()
	f.log.Info("Smartsupp chat queued for Qolio", "chat", exp.Channel.ID, "status", t.Status, "messages", len(t.Parts), "mapped", mapped)
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "communicationId": t.CommunicationID})
}

// agentCode is the Qolio id of a Smartsupp agent's parts: their operator's
// extension, or "" (the communication's operator_id) when not mapped.
func (f *Flow) agentCode(agentID string) string {
	if op, ok := f.cfg.Operators.BySmartsuppAgent(agentID); ok {
		return op.Code
	}
	return ""
}

// HandleSubmit serves POST /v1/transcripts: an operator's transcript
// (wire.TranscriptSubmit), answered 202 with its wire.TranscriptState, or a
// 4xx wire.Error.
func (f *Flow) HandleSubmit(w http.ResponseWriter, r *http.Request) {
	received := time.Now()
	op, ok := f.cfg.Auth(w, r)
	if !ok {
		return
	}
	refuse := func(status int, code, format string, a ...any) {
		writeJSON(w, status, &wire.Error{Code: code, Message: fmt.Sprintf(format, a...)})
	}
	if f.cfg.Qolio == nil {
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
	if st, ok := f.submitted(r.Context(), key); ok {
		writeJSON(w, http.StatusAccepted, st)
		return
	}
	if ok, wait := f.allow(op.ID); !ok {
		// The agent keeps the transcript and sends it again later.
		f.cfg.Throttled.Inc()
		f.log.Warn("transcript refused: over the operator's quota", "operator", op.ID, "limit_per_minute", f.cfg.PerMinute)
		secs := int(math.Ceil(wait.Seconds()))
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		refuse(http.StatusTooManyRequests, wire.ErrRateLimited, "more than %d transcripts a minute from this operator; try again in %d s",
			f.cfg.PerMinute, secs)
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
			Date: received.In(f.cfg.Location), Location: f.cfg.Location,
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
	comm := f.communication(t, op.Code, authorID, rating, received)
	st := wire.TranscriptState{ID: sub.ID, CommunicationID: commID, Title: t.Title, Source: SourceOperator,
		Messages: len(t.Parts), State: wire.TranscriptQueued, At: received.UTC()}
	if _, err := f.queue(r.Context(), op.ID, st, comm); err != nil {
		var qv *qolio.ValidationError
		if errors.As(err, &qv) {
			refuse(http.StatusBadRequest, wire.ErrBadRequest, "%s", plainError(err))
			return
		}
		f.log.Error("transcript not queued", "operator", op.ID, "err", err)
		refuse(http.StatusServiceUnavailable, wire.ErrInternal, "the relay could not store the transcript; try again")
		return
	}
	b, _ := json.Marshal(st)
	if created, err := f.cfg.Store.CreateTranscript(r.Context(), key, b); err == nil && !created {
		if prev, ok := f.submitted(r.Context(), key); ok {
			st = prev // sent twice at once: both get the first answer
		}
	} else if err != nil {
		f.log.Warn("could not remember the transcript id", "operator", op.ID, "err", err)
	}
	f.transcripts.WithLabelValues(SourceOperator, "accepted").Inc()
	f.log.Info("transcript queued for Qolio", "operator", op.ID, "id", sub.ID, "format", sub.Format, "messages", len(t.Parts))
	writeJSON(w, http.StatusAccepted, st)
}

// submitted is the state a submission got when it was accepted.
func (f *Flow) submitted(ctx context.Context, key string) (wire.TranscriptState, bool) {
	data, err := f.cfg.Store.LoadTranscript(ctx, key)
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

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// writeFieldError answers 400 with {"error": …, "field": …} for a refusal
// of the Smartsupp export, of the transcript or of Qolio's communication,
// else with the error's text.
func writeFieldError(w http.ResponseWriter, err error) {
	out := map[string]string{"error": err.Error()}
	if f := errField(err); f != "" {
		out["field"] = f
	}
	writeJSON(w, http.StatusBadRequest, out)
}

// errField is the field a refusal names, or "".
func errField(err error) string {
	var se *smartsupp.FieldError
	var te *transcript.FieldError
	var qe *qolio.ValidationError
	switch {
	case errors.As(err, &se):
		return se.Field
	case errors.As(err, &te):
		return te.Field
	case errors.As(err, &qe):
		return qe.Field
	}
	return ""
}

// writeBodyError answers a body that could not be read.
func writeBodyError(w http.ResponseWriter, err error, limit int64) {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		writeJSON(w, http.StatusRequestEntityTooLarge, map[string]string{"error": fmt.Sprintf("body: larger than %d bytes", limit), "field": "body"})
		return
	}
	writeJSON(w, http.StatusBadRequest, map[string]string{"error": "body: could not be read: " + err.Error(), "field": "body"})
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

func clipText(s string, n int) string {
	if r := []rune(strings.ToValidUTF8(s, "?")); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}
