// Package retailcrm holds every wire detail of retailCRM's telephony
// integration, in both directions the relay plays it:
//
//   - as the CRM's counterpart for PBXes: it parses what a PBX sends to
//     retailCRM's own endpoints (POST /api/v5/telephony/call/event,
//     POST /api/v5/telephony/calls/upload) and answers in retailCRM's shape
//     ([ParseCallEvent], [ParseCallsUpload], [WriteSuccess], [WriteError]);
//   - as a telephony toward retailCRM: it serves and sends the two GET queries
//     retailCRM addresses to a telephony (makeCallUrl and changeUserStatusUrl,
//     see [MakeCall] and [ChangeStatus]) and calls retailCRM's API with
//     [Client].
//
// Wire rules (retailCRM API v5): the API key travels in the X-API-KEY header
// (an apiKey query or form parameter also works); POST bodies are
// application/x-www-form-urlencoded and an object is one form field whose
// value is JSON (event=<json>, calls=<json>); every answer is JSON with
// "success" and, on failure, "errorMsg" and "errors".
//
// [Client] makes the calls a telephony makes to retailCRM: it registers the
// telephony ([Client.EditIntegrationModule], [Client.IntegrationModule]),
// sends call events ([Client.SendCallEvent]) and call history
// ([Client.UploadCalls]), looks up the responsible manager
// ([Client.Manager]) and sets users' statuses ([Client.SetUserStatus]).
//
// Everything read from the network is bounded and validated; failures are
// *[ValidationError] (input we parse, or refuse to send) or *[APIError]
// (answers from retailCRM); anything else is a transport failure or an
// answer that is not retailCRM's JSON ([ErrBadResponse]). Both typed errors
// are partner.Errors (Temporary, RetryDelay, PartnerMessage): retryable
// statuses are partner.TemporaryStatus's, and RetryDelay is the Retry-After
// retailCRM sent (APIError's RetryAfter field).
package retailcrm

// Paths of retailCRM's API used by the telephony integration.
const (
	APIPrefix          = "/api/v5"
	PathCallEvent      = APIPrefix + "/telephony/call/event"
	PathCallsUpload    = APIPrefix + "/telephony/calls/upload"
	PathManager        = APIPrefix + "/telephony/manager"
	PathCredentials    = "/api/credentials"  // what the key may do (unversioned)
	PathVersions       = "/api/api-versions" // the API versions served (unversioned)
	HeaderAPIKey       = "X-API-KEY"
	ParamAPIKey        = "apiKey"
	ContentTypeJSON    = "application/json; charset=utf-8"
	contentTypeForm    = "application/x-www-form-urlencoded"
	contentTypeFormMul = "multipart/form-data"
)

// Call event types (event.type).
const (
	TypeIn     = "in"
	TypeOut    = "out"
	TypeHangup = "hangup"
	// TypeAnswer is pult's extension, not retailCRM's: the call was answered
	// by the named codes/userIds. retailCRM itself learns who answered only
	// from the hangup; a PBX that can tell earlier may send it to a pult
	// relay so cards show "talking" live. The relay never forwards it to
	// retailCRM.
	TypeAnswer = "answer"
)

// Hangup statuses (event.hangupStatus), retailCRM's spelling.
const (
	HangupAnswered = "answered"
	HangupBusy     = "busy"
	HangupCancel   = "cancel"
	HangupFailed   = "failed"
	HangupNoAnswer = "no answered"
)

// Call results in the call history (calls[].result), retailCRM's spelling.
const (
	ResultAnswered   = "answered"
	ResultBusy       = "busy"
	ResultFailed     = "failed"
	ResultNoAnswer   = "no answer"
	ResultNotAllowed = "not allowed"
	ResultUnknown    = "unknown"
)

// User statuses retailCRM sends to changeUserStatusUrl.
const (
	StatusFree   = "free"
	StatusBusy   = "busy"
	StatusDinner = "dinner"
	StatusBreak  = "break"
)

// Limits. retailCRM's own limits where it has them (50 calls per upload),
// generous but finite ones elsewhere.
const (
	DefaultMaxBody     = 1 << 20 // request bodies, when the caller passes 0
	MaxResponseBody    = 1 << 20 // answers read by Client
	MaxCodes           = 100     // codes (and userIds) in one call event
	MaxUploadCalls     = 50      // calls in one calls/upload request
	MaxCodeLen         = 32
	MaxPhoneLen        = 64
	MaxIDLen           = 64 // userId, clientId-like identifiers we do not own
	MaxClientIDLen     = 255
	MaxExternalIDLen   = 255
	MaxSiteLen         = 255
	MaxURLLen          = 2048
	MaxDuration        = 7 * 24 * 3600 // seconds; a longer call is garbage
	MaxWebAnalyticsLen = 64 << 10
)
