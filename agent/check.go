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

// ParseRelayURL reports whether raw is an acceptable relay URL and returns it
// normalised (lower-case scheme, no trailing slash). It checks the syntax
// only: [CheckRelayURL] also refuses clear text to another machine.
func ParseRelayURL(raw string) (string, error) {
	u, err := parseRelayURL(raw)
	if err != nil {
		return "", err
	}
	return u.String(), nil
}

// CheckRelayURL is ParseRelayURL plus the rule New and Check apply: an
// http:// or ws:// URL is accepted only for this machine (IsLoopback) unless
// insecure is set; otherwise the error is a *CleartextError (errors.Is
// ErrCleartext).
func CheckRelayURL(raw string, insecure bool) (string, error) {
	u, err := checkedRelayURL(raw, insecure)
	if err != nil {
		return "", err
	}
	return u.String(), nil
}

// checkedRelayURL parses raw and applies the clear-text rule. It is per URL, so a
// list of relays checks each one.
func checkedRelayURL(raw string, insecure bool) (*url.URL, error) {
	u, err := parseRelayURL(raw)
	if err != nil {
		return nil, err
	}
	if err := checkCleartext(u, insecure); err != nil {
		return nil, err
	}
	return u, nil
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
// for signing in. Of cfg it uses RelayURL, Token, Insecure and TLS. Errors:
// *CleartextError (ErrCleartext) for a plain-text URL to another machine
// without Insecure, before anything is sent; *StopError for a token the
// relay refuses (unknown, revoked, protocol too old); ErrUnreachable when
// nothing answers; ErrNotRelay when what answers is not a pult relay (404,
// not JSON, …).
func CheckConfig(ctx context.Context, cfg Config) (wire.Operator, error) {
	relayURL, token := cfg.RelayURL, cfg.Token
	base, err := checkedRelayURL(relayURL, cfg.Insecure)
	if err != nil {
		return wire.Operator{}, err
	}
	if err := checkToken(token); err != nil {
		return wire.Operator{}, err
	}
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
