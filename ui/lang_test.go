package ui

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/text/language"
)

// readTranslations reads translations/<lang>.json as id → forms (a plain
// string is the form "other").
func readTranslations(t *testing.T, lang string) map[string]map[string]string {
	t.Helper()
	b, err := translationFiles.ReadFile("translations/" + lang + ".json")
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatalf("%s.json: %v", lang, err)
	}
	out := map[string]map[string]string{}
	for id, v := range raw {
		var s string
		if json.Unmarshal(v, &s) == nil {
			out[id] = map[string]string{"other": s}
			continue
		}
		var forms map[string]string
		if err := json.Unmarshal(v, &forms); err != nil {
			t.Fatalf("%s.json: %s: neither a text nor plural forms: %v", lang, id, err)
		}
		out[id] = forms
	}
	return out
}

// sourceStrings returns the string literals in the package's own files
// (not the tests) that look like message ids, and those passed to T or N.
func sourceStrings(t *testing.T) (literals, called map[string]string) {
	t.Helper()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	idLike := regexp.MustCompile(`^[a-z]+(\.[a-zA-Z]+)+$`)
	literals, called = map[string]string{}, map[string]string{}
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(file, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.BasicLit:
				if s, err := strconv.Unquote(n.Value); n.Kind == token.STRING && err == nil && idLike.MatchString(s) {
					literals[s] = fset.Position(n.Pos()).String()
				}
			case *ast.CallExpr:
				sel, ok := n.Fun.(*ast.SelectorExpr)
				if !ok || (sel.Sel.Name != "T" && sel.Sel.Name != "N") || len(n.Args) == 0 {
					return true
				}
				if lit, ok := n.Args[0].(*ast.BasicLit); ok && lit.Kind == token.STRING {
					s, _ := strconv.Unquote(lit.Value)
					called[s] = fset.Position(lit.Pos()).String()
				}
			}
			return true
		})
	}
	return literals, called
}

var fieldRE = regexp.MustCompile(`{{\s*\.(\w+)\s*}}`)

func fields(s string) []string {
	var out []string
	for _, m := range fieldRE.FindAllStringSubmatch(s, -1) {
		out = append(out, m[1])
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Every message has its English and its Russian, with the right plural
// forms and the same {{.Fields}}; every id the code asks for exists, and
// every id in the files is used.
func TestTranslationsComplete(t *testing.T) {
	en, ru := readTranslations(t, "en"), readTranslations(t, "ru")
	for id := range en {
		if _, ok := ru[id]; !ok {
			t.Errorf("%s: in en.json, missing from ru.json", id)
		}
	}
	for id := range ru {
		if _, ok := en[id]; !ok {
			t.Errorf("%s: in ru.json, missing from en.json", id)
		}
	}
	plural := map[string][]string{"en": {"one", "other"}, "ru": {"few", "many", "one", "other"}}
	for lang, msgs := range map[string]map[string]map[string]string{"en": en, "ru": ru} {
		for id, forms := range msgs {
			if len(forms) > 1 {
				if got := slices.Sorted(maps.Keys(forms)); !slices.Equal(got, plural[lang]) {
					t.Errorf("%s.json: %s has the plural forms %v, want %v", lang, id, got, plural[lang])
				}
			}
			for form, text := range forms {
				if strings.TrimSpace(text) == "" {
					t.Errorf("%s.json: %s (%s) is empty", lang, id, form)
				}
				if strings.HasPrefix(id, "date.") {
					// A date may use any of the fields dateFields gives.
					for _, f := range fields(text) {
						if !slices.Contains([]string{"Day", "Day2", "Month", "Weekday", "Time"}, f) {
							t.Errorf("%s.json: %s (%s) has the unknown field %s", lang, id, form, f)
						}
					}
				} else if want := fields(en[id]["other"]); !slices.Equal(fields(text), want) {
					t.Errorf("%s.json: %s (%s) has the fields %v, English has %v", lang, id, form, fields(text), want)
				}
			}
		}
	}
	literals, called := sourceStrings(t)
	for id, at := range called {
		if _, ok := en[id]; !ok {
			t.Errorf("%s: message %q is in no translation file", at, id)
		}
	}
	for id := range en {
		if _, ok := literals[id]; !ok {
			t.Errorf("%s: in the translation files but not used by the code", id)
		}
	}
	if len(called) < 100 {
		t.Errorf("only %d message ids found in the code: is the scan broken?", len(called))
	}
}

// Russian counts take one of three forms: 1 пропущенный звонок, 2
// пропущенных звонка, 5 пропущенных звонков — and 11–14 are "many".
func TestPlurals(t *testing.T) {
	ru, en := newWords([]string{"ru"}), newWords([]string{"en"})
	for n, want := range map[int]string{
		0:   "0 пропущенных звонков",
		1:   "1 пропущенный звонок",
		2:   "2 пропущенных звонка",
		4:   "4 пропущенных звонка",
		5:   "5 пропущенных звонков",
		11:  "11 пропущенных звонков",
		12:  "12 пропущенных звонков",
		14:  "14 пропущенных звонков",
		21:  "21 пропущенный звонок",
		22:  "22 пропущенных звонка",
		25:  "25 пропущенных звонков",
		101: "101 пропущенный звонок",
		111: "111 пропущенных звонков",
		112: "112 пропущенных звонков",
		122: "122 пропущенных звонка",
	} {
		if got := ru.N("calls.missed", n); got != want {
			t.Errorf("ru %d: %q, want %q", n, got, want)
		}
	}
	for n, want := range map[int]string{1: "В очереди 1 звонок", 3: "В очереди 3 звонка", 11: "В очереди 11 звонков", 21: "В очереди 21 звонок"} {
		if got := ru.N("queue.waitingCalls", n); got != want {
			t.Errorf("ru waiting %d: %q, want %q", n, got, want)
		}
	}
	for n, want := range map[int]string{1: "1 missed", 2: "2 missed", 21: "21 missed"} {
		if got := en.N("calls.missed", n); got != want {
			t.Errorf("en %d: %q, want %q", n, got, want)
		}
	}
}

func TestMatchLanguage(t *testing.T) {
	for _, c := range []struct {
		prefs []string
		want  language.Tag
	}{
		{nil, language.English},
		{[]string{"ru"}, language.Russian},
		{[]string{"ru-RU"}, language.Russian},
		{[]string{"ru_RU.UTF-8"}, language.Russian},
		{[]string{"en_GB.UTF-8"}, language.English},
		{[]string{"C"}, language.English},
		{[]string{"C.UTF-8"}, language.English},
		{[]string{"POSIX"}, language.English},
		{[]string{"de-DE"}, language.English},
		{[]string{"de-DE", "ru-RU"}, language.Russian},
		{[]string{"", "??", "ru"}, language.Russian},
		// CLDR's matcher: Kazakh and Belarusian readers get Russian, a
		// Ukrainian one English unless Russian is also listed.
		{[]string{"kk-KZ"}, language.Russian},
		{[]string{"uk-UA"}, language.English},
		{[]string{"uk-UA", "ru-RU"}, language.Russian},
	} {
		if got := matchLanguage(c.prefs...); got != c.want {
			t.Errorf("matchLanguage(%q) = %v, want %v", c.prefs, got, c.want)
		}
	}
}

func TestDatesAndDurations(t *testing.T) {
	at := time.Date(2026, 12, 2, 18, 40, 0, 0, time.UTC)
	ru, en := newWords([]string{"ru"}), newWords([]string{"en"})
	for _, c := range []struct{ got, want string }{
		{ru.dayTime(at), "2 дек. 18:40"},
		{en.dayTime(at), "02 Dec 18:40"},
		{ru.weekdayTime(at), "ср, 2 дек. в 18:40"},
		{en.weekdayTime(at), "Wed 2 Dec at 18:40"},
		{ru.dayTime(at.AddDate(0, -7, 0)), "2 мая 18:40"},
		{ru.duration(4 * time.Second), "4 с"},
		{en.duration(4 * time.Second), "4s"},
		{ru.duration(64 * time.Second), "1 мин 4 с"},
		{en.duration(64 * time.Second), (64 * time.Second).String()},
	} {
		if c.got != c.want {
			t.Errorf("%q, want %q", c.got, c.want)
		}
	}
}

// The Russian status words, as an operator reads them; "Занят" is what
// the tray's busy item must say.
func TestRussianStatuses(t *testing.T) {
	ru := newWords([]string{"ru-RU"})
	got := []string{}
	for _, st := range []string{"free", "busy", "dinner", "break", "offline"} {
		got = append(got, ru.T("status."+st))
	}
	if want := "Свободен|Занят|Обед|Перерыв|Не в сети"; strings.Join(got, "|") != want {
		t.Errorf("statuses %q, want %q", got, want)
	}
}
