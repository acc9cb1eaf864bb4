package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pult/pult/agent"
	"github.com/pult/pult/agent/wire"
	"github.com/pult/pult/relay/admin"
	"github.com/pult/pult/relay/looptest"
	"github.com/pult/pult/relay/operators"
	"github.com/pult/pult/relay/retailcrm"
	"github.com/pult/pult/relay/retailcrm/sim"
)

// A relay stopped while responsible-manager lookups wait for retailCRM —
// killed with SIGKILL, or stopped cleanly — leaves no card "looking up the
// manager": started again on the same data, it resumes every pending lookup
// and the operator's agent, resuming its stream, gets each call's outcome:
// the manager for a known client, "none" for a number retailCRM does not
// know.
func TestStoppedWithLookupsPendingResumes(t *testing.T) {
	bin := relayBinary(t)
	dir := t.TempDir()

	crm := sim.NewCRM("crm-key-kill")
	crm.SetHang(true) // every lookup waits until the relay gives up or dies
	crmSrv := httptest.NewServer(crm)
	defer crmSrv.Close()
	crm.SetAccountURL(crmSrv.URL)

	addr := looptest.Addr(t)
	base := "http://" + addr
	const adminToken, pbxKey = "admin-token-0123456789", "pbx-key-123"
	config := filepath.Join(dir, "relay.toml")
	os.WriteFile(config, fmt.Appendf(nil, `listen = %q
data_dir = %q
admin_token = %q

[pbx]
client_id = "client-id-lookups"
api_key = %q

[retailcrm]
url = %q
api_key = "crm-key-kill"
timeout = "60s"
`, addr, filepath.Join(dir, "data"), adminToken, pbxKey, crmSrv.URL), 0o600)

	proc := startRelayProc(t, bin, config, base)
	defer func() {
		proc.Process.Kill()
		proc.Wait()
	}()
	ctx := context.Background()
	added, err := (&admin.Client{Socket: filepath.Join(dir, "data", "admin.sock")}).AddOperator(ctx, operators.NewOperator{Name: "Anna", Code: "100", UserID: "7"})
	if err != nil {
		t.Fatal(err)
	}

	// The operator's agent keeps the latest card of each call.
	var mu sync.Mutex
	latest := map[string]wire.Call{}
	a, err := agent.New(agent.Config{
		RelayURL: base, Token: added.Token, Logger: slog.New(slog.DiscardHandler),
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
		OnEvent: func(e agent.Event) {
			if e.Kind == agent.EventCall {
				mu.Lock()
				latest[e.Call.ID] = *e.Call
				mu.Unlock()
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	actx, stopAgent := context.WithCancel(ctx)
	agentDone := make(chan error, 1)
	go func() { agentDone <- a.Run(actx) }()
	defer func() {
		stopAgent()
		<-agentDone
	}()

	waitFor := func(what string, cond func() bool) {
		t.Helper()
		waitLocked(t, &mu, what, cond, func() string { return "cards: " + managerStates(latest) })
	}
	// Cards rung before the agent's first connection would not reach it
	// (a new agent starts at the stream's end).
	for deadline := time.Now().Add(30 * time.Second); a.State() != agent.Online; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the agent did not connect")
		}
	}
	ring := func(id, phone string) {
		t.Helper()
		ev := fmt.Sprintf(`{"type":"in","phone":%q,"codes":["100"],"callExternalId":%q}`, phone, id)
		req, _ := http.NewRequest("POST", base+retailcrm.PathCallEvent, strings.NewReader(url.Values{"event": {ev}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-API-KEY", pbxKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("call event %s: %d", id, resp.StatusCode)
		}
	}

	for round, stop := range []struct {
		name string
		sig  syscall.Signal
	}{{"SIGKILL", syscall.SIGKILL}, {"SIGTERM", syscall.SIGTERM}} {
		crm.SetHang(true)
		const calls = 12
		ids := make([]string, calls)
		known := map[string]bool{}
		for i := range calls {
			ids[i] = fmt.Sprintf("r%d-c%d", round, i)
			ring(ids[i], fmt.Sprintf("+7912%d0000%02d", round, i))
		}
		waitFor(stop.name+": every card looking up the manager", func() bool {
			for _, id := range ids {
				if c, ok := latest[id]; !ok || c.ManagerState != wire.ManagerPending {
					return false
				}
			}
			return true
		})
		if err := proc.Process.Signal(stop.sig); err != nil {
			t.Fatal(err)
		}
		proc.Wait()

		// While the relay is down retailCRM comes back; half the callers
		// are clients of Boris, the other half it does not know.
		crm.SetHang(false)
		for i, id := range ids {
			if i%2 == 0 {
				known[id] = true
				if err := crm.AddClient(fmt.Sprintf("+7912%d0000%02d", round, i), retailcrm.Customer{ID: fmt.Sprint(100*round + i), FirstName: "Client"},
					&retailcrm.Manager{ID: "2", FirstName: "Boris", LastName: "Orlov", Code: "101"}); err != nil {
					t.Fatal(err)
				}
			}
		}
		proc = startRelayProc(t, bin, config, base)

		waitFor(stop.name+": every card's manager settled", func() bool {
			for _, id := range ids {
				if c := latest[id]; c.ManagerState == wire.ManagerPending {
					return false
				}
			}
			return true
		})
		mu.Lock()
		for _, id := range ids {
			c := latest[id]
			want := wire.ManagerNone
			if known[id] {
				want = wire.ManagerFound
			}
			if c.ManagerState != want || (want == wire.ManagerFound && (c.Manager == nil || c.Manager.Code != "101")) {
				t.Errorf("%s: call %s: manager %s %+v, want %s", stop.name, id, c.ManagerState, c.Manager, want)
			}
		}
		mu.Unlock()
	}
}

func managerStates(cards map[string]wire.Call) string {
	var b strings.Builder
	for id, c := range cards {
		fmt.Fprintf(&b, "%s=%s ", id, c.ManagerState)
	}
	return b.String()
}
