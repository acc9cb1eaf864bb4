package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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
)

// clusterNode is one relay process of an embedded cluster.
type clusterNode struct {
	config, base, log string
	cmd               *exec.Cmd
}

func (n *clusterNode) start(t *testing.T, bin string) {
	t.Helper()
	f, err := os.OpenFile(n.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n.cmd = exec.Command(bin, "serve", "--config", n.config)
	n.cmd.Stdout, n.cmd.Stderr = f, f
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
}

func (n *clusterNode) stop() {
	if n.cmd != nil && n.cmd.ProcessState == nil {
		n.cmd.Process.Kill()
		n.cmd.Wait()
	}
}

// waitHealthy waits until the node answers /healthz.
func (n *clusterNode) waitHealthy(t *testing.T) {
	t.Helper()
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get(n.base + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the relay at %s did not start", n.base)
		}
	}
}

// startCluster writes the configs of three relays forming an embedded
// cluster with three copies of everything (extra is appended to each) and
// starts them together.
func startCluster(t *testing.T, bin, extra string) []*clusterNode {
	t.Helper()
	return startClusterWith(t, bin, func(int) string { return extra })
}

// startClusterWith is startCluster with each node's extra configuration
// made by extra.
func startClusterWith(t *testing.T, bin string, extra func(node int) string) []*clusterNode {
	t.Helper()
	dir := t.TempDir()
	var routes, listens []string
	for range 3 {
		a := looptest.Addr(t)
		listens = append(listens, a)
		routes = append(routes, fmt.Sprintf("%q", "nats-route://"+a))
	}
	nodes := make([]*clusterNode, 3)
	for i := range nodes {
		addr := looptest.Addr(t)
		n := &clusterNode{config: filepath.Join(dir, fmt.Sprintf("relay%d.toml", i)), base: "http://" + addr,
			log: filepath.Join(dir, fmt.Sprintf("relay%d.log", i))}
		os.WriteFile(n.config, fmt.Appendf(nil, `listen = %q
data_dir = %q

[nats]
replicas = 3
[nats.cluster]
name = "pult-test"
listen = %q
routes = [%s]

%s
`, addr, filepath.Join(dir, fmt.Sprintf("data%d", i)), listens[i], strings.Join(routes, ", "), extra(i)), 0o600)
		nodes[i] = n
	}
	t.Cleanup(func() {
		for _, n := range nodes {
			n.stop()
		}
		if t.Failed() {
			for i, n := range nodes {
				b, _ := os.ReadFile(n.log)
				lines := strings.Split(string(b), "\n")
				t.Logf("relay %d's log, the end:\n%s", i, strings.Join(lines[max(0, len(lines)-40):], "\n"))
			}
		}
	})
	for _, n := range nodes {
		n.start(t, bin)
	}
	for _, n := range nodes {
		n.waitHealthy(t)
	}
	return nodes
}

// clusterOperator is a simulated operator: an agent that knows every relay
// of the cluster, keeping the calls that rang it in the order they came.
type clusterOperator struct {
	code  string
	group int // which of a call's events rings it (see post)
	a     *agent.Agent
	mu    sync.Mutex
	rings []string // call ids, as their ringing cards came
	seqs  []uint64
	done  chan error
}

// A cluster of three relays (embedded NATS, three copies of everything),
// each its own process: one killed with SIGKILL while calls are posted to
// the two others. Every operator's agent — those on the killed relay move
// to another — gets every call exactly once (each call's cards in order); status changes
// made during the outage reach the PBX once each; the killed relay,
// started again, rejoins and serves.
func TestClusterKillOneRelay(t *testing.T) {
	bin := relayBinary(t)

	// The PBX: counts the statuses it is told.
	var pbxMu sync.Mutex
	told := map[string]int{} // "code=status" → times
	pbx := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		pbxMu.Lock()
		told[q.Get("code")+"="+q.Get("status")]++
		pbxMu.Unlock()
	}))
	defer pbx.Close()

	const pbxKey = "pbx-key-cluster"
	started := time.Now()
	nodes := startCluster(t, bin, fmt.Sprintf(`[pbx]
client_id = "client-id-cluster"
api_key = %q
change_status_url = %q

[outbox]
min_backoff = "100ms"
max_backoff = "1s"
`, pbxKey, pbx.URL+"/change-status"))
	t.Logf("three relays up in %s", time.Since(started).Round(time.Millisecond))
	ctx := context.Background()
	adm := &admin.Client{Socket: filepath.Join(filepath.Dir(nodes[0].config), "data0", "admin.sock")}

	// The operators, each an agent given the three relays.
	const nops = 200
	var bases []string
	for _, n := range nodes {
		bases = append(bases, n.base)
	}
	ops := make([]*clusterOperator, nops)
	var codes []string
	actx, stopAgents := context.WithCancel(ctx)
	defer func() {
		stopAgents()
		for _, op := range ops {
			if op != nil {
				<-op.done
			}
		}
	}()
	for i := range ops {
		code := fmt.Sprint(200 + i)
		added, err := adm.AddOperator(ctx, operators.NewOperator{Name: "Op " + code, Code: code, UserID: fmt.Sprint(1000 + i)})
		if err != nil {
			t.Fatal(err)
		}
		op := &clusterOperator{code: code, group: i / retailcrm.MaxCodes, done: make(chan error, 1)}
		op.a, err = agent.New(agent.Config{
			RelayURL: strings.Join(bases, ","), Token: added.Token, Logger: slog.New(slog.DiscardHandler),
			MinBackoff: 50 * time.Millisecond, MaxBackoff: 500 * time.Millisecond,
			OnEvent: func(e agent.Event) {
				if e.Kind == agent.EventCall && e.Call.State == wire.CallRinging {
					op.mu.Lock()
					op.rings = append(op.rings, e.Call.ID)
					op.seqs = append(op.seqs, e.Seq)
					op.mu.Unlock()
				}
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		go func() { op.done <- op.a.Run(actx) }()
		ops[i] = op
		codes = append(codes, code)
	}
	waitAll := func(what string, cond func(op *clusterOperator) bool) {
		t.Helper()
		for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			var behind []string
			for _, op := range ops {
				op.mu.Lock()
				if !cond(op) {
					behind = append(behind, op.code)
				}
				op.mu.Unlock()
			}
			if len(behind) == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s; %d operators not yet: %v", what, len(behind), behind)
			}
		}
	}
	waitAll("every agent online", func(op *clusterOperator) bool { return op.a.State() == agent.Online })
	victim := nodes[2]
	on := 0
	for _, op := range ops {
		if op.a.Relay() == strings.TrimPrefix(victim.base, "http://") {
			on++
		}
	}
	t.Logf("%d of %d agents are on the relay to be killed", on, nops)

	// post sends call n to a relay, as a PBX does: again (to the other
	// relay) until it is answered 200. A call event rings at most
	// retailcrm.MaxCodes operators: call n is one event per group of
	// operators, "n-<n>-<group>".
	groups := (nops + retailcrm.MaxCodes - 1) / retailcrm.MaxCodes
	callID := func(n, g int) string { return fmt.Sprintf("n-%03d-%d", n, g) }
	// hasCalls reports whether op has had every call up to n (a call can be
	// overtaken by later ones sent ahead of the log; op.mu is held).
	hasCalls := func(op *clusterOperator, n int) bool {
		for i := 1; i <= n; i++ {
			if !slices.Contains(op.rings, callID(i, op.group)) {
				return false
			}
		}
		return true
	}
	post := func(n int, to ...*clusterNode) {
		t.Helper()
		for g := range groups {
			members := codes[g*retailcrm.MaxCodes : min(len(codes), (g+1)*retailcrm.MaxCodes)]
			ev := fmt.Sprintf(`{"type":"in","phone":"+7912%03d0%03d","codes":[%s],"callExternalId":%q}`,
				g, n, `"`+strings.Join(members, `","`)+`"`, callID(n, g))
			body := url.Values{"event": {ev}}.Encode()
			for try, deadline := 0, time.Now().Add(30*time.Second); ; try++ {
				req, _ := http.NewRequest("POST", to[try%len(to)].base+retailcrm.PathCallEvent, strings.NewReader(body))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.Header.Set("X-API-KEY", pbxKey)
				resp, err := http.DefaultClient.Do(req)
				if err == nil {
					resp.Body.Close()
					if resp.StatusCode == http.StatusOK {
						break
					}
					err = fmt.Errorf("HTTP %d", resp.StatusCode)
				}
				if time.Now().After(deadline) {
					t.Fatalf("call %s: %v", callID(n, g), err)
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
	}
	const before, during, after = 15, 30, 10
	for n := 1; n <= before; n++ {
		post(n, nodes[n%2])
	}

	// The kill, while calls go on to the two others, and statuses change.
	if err := victim.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	victim.cmd.Wait()
	var wg sync.WaitGroup
	statuses := []wire.Status{wire.StatusBusy, wire.StatusBreak}
	for i, op := range ops[:20] {
		wg.Go(func() {
			sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			op.a.SetStatus(sctx, statuses[i%2]) // queued and sent again by the agent when offline
		})
	}
	for n := before + 1; n <= before+during; n++ {
		post(n, nodes[n%2], nodes[(n+1)%2])
	}
	wg.Wait()
	waitAll("every call posted during the outage", func(op *clusterOperator) bool { return hasCalls(op, before+during) })
	t.Logf("every agent had every call %s after the kill", time.Since(killed).Round(time.Millisecond))

	// The killed relay, started again, rejoins: calls posted to it reach
	// everyone, and an agent that knows only it is served.
	restarted := time.Now()
	victim.start(t, bin)
	victim.waitHealthy(t)
	t.Logf("the killed relay served again %s after its restart", time.Since(restarted).Round(time.Millisecond))
	for n := before + during + 1; n <= before+during+after; n++ {
		post(n, nodes[n%3])
	}
	total := before + during + after
	waitAll("every call", func(op *clusterOperator) bool { return hasCalls(op, total) })
	added, err := (&admin.Client{Socket: filepath.Join(filepath.Dir(victim.config), "data2", "admin.sock")}).AddOperator(ctx,
		operators.NewOperator{Name: "Late", Code: "900", UserID: "9000"})
	if err != nil {
		t.Fatalf("adding an operator on the restarted relay: %v", err)
	}
	var lateMu sync.Mutex
	var late []string
	la, err := agent.New(agent.Config{RelayURL: victim.base, Token: added.Token, Logger: slog.New(slog.DiscardHandler),
		MinBackoff: 50 * time.Millisecond, MaxBackoff: 500 * time.Millisecond,
		OnEvent: func(e agent.Event) {
			if e.Kind == agent.EventCall {
				lateMu.Lock()
				late = append(late, e.Call.ID)
				lateMu.Unlock()
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	lateDone := make(chan error, 1)
	go func() { lateDone <- la.Run(actx) }()
	defer func() { stopAgents(); <-lateDone }()
	for deadline := time.Now().Add(30 * time.Second); la.State() != agent.Online; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("an agent could not connect to the restarted relay")
		}
	}
	ev := `{"type":"in","phone":"+79125550000","codes":["900"],"callExternalId":"late-1"}`
	req, _ := http.NewRequest("POST", nodes[0].base+retailcrm.PathCallEvent, strings.NewReader(url.Values{"event": {ev}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-API-KEY", pbxKey)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("late call: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		lateMu.Lock()
		got := slices.Contains(late, "late-1")
		lateMu.Unlock()
		if got {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the agent on the restarted relay did not get a call posted to another")
		}
	}

	// Every call once for every operator. (Not in posting order: a call
	// whose webhook was cut off by the kill is stored later, by another
	// relay after the PBX's retry, while the calls after it come ahead of
	// the log; each call's own cards stay in order.)
	for _, op := range ops {
		var want []string
		for n := 1; n <= total; n++ {
			want = append(want, callID(n, op.group))
		}
		op.mu.Lock()
		got := slices.Sorted(slices.Values(op.rings))
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("operator %s got the calls\n%v\nwant each once\n%v", op.code, op.rings, want)
		}
		// Cards from the log in seq order (those sent ahead of it have
		// none).
		var last uint64
		for _, seq := range op.seqs {
			if seq != 0 && seq <= last {
				t.Errorf("operator %s: seq %d after %d", op.code, seq, last)
			}
			last = max(last, seq)
		}
		op.mu.Unlock()
	}
	// Every status changed during the outage told to the PBX once.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		pbxMu.Lock()
		n := len(told)
		pbxMu.Unlock()
		if n >= 20 || time.Now().After(deadline) {
			break
		}
	}
	time.Sleep(2 * time.Second) // a second delivery would show
	pbxMu.Lock()
	defer pbxMu.Unlock()
	var bad bytes.Buffer
	for i, op := range ops[:20] {
		if k := op.code + "=" + string(statuses[i%2]); told[k] != 1 {
			fmt.Fprintf(&bad, " %s×%d", k, told[k])
		}
	}
	if bad.Len() > 0 || len(told) != 20 {
		t.Errorf("the PBX was told %d statuses %v; not once:%s", len(told), told, bad.String())
	}
}

// An outbox job runs once across the cluster: the relay that took it,
// killed (SIGKILL) while the partner has not answered yet, leaves it to
// another relay once its ack deadline has passed.
func TestClusterJobOfKilledRelay(t *testing.T) {
	bin := relayBinary(t)
	var mu sync.Mutex
	var hung string               // the node holding the job, while the PBX hangs
	delivered := map[string]int{} // node → statuses the PBX answered
	release := make(chan struct{})
	pbx := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		node := strings.Split(strings.Trim(r.URL.Path, "/"), "/")[0]
		mu.Lock()
		if hung == "" {
			hung = node
			mu.Unlock()
			select { // never answers: the relay is killed meanwhile
			case <-r.Context().Done():
			case <-release:
			}
			return
		}
		delivered[node]++
		mu.Unlock()
	}))
	defer pbx.Close()
	defer close(release)

	const clientID = "client-id-cluster-job"
	nodes := startClusterWith(t, bin, func(i int) string {
		return fmt.Sprintf(`[pbx]
client_id = %q
api_key = "pbx-key-cluster"
change_status_url = %q
`, clientID, fmt.Sprintf("%s/node%d/change-status", pbx.URL, i))
	})
	adm := &admin.Client{Socket: filepath.Join(filepath.Dir(nodes[0].config), "data0", "admin.sock")}
	if _, err := adm.AddOperator(context.Background(), operators.NewOperator{Name: "Anna", Code: "100", UserID: "7"}); err != nil {
		t.Fatal(err)
	}
	// A status changed in the CRM goes to the PBX through the outbox.
	resp, err := http.Get(nodes[0].base + "/retailcrm/change-status?" + url.Values{
		"clientId": {clientID}, "userId": {"7"}, "code": {"100"}, "status": {"busy"}}.Encode())
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("change-status: %v %v", resp, err)
	}
	resp.Body.Close()
	waitLocked(t, &mu, "the job taken", func() bool { return hung != "" }, nil)
	var holder *clusterNode
	for i, n := range nodes {
		if fmt.Sprintf("node%d", i) == hung {
			holder = n
		}
	}
	if err := holder.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	holder.cmd.Wait()
	waitLocked(t, &mu, "the job done by another relay", func() bool { return len(delivered) > 0 }, nil)
	t.Logf("%s took the job and was killed; another relay sent it %s later", hung, time.Since(killed).Round(time.Millisecond))
	time.Sleep(3 * time.Second) // a second delivery would show
	mu.Lock()
	defer mu.Unlock()
	total := 0
	for node, n := range delivered {
		total += n
		if node == hung {
			t.Errorf("the killed relay %s sent the job", node)
		}
	}
	if total != 1 {
		t.Errorf("the PBX got the status %d times, want once: %v", total, delivered)
	}
}

// consecutiveFree finds n consecutive free loopback ports.
func consecutiveFree(t *testing.T, n int) int {
	t.Helper()
	for try := 0; try < 50; try++ {
		base := 20000 + int(time.Now().UnixNano()%20000)
		var ls []net.Listener
		ok := true
		for i := range n {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", base+i))
			if err != nil {
				ok = false
				break
			}
			ls = append(ls, l)
		}
		for _, l := range ls {
			l.Close()
		}
		if ok {
			return base
		}
	}
	t.Fatal("no free ports")
	return 0
}

// The cluster demo: three relay processes and the PBX ringing through
// them; one killed, the demo says so and rings on; Ctrl+C stops every
// relay cleanly.
func TestClusterDemo(t *testing.T) {
	bin := relayBinary(t)
	ports := consecutiveFree(t, 6)
	dir := t.TempDir()
	cmd := exec.Command(bin, "demo", "--cluster", "3", "--every", "1s", "--port", fmt.Sprint(ports), "--cluster-port", fmt.Sprint(ports+3),
		"--data-dir", dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	}()
	lines := make(chan string, 1000)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	var pids []int
	var bases []string
	wait := func(what string, match func(string) bool) {
		t.Helper()
		timeout := time.After(2 * time.Minute)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("the demo ended before %s", what)
				}
				var n, pid int
				var base string
				if c, _ := fmt.Sscanf(strings.TrimSpace(l), "relay %d %s pid %d", &n, &base, &pid); c == 3 {
					pids, bases = append(pids, pid), append(bases, base)
				}
				if match(l) {
					return
				}
			case <-timeout:
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}
	wait("the welcome", func(l string) bool { return strings.Contains(l, "Ctrl+C stops everything") })
	if len(pids) != 3 {
		t.Fatalf("relay pids: %v", pids)
	}
	// The PBX's key is kept beside the tokens, as the single relay's demo
	// keeps it: a call event posted with it rings through any relay.
	key, err := os.ReadFile(filepath.Join(dir, "pbx.key"))
	if err != nil {
		t.Fatal(err)
	}
	ev, _ := json.Marshal(map[string]any{"type": "in", "phone": "+79165550001", "codes": []string{"100"}, "callExternalId": "by-hand-1"})
	req, _ := http.NewRequest(http.MethodPost, bases[2]+retailcrm.PathCallEvent, strings.NewReader(url.Values{"event": {string(ev)}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set(retailcrm.HeaderAPIKey, strings.TrimSpace(string(key)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("a call event with the demo's pbx.key: %s", resp.Status)
	}
	wait("a call", func(l string) bool { return strings.Contains(l, "PBX:") && strings.Contains(l, "rings") })
	if err := signalPid(pids[1], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	wait("the relay down", func(l string) bool { return strings.Contains(l, "relay 2") && strings.Contains(l, "is down") })
	wait("a call after the kill", func(l string) bool { return strings.Contains(l, "PBX:") && strings.Contains(l, "rings") })
	wait("another call after the kill", func(l string) bool { return strings.Contains(l, "PBX:") && strings.Contains(l, "rings") })
	cmd.Process.Signal(os.Interrupt)
	done := make(chan error, 1)
	go func() {
		for range lines {
		}
		done <- cmd.Wait()
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("the demo ended with %v", err)
		}
	case <-time.After(40 * time.Second):
		t.Fatal("the demo did not stop within 40s of Ctrl+C")
	}
	for _, pid := range []int{pids[0], pids[2]} {
		if err := signalPid(pid, syscall.Signal(0)); err == nil {
			t.Errorf("relay pid %d still runs after the demo", pid)
		}
	}
}

func signalPid(pid int, sig os.Signal) error {
	p, err := os.FindProcess(pid)
	if err != nil {
		return err
	}
	return p.Signal(sig)
}

// A relay cut off from its cluster's majority (here the two other relays
// killed) closes its agents' sessions so that they move to another relay,
// refuses new ones with a reason and says so on /healthz; once the
// majority is back it serves them again, and nothing posted meanwhile to
// the rest of the cluster is missed.
func TestClusterMinorityClosesSessions(t *testing.T) {
	bin := relayBinary(t)
	const pbxKey = "pbx-key-minority"
	nodes := startCluster(t, bin, fmt.Sprintf("[pbx]\nclient_id = \"client-id-minority\"\napi_key = %q\n", pbxKey))
	ctx := context.Background()
	adm := &admin.Client{Socket: filepath.Join(filepath.Dir(nodes[0].config), "data0", "admin.sock")}
	added, err := adm.AddOperator(ctx, operators.NewOperator{Name: "Anna", Code: "100", UserID: "7"})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var rings []string
	var closes []string
	// The agent knows the first relay only, so that it can be seen
	// refused, and served again, there.
	a, err := agent.New(agent.Config{RelayURL: nodes[0].base, Token: added.Token, Logger: slog.New(slog.DiscardHandler),
		MinBackoff: 50 * time.Millisecond, MaxBackoff: 500 * time.Millisecond,
		OnEvent: func(e agent.Event) {
			mu.Lock()
			defer mu.Unlock()
			switch {
			case e.Kind == agent.EventCall && e.Call.State == wire.CallRinging:
				rings = append(rings, e.Call.ID)
			case e.Kind == agent.EventConn && e.Err != "":
				closes = append(closes, e.Err)
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	actx, stopAgent := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- a.Run(actx) }()
	defer func() { stopAgent(); <-done }()
	waitOnline := func(what string) {
		t.Helper()
		for deadline := time.Now().Add(60 * time.Second); a.State() != agent.Online; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: the agent is not online", what)
			}
		}
	}
	waitOnline("at the start")
	post := func(to *clusterNode, id string) {
		t.Helper()
		ev := fmt.Sprintf(`{"type":"in","phone":"+79125550101","codes":["100"],"callExternalId":%q}`, id)
		req, _ := http.NewRequest("POST", to.base+retailcrm.PathCallEvent, strings.NewReader(url.Values{"event": {ev}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-API-KEY", pbxKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("posting %s: %v %v", id, resp, err)
		}
		resp.Body.Close()
	}
	post(nodes[1], "before")

	// The two others die: the first is a minority of one.
	for _, n := range nodes[1:] {
		if err := n.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		n.cmd.Wait()
	}
	cut := time.Now()
	for deadline := time.Now().Add(40 * time.Second); a.State() == agent.Online; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the agent's session on a relay cut off from the majority was not closed")
		}
	}
	t.Logf("the session was closed %s after the majority was lost", time.Since(cut).Round(time.Millisecond))
	if resp, err := http.Get(nodes[0].base + "/healthz"); err != nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("/healthz of the cut-off relay: %v %v, want 503", resp, err)
	} else {
		resp.Body.Close()
	}
	// A new session is refused at once, with the reason.
	req, _ := http.NewRequest("GET", nodes[0].base+wire.Path, nil)
	req.Header.Set("Authorization", "Bearer "+added.Token)
	req.Header.Set(wire.HeaderProtocol, fmt.Sprint(wire.ProtocolVersion))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var he wire.HandshakeError
	json.NewDecoder(resp.Body).Decode(&he)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || he.Code != wire.CloseGoingAway || !strings.Contains(he.Reason, "majority") {
		t.Errorf("a handshake on the cut-off relay: HTTP %d %+v", resp.StatusCode, he)
	}

	// The majority back: the agent is served again and gets what was
	// posted while it was away.
	for _, n := range nodes[1:] {
		n.start(t, bin)
	}
	for _, n := range nodes {
		n.waitHealthy(t)
	}
	post(nodes[2], "after")
	waitOnline("after the majority came back")
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		mu.Lock()
		got := slices.Clone(rings)
		mu.Unlock()
		if slices.Equal(got, []string{"before", "after"}) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rings %v, want [before after]", got)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.ContainsFunc(closes, func(s string) bool { return strings.Contains(s, "majority") }) {
		t.Errorf("the agent was not told why (disconnects: %q)", closes)
	}
}
