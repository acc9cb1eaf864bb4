package bench

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	benchClientID = "pult-bench-client"
	startTimeout  = 30 * time.Second
	// clusterStartTimeout is a cluster node's: the nodes elect leaders
	// for every stream and bucket before the first answers.
	clusterStartTimeout = 2 * time.Minute
	stopTimeout         = 20 * time.Second
)

// relayProc is a relay running as a child process on a loopback port.
type relayProc struct {
	cmd         *exec.Cmd
	pid         int
	baseURL     string
	adminSocket string // the relay's admin socket, in its data_dir
	metricsURL  string // where /metrics is: metrics_listen (the baseline: baseURL)
	pbxKey      string
	logPath     string
	logFile     *os.File
	exited      chan struct{} // closed when the process has exited
	waitErr     error         // valid after exited is closed

	newCmd    func() *exec.Cmd // builds the command line again (restart)
	pprofAddr string           // host:port of the relay's pprof (metrics_listen), if profiling
	baseline  bool             // the gorilla baseline, not the relay

	centrifugo bool   // Centrifugo, not the relay: pbxKey is its HTTP API key
	hmacSecret string // Centrifugo's connection token key

	cfgPath     string
	writeConfig func() error // (re)writes cfgPath
	cluster     []*relayProc // with Options.Cluster, on the first node: every node, itself first
	killed      bool         // SIGKILLed by the run (Options.Kill)
	inCluster   bool         // one node of a cluster
}

func secret() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// freePort asks the kernel for an unused loopback port.
func freePort() (int, error) {
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		// Closed at once, the port may come back from the next Listen:
		// never hand out one twice (a cluster's nodes would share it).
		if _, given := portsGiven.LoadOrStore(port, true); !given {
			return port, nil
		}
	}
	return 0, errors.New("no loopback port not handed out before")
}

// portsGiven are the ports freePort has handed out in this process.
var portsGiven sync.Map

// startRelay writes a config into dir, starts the relay with it and waits
// until GET /healthz answers 200. The caller must call stop.
func startRelay(ctx context.Context, o Options, dir string) (*relayProc, error) {
	p, err := newRelayProc(o, dir, "")
	if err != nil {
		return nil, err
	}
	if err := p.launch(ctx); err != nil {
		return nil, err
	}
	return p, nil
}

// launch starts the process and waits until it answers /healthz; on a
// failure nothing is left running and the log file is closed.
func (p *relayProc) launch(ctx context.Context) error {
	if err := p.start(); err != nil {
		p.logFile.Close()
		return err
	}
	if err := p.waitHealthy(ctx); err != nil {
		p.stop()
		return err
	}
	return nil
}

// startCluster starts o.Cluster relays, each with its own folder under
// dir, as one embedded JetStream cluster on loopback with three copies of
// everything (clusterConfig), and waits until every one answers /healthz.
// The first node is returned, with every node (itself first) in cluster;
// stop stops them all.
func startCluster(ctx context.Context, o Options, dir string) (*relayProc, error) {
	var listens []string
	for range o.Cluster {
		port, err := freePort()
		if err != nil {
			return nil, fmt.Errorf("bench: no free port: %w", err)
		}
		listens = append(listens, "127.0.0.1:"+strconv.Itoa(port))
	}
	nodes := make([]*relayProc, 0, o.Cluster)
	stopAll := func() {
		for _, n := range nodes {
			n.stop()
		}
	}
	for i := range o.Cluster {
		ndir := filepath.Join(dir, fmt.Sprintf("relay%d", i+1))
		if err := os.Mkdir(ndir, 0o700); err != nil {
			stopAll()
			return nil, fmt.Errorf("bench: %w", err)
		}
		n, err := newRelayProc(o, ndir, clusterConfig(clusterReplicas, listens[i], listens))
		if err != nil {
			stopAll()
			return nil, err
		}
		n.inCluster = true
		if i > 0 {
			n.pbxKey = nodes[0].pbxKey // one PBX, the same key everywhere
			if err := n.writeConfig(); err != nil {
				stopAll()
				return nil, err
			}
		}
		if err := n.start(); err != nil {
			n.logFile.Close()
			stopAll()
			return nil, err
		}
		nodes = append(nodes, n)
	}
	// Started together: a node is healthy once the cluster has formed.
	for _, n := range nodes {
		if err := n.waitHealthy(ctx); err != nil {
			stopAll()
			return nil, err
		}
	}
	nodes[0].cluster = nodes
	return nodes[0], nil
}

// clusterReplicas is the copies of every stream and bucket in a cluster.
const clusterReplicas = 3

// clusterConfig is what makes a relay one node of an embedded JetStream
// cluster (docs/cluster.md): replicas, and the cluster's name, this node's
// route port and every node's (itself included, which it skips).
func clusterConfig(replicas int, listen string, all []string) string {
	routes := make([]string, len(all))
	for i, a := range all {
		routes[i] = strconv.Quote("nats-route://" + a)
	}
	return fmt.Sprintf("replicas = %d\n\n[nats.cluster]\nname = %q\nlisten = %q\nroutes = [%s]\n",
		replicas, "pult-bench", listen, strings.Join(routes, ", "))
}

// newRelayProc picks the relay's ports and writes its config into dir;
// natsExtra is appended to its [nats] table. Nothing is started.
func newRelayProc(o Options, dir, natsExtra string) (*relayProc, error) {
	port, err := freePort()
	if err != nil {
		return nil, fmt.Errorf("bench: no free port: %w", err)
	}
	mport, err := freePort()
	if err != nil {
		return nil, fmt.Errorf("bench: no free port: %w", err)
	}
	metricsAddr := "127.0.0.1:" + strconv.Itoa(mport)
	p := &relayProc{
		baseURL:     "http://127.0.0.1:" + strconv.Itoa(port),
		adminSocket: filepath.Join(dir, "data", "admin.sock"),
		metricsURL:  "http://" + metricsAddr,
		pbxKey:      "bench-pbx-" + secret(),
		logPath:     filepath.Join(dir, "relay.log"),
		exited:      make(chan struct{}),
		cfgPath:     filepath.Join(dir, "relay.toml"),
	}
	// No make_call/change_status/retailcrm URLs: the relay calls nobody,
	// and without a CRM a call card is final when first sent. The admin
	// API is on the socket in data_dir; metrics and pprof on metrics_listen.
	p.writeConfig = func() error {
		cfg := fmt.Sprintf("listen = %q\ndata_dir = %q\nmetrics_listen = %q\n\n[pbx]\nclient_id = %q\napi_key = %q\n",
			"127.0.0.1:"+strconv.Itoa(port), filepath.Join(dir, "data"), metricsAddr, benchClientID, p.pbxKey)
		if o.Trace && o.Target == TargetPult {
			cfg = fmt.Sprintf("trace_events = %d\n", traceEvents(o)) + cfg
		}
		if o.Sync != "" || natsExtra != "" {
			cfg += "\n[nats]\n"
			if o.Sync != "" {
				cfg += fmt.Sprintf("sync = %q\n", o.Sync)
			}
			cfg += natsExtra
		}
		if err := os.WriteFile(p.cfgPath, []byte(cfg), 0o600); err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		return nil
	}
	if err := p.writeConfig(); err != nil {
		return nil, err
	}

	bin := o.RelayBin
	if bin == "" && o.Command == nil {
		if bin, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("bench: cannot find the pult-relay binary (use --relay-bin): %w", err)
		}
	}
	if o.ProfileDir != "" && o.Target != TargetGorilla {
		p.pprofAddr = metricsAddr
	}
	p.baseline = o.Target == TargetGorilla
	if p.baseline {
		p.metricsURL = p.baseURL // the baseline's own /metrics
	}
	p.newCmd = func() *exec.Cmd {
		var cmd *exec.Cmd
		switch {
		case p.baseline:
			cmd = exec.Command(bin, baselineArgs(port)...)
		case o.Command != nil:
			cmd = o.Command(p.cfgPath)
		default:
			cmd = exec.Command(bin, "serve", "--config", p.cfgPath)
		}
		if cmd.Env == nil {
			cmd.Env = childEnv()
		}
		if cmd.SysProcAttr == nil {
			cmd.SysProcAttr = childAttr()
		}
		return cmd
	}
	if p.logFile, err = os.Create(p.logPath); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	return p, nil
}

// nodes is every relay of the run: the cluster's, or this one.
func (p *relayProc) nodes() []*relayProc {
	if len(p.cluster) > 0 {
		return p.cluster
	}
	return []*relayProc{p}
}

// start runs the command line of newCmd, appending to the same log.
func (p *relayProc) start() error {
	p.cmd = p.newCmd()
	p.cmd.Stdout, p.cmd.Stderr = p.logFile, p.logFile
	if err := p.cmd.Start(); err != nil {
		return fmt.Errorf("bench: start relay %s: %w", p.cmd.Path, err)
	}
	p.pid = p.cmd.Process.Pid
	p.exited = make(chan struct{})
	cmd, exited := p.cmd, p.exited
	go func() {
		p.waitErr = cmd.Wait()
		close(exited)
	}()
	return nil
}

// restart stops the relay (SIGTERM: it tells every agent it is going away)
// and starts it again on the same port and data. It returns when the
// process has exited and when the new one answers /healthz.
func (p *relayProc) restart(ctx context.Context) (stopped, healthy time.Time, err error) {
	if err := p.signalStop(); err != nil {
		return stopped, healthy, err
	}
	stopped = time.Now()
	if err := p.start(); err != nil {
		return stopped, healthy, err
	}
	if err := p.waitHealthy(ctx); err != nil {
		return stopped, healthy, err
	}
	return stopped, time.Now(), nil
}

// childEnv is this environment without the PULT_* variables, which would
// override the generated config (PULT_NATS_URL, PULT_ADMIN_TOKEN, …).
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PULT_") {
			env = append(env, kv)
		}
	}
	return env
}

func (p *relayProc) waitHealthy(ctx context.Context) error {
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	defer hc.CloseIdleConnections()
	timeout := startTimeout
	if len(p.cluster) > 0 || p.inCluster {
		timeout = clusterStartTimeout // elections first
	}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.baseURL+"/healthz", nil)
		if resp, err := hc.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-p.exited:
			return fmt.Errorf("bench: the relay exited at start (%v):\n%s", p.waitErr, p.logTail(20))
		case <-time.After(20 * time.Millisecond):
		}
	}
	return fmt.Errorf("bench: the relay did not become healthy within %s:\n%s", timeout, p.logTail(20))
}

// alive reports whether the relay is still running.
func (p *relayProc) alive() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM, waits, and kills the relay if it does not stop; on
// a cluster's first node, every node's.
func (p *relayProc) stop() error {
	var errs []error
	for _, n := range p.cluster[min(1, len(p.cluster)):] {
		errs = append(errs, n.stopOne())
	}
	return errors.Join(append([]error{p.stopOne()}, errs...)...)
}

func (p *relayProc) stopOne() error {
	defer p.logFile.Close()
	return p.signalStop()
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *relayProc) kill() error {
	p.killed = true
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		return fmt.Errorf("bench: kill the relay: %w", err)
	}
	<-p.exited
	return nil
}

func (p *relayProc) signalStop() error {
	if !p.alive() {
		return nil
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		p.cmd.Process.Kill()
	}
	select {
	case <-p.exited:
		return nil
	case <-time.After(stopTimeout):
	}
	p.cmd.Process.Kill()
	<-p.exited
	return fmt.Errorf("bench: the relay did not stop within %s of SIGTERM; killed", stopTimeout)
}

// logFindings counts the relay's WARN and ERROR log lines and keeps the first few.
func (p *relayProc) logFindings(keep int) (int, []string) {
	f, err := os.Open(p.logPath)
	if err != nil {
		return 0, nil
	}
	defer f.Close()
	n, sample := 0, []string(nil)
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if strings.Contains(l, "level=WARN") || strings.Contains(l, "level=ERROR") || strings.HasPrefix(l, "panic") ||
			strings.Contains(l, `"level":"warn"`) || strings.Contains(l, `"level":"error"`) { // Centrifugo's
			n++
			if len(sample) < keep {
				sample = append(sample, l)
			}
		}
	}
	return n, sample
}

// logTail is the end of the relay's output, for error messages.
func (p *relayProc) logTail(lines int) string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return "(no relay output)"
	}
	ls := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	s := strings.Join(ls, "\n")
	if s == "" {
		return "(no relay output)"
	}
	return s
}

var errRelayDied = errors.New("bench: the relay exited during the run")

// goStats reads the relay's Go heap in use and goroutine count from its
// /metrics page (the embedded NATS server lives in the same heap).
func (p *relayProc) goStats(ctx context.Context) (heap int64, goroutines int) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.metricsURL+"/metrics", nil)
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return 0, 0
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, v, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil {
			continue
		}
		switch name {
		case "go_memstats_heap_inuse_bytes":
			heap = int64(f)
		case "go_goroutines":
			goroutines = int(f)
		}
	}
	return heap, goroutines
}

// rss is the resident set size of the relay, summed over a cluster's
// nodes still running.
func (p *relayProc) rss() (int64, error) {
	var sum int64
	for _, n := range p.nodes() {
		if n.killed {
			continue
		}
		b, err := rss(n.pid)
		if err != nil {
			return 0, err
		}
		sum += b
	}
	return sum, nil
}

// cpuTicks is the relay's CPU time, summed over a cluster's nodes still
// running.
func (p *relayProc) cpuTicks() (int64, error) {
	var sum int64
	for _, n := range p.nodes() {
		if n.killed {
			continue
		}
		t, err := cpuTicks(n.pid)
		if err != nil {
			return 0, err
		}
		sum += t
	}
	return sum, nil
}

// goStatsAll is goStats summed over a cluster's nodes still running.
func (p *relayProc) goStatsAll(ctx context.Context) (heap int64, goroutines int) {
	for _, n := range p.nodes() {
		if n.killed {
			continue
		}
		h, g := n.goStats(ctx)
		heap += h
		goroutines += g
	}
	return heap, goroutines
}
