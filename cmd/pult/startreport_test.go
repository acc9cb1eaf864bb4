package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A desktop app that cannot start says why where stderr reaches nobody: a
// line in the log file and a message box, in the app's language. The
// command line's errors are only its output.
func TestStartFailureReported(t *testing.T) {
	at := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	logPath := filepath.Join(t.TempDir(), "pult", "pult.log")
	type box struct{ title, text string }
	var shown []box
	rep := &startReporter{logPath: logPath, now: func() time.Time { return at },
		show: func(title, text string) { shown = append(shown, box{title, text}) }}
	start := func(env map[string]string, args ...string) result {
		t.Helper()
		var out, errb syncBuffer
		code := runReporting(context.Background(), args, func(k string) string { return env[k] }, strings.NewReader(""), &out, &errb, rep)
		return result{code, out.String(), errb.String()}
	}

	// A tel: link without a number, in Russian.
	start(testEnv(t, "PULT_LANG", "ru"), "tel:").expect(t, exitUsage, "", `pult: the link "tel:" has no number`)
	if len(shown) != 1 || shown[0].title != "pult не запустился" ||
		shown[0].text != "В ссылке «tel:» нет номера, который pult мог бы набрать.\n\nЭто сообщение записано и в "+logPath+"." {
		t.Errorf("box: %q", shown)
	}
	// A bad PULT_RELAY, in English.
	start(testEnv(t, "PULT_LANG", "en", "PULT_RELAY", "ftp://relay.example", "PULT_TOKEN", "t")).
		expect(t, exitUsage, "", "pult: PULT_RELAY: ")
	if len(shown) != 2 || shown[1].title != "pult did not start" || !strings.HasPrefix(shown[1].text, "pult could not start: PULT_RELAY: ") {
		t.Errorf("box: %q", shown[1:])
	}
	b, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\r\n"), "\r\n")
	if len(lines) != 2 || lines[0] != `2026-12-03T09:00:00Z pult did not start: the link "tel:" has no number` ||
		!strings.HasPrefix(lines[1], "2026-12-03T09:00:00Z pult did not start: PULT_RELAY: ") {
		t.Errorf("pult.log:\n%s", b)
	}

	// A command's failure is not the app's start.
	start(testEnv(t), "status").expect(t, exitOffline, "", "not signed in")
	if len(shown) != 2 {
		t.Errorf("a command's failure was shown: %q", shown[2:])
	}

	// No log file to write: the box still says why, without naming it.
	rep.logPath = filepath.Join(logPath, "not-a-folder", "pult.log")
	start(testEnv(t, "PULT_LANG", "en"), "callto:").expect(t, exitUsage, "", "has no number")
	if len(shown) != 3 || strings.Contains(shown[2].text, "pult.log") {
		t.Errorf("box without a log: %q", shown[2:])
	}
}

func TestStartLogPath(t *testing.T) {
	env := map[string]string{"LOCALAPPDATA": `C:\Users\anna\AppData\Local`}
	if got, want := startLogPath(func(k string) string { return env[k] }), filepath.Join(`C:\Users\anna\AppData\Local`, "pult", "pult.log"); got != want {
		t.Errorf("%q, want %q", got, want)
	}
}
