//go:build windows

package main

import (
	"strings"
	"testing"

	"golang.org/x/sys/windows"
)

// newTestEndpoint is an endpoint of the test's own: the user's pipe name
// with the test's.
func newTestEndpoint(t *testing.T) instanceEndpoint {
	t.Helper()
	ep, err := newInstanceEndpoint(func(string) string { return "" }, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(ep.pipe, `\\.\pipe\pult-S-1-`) {
		t.Fatalf("pipe name %q", ep.pipe)
	}
	ep.pipe += "-" + t.Name()
	return ep
}

// Another process's pipe of the same name is taken, not stale.
func TestInstancePipeTaken(t *testing.T) {
	ep := newTestEndpoint(t)
	l, err := ep.listen()
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if wine := windows.NewLazySystemDLL("ntdll.dll").NewProc("wine_get_version"); wine.Find() == nil {
		t.Skip("Wine 10 ignores FILE_FLAG_FIRST_PIPE_INSTANCE")
	}
	if _, err := ep.listen(); err != errInstanceTaken {
		t.Fatalf("a second listen = %v, want errInstanceTaken", err)
	}
	l.Close()
	l, err = ep.listen()
	if err != nil {
		t.Fatalf("listen after Close: %v", err)
	}
	l.Close()
}
