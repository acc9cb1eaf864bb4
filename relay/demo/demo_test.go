package demo_test

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pult/pult/agent"
	"github.com/pult/pult/agent/wire"
	"github.com/pult/pult/relay/admin"
	"github.com/pult/pult/relay/demo"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// The demo rings its operators through the real endpoint, with the
// responsible manager from the simulated CRM, and dials through the
// simulated PBX.
func TestDemo(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	dir := t.TempDir()
	var out syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- demo.Run(ctx, demo.Options{Listener: ln, DataDir: dir, Every: 500 * time.Millisecond, Out: &out})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("demo: %v", err)
		}
	}()
	var token []byte
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if b, err := os.ReadFile(filepath.Join(dir, "100.token")); err == nil && len(b) > 0 {
			token = bytes.TrimSpace(b)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("demo did not start; it said:\n%s", out.String())
		}
	}
	cards := make(chan *wire.Call, 100)
	chats := make(chan *wire.TranscriptState, 10)
	a, err := agent.New(agent.Config{RelayURL: "http://" + addr, Token: string(token), OnEvent: func(e agent.Event) {
		switch e.Kind {
		case agent.EventCall:
			cards <- e.Call
		case agent.EventTranscript:
			chats <- e.Transcript
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	actx, acancel := context.WithCancel(ctx)
	adone := make(chan error, 1)
	go func() { adone <- a.Run(actx) }()
	defer func() { acancel(); <-adone }()

	withManager := false
	for deadline := time.After(30 * time.Second); !withManager; {
		select {
		case c := <-cards:
			withManager = c.ManagerState == wire.ManagerFound && c.Manager != nil && c.Manager.Name != ""
		case <-deadline:
			t.Fatalf("no call card with a manager within 30s; demo said:\n%s", out.String())
		}
	}
	for a.State() != agent.Online {
		time.Sleep(10 * time.Millisecond)
	}
	res, err := a.Dial(ctx, "+7 (912) 123-45-67")
	if err != nil || res.Phone != "+79121234567" {
		t.Fatalf("dial: %+v %v", res, err)
	}
	// The QA platform and the callback service are simulated too.
	cb, err := a.Callback(ctx, wire.Callback{Phone: "8 912 123-45-67", Note: "demo"})
	if err != nil || cb.Phone != "+79121234567" {
		t.Fatalf("callback: %+v %v", cb, err)
	}
	st, err := a.SubmitTranscript(ctx, wire.TranscriptSubmit{Format: wire.FormatText, Title: "demo chat",
		Body: "Анна: Здравствуйте!\nИван: Где мой заказ?\nАнна: Уже в пути."})
	if err != nil || st.State != wire.TranscriptQueued {
		t.Fatalf("transcript: %+v %v", st, err)
	}
	for delivered, deadline := false, time.After(20*time.Second); !delivered; {
		select {
		case c := <-chats:
			if c.State == wire.TranscriptFailed {
				t.Fatalf("transcript failed: %s", c.Reason)
			}
			delivered = c.ID == st.ID && c.State == wire.TranscriptDelivered
		case <-deadline:
			t.Fatal("the demo transcript was not delivered within 20s")
		}
	}
	if !strings.Contains(out.String(), "bin/pult login --relay http://"+addr) {
		t.Errorf("the demo does not say how to connect:\n%s", out.String())
	}
	sock := filepath.Join(dir, "relay", "admin.sock")
	if !strings.Contains(out.String(), "bin/pult-relay operators list --socket "+sock) {
		t.Errorf("the demo does not say how to administer it:\n%s", out.String())
	}
	ops, err := (&admin.Client{Socket: sock}).ListOperators(ctx)
	if err != nil || len(ops) == 0 {
		t.Errorf("the demo's admin socket: %d operators, %v", len(ops), err)
	}
}

// A demo started again on its own data starts, with new tokens.
func TestDemoTwiceOnTheSameData(t *testing.T) {
	dir := t.TempDir()
	var first []byte
	for run := 0; run < 2; run++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		os.Remove(filepath.Join(dir, "100.token"))
		var out syncBuffer
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			done <- demo.Run(ctx, demo.Options{Listener: ln, DataDir: dir, Every: time.Hour, Out: &out})
		}()
		var token []byte
		for deadline := time.Now().Add(20 * time.Second); len(token) == 0; time.Sleep(50 * time.Millisecond) {
			token, _ = os.ReadFile(filepath.Join(dir, "100.token"))
			select {
			case err := <-done:
				t.Fatalf("run %d ended: %v\n%s", run+1, err, out.String())
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("run %d did not start:\n%s", run+1, out.String())
			}
		}
		if _, err := agent.Check(ctx, "http://"+ln.Addr().String(), string(bytes.TrimSpace(token))); err != nil {
			t.Errorf("run %d: the token does not work: %v", run+1, err)
		}
		if run == 1 && bytes.Equal(token, first) {
			t.Error("the second run kept the first run's token")
		}
		first = token
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run %d: %v", run+1, err)
		}
	}
}
