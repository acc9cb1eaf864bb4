package relay_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/pult/pult/agent/wire"
	"github.com/pult/pult/relay/looptest"
	"github.com/pult/pult/relay/store"
)

// startNATSCluster runs n nats-servers with JetStream clustered on loopback
// routes (looptest's ports), shut down when the test ends (if still
// running); a server that does not start fails the test with what it
// logged.
func startNATSCluster(t *testing.T, n int) []*server.Server {
	t.Helper()
	var ports []int
	var routes []string
	for _, addr := range looptest.Addrs(t, n) {
		_, p, _ := net.SplitHostPort(addr)
		port, _ := strconv.Atoi(p)
		ports = append(ports, port)
		routes = append(routes, "nats-route://"+addr)
	}
	var servers []*server.Server
	var logs []*natsLog
	for i := range n {
		ns, err := server.NewServer(&server.Options{ServerName: fmt.Sprintf("ext-%d", i), Host: "127.0.0.1", Port: -1,
			JetStream: true, StoreDir: t.TempDir(), NoSigs: true, MaxPayload: store.MaxPayload,
			Cluster: server.ClusterOpts{Name: "ext", Host: "127.0.0.1", Port: ports[i]},
			Routes:  server.RoutesFromStr(strings.Join(routes, ","))})
		if err != nil {
			t.Fatal(err)
		}
		l := &natsLog{}
		ns.SetLoggerV2(l, false, false, false)
		go ns.Start()
		servers = append(servers, ns)
		logs = append(logs, l)
	}
	t.Cleanup(func() {
		for _, ns := range servers {
			ns.Shutdown()
			ns.WaitForShutdown()
		}
	})
	for i, ns := range servers {
		if !ns.ReadyForConnections(30 * time.Second) {
			t.Fatalf("nats server %d did not start within 30 s; it logged:\n%s", i, logs[i])
		}
	}
	return servers
}

// natsLog keeps a nats-server's warnings and errors, to say why it failed.
type natsLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *natsLog) add(level, format string, v ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.lines) < 100 {
		l.lines = append(l.lines, level+" "+fmt.Sprintf(format, v...))
	}
}

func (l *natsLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

func (l *natsLog) Noticef(string, ...any)         {}
func (l *natsLog) Debugf(string, ...any)          {}
func (l *natsLog) Tracef(string, ...any)          {}
func (l *natsLog) Warnf(format string, v ...any)  { l.add("[WRN]", format, v...) }
func (l *natsLog) Errorf(format string, v ...any) { l.add("[ERR]", format, v...) }
func (l *natsLog) Fatalf(format string, v ...any) { l.add("[FTL]", format, v...) }

// Two relays on an external NATS cluster of three servers, every stream
// and bucket with three copies. One NATS server is shut down while calls
// are posted to both relays and operators change their status: every call a
// relay acknowledged reaches every operator once and in order, and every
// status change reaches the PBX (through the outbox) once.
func TestExternalNATSCluster(t *testing.T) {
	checkGoroutines(t)
	servers := startNATSCluster(t, 3)
	var urls []string
	for _, ns := range servers {
		urls = append(urls, ns.ClientURL())
	}

	var pbxMu sync.Mutex
	told := map[string]int{}
	pbx := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		pbxMu.Lock()
		told[q.Get("code")+"="+q.Get("status")]++
		pbxMu.Unlock()
	}))
	defer pbx.Close()

	var relays []*testRelay
	var bases []string
	for range 2 {
		cfg := testConfig(t)
		cfg.NATS.URL = strings.Join(urls, ",")
		cfg.NATS.Replicas = 3
		cfg.DataDir = t.TempDir()
		cfg.PBX.ChangeStatusURL = pbx.URL + "/change-status"
		r := startRelay(t, cfg)
		relays = append(relays, r)
		bases = append(bases, r.URL)
	}
	const nops = 20
	var codes []string
	var agents []*testAgent
	for i := range nops {
		code := fmt.Sprint(300 + i)
		_, token := relays[i%2].addOperator("Op "+code, code, fmt.Sprint(3000+i))
		codes = append(codes, code)
		agents = append(agents, startAgent(t, strings.Join(bases, ","), token, nil))
	}
	for _, ta := range agents {
		ta.waitOnline()
	}

	// The load: numbered calls to both relays, each posted again (to the
	// other) until one answers 200, as a PBX does.
	const calls = 60
	var acked []string
	var wg sync.WaitGroup
	third := make(chan struct{})
	wg.Go(func() {
		for n := 1; n <= calls; n++ {
			id := fmt.Sprintf("x-%03d", n)
			for try, deadline := 0, time.Now().Add(30*time.Second); ; try++ {
				status, _, err := relays[(n+try)%2].tryCallEvent(map[string]any{"type": "in", "phone": "+79121234567",
					"codes": codes, "callExternalId": id})
				if err == nil && status == 200 {
					acked = append(acked, id)
					break
				}
				if time.Now().After(deadline) {
					t.Errorf("call %s: %d %v", id, status, err)
					return
				}
				time.Sleep(100 * time.Millisecond)
			}
			if n == calls/3 {
				close(third)
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
	<-third
	down := time.Now()
	servers[0].Shutdown() // the one the first URL names
	statuses := []wire.Status{wire.StatusBusy, wire.StatusDinner}
	for i, ta := range agents {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			ta.a.SetStatus(ctx, statuses[i%2])
		})
	}
	wg.Wait()
	t.Logf("%d calls acknowledged, the last %s after a NATS server went down", len(acked), time.Since(down).Round(time.Millisecond))

	for _, ta := range agents {
		ta.waitRinging(acked)
		var got []string
		for _, e := range ta.calls() {
			if e.Call.State == wire.CallRinging {
				got = append(got, e.Call.ID)
			}
		}
		// Once each; a call posted to the agent's own relay comes ahead of
		// the log, and may overtake one posted to another relay.
		slices.Sort(got)
		if strings.Join(got, " ") != strings.Join(sorted(acked), " ") {
			t.Errorf("an operator got the calls\n%v\nwant every acknowledged one once:\n%v", got, acked)
		}
	}

	// A second NATS server down: the one left has no majority. The relays
	// say so on /healthz and refuse webhooks; nothing is acknowledged.
	servers[1].Shutdown()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		status, body := relays[0].get("/healthz", nil)
		if status == http.StatusServiceUnavailable && strings.Contains(body, "jetstream unavailable") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("healthz without a majority: %d %s", status, body)
		}
	}
	status, body, err := relays[1].tryCallEvent(map[string]any{"type": "in", "phone": "+79121234567", "codes": codes, "callExternalId": "minority"})
	t.Logf("a webhook without a majority: %d %v %v", status, body, err)
	if err == nil && status == 200 {
		t.Errorf("a webhook was acknowledged without a majority")
	}

	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		pbxMu.Lock()
		n := len(told)
		pbxMu.Unlock()
		if n >= nops || time.Now().After(deadline) {
			break
		}
	}
	time.Sleep(time.Second) // a second delivery would show
	pbxMu.Lock()
	defer pbxMu.Unlock()
	for i, code := range codes {
		if k := code + "=" + string(statuses[i%2]); told[k] != 1 {
			t.Errorf("the PBX was told %s %d times, want once", k, told[k])
		}
	}
	if len(told) != nops {
		t.Errorf("the PBX was told %v", told)
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}
