// Package wire is the websocket protocol spoken between a pult agent (the
// operator's app) and a pult relay. It holds only types and constants and
// imports nothing but the standard library, so both sides share one truth.
//
// # Protocol flow
//
// 1. Handshake. The agent opens a websocket to the relay at [Path]:
//
//	GET /v1/agent?since=<seq>&epoch=<epoch>
//	Authorization: Bearer <operator token>
//	Pult-Protocol: 1
//
// since and epoch are optional: they name the last event the agent processed
// (see step 3). The relay checks the token and the protocol before upgrading.
// A refusal is an HTTP error whose JSON body is a [HandshakeError] carrying
// the same close code a live connection would get: [CloseBadToken],
// [CloseRevoked] or [CloseProtocol]. These are "stop" codes: the agent must not
// retry with the same token or build.
//
// 2. Hello. The first frame from the relay is a [Hello] (type "hello", no seq):
// who the operator is, the current status, the relay's epoch, whether the
// requested position could be resumed, and the position the following events
// start after (the agent adopts it when it was not resumed).
//
// 3. Events. Every later server event (call cards, status changes, notices)
// carries seq, its position in the relay's durable event log. Within one
// operator's stream seq strictly increases (it is not contiguous: numbers are
// shared with other operators' streams). After a reconnect the agent sends the
// last seq it processed together with the epoch it got in hello; the relay then
// sends exactly the events after that position, in order, before any live ones,
// and never one twice. If the epoch differs (the relay's log was recreated) or
// the position has expired, hello says Resumed=false and the agent must treat
// its local view as stale.
//
// A connection that is not resumed — those cases, and the agent's very first
// connection, with no since or epoch — starts a little in the past: hello's
// position is just before the operator's first event of the last two minutes
// (the relay's log's end when there is none), and the events after it follow
// as in a resume, in order, each once, then live ones. So a call ringing as
// the agent connects comes with its card, and one that rang and ended within
// those minutes comes with its end. Such events may be older than the
// connection: the agent tells a call ringing now from one long over by the
// call's own times (StartedAt and EndedAt of the [Call]).
//
// Cards ahead of the log. An agent that asks for it (QueryPreview=1 in the
// handshake) gets a call card as soon as the relay has made it, while the
// relay is still storing it: a "call" frame with no seq and an id (the
// card's id in the log). Once the card is stored the agent gets a "stored"
// frame with that id and the card's seq, which moves its position as the
// card itself would have; the card is not sent again. That frame may come
// after the next card ahead, and at most a quarter of a second after the
// card was stored. A card the relay
// could not store is taken back with a "withdrawn" frame with that id,
// whose data is the card the operator had before (the call as it stands),
// or no data when the operator had no card for the call (remove it). Call
// cards from the log carry the same id: an agent that reconnects before a
// card it was shown ahead is stored gets the stored card in the catch-up,
// and knows it by its id (only its position moves). A card ahead can come
// before cards of other calls that are still being stored (another relay's,
// or one whose PBX is retrying); a call's own cards carry its version, and
// an older one is not shown over a newer one.
//
// 4. Requests. The agent sends requests (status.set, dial) with a unique id.
// Each gets exactly one answer with the same id: type "reply" (data is the
// request-specific result) or type "error" (data is an [Error]). Requests may
// be re-sent with the same id after a reconnect; the relay recognises the id
// and answers with the original result instead of acting twice.
//
// The queue board. A supervisor sends queue.subscribe and gets a
// [QueueSnapshot] as the reply, then "queue" frames with [QueueDelta]s,
// numbered by Version from the snapshot's on, each carrying only what
// changed. They are not in the durable log: a delta whose Version is not
// the last one + 1 (or a reconnect) means "subscribe again" for a fresh
// snapshot. Anyone but a supervisor gets ErrForbidden.
//
// Transcripts are larger than a frame may be, so they are not sent over the
// websocket: the agent POSTs a [TranscriptSubmit] to [PathTranscripts] with
// the same bearer token (answer 202 with a [TranscriptState], or an [Error]
// with a 4xx), and their delivery to the QA platform arrives later as
// "transcript" events on the stream. The submission's id makes a re-sent
// transcript a no-op.
//
// 5. Liveness. The relay sends websocket pings every [PingPeriod]; the agent
// answers with pongs (the websocket library does it) and treats a link that
// stayed silent for [PongWait] as dead. Either side may close with a code from
// this package: codes 4000–4099 mean stop, anything else means reconnect with
// backoff and resume.
//
// Frames from the agent are JSON text messages of at most [DefaultMaxFrame]
// bytes unless the relay is configured otherwise; a larger frame closes the
// connection with 1009 (message too big). Frames from the relay may be up to
// [MaxRelayFrame] (a queue snapshot of a large call center). Every envelope
// carries the protocol version "v".
package wire

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// ProtocolVersion is the version this build speaks. MinProtocolVersion is the
// oldest agent version the relay still serves.
const (
	ProtocolVersion    = 1
	MinProtocolVersion = 1
)

// Handshake names.
const (
	Path           = "/v1/agent"
	PathMe         = "/v1/me" // GET with the bearer token: 200 + Operator, or a HandshakeError
	HeaderProtocol = "Pult-Protocol"
	QuerySince     = "since"
	QueryEpoch     = "epoch"
	QueryPreview   = "preview" // "1": send call cards ahead of the log (see Cards ahead of the log)
)

// Limits and timing shared by both sides.
const (
	DefaultMaxFrame = 64 << 10
	MaxRelayFrame   = 8 << 20 // the largest frame an agent reads
	PingPeriod      = 25 * time.Second
	PongWait        = 60 * time.Second
	WriteWait       = 10 * time.Second
)

// Close codes. 4000–4099 tell the agent to stop; the rest to reconnect.
const (
	CloseBadToken = 4001 // token unknown or malformed
	CloseRevoked  = 4003 // token revoked by an administrator
	CloseProtocol = 4004 // agent protocol too old (or too new) for this relay
	CloseNotAgent = 4005 // a wallboard's token: it can only watch the board

	CloseGoingAway = 4100 // relay shutting down or restarting
	CloseSlow      = 4101 // agent could not keep up; resume after reconnecting
	// CloseRateLimited: the session sent more requests than the relay's
	// per-session rate allows. Reconnect later (not at once: an agent
	// stays away at least ThrottledWait) and resume.
	CloseRateLimited = 4102
	// CloseTooManySessions: the operator has as many sessions open as the
	// relay allows. Only in a HandshakeError, with HTTP 429; try again
	// later (at least ThrottledWait), when another session has closed.
	CloseTooManySessions = 4103
)

// ThrottledWait is the least an agent waits before it reconnects after
// CloseRateLimited or a handshake refused with HTTP 429.
const ThrottledWait = 10 * time.Second

// IsStop reports whether a close code means "do not reconnect".
func IsStop(code int) bool { return code >= 4000 && code < 4100 }

// CloseText is a human explanation of a close code.
func CloseText(code int) string {
	switch code {
	case CloseBadToken:
		return "the relay does not know this token"
	case CloseRevoked:
		return "this token has been revoked"
	case CloseNotAgent:
		return "this is a wallboard's token: it only opens the queue board page (/board), not pult"
	case CloseProtocol:
		return "this version of pult is not supported by the relay; please update"
	case CloseGoingAway:
		return "the relay is restarting"
	case CloseSlow:
		return "the connection fell behind"
	case CloseRateLimited:
		return "too many requests from this session; reconnecting later"
	case CloseTooManySessions:
		return "too many sessions are open with this token"
	case 1009:
		return "a message exceeded the frame size limit"
	}
	return fmt.Sprintf("connection closed (code %d)", code)
}

// HandshakeError is the JSON body of a refused handshake.
type HandshakeError struct {
	Code   int    `json:"code"`
	Reason string `json:"reason"`
}

func (e *HandshakeError) Error() string { return e.Reason }

// Envelope is every frame, in both directions.
type Envelope struct {
	V    int             `json:"v"`
	Type string          `json:"type"`
	ID   string          `json:"id,omitempty"`
	Seq  uint64          `json:"seq,omitempty"`
	Data json.RawMessage `json:"data,omitempty"`
}

// Frame types.
const (
	// server → agent
	TypeHello      = "hello"
	TypeReply      = "reply"
	TypeError      = "error"
	TypeCall       = "call"
	TypeStatus     = "status"
	TypeNotice     = "notice"
	TypeTranscript = "transcript" // a chat transcript's delivery state (TranscriptState)
	TypeStored     = "stored"     // a card sent ahead is stored: id, seq (no data)
	TypeWithdrawn  = "withdrawn"  // a card sent ahead was not stored: id; data: the card before (Call), or none

	// agent → server requests
	TypeSetStatus = "status.set"
	TypeDial      = "dial"
	TypeCallback  = "callback" // order a callback through Calltouch (Callback)

	// Supervisors only (others get an error with code ErrForbidden).
	TypeQueueSubscribe    = "queue.subscribe"     // reply: QueueSnapshot; then "queue" events carry QueueDelta
	TypeQueueUnsubscribe  = "queue.unsubscribe"   // reply: nothing (null)
	TypeOperatorStatusSet = "operator.status.set" // OperatorStatus; reply: StatusInfo
	TypeQueue             = "queue"               // server → agent: QueueDelta (live, not in the durable log: no seq)
)

// MaxIDLen bounds request ids.
const MaxIDLen = 64

// Encode builds an envelope with data marshalled to JSON.
func Encode(typ, id string, seq uint64, data any) ([]byte, error) {
	env := Envelope{V: ProtocolVersion, Type: typ, ID: id, Seq: seq}
	if data != nil {
		b, err := json.Marshal(data)
		if err != nil {
			return nil, fmt.Errorf("wire: encode %s: %w", typ, err)
		}
		env.Data = b
	}
	return json.Marshal(env)
}

// Operator is who a token belongs to.
type Operator struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Code   string `json:"code"`   // PBX extension
	UserID string `json:"userId"` // CRM user id
	Role   Role   `json:"role"`
}

// Role of an operator.
type Role string

const (
	RoleOperator   Role = "operator"
	RoleSupervisor Role = "supervisor"
	// RoleWallboard is a token for a wall screen: it can watch the queue
	// board page and nothing else (no agent, no requests, no extension).
	RoleWallboard Role = "wallboard"
)

// Valid reports whether r is a known role.
func (r Role) Valid() bool { return r == RoleOperator || r == RoleSupervisor || r == RoleWallboard }

// Agent reports whether a token of this role may connect an agent (the
// app, the command line): every role but wallboard.
func (r Role) Agent() bool { return r != RoleWallboard }

// Status is what an operator sets: free, busy, dinner, break. Offline is not
// settable: it is shown while no agent of the operator is connected.
type Status string

const (
	StatusFree    Status = "free"
	StatusBusy    Status = "busy"
	StatusDinner  Status = "dinner"
	StatusBreak   Status = "break"
	StatusOffline Status = "offline"
)

// Statuses lists the settable statuses in menu order.
var Statuses = []Status{StatusFree, StatusBusy, StatusDinner, StatusBreak}

// Valid reports whether s can be set.
func (s Status) Valid() bool {
	switch s {
	case StatusFree, StatusBusy, StatusDinner, StatusBreak:
		return true
	}
	return false
}

// ParseStatus accepts a settable status, case-insensitively.
func ParseStatus(s string) (Status, error) {
	st := Status(strings.ToLower(strings.TrimSpace(s)))
	if !st.Valid() {
		return "", fmt.Errorf("unknown status %q (want free, busy, dinner or break)", s)
	}
	return st, nil
}

// Hello is the first frame on every connection.
type Hello struct {
	Protocol int        `json:"protocol"`
	Operator Operator   `json:"operator"`
	Status   StatusInfo `json:"status"`
	Epoch    string     `json:"epoch"`
	Resumed  bool       `json:"resumed"` // the requested position was resumed
	// Position is the seq this connection's events follow: the agent's own
	// when resumed, else the log's current end. An agent that has processed
	// nothing newer resumes from it next time, so it misses nothing even
	// before its first event.
	Position   uint64    `json:"position"`
	ServerTime time.Time `json:"serverTime"`
}

// StatusInfo is an operator's status, the data of "status" events and the
// reply to status.set.
type StatusInfo struct {
	Status Status    `json:"status"`
	Since  time.Time `json:"since"`
	Source string    `json:"source,omitempty"` // agent, crm, supervisor, relay
}

// SetStatus is the data of a status.set request. At is when the operator made
// the choice; a change older than the stored one is not applied (the last
// status wins even when an offline change arrives late).
type SetStatus struct {
	Status Status    `json:"status"`
	At     time.Time `json:"at"`
}

// Dial is the data of a dial request: click-to-call through the PBX.
type Dial struct {
	Phone         string `json:"phone"`
	ExternalPhone string `json:"externalPhone,omitempty"`
}

// DialResult is the reply to a dial request: the PBX accepted the call.
type DialResult struct {
	Phone   string `json:"phone"`   // E.164, as sent to the PBX
	Display string `json:"display"` // national format, for people
}

// Error is the data of an "error" frame (and the body of a refused
// transcript submission). Code is for programs: an app shows its own words,
// in its operator's language, for a code it knows, and Message (the relay's
// English) only for one it does not.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// HTTPStatus is the partner's HTTP status when its answer is the
	// reason (pbx_refused, pbx_unreachable), else 0. Relays before it
	// leave it out.
	HTTPStatus int `json:"httpStatus,omitempty"`
	// Reason narrows Code when the relay knows more: one of the
	// Reason… constants, or "". Relays before it leave it out.
	Reason string `json:"reason,omitempty"`
}

// Finer reasons of a refused callback (Error.Reason with ErrPBXRefused).
const (
	ReasonNoMinutes        = "no_minutes"        // the Calltouch account has no callback minutes left
	ReasonServiceOff       = "service_off"       // callbacks are switched off in Calltouch
	ReasonAlreadyRequested = "already_requested" // a callback to this number is already ordered
)

func (e *Error) Error() string { return e.Message }

// Error codes. After pbx_unreachable, internal, unavailable and
// rate_limited nothing was done, and the same request (same id) may be
// sent again: the relay does not keep them as the request's answer. Every other answer is the request's final
// one, given again to its id; pbx_timeout too, as its outcome is unknown.
const (
	ErrBadRequest     = "bad_request"
	ErrInvalidStatus  = "invalid_status"
	ErrInvalidNumber  = "invalid_number"
	ErrPBXRefused     = "pbx_refused"
	ErrPBXUnreachable = "pbx_unreachable" // the partner was out of reach or turned the request away (502, 503, 429)
	ErrPBXTimeout     = "pbx_timeout"
	ErrNotConfigured  = "not_configured"
	ErrForbidden      = "forbidden"
	ErrInternal       = "internal"
	// ErrUnavailable: the relay takes no new work for now (its storage is
	// nearly full); the same request later may succeed.
	ErrUnavailable = "unavailable"
	// ErrRateLimited: over a quota of the relay (transcripts per minute);
	// try again after the Retry-After the answer carries.
	ErrRateLimited = "rate_limited"
)

// Direction of a call.
const (
	DirectionIn  = "in"
	DirectionOut = "out"
)

// CallState is a call as this operator sees it.
type CallState string

const (
	CallRinging           CallState = "ringing"            // ringing at this operator (or dialing out)
	CallTalking           CallState = "talking"            // answered by this operator
	CallAnsweredElsewhere CallState = "answered_elsewhere" // another operator answered
	CallEnded             CallState = "ended"              // answered, now over
	CallMissed            CallState = "missed"             // nobody answered
)

// Final reports whether the call is over for this operator.
func (s CallState) Final() bool {
	return s == CallEnded || s == CallMissed || s == CallAnsweredElsewhere
}

// ManagerState tells whether the responsible manager is known yet.
type ManagerState string

const (
	ManagerPending     ManagerState = "pending"     // lookup in progress; an update follows
	ManagerFound       ManagerState = "found"       // Manager is set
	ManagerNone        ManagerState = "none"        // the CRM has no free responsible manager
	ManagerUnavailable ManagerState = "unavailable" // the CRM could not be asked
	ManagerOff         ManagerState = "off"         // no CRM configured
)

// Call is a call card: the data of "call" events. Each event carries the whole
// card, so the latest one for an ID replaces any earlier.
type Call struct {
	ID           string       `json:"id"`
	Direction    string       `json:"direction"`
	State        CallState    `json:"state"`
	Phone        string       `json:"phone"`          // the other party, E.164 when it parses
	PhoneDisplay string       `json:"phoneDisplay"`   // national format
	Line         string       `json:"line,omitempty"` // external number called
	LineDisplay  string       `json:"lineDisplay,omitempty"`
	Site         string       `json:"site,omitempty"`
	Client       *Client      `json:"client,omitempty"`
	Manager      *Manager     `json:"manager,omitempty"`
	ManagerState ManagerState `json:"managerState"`
	AnsweredBy   *Party       `json:"answeredBy,omitempty"`
	HangupStatus string       `json:"hangupStatus,omitempty"`
	StartedAt    time.Time    `json:"startedAt"`
	AnsweredAt   *time.Time   `json:"answeredAt,omitempty"`
	EndedAt      *time.Time   `json:"endedAt,omitempty"`
	Links        *Links       `json:"links,omitempty"`
	// Version counts the call's changes: of two cards of a call, the one
	// with the lower version is older (a card sent ahead of the log may
	// overtake one stored by another relay). 0: not known (older relays).
	Version int `json:"version,omitempty"`
}

// Client is the caller as the CRM knows them.
type Client struct {
	ID    string `json:"id,omitempty"`
	Name  string `json:"name,omitempty"`
	Email string `json:"email,omitempty"`
}

// Manager is the client's responsible manager.
type Manager struct {
	ID    string `json:"id,omitempty"`
	Name  string `json:"name"`
	Code  string `json:"code,omitempty"` // extension
	Email string `json:"email,omitempty"`
	Free  bool   `json:"free"` // the CRM returns a manager only when free
	You   bool   `json:"you"`  // the manager is this operator
}

// Party is an operator taking part in a call.
type Party struct {
	Code string `json:"code"`
	Name string `json:"name,omitempty"`
	You  bool   `json:"you"`
}

// Links into the CRM.
type Links struct {
	Customer    string `json:"customer,omitempty"`
	NewOrder    string `json:"newOrder,omitempty"`
	LastOrder   string `json:"lastOrder,omitempty"`
	NewCustomer string `json:"newCustomer,omitempty"`
}

// Notice is a message for the operator, e.g. "dialing …" after the CRM's
// phone icon was clicked. An app builds its own sentence from Kind, Phone
// and Error, in its operator's language; Text is the relay's English, for
// a Kind (or an Error.Code) the app does not know.
type Notice struct {
	Kind  string `json:"kind"` // dialing, dial_failed
	Text  string `json:"text"`
	Phone string `json:"phone,omitempty"` // E.164
	// Error says why, for dial_failed: the PBX's refusal, as a dial
	// request would have got it. Relays before it leave it out.
	Error *Error    `json:"error,omitempty"`
	At    time.Time `json:"at"`
}

// Notice kinds.
const (
	NoticeDialing    = "dialing"
	NoticeDialFailed = "dial_failed"
)

// PathTranscripts is where an agent submits a transcript (POST, bearer token).
const PathTranscripts = "/v1/transcripts"

// MaxTranscript bounds a submitted transcript's body.
const MaxTranscript = 1 << 20

// Transcript formats.
const (
	FormatSmartsupp = "smartsupp" // a Smartsupp chat export (JSON)
	FormatText      = "text"      // "Name: message" lines
)

// TranscriptSubmit is a transcript the operator submits.
type TranscriptSubmit struct {
	ID     string `json:"id"`     // request id: the same id is accepted once
	Format string `json:"format"` // FormatSmartsupp or FormatText
	Title  string `json:"title,omitempty"`
	Client string `json:"client,omitempty"` // FormatText: the client's name, if known
	Body   string `json:"body"`
}

// Transcript delivery states.
const (
	TranscriptQueued    = "queued"    // accepted by the relay, not yet delivered
	TranscriptDelivered = "delivered" // the QA platform accepted it
	TranscriptFailed    = "failed"    // the QA platform refused it (Reason); it will not be retried
)

// TranscriptState is a transcript's delivery state: the reply to a
// submission and the data of "transcript" events.
type TranscriptState struct {
	ID              string `json:"id"`              // the submission id, or the chat's id for a hook's transcript
	CommunicationID string `json:"communicationId"` // the QA platform's key
	Title           string `json:"title,omitempty"`
	Source          string `json:"source"` // "operator", "smartsupp"
	Messages        int    `json:"messages"`
	State           string `json:"state"`
	Reason          string `json:"reason,omitempty"` // the relay's English, or the QA platform's own words
	// ReasonCode says why a transcript failed, for an app to say in its
	// own words (Reason then is the detail): TranscriptRejected or
	// TranscriptGaveUp. Relays before it leave it out.
	ReasonCode string    `json:"reasonCode,omitempty"`
	At         time.Time `json:"at"`
}

// Why a transcript failed (TranscriptState.ReasonCode).
const (
	TranscriptRejected = "rejected" // the QA platform refused it; Reason is its answer
	TranscriptGaveUp   = "gave_up"  // the QA platform could not be reached in time
)

// Callback is the data of a callback request: ask Calltouch to call the
// client back and connect the call center.
type Callback struct {
	Phone string     `json:"phone"`
	At    *time.Time `json:"at,omitempty"` // when to call; nil for now
	Note  string     `json:"note,omitempty"`
}

// CallbackResult is the reply to a callback request: Calltouch accepted it.
type CallbackResult struct {
	Phone   string     `json:"phone"`   // E.164
	Display string     `json:"display"` // national format
	At      *time.Time `json:"at,omitempty"`
}

// OperatorStatus is the data of operator.status.set: a supervisor sets an
// operator's status, through the same path as the operator would.
type OperatorStatus struct {
	OperatorID string `json:"operatorId"`
	Status     Status `json:"status"`
}

// QueueSnapshot is the whole board: the reply to queue.subscribe.
type QueueSnapshot struct {
	Version  uint64    `json:"version"` // the next delta is Version+1
	At       time.Time `json:"at"`
	Day      string    `json:"day"`      // the counters' day, 2006-01-02 in TimeZone
	TimeZone string    `json:"timeZone"` // IANA name, e.g. Europe/Moscow
	// ServiceLevelSeconds is the threshold of the service level: the share
	// of incoming calls answered within it.
	ServiceLevelSeconds int             `json:"serviceLevelSeconds"`
	Operators           []QueueOperator `json:"operators"`
	Waiting             []WaitingCall   `json:"waiting"`
	Totals              QueueCounters   `json:"totals"`
	History             []QueueSample   `json:"history"` // oldest first, the last hours
}

// QueueOperator is one operator on the board.
type QueueOperator struct {
	ID        string        `json:"id"`
	Name      string        `json:"name"`
	Code      string        `json:"code"`
	Role      Role          `json:"role"`
	Status    Status        `json:"status"` // offline when no agent is connected
	Since     time.Time     `json:"since"`  // of Status
	Connected bool          `json:"connected"`
	Call      *QueueCall    `json:"call,omitempty"` // the call they are on
	Counters  QueueCounters `json:"counters"`       // today's
}

// QueueCall is the call an operator is on.
type QueueCall struct {
	ID           string    `json:"id"`
	Direction    string    `json:"direction"`
	Phone        string    `json:"phone"`
	PhoneDisplay string    `json:"phoneDisplay"`
	State        CallState `json:"state"` // ringing (an outgoing call dialing) or talking
	Since        time.Time `json:"since"` // answered, or started while ringing
}

// WaitingCall is an incoming call ringing that nobody has answered yet.
type WaitingCall struct {
	ID           string    `json:"id"`
	Phone        string    `json:"phone"`
	PhoneDisplay string    `json:"phoneDisplay"`
	Line         string    `json:"line,omitempty"`
	LineDisplay  string    `json:"lineDisplay,omitempty"`
	Site         string    `json:"site,omitempty"`
	Since        time.Time `json:"since"`             // when it started ringing
	Ringing      []string  `json:"ringing,omitempty"` // codes of the operators it rings
}

// QueueCounters are today's counts, per operator or in total.
type QueueCounters struct {
	Incoming         int   `json:"incoming"`
	Answered         int   `json:"answered"`
	Missed           int   `json:"missed"`
	Outgoing         int   `json:"outgoing"`
	AnsweredInTime   int   `json:"answeredInTime"` // answered within the service-level threshold
	WaitTotalSeconds int64 `json:"waitTotalSeconds"`
	WaitMaxSeconds   int64 `json:"waitMaxSeconds"`
	TalkTotalSeconds int64 `json:"talkTotalSeconds"`
	TalkedCalls      int   `json:"talkedCalls"` // answered calls that have ended (their talk time is known)
}

// AvgWait is the average wait of answered and missed incoming calls.
func (c QueueCounters) AvgWait() time.Duration {
	n := c.Answered + c.Missed
	if n == 0 {
		return 0
	}
	return time.Duration(c.WaitTotalSeconds) * time.Second / time.Duration(n)
}

// AvgTalk is the average talk time of ended calls.
func (c QueueCounters) AvgTalk() time.Duration {
	if c.TalkedCalls == 0 {
		return 0
	}
	return time.Duration(c.TalkTotalSeconds) * time.Second / time.Duration(c.TalkedCalls)
}

// ServiceLevel is the share (0–1) of incoming calls, answered or missed,
// that were answered within the threshold; 1 when there were none.
func (c QueueCounters) ServiceLevel() float64 {
	n := c.Answered + c.Missed
	if n == 0 {
		return 1
	}
	return float64(c.AnsweredInTime) / float64(n)
}

// QueueSample is one point of the board's history chart.
type QueueSample struct {
	At           time.Time `json:"at"`
	Waiting      int       `json:"waiting"`      // calls waiting at At (the most in the minute)
	ServiceLevel float64   `json:"serviceLevel"` // today's, at At
}

// QueueDelta is what changed on the board since Version-1. A new day
// (Day differs) resets every counter: the delta then carries them all.
type QueueDelta struct {
	Version   uint64          `json:"version"`
	At        time.Time       `json:"at"`
	Day       string          `json:"day,omitempty"`
	Operators []QueueOperator `json:"operators,omitempty"` // changed, whole entries
	Removed   []string        `json:"removed,omitempty"`   // operator ids no longer on the board
	Waiting   []WaitingCall   `json:"waiting,omitempty"`   // new or changed waiting calls
	Gone      []string        `json:"gone,omitempty"`      // ids of calls no longer waiting
	Totals    *QueueCounters  `json:"totals,omitempty"`
	Sample    *QueueSample    `json:"sample,omitempty"` // a new history point
}

// Apply brings s up to date with d. It reports false, leaving s alone,
// when d does not follow s (a missed delta): subscribe again.
func (s *QueueSnapshot) Apply(d QueueDelta) bool {
	if d.Version != s.Version+1 {
		return false
	}
	s.Version, s.At = d.Version, d.At
	if d.Day != "" {
		s.Day = d.Day
	}
	opID := func(o QueueOperator) string { return o.ID }
	callID := func(w WaitingCall) string { return w.ID }
	s.Operators = remove(upsert(s.Operators, d.Operators, opID), d.Removed, opID)
	s.Waiting = remove(upsert(s.Waiting, d.Waiting, callID), d.Gone, callID)
	if d.Totals != nil {
		s.Totals = *d.Totals
	}
	if d.Sample != nil {
		s.History = append(s.History, *d.Sample)
		if len(s.History) > MaxQueueHistory {
			s.History = s.History[len(s.History)-MaxQueueHistory:]
		}
	}
	return true
}

// MaxQueueHistory bounds QueueSnapshot.History: one sample a minute, 8 hours.
const MaxQueueHistory = 8 * 60

// upsert replaces the entries of list with the same id as one of news and
// appends the others, in order.
func upsert[T any](list, news []T, id func(T) string) []T {
	for _, n := range news {
		found := false
		for i := range list {
			if id(list[i]) == id(n) {
				list[i], found = n, true
				break
			}
		}
		if !found {
			list = append(list, n)
		}
	}
	return list
}

// remove drops the entries of list whose id is in ids.
func remove[T any](list []T, ids []string, id func(T) string) []T {
	for _, gone := range ids {
		for i := range list {
			if id(list[i]) == gone {
				list = append(list[:i], list[i+1:]...)
				break
			}
		}
	}
	return list
}
