package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
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

	"github.com/pult/pult/relay/admin"
	"github.com/pult/pult/relay/operators"
	"github.com/pult/pult/relay/retailcrm"
	"github.com/pult/pult/relay/retailcrm/sim"
)

// ClusterOptions are the options of the cluster demo: Nodes relays, each a
// process of its own (`pult-relay serve`), their embedded NATS servers
// joined into one JetStream cluster on loopback, every stream and bucket
// with three copies.
type ClusterOptions struct {
	Nodes int    // 3 or 5
	Exe   string // the pult-relay binary the nodes run
	// Port is the first node's public port (the others follow);
	// ClusterPort the first node's NATS route port.
	Port, ClusterPort int
	DataDir           string        // "" for a temporary folder removed at exit
	Every             time.Duration // how often the PBX rings
	Out               io.Writer
	Logger            *slog.Logger
	// Restart is how long a node that died waits before the demo starts
	// it again.
	Restart time.Duration
	App     string   // as Options.App: its PULT_RELAY lists every node
	AppAs   string   // as Options.AppAs
	AppEnv  []string // as Options.AppEnv
}

// clusterNode is one relay process of the demo.
type clusterNode struct {
	i            int
	config, base string
	log          string // its output
	mu           sync.Mutex
	cmd          *exec.Cmd
}

// RunCluster runs the cluster demo until ctx ends, then stops every node
// cleanly (SIGTERM).
func RunCluster(ctx context.Context, o ClusterOptions) error {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.Every <= 0 {
		o.Every = 6 * time.Second
	}
	if o.Restart <= 0 {
		o.Restart = 30 * time.Second
	}
	if o.Nodes != 3 && o.Nodes != 5 {
		return fmt.Errorf("demo: a cluster of 3 or 5 relays, not %d", o.Nodes)
	}
	dir := o.DataDir
	if dir == "" {
		d, err := os.MkdirTemp("", "pult-cluster-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}

	// The partners, in this process, on a loopback port of their own.
	crmKey, pbxKey := secret(), secret()
	crm := sim.NewCRM(crmKey)
	for _, c := range sim.DemoClients() {
		if err := crm.AddClient(c.Phone, c.Customer, c.Manager); err != nil {
			return err
		}
	}
	for _, m := range sim.DemoManagers() {
		crm.SetUserStatus(m.Manager.ID, m.Status)
	}
	pbx := sim.NewPBX(clientID)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	partners := "http://" + ln.Addr().String()
	crm.SetAccountURL(partners + "/crm")
	mux := http.NewServeMux()
	mux.Handle("/crm/", http.StripPrefix("/crm", crm))
	mux.Handle("/pbx/", http.StripPrefix("/pbx", pbx))
	psrv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go psrv.Serve(ln)
	defer psrv.Close()

	// The nodes' configurations.
	var routes []string
	for i := range o.Nodes {
		routes = append(routes, strconv.Quote("nats-route://127.0.0.1:"+strconv.Itoa(o.ClusterPort+i)))
	}
	nodes := make([]*clusterNode, o.Nodes)
	var bases []string
	for i := range nodes {
		addr := "127.0.0.1:" + strconv.Itoa(o.Port+i)
		n := &clusterNode{i: i, base: "http://" + addr,
			config: filepath.Join(dir, fmt.Sprintf("relay%d.toml", i+1)), log: filepath.Join(dir, fmt.Sprintf("relay%d.log", i+1))}
		conf := fmt.Sprintf(`# pult cluster demo: relay %d of %d
listen = %q
data_dir = %q
public_url = %q

[nats]
replicas = 3
[nats.cluster]
name = "pult-demo"
listen = "127.0.0.1:%d"
routes = [%s]

[pbx]
client_id = %q
api_key = %q
make_call_url = %q
change_status_url = %q

[retailcrm]
url = %q
api_key = %q
`, i+1, o.Nodes, addr, filepath.Join(dir, fmt.Sprintf("data%d", i+1)), n.base, o.ClusterPort+i, strings.Join(routes, ", "),
			clientID, pbxKey, partners+"/pbx/make-call", partners+"/pbx/change-status", partners+"/crm", crmKey)
		if err := os.WriteFile(n.config, []byte(conf), 0o600); err != nil {
			return err
		}
		nodes[i] = n
		bases = append(bases, n.base)
	}

	fmt.Fprintf(o.Out, "\npult cluster demo: starting %d relays (embedded NATS joined into one JetStream cluster, 3 copies of everything)…\n", o.Nodes)
	var wg sync.WaitGroup
	defer wg.Wait()
	runCtx, stopNodes := context.WithCancel(context.Background())
	defer stopNodes()
	for _, n := range nodes {
		if err := n.start(o.Exe); err != nil {
			return err
		}
		wg.Go(func() { n.keep(ctx, runCtx, o) })
	}
	if err := waitHealthy(ctx, bases, 2*time.Minute); err != nil {
		stopNodes()
		return err
	}

	adm := &admin.Client{Socket: filepath.Join(dir, "data1", "admin.sock")}
	tokens := map[string]string{}
	if err := revokeDemoOperators(ctx, adm); err != nil {
		return fmt.Errorf("demo operators: %w", err)
	}
	for _, op := range Operators {
		added, err := adm.AddOperator(ctx, operators.NewOperator{Name: op.Name, Code: op.Code, UserID: op.UserID, Role: op.Role})
		if err != nil {
			return fmt.Errorf("demo operators: %w", err)
		}
		tokens[op.Code] = added.Token
		if err := os.WriteFile(filepath.Join(dir, op.Code+".token"), []byte(added.Token+"\n"), 0o600); err != nil {
			return err
		}
	}
	// The simulated PBX's key, as the single relay's demo keeps it: a call
	// event posted with it to any relay rings as the PBX's do.
	if err := os.WriteFile(filepath.Join(dir, PBXKeyFile), []byte(pbxKey+"\n"), 0o600); err != nil {
		return err
	}
	printClusterWelcome(o, nodes, dir, tokens)

	if o.App != "" {
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
		appDone, err := startApp(ctx, Options{App: o.App, AppAs: o.AppAs, AppEnv: o.AppEnv, Out: o.Out}, strings.Join(bases, ","), dir, tokens, cancel)
		if err != nil {
			return err
		}
		defer func() { <-appDone }()
	}

	g := &generator{bases: bases, key: pbxKey, out: o.Out, log: o.Logger}
	pbx.OnMakeCall = func(mc retailcrm.MakeCall) { g.spawn(ctx, func(ctx context.Context) { g.outgoing(ctx, mc) }) }
	pbx.OnChangeStatus = func(cs retailcrm.ChangeStatus) {
		fmt.Fprintf(o.Out, "%s  PBX: extension %s is now %s\n", stamp(), cs.Code, cs.Status)
	}
	g.run(ctx, o.Every)
	stopNodes()
	return nil
}

func (n *clusterNode) start(exe string) error {
	f, err := os.OpenFile(n.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	cmd := exec.Command(exe, "serve", "--config", n.config)
	cmd.Stdout, cmd.Stderr = f, f
	ownGroup(cmd)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("demo: starting relay %d: %w", n.i+1, err)
	}
	n.mu.Lock()
	n.cmd = cmd
	n.mu.Unlock()
	return nil
}

// keep waits for the node's process; one that dies while the demo runs is
// started again after o.Restart. When stop ends, the node is stopped
// cleanly (SIGTERM, then SIGKILL after 15 s).
func (n *clusterNode) keep(ctx, stop context.Context, o ClusterOptions) {
	for {
		n.mu.Lock()
		cmd := n.cmd
		n.mu.Unlock()
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		select {
		case err := <-exited:
			if stop.Err() != nil || ctx.Err() != nil {
				return
			}
			fmt.Fprintf(o.Out, "%s  relay %d (pid %d) is down (%v): its agents move to the other relays; it starts again in %s\n",
				stamp(), n.i+1, cmd.Process.Pid, exitText(err), o.Restart)
		case <-stop.Done():
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(15 * time.Second):
				cmd.Process.Kill()
				<-exited
			}
			return
		}
		if !sleep(stop, o.Restart) {
			return
		}
		if err := n.start(o.Exe); err != nil {
			fmt.Fprintf(o.Out, "%s  relay %d could not start again: %v\n", stamp(), n.i+1, err)
			return
		}
		n.mu.Lock()
		pid := n.cmd.Process.Pid
		n.mu.Unlock()
		fmt.Fprintf(o.Out, "%s  relay %d started again (pid %d): it rejoins the cluster and serves\n", stamp(), n.i+1, pid)
	}
}

// waitHealthy waits until every relay answers /healthz.
func waitHealthy(ctx context.Context, bases []string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for _, base := range bases {
		for {
			resp, err := http.Get(base + "/healthz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("demo: the relay at %s did not start within %s (its log is next to its configuration)", base, limit)
			}
			if !sleep(ctx, 200*time.Millisecond) {
				return errors.New("demo: stopped while the relays were starting")
			}
		}
	}
	return nil
}

func printClusterWelcome(o ClusterOptions, nodes []*clusterNode, dir string, tokens map[string]string) {
	w := o.Out
	var bases []string
	fmt.Fprintf(w, "\npult cluster demo: %d relays, with a simulated PBX and retailCRM ringing through all of them.\n\n", len(nodes))
	for _, n := range nodes {
		n.mu.Lock()
		fmt.Fprintf(w, "  relay %d  %s  pid %-7d  config %s  log %s\n", n.i+1, n.base, n.cmd.Process.Pid, n.config, n.log)
		n.mu.Unlock()
		bases = append(bases, n.base)
	}
	fmt.Fprintln(w, "\nOperators (tokens are also in "+dir+"):")
	for _, op := range Operators {
		fmt.Fprintf(w, "  %-20s code %s  %-10s  %s\n", op.Name, op.Code, op.Role, tokens[op.Code])
	}
	relays := strings.Join(bases, ",")
	fmt.Fprintf(w, `
In another terminal, watch Анна's (100) calls through any relay of the cluster:
  export PULT_RELAY=%[1]s PULT_TOKEN=$(cat %[2]s/100.token)
  bin/pult watch
The agent says which relay it is on. Kill that relay (or any other) the hard way:
  kill -9 <its pid, above>
and watch the agent move to another one and carry on — nothing missed, nothing twice;
the PBX keeps ringing through the relays left. The killed relay starts again after %[3]s
and rejoins the cluster. Kill two of three and the last one refuses new work (no majority)
until one is back: see docs/cluster.md.
Any relay serves the queue board and the admin commands:
  %[4]s/board#token=%[5]s
  bin/pult-relay operators list --config %[6]s

The simulated PBX rings every %[7]s. Its key is in %[2]s/pbx.key: a call event posted
with it (X-API-KEY) to any relay rings like the PBX's. Ctrl+C stops everything.

`, relays, dir, o.Restart, nodes[len(nodes)-1].base, tokens["102"], nodes[0].config, o.Every)
}
