package store_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/pult/pult/relay/looptest"
	"github.com/pult/pult/relay/store"
)

// testCA writes a CA and, for each name, a certificate it signed for
// 127.0.0.1 (PEM files in dir); it returns the CA's path and each name's
// certificate and key.
func testCA(t *testing.T, dir string, names ...string) (ca string, certs map[string][2]string) {
	t.Helper()
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	caKey := key()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "pult test CA " + filepath.Base(dir)},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	ca = write("ca.pem", "CERTIFICATE", caDER)
	certs = map[string][2]string{}
	for i, n := range names {
		k := key()
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(int64(i + 2)), Subject: pkix.Name{CommonName: n},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, _ := x509.MarshalECPrivateKey(k)
		certs[n] = [2]string{write(n+".pem", "CERTIFICATE", der), write(n+"-key.pem", "EC PRIVATE KEY", kder)}
	}
	return ca, certs
}

// A cluster with a secret and TLS routes forms and replicates; a node with
// the wrong secret, or with a certificate from another CA, is not let in
// (its store never becomes ready), while the others keep working.
func TestClusterRoutesNeedSecretAndCertificate(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	addrs := looptest.Addrs(t, 4) // the last one, the intruder's
	var routes []string
	for _, a := range addrs[:3] {
		routes = append(routes, "nats-route://"+a)
	}
	ca, certs := testCA(t, t.TempDir(), "n0", "n1", "n2", "n3")
	_, strangers := testCA(t, t.TempDir(), "n3")
	const secret = "cluster-secret-0123456789"
	cluster := func(i int, secret string, cert [2]string) *store.Cluster {
		return &store.Cluster{Name: "pult-test", ServerName: fmt.Sprintf("n%d", i), Listen: addrs[i], Routes: routes,
			Secret: secret, TLSCA: ca, TLSCert: cert[0], TLSKey: cert[1]}
	}
	stores := make([]*store.Store, 3)
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Go(func() {
			stores[i], errs[i] = store.Open(ctx, store.Options{DataDir: t.TempDir(), Replicas: 3, Logger: testLog(i), Cluster: cluster(i, secret, certs[fmt.Sprint("n", i)])})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
		defer stores[i].Close()
	}
	seq, err := stores[0].Append(ctx, "op1", "test", []byte(`{"n":1}`), "", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if ev, err := stores[2].Next(ctx, "op1", seq-1); err != nil || ev == nil || string(ev.Data) != `{"n":1}` {
		t.Fatalf("the event on another node: %v %v", ev, err)
	}

	for _, tc := range []struct {
		name     string
		intruder *store.Cluster
		admitted bool
	}{
		{"wrong secret", cluster(3, "another-secret-0123456789", certs["n3"]), false},
		{"no secret", cluster(3, "", certs["n3"]), false},
		{"certificate of another CA", cluster(3, secret, strangers["n3"]), false},
		// The control: with both, a fourth node is let in.
		{"secret and certificate", cluster(3, secret, certs["n3"]), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ictx, icancel := context.WithTimeout(ctx, 8*time.Second)
			if tc.admitted {
				ictx, icancel = context.WithTimeout(ctx, 30*time.Second)
			}
			defer icancel()
			st, err := store.Open(ictx, store.Options{DataDir: t.TempDir(), Replicas: 3, Logger: testLog(3), Cluster: tc.intruder})
			if err == nil {
				st.Close()
			}
			if admitted := err == nil; admitted != tc.admitted {
				t.Fatalf("a node with the %s: admitted %v (%v), want %v", tc.name, admitted, err, tc.admitted)
			}
			// The cluster kept working meanwhile.
			if _, err := stores[1].Append(ctx, "op1", "test", []byte(`{"n":2}`), "", time.Time{}); err != nil {
				t.Fatal(err)
			}
		})
	}
}
