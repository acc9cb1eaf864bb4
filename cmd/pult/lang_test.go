package main

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/pult/pult/cmd/pult/internal/quietstart"
)

// The command line says nothing of the toolkit, whatever the locale: fyne
// logs "Error parsing user locale C" while it initialises with LANG=C.UTF-8,
// and quietstart must have been initialised before it to hold that back.
// The test runs this test binary again (the same packages as pult, in the
// same order) under each locale, with a command that fails fast.
func TestQuietStart(t *testing.T) {
	if os.Getenv("PULT_QUIET_CHILD") != "" {
		quietChild()
		return
	}
	for _, env := range [][]string{
		{"LANG=C"}, {"LANG=C.UTF-8"}, {"LANG=POSIX"}, {}, {"LC_ALL=C"}, {"LC_ALL=C.UTF-8", "LANG=ru_RU.UTF-8"},
		{"LANG=ru_RU.UTF-8"}, {"LANGUAGE=C.UTF-8:ru", "LANG=ru_RU.UTF-8"},
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestQuietStart$", "-test.count=1")
		cmd.Env = append([]string{"PULT_QUIET_CHILD=1", "PULT_CONFIG_DIR=" + t.TempDir(), "HOME=" + t.TempDir(), "PATH=" + os.Getenv("PATH")}, env...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Errorf("%v: %v\nstdout: %s\nstderr: %s", env, err, stdout.String(), stderr.String())
			continue
		}
		if strings.Contains(stderr.String(), "Fyne") || strings.Contains(stdout.String(), "Fyne") {
			t.Errorf("%v: toolkit noise:\nstdout: %s\nstderr: %s", env, stdout.String(), stderr.String())
		}
		if !strings.Contains(stdout.String(), "child ran") {
			t.Errorf("%v: the child did not run: %s", env, stdout.String())
		}
	}
	// The held lines exist (fyne did complain) and PULT_DEBUG shows them.
	cmd := exec.Command(os.Args[0], "-test.run=^TestQuietStart$", "-test.count=1")
	cmd.Env = []string{"PULT_QUIET_CHILD=1", "PULT_DEBUG=1", "LANG=C.UTF-8", "PULT_CONFIG_DIR=" + t.TempDir(), "HOME=" + t.TempDir()}
	out, _ := cmd.CombinedOutput()
	if !strings.Contains(string(out), "Error parsing user locale C") {
		t.Errorf("with PULT_DEBUG and LANG=C.UTF-8 the start-up log is not shown: %s", out)
	}
}

// quietChild is the re-run process: pult's start, then a command whose
// stderr is checked by the parent (not signed in: it fails at once).
func quietChild() {
	startLog(os.Getenv, os.Stderr)
	var stderr bytes.Buffer
	run(context.Background(), []string{"status"}, os.Getenv, strings.NewReader(""), os.Stdout, &stderr)
	os.Stderr.Write(stderr.Bytes())
	os.Stdout.WriteString("child ran\n")
	_ = quietstart.Release(os.Stderr)
}

// The desktop app's languages: PULT_LANG, else the OS's (here the
// environment's, as on Linux).
func TestLanguages(t *testing.T) {
	for _, kv := range [][2]string{{"LANGUAGE", ""}, {"LC_ALL", ""}, {"LC_MESSAGES", ""}, {"LANG", "ru_RU.UTF-8"}} {
		t.Setenv(kv[0], kv[1])
	}
	c := &cli{env: func(k string) string { return map[string]string{"PULT_LANG": "en"}[k] }}
	if got := c.languages(); strings.Join(got, ",") != "en" {
		t.Errorf("PULT_LANG=en: %q", got)
	}
	c = &cli{env: func(string) string { return "" }, log: slog.New(slog.DiscardHandler)}
	if got := c.languages(); strings.Join(got, ",") != "ru-RU" {
		t.Errorf("LANG=ru_RU.UTF-8: %q", got)
	}
	t.Setenv("LANGUAGE", "uk:ru:en")
	if got := c.languages(); strings.Join(got, ",") != "uk,ru,en" {
		t.Errorf("LANGUAGE=uk:ru:en: %q", got)
	}
}
