//go:build windows

package main

import (
	"strings"
	"testing"
	"unsafe"

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

// The pipe's security descriptor lets only this user in: a protected DACL
// (nothing inherited) with one entry, for this user's SID.
func TestInstancePipeOnlyThisUser(t *testing.T) {
	ep := newTestEndpoint(t)
	l, err := ep.listen()
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	pl := l.(*pipeListener)
	pl.mu.Lock()
	h := pl.next
	pl.mu.Unlock()
	sd, err := windows.GetSecurityInfo(h, windows.SE_KERNEL_OBJECT, windows.DACL_SECURITY_INFORMATION)
	if err != nil {
		if wine := windows.NewLazySystemDLL("ntdll.dll").NewProc("wine_get_version"); wine.Find() == nil {
			t.Skipf("Wine: %v", err)
		}
		t.Fatal(err)
	}
	ctrl, _, err := sd.Control()
	if err != nil {
		t.Fatal(err)
	}
	if ctrl&windows.SE_DACL_PROTECTED == 0 {
		t.Error("the DACL is not protected: inherited entries may let others in")
	}
	dacl, _, err := sd.DACL()
	if err != nil || dacl == nil {
		t.Fatalf("no DACL (everyone may connect): %v", err)
	}
	if dacl.AceCount != 1 {
		t.Fatalf("%d entries in the DACL, want 1", dacl.AceCount)
	}
	var ace *windows.ACCESS_ALLOWED_ACE
	if err := windows.GetAce(dacl, 0, &ace); err != nil {
		t.Fatal(err)
	}
	if ace.Header.AceType != windows.ACCESS_ALLOWED_ACE_TYPE {
		t.Errorf("entry type %d", ace.Header.AceType)
	}
	if sid := (*windows.SID)(unsafe.Pointer(&ace.SidStart)).String(); sid != ep.sid {
		t.Errorf("the entry is for %s, want this user %s", sid, ep.sid)
	}
}
