// Package relay is the pult relay's wiring and the flows between its parts.
// Server.Run builds the parts in dependency order — the store, the operators'
// registry, the outbox, the queue board and presence, the call flow (calls),
// the chat transcripts (package chats), what goes to retailCRM (crmSync), the
// retailCRM API a PBX talks to (package pbxapi), the hub — then runs them as
// one group until its context ends, and stops them in order. The flows: a
// PBX event (through pbxapi, or UIS's notifications) becomes a call record,
// cards and a board change (telephony.go, uishook.go); an operator's request
// (status, dial, callback, queue) is answered once (requests.go); partners
// hear of it through the outbox (status.go, crm.go, uploads.go, callback.go;
// chats owns the transcripts' Qolio jobs). docs/architecture.md draws it.
package relay

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/pult/pult/agent/phone"
	"github.com/pult/pult/agent/wire"
	"github.com/pult/pult/relay/board"
	"github.com/pult/pult/relay/call"
	"github.com/pult/pult/relay/calltouch"
	"github.com/pult/pult/relay/certfile"
	"github.com/pult/pult/relay/chats"
	"github.com/pult/pult/relay/config"
	"github.com/pult/pult/relay/eventtrace"
	"github.com/pult/pult/relay/hub"
	"github.com/pult/pult/relay/majority"
	"github.com/pult/pult/relay/operators"
	"github.com/pult/pult/relay/outbox"
	"github.com/pult/pult/relay/pbxapi"
	"github.com/pult/pult/relay/presence"
	"github.com/pult/pult/relay/qolio"
	"github.com/pult/pult/relay/retailcrm"
	"github.com/pult/pult/relay/store"
)

// cutOffReason is what the agents of a node cut off from its cluster's
// majority are told, in the close frame and the handshake's refusal.
const cutOffReason = "this relay is cut off from its cluster's majority; connect to another"

// cutOffAfter is how long a node must stay out of its cluster's majority
// before it sends its agents elsewhere. An embedded cluster counts its
// routes (majority.DefaultAfter); with an external NATS, JetStream's own
// answer is all there is, and it fails during a leader election too, which
// takes up to 15 s on a loaded machine after a server is lost.
func cutOffAfter(n config.NATSConfig) time.Duration {
	if n.URL != "" {
		return 30 * time.Second
	}
	return majority.DefaultAfter
}

// catchUpLimit is how long a starting relay waits for the queue board to
// catch up with its stream before it serves anyway.
const catchUpLimit = 2 * time.Minute

// Server is one relay node. Make it with New and start it with Run.
type Server struct {
	cfg config.Config
	log *slog.Logger

	store       *store.Store
	calls       *calls // the call flow
	ops         *operators.Registry
	hub         *hub.Hub
	outbox      *outbox.Outbox
	mgr         *managers // nil without a CRM
	metrics     *metrics
	pbx         *http.Client
	crm         *retailcrm.Client    // nil without a CRM
	qolio       *qolio.Client        // nil without Qolio
	ct          *calltouch.Client    // nil without Calltouch
	chats       *chats.Flow          // the chat transcripts
	pbxAPI      *pbxapi.API          // the retailCRM API a PBX talks to
	crmSync     *crmSync             // nil without a CRM
	loc         *time.Location       // time_zone
	board       *board.Board         // the supervisors' queue board
	presence    *presence.Tracker    // who is connected to which node of the cluster
	majority    *majority.Watch      // whether this node reaches its cluster's majority; nil unless clustered
	presenceTTL time.Duration        // the presence bucket's TTL (store.PresenceTTL when 0; tests shorten it)
	trace       *eventtrace.Recorder // call events' steps (trace_events); nil: off
	clock       func() time.Time     // time.Now; tests move it
	// afterAgentAuth, when set (tests), runs in an agent's handshake
	// between the token check and the session's start.
	afterAgentAuth func()
	sites          map[string]string // E.164 external phone → site code ([retailcrm] external_phones)
	statusMu       operatorLocks     // one status change of an operator at a time
	storage        *storageGuard     // says when storage is too full for new work
	storagePoll    time.Duration     // how often storage is checked (storagePoll; tests shorten it)
	recentWindow   time.Duration     // how far back a session not resumed starts (hub.RecentWindow when 0; tests shorten it)

	bgCtx context.Context
	bg    sync.WaitGroup

	ready       chan struct{}
	addr        string       // the public listener's
	adminSocket string       // the admin socket's path
	adminAddr   string       // admin_listen's, if on
	metricsAddr string       // metrics_listen's, if on
	ln          net.Listener // from ServeOn, or nil
}

// New prepares a relay; nothing is opened until Run.
func New(cfg config.Config, logger *slog.Logger) *Server {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		cfg:   cfg,
		log:   logger.With("component", "relay"),
		pbx:   &http.Client{Timeout: cfg.PBX.Timeout.Duration, CheckRedirect: noRedirects},
		loc:   cfg.Location(),
		clock: time.Now,
		sites: map[string]string{},
		ready: make(chan struct{}),
		trace: eventtrace.New(cfg.TraceEvents),
	}
	for _, ep := range cfg.RetailCRM.ExternalPhones {
		s.sites[phone.Normalize(ep.Phone, cfg.PhoneRegion)] = ep.Site
	}
	if cfg.RetailCRM.URL != "" {
		s.crm = &retailcrm.Client{BaseURL: cfg.RetailCRM.URL, APIKey: cfg.RetailCRM.APIKey,
			HTTP: &http.Client{Timeout: cfg.RetailCRM.Timeout.Duration, CheckRedirect: noRedirects}}
	}
	if cfg.Qolio.URL != "" {
		s.qolio = &qolio.Client{URL: cfg.Qolio.URL, Token: cfg.Qolio.Token,
			HTTP: &http.Client{Timeout: cfg.Qolio.Timeout.Duration}}
	}
	if cfg.Calltouch.Configured() {
		s.ct = &calltouch.Client{BaseURL: cfg.Calltouch.URL, Token: cfg.Calltouch.Token, RouteKey: cfg.Calltouch.RouteKey,
			HTTP: &http.Client{Timeout: cfg.Calltouch.Timeout.Duration}}
	}
	return s
}

func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// Ready is closed once the relay accepts connections.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Addr is the address the relay's public listener listens on, once Ready.
func (s *Server) Addr() string { return s.addr }

// AdminSocket is the path of the admin API's unix socket, once Ready.
func (s *Server) AdminSocket() string { return s.adminSocket }

// AdminAddr is the address of the admin API's TCP listener (admin_listen),
// once Ready; "" when it is off.
func (s *Server) AdminAddr() string { return s.adminAddr }

// MetricsAddr is the address serving /metrics and pprof (metrics_listen),
// once Ready; "" when it is off.
func (s *Server) MetricsAddr() string { return s.metricsAddr }

// ServeOn makes Run serve on ln, listening already, instead of on
// Config.Listen; Run closes it. Call it before Run.
func (s *Server) ServeOn(ln net.Listener) { s.ln = ln }

// Run opens the store, serves until ctx ends, then shuts down cleanly:
// agents are told the relay is going away (and will resume elsewhere or
// later), work in flight finishes, and the store is flushed.
func (s *Server) Run(ctx context.Context) error {
	if s.ln != nil {
		defer s.ln.Close() // closed by the HTTP server too, unless Run fails before serving
	}
	if err := s.cfg.Validate(); err != nil {
		return fmt.Errorf("relay: config: %w", err)
	}
	// The admin socket first: it says whether another relay runs on this
	// data_dir before anything in it is touched.
	sock, err := s.listenAdminSocket()
	if err != nil {
		return err
	}
	// Its HTTP server closes it (and removes the file); the lock on data_dir
	// is released once everything below, the store included, is closed.
	defer sock.Release()
	syncEvery, syncAlways := s.cfg.NATS.SyncPolicy()
	n := s.cfg.NATS
	var cluster *store.Cluster
	if n.URL == "" && n.Cluster.Enabled() {
		cl := n.Cluster
		cluster = &store.Cluster{Name: cl.Name, ServerName: cl.NodeName(), Listen: cl.Listen, Routes: cl.Routes,
			Secret: cl.Secret, TLSCA: cl.TLSCA, TLSCert: cl.TLSCert, TLSKey: cl.TLSKey}
	}
	s.store, err = store.Open(ctx, store.Options{
		URL: n.URL, DataDir: s.cfg.DataDir,
		EventRetention: s.cfg.EventRetention.Duration, Logger: s.log,
		SyncInterval: syncEvery, SyncAlways: syncAlways,
		MaxBytes: int64(s.cfg.Limits.MaxStoreBytes), DeadLetters: int64(s.cfg.Limits.DeadLetters),
		RequestIDsPerOperator: s.cfg.Limits.RequestIDsPerOperator, PresenceTTL: s.presenceTTL,
		Replicas: n.StreamReplicas(), Cluster: cluster,
		CredsFile: n.CredsFile, TLSCA: n.TLSCA, TLSCert: n.TLSCert, TLSKey: n.TLSKey,
	})
	if err != nil {
		return err
	}
	defer s.store.Close()

	// The parts' context (and background work's, spawn): it ends when they
	// stop, after the listeners and the hub.
	runCtx, stop := context.WithCancel(context.Background())
	defer stop()
	s.bgCtx = runCtx

	s.ops, err = operators.Open(ctx, s.store.OperatorsBucket())
	if err != nil {
		return err
	}
	s.metrics = newMetrics()
	s.storage = newStorageGuard(s.log, s.store.Usage, s.storagePoll, s.metrics.reg)
	s.storage.check(ctx) // a relay starting full refuses from the start
	limits := map[string]outbox.RateLimit{}
	for name, r := range config.DefaultRateLimits() {
		if v, ok := s.cfg.Outbox.RateLimits[name]; ok {
			r = v
		}
		limits[name] = outbox.RateLimit{Rate: rate.Limit(r), Burst: 1}
	}
	h := s.store.Outbox()
	s.outbox = outbox.New(outbox.Config{
		JS: h.JS, Stream: h.Jobs, Subject: store.OutboxPrefix,
		Dead: h.Dead, DeadSubject: store.DeadPrefix, State: h.State,
		MinBackoff: s.cfg.Outbox.MinBackoff.Duration, MaxBackoff: s.cfg.Outbox.MaxBackoff.Duration,
		GiveUp: s.cfg.Outbox.GiveUp.Duration, Limits: limits, Logger: s.log,
		OnAttempt: func(kind string, out outbox.Outcome) {
			s.metrics.outboxAttempts.WithLabelValues(kind, string(out)).Inc()
		},
		OnDead: func(dj outbox.DeadJob) {
			s.metrics.outboxDead.WithLabelValues(dj.Job.Kind).Inc()
		},
	})
	if s.crm != nil {
		// Manager lookups spend the same budget as queued retailCRM jobs.
		s.mgr = newManagers(limitedManagers{s.crm, []*rate.Limiter{
			s.outbox.Limiter(config.LimitRetailCRMTelephony), s.outbox.Limiter(config.LimitRetailCRM)}},
			s.cfg.RetailCRM.ManagerCache.Duration)
	}
	// This node's id in the cluster, new at every start (see package
	// presence): its presence record and the checkpoint lease carry it.
	node := presence.Node()
	last, lastAt, err := s.store.LastStored(ctx)
	if err != nil {
		return err
	}
	s.board = board.New(board.Config{
		Log: s.log, Store: s.store, Location: s.loc, ServiceLevel: s.cfg.Queue.ServiceLevel.Duration,
		LongBreak: s.cfg.Queue.LongBreak.Duration, Now: func() time.Time { return s.clock() },
		Auth: s.ops.AuthenticateRequest, Node: node, LeaseTTL: s.store.PresenceTTL(),
	})
	if err := s.board.Open(ctx, s.ops.List()); err != nil {
		return err
	}
	s.metrics.trackBoard(s.board)
	s.presence = presence.New(presence.Config{Log: s.log, Store: s.store, Sink: s.board, Node: node,
		Now: func() time.Time { return s.clock() }})
	s.calls = &calls{cfg: &s.cfg, log: s.log, store: s.store, cache: call.NewCache(call.CacheGeneration), ops: s.ops,
		board: s.board, mgr: s.mgr, metrics: s.metrics, sites: s.sites, clock: s.clock, spawn: s.spawn}
	chatsCfg := chats.Config{Log: s.log, Store: s.store, Outbox: s.outbox, Operators: s.ops, Auth: s.authOperator,
		Location: s.loc, PhoneRegion: s.cfg.PhoneRegion, SmartsuppToken: s.cfg.Smartsupp.Token,
		DefaultOperator: s.cfg.Qolio.DefaultOperator, PerMinute: s.cfg.Limits.TranscriptsPerMinute,
		GiveUp: s.cfg.Outbox.GiveUp.Duration, Registerer: s.metrics.reg,
		Throttled: s.metrics.throttled.WithLabelValues(limitTranscripts), EventsIn: s.metrics.eventsIn}
	if s.qolio != nil { // a nil *qolio.Client would make a non-nil Qolio
		chatsCfg.Qolio = s.qolio
	}
	s.chats = chats.New(chatsCfg)

	// The outbox's kinds, each with the part that owns it. change-status is
	// queued: the operator's choice is stored already, and the PBX must
	// learn it even if it is down for a while. make-call is not (see
	// placeCall): a call placed minutes late would surprise everyone.
	s.outbox.Handle(jobPBXStatus, s.sendPBXStatus, outbox.Timeout(s.cfg.PBX.Timeout.Duration+time.Second))
	if s.crm != nil {
		s.crmSync = &crmSync{cfg: &s.cfg, log: s.log, store: s.store, crm: s.crm, ops: s.ops, outbox: s.outbox,
			calls: s.calls, metrics: s.metrics, loc: s.loc, sites: s.sites, currentStatus: s.currentStatus}
		telephony := outbox.Limit(config.LimitRetailCRM, config.LimitRetailCRMTelephony)
		s.outbox.Handle(jobCRMEvent, s.crmSync.sendCRMEvent, telephony)
		s.outbox.Handle(jobCRMCalls, s.crmSync.sendCallsUpload, telephony, outbox.Workers(1))
		s.outbox.Handle(jobCRMStatus, s.crmSync.sendCRMStatus, outbox.Limit(config.LimitRetailCRM))
	}
	if s.qolio != nil {
		s.outbox.Handle(chats.Kind, s.chats.Send, outbox.Timeout(s.cfg.Qolio.Timeout.Duration+time.Second),
			outbox.WhenDead(s.chats.Dead))
	}
	s.metrics.trackOutbox(s.outbox)
	pbxCfg := pbxapi.Config{Log: s.log, APIKey: s.cfg.PBX.APIKey, PhoneRegion: s.cfg.PhoneRegion, Location: s.loc,
		Sites: s.sites, Operators: s.ops, Uploads: s.store, Apply: s.calls.processCall, Routable: s.calls.routable,
		LookupTimeout: s.cfg.RetailCRM.Timeout.Duration, Now: s.clock, EventsIn: s.metrics.eventsIn, Trace: s.trace}
	// Left nil, Forward and Lookup mean "not passed on" and "no manager".
	if s.cfg.RetailCRM.ForwardEvents {
		pbxCfg.Forward = s.crmSync.forwardCallEvent
	}
	if s.mgr != nil {
		pbxCfg.Lookup = s.mgr.get
	}
	s.pbxAPI = pbxapi.New(pbxCfg)
	s.hub = hub.New(hub.Config{
		Log: s.store, Handler: s, Logger: s.log, MaxFrame: s.cfg.MaxFrame,
		OnPresence:  s.presence.Local,
		RequestRate: rate.Limit(s.cfg.Limits.RequestsPerSecond), RequestBurst: s.cfg.Limits.Burst,
		MaxSessions: s.cfg.Limits.SessionsPerOperator, RecentWindow: s.recentWindow, LastStoredAt: lastAt,
		OnThrottled: func(_ string, code int) {
			if code == wire.CloseRateLimited {
				s.metrics.throttled.WithLabelValues(limitRequestRate).Inc()
			} else {
				s.metrics.throttled.WithLabelValues(limitSessions).Inc()
			}
		},
		Metrics: hub.Metrics{
			Connections: s.metrics.connections, Operators: s.metrics.operators,
			EventsOut: s.metrics.eventsOut, DeliveryLatency: s.metrics.latency,
		},
	}, last)
	s.calls.ahead = aheadEverywhere{hub: s.hub, store: s.store, where: s.presence, node: node}
	stopAhead, err := shareAhead(s.store, s.hub, node)
	if err != nil {
		return err
	}
	defer stopAhead()

	// The listeners; each is closed by its HTTP server, or here if Run
	// fails before serving.
	ln := s.ln
	if ln == nil {
		if ln, err = net.Listen("tcp", s.cfg.Listen); err != nil {
			return fmt.Errorf("relay: listen: %w", err)
		}
		defer ln.Close()
	}
	var adminLn, metricsLn net.Listener
	if s.cfg.AdminListen != "" {
		if adminLn, err = net.Listen("tcp", s.cfg.AdminListen); err != nil {
			return fmt.Errorf("relay: admin_listen: %w", err)
		}
		defer adminLn.Close()
	}
	if s.cfg.MetricsListen != "" {
		if metricsLn, err = net.Listen("tcp", s.cfg.MetricsListen); err != nil {
			return fmt.Errorf("relay: metrics_listen: %w", err)
		}
		defer metricsLn.Close()
	}
	var tlsConfig, adminTLS *tls.Config
	if s.cfg.TLSCert != "" {
		certs, err := certfile.New(s.cfg.TLSCert, s.cfg.TLSKey, s.log)
		if err != nil {
			return fmt.Errorf("relay: %w", err)
		}
		tlsConfig, adminTLS = certs.Config(), certs.Config()
	}
	srv := s.newHTTPServer(s.routes(), tlsConfig)
	// Wallboard streams are long-lived responses: end them when the
	// server starts shutting down, or Shutdown would wait for them.
	srv.RegisterOnShutdown(s.board.CloseAll)
	sides := []*side{{name: "public", srv: srv, ln: ln, tls: tlsConfig != nil}}
	sides = append(sides, s.adminSides(sock, adminLn, adminTLS)...)
	if metricsLn != nil {
		sides = append(sides, &side{name: "metrics", srv: s.newHTTPServer(s.metricsHandler(), nil), ln: metricsLn})
	}

	if s.store.Clustered() {
		s.majority = &majority.Watch{Check: s.store, Logger: s.log, After: cutOffAfter(s.cfg.NATS), OnLost: func() {
			n := s.hub.CloseAll(wire.CloseGoingAway, cutOffReason)
			s.log.Warn("closed the agents' sessions", "sessions", n)
		}}
	}

	errc := make(chan error, 16) // more than the parts: none blocks on a failure
	var parts sync.WaitGroup
	start := func(name string, run func(context.Context) error) {
		parts.Add(1)
		go func() {
			defer parts.Done()
			if err := run(runCtx); err != nil {
				errc <- fmt.Errorf("%s: %w", name, err)
			}
		}()
	}
	start("events", func(ctx context.Context) error { return s.store.Tail(ctx, last+1, s.hub.Deliver) })
	start("operators", func(ctx context.Context) error {
		return s.ops.Run(ctx, operators.Hooks{
			Changed: s.board.PutOperator,
			Revoked: func(op operators.Operator) { s.hub.Disconnect(op.ID, wire.CloseRevoked, "token revoked") },
		})
	})
	start("outbox", s.outbox.Run)
	start("storage", s.storage.Run)
	start("queue board", s.board.Run)
	start("presence", s.presence.Run)
	if s.majority != nil {
		start("majority", s.majority.Run)
	}
	// The board catches up with the calls' records, and learns who is
	// connected to the other nodes, before anyone sees it.
	limit := time.NewTimer(catchUpLimit)
	for _, ready := range []<-chan struct{}{s.board.Ready(), s.presence.Synced()} {
		select {
		case <-ready:
			continue
		case <-limit.C:
			s.log.Warn("the queue board has not caught up with its stream and the cluster's presence yet; serving anyway", "waited", catchUpLimit)
		case <-ctx.Done():
		}
		break
	}
	limit.Stop()
	if s.cfg.RetailCRM.Uploading() {
		start("call history", s.crmSync.runUploads)
	}
	s.spawn(s.calls.resumeLookups)
	for _, sd := range sides {
		start("http "+sd.name, func(context.Context) error { return sd.serve() })
	}
	s.addr, s.adminSocket = ln.Addr().String(), sock.Path()
	if adminLn != nil {
		s.adminAddr = adminLn.Addr().String()
	}
	if metricsLn != nil {
		s.metricsAddr = metricsLn.Addr().String()
	}
	if tlsConfig != nil {
		s.log.Info("relay ready", "addr", s.addr, "node", node, "tls", s.cfg.TLSCert, "nats", natsMode(s.cfg.NATS), "durability", s.store.Durability(), "data_dir", s.cfg.DataDir)
	} else {
		s.log.Info("relay ready", "addr", s.addr, "node", node, "nats", natsMode(s.cfg.NATS), "durability", s.store.Durability(), "data_dir", s.cfg.DataDir)
		const plain = "serving plain HTTP: partners and agents off this machine need a TLS proxy in front (see docs/relay.md), or set tls_cert and tls_key"
		if loopback(ln.Addr()) {
			s.log.Info(plain) // what a proxy on this machine reaches
		} else {
			s.log.Warn(plain)
		}
	}
	if s.cfg.NATS.URL == "" && s.cfg.NATS.Cluster.Open() {
		s.log.Warn("the cluster's routes take anyone who reaches nats.cluster.listen: set nats.cluster.secret (and TLS) on every node (see docs/cluster.md)",
			"listen", s.cfg.NATS.Cluster.Listen)
	}
	s.logSides(sides)
	close(s.ready)

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
		s.log.Error("relay part failed; shutting down", "err", runErr)
	}
	shCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, sd := range sides {
		sd.stop(shCtx) // webhooks and admin requests finish; hijacked websockets are the hub's
	}
	s.hub.Shutdown(shCtx)
	stop()
	s.bg.Wait()
	parts.Wait()
	s.log.Info("relay stopped")
	return runErr
}

// loopback reports whether a listener's address is this machine's alone.
func loopback(addr net.Addr) bool {
	ta, ok := addr.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}

func natsMode(n config.NATSConfig) string {
	switch {
	case n.URL != "":
		return fmt.Sprintf("external, replicas=%d", n.StreamReplicas())
	case n.Cluster.Enabled():
		return fmt.Sprintf("embedded, cluster %s as %s, replicas=%d", n.Cluster.Name, n.Cluster.NodeName(), n.StreamReplicas())
	}
	return "embedded"
}

// spawn runs background work owned by the server; Run waits for it.
func (s *Server) spawn(f func(ctx context.Context)) {
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		f(s.bgCtx)
	}()
}
