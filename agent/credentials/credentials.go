// Package credentials keeps the operator's sign-in: the token in the OS
// keyring (Secret Service on Linux, Keychain on macOS, Credential Manager on
// Windows) and the relay URL, which is not secret, in a small config file,
// with the operator's choice to allow plain text to it (Login.Insecure).
// The token is never written to a file.
package credentials

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/zalando/go-keyring"
)

// DefaultService is the keyring service name.
const DefaultService = "pult"

// configFile is the name of the file holding the relay URL.
const configFile = "config.json"

var (
	// ErrNotSignedIn: nothing is stored (or the token for the stored URL is
	// missing).
	ErrNotSignedIn = errors.New("not signed in")
	// ErrNoKeyring: the OS keyring cannot be used.
	ErrNoKeyring = errors.New("no OS keyring available")
)

// Store is where the sign-in lives. The zero value uses the "pult" keyring
// service and os.UserConfigDir()/pult.
type Store struct {
	Service   string // keyring service; DefaultService when empty
	ConfigDir string // directory of config.json; os.UserConfigDir()/pult when empty
}

// Login is one sign-in.
type Login struct {
	// RelayURL is the relay's URL, or several separated by commas
	// (agent.Config.RelayURL); the token is keyed by it in the keyring.
	RelayURL string
	Token    string
	// Insecure: the operator accepted that the token goes unencrypted to
	// RelayURL (http:// or ws:// to another machine; agent.Config.Insecure).
	Insecure bool
}

type config struct {
	RelayURL string `json:"relayURL"`
	Insecure bool   `json:"insecure,omitempty"`
}

func (s Store) service() string {
	if s.Service == "" {
		return DefaultService
	}
	return s.Service
}

func (s Store) configPath() (string, error) {
	dir := s.ConfigDir
	if dir == "" {
		base, err := os.UserConfigDir()
		if err != nil {
			return "", fmt.Errorf("credentials: no config directory: %w", err)
		}
		dir = filepath.Join(base, "pult")
	}
	return filepath.Join(dir, configFile), nil
}

// keyringError explains a keyring failure other than "not found".
func keyringError(err error) error {
	return fmt.Errorf("%w (%s): %v; set PULT_RELAY and PULT_TOKEN instead", ErrNoKeyring, keyringName(runtime.GOOS), err)
}

// keyringName names the OS keyring go-keyring uses on goos.
func keyringName(goos string) string {
	switch goos {
	case "windows":
		return "Windows Credential Manager"
	case "darwin":
		return "macOS Keychain"
	}
	return "Secret Service on D-Bus"
}

// Save stores l.Token in the keyring under l.RelayURL, and l.RelayURL and
// l.Insecure in the config file (a Save without Insecure clears it). A token
// saved for a different URL before is deleted.
func (s Store) Save(l Login) error {
	relayURL, token := strings.TrimSpace(l.RelayURL), l.Token
	if relayURL == "" || token == "" {
		return errors.New("credentials: relay URL and token are required")
	}
	path, err := s.configPath()
	if err != nil {
		return err
	}
	old, _ := readConfig(path)
	if err := keyring.Set(s.service(), relayURL, token); err != nil {
		if errors.Is(err, keyring.ErrSetDataTooBig) {
			return fmt.Errorf("credentials: the token is too large for the OS keyring")
		}
		return keyringError(err)
	}
	if err := writeConfig(path, config{RelayURL: relayURL, Insecure: l.Insecure}); err != nil {
		return fmt.Errorf("credentials: saving %s: %w", path, err)
	}
	if old.RelayURL != "" && old.RelayURL != relayURL {
		keyring.Delete(s.service(), old.RelayURL) // best effort: the old token is useless now
	}
	return nil
}

// Load returns the stored sign-in, ErrNotSignedIn when there is none, or an
// error wrapping ErrNoKeyring. With an error, the Login may still hold the
// stored relay URL (and Insecure), without a token.
func (s Store) Load() (Login, error) {
	path, err := s.configPath()
	if err != nil {
		return Login{}, err
	}
	cfg, err := readConfig(path)
	if errors.Is(err, fs.ErrNotExist) || (err == nil && cfg.RelayURL == "") {
		return Login{}, ErrNotSignedIn
	}
	if err != nil {
		return Login{}, fmt.Errorf("credentials: %w", err)
	}
	l := Login{RelayURL: cfg.RelayURL, Insecure: cfg.Insecure}
	token, err := keyring.Get(s.service(), cfg.RelayURL)
	if errors.Is(err, keyring.ErrNotFound) {
		return l, fmt.Errorf("%w: no token in the OS keyring for %s", ErrNotSignedIn, cfg.RelayURL)
	}
	if err != nil {
		return l, keyringError(err)
	}
	l.Token = token
	return l, nil
}

// Delete removes the token and the config file. Deleting what is not there
// is not an error.
func (s Store) Delete() error {
	path, err := s.configPath()
	if err != nil {
		return err
	}
	cfg, err := readConfig(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("credentials: %w", err)
	}
	if cfg.RelayURL != "" {
		if err := keyring.Delete(s.service(), cfg.RelayURL); err != nil && !errors.Is(err, keyring.ErrNotFound) {
			return keyringError(err)
		}
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("credentials: %w", err)
	}
	return nil
}

func readConfig(path string) (config, error) {
	var cfg config
	b, err := os.ReadFile(path)
	if err != nil {
		return cfg, err
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		return config{}, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// writeConfig replaces path atomically with mode 0600.
func writeConfig(path string, cfg config) error {
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".config.json.*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
