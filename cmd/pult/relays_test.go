package main

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pult/pult/agent/agenttest"
	"github.com/pult/pult/agent/credentials"
)

// Several relays: pult login --relay and PULT_RELAY take a comma-separated
// list; status and watch say which relay pult is on.
func TestSeveralRelays(t *testing.T) {
	r1, r2 := agenttest.New(t), agenttest.New(t)
	down := agenttest.New(t)
	downURL := down.URL
	down.Close()
	env := testEnv(t)

	runCLI(t, env, agenttest.Token, "login", "--relay", "https://relay1.example.com,https://relay1.example.com/").
		expect(t, exitUsage, "", `relay URL "https://relay1.example.com" is listed twice`)
	runCLI(t, env, agenttest.Token, "login", "--relay", "https://relay1.example.com,http://relay2.example.com:8700").
		expect(t, exitUsage, "", "http://relay2.example.com:8700 would send your token unencrypted to relay2.example.com")
	runCLI(t, env, agenttest.Token, "login", "--relay", downURL+",http://127.0.0.1:1", "--timeout", "3s").
		expect(t, exitOffline, "", "cannot reach any of the relays "+downURL+", http://127.0.0.1:1")

	// One relay down at sign-in is fine: the list is stored as given.
	list := downURL + "," + r1.URL + "," + r2.URL
	runCLI(t, env, agenttest.Token, "login", "--relay", downURL+", "+r1.URL+"/ ,"+r2.URL).
		expect(t, exitOK, "Signed in to "+list+" as Anna", "")
	l, err := (credentials.Store{ConfigDir: env["PULT_CONFIG_DIR"]}).Load()
	if err != nil || l.RelayURL != list || l.Token != agenttest.Token {
		t.Fatalf("stored %+v, %v; want the list %q", l, err, list)
	}

	res := runCLI(t, env, "", "status")
	_, host, _ := strings.Cut(res.stdout, "Relay: ")
	host = strings.TrimSpace(host)
	if res.code != exitOK || (host != strings.TrimPrefix(r1.URL, "http://") && host != strings.TrimPrefix(r2.URL, "http://")) {
		t.Errorf("status: exit %d, stdout %q; want a line naming the relay", res.code, res.stdout)
	}

	// PULT_RELAY too; every relay down is said so.
	env = testEnv(t, "PULT_RELAY", downURL+",http://127.0.0.1:1", "PULT_TOKEN", agenttest.Token)
	runCLI(t, env, "", "status", "--timeout", "300ms").
		expect(t, exitOffline, "", "could not connect to any of the relays "+downURL+", http://127.0.0.1:1 within 300ms")

	// watch names the relay of each connection event, and follows a move.
	r1.Refuse(http.StatusServiceUnavailable, nil)
	env = testEnv(t, "PULT_RELAY", r1.URL+","+r2.URL, "PULT_TOKEN", agenttest.Token)
	var out, errb syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"watch"}, func(k string) string { return env[k] }, strings.NewReader(""), &out, &errb)
	}()
	r2.Wait(t, 5*time.Second, "connection", r2.Connected)
	deadline := time.Now().Add(5 * time.Second)
	want := `"state":"online","relay":"` + strings.TrimPrefix(r2.URL, "http://") + `"`
	for !strings.Contains(out.String(), want) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if code := <-done; code != exitOK {
		t.Errorf("watch: exit %d, stderr %q", code, errb.String())
	}
	var lines []map[string]any
	for _, s := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(s), &m); err != nil {
			t.Fatalf("watch line %q: %v", s, err)
		}
		if m["event"] == "connection" {
			lines = append(lines, m)
		}
	}
	var online int
	for _, m := range lines {
		if m["relay"] == nil || m["relay"] == "" {
			t.Errorf("a connection line without its relay: %v", m)
		}
		if m["state"] == "online" {
			online++
			if m["relay"] != strings.TrimPrefix(r2.URL, "http://") {
				t.Errorf("online on %v, want the relay that accepts", m["relay"])
			}
		}
	}
	if online != 1 {
		t.Errorf("%d online lines in %s", online, out.String())
	}
}
