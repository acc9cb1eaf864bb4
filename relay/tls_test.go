package relay_test

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/pult/pult/agent"
	"github.com/pult/pult/agent/wire"
	"github.com/pult/pult/relay/admin"
	"github.com/pult/pult/relay/certfile/certtest"
	"github.com/pult/pult/relay/operators"
)

// With tls_cert and tls_key the relay speaks HTTPS and WSS: an agent that
// trusts the relay's authority signs in over wss and gets the card of a call
// a PBX posted over HTTPS; a certificate renewed on disk is served to the
// next connection without a restart; plain HTTP is refused.
func TestTLSEndToEnd(t *testing.T) {
	checkGoroutines(t)
	ca := certtest.NewCA(t)
	dir := t.TempDir()
	cfg := testConfig(t)
	cfg.TLSCert, cfg.TLSKey = ca.WriteServerCert(t, dir, "first")
	cfg.AdminListen = "127.0.0.1:0"
	r := startRelay(t, cfg)
	base := "https://" + r.srv.Addr()
	trust := &tls.Config{RootCAs: ca.Pool()}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: trust}}
	defer client.CloseIdleConnections()

	// admin_listen speaks TLS with the same certificate.
	adm := &admin.Client{BaseURL: "https://" + r.srv.AdminAddr(), Token: testAdminToken, HTTP: client}
	added, err := adm.AddOperator(context.Background(), operators.NewOperator{Name: "Anna", Code: "100", UserID: "1"})
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := http.Get("http://" + r.srv.AdminAddr() + "/admin/v1/operators"); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("admin_listen answered plain HTTP with %d", resp.StatusCode)
		}
	}
	if _, err := (&admin.Client{BaseURL: base, Token: testAdminToken, HTTP: client}).ListOperators(context.Background()); err == nil ||
		!strings.Contains(err.Error(), "does not serve the admin API") {
		t.Errorf("the admin API over the public HTTPS listener: %v", err)
	}
	anna := startAgent(t, base, added.Token, func(c *agent.Config) { c.TLS = trust })
	anna.waitOnline()

	// A PBX posts a call event over HTTPS.
	ev := `{"type":"in","phone":"+79121234567","codes":["100"],"callExternalId":"tls-1"}`
	req, _ := http.NewRequest("POST", base+"/api/v5/telephony/call/event", strings.NewReader(url.Values{"event": {ev}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-API-KEY", testPBXKey)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("call event over HTTPS: %d", resp.StatusCode)
	}
	anna.waitFor("the card, over wss", callWith("tls-1", wire.CallRinging))

	// Nothing in clear text.
	if resp, err := http.Get("http://" + r.srv.Addr() + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("plain HTTP answered %d", resp.StatusCode)
		}
	}

	served := func() string {
		c, err := tls.Dial("tcp", r.srv.Addr(), &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if v := c.ConnectionState().Version; v < tls.VersionTLS12 {
			t.Errorf("TLS version %x", v)
		}
		return c.ConnectionState().PeerCertificates[0].Subject.CommonName
	}
	if got := served(); got != "first" {
		t.Fatalf("served %q", got)
	}
	// certbot renews: the next connection gets the new certificate.
	ca.WriteServerCert(t, dir, "renewed")
	waitUntil(t, "the renewed certificate served", func() bool { return served() == "renewed" })

	// A client asking for TLS 1.1 is refused.
	if c, err := tls.Dial("tcp", r.srv.Addr(), &tls.Config{RootCAs: ca.Pool(), MaxVersion: tls.VersionTLS11}); err == nil {
		c.Close()
		t.Error("a TLS 1.1 handshake succeeded")
	}
}
