package main

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// The relay as a process of its own, for the tests that kill it.

var relayBuild struct {
	once sync.Once
	dir  string
	bin  string
	err  error
	out  []byte
}

func TestMain(m *testing.M) {
	code := m.Run()
	if relayBuild.dir != "" {
		os.RemoveAll(relayBuild.dir)
	}
	os.Exit(code)
}

// relayBinary builds pult-relay once for the package's tests.
func relayBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and kills a relay process")
	}
	b := &relayBuild
	b.once.Do(func() {
		if b.dir, b.err = os.MkdirTemp("", "pult-relay-test-"); b.err != nil {
			return
		}
		b.bin = filepath.Join(b.dir, "pult-relay")
		b.out, b.err = exec.Command("go", "build", "-o", b.bin, ".").CombinedOutput()
	})
	if b.err != nil {
		t.Fatalf("build: %v\n%s", b.err, b.out)
	}
	return b.bin
}

// startRelayProc runs `pult-relay serve --config config` and waits until it
// answers /healthz on base.
func startRelayProc(t *testing.T, bin, config, base string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(bin, "serve", "--config", config)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get(base + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return cmd
			}
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatal("the relay did not start")
		}
	}
}

// waitLocked polls cond, under mu, every 20 ms until it holds; after 60 s it
// fails the test, saying what it waited for and, with describe (called
// under mu), what it saw.
func waitLocked(t *testing.T, mu *sync.Mutex, what string, cond func() bool, describe func() string) {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		mu.Lock()
		ok := cond()
		seen := ""
		if !ok && describe != nil && time.Now().After(deadline) {
			seen = "; " + describe()
		}
		mu.Unlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s%s", what, seen)
		}
	}
}
