package bench

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSignHS256(t *testing.T) {
	// The example of RFC 7519's era that jwt.io shows, with its secret.
	const want = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9." +
		"eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ." +
		"SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
	got := signHS256([]byte(`{"sub":"1234567890","name":"John Doe","iat":1516239022}`), []byte("your-256-bit-secret"))
	if got != want {
		t.Errorf("signHS256:\n got %s\nwant %s", got, want)
	}
}

func TestCentrifugoTokens(t *testing.T) {
	toks := centrifugoTokens("k", 2)
	if len(toks) != 2 || toks[0] == toks[1] {
		t.Fatalf("tokens: %q", toks)
	}
	parts := strings.Split(toks[1], ".")
	if len(parts) != 3 {
		t.Fatalf("token %q: want three parts", toks[1])
	}
	if signHS256(mustB64(t, parts[1]), []byte("k")) != toks[1] {
		t.Error("token does not verify with its key")
	}
	var claims struct {
		Sub string `json:"sub"`
		Exp int64  `json:"exp"`
	}
	if err := json.Unmarshal(mustB64(t, parts[1]), &claims); err != nil || claims.Sub != "1001" || claims.Exp < time.Now().Unix() {
		t.Errorf("claims %+v (%v): want sub 1001 and exp in the future", claims, err)
	}
}

func mustB64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := jwtB64.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseCentrifugo(t *testing.T) {
	msg := []byte(`{"push":{"channel":"op:#1000","pub":{"data":{"id":"b-7","phone":"+79000000000"},"offset":12}}}
{}
{"push":{"channel":"op:#1000","pub":{"data":{"id":"b-8"},"offset":13}}}
{"push":{"channel":"op:#1000","join":{"info":{"user":"1"}}}}
{"push":{"disconnect":{"code":3001,"reason":"shutdown"}}}
not json
`)
	got := parseCentrifugo(msg)
	if len(got) != 6 {
		t.Fatalf("got %d replies, want 6: %+v", len(got), got)
	}
	if got[0].call != "b-7" || got[0].offset != 12 || got[0].ping || got[0].other {
		t.Errorf("publication: %+v", got[0])
	}
	if !got[1].ping {
		t.Errorf("ping: %+v", got[1])
	}
	if got[2].call != "b-8" || got[2].offset != 13 {
		t.Errorf("second publication: %+v", got[2])
	}
	if !got[3].other || !got[5].other {
		t.Errorf("join and garbage are other: %+v %+v", got[3], got[5])
	}
	if got[4].discErr == nil || !strings.Contains(got[4].discErr.Error(), "3001") {
		t.Errorf("disconnect: %+v", got[4])
	}
}

func TestCheckBroadcast(t *testing.T) {
	for _, tc := range []struct {
		status int
		body   string
		n      int
		ok     bool
	}{
		{200, `{"result":{"responses":[{"result":{"offset":1,"epoch":"x"}},{"result":{"offset":4,"epoch":"y"}}]}}`, 2, true},
		{200, `{"result":{"responses":[{"result":{}},{"error":{"code":102,"message":"unknown channel"}}]}}`, 2, false},
		{200, `{"error":{"code":107,"message":"bad request"}}`, 1, false},
		{200, `{"result":{"responses":[]}}`, 1, false},
		{401, `Unauthorized`, 1, false},
	} {
		ok, why := checkBroadcast(tc.status, []byte(tc.body), tc.n)
		if ok != tc.ok || ok != (why == "") {
			t.Errorf("checkBroadcast(%d, %s) = %v %q, want %v", tc.status, tc.body, ok, why, tc.ok)
		}
	}
}

func TestCentrifugoConfig(t *testing.T) {
	b, err := centrifugoConfig(8123, "hs", "api")
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		HTTP struct {
			Address string `json:"address"`
			Port    int    `json:"port"`
		} `json:"http_server"`
		Channel struct {
			Namespaces []struct {
				Name          string `json:"name"`
				HistorySize   int    `json:"history_size"`
				HistoryTTL    string `json:"history_ttl"`
				ForceRecovery bool   `json:"force_recovery"`
			} `json:"namespaces"`
		} `json:"channel"`
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.HTTP.Address != "127.0.0.1" || cfg.HTTP.Port != 8123 {
		t.Errorf("listens on %s:%d, want loopback", cfg.HTTP.Address, cfg.HTTP.Port)
	}
	if ns := cfg.Channel.Namespaces; len(ns) != 1 || ns[0].Name != cfNamespace || ns[0].HistorySize == 0 || ns[0].HistoryTTL == "" || !ns[0].ForceRecovery {
		t.Errorf("namespaces %+v: want %q with history and forced recovery", ns, cfNamespace)
	}
}

func TestInstallCentrifugoReuses(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "centrifugo")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	var progress strings.Builder
	if err := InstallCentrifugo(context.Background(), bin, &progress); err != nil || progress.Len() != 0 {
		t.Errorf("an installed binary is reused: %v, progress %q", err, progress.String())
	}
	if err := InstallCentrifugo(context.Background(), filepath.Join(t.TempDir(), "cf"), &progress); err == nil || !strings.Contains(err.Error(), "names the binary centrifugo") {
		t.Errorf("a binary go install cannot make: %v", err)
	}
	if got := CentrifugoBinIn("/c"); got != "/c/pult/centrifugo-"+CentrifugoVersion+"/centrifugo" {
		t.Errorf("CentrifugoBinIn = %q", got)
	}
}

// centrifugoForTest is the Centrifugo binary from PULT_CENTRIFUGO_BIN or
// the bench's cache folder; the test is skipped without one, as installing
// it takes minutes.
func centrifugoForTest(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("PULT_CENTRIFUGO_BIN"); bin != "" {
		if _, err := os.Stat(bin); err != nil {
			t.Fatalf("PULT_CENTRIFUGO_BIN: %v", err)
		}
		return bin
	}
	cache, err := os.UserCacheDir()
	if err == nil {
		bin := CentrifugoBinIn(cache)
		if _, err = os.Stat(bin); err == nil {
			return bin
		}
	}
	t.Skipf("no Centrifugo binary (%v): set PULT_CENTRIFUGO_BIN or run pult-relay bench --target centrifugo once to install %s", err, CentrifugoVersion)
	return ""
}

func TestRunCentrifugoSmall(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Centrifugo process")
	}
	bin := centrifugoForTest(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var progress strings.Builder
	rep, err := Run(ctx, Options{
		Target: TargetCentrifugo, CentrifugoBin: bin,
		Operators: 20, Rate: 20, Duration: 2 * time.Second, Ring: 1, RingMax: 3,
		Drain: time.Second, Settle: 200 * time.Millisecond, Progress: &progress,
	})
	if err != nil {
		t.Fatalf("Run: %v\nprogress:\n%s", err, progress.String())
	}
	if rep.EventsPosted != 40 || rep.HTTPErrors != 0 {
		t.Errorf("posted %d events with %d HTTP errors (%s), want 40 and 0", rep.EventsPosted, rep.HTTPErrors, rep.FirstError)
	}
	if rep.Expected == 0 || rep.Lost != 0 || rep.Duplicated != 0 || rep.Unexpected != 0 || rep.OutOfOrder != 0 || rep.Disconnects != 0 {
		t.Errorf("expected %d, lost %d, duplicated %d, unexpected %d, out of order %d, disconnects %d (%s)",
			rep.Expected, rep.Lost, rep.Duplicated, rep.Unexpected, rep.OutOfOrder, rep.Disconnects, rep.FirstClose)
	}
	if rep.RSSIdle <= 0 || rep.HeapIdle <= 0 || rep.GoroutinesIdle <= 0 {
		t.Errorf("Centrifugo RSS %d, heap %d, goroutines %d: want all read", rep.RSSIdle, rep.HeapIdle, rep.GoroutinesIdle)
	}
	// A go install build has no release version and says so once.
	for _, l := range rep.RelayLog {
		if !strings.Contains(l, "development build") {
			t.Errorf("Centrifugo logged: %s", l)
		}
	}
}
