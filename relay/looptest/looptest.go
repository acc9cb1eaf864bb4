// Package looptest gives tests loopback addresses nobody listens on, for
// servers they start (or restart) on a fixed address. Nothing outside tests
// uses it.
//
// The ports are below Linux's ephemeral range (32768–60999). A port the
// kernel hands out for ":0" comes from that range, and once the probe is
// closed it may become another connection's local port before the server
// binds it — "bind: address already in use", seen in CI with a relay of a
// cluster that binds only once its cluster is ready, and with NATS routes.
package looptest

import (
	"fmt"
	"math/rand/v2"
	"net"
	"testing"
)

// Addrs returns n distinct free loopback addresses ("127.0.0.1:port"),
// ports 20000–31999.
func Addrs(t testing.TB, n int) []string {
	t.Helper()
	var out []string
	var probes []net.Listener
	defer func() {
		for _, l := range probes {
			l.Close()
		}
	}()
	for tries := 0; len(out) < n; tries++ {
		if tries == 100*n {
			t.Fatalf("no %d free loopback ports in 20000–31999 after %d tries", n, tries)
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", 20000+rand.IntN(12000)))
		if err != nil {
			continue // taken: another
		}
		probes = append(probes, l) // held until all are found: distinct
		out = append(out, l.Addr().String())
	}
	return out
}

// Addr returns a free loopback address (see Addrs).
func Addr(t testing.TB) string {
	t.Helper()
	return Addrs(t, 1)[0]
}
