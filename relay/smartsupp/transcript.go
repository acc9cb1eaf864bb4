package smartsupp

import (
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/pult/pult/relay/transcript"
	"github.com/pult/pult/relay/untrusted"
)

// Transcript turns the export into the transcript the relay forwards:
//
//   - CommunicationID is "smartsupp-" + channel.id (so a re-sent chat
//     replaces the earlier copy), Source transcript.SourceSmartsupp, Title
//     "Smartsupp chat " + channel.id.
//   - Status is offline when channel.isOffline, else missed when
//     channel.isMissed or channel.isDropped, else closed.
//   - OperatorRef is the Smartsupp agent id of the agent who wrote the most
//     messages (the first of them to write on a tie); when no agent wrote,
//     the first agent seen at all (one who joined, say); else "".
//   - Client is the visitor: id, name (else the name on the visitor's
//     messages) and e-mail; Smartsupp sends no phone number.
//   - Parts are the visitor's and agents' messages in order; each part's id
//     is the message's index in messages, so it is stable. Visitor messages
//     are client parts with the visitor's id; messages of type "agent" from
//     "agent:<id>" are operator parts with author id <id>; automatic
//     messages (type "agent" with triggeredBy, or from "system", as in
//     Smartsupp's own example) are transcript.AuthorBot parts named after
//     the trigger. System messages ("agent.join", "close.visitorClose")
//     are events and stay out. A message without a known type counts by
//     its from. Bodies go through transcript.Clean; messages left empty
//     are dropped, and one over transcript.MaxBodyBytes is cut, ending in
//     "…".
//   - StartedAt is beginAt, else the first message's time; EndedAt is
//     endAt, else the last message's time (never before StartedAt).
//
// An export with no text at all gives a *FieldError for "messages"; a
// transcript that fails transcript.Validate (more than
// transcript.MaxParts messages, say) gives that *transcript.FieldError.
func (e Export) Transcript() (transcript.Transcript, error) {
	t := transcript.Transcript{
		CommunicationID: CommunicationIDPrefix + e.Channel.ID,
		Source:          transcript.SourceSmartsupp,
		Title:           titlePrefix + e.Channel.ID,
		Status:          transcript.StatusClosed,
		Client: transcript.Client{
			ID:    fit(e.Visitor.ID, transcript.MaxIDLen),
			Name:  untrusted.Clip(e.Visitor.Name, transcript.MaxNameLen),
			Email: fit(e.Visitor.Email, transcript.MaxEmailLen),
		},
		StartedAt: e.BeginAt,
	}
	switch {
	case e.Channel.IsOffline:
		t.Status = transcript.StatusOffline
	case e.Channel.IsMissed || e.Channel.IsDropped:
		t.Status = transcript.StatusMissed
	}

	written := map[string]int{} // agent id → operator parts
	for i, m := range e.Messages {
		author, ok := e.author(m)
		if !ok {
			continue
		}
		body := transcript.Clean(m.Content)
		if body == "" {
			continue
		}
		if len(body) > transcript.MaxBodyBytes {
			body = cutBytes(body, transcript.MaxBodyBytes-len(truncatedMark)) + truncatedMark
		}
		if author.Type == transcript.AuthorClient {
			if t.Client.ID == "" {
				t.Client.ID = author.ID
			}
			if t.Client.Name == "" {
				t.Client.Name = author.Name
			}
			if author.ID == "" {
				author.ID = t.Client.ID
			}
			if author.Name == "" {
				author.Name = t.Client.Name
			}
		}
		if author.Type == transcript.AuthorOperator {
			written[author.ID]++
		}
		t.Parts = append(t.Parts, transcript.Part{ID: strconv.Itoa(i), Author: author, Body: body, At: m.SentAt})
	}
	if len(t.Parts) == 0 {
		return transcript.Transcript{}, invalid("messages", "have no text from the visitor or an agent")
	}
	t.OperatorRef = e.operatorRef(written)

	for _, p := range t.Parts {
		if !t.StartedAt.IsZero() {
			break
		}
		t.StartedAt = p.At
	}
	t.EndedAt = e.EndAt
	if t.EndedAt.IsZero() || t.EndedAt.Before(t.StartedAt) {
		t.EndedAt = t.StartedAt
		for _, p := range t.Parts {
			if p.At.After(t.EndedAt) {
				t.EndedAt = p.At
			}
		}
	}
	if err := t.Validate(); err != nil {
		return transcript.Transcript{}, err
	}
	return t, nil
}

// AgentIDs lists the Smartsupp agent ids that appear in the messages'
// from ("agent:<id>"), system messages included, in order of first
// appearance.
func (e Export) AgentIDs() []string {
	var ids []string
	seen := map[string]bool{}
	for _, m := range e.Messages {
		if id := m.AgentID(); id != "" && !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	return ids
}

// author says who wrote m; ok is false for events and unknown messages.
func (e Export) author(m Message) (transcript.Author, bool) {
	typ := m.Type
	if typ != MessageVisitor && typ != MessageAgent && typ != MessageSystem {
		switch {
		case m.AgentID() != "":
			typ = MessageAgent
		case hasPrefixFold(m.From, FromVisitor):
			typ = MessageVisitor
		default:
			return transcript.Author{}, false
		}
	}
	name := untrusted.Clip(m.Name, transcript.MaxNameLen)
	switch typ {
	case MessageVisitor:
		id := e.Visitor.ID
		if id == "" {
			id, _ = cutPrefixFold(m.From, FromVisitor)
		}
		return transcript.Author{Type: transcript.AuthorClient, ID: fit(strings.TrimSpace(id), transcript.MaxIDLen), Name: name}, true
	case MessageAgent:
		id := fit(m.AgentID(), transcript.MaxIDLen)
		if m.TriggeredBy != "" || id == "" {
			if name == "" {
				name = untrusted.Clip(m.TriggeredBy, transcript.MaxNameLen)
			}
			return transcript.Author{Type: transcript.AuthorBot, ID: id, Name: name}, true
		}
		return transcript.Author{Type: transcript.AuthorOperator, ID: id, Name: name}, true
	}
	return transcript.Author{}, false
}

// operatorRef picks the agent who wrote the most, the first on a tie, else
// the first agent seen.
func (e Export) operatorRef(written map[string]int) string {
	ids := e.AgentIDs()
	best, most := "", 0
	for _, id := range ids {
		if n := written[fit(id, transcript.MaxIDLen)]; n > most {
			best, most = id, n
		}
	}
	if best == "" {
		for _, id := range ids {
			if fit(id, transcript.MaxIDLen) != "" {
				return id
			}
		}
	}
	return best
}

func hasPrefixFold(s, prefix string) bool {
	_, ok := cutPrefixFold(s, prefix)
	return ok
}

// cutBytes cuts s to at most n bytes on a character boundary.
func cutBytes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return strings.TrimSpace(s[:n])
}
