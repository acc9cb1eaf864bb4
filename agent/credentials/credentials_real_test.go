package credentials

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRealKeyring talks to the OS keyring. It runs only with
// PULT_TEST_KEYRING=1, e.g. on Linux:
//
//	dbus-run-session -- sh -c 'echo -n pass | gnome-keyring-daemon --unlock --components=secrets >/dev/null; PULT_TEST_KEYRING=1 go test ./agent/credentials/ -run Real'
//
// With CI=true as well, an unreachable keyring fails the test instead of
// skipping it. It must run before any mock test in the same process (go-keyring
// cannot undo MockInit); this file sorts first, and -run Real is safest.
func TestRealKeyring(t *testing.T) {
	if os.Getenv("PULT_TEST_KEYRING") != "1" {
		t.Skip("set PULT_TEST_KEYRING=1 to test against the real OS keyring")
	}
	ci := os.Getenv("CI") == "true"
	if mocked {
		t.Fatal("the keyring was mocked by an earlier test; run with -run Real")
	}
	var b [6]byte
	rand.Read(b[:])
	s := Store{Service: "pult-test-" + hex.EncodeToString(b[:]), ConfigDir: t.TempDir()}
	const url, token = "https://relay.example.test", "real-keyring-token-42"

	if err := s.Save(Login{RelayURL: url, Token: token}); err != nil {
		if errors.Is(err, ErrNoKeyring) && !ci {
			t.Skipf("no usable OS keyring here: %v", err)
		}
		t.Fatalf("Save: %v", err)
	}
	t.Cleanup(func() { s.Delete() })

	got, err := s.Load()
	if err != nil || got.RelayURL != url || got.Token != token {
		t.Fatalf("Load = %q, %v", got.RelayURL, err)
	}
	b2, err := os.ReadFile(filepath.Join(s.ConfigDir, configFile))
	if err != nil || strings.Contains(string(b2), token) {
		t.Fatalf("config file %q (%v) must exist without the token", b2, err)
	}
	if err := s.Save(Login{RelayURL: url, Token: token + "-2"}); err != nil { // replace, not duplicate
		t.Fatalf("Save again: %v", err)
	}
	if got, err := s.Load(); err != nil || got.Token != token+"-2" {
		t.Fatalf("Load after replace: %v", err)
	}
	if err := s.Delete(); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := s.Load(); !errors.Is(err, ErrNotSignedIn) {
		t.Fatalf("Load after Delete = %v", err)
	}
}
