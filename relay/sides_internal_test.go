package relay

import (
	"bytes"
	"log/slog"
	"net"
	"strings"
	"testing"
)

// fakeListener only has an address: the warnings are about where a side
// listens, and tests listen on loopback alone.
type fakeListener struct {
	net.Listener
	addr net.Addr
}

func (f fakeListener) Addr() net.Addr { return f.addr }

// A private side reachable from other machines without protection is
// warned of; on loopback, or with TLS for admin_listen, it is not.
func TestLogSidesWarnsOfExposedPrivateSides(t *testing.T) {
	outside := fakeListener{addr: &net.TCPAddr{IP: net.ParseIP("192.0.2.10"), Port: 8701}}
	local := fakeListener{addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8701}}
	for _, tc := range []struct {
		name string
		sd   side
		warn string
	}{
		{"admin_listen outside, plain", side{name: "admin", ln: outside}, "admin_listen is not a loopback address and speaks plain HTTP"},
		{"admin_listen outside, TLS", side{name: "admin", ln: outside, tls: true}, ""},
		{"admin_listen on loopback", side{name: "admin", ln: local}, ""},
		{"metrics_listen outside", side{name: "metrics", ln: outside}, "metrics_listen is not a loopback address"},
		{"metrics_listen on loopback", side{name: "metrics", ln: local}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			s := &Server{log: slog.New(slog.NewTextHandler(&b, nil))}
			s.logSides([]*side{&tc.sd})
			warned := strings.Contains(b.String(), "level=WARN")
			if tc.warn == "" && warned || tc.warn != "" && !strings.Contains(b.String(), tc.warn) {
				t.Errorf("log:\n%s\nwant a warning %q", b.String(), tc.warn)
			}
		})
	}
}
