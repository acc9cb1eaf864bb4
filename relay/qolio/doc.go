// Package qolio sends chat transcripts to Qolio (formerly DealApp), a
// quality-assurance platform, through its "text communications" integration:
//
//	POST https://{DEALAPP_API_URL}/api/v1/integrations/{INTEGRATION_ID}/text
//	Content-Type: application/json
//	Authorization: <the integration's token, as is — no "Bearer">
//
// Qolio gives the customer both the full URL and the token when the
// integration is created; [Client] takes them as they are.
//
// The body is one [Communication]. communication_id identifies it: sending
// the same id again REPLACES the communication (every value is rewritten
// from the new body; parts are added or updated, not removed). That makes a
// retry safe, so pult requires communication_id (Qolio itself requires only
// operator_id) and a communication_part_id on every part.
//
// # Errors
//
// [Client.Send] validates before it sends anything. Its errors are:
//
//   - *[ValidationError]: the communication can never be accepted (a field is
//     missing or not one of the allowed values); nothing was sent.
//   - *[APIError]: Qolio answered with a status other than 2xx. Its
//     Message is Qolio's own text when the answer had one.
//   - anything else: the request did not complete (network, timeout,
//     cancelled context; errors.Is works for context errors).
//
// Every typed error is a partner.Error (Temporary, RetryDelay,
// PartnerMessage), so a caller such as an outbox can act without importing
// this package's types: Temporary() true means retrying later may succeed
// (partner.TemporaryStatus), and RetryDelay() is how long Qolio asked to wait
// (Retry-After in seconds or as an HTTP date, capped at an hour; 0 when not
// given). Temporary() false means retrying the same request cannot succeed:
// mark it permanent. Errors without these methods are transport failures and
// are worth retrying.
//
// Qolio's success and error bodies are not documented in the integration's
// page; the client ignores a successful body and reads an error's message
// tolerantly ("message", "error", "errors" as a list, JSON:API objects or a
// field map, or plain text).
package qolio
