package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pult/pult/agent/phone"
	"github.com/pult/pult/agent/wire"
	"github.com/pult/pult/relay"
	"github.com/pult/pult/relay/admin"
	"github.com/pult/pult/relay/bench"
	"github.com/pult/pult/relay/config"
	"github.com/pult/pult/relay/demo"
	"github.com/pult/pult/relay/operators"
	"github.com/pult/pult/relay/outbox"
	"github.com/pult/pult/relay/retailcrm"
)

const usage = `pult-relay — the pult relay server

Usage:
  pult-relay serve --config relay.toml       run the relay
  pult-relay demo [--listen ADDR] [--data-dir DIR] [--every 6s] [--app bin/pult [--as 100]]
                                             run the relay with a built-in PBX and CRM simulator
  pult-relay demo --cluster 3 [--port 8711] [--cluster-port 6711] [--data-dir DIR] [--every 6s] [--app …]
                                             the same with three relays in one embedded cluster
  pult-relay operators add --name NAME --user-id N --code EXT [--role supervisor]
                           [--uis-employee-id N] [--smartsupp-agent-id N]
  pult-relay operators add --name "Hall TV" --role wallboard
                                             a token that can only watch the queue board page
  pult-relay operators list
  pult-relay operators revoke ID|CODE
  pult-relay outbox list [--dead] [--json] [--limit 100]
  pult-relay outbox retry ID                 put a dead letter back in the queue
  pult-relay outbox drop ID                  remove a pending job or a dead letter for good
  pult-relay retailcrm register              register (or update) the telephony in retailCRM:
                                             URLs from public_url, extension codes from the
                                             operators, external phones from the config
  pult-relay retailcrm show [--json]         the registration as retailCRM has it
                                             manage operators, outbound partner calls and the
                                             retailCRM registration through a running relay:
                                             on this machine with --config relay.toml (the
                                             admin socket in its data_dir; run as the relay's
                                             user) or --socket PATH; remotely with --relay URL
                                             (its admin_listen) and PULT_ADMIN_TOKEN
  pult-relay bench [--operators 1000] [--rate 200] [--duration 30s] [--ring 1] [--ring-max 0] [--supervisors 0]
                   [--idle 0] [--restart] [--target pult|gorilla|centrifugo|both|all] [--profile DIR] [--trace]
                   [--sync always|1s] [--centrifugo-bin PATH] [--cluster 3 [--kill]] [--json]
                                             start a relay child process, connect simulated
                                             operators and measure call-card delivery; both:
                                             pult and Centrifugo v6.9.1, all: and gorilla;
                                             --cluster 3: three relays as one embedded
                                             JetStream cluster (R3), --kill: SIGKILL one
                                             a third into the firing (failover figures)
  pult-relay help

Environment: PULT_ADMIN_TOKEN, PULT_PBX_CLIENT_ID, PULT_PBX_API_KEY,
PULT_RETAILCRM_API_KEY, PULT_UIS_TOKEN, PULT_SMARTSUPP_TOKEN, PULT_QOLIO_TOKEN,
PULT_CALLTOUCH_TOKEN, PULT_NATS_URL override the config file's secrets.
Exit status: 0 success, 1 failure, 2 usage error.
`

func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stdout, usage)
		return 0
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: logLevel(getenv("PULT_LOG"))}))
	var err error
	switch args[0] {
	case "serve":
		err = serve(ctx, args[1:], getenv, logger, stderr)
	case "demo":
		err = runDemo(ctx, args[1:], getenv, logger, stdout, stderr)
	case "operators":
		err = operatorsCmd(ctx, args[1:], getenv, stdout, stderr)
	case "outbox":
		err = outboxCmd(ctx, args[1:], getenv, stdout, stderr)
	case "retailcrm":
		err = retailcrmCmd(ctx, args[1:], getenv, stdout, stderr)
	case "bench":
		err = runBench(ctx, args[1:], stdout, stderr)
	case "bench-baseline":
		err = benchBaseline(ctx, args[1:], stderr)
	default:
		fmt.Fprintf(stderr, "pult-relay: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "pult-relay: %v\n\n%s", err, usage)
		return 2
	case errors.Is(err, flag.ErrHelp):
		return 0
	default:
		fmt.Fprintf(stderr, "pult-relay: %v\n", err)
		return 1
	}
}

type usageError struct{ error }

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

func logLevel(s string) slog.Level {
	var l slog.Level
	if l.UnmarshalText([]byte(s)) != nil {
		return slog.LevelInfo
	}
	return l
}

func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	return nil
}

func serve(ctx context.Context, args []string, getenv func(string) string, logger *slog.Logger, stderr io.Writer) error {
	fs := newFlags("serve", stderr)
	path := fs.String("config", "relay.toml", "the relay's TOML config")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("serve takes no arguments, got %q", fs.Args())
	}
	cfg, err := config.Load(*path, getenv)
	if err != nil {
		return err
	}
	if n, err := relay.RaiseNoFile(); err != nil {
		logger.Warn("could not raise the file descriptor limit", "err", err)
	} else {
		logger.Info("file descriptor limit", "nofile", n)
	}
	return relay.New(cfg, logger).Run(ctx)
}

func runDemo(ctx context.Context, args []string, getenv func(string) string, logger *slog.Logger, stdout, stderr io.Writer) error {
	fs := newFlags("demo", stderr)
	o := demo.Options{Out: stdout, Logger: logger}
	fs.StringVar(&o.Listen, "listen", "127.0.0.1:8700", "address of the demo relay")
	fs.StringVar(&o.DataDir, "data-dir", "", "keep the demo's data here (default: a temporary folder, removed at exit)")
	fs.DurationVar(&o.Every, "every", 6*time.Second, "how often the simulated PBX rings")
	fs.StringVar(&o.App, "app", "", "also start this desktop app (bin/pult) signed in to the demo")
	fs.StringVar(&o.AppAs, "as", "100", "with --app: the operator's code (100, 101 or 102, the supervisor)")
	nodes := fs.Int("cluster", 0, "run a cluster of this many relays (3 or 5), each a process, instead of one")
	port := fs.Int("port", 8711, "with --cluster: the first relay's port on 127.0.0.1 (the others follow)")
	clusterPort := fs.Int("cluster-port", 6711, "with --cluster: the first relay's NATS cluster port (the others follow)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if o.App != "" {
		if getenv("DISPLAY") == "" && getenv("WAYLAND_DISPLAY") == "" {
			fmt.Fprintln(stderr, "pult-relay demo: no display (DISPLAY is not set): running without the desktop app")
			o.App = ""
		}
		o.AppEnv = os.Environ() // the app needs the desktop session's variables
	}
	if _, _, err := net.SplitHostPort(o.Listen); err != nil {
		return usagef("--listen: want host:port, got %q", o.Listen)
	}
	if o.Every < 500*time.Millisecond || o.Every > time.Hour {
		return usagef("--every: want between 500ms and 1h")
	}
	if *nodes != 0 {
		if *nodes != 3 && *nodes != 5 {
			return usagef("--cluster: want 3 or 5 relays")
		}
		for _, p := range []struct {
			flag string
			port int
		}{{"--port", *port}, {"--cluster-port", *clusterPort}} {
			if p.port < 1024 || p.port+*nodes > 65535 {
				return usagef("%s: want a port from 1024 to %d", p.flag, 65535-*nodes)
			}
		}
		if *port < *clusterPort+*nodes && *clusterPort < *port+*nodes {
			return usagef("--port and --cluster-port: the relays' ports and the cluster's overlap")
		}
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("demo: %w", err)
		}
		return demo.RunCluster(ctx, demo.ClusterOptions{Nodes: *nodes, Exe: exe, Port: *port, ClusterPort: *clusterPort,
			DataDir: o.DataDir, Every: o.Every, Out: o.Out, Logger: o.Logger, App: o.App, AppAs: o.AppAs, AppEnv: o.AppEnv})
	}
	return demo.Run(ctx, o)
}

// adminClient builds a client of the relay's admin socket (--config: the
// one in its data_dir, or --socket), or of its admin_listen (--relay, the
// token from PULT_ADMIN_TOKEN or the config's admin_token).
func adminClient(fs *flag.FlagSet, args []string, getenv func(string) string) (*admin.Client, error) {
	path := fs.String("config", "", "the relay's TOML config: its admin socket is admin.sock in data_dir (default relay.toml)")
	sock := fs.String("socket", "", "the relay's admin socket, instead of the config's")
	base := fs.String("relay", "", "a remote relay's admin_listen URL, e.g. https://relay.example.com:8701 (token from PULT_ADMIN_TOKEN)")
	if err := parse(fs, args); err != nil {
		return nil, err
	}
	c := &admin.Client{}
	switch {
	case *base != "" && *sock != "":
		return nil, usagef("--relay and --socket: give one")
	case *sock != "":
		c.Socket = *sock
		return c, nil
	case *base != "":
		c.BaseURL = strings.TrimRight(*base, "/")
		if !strings.HasPrefix(c.BaseURL, "http://") && !strings.HasPrefix(c.BaseURL, "https://") {
			return nil, usagef("--relay: want an http:// or https:// URL, got %q", c.BaseURL)
		}
		c.Token = getenv("PULT_ADMIN_TOKEN")
		if c.Token == "" && *path == "" {
			return nil, usagef("--relay needs PULT_ADMIN_TOKEN in the environment")
		}
		if c.Token != "" {
			return c, nil
		}
	case *path == "":
		*path = "relay.toml"
	}
	cfg, err := config.Load(*path, getenv)
	if err != nil {
		return nil, err
	}
	if c.BaseURL == "" {
		c.Socket = cfg.AdminSocket()
		return c, nil
	}
	if c.Token = cfg.AdminToken; c.Token == "" {
		return nil, usagef("--relay needs PULT_ADMIN_TOKEN in the environment, or admin_token in %s", *path)
	}
	return c, nil
}

func operatorsCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usagef("operators: want add, list or revoke")
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	switch args[0] {
	case "add":
		fs := newFlags("operators add", stderr)
		var n operators.NewOperator
		fs.StringVar(&n.Name, "name", "", "the operator's name (required)")
		fs.StringVar(&n.UserID, "user-id", "", "the operator's CRM user id (required, but not for a wallboard)")
		fs.StringVar(&n.Code, "code", "", "the operator's PBX extension (required, but not for a wallboard)")
		role := fs.String("role", "operator", "operator, supervisor, or wallboard (a token that can only watch the queue board page)")
		fs.StringVar(&n.UISEmployeeID, "uis-employee-id", "", "the operator's UIS employee id (recordId in UIS), for UIS calls")
		fs.StringVar(&n.SmartsuppAgentID, "smartsupp-agent-id", "", "the operator's Smartsupp agent id (agent:N), for chat transcripts")
		c, err := adminClient(fs, args[1:], getenv)
		if err != nil {
			return err
		}
		n.Role = wire.Role(*role)
		if err := n.Validate(); err != nil {
			return usageError{err}
		}
		added, err := c.AddOperator(ctx, n)
		if err != nil {
			return err
		}
		op := added.Operator
		extra := ""
		if op.UISEmployee != "" {
			extra += ", UIS employee " + op.UISEmployee
		}
		if op.Smartsupp != "" {
			extra += ", Smartsupp agent " + op.Smartsupp
		}
		if op.Role == wire.RoleWallboard {
			fmt.Fprintf(stdout, "Added the wallboard %s (id %s).\nToken (shown once): it can only watch the queue board; open <relay>/board#token=… on the screen:\n%s\n",
				op.Name, op.ID, added.Token)
			return nil
		}
		fmt.Fprintf(stdout, "Added %s (id %s, code %s, user %s%s, %s).\nToken (shown once; give it to the operator for `pult login`):\n%s\n",
			op.Name, op.ID, op.Code, op.UserID, extra, op.Role, added.Token)
		return nil
	case "list":
		c, err := adminClient(newFlags("operators list", stderr), args[1:], getenv)
		if err != nil {
			return err
		}
		ops, err := c.ListOperators(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tCODE\tUSER\tUIS\tSMARTSUPP\tNAME\tROLE\tSTATUS\tSINCE\tCONNECTIONS")
		for _, o := range ops {
			st := string(o.Status)
			if o.RevokedAt != nil {
				st = "revoked"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\n", o.ID, o.Code, o.UserID, orDash(o.UISEmployee), orDash(o.Smartsupp),
				o.Name, o.Role, st, o.Chosen.Since.Local().Format("2006-01-02 15:04"), o.Connections)
		}
		return tw.Flush()
	case "revoke":
		c, ref, err := adminClientWithArg(newFlags("operators revoke", stderr), args[1:], getenv)
		if err != nil {
			return err
		}
		if ref == "" {
			return usagef("operators revoke: which operator? give its id or code")
		}
		op, err := c.RevokeOperator(ctx, ref)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "Revoked %s (id %s, code %s); their agents were disconnected.\n", op.Name, op.ID, op.Code)
		return nil
	}
	return usagef("operators: unknown subcommand %q (want add, list or revoke)", args[0])
}

// adminClientWithArg is adminClient for commands taking one argument,
// before or after the flags.
func adminClientWithArg(fs *flag.FlagSet, args []string, getenv func(string) string) (*admin.Client, string, error) {
	var arg string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		arg, args = args[0], args[1:]
	}
	c, err := adminClient(fs, args, getenv)
	if err != nil {
		return nil, "", err
	}
	switch {
	case arg == "" && fs.NArg() == 1:
		arg = fs.Arg(0)
	case fs.NArg() > 1 || (arg != "" && fs.NArg() > 0):
		return nil, "", usagef("%s: one argument expected, got %q", fs.Name(), append([]string{arg}, fs.Args()...))
	}
	return c, arg, nil
}

func outboxCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usagef("outbox: want list, retry or drop")
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	switch args[0] {
	case "list":
		fs := newFlags("outbox list", stderr)
		dead := fs.Bool("dead", false, "list dead letters instead of pending jobs")
		asJSON := fs.Bool("json", false, "print a JSON array")
		limit := fs.Int("limit", 100, "list at most this many, oldest first")
		c, err := adminClient(fs, args[1:], getenv)
		if err != nil {
			return err
		}
		if fs.NArg() > 0 {
			return usagef("outbox list takes no arguments, got %q", fs.Args())
		}
		if *limit < 1 || *limit > 10000 {
			return usagef("--limit: want 1 to 10000")
		}
		var jobs any
		var n int
		if *dead {
			d, err := c.ListDead(ctx, *limit)
			if err != nil {
				return err
			}
			jobs, n = d, len(d)
			if !*asJSON {
				writeDead(stdout, d)
			}
		} else {
			p, err := c.ListPending(ctx, *limit)
			if err != nil {
				return err
			}
			jobs, n = p, len(p)
			if !*asJSON {
				writePending(stdout, p)
			}
		}
		if *asJSON {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(jobs)
		}
		if n == *limit {
			fmt.Fprintf(stdout, "(the oldest %d; --limit for more)\n", n)
		}
		return nil
	case "retry":
		c, id, err := adminClientWithArg(newFlags("outbox retry", stderr), args[1:], getenv)
		if err != nil {
			return err
		}
		if id == "" {
			return usagef("outbox retry: which job? give its id (see outbox list --dead)")
		}
		r, err := c.RetryJob(ctx, id)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "Job %s (%s) is back in the queue with a fresh attempt count.\n", r.ID, r.Kind)
		return nil
	case "drop":
		c, id, err := adminClientWithArg(newFlags("outbox drop", stderr), args[1:], getenv)
		if err != nil {
			return err
		}
		if id == "" {
			return usagef("outbox drop: which job? give its id (see outbox list)")
		}
		d, err := c.DropJob(ctx, id)
		if err != nil {
			return err
		}
		what := "pending job"
		if d.Dropped == outbox.StateDead {
			what = "dead letter"
		}
		fmt.Fprintf(stdout, "Dropped %s %s; it will not be sent.\n", what, d.ID)
		return nil
	}
	return usagef("outbox: unknown subcommand %q (want list, retry or drop)", args[0])
}

func retailcrmCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usagef("retailcrm: want register or show")
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	switch args[0] {
	case "register":
		fs := newFlags("retailcrm register", stderr)
		asJSON := fs.Bool("json", false, "print the integration module sent, as JSON")
		c, err := adminClient(fs, args[1:], getenv)
		if err != nil {
			return err
		}
		if fs.NArg() > 0 {
			return usagef("retailcrm register takes no arguments, got %q", fs.Args())
		}
		m, err := c.RegisterRetailCRM(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			return writeModuleJSON(stdout, m)
		}
		fmt.Fprintf(stdout, "Registered the telephony %q in retailCRM.\n\n", m.Code)
		writeModule(stdout, m)
		return nil
	case "show":
		fs := newFlags("retailcrm show", stderr)
		asJSON := fs.Bool("json", false, "print retailCRM's integration module as JSON")
		c, err := adminClient(fs, args[1:], getenv)
		if err != nil {
			return err
		}
		if fs.NArg() > 0 {
			return usagef("retailcrm show takes no arguments, got %q", fs.Args())
		}
		m, err := c.RetailCRMModule(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			return writeModuleJSON(stdout, m)
		}
		writeModule(stdout, m)
		return nil
	}
	return usagef("retailcrm: unknown subcommand %q (want register or show)", args[0])
}

func writeModuleJSON(w io.Writer, m retailcrm.IntegrationModule) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// writeModule prints an integration module for people; the clientId is a
// secret and is shown masked.
func writeModule(w io.Writer, m retailcrm.IntegrationModule) {
	yes := func(b bool) string {
		if b {
			return "yes"
		}
		return "no"
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "Code:\t%s\n", m.Code)
	fmt.Fprintf(tw, "Name:\t%s\n", m.Name)
	fmt.Fprintf(tw, "Active:\t%s\n", yes(m.Active))
	fmt.Fprintf(tw, "Client id:\t%s\n", mask(m.ClientID))
	fmt.Fprintf(tw, "Account URL:\t%s\n", orDash(m.AccountURL))
	fmt.Fprintf(tw, "Logo:\t%s\n", orDash(m.Logo))
	t := m.Telephony
	if t == nil {
		fmt.Fprintln(tw, "Telephony:\tnone (the module is not a telephony)")
		tw.Flush()
		return
	}
	fmt.Fprintf(tw, "Make-call URL:\t%s\n", orDash(t.MakeCallURL))
	fmt.Fprintf(tw, "Change-status URL:\t%s\n", orDash(t.ChangeUserStatusURL))
	fmt.Fprintf(tw, "Call events:\tin %s, out %s, hangup %s\n", yes(t.InputEventSupported), yes(t.OutputEventSupported), yes(t.HangupEventSupported))
	fmt.Fprintf(tw, "Editable in the CRM:\t%s\n", yes(t.AllowEdit))
	tw.Flush()
	fmt.Fprintf(w, "Extension codes (%d):\n", len(t.AdditionalCodes))
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, ac := range t.AdditionalCodes {
		fmt.Fprintf(tw, "  user %s\tcode %s\n", ac.UserID, ac.Code)
	}
	tw.Flush()
	fmt.Fprintf(w, "External phones (%d):\n", len(t.ExternalPhones))
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, ep := range t.ExternalPhones {
		fmt.Fprintf(tw, "  %s\t%s\n", ep.SiteCode, phone.Display(ep.ExternalPhone, phone.DefaultRegion))
	}
	tw.Flush()
}

// mask hides all but the last 4 characters of a secret.
func mask(s string) string {
	r := []rune(s)
	if len(r) <= 4 {
		return strings.Repeat("*", len(r))
	}
	return strings.Repeat("*", len(r)-4) + string(r[len(r)-4:])
}

func writePending(w io.Writer, jobs []outbox.PendingJob) {
	if len(jobs) == 0 {
		fmt.Fprintln(w, "No pending jobs.")
		return
	}
	now := time.Now()
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tKIND\tAGE\tATTEMPTS\tNEXT\tLAST ERROR")
	for _, j := range jobs {
		next := "now"
		switch {
		case j.Running:
			next = "running"
		case j.NoHandler:
			next = "no handler"
		case j.NextAttempt.Sub(now) >= time.Second:
			next = "in " + age(j.NextAttempt.Sub(now))
		case !j.NextAttempt.IsZero():
			next = "in <1s"
		}
		last := j.LastError
		if j.PartnerMessage != "" && !strings.Contains(last, j.PartnerMessage) {
			last += " — " + j.PartnerMessage
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", j.ID, j.Kind, age(now.Sub(j.Created)), j.Attempts, next, cut(orDash(last), 100))
	}
	tw.Flush()
}

func writeDead(w io.Writer, jobs []outbox.DeadJob) {
	if len(jobs) == 0 {
		fmt.Fprintln(w, "No dead letters.")
		return
	}
	now := time.Now()
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tKIND\tAGE\tATTEMPTS\tDIED\tREASON\tPARTNER SAID / LAST ERROR")
	for _, j := range jobs {
		said := j.PartnerMessage
		if said == "" {
			said = j.LastError
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s ago\t%s\t%s\n", j.Job.ID, j.Job.Kind, age(now.Sub(j.Job.Created)), j.Attempts,
			age(now.Sub(j.Died)), j.Reason, cut(orDash(said), 100))
	}
	tw.Flush()
}

// age writes a duration the way people read it: 42s, 5m12s, 3h5m, 2d4h.
func age(d time.Duration) string {
	d = max(d, 0).Round(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd%dh", int(d.Hours())/24, int(d.Hours())%24)
}

func cut(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("bench", stderr)
	o := bench.Options{Progress: stderr}
	fs.IntVar(&o.Operators, "operators", 1000, "simulated operators, all connected")
	fs.Float64Var(&o.Rate, "rate", 200, "call events per second")
	fs.DurationVar(&o.Duration, "duration", 30*time.Second, "how long to fire events")
	fs.IntVar(&o.Ring, "ring", 1, "operators rung by each call")
	fs.IntVar(&o.RingMax, "ring-max", 0, "with a value above --ring: each call rings --ring to --ring-max operators")
	fs.IntVar(&o.Posters, "posters", 8, "concurrent webhook posters")
	fs.BoolVar(&o.StoredOnly, "stored-only", false, "the simulated agents take call cards only once stored (as agents before cards ahead of the log did), not ahead of the log as pult's agent does")
	fs.DurationVar(&o.Drain, "drain", 5*time.Second, "wait after the last event for late frames")
	fs.IntVar(&o.Supervisors, "supervisors", 0, "supervisors subscribed to the queue board (measures event → board delta)")
	fs.StringVar(&o.RelayBin, "relay-bin", "", "the pult-relay binary to start (default: this one)")
	fs.DurationVar(&o.Idle, "idle", 0, "measure the relay's idle CPU and steady RSS over this window before firing (> 25s covers every ping)")
	fs.BoolVar(&o.Restart, "restart", false, "restart the relay a third into the firing: the reconnect storm")
	fs.IntVar(&o.Cluster, "cluster", 0, "start this many relays (3 to 7) as one embedded JetStream cluster on loopback, replicas 3; operators and events round robin over them")
	fs.BoolVar(&o.Kill, "kill", false, "with --cluster: SIGKILL one relay a third into the firing; its operators move to the others (failover figures)")
	target := fs.String("target", bench.TargetPult, "pult, gorilla (the baseline hub: no persistence, no auth), centrifugo (Centrifugo "+bench.CentrifugoVersion+
		", installed on first use), both (pult and centrifugo, same load, with ratios) or all (pult, gorilla and centrifugo)")
	cfBin := fs.String("centrifugo-bin", "", "the Centrifugo binary (default: installed with go install into the user cache folder, pult/centrifugo-"+bench.CentrifugoVersion+")")
	fs.StringVar(&o.ProfileDir, "profile", "", "save the relay's pprof profiles (idle and firing CPU, heap, goroutines) in this folder")
	fs.BoolVar(&o.Trace, "trace", false, "have the relay time each event's steps and print where the cards' time went, step by step (pult only)")
	fs.StringVar(&o.Sync, "sync", "", `the relay's [nats] sync: "always" or an interval (default: the relay's, 1s)`)
	asJSON := fs.Bool("json", false, "print the report as JSON")
	rounds := fs.Int("rounds", 1, "with several targets: run them this many times, each round in the other order, and print each ratio's median (single runs on a shared machine move with the neighbours)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("bench takes no arguments, got %q", fs.Args())
	}
	if *rounds < 1 || *rounds > maxRounds {
		return usagef("bench: --rounds: want 1 to %d", maxRounds)
	}
	if o.Operators < 1 || o.Rate <= 0 || o.Duration <= 0 || o.Ring < 1 || o.Ring > o.Operators || o.Posters < 1 || o.Drain <= 0 || o.Supervisors < 0 || o.Supervisors > 100 {
		return usagef("bench: want --operators, --rate, --duration, --posters, --drain > 0, 1 <= --ring <= --operators and 0 <= --supervisors <= 100")
	}
	if o.Trace && (*target == bench.TargetGorilla || *target == bench.TargetCentrifugo) {
		return usagef("bench: --trace times the relay's steps: it needs pult among the targets")
	}
	var targets []string
	switch *target {
	case bench.TargetPult, bench.TargetGorilla, bench.TargetCentrifugo:
		targets = []string{*target}
	case "both":
		targets = []string{bench.TargetPult, bench.TargetCentrifugo}
	case "all":
		targets = []string{bench.TargetPult, bench.TargetGorilla, bench.TargetCentrifugo}
	default:
		return usagef("bench: --target: want pult, gorilla, centrifugo, both or all")
	}
	if len(targets) > 1 && (o.Restart || o.Supervisors > 0 || o.Sync != "" || o.Cluster > 1) {
		return usagef("bench: --target %s takes no --restart, --supervisors, --sync or --cluster (the others have neither persistence nor a board)", *target)
	}
	switch {
	case o.Cluster < 0 || o.Cluster == 2 || o.Cluster > 7:
		return usagef("bench: --cluster: want 3 to 7 relays")
	case o.Cluster > 1 && (o.Restart || *target != bench.TargetPult):
		return usagef("bench: --cluster takes no --restart (--kill kills a node) and only --target pult")
	case o.Kill && o.Cluster < 3:
		return usagef("bench: --kill needs --cluster 3")
	}
	if slices.Contains(targets, bench.TargetCentrifugo) {
		bin, err := centrifugoBin(ctx, *cfBin, stderr)
		if err != nil {
			return err
		}
		o.CentrifugoBin = bin
	}
	if *rounds > 1 && len(targets) < 2 {
		return usagef("bench: --rounds needs several targets (--target both or all)")
	}
	if *rounds > 1 {
		return benchRounds(ctx, o, targets, *rounds, *asJSON, stdout, stderr)
	}
	reps := make([]bench.Report, len(targets))
	for i, t := range targets {
		o.Target = t
		if i > 0 {
			o.ProfileDir = "" // the relay's only
		}
		var err error
		if reps[i], err = bench.Run(ctx, o); err != nil {
			return fmt.Errorf("%s: %w", t, err)
		}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if len(reps) == 1 {
			return enc.Encode(reps[0])
		}
		byTarget := map[string]bench.Report{}
		for _, r := range reps {
			byTarget[r.Target] = r
		}
		return enc.Encode(byTarget)
	}
	for i, r := range reps {
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		if err := r.WriteText(stdout); err != nil {
			return err
		}
	}
	for _, r := range reps[1:] {
		fmt.Fprintln(stdout)
		if err := bench.WriteComparison(stdout, reps[0], r); err != nil {
			return err
		}
	}
	return nil
}

// maxRounds bounds bench --rounds.
const maxRounds = 20

// benchRounds runs the targets rounds times, each round in another order
// (bench.RoundOrder), prints each round's comparison as it ends and then
// the median of every ratio over the rounds.
func benchRounds(ctx context.Context, o bench.Options, targets []string, rounds int, asJSON bool, stdout, stderr io.Writer) error {
	all := make([]map[string]bench.Report, 0, rounds)
	profile := o.ProfileDir
	for r := range rounds {
		byTarget := map[string]bench.Report{}
		order := bench.RoundOrder(targets, r)
		for _, t := range order {
			o.Target = t
			o.ProfileDir = ""
			if t == bench.TargetPult && r == 0 {
				o.ProfileDir = profile // the relay's first round only
			}
			fmt.Fprintf(stderr, "round %d of %d: %s\n", r+1, rounds, t)
			rep, err := bench.Run(ctx, o)
			if err != nil {
				return fmt.Errorf("round %d, %s: %w", r+1, t, err)
			}
			byTarget[t] = rep
		}
		all = append(all, byTarget)
		if asJSON {
			continue
		}
		fmt.Fprintf(stdout, "round %d of %d (%s)\n", r+1, rounds, strings.Join(order, ", then "))
		for _, t := range targets[1:] {
			if err := bench.WriteComparison(stdout, byTarget[targets[0]], byTarget[t]); err != nil {
				return err
			}
		}
		fmt.Fprintln(stdout)
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(all)
	}
	for _, t := range targets[1:] {
		if err := bench.WriteMedians(stdout, all, targets[0], t); err != nil {
			return err
		}
	}
	return nil
}

// centrifugoBin is the Centrifugo the bench runs: the one given, or the
// one in the user cache folder, installed there the first time.
func centrifugoBin(ctx context.Context, given string, progress io.Writer) (string, error) {
	if given != "" {
		if _, err := os.Stat(given); err != nil {
			return "", fmt.Errorf("bench: --centrifugo-bin: %w", err)
		}
		return given, nil
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("bench: no cache folder for Centrifugo (pass --centrifugo-bin): %w", err)
	}
	bin := bench.CentrifugoBinIn(cache)
	if err := bench.InstallCentrifugo(ctx, bin, progress); err != nil {
		return "", err
	}
	return bin, nil
}

// benchBaseline serves the bench's gorilla baseline (hidden: started by
// "bench --target gorilla" as its child process).
func benchBaseline(ctx context.Context, args []string, stderr io.Writer) error {
	fs := newFlags("bench-baseline", stderr)
	listen := fs.String("listen", "127.0.0.1:0", "loopback address")
	if err := parse(fs, args); err != nil {
		return err
	}
	return bench.ServeBaseline(ctx, *listen)
}
