package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
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
// normalised (lower-case scheme, no trailing slash).
func ParseRelayURL(raw string) (string, error) {
	u, err := parseRelayURL(raw)
	if err != nil {
		return "", err
	}
	return u.String(), nil
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

// Check asks the relay who token belongs to (GET <base>/v1/me), for signing
// in. Errors: *StopError for a token the relay refuses (unknown, revoked,
// protocol too old); ErrUnreachable when nothing answers; ErrNotRelay when
// what answers is not a pult relay (404, not JSON, …).
func Check(ctx context.Context, relayURL, token string) (wire.Operator, error) {
	base, err := parseRelayURL(relayURL)
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
	tr := http.DefaultTransport.(*http.Transport).Clone()
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
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
