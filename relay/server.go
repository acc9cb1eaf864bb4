// Package relay is the pult relay's wiring and the flows between its parts.
// Server.Run builds the parts in dependency order — the store, the operators'
// registry, the outbox, the queue board, the call flow (calls), what goes to
// retailCRM (crmSync), the transcripts, the hub — then runs them as one group
// until its context ends, and stops them in order. The flows: a PBX event
// (retailCRM-style, UIS, or a PBX asking the retailCRM API) becomes a call
// record, cards and a board change (telephony.go, pbxapi.go, uishook.go); an
// operator's request (status, dial, callback, queue) is answered once
// (requests.go); partners hear of it through the outbox (status.go, crm.go,
// uploads.go, transcripts.go, callback.go). docs/architecture.md draws it.
package relay

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/pult/pult/agent/wire"
	"github.com/pult/pult/relay/board"
	"github.com/pult/pult/relay/call"
	"github.com/pult/pult/relay/calltouch"
	"github.com/pult/pult/relay/certfile"
	"github.com/pult/pult/relay/config"
	"github.com/pult/pult/relay/hub"
	"github.com/pult/pult/relay/operators"
	"github.com/pult/pult/relay/outbox"
	"github.com/pult/pult/relay/qolio"
	"github.com/pult/pult/relay/retailcrm"
	"github.com/pult/pult/relay/store"
)

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
	crm         *retailcrm.Client // nil without a CRM
	qolio       *qolio.Client     // nil without Qolio
	ct          *calltouch.Client // nil without Calltouch
	transcripts *transcripts
	crmSync     *crmSync          // nil without a CRM
	loc         *time.Location    // time_zone
	board       *board.Board      // the supervisors' queue board
	clock       func() time.Time  // time.Now; tests move it
	sites       map[string]string // E.164 external phone → site code ([retailcrm] external_phones)
	storage     *storageGuard     // says when storage is too full for new work
	storagePoll time.Duration     // how often storage is checked (storagePoll; tests shorten it)

	bgCtx context.Context
	bg    sync.WaitGroup

	ready chan struct{}
	addr  string
	ln    net.Listener // from ServeOn, or nil
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
	}
	for _, ep := range cfg.RetailCRM.ExternalPhones {
		s.sites[normalized(ep.Phone, cfg.PhoneRegion)] = ep.Site
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

// Addr is the address the relay listens on, once Ready.
func (s *Server) Addr() string { return s.addr }

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
	var err error
	s.store, err = store.Open(ctx, store.Options{
		URL: s.cfg.NATS.URL, DataDir: s.cfg.DataDir,
		EventRetention: s.cfg.EventRetention.Duration, Logger: s.log,
		MaxBytes: int64(s.cfg.Limits.MaxStoreBytes), DeadLetters: int64(s.cfg.Limits.DeadLetters),
		RequestIDsPerOperator: s.cfg.Limits.RequestIDsPerOperator,
	})
	if err != nil {
		return err
	}
	defer s.store.Close()

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
	_, last, err := s.store.EventBounds(ctx)
	if err != nil {
		return err
	}
	s.board = board.New(board.Config{
		Log: s.log, Store: s.store, Location: s.loc, ServiceLevel: s.cfg.Queue.ServiceLevel.Duration,
		LongBreak: s.cfg.Queue.LongBreak.Duration, Now: func() time.Time { return s.clock() },
		Auth: s.ops.AuthenticateRequest,
	})
	if err := s.board.Open(ctx, s.ops.List()); err != nil {
		return err
	}
	s.calls = &calls{cfg: &s.cfg, log: s.log, store: s.store, cache: call.NewCache(call.CacheGeneration), ops: s.ops,
		board: s.board, mgr: s.mgr, metrics: s.metrics, sites: s.sites, clock: s.clock, spawn: s.spawn}
	s.transcripts = &transcripts{log: s.log, cfg: &s.cfg, store: s.store, outbox: s.outbox, ops: s.ops,
		qolio: s.qolio, metrics: s.metrics, loc: s.loc, auth: s.authOperator}

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
		s.outbox.Handle(jobQolio, s.transcripts.sendQolio, outbox.Timeout(s.cfg.Qolio.Timeout.Duration+time.Second),
			outbox.WhenDead(s.transcripts.transcriptDead))
	}
	s.metrics.trackOutbox(s.outbox)
	s.hub = hub.New(hub.Config{
		Log: s.store, Handler: s, Logger: s.log, MaxFrame: s.cfg.MaxFrame,
		OnPresence:  s.board.Presence,
		RequestRate: rate.Limit(s.cfg.Limits.RequestsPerSecond), RequestBurst: s.cfg.Limits.Burst,
		MaxSessions: s.cfg.Limits.SessionsPerOperator,
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

	ln := s.ln
	if ln == nil {
		if ln, err = net.Listen("tcp", s.cfg.Listen); err != nil {
			return fmt.Errorf("relay: listen: %w", err)
		}
	}
	var tlsConfig *tls.Config
	if s.cfg.TLSCert != "" {
		certs, err := certfile.New(s.cfg.TLSCert, s.cfg.TLSKey, s.log)
		if err != nil {
			ln.Close()
			return fmt.Errorf("relay: %w", err)
		}
		tlsConfig = certs.Config()
	}
	srv := &http.Server{
		TLSConfig:         tlsConfig,
		Handler:           s.routes(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	// Wallboard streams are long-lived responses: end them when the
	// server starts shutting down, or Shutdown would wait for them.
	srv.RegisterOnShutdown(s.board.CloseAll)

	runCtx, stop := context.WithCancel(context.Background())
	defer stop()
	s.bgCtx = runCtx
	errc := make(chan error, 8)
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
	// The board catches up with the queue stream before anyone sees it.
	select {
	case <-s.board.Ready():
	case <-time.After(catchUpLimit):
		s.log.Warn("the queue board has not caught up with its stream yet; serving anyway", "waited", catchUpLimit)
	case <-ctx.Done():
	}
	if s.cfg.RetailCRM.Uploading() {
		start("call history", s.crmSync.runUploads)
	}
	s.spawn(s.calls.resumeLookups)
	parts.Add(1)
	go func() {
		defer parts.Done()
		serve := srv.Serve
		if tlsConfig != nil {
			serve = func(ln net.Listener) error { return srv.ServeTLS(ln, "", "") }
		}
		if err := serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("http: %w", err)
		}
	}()
	s.addr = ln.Addr().String()
	if tlsConfig != nil {
		s.log.Info("relay ready", "addr", s.addr, "tls", s.cfg.TLSCert, "nats", natsMode(s.cfg.NATS.URL), "data_dir", s.cfg.DataDir)
	} else {
		s.log.Info("relay ready", "addr", s.addr, "nats", natsMode(s.cfg.NATS.URL), "data_dir", s.cfg.DataDir)
		const plain = "serving plain HTTP: partners and agents off this machine need a TLS proxy in front (see docs/relay.md), or set tls_cert and tls_key"
		if loopback(ln.Addr()) {
			s.log.Info(plain) // what a proxy on this machine reaches
		} else {
			s.log.Warn(plain)
		}
	}
	close(s.ready)

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
		s.log.Error("relay part failed; shutting down", "err", runErr)
	}
	shCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	srv.Shutdown(shCtx) // stops webhooks; hijacked websockets are the hub's
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

func natsMode(url string) string {
	if url == "" {
		return "embedded"
	}
	return "external"
}

// spawn runs background work owned by the server; Run waits for it.
func (s *Server) spawn(f func(ctx context.Context)) {
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		f(s.bgCtx)
	}()
}
