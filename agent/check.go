package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/pult/pult/agent/wire"
)

// maxMeBody bounds what Check reads from the relay.
const maxMeBody = 64 << 10

// parseRelayURL accepts http, https, ws and wss URLs with a host and an
// optional path prefix; no credentials, query or fragment.
func parseRelayURL(raw string) (*url.URL, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return nil, errors.New("relay URL is empty")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("relay URL %q: %w", raw, err)
	}
	switch u.Scheme = strings.ToLower(u.Scheme); u.Scheme {
	case "http", "https", "ws", "wss":
	default:
		return nil, fmt.Errorf("relay URL %q: scheme must be http, https, ws or wss", raw)
	}
	if u.Host == "" || u.Hostname() == "" {
		return nil, fmt.Errorf("relay URL %q has no host", raw)
	}
	if u.User != nil {
		return nil, fmt.Errorf("relay URL %q must not contain credentials", u.Redacted())
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return nil, fmt.Errorf("relay URL %q must not have a query or fragment", raw)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u, nil
}

// MaxRelays bounds how many relay URLs one sign-in may list.
const MaxRelays = 16

// ParseRelayURL reports whether raw is an acceptable relay URL, or list of
// relay URLs separated by commas (see Config.RelayURL), and returns it
// normalised (lower-case scheme, no trailing slash, ", " between URLs
// becomes ","). It checks the syntax only: [CheckRelayURL] also refuses
// clear text to another machine.
func ParseRelayURL(raw string) (string, error) {
	us, err := relayURLs(raw, false, true)
	if err != nil {
		return "", err
	}
	return joinURLs(us), nil
}

// CheckRelayURL is ParseRelayURL plus the rule New and Check apply to each
// URL of the list: an http:// or ws:// URL is accepted only for this machine
// (IsLoopback) unless insecure is set; otherwise the error is a
// *CleartextError (errors.Is ErrCleartext) naming that URL.
func CheckRelayURL(raw string, insecure bool) (string, error) {
	us, err := relayURLs(raw, insecure, false)
	if err != nil {
		return "", err
	}
	return joinURLs(us), nil
}

// SplitRelayURL returns the URLs of a relay URL list (as ParseRelayURL
// accepts it), normalised, in the order given.
func SplitRelayURL(raw string) ([]string, error) {
	us, err := relayURLs(raw, false, true)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(us))
	for i, u := range us {
		out[i] = u.String()
	}
	return out, nil
}

func joinURLs(us []*url.URL) string {
	s := make([]string, len(us))
	for i, u := range us {
		s[i] = u.String()
	}
	return strings.Join(s, ",")
}

// relayURLs parses raw, one relay URL or up to MaxRelays separated by
// commas, and applies the clear-text rule to each unless syntaxOnly. Errors
// name the URL at fault; the same relay listed twice is refused.
func relayURLs(raw string, insecure, syntaxOnly bool) ([]*url.URL, error) {
	parts := strings.Split(raw, ",")
	if len(parts) > MaxRelays {
		return nil, fmt.Errorf("%d relay URLs: at most %d", len(parts), MaxRelays)
	}
	us := make([]*url.URL, 0, len(parts))
	seen := make(map[string]string, len(parts))
	for i, p := range parts {
		if len(parts) > 1 && strings.TrimSpace(p) == "" {
			return nil, fmt.Errorf("relay URL %d of %d is empty (two commas in a row, or one at an end?)", i+1, len(parts))
		}
		u, err := parseRelayURL(p)
		if err != nil {
			return nil, err
		}
		if !syntaxOnly {
			if err := checkCleartext(u, insecure); err != nil {
				return nil, err
			}
		}
		key := relayKey(u)
		if first, dup := seen[key]; dup {
			return nil, fmt.Errorf("relay URL %q is listed twice (as %q before)", u.String(), first)
		}
		seen[key] = u.String()
		us = append(us, u)
	}
	return us, nil
}

// relayKey is what makes two URLs the same relay: http and ws, https and wss
// go to the same place; host names are case-insensitive; a default port may
// be written or not.
func relayKey(u *url.URL) string {
	secure := u.Scheme == "https" || u.Scheme == "wss"
	port := u.Port()
	if port == "" {
		port = "80"
		if secure {
			port = "443"
		}
	}
	return fmt.Sprintf("%t|%s|%s|%s", secure, strings.ToLower(strings.TrimSuffix(u.Hostname(), ".")), port, u.Path)
}

// checkCleartext refuses a URL that would carry the token unencrypted to
// another machine, unless insecure.
func checkCleartext(u *url.URL, insecure bool) error {
	if insecure || u.Scheme == "https" || u.Scheme == "wss" || IsLoopback(u.Hostname()) {
		return nil
	}
	return &CleartextError{URL: u.Redacted(), Host: u.Hostname()}
}

// IsLoopback reports whether host (a URL's host name, without port or
// brackets) certainly names this machine: "localhost", an address in
// 127.0.0.0/8 or ::1 (IPv4-mapped too). Names are never resolved, and
// *.localhost names are not accepted: a resolver or a hosts file may send
// them elsewhere.
func IsLoopback(host string) bool {
	if strings.EqualFold(strings.TrimSuffix(host, "."), "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// refuseCleartextRedirect is an http.Client's CheckRedirect: a relay (or
// something in front of it) that redirects to plain http on another machine
// is not followed, as the Authorization header may go along (Go keeps it
// for the same host).
func refuseCleartextRedirect(insecure bool) func(*http.Request, []*http.Request) error {
	return func(req *http.Request, via []*http.Request) error {
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		return checkCleartext(req.URL, insecure)
	}
}

func withScheme(base *url.URL, plain, secure string) *url.URL {
	u := *base
	if u.Scheme == "https" || u.Scheme == "wss" {
		u.Scheme = secure
	} else {
		u.Scheme = plain
	}
	return &u
}

// wsURL is the websocket endpoint under base.
func wsURL(base *url.URL) string {
	u := withScheme(base, "ws", "wss")
	u.Path += wire.Path
	return u.String()
}

// Check is CheckConfig with only a relay URL and a token: https or wss, or
// http or ws to this machine.
func Check(ctx context.Context, relayURL, token string) (wire.Operator, error) {
	return CheckConfig(ctx, Config{RelayURL: relayURL, Token: token})
}

// CheckConfig asks the relay who cfg.Token belongs to (GET <base>/v1/me),
// for signing in. Of cfg it uses RelayURL, Token, Insecure and TLS.
//
// With several relay URLs it asks them all at once and succeeds if one
// knows the token and none is wrong: it waits a little for the others after
// the first answer, and a relay that does not answer is allowed (a node may
// be down). An address that is wrong is named in the error.
//
// Errors: *CleartextError (ErrCleartext) for a plain-text URL to another
// machine without Insecure, before anything is sent; *StopError for a token
// a relay refuses (unknown, revoked, protocol too old); ErrUnreachable when
// nothing answers; ErrNotRelay when what answers is not a pult relay (404,
// not JSON, …).
func CheckConfig(ctx context.Context, cfg Config) (wire.Operator, error) {
	bases, err := relayURLs(cfg.RelayURL, cfg.Insecure, false)
	if err != nil {
		return wire.Operator{}, err
	}
	if err := checkToken(cfg.Token); err != nil {
		return wire.Operator{}, err
	}
	if len(bases) == 1 {
		return checkOne(ctx, cfg, bases[0])
	}
	return checkAll(ctx, cfg, bases)
}

// checkGrace is how long checkAll waits for the other relays once one has
// answered.
const checkGrace = 2 * time.Second

// checkAll is CheckConfig for several relays.
func checkAll(ctx context.Context, cfg Config, bases []*url.URL) (wire.Operator, error) {
	type answer struct {
		i   int
		op  wire.Operator
		err error
	}
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	answers := make(chan answer, len(bases))
	for i, base := range bases {
		go func() {
			op, err := checkOne(cctx, cfg, base)
			answers <- answer{i, op, err}
		}()
	}
	errs := make([]error, len(bases))
	var op wire.Operator
	found := false
	var grace <-chan time.Time
	for n := 0; n < len(bases); n++ {
		var ans answer
		select {
		case ans = <-answers:
		case <-grace:
			cancel() // the rest count as unreachable
			ans = <-answers
		}
		errs[ans.i] = ans.err
		if ans.err == nil && !found {
			op, found = ans.op, true
			t := time.NewTimer(checkGrace)
			defer t.Stop()
			grace = t.C
		}
	}
	// The worst answer wins: a refused token, then a wrong URL.
	for _, e := range errs {
		if se := (*StopError)(nil); errors.As(e, &se) {
			return wire.Operator{}, e
		}
	}
	for _, e := range errs {
		if errors.Is(e, ErrNotRelay) || errors.Is(e, ErrCleartext) {
			return wire.Operator{}, e
		}
	}
	if found {
		return op, nil
	}
	if ctx.Err() == context.Canceled {
		return wire.Operator{}, ctx.Err()
	}
	var why []string
	for _, e := range errs {
		if !errors.Is(e, ErrUnreachable) {
			return wire.Operator{}, e
		}
		why = append(why, strings.TrimLeft(strings.TrimPrefix(e.Error(), ErrUnreachable.Error()), ": "))
	}
	return wire.Operator{}, fmt.Errorf("%w: none of the %d relays answered (%s)", ErrUnreachable, len(bases), strings.Join(why, "; "))
}

// checkOne is CheckConfig for one relay.
func checkOne(ctx context.Context, cfg Config, base *url.URL) (wire.Operator, error) {
	relayURL, token := base.String(), cfg.Token
	u := withScheme(base, "http", "https")
	u.Path += wire.PathMe
	where := u.String()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, where, nil)
	if err != nil {
		return wire.Operator{}, fmt.Errorf("relay URL %q: %w", relayURL, err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set(wire.HeaderProtocol, strconv.Itoa(wire.ProtocolVersion))
	req.Header.Set("Accept", "application/json")

	// A transport of our own, so no idle connection outlives the call.
	tr := transport(cfg.TLS)
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, CheckRedirect: refuseCleartextRedirect(cfg.Insecure)}).Do(req)
	if ce := (*CleartextError)(nil); errors.As(err, &ce) {
		return wire.Operator{}, fmt.Errorf("%s redirected: %w", where, ce)
	}
	if err != nil {
		if ctx.Err() == context.Canceled {
			return wire.Operator{}, ctx.Err()
		}
		return wire.Operator{}, fmt.Errorf("%w at %s: %v", ErrUnreachable, base.Host, unwrapURLError(err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxMeBody))
	if err != nil {
		return wire.Operator{}, fmt.Errorf("%w at %s: reading the answer: %v", ErrUnreachable, base.Host, err)
	}

	switch resp.StatusCode {
	case http.StatusOK:
		var op wire.Operator
		if err := json.Unmarshal(body, &op); err != nil || op.ID == "" || op.Name == "" {
			return wire.Operator{}, fmt.Errorf("%w: %s answered but not with an operator (is the URL right?)", ErrNotRelay, where)
		}
		return op, nil
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusUpgradeRequired:
		var he wire.HandshakeError
		if err := json.Unmarshal(body, &he); err == nil && wire.IsStop(he.Code) {
			return wire.Operator{}, stopError(he.Code, he.Reason)
		}
		return wire.Operator{}, fmt.Errorf("%w: %s answered HTTP %d without a pult error (is the URL right?)", ErrNotRelay, where, resp.StatusCode)
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return wire.Operator{}, fmt.Errorf("%w: %s answered HTTP %d (a proxy could not reach it?)", ErrUnreachable, where, resp.StatusCode)
	}
	return wire.Operator{}, fmt.Errorf("%w: %s answered HTTP %d (is the URL right?)", ErrNotRelay, where, resp.StatusCode)
}

// unwrapURLError drops *url.Error's "Get <url>:" prefix, which repeats what
// the caller already says.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
