package relay

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pult/pult/relay/admin"
	"github.com/pult/pult/relay/sockfile"
)

// A side is one of the relay's HTTP listeners with its server:
//
//	public          listen: webhooks, agents, the wallboard, /healthz
//	admin socket    admin.sock in data_dir: the admin API; its file mode
//	                (0600, the relay's user) is its authentication
//	admin           admin_listen (optional): the admin API behind the
//	                admin token, over TLS with tls_cert and tls_key
//	metrics         metrics_listen (optional): /metrics and /debug/pprof/
//
// Run starts each as a part of its group and shuts them all down before the
// hub.
type side struct {
	name string
	srv  *http.Server
	ln   net.Listener
	tls  bool
}

func (sd *side) serve() error {
	var err error
	if sd.tls {
		err = sd.srv.ServeTLS(sd.ln, "", "")
	} else {
		err = sd.srv.Serve(sd.ln)
	}
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// stop ends the side: its requests in flight finish (until ctx ends), but
// for the metrics side's, which nobody misses: a scrape or a profile
// running for minutes is cut at once.
func (sd *side) stop(ctx context.Context) {
	if sd.name == "metrics" {
		sd.srv.Close()
		return
	}
	if sd.srv.Shutdown(ctx) != nil {
		sd.srv.Close()
	}
}

// newHTTPServer is an HTTP server with the relay's limits.
func (s *Server) newHTTPServer(h http.Handler, tlsConfig *tls.Config) *http.Server {
	return &http.Server{
		TLSConfig:         tlsConfig,
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
}

// listenAdminSocket makes the admin socket in data_dir (and data_dir, if
// missing). It fails with a clear message when another relay answers there.
func (s *Server) listenAdminSocket() (*sockfile.Listener, error) {
	if err := os.MkdirAll(s.cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("relay: data_dir: %w", err)
	}
	path := s.cfg.AdminSocket()
	ln, err := sockfile.Listen(path)
	if errors.Is(err, sockfile.ErrInUse) {
		return nil, fmt.Errorf("relay: another relay uses data_dir %s (its admin socket %s is in use); stop it, or give this relay a data_dir of its own", s.cfg.DataDir, path)
	}
	if err != nil {
		return nil, fmt.Errorf("relay: admin socket: %w", err)
	}
	if ln.Stale {
		s.log.Info("replaced the admin socket a stopped relay left behind", "path", path)
	}
	return ln, nil
}

// adminSides are the admin API's sides: the socket, and admin_listen if set.
func (s *Server) adminSides(sock net.Listener, tcp net.Listener, tlsConfig *tls.Config) []*side {
	api := admin.Handler(adminBackend{s}, s.log)
	sides := []*side{{name: "admin socket", srv: s.newHTTPServer(api, nil), ln: sock}}
	if tcp != nil {
		sides = append(sides, &side{name: "admin", srv: s.newHTTPServer(admin.RequireToken(s.cfg.AdminToken, api), tlsConfig),
			ln: tcp, tls: tlsConfig != nil})
	}
	return sides
}

// metricsHandler serves /metrics and net/http/pprof, mounted on a mux of its
// own (never http.DefaultServeMux).
func (s *Server) metricsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/debug/pprof/", pprof.Index) // and every named profile: heap, goroutine, allocs…
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.Handle("GET /debug/pult/events", s.trace) // [] unless trace_events is set
	return mux
}

// logSides says where each side listens, and warns of a private side
// reachable from other machines without protection.
func (s *Server) logSides(sides []*side) {
	for _, sd := range sides {
		switch sd.name {
		case "public":
			continue // "relay ready" says it
		case "admin socket":
			s.log.Info("admin API listening", "socket", sd.ln.Addr().String())
		case "admin":
			s.log.Info("admin API listening", "addr", sd.ln.Addr().String(), "tls", sd.tls)
			if !sd.tls && !loopback(sd.ln.Addr()) {
				s.log.Warn("admin_listen is not a loopback address and speaks plain HTTP: the admin token crosses the network in clear text; set tls_cert and tls_key, or reach it through an SSH tunnel or a VPN",
					"addr", sd.ln.Addr().String())
			}
		case "metrics":
			s.log.Info("metrics and pprof listening", "addr", sd.ln.Addr().String())
			if !loopback(sd.ln.Addr()) {
				s.log.Warn("metrics_listen is not a loopback address: /metrics and /debug/pprof/ answer anyone who reaches it, without authentication; keep it on a private network",
					"addr", sd.ln.Addr().String())
			}
		}
	}
}
