package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pult/pult/relay/looptest"
)

// The relay killed (SIGKILL, no goodbye) while an outbound call waits for
// its next attempt loses nothing: started again on the same data, it sends
// the job once the partner is back, and never twice.
func TestKilledMidRetryResumes(t *testing.T) {
	bin := relayBinary(t)
	dir := t.TempDir()

	// The PBX: down (503) until told otherwise.
	var mu sync.Mutex
	up := false
	var failed, delivered []url.Values
	pbx := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if r.URL.Path != "/change-status" {
			http.NotFound(w, r)
			return
		}
		if !up {
			failed = append(failed, r.URL.Query())
			http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
			return
		}
		delivered = append(delivered, r.URL.Query())
	}))
	defer pbx.Close()

	addr := looptest.Addr(t)
	base := "http://" + addr
	const clientID = "client-id-kill"
	config := filepath.Join(dir, "relay.toml")
	os.WriteFile(config, fmt.Appendf(nil, `listen = %q
data_dir = %q

[pbx]
client_id = %q
api_key = "pbx-key-123"
change_status_url = %q

[outbox]
min_backoff = "2s"
max_backoff = "3s"
`, addr, filepath.Join(dir, "data"), clientID, pbx.URL+"/change-status"), 0o600)

	start := func() *exec.Cmd { return startRelayProc(t, bin, config, base) }
	relayProc := start()
	defer func() {
		relayProc.Process.Kill()
		relayProc.Wait()
	}()
	if code, out, errs := runCLI(t, nil, "operators", "add", "--config", config, "--name", "Anna", "--user-id", "7", "--code", "100"); code != 0 {
		t.Fatalf("add: %d %q %q", code, out, errs)
	}
	// A status changed in the CRM goes to the PBX through the outbox.
	resp, err := http.Get(base + "/retailcrm/change-status?" + url.Values{
		"clientId": {clientID}, "userId": {"7"}, "code": {"100"}, "status": {"busy"}}.Encode())
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("change-status: %v %v", resp, err)
	}
	resp.Body.Close()
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		waitLocked(t, &mu, what, cond, nil)
	}
	waitFor("a failed attempt", func() bool { return len(failed) >= 1 })

	// Killed while the job waits for its next attempt.
	relayProc.Process.Signal(syscall.SIGKILL)
	relayProc.Wait()
	mu.Lock()
	up = true
	mu.Unlock()
	relayProc = start()
	// The killed relay's admin socket was left behind; the new one replaced it.
	if code, out, errs := runCLI(t, nil, "operators", "list", "--config", config); code != 0 || !strings.Contains(out, "Anna") {
		t.Errorf("operators list after the restart: %d %q %q", code, out, errs)
	}

	// The job comes back when its ack wait (30 s) runs out: the kill lost the
	// in-memory timer of its delayed retry, not the job.
	waitFor("the status delivered", func() bool { return len(delivered) >= 1 })
	time.Sleep(4 * time.Second) // longer than max_backoff: a second send would show
	mu.Lock()
	defer mu.Unlock()
	if len(delivered) != 1 {
		t.Fatalf("delivered %d times, want once: %v", len(delivered), delivered)
	}
	q := delivered[0]
	if q.Get("status") != "busy" || q.Get("code") != "100" || q.Get("userId") != "7" || q.Get("clientId") != clientID {
		t.Errorf("the PBX got %v", q)
	}
	if !strings.Contains(fmt.Sprint(failed[0]), "busy") {
		t.Errorf("the failed attempt was %v", failed[0])
	}
}
