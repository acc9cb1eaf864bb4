package relay_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// A PBX that refuses a status change (4xx) can never accept it: the job is a
// dead letter at once, with the PBX's words, until an admin retries it.
func TestPBXRefusalIsADeadLetterUntilRetried(t *testing.T) {
	checkGoroutines(t)
	var refuse atomic.Bool
	refuse.Store(true)
	var got atomic.Int32
	pbx := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Add(1)
		if refuse.Load() {
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, `{"success":false,"errorMsg":"User 1 is not found"}`)
			return
		}
		io.WriteString(w, `{"success":true}`)
	}))
	defer pbx.Close()
	cfg := testConfig(t)
	cfg.PBX.ChangeStatusURL = pbx.URL + "/change-status"
	r := startRelay(t, cfg)
	r.addOperator("Anna", "100", "1")
	q := url.Values{"clientId": {testClientID}, "userId": {"1"}, "code": {"100"}, "status": {"busy"}}
	if status, body := r.get("/retailcrm/change-status", q); status != 200 {
		t.Fatalf("change-status: %d %s", status, body)
	}
	ctx := context.Background()
	admin := r.admin()
	deadline := time.Now().Add(10 * time.Second)
	for {
		dead, err := admin.ListDead(ctx, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(dead) == 1 {
			d := dead[0]
			if d.Job.Kind != "pbx.status" || d.PartnerMessage != "User 1 is not found" || d.Reason != "rejected" ||
				d.Attempts != 1 || !strings.Contains(d.LastError, "HTTP 404") {
				t.Errorf("dead letter: %+v", d)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no dead letter")
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	if n := got.Load(); n != 1 {
		t.Errorf("PBX asked %d times; a 404 is not retried", n)
	}
	metrics := r.metrics()
	for _, want := range []string{
		`pult_relay_outbox_dead_letters{kind="pbx.status"} 1`, `pult_relay_outbox_dead_total{kind="pbx.status"} 1`,
		`pult_relay_outbox_attempts_total{kind="pbx.status",outcome="dead"} 1`, `pult_relay_outbox_depth{kind="pbx.status"} 0`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}

	// The admin API's answers to mistakes.
	if _, err := admin.RetryJob(ctx, "nope"); err == nil || !strings.Contains(err.Error(), "no such job") {
		t.Errorf("retry unknown: %v", err)
	}
	if _, err := admin.DropJob(ctx, "nope"); err == nil || !strings.Contains(err.Error(), "no such job") {
		t.Errorf("drop unknown: %v", err)
	}
	req, _ := http.NewRequest(http.MethodGet, adminSocketURL+"/admin/v1/outbox?state=lost", nil)
	if status, body := r.doWith(r.adminHTTP(), req); status != 400 || !strings.Contains(body["error"].(string), "pending or dead") {
		t.Errorf("bad state: %d %v", status, body)
	}

	refuse.Store(false)
	dead, _ := admin.ListDead(ctx, 10)
	res, err := admin.RetryJob(ctx, dead[0].Job.ID)
	if err != nil || res.ID != dead[0].Job.ID || res.Kind != "pbx.status" {
		t.Fatalf("retry: %+v %v", res, err)
	}
	for deadline := time.Now().Add(10 * time.Second); got.Load() < 2; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the retried job never reached the PBX")
		}
	}
	time.Sleep(200 * time.Millisecond)
	if n := got.Load(); n != 2 {
		t.Errorf("PBX asked %d times, want 2 (refused, then accepted once)", n)
	}
	if p, _ := admin.ListPending(ctx, 10); len(p) != 0 {
		t.Errorf("pending after delivery: %+v", p)
	}
	if d, _ := admin.ListDead(ctx, 10); len(d) != 0 {
		t.Errorf("dead after retry: %+v", d)
	}
	if m := r.metrics(); !strings.Contains(m, `pult_relay_outbox_dead_letters{kind="pbx.status"} 0`) ||
		!strings.Contains(m, `pult_relay_outbox_attempts_total{kind="pbx.status",outcome="ok"} 1`) {
		t.Errorf("metrics after retry:\n%s", grep(m, "outbox"))
	}
}

// A status queued while the PBX is down survives a relay restart and is
// delivered once.
func TestQueuedStatusSurvivesRestart(t *testing.T) {
	checkGoroutines(t)
	var up atomic.Bool
	var got atomic.Int32
	pbx := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !up.Load() {
			http.Error(w, "down", http.StatusBadGateway)
			return
		}
		got.Add(1)
	}))
	defer pbx.Close()
	cfg := testConfig(t)
	cfg.PBX.ChangeStatusURL = pbx.URL + "/change-status"
	r := startRelay(t, cfg)
	r.addOperator("Anna", "100", "1")
	q := url.Values{"clientId": {testClientID}, "userId": {"1"}, "code": {"100"}, "status": {"break"}}
	if status, body := r.get("/retailcrm/change-status", q); status != 200 {
		t.Fatalf("change-status: %d %s", status, body)
	}
	ctx := context.Background()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		p, err := r.admin().ListPending(ctx, 10)
		if err == nil && len(p) == 1 && p[0].Attempts >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no failing job: %+v %v", p, err)
		}
	}
	r = r.restart()
	p, err := r.admin().ListPending(ctx, 10)
	if err != nil || len(p) != 1 || p[0].Attempts < 2 || !strings.Contains(p[0].LastError, "HTTP 502") {
		t.Fatalf("after restart: %+v %v", p, err)
	}
	up.Store(true)
	for deadline := time.Now().Add(10 * time.Second); got.Load() == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("never delivered after the restart")
		}
	}
	time.Sleep(300 * time.Millisecond)
	if n := got.Load(); n != 1 {
		t.Errorf("delivered %d times", n)
	}
}

func (r *testRelay) metrics() string {
	r.t.Helper()
	resp, err := http.Get("http://" + r.srv.MetricsAddr() + "/metrics")
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func grep(s, word string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, word) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
