package relay

import (
	"embed"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pult/pult/agent/wire"
)

// The wallboard: a read-only web page of the queue board for a TV, served
// by the relay itself (GET /board; no external assets). The page asks for a
// supervisor's token — or reads it from the URL fragment, which browsers
// never send — and streams the board from GET /board/events as server-sent
// events, with the token in the Authorization header: first an event
// "snapshot" (a wire.QueueSnapshot), then events "delta" (wire.QueueDelta),
// the same JSON as the websocket protocol.

//go:embed wallboard/index.html wallboard/board.js wallboard/board.css
var wallboardFiles embed.FS

const (
	pathBoard       = "/board"
	pathBoardEvents = "/board/events"
	boardKeepAlive  = 20 * time.Second // an SSE comment, so proxies and the page see a live stream
	boardWriteWait  = 10 * time.Second
)

// The page may load only its own script and style and talk only to the relay.
const boardCSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

type wallboardPage struct {
	once sync.Once
	html []byte
}

func (s *Server) handleBoardPage(w http.ResponseWriter, r *http.Request) {
	s.page.once.Do(func() {
		b, _ := wallboardFiles.ReadFile("wallboard/index.html")
		secs := strconv.Itoa(int(s.cfg.Queue.LongBreak.Duration / time.Second))
		s.page.html = []byte(strings.Replace(string(b), "{{LONG_BREAK}}", secs, 1))
	})
	boardHeaders(w, "text/html; charset=utf-8")
	w.Write(s.page.html)
}

func (s *Server) handleBoardAsset(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("file")
	var ctype string
	switch name {
	case "board.js":
		ctype = "text/javascript; charset=utf-8"
	case "board.css":
		ctype = "text/css; charset=utf-8"
	default:
		http.NotFound(w, r)
		return
	}
	b, err := wallboardFiles.ReadFile("wallboard/" + name)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	boardHeaders(w, ctype)
	w.Write(b)
}

func boardHeaders(w http.ResponseWriter, ctype string) {
	h := w.Header()
	h.Set("Content-Type", ctype)
	h.Set("Content-Security-Policy", boardCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-cache")
}

// boardViewer authenticates a wallboard request: no token or an unknown one
// is 401, a revoked one or an operator's 403.
func (s *Server) boardViewer(w http.ResponseWriter, r *http.Request) (Operator, bool) {
	token, ok := bearer(r)
	if !ok {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "a supervisor's token is required (Authorization: Bearer …)"})
		return Operator{}, false
	}
	op, err := s.ops.Authenticate(token)
	switch {
	case errors.Is(err, ErrRevoked):
		writeJSON(w, http.StatusForbidden, map[string]string{"error": "This token has been revoked."})
		return Operator{}, false
	case err != nil:
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "The relay does not know this token."})
		return Operator{}, false
	case op.Role != wire.RoleSupervisor:
		writeJSON(w, http.StatusForbidden, map[string]string{"error": "This is an operator's token: the board needs a supervisor's."})
		return Operator{}, false
	}
	return op, true
}

// handleBoardEvents streams the board as server-sent events until the
// viewer goes away, falls behind (the page starts over), is revoked, or the
// relay shuts down.
func (s *Server) handleBoardEvents(w http.ResponseWriter, r *http.Request) {
	op, ok := s.boardViewer(w, r)
	if !ok {
		return
	}
	sub, err := s.board.subscribeSSE(op.ID)
	if err != nil {
		w.Header().Set("Retry-After", "10")
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
		return
	}
	defer s.board.unsubscribeSSE(sub)
	rc := http.NewResponseController(w)
	rc.SetReadDeadline(time.Time{}) // the server's ReadTimeout is for requests, not this stream
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	write := func(b []byte) bool {
		rc.SetWriteDeadline(time.Now().Add(boardWriteWait))
		if _, err := w.Write(b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	keep := time.NewTicker(boardKeepAlive)
	defer keep.Stop()
	for {
		select {
		case f := <-sub.sse:
			if !write(f) {
				return
			}
		case <-keep.C:
			if !write([]byte(": keep-alive\n\n")) {
				return
			}
		case <-sub.gone:
			return
		case <-r.Context().Done():
			return
		}
	}
}
