// Package calltouch asks Calltouch to call a client back and connect them
// to the call center, through Calltouch's server callback API:
//
//	POST https://api.calltouch.ru/widget-service/v1/api/widget-request/user-form/create
//	Access-Token: <the project's API token>
//	Content-Type: application/json
//
//	{"routeKey": "…", "phone": "7xxxxxxxxxx", …}
//
// routeKey is the key of a "site form" widget (Форма на сайте) that must be
// enabled in the Calltouch project, on an account with callback minutes and
// the callback service switched on.
//
// [Request.Validate] applies Calltouch's documented rules before anything is
// sent: the phone is 11 digits 7xxxxxxxxxx, a Russian mobile or landline
// number but not 8-800 or 8-804 (7800…/7804… in this form); at most 5 fields
// with a name and a value of 1–255 characters each; at most 10 tags of at
// most 100 characters; a route key of 1–255 characters. scheduleTime is sent
// as "yyyy-mm-dd hh:mm:ss" in [Client.Location], Moscow time unless set.
//
// # Errors
//
// [Client.Create]'s errors are:
//
//   - *[ValidationError]: the request breaks a documented rule; nothing was
//     sent.
//   - *[APIError]: Calltouch answered with an error: a documented code
//     (1, 10001–10007; see the Code constants), a list of refused fields, or
//     only an HTTP status. OperatorMessage says in plain English what is
//     wrong and what to do; Message keeps Calltouch's own text.
//   - anything else: the request did not complete (network, timeout,
//     cancelled context; errors.Is works for context errors), or the answer
//     was not Calltouch's JSON (errors.Is(err, ErrBadResponse)).
//
// Every typed error is a partner.Error (Temporary, RetryDelay,
// PartnerMessage), so an outbox can act without importing this package's
// types: Temporary() true means retrying later may succeed — a status
// partner.TemporaryStatus retries (Calltouch allows 5 requests per second
// from one IP address), when no Calltouch error code says otherwise;
// RetryDelay() is how long Calltouch asked to wait (Retry-After in seconds or
// as an HTTP date, capped at an hour; 0 when not given). Every documented error code is permanent: the
// account, widget or session needs a person's attention (1, 10001–10004), or
// Calltouch already holds a recent request for this phone or session
// (10005–10007, see [APIError.AlreadyRequested]) — retrying would at best
// ring the client twice. Errors without these methods are worth retrying.
//
// Calltouch's callback API has no idempotency key: a retry after a timeout
// may create a second request unless Calltouch's own per-phone interval
// (10007) catches it.
//
// The seed documentation does not show Calltouch's answers; the client reads
// the shape Calltouch is observed to use — {"data":{"widgetRequestId":N}} on
// success, {"data":{"apiErrorData":{"errorCode":N,"errorMessage":"…"}}} and
// {"data":{"validationErrorData":{"violations":[{"propertyPath":"…",
// "message":"…"}]}}} on failure — and tolerates the same keys at the top
// level.
package calltouch
