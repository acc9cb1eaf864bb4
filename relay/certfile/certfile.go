// Package certfile serves a TLS certificate from PEM files and follows them:
// when the files change on disk (a certbot renewal, say), the next
// handshakes get the new certificate, without a restart. A change that does
// not load (a key that does not match, a half-written file) keeps the
// certificate in use and is reported once.
//
// A Reloader is safe for concurrent use: GetCertificate runs on the
// handshaking connections' goroutines and looks at the files at most once a
// second.
package certfile

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// checkEvery is how often the files are looked at, at most.
const checkEvery = time.Second

// Reloader holds the certificate loaded from a certificate and a key file.
type Reloader struct {
	certPath, keyPath string
	log               *slog.Logger
	now               func() time.Time

	mu      sync.Mutex
	cert    *tls.Certificate
	stamp   string // the files' size and modification times when cert was loaded
	checked time.Time
	failed  string // the stamp whose load failed (reported once)
}

// New loads the certificate (PEM, the chain in certPath) and its key; it
// fails if they do not load or do not match.
func New(certPath, keyPath string, log *slog.Logger) (*Reloader, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Reloader{certPath: certPath, keyPath: keyPath, log: log.With("component", "tls"), now: time.Now}
	stamp, err := r.stampFiles()
	if err != nil {
		return nil, err
	}
	cert, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		return nil, fmt.Errorf("tls_cert and tls_key: %w", err)
	}
	r.cert, r.stamp, r.checked = &cert, stamp, r.now()
	return r, nil
}

func (r *Reloader) stampFiles() (string, error) {
	var stamp string
	for _, p := range []string{r.certPath, r.keyPath} {
		fi, err := os.Stat(p)
		if err != nil {
			return "", err
		}
		stamp += fmt.Sprintf("%d@%d;", fi.Size(), fi.ModTime().UnixNano())
	}
	return stamp, nil
}

// GetCertificate is tls.Config's GetCertificate: the certificate as the
// files are now.
func (r *Reloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now := r.now(); now.Sub(r.checked) >= checkEvery {
		r.checked = now
		r.reloadLocked()
	}
	return r.cert, nil
}

func (r *Reloader) reloadLocked() {
	stamp, err := r.stampFiles()
	if err != nil || stamp == r.stamp || stamp == r.failed {
		if err != nil && r.failed != "missing" {
			r.failed = "missing"
			r.log.Warn("the certificate files cannot be read; serving the certificate loaded before", "err", err)
		}
		return
	}
	cert, err := tls.LoadX509KeyPair(r.certPath, r.keyPath)
	if err != nil {
		r.failed = stamp
		r.log.Warn("the changed certificate files do not load; serving the certificate loaded before", "err", err)
		return
	}
	r.cert, r.stamp, r.failed = &cert, stamp, ""
	r.log.Info("certificate reloaded", "cert", r.certPath)
}

// Config is a server TLS configuration with modern defaults (TLS 1.2 and
// above, Go's cipher suites) serving r's certificate.
func (r *Reloader) Config() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: r.GetCertificate}
}
