package admin

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// Over a socket the client sends no token (the socket's permissions are
// the authentication) and reaches the API whatever the URL's host.
func TestClientOverSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "admin.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	var gotAuth, gotPath string
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAuth, gotPath = r.Header.Get("Authorization"), r.URL.Path
		writeJSON(w, http.StatusOK, []OperatorView{{ID: "a1", Name: "Anna"}})
	})}
	go srv.Serve(ln)
	defer srv.Close()
	ops, err := (&Client{Socket: path, Token: "never-sent"}).ListOperators(context.Background())
	if err != nil || len(ops) != 1 || ops[0].Name != "Anna" {
		t.Fatalf("list: %+v %v", ops, err)
	}
	if gotAuth != "" || gotPath != Prefix+"operators" {
		t.Errorf("the relay got Authorization %q on %s", gotAuth, gotPath)
	}
}

// What the admin commands say when the socket cannot be used.
func TestClientSocketErrors(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	missing := filepath.Join(dir, "missing.sock")
	if _, err := (&Client{Socket: missing}).ListOperators(ctx); err == nil || !strings.Contains(err.Error(), "is the relay running? no admin socket at "+missing) {
		t.Errorf("no socket: %v", err)
	}

	stale := filepath.Join(dir, "stale.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close()
	if _, err := (&Client{Socket: stale}).ListOperators(ctx); err == nil || !strings.Contains(err.Error(), "nothing answers on the admin socket "+stale) {
		t.Errorf("stale socket: %v", err)
	}

	denied := filepath.Join(dir, "denied.sock")
	c := &Client{Socket: denied}
	var got error
	if os.Geteuid() == 0 {
		// root passes every permission check: the error the kernel gives
		// anyone else, as the dialer wraps it.
		got = c.unreachable(&net.OpError{Op: "dial", Net: "unix", Err: os.NewSyscallError("connect", syscall.EACCES)})
	} else {
		ln, err := net.Listen("unix", denied)
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		os.Chmod(denied, 0)
		_, got = c.ListOperators(ctx)
	}
	if got == nil || !strings.Contains(got.Error(), "permission denied on the admin socket "+denied+": run this as the user the relay runs as") {
		t.Errorf("permission denied: %v", got)
	}
}
