package certfile

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"testing"
	"time"

	"github.com/pult/pult/relay/certfile/certtest"
)

func commonName(t *testing.T, c *tls.Certificate) string {
	t.Helper()
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return leaf.Subject.CommonName
}

// The certificate follows its files: a renewal is served on the next
// handshake after a second, a broken change keeps the one in use.
func TestReloaderFollowsTheFiles(t *testing.T) {
	dir := t.TempDir()
	ca := certtest.NewCA(t)
	certPath, keyPath := ca.WriteServerCert(t, dir, "first")
	r, err := New(certPath, keyPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	r.now = func() time.Time { return now }
	get := func() string {
		c, err := r.GetCertificate(nil)
		if err != nil {
			t.Fatal(err)
		}
		return commonName(t, c)
	}
	if got := get(); got != "first" {
		t.Fatalf("served %q", got)
	}
	ca.WriteServerCert(t, dir, "renewed")
	if got := get(); got != "first" {
		t.Errorf("looked at the files within the second: %q", got)
	}
	now = now.Add(2 * time.Second)
	if got := get(); got != "renewed" {
		t.Errorf("after the renewal: %q", got)
	}
	// A half-written change: the renewed certificate stays.
	os.WriteFile(certPath, []byte("-----BEGIN CERTIFICATE-----\ngarbage"), 0o600)
	now = now.Add(2 * time.Second)
	if got := get(); got != "renewed" {
		t.Errorf("after a broken change: %q", got)
	}
	// Files gone: the same.
	os.Remove(certPath)
	now = now.Add(2 * time.Second)
	if got := get(); got != "renewed" {
		t.Errorf("with the files gone: %q", got)
	}
	ca.WriteServerCert(t, dir, "third")
	now = now.Add(2 * time.Second)
	if got := get(); got != "third" {
		t.Errorf("after the files came back: %q", got)
	}
	if cfg := r.Config(); cfg.MinVersion != tls.VersionTLS12 {
		t.Errorf("MinVersion %x", cfg.MinVersion)
	}
}

func TestNewRefusesBadFiles(t *testing.T) {
	dir := t.TempDir()
	ca := certtest.NewCA(t)
	certPath, _ := ca.WriteServerCert(t, dir, "a")
	if _, err := New(certPath, certPath, nil); err == nil {
		t.Error("a certificate as its own key accepted")
	}
	if _, err := New(dir+"/nope.pem", dir+"/nope.key", nil); err == nil {
		t.Error("missing files accepted")
	}
}
