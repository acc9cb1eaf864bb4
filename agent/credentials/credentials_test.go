package credentials

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/zalando/go-keyring"
)

// mocked records that the process-wide keyring provider is now a mock.
var mocked bool

func useMock(t *testing.T, err error) Store {
	t.Helper()
	if err != nil {
		keyring.MockInitWithError(err)
	} else {
		keyring.MockInit()
	}
	mocked = true
	return Store{ConfigDir: filepath.Join(t.TempDir(), "pult")}
}

func TestSaveLoadDelete(t *testing.T) {
	s := useMock(t, nil)
	if _, err := s.Load(); !errors.Is(err, ErrNotSignedIn) {
		t.Fatalf("Load on a fresh store = %v, want ErrNotSignedIn", err)
	}
	if err := s.Save(Login{RelayURL: "https://relay.example.com", Token: "secret-token"}); err != nil {
		t.Fatal(err)
	}
	l, err := s.Load()
	if err != nil || l != (Login{RelayURL: "https://relay.example.com", Token: "secret-token"}) {
		t.Fatalf("Load = %+v, %v", l, err)
	}
	path := filepath.Join(s.ConfigDir, configFile)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	// Windows has no mode bits (%APPDATA% is the user's by its ACL).
	if runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600 {
		t.Errorf("config mode %v, want 0600", fi.Mode().Perm())
	}
	b, _ := os.ReadFile(path)
	if strings.Contains(string(b), "secret-token") || !strings.Contains(string(b), "relay.example.com") {
		t.Errorf("config file = %s", b)
	}
	if got, err := keyring.Get(DefaultService, "https://relay.example.com"); err != nil || got != "secret-token" {
		t.Errorf("keyring item = %q, %v; want user = relay URL", got, err)
	}

	// Signing in elsewhere replaces the old token.
	if err := s.Save(Login{RelayURL: "https://other.example.com", Token: "tok2"}); err != nil {
		t.Fatal(err)
	}
	if _, err := keyring.Get(DefaultService, "https://relay.example.com"); !errors.Is(err, keyring.ErrNotFound) {
		t.Errorf("old token still in the keyring: %v", err)
	}

	if err := s.Delete(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(); !errors.Is(err, ErrNotSignedIn) {
		t.Errorf("Load after Delete = %v", err)
	}
	if err := s.Delete(); err != nil {
		t.Errorf("second Delete = %v", err)
	}
}

func TestURLWithoutToken(t *testing.T) {
	s := useMock(t, nil)
	if err := s.Save(Login{RelayURL: "https://relay.example.com", Token: "tok"}); err != nil {
		t.Fatal(err)
	}
	// Someone edited the URL in the config file: there is no token for it.
	os.WriteFile(filepath.Join(s.ConfigDir, configFile), []byte(`{"relayURL":"https://elsewhere.example.com"}`), 0o600)
	l, err := s.Load()
	if !errors.Is(err, ErrNotSignedIn) || l.RelayURL != "https://elsewhere.example.com" || !strings.Contains(err.Error(), "elsewhere") {
		t.Errorf("Load = %+v, %v", l, err)
	}
}

func TestNoKeyring(t *testing.T) {
	s := useMock(t, errors.New("The name org.freedesktop.secrets was not provided by any .service files"))
	err := s.Save(Login{RelayURL: "https://relay.example.com", Token: "tok"})
	if !errors.Is(err, ErrNoKeyring) || !strings.Contains(err.Error(), "set PULT_RELAY and PULT_TOKEN instead") || !strings.Contains(err.Error(), keyringName(runtime.GOOS)) {
		t.Errorf("Save = %v", err)
	}
	if _, err := os.Stat(filepath.Join(s.ConfigDir, configFile)); !os.IsNotExist(err) {
		t.Errorf("config written although the token was not stored: %v", err)
	}
	os.MkdirAll(s.ConfigDir, 0o700)
	os.WriteFile(filepath.Join(s.ConfigDir, configFile), []byte(`{"relayURL":"https://relay.example.com"}`), 0o600)
	if _, err := s.Load(); !errors.Is(err, ErrNoKeyring) {
		t.Errorf("Load = %v", err)
	}
}

func TestSaveRefusesEmpty(t *testing.T) {
	s := useMock(t, nil)
	if err := s.Save(Login{RelayURL: "", Token: "tok"}); err == nil {
		t.Error("empty URL accepted")
	}
	if err := s.Save(Login{RelayURL: "https://relay", Token: ""}); err == nil {
		t.Error("empty token accepted")
	}
}

// The operator's choice to allow plain text is kept with the URL, and a
// sign-in without it clears it.
func TestInsecureRemembered(t *testing.T) {
	s := useMock(t, nil)
	in := Login{RelayURL: "http://relay.example.com", Token: "tok", Insecure: true}
	if err := s.Save(in); err != nil {
		t.Fatal(err)
	}
	if l, err := s.Load(); err != nil || l != in {
		t.Fatalf("Load = %+v, %v; want %+v", l, err, in)
	}
	if err := s.Save(Login{RelayURL: "http://relay.example.com", Token: "tok"}); err != nil {
		t.Fatal(err)
	}
	if l, err := s.Load(); err != nil || l.Insecure {
		t.Fatalf("Load after a secure sign-in = %+v, %v", l, err)
	}
	b, _ := os.ReadFile(filepath.Join(s.ConfigDir, configFile))
	if strings.Contains(string(b), "insecure") {
		t.Errorf("config file = %s", b)
	}
}
