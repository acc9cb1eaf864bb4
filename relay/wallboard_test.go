package relay_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pult/pult/agent"
	"github.com/pult/pult/agent/wire"
	"github.com/pult/pult/relay/operators"
)

func boardEvents(t *testing.T, base, token string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+"/board/events", nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET /board/events: %v", err)
	}
	return resp
}

// readEvent reads one server-sent event (comments skipped).
func readEvent(r *bufio.Reader) (name string, data []byte, err error) {
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return "", nil, err
		}
		line = strings.TrimRight(line, "\n")
		switch {
		case line == "":
			if name != "" || data != nil {
				return name, data, nil
			}
		case strings.HasPrefix(line, ":"):
		case strings.HasPrefix(line, "event: "):
			name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data = append(data, strings.TrimPrefix(line, "data: ")...)
		}
	}
}

func TestWallboardPage(t *testing.T) {
	checkGoroutines(t)
	r := startRelay(t, testConfig(t))
	for path, ctype := range map[string]string{"/board": "text/html", "/board/board.js": "text/javascript", "/board/board.css": "text/css"} {
		resp, err := http.Get(r.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), ctype) ||
			!strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'none'") {
			t.Errorf("GET %s: %d %v", path, resp.StatusCode, resp.Header)
		}
		// Nothing from elsewhere: no CDN, no fonts, no external scripts.
		if s := strings.ReplaceAll(string(b), "http://www.w3.org/2000/svg", ""); strings.Contains(s, "http://") || strings.Contains(s, "https://") || strings.Contains(s, "//cdn") {
			t.Errorf("%s refers to another site", path)
		}
		if path == "/board" && (!strings.Contains(string(b), `content="900"`) || !strings.Contains(string(b), `src="/board/board.js"`)) {
			t.Errorf("the page: %s", b)
		}
	}
	resp, err := http.Get(r.URL + "/board/other.js")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("GET /board/other.js: %d", resp.StatusCode)
	}
}

// /board/events: 401 without a token or with an unknown one, 403 for an
// operator, a snapshot then deltas for a supervisor; the stream ends when
// the relay stops.
func TestWallboardEvents(t *testing.T) {
	checkGoroutines(t)
	r := startRelay(t, testConfig(t))
	_, supTok := r.addSupervisor("Sofia", "900", "9")
	_, annaTok := r.addOperator("Anna", "100", "1")
	for _, tc := range []struct {
		token  string
		status int
		text   string
	}{
		{"", 401, "supervisor's token is required"},
		{"pult_nope_nope", 401, "does not know this token"},
		{annaTok, 403, "operator's token"},
	} {
		resp := boardEvents(t, r.URL, tc.token)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || !strings.Contains(string(b), tc.text) {
			t.Errorf("token %q: %d %s", tc.token, resp.StatusCode, b)
		}
	}

	resp := boardEvents(t, r.URL, supTok)
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("supervisor: %d %v", resp.StatusCode, resp.Header)
	}
	br := bufio.NewReader(resp.Body)
	name, data, err := readEvent(br)
	var snap wire.QueueSnapshot
	if err != nil || name != "snapshot" || json.Unmarshal(data, &snap) != nil || len(snap.Operators) != 2 {
		t.Fatalf("first event: %q %s %v", name, data, err)
	}
	r.callEvent(map[string]any{"type": "in", "phone": "+79121234567", "codes": []string{"100"}, "callExternalId": "w1"})
	for {
		name, data, err := readEvent(br)
		if err != nil {
			t.Fatalf("reading deltas: %v", err)
		}
		var d wire.QueueDelta
		if name != "delta" || json.Unmarshal(data, &d) != nil {
			t.Fatalf("event %q: %s", name, data)
		}
		if !snap.Apply(d) {
			t.Fatalf("delta %d after %d", d.Version, snap.Version)
		}
		if len(snap.Waiting) == 1 && snap.Waiting[0].ID == "w1" {
			break
		}
	}
	start := time.Now()
	r.stop()
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("the relay took %s to stop with a wallboard open", took)
	}
	if _, err := io.ReadAll(br); err != nil && !strings.Contains(err.Error(), "EOF") {
		t.Logf("stream ended with %v", err)
	}
}

// A wallboard's token watches the board and does nothing else: it is not
// on the board, it cannot connect an agent, sign in, submit or act, and one
// such token opens a few boards, not every place.
func TestWallboardRole(t *testing.T) {
	checkGoroutines(t)
	r := startRelay(t, testConfig(t))
	_, supTok := r.addSupervisor("Sofia", "900", "9")
	r.addOperator("Anna", "100", "1")
	ctx := context.Background()
	if _, err := r.admin().AddOperator(ctx, operators.NewOperator{Name: "Hall TV", Code: "300", UserID: "30", Role: wire.RoleWallboard}); err == nil {
		t.Error("a wallboard with an extension was accepted")
	}
	added, err := r.admin().AddOperator(ctx, operators.NewOperator{Name: "Hall TV", Role: wire.RoleWallboard})
	if err != nil {
		t.Fatal(err)
	}
	tv := added.Token

	// Not an agent, anywhere.
	_, resp, err := wsDial(t, r.URL, tv, strconv.Itoa(wire.ProtocolVersion))
	if err == nil {
		t.Fatal("a wallboard's token connected an agent")
	}
	if status, code := handshakeCode(t, resp); status != 403 || code != wire.CloseNotAgent || !wire.IsStop(code) {
		t.Errorf("agent handshake: %d %d", status, code)
	}
	var stop *agent.StopError
	if _, err := agent.Check(ctx, r.URL, tv); !errors.As(err, &stop) || stop.Code != wire.CloseNotAgent {
		t.Errorf("sign-in check: %v", err)
	}
	if status, body := r.postTranscript(tv, wire.TranscriptSubmit{ID: "t1", Format: wire.FormatText, Body: "Anna: hi"}); status != 403 {
		t.Errorf("transcript: %d %s", status, body)
	}

	// The board, without itself on it.
	var streams []*http.Response
	defer func() {
		for _, s := range streams {
			s.Body.Close()
		}
	}()
	for i := range 4 {
		resp := boardEvents(t, r.URL, tv)
		streams = append(streams, resp)
		if resp.StatusCode != 200 {
			t.Fatalf("board %d: %d", i+1, resp.StatusCode)
		}
		if i == 0 {
			_, data, err := readEvent(bufio.NewReader(resp.Body))
			var snap wire.QueueSnapshot
			if err != nil || json.Unmarshal(data, &snap) != nil || len(snap.Operators) != 2 {
				t.Fatalf("snapshot: %s %v", data, err)
			}
		}
	}
	fifth := boardEvents(t, r.URL, tv)
	b, _ := io.ReadAll(fifth.Body)
	fifth.Body.Close()
	if fifth.StatusCode != 429 || !strings.Contains(string(b), `"code":"too_many_boards"`) || fifth.Header.Get("Retry-After") == "" {
		t.Errorf("a fifth board with one token: %d %s", fifth.StatusCode, b)
	}
	other := boardEvents(t, r.URL, supTok)
	other.Body.Close()
	if other.StatusCode != 200 {
		t.Errorf("another token's board while the first has its fill: %d", other.StatusCode)
	}
	streams[0].Body.Close()
	streams = streams[1:]
	waitUntil(t, "a place free again", func() bool {
		resp := boardEvents(t, r.URL, tv)
		if resp.StatusCode == 200 {
			streams = append(streams, resp)
			return true
		}
		resp.Body.Close()
		return false
	})
}
