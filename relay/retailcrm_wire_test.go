package relay_test

// How retailCRM's official API clients lay their requests out on the wire and
// how each of them reads an answer. retailcrm_clients_test.go replays them
// against the relay. Nothing here is copied from the clients; every function
// names the client source it imitates (mirrors under /work/.mirror).
//
//   php5   retailcrm/api-client-php v5.11.6, lib/RetailCrm/Http/Client.php
//          (libcurl; POST fields given to curl as a PHP array, so multipart)
//   php6   retailcrm/api-client-php HEAD, src/ (PSR-18 client, urlencoded,
//          header X-Api-Key; Guzzle 7 over curl assumed for the byte layout)
//   python retailcrm/api-client-python HEAD, retailcrm/versions/base.py
//          (requests 2.x; header X-API-KEY; data= dict, so urlencoded)
//   go     retailcrm/api-client-go v2 HEAD, client.go GetRequest/PostRequest
//          (net/http; header X-API-KEY; url.Values.Encode)

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// field is one form field or query parameter, in the order the client sends
// them.
type field struct{ name, value string }

func fields(kv ...string) []field {
	out := make([]field, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, field{kv[i], kv[i+1]})
	}
	return out
}

// escapeForm percent-encodes s for a form or query: space is "+", bytes in
// safe (and ASCII letters and digits) stay as they are, every other byte is
// %XX with upper-case hex.
func escapeForm(s, safe string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ':
			b.WriteByte('+')
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', strings.IndexByte(safe, c) >= 0:
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

func joinForm(fs []field, safe string) string {
	parts := make([]string, len(fs))
	for i, f := range fs {
		parts[i] = escapeForm(f.name, safe) + "=" + escapeForm(f.value, safe)
	}
	return strings.Join(parts, "&")
}

// phpBuildQuery is PHP's http_build_query() of a flat array of strings:
// urlencode() (RFC 1738: "~" is encoded, "-_." are not) joined by "&".
// PHP turns true/false into "1"/"0" before this; callers pass those strings.
func phpBuildQuery(fs []field) string { return joinForm(fs, "-_.") }

// pythonURLEncode is urllib.parse.urlencode() (quote_plus; "-_.~" safe), as
// requests uses for data= and multidimensional_urlencode for the query.
// Python's True renders as "True".
func pythonURLEncode(fs []field) string { return joinForm(fs, "-_.~") }

// rawRequest is a request exactly as a client's HTTP stack writes it.
type rawRequest struct {
	client string
	head   string // request line and headers, ending in a blank line
	body   []byte
	expect bool // head has Expect: 100-continue: the body waits for 100 or 1 s
}

func (r rawRequest) bytes() []byte { return append([]byte(r.head), r.body...) }

// curlBoundary is a boundary as libcurl's mime code makes one (7.56 and
// later): 24 dashes and 16 random hex digits.
func curlBoundary() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return strings.Repeat("-", 24) + hex.EncodeToString(b)
}

// php5Request lays a request out as api-client-php v5 does
// (lib/RetailCrm/Http/Client.php, makeRawRequest, v5.11.6):
//   - params are array_merge(['apiKey' => $key], $parameters): apiKey first;
//   - GET: "?" + http_build_query($parameters) appended to the URL;
//   - POST: CURLOPT_POSTFIELDS = the PHP array, which libcurl sends as
//     multipart/form-data, one part per field, no per-part Content-Type;
//   - PHP's curl sets no User-Agent; libcurl adds Host and "Accept: */*".
//
// oldCurl is a libcurl from before the Expect threshold became 1 MiB: it
// asks "Expect: 100-continue" for any POST body over 1024 bytes (libcurl
// 7.88 only over 1 MiB, which no telephony body reaches).
func php5Request(host, method, path string, params []field, boundary string, oldCurl bool) rawRequest {
	if method == http.MethodGet {
		target := path
		if len(params) > 0 {
			target += "?" + phpBuildQuery(params)
		}
		return rawRequest{client: "php5", head: "GET " + target + " HTTP/1.1\r\nHost: " + host + "\r\nAccept: */*\r\n\r\n"}
	}
	var body bytes.Buffer
	for _, f := range params {
		fmt.Fprintf(&body, "--%s\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n%s\r\n", boundary, f.name, f.value)
	}
	fmt.Fprintf(&body, "--%s--\r\n", boundary)
	head := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: %s\r\nAccept: */*\r\nContent-Length: %d\r\nContent-Type: multipart/form-data; boundary=%s\r\n",
		path, host, body.Len(), boundary)
	expect := body.Len() > 1<<20 || oldCurl && body.Len() > 1024
	if expect {
		head += "Expect: 100-continue\r\n"
	}
	return rawRequest{client: "php5", head: head + "\r\n", body: body.Bytes(), expect: expect}
}

// php6Request lays a request out as api-client-php v6 builds it
// (src/Handler/Request/PsrRequestHandler.php: User-Agent, Accept, and
// Content-Type for POST; RequestDataHandler.php: the http_build_query of the
// request model as the query (GET) or the body (POST);
// HeaderAuthenticatorHandler.php: X-Api-Key last) and Guzzle 7 sends it:
// Host first, Content-Length appended by Guzzle, no Expect.
func php6Request(host, method, path, form, key string) rawRequest {
	if method == http.MethodGet {
		target := path
		if form != "" {
			target += "?" + form
		}
		return rawRequest{client: "php6", head: "GET " + target + " HTTP/1.1\r\nHost: " + host +
			"\r\nUser-Agent: RetailCRM PHP API Client / v6.x\r\nAccept: application/json\r\nX-Api-Key: " + key + "\r\n\r\n"}
	}
	head := "POST " + path + " HTTP/1.1\r\nHost: " + host +
		"\r\nUser-Agent: RetailCRM PHP API Client / v6.x\r\nAccept: application/json\r\nContent-Type: application/x-www-form-urlencoded\r\nX-Api-Key: " + key +
		fmt.Sprintf("\r\nContent-Length: %d\r\n\r\n", len(form))
	return rawRequest{client: "php6", head: head, body: []byte(form)}
}

// pythonRequestsVersion is the requests release whose bytes were captured in
// testdata/retailcrm-clients/python-requests-*.http.
const pythonRequestsVersion = "2.34.2"

// pythonRequest lays a request out as api-client-python does
// (retailcrm/versions/base.py, Base.get / Base.post): requests' default
// headers, then X-API-KEY; for POST, data= the parameters dict, urlencoded,
// with Content-Length then Content-Type (no Content-Type and a zero length
// when the dict is empty).
func pythonRequest(host, method, path string, params []field, key string) rawRequest {
	head := func(target string) string {
		return method + " " + target + " HTTP/1.1\r\nHost: " + host + "\r\nUser-Agent: python-requests/" + pythonRequestsVersion +
			"\r\nAccept-Encoding: gzip, deflate\r\nAccept: */*\r\nConnection: keep-alive\r\nX-API-KEY: " + key + "\r\n"
	}
	if method == http.MethodGet {
		target := path
		if len(params) > 0 {
			target += "?" + pythonURLEncode(params)
		}
		return rawRequest{client: "python", head: head(target) + "\r\n"}
	}
	if len(params) == 0 {
		return rawRequest{client: "python", head: head(path) + "Content-Length: 0\r\n\r\n"}
	}
	body := pythonURLEncode(params)
	return rawRequest{client: "python", head: head(path) + fmt.Sprintf("Content-Length: %d\r\nContent-Type: application/x-www-form-urlencoded\r\n\r\n", len(body)), body: []byte(body)}
}

// goRequest builds the request as api-client-go v2 does (client.go,
// GetRequest: X-API-KEY; PostRequest: url.Values.Encode() body, Content-Type
// application/x-www-form-urlencoded, X-API-KEY); net/http itself sends it, as
// the client does.
func goRequest(base, method, path string, q url.Values, key string) *http.Request {
	var req *http.Request
	if method == http.MethodGet {
		target := base + path
		if len(q) > 0 {
			target += "?" + q.Encode()
		}
		req, _ = http.NewRequest(http.MethodGet, target, nil)
	} else {
		req, _ = http.NewRequest(http.MethodPost, base+path, strings.NewReader(q.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.Header.Set("X-API-KEY", key)
	return req
}

// answer is what came back on the wire.
type answer struct {
	status      int
	contentType string
	body        []byte
	got100      bool // the server sent 100 Continue to an Expect request
	sent        []byte
}

// sendRaw writes req on a fresh TCP connection and reads the answer, the way
// libcurl handles Expect: it waits up to a second for the interim answer; a
// final answer instead means the body is never sent.
func sendRaw(addr string, req rawRequest) (answer, error) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return answer{}, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(15 * time.Second))
	br := bufio.NewReader(conn)
	a := answer{sent: req.bytes()}
	var resp *http.Response
	if req.expect {
		if _, err := io.WriteString(conn, req.head); err != nil {
			return a, err
		}
		_ = conn.SetReadDeadline(time.Now().Add(time.Second))
		_, perr := br.Peek(1)
		_ = conn.SetReadDeadline(time.Now().Add(15 * time.Second))
		var ne net.Error
		switch {
		case perr == nil:
			resp, err = http.ReadResponse(br, nil)
			if err != nil {
				return a, err
			}
			if resp.StatusCode == http.StatusContinue {
				a.got100 = true
				resp = nil
				if _, err := conn.Write(req.body); err != nil {
					return a, err
				}
			}
		case errors.As(perr, &ne) && ne.Timeout():
			if _, err := conn.Write(req.body); err != nil {
				return a, err
			}
		default:
			return a, perr
		}
	} else if _, werr := conn.Write(req.bytes()); werr != nil {
		// The server may answer and close before it has read a body it
		// refuses (too large): read that answer, as a client would.
		if resp, err = http.ReadResponse(br, nil); err != nil {
			return a, werr
		}
	}
	for resp == nil || resp.StatusCode/100 == 1 {
		if resp, err = http.ReadResponse(br, nil); err != nil {
			return a, err
		}
	}
	defer resp.Body.Close()
	a.status, a.contentType = resp.StatusCode, resp.Header.Get("Content-Type")
	a.body, err = io.ReadAll(resp.Body)
	return a, err
}

// sendGo sends req with a net/http client of its own, as api-client-go does.
func sendGo(req *http.Request) (answer, error) {
	sent, err := httputil.DumpRequestOut(req, true) // for failure messages
	if err != nil {
		return answer{}, err
	}
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 15 * time.Second}).Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	a := answer{status: resp.StatusCode, contentType: resp.Header.Get("Content-Type"), sent: sent}
	a.body, err = io.ReadAll(resp.Body)
	return a, err
}

// verdict is what a client makes of an answer.
type verdict struct {
	// OK: the call succeeded as the client's user sees it (php5, python:
	// isSuccessful / is_successful(); php6, go: no exception / error).
	OK bool
	// Class: php6 the exception class thrown; go the sentinel the error
	// wraps (errors.Is), or "json: …" when the client's json.Unmarshal
	// fails; php5 and python "refused" for a decoded unsuccessful answer, or
	// the exception raised. "" when OK.
	Class    string
	ErrorMsg string
	Errors   map[string]string // as the client exposes them
	Body     map[string]any    // the decoded answer (numbers as json.Number)
	Problem  string            // why a decoded success is unusable (wrong field type)
}

func decodeJSONObject(b []byte) (map[string]any, error) {
	if !json.Valid(b) {
		return nil, fmt.Errorf("not JSON: %.60q", b)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("JSON %T, not an object", v)
	}
	return m, nil
}

// stringMap is v as a map of strings, if it is one.
func stringMap(v any) (map[string]string, bool) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, false
	}
	out := make(map[string]string, len(m))
	for k, x := range m {
		s, ok := x.(string)
		if !ok {
			return nil, false
		}
		out[k] = s
	}
	return out, true
}

// php5Verdict reads an answer as api-client-php v5 does: Client::checkResponse
// (503 → LimitException; 404 mentioning "Account does not exist", or 405
// text/html to a POST → NotFoundException), then
// ApiResponse::asJsonResponse (json_decode of a non-empty body, else
// InvalidJsonException) and isSuccessful() = status < 400.
func php5Verdict(method string, a answer) verdict {
	switch {
	case a.status == 503:
		return verdict{Class: "LimitException"}
	case a.status == 404 && strings.Contains(strings.ToLower(string(a.body)), "account does not exist"),
		method != http.MethodGet && a.status == 405 && strings.Contains(strings.ToLower(a.contentType), "text/html"):
		return verdict{Class: "NotFoundException"}
	case len(a.body) == 0:
		// No exception, but $response['success'] throws.
		return verdict{Class: "InvalidArgumentException (empty body: Property \"success\" not found)"}
	}
	m, err := decodeJSONObject(a.body)
	if err != nil {
		return verdict{Class: "InvalidJsonException (" + err.Error() + ")"}
	}
	v := verdict{Body: m, OK: a.status < 400}
	if !v.OK {
		v.Class = "refused"
		v.ErrorMsg, _ = m["errorMsg"].(string)
		v.Errors, _ = stringMap(m["errors"])
	}
	return v
}

// pythonVerdict reads an answer as api-client-python does: Response(status,
// response.json()) — the body must be JSON whatever the status;
// is_successful() = status < 400; get_error_msg() = body['errorMsg'];
// get_errors() = body.get('errors', {}).
func pythonVerdict(a answer) verdict {
	m, err := decodeJSONObject(a.body)
	if err != nil {
		return verdict{Class: "requests.exceptions.JSONDecodeError (" + err.Error() + ")"}
	}
	v := verdict{Body: m, OK: a.status < 400}
	if !v.OK {
		v.Class = "refused"
		msg, ok := m["errorMsg"].(string)
		if !ok {
			v.Class = "KeyError: 'errorMsg'"
		}
		v.ErrorMsg = msg
		v.Errors, _ = stringMap(m["errors"])
	}
	return v
}

// php6MissingParameter is the pattern of ApiExceptionFactory::getErrorClassByMessage.
var php6MissingParameter = regexp.MustCompile(`^Parameter '[\w\]\[_\-]+' is missing$`)

// php6Verdict reads an answer as api-client-php v6 does:
// AccountNotFoundHandler (405 text/html to a non-GET), ErrorResponseHandler
// (status >= 400: the body deserialized as ErrorResponse — errorMsg string,
// errors "array" — and the exception class chosen by ApiExceptionFactory from
// the exact errorMsg), else UnmarshalResponseHandler into the response
// model, whose declared types check checks.
func php6Verdict(method string, a answer, check func(map[string]any) string) verdict {
	if a.status == 405 && strings.Contains(strings.ToLower(a.contentType), "text/html") && method != http.MethodGet {
		return verdict{Class: "AccountDoesNotExistException"}
	}
	m, err := decodeJSONObject(a.body)
	if err != nil {
		return verdict{Class: "HandlerException (Cannot deserialize body: " + err.Error() + ")"}
	}
	if a.status >= 400 {
		msg, isStr := m["errorMsg"].(string)
		if m["errorMsg"] != nil && !isStr {
			return verdict{Class: "HandlerException (errorMsg is not a string)"}
		}
		v := verdict{Body: m, ErrorMsg: msg}
		if e, ok := m["errors"]; ok && e != nil {
			switch e.(type) {
			case map[string]any, []any:
			default:
				return verdict{Class: "HandlerException (errors is not an array)"}
			}
			v.Errors, _ = stringMap(e)
		}
		switch {
		case msg == `"apiKey" is missing.`:
			v.Class = "MissingCredentialsException"
		case msg == `Wrong "apiKey" value.`:
			v.Class = "InvalidCredentialsException"
		case msg == "Access denied.":
			v.Class = "AccessDeniedException"
		case msg == "Account does not exist.":
			v.Class = "AccountDoesNotExistException"
		case msg == "Errors in the entity format", msg == "Validation error":
			v.Class = "ValidationException"
		case msg == "Not found":
			v.Class = "NotFoundException"
		case php6MissingParameter.MatchString(msg):
			v.Class = "MissingParameterException"
		default:
			v.Class = "ApiErrorException"
		}
		return v
	}
	v := verdict{Body: m, OK: true}
	if p := checkTypes(m, map[string]string{"success": "bool"}); p != "" {
		v.OK, v.Class = false, "HandlerException ("+p+")"
	} else if check != nil {
		if p := check(m); p != "" {
			v.OK, v.Class = false, "HandlerException ("+p+")"
		}
	}
	return v
}

// goVerdict reads an answer as api-client-go v2 does: GetRequest/PostRequest
// turn a status >= 500 (but 503) into a generic error without reading the
// body, and a 4xx into CreateAPIError(body) (error.go: a body starting with
// "<" is ErrAccountDoesNotExist; else json.Unmarshal into {errorMsg string,
// errors map[string]string}, the sentinel chosen by the exact errorMsg);
// a success body is json.Unmarshal'ed into into (strict Go types).
func goVerdict(a answer, into any) verdict {
	switch {
	case a.status >= 500 && a.status != 503:
		return verdict{Class: "ErrGeneric", ErrorMsg: fmt.Sprintf("HTTP request error. Status code: %d.", a.status)}
	case a.status >= 400 && a.status < 500:
		if len(a.body) > 0 && a.body[0] == '<' {
			return verdict{Class: "ErrAccountDoesNotExist"}
		}
		var e struct {
			ErrorMsg   string            `json:"errorMsg,omitempty"`
			ErrorsList map[string]string `json:"errors,omitempty"`
		}
		if err := json.Unmarshal(a.body, &e); err != nil {
			return verdict{Class: "json: " + err.Error()}
		}
		v := verdict{ErrorMsg: e.ErrorMsg, Errors: e.ErrorsList}
		switch e.ErrorMsg {
		case `"apiKey" is missing.`:
			v.Class = "ErrMissingCredentials"
		case `Wrong "apiKey" value.`:
			v.Class = "ErrInvalidCredentials"
		case "Access denied.":
			v.Class = "ErrAccessDenied"
		case "Account does not exist.":
			v.Class = "ErrAccountDoesNotExist"
		case "Errors in the entity format", "Validation error":
			v.Class = "ErrValidation"
		default:
			if m := regexp.MustCompile(`^Parameter \'([\w\]\[\_\-]+)\' is missing$`).FindStringSubmatch(e.ErrorMsg); m != nil {
				v.Class, v.Errors = "ErrMissingParameter", map[string]string{"Name": m[1]}
			} else {
				v.Class = "ErrGeneric"
			}
		}
		return v
	}
	// 2xx, 3xx, and 503 (which only a rate limiter, when configured, retries):
	// no error; the body goes to the caller's json.Unmarshal.
	if into != nil {
		if err := json.Unmarshal(a.body, into); err != nil {
			return verdict{Class: "json: " + err.Error()}
		}
	}
	m, _ := decodeJSONObject(a.body)
	return verdict{OK: true, Body: m}
}

// checkTypes reports the first field of m whose JSON type is not the one
// given: "bool", "string", "int", "number", "array", "array<string>",
// "array<int>", "object", "array|object" (PHP's untyped "array"),
// "string|number" (a PHP "string" the serializer takes loosely). A name
// ending in "?" may be absent or null.
func checkTypes(m map[string]any, types map[string]string) string {
	for name, typ := range types {
		optional := strings.HasSuffix(name, "?")
		name = strings.TrimSuffix(name, "?")
		v, present := m[name]
		if !present || v == nil {
			if optional {
				continue
			}
			return fmt.Sprintf("%s is missing", name)
		}
		if !jsonIs(v, typ) {
			return fmt.Sprintf("%s is %s, not %s", name, jsonKind(v), typ)
		}
	}
	return ""
}

func jsonIs(v any, typ string) bool {
	switch typ {
	case "bool":
		_, ok := v.(bool)
		return ok
	case "string":
		_, ok := v.(string)
		return ok
	case "int":
		n, ok := v.(json.Number)
		if !ok {
			return false
		}
		_, err := n.Int64()
		return err == nil
	case "number":
		_, ok := v.(json.Number)
		return ok
	case "string|number":
		return jsonIs(v, "string") || jsonIs(v, "number")
	case "object":
		_, ok := v.(map[string]any)
		return ok
	case "array|object":
		return jsonIs(v, "array") || jsonIs(v, "object")
	case "array":
		_, ok := v.([]any)
		return ok
	case "array<string>", "array<int>":
		arr, ok := v.([]any)
		if !ok {
			return false
		}
		for _, x := range arr {
			if !jsonIs(x, strings.TrimSuffix(strings.TrimPrefix(typ, "array<"), ">")) {
				return false
			}
		}
		return true
	}
	panic("checkTypes: unknown type " + typ)
}

func jsonKind(v any) string {
	switch v.(type) {
	case bool:
		return "a boolean"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

// jsonStyle is how one client's JSON encoder writes text.
type jsonStyle struct {
	comma, colon string
	escSlash     bool // "/" as "\/"
	ascii        bool // non-ASCII as \uXXXX (UTF-16, lower-case hex)
	escHTML      bool // < > & as \u003c \u003e \u0026
}

var (
	// PHP's json_encode() with no flags (api-client-php v5 Telephony.php;
	// v6's serializer hands its array to json_encode too).
	phpJSON = jsonStyle{comma: ",", colon: ":", escSlash: true, ascii: true}
	// Python's json.dumps() with its defaults (api-client-python v5.py).
	pyJSON = jsonStyle{comma: ", ", colon: ": ", ascii: true}
	// Go's encoding/json Marshal (an integrator of api-client-go).
	goJSON = jsonStyle{comma: ",", colon: ":", escHTML: true}
)

// kv is one member of an ordered JSON object.
type kv struct {
	k string
	v any
}

// obj is a JSON object whose members keep their order.
type obj []kv

// null is JSON null, for PHP's null members.
type null struct{}

func (s jsonStyle) encode(v any) string {
	var b strings.Builder
	s.write(&b, v)
	return b.String()
}

// writeList writes a JSON array of xs, each element as write writes it.
func writeList[T any](s jsonStyle, b *strings.Builder, xs []T) {
	b.WriteByte('[')
	for i, e := range xs {
		if i > 0 {
			b.WriteString(s.comma)
		}
		s.write(b, e)
	}
	b.WriteByte(']')
}

func (s jsonStyle) write(b *strings.Builder, v any) {
	switch x := v.(type) {
	case null:
		b.WriteString("null")
	case bool:
		fmt.Fprint(b, x)
	case int:
		fmt.Fprint(b, x)
	case string:
		s.str(b, x)
	case []string:
		writeList(s, b, x)
	case []int:
		writeList(s, b, x)
	case []obj:
		writeList(s, b, x)
	case obj:
		b.WriteByte('{')
		for i, m := range x {
			if i > 0 {
				b.WriteString(s.comma)
			}
			s.str(b, m.k)
			b.WriteString(s.colon)
			s.write(b, m.v)
		}
		b.WriteByte('}')
	default:
		panic(fmt.Sprintf("jsonStyle: %T", v))
	}
}

func (s jsonStyle) str(b *strings.Builder, v string) {
	b.WriteByte('"')
	for _, r := range v {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '/' && s.escSlash:
			b.WriteString(`\/`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20, s.escHTML && (r == '<' || r == '>' || r == '&'):
			fmt.Fprintf(b, `\u%04x`, r)
		case r > 0x7e && s.ascii:
			if r >= 0x10000 {
				r -= 0x10000
				fmt.Fprintf(b, `\u%04x\u%04x`, 0xd800+(r>>10), 0xdc00+(r&0x3ff))
			} else {
				fmt.Fprintf(b, `\u%04x`, r)
			}
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
}
