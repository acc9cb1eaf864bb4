package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pult/pult/agent/agenttest"
	"github.com/pult/pult/agent/wire"
)

func TestRelayURLLists(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"https://a.example.com", "https://a.example.com"},
		{" https://a.example.com/ , HTTPS://b.example.com:8700/pult/ ", "https://a.example.com,https://b.example.com:8700/pult"},
		{"http://127.0.0.1:1,ws://[::1]:2", "http://127.0.0.1:1,ws://[::1]:2"},
	} {
		got, err := CheckRelayURL(tc.in, false)
		if err != nil || got != tc.want {
			t.Errorf("CheckRelayURL(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
		if got, err := ParseRelayURL(tc.in); err != nil || got != tc.want {
			t.Errorf("ParseRelayURL(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
		urls, err := SplitRelayURL(tc.in)
		if err != nil || strings.Join(urls, ",") != tc.want {
			t.Errorf("SplitRelayURL(%q) = %q, %v", tc.in, urls, err)
		}
	}

	var many []string
	for i := range MaxRelays + 1 {
		many = append(many, fmt.Sprintf("https://r%d.example.com", i))
	}
	for _, tc := range []struct{ in, want string }{
		{"https://a.example.com,", "relay URL 2 of 2 is empty"},
		{"https://a.example.com,,https://b.example.com", "relay URL 2 of 3 is empty"},
		{"https://a.example.com,ftp://b.example.com", `relay URL "ftp://b.example.com": scheme`},
		{"https://a.example.com,https://u:p@b.example.com", "must not contain credentials"},
		{"https://a.example.com,https://A.example.com/", `relay URL "https://A.example.com" is listed twice (as "https://a.example.com" before)`},
		{"https://a.example.com,wss://a.example.com:443", "listed twice"},
		{"http://127.0.0.1:80,ws://127.0.0.1", "listed twice"},
		{strings.Join(many, ","), "17 relay URLs: at most 16"},
	} {
		if _, err := CheckRelayURL(tc.in, false); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("CheckRelayURL(%q) = %v, want an error containing %q", tc.in, err, tc.want)
		}
		if _, err := New(Config{RelayURL: tc.in, Token: "t"}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%q) = %v, want an error containing %q", tc.in, err, tc.want)
		}
	}
	// Different paths or ports are different relays.
	if _, err := CheckRelayURL("https://a.example.com/one,https://a.example.com/two,https://a.example.com:8443/one", false); err != nil {
		t.Errorf("distinct relays refused: %v", err)
	}
	if _, err := New(Config{RelayURL: strings.Join(many[:MaxRelays], ","), Token: "t"}); err != nil {
		t.Errorf("%d relays refused: %v", MaxRelays, err)
	}

	// The clear-text rule is per URL, and the error names the one at fault.
	_, err := CheckRelayURL("https://a.example.com,http://127.0.0.1:8700,http://b.example.com:8700", false)
	var ce *CleartextError
	if !errors.As(err, &ce) || ce.Host != "b.example.com" || !strings.Contains(err.Error(), "http://b.example.com:8700") {
		t.Errorf("a plain-text URL in a list: %v", err)
	}
	if _, err := CheckRelayURL("https://a.example.com,http://b.example.com:8700", true); err != nil {
		t.Errorf("insecure list: %v", err)
	}
	if _, err := ParseRelayURL("https://a.example.com,http://b.example.com:8700"); err != nil {
		t.Errorf("ParseRelayURL checks the syntax only: %v", err)
	}
}

// The agent starts on a random relay of the list and tries them all.
func TestRelayOrderRandom(t *testing.T) {
	list := "https://a.example.com,https://b.example.com,https://c.example.com"
	first := map[string]int{}
	for range 200 {
		a, err := New(Config{RelayURL: list, Token: "t"})
		if err != nil {
			t.Fatal(err)
		}
		seen := map[int]bool{}
		for _, i := range a.order {
			seen[i] = true
		}
		if len(a.order) != 3 || len(seen) != 3 {
			t.Fatalf("order %v is not a permutation of 3 relays", a.order)
		}
		first[a.current().host]++
		if got := strings.Join(a.Relays(), ","); got != list {
			t.Fatalf("Relays() = %q, want the list as given", got)
		}
	}
	if len(first) != 3 {
		t.Errorf("first relays over 200 agents: %v, want all three", first)
	}
}

// Backoff grows by round: moving on to another relay waits only the jitter
// of attempt 0; once every relay has been tried the exponent grows.
func TestRetryByRound(t *testing.T) {
	for _, tc := range []struct {
		relays int
		stable []bool
		want   []int
	}{
		// One relay: as before, every attempt is a round.
		{1, []bool{false, false, false, true, false}, []int{0, 1, 2, 0, 1}},
		// Two: lost a stable connection → the other at once; then rounds.
		{2, []bool{true, false, false, false, false, false}, []int{0, 0, 0, 1, 0, 2}},
		// Three, never connected: 0 0 | 0 0 1 ... per round.
		{3, []bool{false, false, false, false, false, false, false, false, false}, []int{0, 0, 0, 0, 0, 1, 0, 0, 2}},
		// A stable connection in the middle starts afresh.
		{2, []bool{false, false, false, false, true, false}, []int{0, 0, 0, 1, 0, 0}},
	} {
		r := NewRetry(tc.relays)
		var got []int
		for _, st := range tc.stable {
			got = append(got, r.Failed(st))
		}
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("%d relays, stable %v: exponents %v, want %v", tc.relays, tc.stable, got, tc.want)
		}
	}
}

// hostOf is the host:port of a test relay's URL.
func hostOf(r *agenttest.Relay) string { return strings.TrimPrefix(r.URL, "http://") }

// Losing the relay it is on, the agent moves to the other one at once (its
// backoff is long here), says which, and keeps its position; once back on
// the first it resumes there.
func TestFailoverToAnotherRelay(t *testing.T) {
	checkLeaks(t)
	r1, r2 := agenttest.New(t), agenttest.New(t)
	a, rec := newTestAgent(t, r1, func(c *Config) {
		c.RelayURL = r1.URL + "," + r2.URL
		c.MinBackoff, c.MaxBackoff = 200*time.Millisecond, 10*time.Second
	})
	byHost := map[string]*agenttest.Relay{hostOf(r1): r1, hostOf(r2): r2}
	start(t, a)
	waitOnline(t, a)
	on := a.Relay()
	cur, other := byHost[on], r1
	if cur == r1 {
		other = r2
	}
	if cur == nil {
		t.Fatalf("Relay() = %q, not one of the two", on)
	}
	ev, _ := rec.last(EventConn)
	if ev.Relay != on {
		t.Errorf("online event names relay %q, Relay() %q", ev.Relay, on)
	}
	seq := cur.Publish(wire.TypeNotice, wire.Notice{Kind: "info", Text: "one"})
	waitFor(t, "the first notice", func() bool { return len(rec.seqs()) == 1 })

	// The second relay shares the stream (same epoch and sequence numbers).
	other.Publish(wire.TypeNotice, wire.Notice{Kind: "info", Text: "one"})
	other.Publish(wire.TypeNotice, wire.Notice{Kind: "info", Text: "two"})
	cur.Refuse(http.StatusServiceUnavailable, nil)
	lost := time.Now()
	cur.Drop()
	waitFor(t, "online on the other relay", func() bool { return other.Connected() && a.State() == Online })
	if d := time.Since(lost); d > 2*time.Second {
		t.Errorf("failover took %s", d)
	}
	if a.Relay() != hostOf(other) {
		t.Errorf("Relay() = %q after failover, want %q", a.Relay(), hostOf(other))
	}
	hs := other.Handshakes()
	if h := hs[len(hs)-1]; h.Since != fmt.Sprint(seq) || h.Epoch != "epoch-1" {
		t.Errorf("handshake on the other relay: %+v, want since=%d", h, seq)
	}
	waitFor(t, "the second notice", func() bool { return len(rec.seqs()) == 2 })
	if got := fmt.Sprint(rec.seqs()); got != fmt.Sprint([]uint64{2, 4}) {
		t.Errorf("seqs %s, want [2 4]", got)
	}
	var offline, online []string
	for _, ev := range rec.events() {
		switch {
		case ev.Kind == EventConn && ev.Conn == Offline:
			offline = append(offline, ev.Relay)
		case ev.Kind == EventConn && ev.Conn == Online:
			online = append(online, ev.Relay)
		}
	}
	if fmt.Sprint(offline) != fmt.Sprint([]string{on}) || fmt.Sprint(online) != fmt.Sprint([]string{on, hostOf(other)}) {
		t.Errorf("offline on %v, online on %v", offline, online)
	}

	// Transcripts go to the relay the agent is on.
	if _, err := a.SubmitTranscript(context.Background(), wire.TranscriptSubmit{Format: wire.FormatText, Body: "Anna: hi"}); err != nil {
		t.Fatalf("SubmitTranscript: %v", err)
	}
	if _, n := other.Transcripts(); n != 1 {
		t.Errorf("%d transcripts at the relay the agent is on, want 1", n)
	}
}

// With every relay down the agent goes round them, each in turn.
func TestFailoverRounds(t *testing.T) {
	checkLeaks(t)
	r1, r2 := agenttest.New(t), agenttest.New(t)
	r1.Refuse(http.StatusServiceUnavailable, nil)
	r2.Refuse(http.StatusServiceUnavailable, nil)
	a, rec := newTestAgent(t, r1, func(c *Config) { c.RelayURL = r1.URL + "," + r2.URL })
	start(t, a)
	waitFor(t, "three rounds", func() bool { return len(r1.Handshakes()) >= 3 && len(r2.Handshakes()) >= 3 })
	var tried []string
	for _, ev := range rec.events() {
		if ev.Kind == EventConn && ev.Conn == Connecting {
			tried = append(tried, ev.Relay)
		}
	}
	for i := 1; i < len(tried); i++ {
		if tried[i] == tried[i-1] {
			t.Fatalf("the same relay twice in a row: %v", tried)
		}
	}
	r2.Refuse(0, nil)
	waitOnline(t, a)
	if a.Relay() != hostOf(r2) {
		t.Errorf("online on %q, want %q", a.Relay(), hostOf(r2))
	}
}

// A stop from any relay stops the agent, wherever it is in the list.
func TestFailoverStop(t *testing.T) {
	checkLeaks(t)
	r1, r2 := agenttest.New(t), agenttest.New(t)
	r1.Refuse(http.StatusServiceUnavailable, nil)
	r2.SetToken("another-token")
	a, _ := newTestAgent(t, r1, func(c *Config) { c.RelayURL = r1.URL + "," + r2.URL })
	run := start(t, a)
	err := run.wait(t)
	var se *StopError
	if !errors.As(err, &se) || se.Code != wire.CloseBadToken || a.State() != AuthFailed {
		t.Fatalf("Run = %v, state %s; want a bad-token stop", err, a.State())
	}
	if a.Relay() != hostOf(r2) {
		t.Errorf("Relay() = %q, want the one that refused, %q", a.Relay(), hostOf(r2))
	}
}

// A relay of another cluster (another epoch) is a new stream, as when a
// relay's log is recreated.
func TestFailoverAnotherEpoch(t *testing.T) {
	checkLeaks(t)
	r1, r2 := agenttest.New(t), agenttest.New(t)
	r2.SetEpoch("epoch-2")
	a, rec := newTestAgent(t, r1, func(c *Config) { c.RelayURL = r1.URL + "," + r2.URL })
	start(t, a)
	waitOnline(t, a)
	cur, other := r1, r2
	if a.Relay() == hostOf(r2) {
		cur, other = r2, r1
	}
	cur.Publish(wire.TypeNotice, wire.Notice{Kind: "info", Text: "one"})
	cur.Publish(wire.TypeNotice, wire.Notice{Kind: "info", Text: "two"})
	waitFor(t, "two notices", func() bool { return len(rec.seqs()) == 2 })
	cur.Refuse(http.StatusServiceUnavailable, nil)
	cur.Drop()
	waitFor(t, "online on the other relay", func() bool { return other.Connected() && a.State() == Online })
	// Its first event, seq 2, is delivered although the agent had
	// processed seq 4 of the other epoch.
	other.Publish(wire.TypeNotice, wire.Notice{Kind: "info", Text: "three"})
	waitFor(t, "the notice of the other epoch", func() bool { return len(rec.seqs()) == 3 })
	h, _ := a.Hello()
	a.mu.Lock()
	pos := a.pos
	a.mu.Unlock()
	if pos.Epoch != h.Epoch || pos.Epoch == "" || pos.Seq != 2 {
		t.Errorf("position %+v after moving to epoch %q", pos, h.Epoch)
	}
}

// The session folder does not depend on the list's order, and a single URL
// keeps the folder it had before lists.
func TestSessionDirOfLists(t *testing.T) {
	old := func(relayURL, token string) string { // the formula before lists
		sum := sha256.Sum256([]byte(relayURL + "\n" + token))
		return filepath.Join("cfg", "sessions", hex.EncodeToString(sum[:8]))
	}
	for _, u := range []string{"https://relay.example.com", "http://127.0.0.1:8700/"} {
		if got, want := SessionDir("cfg", u, "tok"), old(u, "tok"); got != want {
			t.Errorf("SessionDir(%q) = %s, want %s as before", u, got, want)
		}
	}
	ab := SessionDir("cfg", "https://a.example.com,https://b.example.com", "tok")
	for _, u := range []string{"https://b.example.com,https://a.example.com", " https://b.example.com/ ,HTTPS://a.example.com"} {
		if got := SessionDir("cfg", u, "tok"); got != ab {
			t.Errorf("SessionDir(%q) = %s, want %s", u, got, ab)
		}
	}
	for _, other := range []string{"https://a.example.com", "https://a.example.com,https://c.example.com"} {
		if SessionDir("cfg", other, "tok") == ab {
			t.Errorf("SessionDir(%q) is that of another list", other)
		}
	}
	if SessionDir("cfg", "https://a.example.com,https://b.example.com", "tok2") == ab {
		t.Error("another token, same folder")
	}
}

// Signing in with a list asks every relay: one down is fine, one that is not
// a relay is an error naming it, none answering is ErrUnreachable.
func TestCheckList(t *testing.T) {
	checkLeaks(t)
	ctx := context.Background()
	good := agenttest.New(t)
	down := agenttest.New(t)
	downURL := down.URL
	down.Close()
	notRelay := httptest.NewServer(http.NotFoundHandler())
	defer notRelay.Close()

	op, err := CheckConfig(ctx, Config{RelayURL: downURL + "," + good.URL, Token: agenttest.Token})
	if err != nil || op.ID != good.Operator.ID {
		t.Errorf("one relay down: %+v, %v", op, err)
	}
	_, err = CheckConfig(ctx, Config{RelayURL: good.URL + "," + notRelay.URL, Token: agenttest.Token})
	if !errors.Is(err, ErrNotRelay) || !strings.Contains(err.Error(), notRelay.URL) {
		t.Errorf("one URL not a relay: %v", err)
	}
	_, err = CheckConfig(ctx, Config{RelayURL: good.URL + "," + downURL, Token: "wrong-token"})
	var se *StopError
	if !errors.As(err, &se) || se.Code != wire.CloseBadToken {
		t.Errorf("a refused token: %v", err)
	}
	_, err = CheckConfig(ctx, Config{RelayURL: downURL + ",http://127.0.0.1:1", Token: agenttest.Token})
	if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "none of the 2 relays") ||
		!strings.Contains(err.Error(), hostOf(down)) || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Errorf("none answering: %v", err)
	}
}
