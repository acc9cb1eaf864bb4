package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pult/pult/ui"
)

// startReporter tells the operator why the desktop app did not start where
// stderr reaches nobody: pult.exe is a GUI program on Windows, started from
// the Start menu or a tel: link, with no console to print to. Each failure
// is appended to a log file and shown in a message box, in the app's
// language. Only the desktop app's start reports; the command line's
// errors are its output.
type startReporter struct {
	// logPath is the file each failure is appended to (%LOCALAPPDATA%\pult\pult.log).
	logPath string
	// show shows a message box and returns once it is closed; nil shows none.
	show func(title, text string)
	now  func() time.Time
}

// report tells of one failure: msg is what went to stderr (English);
// link, when the failure is a tel:/callto: link without a number, the link.
func (r *startReporter) report(languages []string, link, msg string) {
	now := time.Now
	if r.now != nil {
		now = r.now
	}
	logged := r.logPath
	if err := appendStartLog(r.logPath, now(), msg); err != nil {
		logged = ""
	}
	if r.show != nil {
		title, text := ui.StartFailure(languages, link, msg, logged)
		r.show(title, text)
	}
}

// appendStartLog adds one line, "<RFC 3339 time> pult did not start: msg",
// to the file at path, making its folder.
func appendStartLog(path string, at time.Time, msg string) error {
	if path == "" {
		return fmt.Errorf("no log file")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	msg = strings.ReplaceAll(strings.ReplaceAll(msg, "\r", " "), "\n", " ")
	_, err = fmt.Fprintf(f, "%s pult did not start: %s\r\n", at.UTC().Format(time.RFC3339), msg)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// startLogPath is %LOCALAPPDATA%\pult\pult.log (on other systems the same
// under the user cache folder), or "" when neither is known.
func startLogPath(env func(string) string) string {
	dir := env("LOCALAPPDATA")
	if dir == "" {
		d, err := os.UserCacheDir()
		if err != nil {
			return ""
		}
		dir = d
	}
	return filepath.Join(dir, "pult", "pult.log")
}
