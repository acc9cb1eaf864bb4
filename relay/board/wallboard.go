package board

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"sync"
	"time"

	"golang.org/x/text/language"

	"github.com/pult/pult/agent/wire"
	"github.com/pult/pult/relay/operators"
)

// The wallboard: a read-only web page of the queue board for a TV, served
// by the relay itself (GET /board; no external assets). The page asks for a
// supervisor's token — or reads it from the URL fragment, which browsers
// never send — and streams the board from GET /board/events as server-sent
// events, with the token in the Authorization header: first an event
// "snapshot" (a wire.QueueSnapshot), then events "delta" (wire.QueueDelta),
// the same JSON as the websocket protocol.
//
// The page speaks English or Russian: ?lang=ru|en, else the browser's
// Accept-Language; the script follows navigator.languages unless ?lang=
// was given. The words are in wallboard/i18n/<lang>.json (docs/translating.md).

//go:embed wallboard/index.html wallboard/board.js wallboard/board.css wallboard/i18n/*.json
var wallboardFiles embed.FS

// boardLangs are the wallboard's languages; the first is the fallback.
var boardLangs = []language.Tag{language.English, language.Russian}

const (
	PathBoard       = "/board"
	PathBoardEvents = "/board/events"
	boardKeepAlive  = 20 * time.Second // an SSE comment, so proxies and the page see a live stream
	boardWriteWait  = 10 * time.Second
)

// The page may load only its own script and style and talk only to the relay.
const boardCSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// wallboardPage is the page in each language, with the choice fixed by
// ?lang= or left to the browser, rendered once.
type wallboardPage struct {
	once sync.Once
	html map[boardPageKey][]byte
	err  error
}

type boardPageKey struct {
	lang  string
	fixed bool
}

// Handler serves the wallboard: the page (GET /board), its files
// (GET /board/{file}) and the board's event stream (GET /board/events). The
// server mounts it on those paths.
func (b *Board) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+PathBoard, b.handlePage)
	mux.HandleFunc("GET "+PathBoardEvents, b.handleEvents)
	mux.HandleFunc("GET "+PathBoard+"/{file}", b.handleAsset)
	return mux
}

func (b *Board) handlePage(w http.ResponseWriter, r *http.Request) {
	b.page.once.Do(func() {
		b.page.html, b.page.err = renderBoardPages(int(b.longBreak / time.Second))
	})
	if b.page.err != nil {
		http.Error(w, "the wallboard page is broken: "+b.page.err.Error(), http.StatusInternalServerError)
		return
	}
	lang, fixed := boardLanguage(r)
	boardHeaders(w, "text/html; charset=utf-8")
	w.Header().Set("Content-Language", lang)
	w.Header().Add("Vary", "Accept-Language")
	w.Write(b.page.html[boardPageKey{lang, fixed}])
}

// boardLanguage picks the page's language: ?lang= (fixed), else the best
// of Accept-Language.
func boardLanguage(r *http.Request) (lang string, fixed bool) {
	m := language.NewMatcher(boardLangs)
	if q := r.URL.Query().Get("lang"); q != "" {
		if t, err := language.Parse(q); err == nil {
			if _, i, conf := m.Match(t); conf != language.No {
				return boardLangs[i].String(), true
			}
		}
	}
	tags, _, _ := language.ParseAcceptLanguage(r.Header.Get("Accept-Language"))
	_, i, conf := m.Match(tags...)
	if conf == language.No {
		i = 0
	}
	return boardLangs[i].String(), false
}

// boardWords reads wallboard/i18n/<lang>.json for every language: an id
// and its text, or for a count its plural forms (one, few, many, other).
func boardWords() (map[string]map[string]any, error) {
	all := map[string]map[string]any{}
	for _, t := range boardLangs {
		b, err := wallboardFiles.ReadFile("wallboard/i18n/" + t.String() + ".json")
		if err != nil {
			return nil, err
		}
		var words map[string]any
		if err := json.Unmarshal(b, &words); err != nil {
			return nil, fmt.Errorf("wallboard/i18n/%s.json: %w", t, err)
		}
		all[t.String()] = words
	}
	return all, nil
}

// renderBoardPages renders index.html for every language: its words on
// the page, and all the languages' words for the script.
func renderBoardPages(longBreakSeconds int) (map[boardPageKey][]byte, error) {
	words, err := boardWords()
	if err != nil {
		return nil, err
	}
	out := map[boardPageKey][]byte{}
	for _, t := range boardLangs {
		lang := t.String()
		text := func(id string) string {
			switch v := words[lang][id].(type) {
			case string:
				return v
			case map[string]any:
				s, _ := v["other"].(string)
				return s
			}
			return id
		}
		tmpl, err := template.New("index.html").Funcs(template.FuncMap{
			"t": text,
			// Our own embedded words, with <code> in them.
			"html": func(id string) template.HTML { return template.HTML(text(id)) },
		}).ParseFS(wallboardFiles, "wallboard/index.html")
		if err != nil {
			return nil, err
		}
		for _, fixed := range []bool{false, true} {
			var b bytes.Buffer
			err := tmpl.Execute(&b, map[string]any{
				"Lang": lang, "Fixed": fixed, "LongBreak": longBreakSeconds, "Words": words,
			})
			if err != nil {
				return nil, err
			}
			out[boardPageKey{lang, fixed}] = b.Bytes()
		}
	}
	return out, nil
}

func (b *Board) handleAsset(w http.ResponseWriter, r *http.Request) {
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
	data, err := wallboardFiles.ReadFile("wallboard/" + name)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	boardHeaders(w, ctype)
	w.Write(data)
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
func (b *Board) viewer(w http.ResponseWriter, r *http.Request) (operators.Operator, bool) {
	// "code" names the error for the page, which says it in its language.
	op, err := b.auth(r)
	switch {
	case errors.Is(err, operators.ErrNoToken):
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "a supervisor's token is required (Authorization: Bearer …)", "code": "no_token"})
		return operators.Operator{}, false
	case errors.Is(err, operators.ErrRevoked):
		writeJSON(w, http.StatusForbidden, map[string]string{"error": "This token has been revoked.", "code": "revoked"})
		return operators.Operator{}, false
	case err != nil:
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "The relay does not know this token.", "code": "unknown_token"})
		return operators.Operator{}, false
	case op.Role != wire.RoleSupervisor && op.Role != wire.RoleWallboard:
		writeJSON(w, http.StatusForbidden, map[string]string{"error": "This is an operator's token: the board needs a supervisor's or a wallboard's.", "code": "not_supervisor"})
		return operators.Operator{}, false
	}
	return op, true
}

// handleBoardEvents streams the board as server-sent events until the
// viewer goes away, falls behind (the page starts over), is revoked, or the
// relay shuts down.
func (b *Board) handleEvents(w http.ResponseWriter, r *http.Request) {
	op, ok := b.viewer(w, r)
	if !ok {
		return
	}
	sub, err := b.subscribeSSE(op.ID)
	switch {
	case errors.Is(err, errTooManyForToken):
		w.Header().Set("Retry-After", "30")
		writeJSON(w, http.StatusTooManyRequests, map[string]string{"error": err.Error(), "code": "too_many_boards"})
		return
	case err != nil:
		w.Header().Set("Retry-After", "10")
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
		return
	}
	defer b.unsubscribeSSE(sub)
	rc := http.NewResponseController(w)
	rc.SetReadDeadline(time.Time{}) // the server's ReadTimeout is for requests, not this stream
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	write := func(frame []byte) bool {
		rc.SetWriteDeadline(time.Now().Add(boardWriteWait))
		if _, err := w.Write(frame); err != nil {
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

// writeJSON answers the wallboard's errors: {"error": …, "code": …}, the
// code for the page to word it in its language.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"internal error"}`)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}
