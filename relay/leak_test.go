package relay_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pult/pult/relay/config"
)

// Everything the relays of this package's tests write — their logs at
// debug level, and at their stop their outbox records and metrics — goes
// to relayOutput, and TestMain checks it at the end for
// every secret the tests configured, every operator token and every phone
// number: none may be there (a number may appear masked, as "…4567").

type outputSink struct {
	mu      sync.Mutex
	b       bytes.Buffer
	secrets map[string]bool
}

var relayOutput = &outputSink{secrets: map[string]bool{}}

func (o *outputSink) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.Write(p)
}

// secretsOf registers the secrets of a relay's configuration.
func (o *outputSink) secretsOf(cfg config.Config) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, s := range []string{cfg.AdminToken, cfg.PBX.ClientID, cfg.PBX.APIKey, cfg.RetailCRM.APIKey,
		cfg.UIS.Token, cfg.Smartsupp.Token, cfg.Qolio.Token, cfg.Calltouch.Token} {
		if len(s) >= 6 {
			o.secrets[s] = true
		}
	}
}

// relayLogger is the logger of a relay under test: into relayOutput, and to
// stderr as well with PULT_TEST_LOG set.
func relayLogger(t testing.TB) *slog.Logger {
	h := slog.NewJSONHandler(relayOutput, &slog.HandlerOptions{Level: slog.LevelDebug})
	if os.Getenv("PULT_TEST_LOG") != "" {
		return slog.New(teeHandler{h, slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})}).With("test", t.Name())
	}
	return slog.New(h).With("test", t.Name())
}

type teeHandler struct{ a, b slog.Handler }

func (h teeHandler) Enabled(ctx context.Context, l slog.Level) bool { return true }
func (h teeHandler) Handle(ctx context.Context, r slog.Record) error {
	h.a.Handle(ctx, r.Clone())
	return h.b.Handle(ctx, r)
}
func (h teeHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return teeHandler{h.a.WithAttrs(as), h.b.WithAttrs(as)}
}
func (h teeHandler) WithGroup(n string) slog.Handler {
	return teeHandler{h.a.WithGroup(n), h.b.WithGroup(n)}
}

// keepRecords adds to relayOutput what the relay keeps beside its log: the
// outbox's waiting jobs and dead letters (their errors), and its metrics
// (their labels). A relay that cannot answer any more adds nothing.
func (r *testRelay) keepRecords() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c := r.admin()
	if p, err := c.ListPending(ctx, 1000); err == nil {
		json.NewEncoder(relayOutput).Encode(p)
	}
	if d, err := c.ListDead(ctx, 1000); err == nil {
		json.NewEncoder(relayOutput).Encode(d)
	}
	if addr := r.srv.MetricsAddr(); addr != "" {
		if resp, err := http.Get("http://" + addr + "/metrics"); err == nil {
			io.Copy(relayOutput, resp.Body)
			resp.Body.Close()
		}
	}
}

var (
	// A token: its public id may be logged, its secret never.
	tokenPattern = regexp.MustCompile(`pult_[0-9a-f]{12}_[A-Za-z0-9_-]{8,}`)
	// A Russian phone number in any of the forms the tests use, alone
	// (not inside a longer run of digits such as a timestamp, or a hex id).
	phonePattern = regexp.MustCompile(`(^|[^0-9A-Za-z])(\+?7|8)[ (\-]*[0-9]{3}[ )\-]*[0-9]{3}[ \-]*[0-9]{2}[ \-]*[0-9]{2}([^0-9A-Za-z]|$)`)
)

// leaks lists the lines of the relays' output holding a secret, a token
// or a phone number, with what was found (the secret itself replaced).
func (o *outputSink) leaks() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	var secrets []string
	for s := range o.secrets {
		secrets = append(secrets, s)
	}
	sort.Strings(secrets)
	var found []string
	sc := bufio.NewScanner(bytes.NewReader(o.b.Bytes()))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Text()
		var what []string
		for i, s := range secrets {
			if strings.Contains(line, s) {
				what = append(what, fmt.Sprintf("secret #%d", i))
				line = strings.ReplaceAll(line, s, "<SECRET>")
			}
		}
		if tokenPattern.MatchString(line) {
			what = append(what, "an operator token")
			line = tokenPattern.ReplaceAllString(line, "<TOKEN>")
		}
		if phonePattern.MatchString(line) {
			what = append(what, "a phone number")
		}
		if len(what) > 0 {
			found = append(found, strings.Join(what, ", ")+": "+line)
		}
	}
	return found
}

func TestMain(m *testing.M) {
	code := m.Run()
	if leaks := relayOutput.leaks(); len(leaks) > 0 {
		fmt.Fprintf(os.Stderr, "FAIL: the relays' output holds secrets or personal data (%d lines):\n", len(leaks))
		for i, l := range leaks {
			if i == 50 {
				fmt.Fprintf(os.Stderr, "… and %d more\n", len(leaks)-50)
				break
			}
			fmt.Fprintln(os.Stderr, l)
		}
		code = 1
	}
	os.Exit(code)
}

// The check finds what it looks for, and only that.
func TestLeakCheck(t *testing.T) {
	o := &outputSink{secrets: map[string]bool{"client-id-secret-42": true}}
	for _, line := range []string{
		`{"msg":"call placed","operator":"10724260547f","took":0}`,
		`{"msg":"job done","job":"pbx-status.79121234567a.1796268007479320754"}`,
		`{"msg":"ringing","phone":"…4567","at":1796268007479320754}`,
		`{"msg":"failed","url":"http://pbx/change-status?clientId=client-id-secret-42"}`,
		`{"msg":"authenticated","token":"pult_26b95845da45_AbCdEfGhIjKlMnOpQrSt"}`,
		`{"msg":"ringing","phone":"+79121234567"}`,
		`{"msg":"ringing","phone":"8 (912) 123-45-67"}`,
	} {
		fmt.Fprintln(o, line)
	}
	got := o.leaks()
	want := []string{"secret #0: ", "an operator token: ", "a phone number: ", "a phone number: "}
	if len(got) != len(want) {
		t.Fatalf("found %d lines, want %d: %q", len(got), len(want), got)
	}
	for i, w := range want {
		if !strings.HasPrefix(got[i], w) || strings.Contains(got[i], "client-id-secret-42") || strings.Contains(got[i], "AbCdEfGh") {
			t.Errorf("line %d: %q, want it to start %q with the secret hidden", i, got[i], w)
		}
	}
}
