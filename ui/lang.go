package ui

import (
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"sync"
	"time"

	"github.com/nicksnyder/go-i18n/v2/i18n"
	"golang.org/x/text/language"
)

// The words a person reads live in translations/<lang>.json, one file per
// language, in go-i18n's format (fyne's lang uses the same library and
// files): a message id and its text, or for a count its plural forms
// (English one/other; Russian one/few/many/other). docs/translating.md says
// how to add a string or a language.
//
// The app does not use fyne's lang package for its own words: lang keeps
// one localizer per process, chosen from the environment, with no way to
// ask for a language. Here each App has its own, chosen by
// Config.Languages, so PULT_LANG needs no changed environment and tests
// draw English and Russian side by side.

//go:embed translations/*.json
var translationFiles embed.FS

// supported are the languages pult has words for; the first is used when
// none of the operator's languages is among them.
var supported = []language.Tag{language.English, language.Russian}

// bundle holds every translation, read once from the embedded files.
var bundle = sync.OnceValues(func() (*i18n.Bundle, error) {
	b := i18n.NewBundle(language.English)
	b.RegisterUnmarshalFunc("json", json.Unmarshal)
	files, err := fs.Glob(translationFiles, "translations/*.json")
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		data, err := translationFiles.ReadFile(f)
		if err != nil {
			return nil, err
		}
		if _, err := b.ParseMessageFileBytes(data, f); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
	}
	return b, nil
})

// words speaks one language. It never changes once made, so any goroutine
// may use it.
type words struct {
	tag language.Tag
	loc *i18n.Localizer
}

// matchLanguage returns the language pult speaks for an operator who reads
// prefs (BCP 47 tags such as "ru-RU" or POSIX ones such as "ru_RU.UTF-8", in
// order of preference): the first pult has words for, else English.
func matchLanguage(prefs ...string) language.Tag {
	var tags []language.Tag
	for _, p := range prefs {
		if t, err := language.Parse(posixToBCP47(p)); err == nil {
			tags = append(tags, t)
		}
	}
	_, i, conf := language.NewMatcher(supported).Match(tags...)
	if conf == language.No {
		return supported[0]
	}
	return supported[i]
}

// posixToBCP47 turns "ru_RU.UTF-8@euro" into "ru-RU".
func posixToBCP47(s string) string {
	for i, r := range s {
		if r == '.' || r == '@' {
			s = s[:i]
			break
		}
	}
	b := []byte(s)
	for i := range b {
		if b[i] == '_' {
			b[i] = '-'
		}
	}
	return string(b)
}

func newWords(prefs []string) *words {
	tag := matchLanguage(prefs...)
	b, err := bundle()
	if err != nil {
		// The files are embedded and tested: this is a build gone wrong.
		panic("ui: translations: " + err.Error())
	}
	return &words{tag: tag, loc: i18n.NewLocalizer(b, tag.String())}
}

// T returns the message id with its {{.Key}} fields filled from kv, pairs
// of a key and a value. A missing id shows as itself (the tests fail on
// one).
func (w *words) T(id string, kv ...any) string {
	s, err := w.loc.Localize(&i18n.LocalizeConfig{MessageID: id, TemplateData: pairs(kv)})
	if err != nil {
		return id
	}
	return s
}

// N returns the form of message id for the count n, which its text reads
// as {{.N}}.
func (w *words) N(id string, n int, kv ...any) string {
	data := pairs(kv)
	data["N"] = n
	s, err := w.loc.Localize(&i18n.LocalizeConfig{MessageID: id, PluralCount: n, TemplateData: data})
	if err != nil {
		return id
	}
	return s
}

func pairs(kv []any) map[string]any {
	m := make(map[string]any, len(kv)/2+1)
	for i := 0; i+1 < len(kv); i += 2 {
		m[fmt.Sprint(kv[i])] = kv[i+1]
	}
	return m
}

// Dates and times in the language's own form, always 24-hour: English
// "02 Jan 15:04" and "Mon 2 Jan at 15:04", Russian "2 дек. 15:04" and
// "пн, 2 дек. в 15:04".

var monthIDs = [...]string{"month.jan", "month.feb", "month.mar", "month.apr", "month.may", "month.jun",
	"month.jul", "month.aug", "month.sep", "month.oct", "month.nov", "month.dec"}

var weekdayIDs = [...]string{"weekday.sun", "weekday.mon", "weekday.tue", "weekday.wed", "weekday.thu",
	"weekday.fri", "weekday.sat"}

func (w *words) dateFields(t time.Time) []any {
	return []any{
		"Day", t.Day(),
		"Day2", t.Format("02"),
		"Month", w.T(monthIDs[t.Month()-1]),
		"Weekday", w.T(weekdayIDs[t.Weekday()]),
		"Time", t.Format("15:04"),
	}
}

// dayTime is a day of the month and a time: a call in Recent calls.
func (w *words) dayTime(t time.Time) string { return w.T("date.dayTime", w.dateFields(t)...) }

// weekdayTime is a weekday, a day and a time: when a callback is due.
func (w *words) weekdayTime(t time.Time) string {
	return w.T("date.weekdayTime", w.dateFields(t)...)
}

// duration is a short wait such as a reconnect's: "4s" or "4 с".
func (w *words) duration(d time.Duration) string {
	d = d.Round(time.Second)
	m, s := int(d/time.Minute), int((d%time.Minute)/time.Second)
	if m == 0 {
		return w.T("duration.seconds", "S", s)
	}
	return w.T("duration.minutesSeconds", "M", m, "S", s)
}
