// Package demo runs a relay on its embedded defaults together with a
// simulated PBX and CRM, so pult can be tried without any partner account.
// The simulated PBX rings the demo operators through the relay's real
// retailCRM-style endpoint; the simulated CRM answers the relay's
// responsible-manager lookups from a small shop's clients.
package demo

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	ctfake "github.com/pult/pult/relay/calltouch/fake"
	qfake "github.com/pult/pult/relay/qolio/fake"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pult/pult/agent/phone"
	"github.com/pult/pult/agent/wire"
	"github.com/pult/pult/relay"
	"github.com/pult/pult/relay/admin"
	"github.com/pult/pult/relay/config"
	"github.com/pult/pult/relay/operators"
	"github.com/pult/pult/relay/retailcrm"
	"github.com/pult/pult/relay/retailcrm/sim"
)

// Options of the demo.
type Options struct {
	Listen string // the relay's address
	// Listener, when set, is where the relay serves (Listen is then its
	// address): tests listen on a free port and keep it.
	Listener net.Listener
	DataDir  string        // "" for a temporary folder removed at exit
	Every    time.Duration // how often the PBX rings
	Out      io.Writer     // where the demo narrates
	Logger   *slog.Logger
	// App, when set, is the desktop app (bin/pult) to start signed in as
	// the operator with code AppAs (default 100), with AppEnv (the
	// caller's environment) plus its sign-in. The demo ends when the app
	// quits, and stops the app when it ends.
	App    string
	AppAs  string
	AppEnv []string
}

// Operator is a demo operator.
type Operator struct {
	Name, Code, UserID string
	Role               wire.Role
}

// Operators are the demo's operators; their codes and user ids match the
// simulated CRM's managers.
var Operators = []Operator{
	{"Анна Смирнова", "100", "1", wire.RoleOperator},
	{"Дмитрий Волков", "101", "2", wire.RoleOperator},
	{"Екатерина Морозова", "102", "3", wire.RoleSupervisor},
}

const clientID = "demo-client-id"

// PBXKeyFile, in the demo's data folder, holds the simulated PBX's API key
// (retailcrm.HeaderAPIKey) for this run.
const PBXKeyFile = "pbx.key"

// Run runs the demo until ctx ends.
func Run(ctx context.Context, o Options) error {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.Every <= 0 {
		o.Every = 6 * time.Second
	}
	dir := o.DataDir
	if dir == "" {
		d, err := os.MkdirTemp("", "pult-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}

	// The partners, on a loopback port of their own.
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

	if o.Listener != nil {
		o.Listen = o.Listener.Addr().String()
	}
	cfg := config.Defaults()
	cfg.Listen = o.Listen
	cfg.DataDir = filepath.Join(dir, "relay")
	cfg.PublicURL = "http://" + o.Listen
	cfg.PBX.ClientID = clientID
	cfg.PBX.APIKey = pbxKey
	cfg.PBX.MakeCallURL = partners + "/pbx/make-call"
	cfg.PBX.ChangeStatusURL = partners + "/pbx/change-status"
	cfg.RetailCRM.URL = partners + "/crm"
	cfg.RetailCRM.APIKey = crmKey
	// The QA platform and the callback service, simulated as strictly as the
	// tests do: the app's Transcripts window and Order callback work.
	qolioToken, calltouchToken := secret(), secret()
	qolioSim := qfake.NewServer(qolioToken)
	defer qolioSim.Close()
	cfg.Qolio.URL, cfg.Qolio.Token = qolioSim.URL(), qolioToken
	const routeKey = "demo-route"
	calltouchSim := ctfake.NewServer(calltouchToken, routeKey)
	defer calltouchSim.Close()
	cfg.Calltouch.URL, cfg.Calltouch.Token, cfg.Calltouch.RouteKey = calltouchSim.URL(), calltouchToken, routeKey
	srv := relay.New(cfg, o.Logger)
	if o.Listener != nil {
		srv.ServeOn(o.Listener)
	}
	rctx, stopRelay := context.WithCancel(context.Background())
	defer stopRelay()
	relayDone := make(chan error, 1)
	go func() { relayDone <- srv.Run(rctx) }()
	select {
	case <-srv.Ready():
	case err := <-relayDone:
		return fmt.Errorf("demo relay: %w", err)
	case <-ctx.Done():
		stopRelay()
		return <-relayDone
	}
	base := "http://" + srv.Addr()

	admin := &admin.Client{Socket: srv.AdminSocket()}
	tokens := map[string]string{}
	// A demo started again on the same data gives its operators new tokens:
	// the old ones (only their hashes are kept) are revoked first.
	if err := revokeDemoOperators(ctx, admin); err != nil {
		stopRelay()
		<-relayDone
		return fmt.Errorf("demo operators: %w", err)
	}
	for _, op := range Operators {
		added, err := admin.AddOperator(ctx, operators.NewOperator{Name: op.Name, Code: op.Code, UserID: op.UserID, Role: op.Role})
		if err != nil {
			stopRelay()
			<-relayDone
			return fmt.Errorf("demo operators: %w", err)
		}
		tokens[op.Code] = added.Token
		if err := os.WriteFile(filepath.Join(dir, op.Code+".token"), []byte(added.Token+"\n"), 0o600); err != nil {
			return err
		}
	}
	// The simulated PBX's key, beside the tokens: a call event posted with
	// it rings an operator as the PBX does (the desktop test rings calls
	// at chosen moments this way).
	if err := os.WriteFile(filepath.Join(dir, PBXKeyFile), []byte(pbxKey+"\n"), 0o600); err != nil {
		return err
	}
	printWelcome(o.Out, base, dir, srv.AdminSocket(), tokens, o.Every)

	if o.App != "" {
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
		appDone, err := startApp(ctx, o, base, dir, tokens, cancel)
		if err != nil {
			stopRelay()
			<-relayDone
			return err
		}
		defer func() { <-appDone }()
	}

	g := &generator{bases: []string{base}, key: pbxKey, out: o.Out, log: o.Logger}
	pbx.OnMakeCall = func(mc retailcrm.MakeCall) { g.spawn(ctx, func(ctx context.Context) { g.outgoing(ctx, mc) }) }
	pbx.OnChangeStatus = func(cs retailcrm.ChangeStatus) {
		fmt.Fprintf(o.Out, "%s  PBX: extension %s is now %s\n", stamp(), cs.Code, cs.Status)
	}
	g.run(ctx, o.Every)
	stopRelay()
	return <-relayDone
}

func printWelcome(w io.Writer, base, dir, adminSocket string, tokens map[string]string, every time.Duration) {
	fmt.Fprintf(w, "\npult demo: relay at %s, with a simulated PBX and retailCRM.\n\n", base)
	fmt.Fprintln(w, "Operators (tokens are also in "+dir+"):")
	for _, op := range Operators {
		fmt.Fprintf(w, "  %-20s code %s  %-10s  %s\n", op.Name, op.Code, op.Role, tokens[op.Code])
	}
	fmt.Fprintf(w, `
In another terminal, sign in as Анна (100) and watch her calls:
  bin/pult login --relay %[1]s --token-file %[2]s/100.token
  bin/pult watch
or without the OS keyring:
  export PULT_RELAY=%[1]s PULT_TOKEN=$(cat %[2]s/100.token)
Then try:
  bin/pult status busy
  bin/pult dial "+7 (912) 123-45-67"
  bin/pult callback "+7 (912) 123-45-67" --note "about order 42"
  printf 'Анна: Здравствуйте!\nИван: Где мой заказ?\n' | bin/pult transcript submit -
The queue board, as a TV would show it (Екатерина, 102, is a supervisor):
  %[1]s/board#token=%[5]s
Administration (on the relay's admin socket):
  bin/pult-relay operators list --socket %[3]s

The simulated PBX rings every %[4]s; some calls are answered, some missed. Its key is in
%[2]s/pbx.key: a call event posted with it (X-API-KEY) rings like the PBX's. Ctrl+C stops.

`, base, dir, adminSocket, every, tokens["102"])
}

// generator is the simulated PBX's call traffic.
type generator struct {
	bases []string // the relays, taken in turn (the next when one fails)
	key   string
	out   io.Writer
	log   *slog.Logger
	wg    sync.WaitGroup
	mu    sync.Mutex
	n     int
	turn  int
}

func (g *generator) spawn(ctx context.Context, f func(context.Context)) {
	g.wg.Add(1)
	go func() { defer g.wg.Done(); f(ctx) }()
}

func (g *generator) run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	g.spawn(ctx, g.incoming)
	for {
		select {
		case <-ctx.Done():
			g.wg.Wait()
			return
		case <-t.C:
			g.spawn(ctx, g.incoming)
		}
	}
}

func (g *generator) nextID() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.n++
	return fmt.Sprintf("demo-%d-%04d", time.Now().Unix()%100000, g.n)
}

// incoming simulates one incoming call: it rings one or two operators,
// then is answered by one of them or missed.
func (g *generator) incoming(ctx context.Context) {
	clients := sim.DemoClients()
	number := fmt.Sprintf("+7 9%02d %03d-%02d-%02d", mrand.IntN(100), mrand.IntN(1000), mrand.IntN(100), mrand.IntN(100))
	who, site, line := "unknown caller", sim.DemoSiteMain, sim.DemoLineMain
	if mrand.IntN(5) > 0 {
		c := clients[mrand.IntN(len(clients))]
		number, who, site = c.Phone, c.Customer.FullName(), c.Site
		if site == sim.DemoSiteOutlet {
			line = sim.DemoLineOutlet
		}
	}
	codes := []string{Operators[mrand.IntN(2)].Code}
	if mrand.IntN(2) == 0 {
		codes = []string{"100", "101"}
	}
	id := g.nextID()
	fmt.Fprintf(g.out, "%s  PBX: %s (%s) rings %s\n", stamp(), phone.Display(number, ""), who, strings.Join(codes, ", "))
	if !g.post(ctx, map[string]any{"type": "in", "phone": number, "codes": codes, "callExternalId": id, "externalPhone": line, "site": site}) {
		return
	}
	if !sleep(ctx, time.Duration(2+mrand.IntN(4))*time.Second) {
		return
	}
	if mrand.IntN(100) < 35 {
		fmt.Fprintf(g.out, "%s  PBX: %s missed\n", stamp(), phone.Display(number, ""))
		g.post(ctx, map[string]any{"type": "hangup", "phone": number, "codes": codes, "callExternalId": id, "hangupStatus": "no answered"})
		return
	}
	by := codes[mrand.IntN(len(codes))]
	fmt.Fprintf(g.out, "%s  PBX: %s answered by %s\n", stamp(), phone.Display(number, ""), by)
	g.post(ctx, map[string]any{"type": "answer", "phone": number, "codes": []string{by}, "callExternalId": id})
	if !sleep(ctx, time.Duration(4+mrand.IntN(8))*time.Second) {
		return
	}
	g.post(ctx, map[string]any{"type": "hangup", "phone": number, "codes": []string{by}, "callExternalId": id, "hangupStatus": "answered"})
}

// outgoing simulates the call the PBX starts after a make-call request.
func (g *generator) outgoing(ctx context.Context, mc retailcrm.MakeCall) {
	id := g.nextID()
	fmt.Fprintf(g.out, "%s  PBX: extension %s dials %s\n", stamp(), mc.Code, phone.Display(mc.Phone, ""))
	if !g.post(ctx, map[string]any{"type": "out", "phone": mc.Phone, "codes": []string{mc.Code}, "callExternalId": id}) {
		return
	}
	if !sleep(ctx, 3*time.Second) {
		return
	}
	g.post(ctx, map[string]any{"type": "answer", "phone": mc.Phone, "codes": []string{mc.Code}, "callExternalId": id})
	if !sleep(ctx, 6*time.Second) {
		return
	}
	g.post(ctx, map[string]any{"type": "hangup", "phone": mc.Phone, "codes": []string{mc.Code}, "callExternalId": id, "hangupStatus": "answered"})
}

// post sends one call event to a relay as a retailCRM-integrated PBX does;
// with several relays, to the next one in turn, and to the others when it
// fails.
func (g *generator) post(ctx context.Context, ev map[string]any) bool {
	g.mu.Lock()
	g.turn++
	first := g.turn
	g.mu.Unlock()
	for i := range g.bases {
		base := g.bases[(first+i)%len(g.bases)]
		if g.postTo(ctx, base, ev) {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
	}
	g.log.Warn("demo PBX could not deliver a call event to any relay", "relays", len(g.bases))
	return false
}

func (g *generator) postTo(ctx context.Context, base string, ev map[string]any) bool {
	b, _ := json.Marshal(ev)
	form := url.Values{"event": {string(b)}}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+retailcrm.PathCallEvent, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set(retailcrm.HeaderAPIKey, g.key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		if !errors.Is(err, context.Canceled) {
			g.log.Debug("demo PBX could not reach the relay", "relay", base, "err", err)
		}
		return false
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		g.log.Debug("relay refused a demo call event", "relay", base, "status", resp.StatusCode)
		return false
	}
	return true
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func stamp() string { return time.Now().Format("15:04:05") }

func secret() string {
	b := make([]byte, 18)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// startApp starts the desktop app signed in to the demo. When it exits,
// quit is called; when ctx ends, it is asked to quit. appDone is closed once
// it has exited.
func startApp(ctx context.Context, o Options, base, dir string, tokens map[string]string, quit func()) (appDone chan struct{}, err error) {
	code := o.AppAs
	if code == "" {
		code = "100"
	}
	token, ok := tokens[code]
	if !ok {
		return nil, fmt.Errorf("demo: no operator with code %q", code)
	}
	cmd := exec.Command(o.App)
	cmd.Env = append(slices.Clone(o.AppEnv),
		"PULT_RELAY="+base, "PULT_TOKEN="+token,
		"PULT_CONFIG_DIR="+filepath.Join(dir, "app-"+code))
	cmd.Stdout, cmd.Stderr = o.Out, o.Out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("demo: starting the desktop app: %w", err)
	}
	fmt.Fprintf(o.Out, "%s  the desktop app (%s) runs signed in as %s; quit it to end the demo\n", stamp(), o.App, code)
	appDone = make(chan struct{})
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	go func() {
		defer close(appDone)
		select {
		case err := <-exited:
			fmt.Fprintf(o.Out, "%s  the desktop app quit (%v): the demo ends\n", stamp(), exitText(err))
			quit()
		case <-ctx.Done():
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(5 * time.Second):
				cmd.Process.Kill()
				<-exited
			}
		}
	}()
	return appDone, nil
}

func exitText(err error) string {
	if err == nil {
		return "exit 0"
	}
	return err.Error()
}

// revokeDemoOperators revokes the active operators with the demo's codes.
func revokeDemoOperators(ctx context.Context, admin *admin.Client) error {
	ops, err := admin.ListOperators(ctx)
	if err != nil {
		return err
	}
	for _, op := range ops {
		if op.RevokedAt != nil || !slices.ContainsFunc(Operators, func(d Operator) bool { return d.Code == op.Code }) {
			continue
		}
		if _, err := admin.RevokeOperator(ctx, op.ID); err != nil {
			return err
		}
	}
	return nil
}
