package board

import (
	"encoding/json"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// The wallboard speaks the browser's language: ?lang= first, then
// Accept-Language, English when neither is Russian or English.
func TestWallboardLanguage(t *testing.T) {
	b := New(Config{Log: slog.New(slog.DiscardHandler), LongBreak: 15 * time.Minute})
	r := httptest.NewServer(b.Handler())
	defer r.Close()
	for _, c := range []struct {
		query, accept string
		lang          string
		fixed         bool
		words         []string
	}{
		{"", "", "en", false, []string{"<title data-i18n=\"title\">pult — queue</title>", ">Supervisor or wallboard token<", "answered within"}},
		{"", "ru-RU,ru;q=0.9,en;q=0.8", "ru", false, []string{">pult — очередь<", ">Токен руководителя или табло<", ">Показать табло<", "<code>/board#token=…</code>"}},
		{"", "de-DE,de;q=0.9,ru;q=0.5", "ru", false, []string{">Очередь<"}},
		{"", "de-DE", "en", false, []string{">Queue<"}},
		{"?lang=en", "ru", "en", true, []string{">Queue<"}},
		{"?lang=ru", "en-US", "ru", true, []string{">Очередь<", ">Звонки в очереди<"}},
		{"?lang=xx", "ru", "ru", false, []string{">Очередь<"}},
	} {
		req, _ := http.NewRequest(http.MethodGet, r.URL+"/board"+c.query, nil)
		if c.accept != "" {
			req.Header.Set("Accept-Language", c.accept)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		page := string(b)
		name := c.query + " " + c.accept
		if resp.StatusCode != 200 || resp.Header.Get("Content-Language") != c.lang {
			t.Errorf("%s: %d, Content-Language %q", name, resp.StatusCode, resp.Header.Get("Content-Language"))
		}
		wantRoot := `<html lang="` + c.lang + `" data-lang-fixed="` + map[bool]string{false: "false", true: "true"}[c.fixed] + `">`
		if !strings.Contains(page, wantRoot) {
			t.Errorf("%s: no %s in the page", name, wantRoot)
		}
		for _, w := range c.words {
			if !strings.Contains(page, w) {
				t.Errorf("%s: %q is not on the page", name, w)
			}
		}
		// The script's words: every language, as JSON it can parse.
		m := regexp.MustCompile(`(?s)<script type="application/json" id="pult-words">(.*?)</script>`).FindStringSubmatch(page)
		var words map[string]map[string]any
		if m == nil || json.Unmarshal([]byte(m[1]), &words) != nil {
			t.Fatalf("%s: the words for the script are missing or not JSON", name)
		}
		if words["ru"]["status.busy"] != "Занят" || words["en"]["status.busy"] != "Busy" {
			t.Errorf("%s: words %v", name, words["ru"]["status.busy"])
		}
	}
}

// Both languages have the same words, Russian counts have their three
// forms, and every word is used by the page or its script (and the other
// way round).
func TestWallboardWords(t *testing.T) {
	read := func(name string) map[string]any {
		b, err := os.ReadFile("wallboard/i18n/" + name + ".json")
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%s.json: %v", name, err)
		}
		return m
	}
	en, ru := read("en"), read("ru")
	if a, b := slices.Sorted(maps.Keys(en)), slices.Sorted(maps.Keys(ru)); !slices.Equal(a, b) {
		t.Errorf("en.json and ru.json differ:\n en %v\n ru %v", a, b)
	}
	for id, v := range ru {
		if forms, ok := v.(map[string]any); ok {
			if got := slices.Sorted(maps.Keys(forms)); !slices.Equal(got, []string{"few", "many", "one", "other"}) {
				t.Errorf("ru.json: %s has the forms %v", id, got)
			}
		}
	}
	page, _ := os.ReadFile("wallboard/index.html")
	script, _ := os.ReadFile("wallboard/board.js")
	server, _ := os.ReadFile("wallboard.go")
	used := map[string]bool{}
	for _, re := range []string{`{{(?:t|html) "([\w.]+)"}}`, `data-i18n(?:-html)?="([\w.]+)"`} {
		for _, m := range regexp.MustCompile(re).FindAllStringSubmatch(string(page), -1) {
			used[m[1]] = true
		}
	}
	for _, m := range regexp.MustCompile(`'(\w+(?:\.\w+)?)'`).FindAllStringSubmatch(string(script), -1) {
		if _, ok := en[m[1]]; ok || strings.Contains(m[1], ".") {
			used[m[1]] = true // T('live'), or an id chosen by a condition
		}
	}
	for _, m := range regexp.MustCompile(`\bT\('([\w.]+)'[,)]`).FindAllStringSubmatch(string(script), -1) {
		used[m[1]] = true
	}
	// Built ids: a status the script lists, an error code the relay sends.
	for _, m := range regexp.MustCompile(`'(free|busy|dinner|break|offline)'`).FindAllStringSubmatch(string(script), -1) {
		used["status."+m[1]] = true
	}
	for _, m := range regexp.MustCompile(`"code": "(\w+)"`).FindAllStringSubmatch(string(server), -1) {
		used["error."+m[1]] = true
	}
	for id := range used {
		if _, ok := en[id]; !ok {
			t.Errorf("%s is used but is in no translation file", id)
		}
	}
	for id := range en {
		if !used[id] {
			t.Errorf("%s is in the translation files but not used", id)
		}
	}
	if len(used) < 30 {
		t.Errorf("only %d ids found: is the scan broken?", len(used))
	}
}
