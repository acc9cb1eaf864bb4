package looptest

import (
	"net"
	"strconv"
	"testing"
)

// TestAddrs: distinct loopback addresses below the ephemeral range, each
// free to listen on.
func TestAddrs(t *testing.T) {
	addrs := Addrs(t, 20)
	seen := map[string]bool{}
	for _, a := range addrs {
		host, p, err := net.SplitHostPort(a)
		port, _ := strconv.Atoi(p)
		if err != nil || host != "127.0.0.1" || port < 20000 || port > 31999 || seen[a] {
			t.Fatalf("address %q (%v) among %v", a, err, addrs)
		}
		seen[a] = true
		l, err := net.Listen("tcp", a)
		if err != nil {
			t.Fatalf("%s is not free: %v", a, err)
		}
		l.Close()
	}
}
