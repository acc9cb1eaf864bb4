package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pult/pult/relay"
)

func runCLI(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, func(k string) string { return env[k] }, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func TestUsage(t *testing.T) {
	if code, out, _ := runCLI(t, nil); code != 0 || !strings.Contains(out, "pult-relay serve") {
		t.Errorf("no args: %d %q", code, out)
	}
	if code, _, errs := runCLI(t, nil, "frobnicate"); code != 2 || !strings.Contains(errs, "unknown command") {
		t.Errorf("unknown command: %d %q", code, errs)
	}
	if code, _, errs := runCLI(t, nil, "operators", "add", "--relay", "http://127.0.0.1:1", "--name", "A"); code != 2 || !strings.Contains(errs, "PULT_ADMIN_TOKEN") {
		t.Errorf("no admin token: %d %q", code, errs)
	}
	env := map[string]string{"PULT_ADMIN_TOKEN": "x"}
	if code, _, errs := runCLI(t, env, "operators", "add", "--relay", "http://127.0.0.1:1", "--name", "A", "--code", "1x", "--user-id", "1"); code != 2 || !strings.Contains(errs, "code") {
		t.Errorf("bad code: %d %q", code, errs)
	}
	if code, _, errs := runCLI(t, nil, "serve", "--config", "/nonexistent/relay.toml"); code != 1 || !strings.Contains(errs, "relay.toml") {
		t.Errorf("missing config: %d %q", code, errs)
	}
}

func TestOperatorsAgainstRunningRelay(t *testing.T) {
	cfg := relay.Defaults()
	cfg.Listen = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.AdminToken = "admin-token-0123456789"
	cfg.PBX.ClientID, cfg.PBX.APIKey = "cid", "pbx-key-123"
	ctx, cancel := context.WithCancel(context.Background())
	srv := relay.New(cfg, nil)
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	defer func() { cancel(); <-done }()
	select {
	case <-srv.Ready():
	case <-time.After(20 * time.Second):
		t.Fatal("relay did not start")
	}
	base := "http://" + srv.Addr()
	env := map[string]string{"PULT_ADMIN_TOKEN": cfg.AdminToken}

	code, out, errs := runCLI(t, env, "operators", "add", "--relay", base, "--name", "Anna", "--user-id", "1", "--code", "100", "--role", "supervisor")
	if code != 0 || !strings.Contains(out, "pult_") || !strings.Contains(out, "supervisor") {
		t.Fatalf("add: %d %q %q", code, out, errs)
	}
	if code, _, errs := runCLI(t, env, "operators", "add", "--relay", base, "--name", "Bob", "--user-id", "2", "--code", "100"); code != 1 || !strings.Contains(errs, "already taken") {
		t.Errorf("duplicate code: %d %q", code, errs)
	}
	code, out, _ = runCLI(t, env, "operators", "list", "--relay", base)
	if code != 0 || !strings.Contains(out, "Anna") || !strings.Contains(out, "offline") {
		t.Errorf("list: %d %q", code, out)
	}
	if code, out, _ := runCLI(t, env, "operators", "revoke", "100", "--relay", base); code != 0 || !strings.Contains(out, "Revoked Anna") {
		t.Errorf("revoke: %d %q", code, out)
	}
	if code, _, errs := runCLI(t, map[string]string{"PULT_ADMIN_TOKEN": "wrong"}, "operators", "list", "--relay", base); code != 1 || !strings.Contains(errs, "admin token") {
		t.Errorf("wrong admin token: %d %q", code, errs)
	}
}
