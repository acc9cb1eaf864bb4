package sim

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/pult/pult/relay/retailcrm"
)

const testClientID = "2dbh26tahjj26sg"

func newPBX(t *testing.T) (*PBX, string) {
	t.Helper()
	p := NewPBX(testClientID)
	srv := NewPBXServer(p)
	t.Cleanup(srv.Close)
	return p, srv.URL
}

func get(t *testing.T, method, u string) int {
	t.Helper()
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func waitCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestPBXMakeCall(t *testing.T) {
	p, base := newPBX(t)
	var mu sync.Mutex
	var started []retailcrm.MakeCall
	p.OnMakeCall = func(m retailcrm.MakeCall) {
		mu.Lock()
		defer mu.Unlock()
		started = append(started, m)
	}
	mc := retailcrm.MakeCall{ClientID: testClientID, Code: "100", Phone: "+79121234567", UserID: "1", ExternalPhone: "+7-499-999-99-99"}
	u, err := retailcrm.BuildURL(base+"/make-call", mc.Query())
	if err != nil {
		t.Fatal(err)
	}
	if got := get(t, "GET", u); got != 200 {
		t.Fatalf("status %d", got)
	}
	calls, err := p.Wait(waitCtx(t), KindMakeCall, 1)
	if err != nil {
		t.Fatal(err)
	}
	if c := calls[0]; c.Status != 200 || c.Err != "" || c.Query.Get("phone") != "+79121234567" {
		t.Errorf("recorded %+v", c)
	}
	mu.Lock()
	if diff := cmp.Diff([]retailcrm.MakeCall{mc}, started); diff != "" {
		t.Errorf("OnMakeCall (-want +got)\n%s", diff)
	}
	mu.Unlock()

	p.SetMakeCallStatus(http.StatusServiceUnavailable)
	if got := get(t, "GET", u); got != 503 {
		t.Errorf("SetMakeCallStatus(503): %d", got)
	}
	mu.Lock()
	if len(started) != 1 {
		t.Errorf("a refused call was started")
	}
	mu.Unlock()
}

func TestPBXChangeStatus(t *testing.T) {
	p, base := newPBX(t)
	got := make(chan retailcrm.ChangeStatus, 1)
	p.OnChangeStatus = func(cs retailcrm.ChangeStatus) { got <- cs }
	cs := retailcrm.ChangeStatus{ClientID: testClientID, UserID: "1", Code: "100", Status: "busy"}
	u, _ := retailcrm.BuildURL(base+"/change-status", cs.Query())
	if s := get(t, "GET", u); s != 200 {
		t.Fatalf("status %d", s)
	}
	if g := <-got; g != cs {
		t.Errorf("OnChangeStatus got %+v", g)
	}
	// The query straight from retailCRM's documentation.
	if s := get(t, "GET", base+"/change-status?clientId=2dbh26tahjj26sg&code=100&userId=1&status=busy"); s != 200 {
		t.Errorf("documented query: %d", s)
	}
}

func TestPBXRefusals(t *testing.T) {
	p, base := newPBX(t)
	p.OnMakeCall = func(m retailcrm.MakeCall) { t.Errorf("call started for a refused request: %+v", m) }
	mc := base + "/make-call?"
	cs := base + "/change-status?"
	ok := "clientId=" + testClientID + "&code=100&phone=%2B79121234567&userId=1"
	tests := []struct {
		name, method, url string
		status            int
		kind              string
	}{
		{"POST", "POST", mc + ok, 405, KindMakeCall},
		{"HEAD", "HEAD", mc + ok, 405, KindMakeCall},
		{"wrong clientId", "GET", base + "/make-call?clientId=other&code=100&phone=%2B79121234567&userId=1", 403, KindMakeCall},
		{"no clientId", "GET", mc + "code=100&phone=%2B79121234567&userId=1", 400, KindMakeCall},
		{"no code", "GET", mc + "clientId=" + testClientID + "&phone=%2B79121234567&userId=1", 400, KindMakeCall},
		{"no phone", "GET", mc + "clientId=" + testClientID + "&code=100&userId=1", 400, KindMakeCall},
		{"no userId", "GET", mc + "clientId=" + testClientID + "&code=100&phone=%2B79121234567", 400, KindMakeCall},
		{"empty userId", "GET", mc + ok + "&userId=", 400, KindMakeCall},
		{"empty externalPhone", "GET", mc + ok + "&externalPhone=", 400, KindMakeCall},
		{"repeated phone", "GET", mc + ok + "&phone=%2B79121234568", 400, KindMakeCall},
		{"unexpected param", "GET", mc + ok + "&status=free", 400, KindMakeCall},
		{"key leaked", "GET", mc + ok + "&apiKey=secret", 400, KindMakeCall},
		{"unescaped plus", "GET", mc + "clientId=" + testClientID + "&code=100&phone=+79121234567&userId=1", 400, KindMakeCall},
		{"implausible phone", "GET", mc + "clientId=" + testClientID + "&code=100&phone=abc&userId=1", 400, KindMakeCall},
		{"too short phone", "GET", mc + "clientId=" + testClientID + "&code=100&phone=12&userId=1", 400, KindMakeCall},
		{"bad code", "GET", mc + "clientId=" + testClientID + "&code=1%2000&phone=%2B79121234567&userId=1", 400, KindMakeCall},
		{"bad query", "GET", mc + ok + "&x=%zz", 400, KindMakeCall},
		{"unknown status", "GET", cs + "clientId=" + testClientID + "&code=100&userId=1&status=offline", 400, KindChangeStatus},
		{"status wrong clientId", "GET", cs + "clientId=x&code=100&userId=1&status=free", 403, KindChangeStatus},
		{"status no code", "GET", cs + "clientId=" + testClientID + "&userId=1&status=free", 400, KindChangeStatus},
		{"status with phone", "GET", cs + "clientId=" + testClientID + "&code=100&userId=1&status=free&phone=1", 400, KindChangeStatus},
		{"status POST", "POST", cs + "clientId=" + testClientID + "&code=100&userId=1&status=free", 405, KindChangeStatus},
		{"unknown path", "GET", base + "/makecall?" + ok, 404, ""},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := get(t, tt.method, tt.url); got != tt.status {
				t.Errorf("status %d, want %d", got, tt.status)
			}
			calls, err := p.Wait(waitCtx(t), "", i+1)
			if err != nil {
				t.Fatal(err)
			}
			c := calls[i]
			if c.Kind != tt.kind || c.Status != tt.status || c.Err == "" {
				t.Errorf("recorded %+v", c)
			}
		})
	}
}

func TestPBXPathsAndKnobs(t *testing.T) {
	p := &PBX{ClientID: testClientID, MakeCallPath: "/crm/call", ChangeStatusPath: "/crm/status"}
	srv := NewPBXServer(p)
	defer srv.Close()
	q := retailcrm.MakeCall{ClientID: testClientID, Code: "100", Phone: "89121234567", UserID: "1"}.Query().Encode()
	if got := get(t, "GET", srv.URL+"/make-call?"+q); got != 404 {
		t.Errorf("default path still served: %d", got)
	}
	if got := get(t, "GET", srv.URL+"/crm/call?"+q); got != 200 {
		t.Errorf("configured path: %d", got)
	}

	p.SetDelay(60 * time.Millisecond)
	start := time.Now()
	if got := get(t, "GET", srv.URL+"/crm/call?"+q); got != 200 || time.Since(start) < 60*time.Millisecond {
		t.Errorf("delay: %d after %v", got, time.Since(start))
	}
	p.SetDelay(0)

	p.SetHang(true)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/crm/call?"+q, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	arrived, err := p.WaitArrived(waitCtx(t), KindMakeCall, 3)
	if err != nil {
		t.Fatal(err)
	}
	if arrived[2].Status != 0 {
		t.Errorf("hanging request already answered: %+v", arrived[2])
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("hung request: %v", err)
	}
	answered, err := p.Wait(waitCtx(t), KindMakeCall, 3)
	if err != nil {
		t.Fatal(err)
	}
	if answered[2].Status != StatusClientGone {
		t.Errorf("abandoned request: %+v", answered[2])
	}

	short, scancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer scancel()
	if _, err := p.Wait(short, KindChangeStatus, 1); !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "change-status") {
		t.Errorf("Wait with nothing coming: %v", err)
	}
}
