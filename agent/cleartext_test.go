package agent

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/pult/pult/agent/wire"
)

func TestIsLoopback(t *testing.T) {
	for host, want := range map[string]bool{
		"localhost": true, "LocalHost": true, "localhost.": true,
		"127.0.0.1": true, "127.1.2.3": true, "::1": true, "::ffff:127.0.0.1": true,
		"relay.localhost":       false, // may resolve anywhere: not trusted
		"localhost.example.com": false, "127.0.0.1.example.com": false,
		"10.0.0.5": false, "0.0.0.0": false, "::": false, "2001:db8::1": false,
		"relay.example.com": false, "": false,
	} {
		if got := IsLoopback(host); got != want {
			t.Errorf("IsLoopback(%q) = %v, want %v", host, got, want)
		}
	}
}

// A plain-text URL to another machine is refused by New and Check before
// anything is sent, with a message that says why and what to do; Insecure
// accepts it; https, wss and loopback need nothing.
func TestCleartextRefused(t *testing.T) {
	ctx := context.Background()
	for _, u := range []string{
		"http://relay.example.com", "ws://relay.example.com:8080/pult",
		"HTTP://10.0.0.5", "http://[2001:db8::1]:80", "http://relay.localhost",
	} {
		_, err := New(Config{RelayURL: u, Token: "t"})
		var ce *CleartextError
		if !errors.Is(err, ErrCleartext) || !errors.As(err, &ce) {
			t.Errorf("New(%q) = %v, want ErrCleartext", u, err)
			continue
		}
		msg := err.Error()
		for _, want := range []string{"unencrypted to " + ce.Host, "https://", "--insecure"} {
			if !strings.Contains(msg, want) {
				t.Errorf("New(%q): message %q lacks %q", u, msg, want)
			}
		}
		// Check refuses before dialing: these hosts would not answer.
		if _, err := Check(ctx, u, "t"); !errors.Is(err, ErrCleartext) {
			t.Errorf("Check(%q) = %v, want ErrCleartext", u, err)
		}
		if _, err := CheckRelayURL(u, false); !errors.Is(err, ErrCleartext) {
			t.Errorf("CheckRelayURL(%q) = %v, want ErrCleartext", u, err)
		}
		if _, err := CheckRelayURL(u, true); err != nil {
			t.Errorf("CheckRelayURL(%q, insecure) = %v", u, err)
		}
		if _, err := New(Config{RelayURL: u, Token: "t", Insecure: true}); err != nil {
			t.Errorf("New(%q, Insecure) = %v", u, err)
		}
	}
	for _, u := range []string{
		"https://relay.example.com", "wss://relay.example.com", "http://localhost:8080",
		"ws://127.0.0.1:9", "http://[::1]:8080/pult",
	} {
		if _, err := New(Config{RelayURL: u, Token: "t"}); err != nil {
			t.Errorf("New(%q) = %v", u, err)
		}
	}
}

// A relay (or a proxy in front of it) that redirects to plain http on
// another machine is not followed: the Authorization header would go along.
func TestCleartextRedirectRefused(t *testing.T) {
	checkLeaks(t)
	var authorized atomic.Int32
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Header.Get("Authorization") != "" {
			authorized.Add(1)
		}
		switch req.URL.Path {
		case "/ok" + wire.PathMe:
			json.NewEncoder(w).Encode(wire.Operator{ID: "op-1", Name: "Anna", Code: "100"})
		case "/away" + wire.PathMe:
			// TEST-NET-1: never reached, the redirect is refused first.
			http.Redirect(w, req, "http://192.0.2.1"+wire.PathMe, http.StatusFound)
		default:
			http.NotFound(w, req)
		}
	}))
	defer srv.Close()
	tlsConfig := srv.Client().Transport.(*http.Transport).TLSClientConfig
	ctx := context.Background()

	op, err := CheckConfig(ctx, Config{RelayURL: srv.URL + "/ok", Token: "t", TLS: tlsConfig})
	if err != nil || op.Code != "100" {
		t.Fatalf("CheckConfig over https = %+v, %v", op, err)
	}
	_, err = CheckConfig(ctx, Config{RelayURL: srv.URL + "/away", Token: "t", TLS: tlsConfig})
	if !errors.Is(err, ErrCleartext) || !strings.Contains(err.Error(), "192.0.2.1") {
		t.Fatalf("CheckConfig redirected to http = %v, want ErrCleartext", err)
	}
	if n := authorized.Load(); n != 2 {
		t.Errorf("%d requests with a token reached the server, want 2", n)
	}
}
